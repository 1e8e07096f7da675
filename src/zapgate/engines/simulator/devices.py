"""A linked device as the simulated WhatsApp server sees it, on the node that has it connected."""

from __future__ import annotations

import asyncio
import collections
from dataclasses import dataclass, field

from ..base import EngineEvent
from .pairing import Pairing

__all__ = ["Device", "Mail", "user_jid"]

Mail = list[tuple[str, EngineEvent, int]]
"""Stored mail: (session id, event, mailbox row id)."""


def user_jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


@dataclass
class Device:
    """One session as WhatsApp's server sees it: a (possibly not yet linked) companion device."""

    session_id: str
    opened: bool = False
    online: bool = False
    network_up: bool = True
    jid: str | None = None
    phone: str | None = None
    epoch: int = 0
    """The lease epoch of the node's connection (0 for a single gateway)."""
    pairing: Pairing | None = None
    restricted_until: float = 0.0
    control: collections.deque[EngineEvent] = field(default_factory=collections.deque)
    mail: list[tuple[int, EngineEvent | bytes]] = field(default_factory=list)
    """A heap by mailbox row id: mail is delivered in the order the server stored it. Mail read back from the
    mailbox, or posted while the device was offline, stays encoded until it is handed over: a burst's thousands
    of items are decoded a batch at a time, not all in the turn that read them, and waiting mail gives the
    garbage collector nothing to walk."""
    queued: set[int] = field(default_factory=set)
    history: collections.deque[EngineEvent] = field(default_factory=collections.deque)
    """History-sync batches still to deliver (after any live mail)."""
    history_due: bool = False
    """Freshly paired: the history sync follows the first connect."""
    reload: bool = False
    """Another node stored mail for this device: read the mailbox again."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None
    lids_told: set[str] = field(default_factory=set)
    """Numbers whose LID this device has been told (whatsmeow asks WhatsApp once, then keeps the pair)."""
