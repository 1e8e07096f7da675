"""The simulated WhatsApp server's side of the messages linked devices send to people.

WhatsApp takes each message on its own; the simulator records every message sent before one of its group commits
by one call of :func:`record_sends` (a batched write, see :meth:`zapgate.storage.database.Database.submit_batched`),
with the outcome each would have had alone: the checks that read the database run once per session, pair or phone
of the batch instead of once per message, and the rows go in with one statement per table.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ...protocol.content import Content
from ...storage.database import Conn
from ..base import EngineEvent
from .devices import Mail
from .records import (
    Delivery,
    connected_here,
    encode_event,
    find_delivery,
    insert_deliveries,
    insert_mail,
    is_blocked,
    linked_devices,
)
from .rules import refusal, target_of

__all__ = ["Recorded", "Replaced", "SendRequest", "mail_each", "record_sends"]


class Replaced(Exception):
    """The device's connection is no longer this node's: WhatsApp would not take anything sent on it."""


class SendRequest(NamedTuple):
    """One message a device sends to a person, with the events it causes once accepted."""

    session_id: str
    connection: tuple[str, int]
    """The (node, lease epoch) of the device connection it is sent on."""
    sender: str
    recipient: str
    message_id: str
    content: Content
    reply_to: str | None
    now: int
    message: EngineEvent
    """What the recipient's devices receive."""
    delivered: EngineEvent
    """The receipt the sender's devices receive (the recipient's phone confirms at once)."""


class Recorded(NamedTuple):
    """What the server did with a send: its ``timestamp`` (an earlier one for a repeated id), the ``mail`` it
    stored (None when nothing is delivered: a repeated id, a refusal, a block) and a ``refused`` code."""

    timestamp: int
    mail: Mail | None
    refused: str | None


Announce = Callable[[Conn, str, list[str]], None]


def record_sends(
    conn: Conn, sends: Sequence[SendRequest], announce: Announce
) -> tuple[list[tuple[bool, Any]], list[Any]]:
    """Inside a write: record ``sends`` in order, each as WhatsApp takes a message alone. A send on a connection
    that is no longer the device's fails with :class:`Replaced`; a repeated id is dropped (its ``attempts``
    counted); a refused one gets its code; one to an account that blocked the sender is accepted and never
    delivered. The others are stored as deliveries, and their message and receipt as mail for every linked device
    of the recipient and of the sender; the other nodes hear of the mail (``announce``)."""
    outcomes: list[tuple[bool, Any]] = []
    here: dict[tuple[str, str, int], bool] = {}
    blocked: dict[tuple[str, str], bool] = {}
    earlier = _accepted_before(conn, sends)
    repeats: list[tuple[str, str]] = []
    accepted: list[Delivery] = []  # not inserted yet
    mailing: list[tuple[int, str, EngineEvent]] = []  # (index of the send, phone, event)
    for index, send in enumerate(sends):
        key = (send.session_id, *send.connection)
        if key not in here:
            here[key] = connected_here(conn, *key)
        if not here[key]:
            outcomes.append((False, Replaced()))
            continue
        timestamp = earlier.get((send.sender, send.message_id))
        if timestamp is not None:  # a repeated id: WhatsApp drops it
            repeats.append((send.sender, send.message_id))
            outcomes.append((True, Recorded(timestamp, None, None)))
            continue
        target_id = target_of(send.content)
        target = None
        if target_id is not None:
            insert_deliveries(conn, accepted)  # the target may be a message of this batch
            accepted = []
            target = find_delivery(conn, target_id)
        refused = refusal(send.content, send.sender, send.recipient, target, send.now)
        if refused is not None:
            outcomes.append((True, Recorded(send.now, None, refused)))
            continue
        pair = (send.sender, send.recipient)
        if pair not in blocked:
            blocked[pair] = is_blocked(conn, send.sender, by=send.recipient)
        if blocked[pair]:
            outcomes.append((True, Recorded(send.now, None, None)))  # accepted, never delivered: no receipt either
            continue
        accepted.append(
            Delivery(
                send.sender,
                send.recipient,
                send.message_id,
                send.content,
                send.reply_to,
                send.now,
                send.connection,
            )
        )
        earlier[(send.sender, send.message_id)] = send.now
        mailing += [(index, send.recipient, send.message), (index, send.sender, send.delivered)]
        outcomes.append((True, Recorded(send.now, [], None)))
    insert_deliveries(conn, accepted)
    if repeats:
        conn.executemany("UPDATE deliveries SET attempts = attempts + 1 WHERE sender = ? AND message_id = ?", repeats)
    if mailing:
        stored = mail_each(conn, [(phone, event) for _, phone, event in mailing], announce)
        for (index, _, _), mail in zip(mailing, stored, strict=True):
            outcomes[index][1].mail.extend(mail)
    return outcomes, []


def _accepted_before(conn: Conn, sends: Sequence[SendRequest]) -> dict[tuple[str, str], int]:
    """(sender, message id) → timestamp of the messages of ``sends`` that the server accepted before."""
    by_sender: dict[str, list[str]] = {}
    for send in sends:
        by_sender.setdefault(send.sender, []).append(send.message_id)
    found: dict[tuple[str, str], int] = {}
    for sender, ids in by_sender.items():
        marks = ",".join("?" * len(ids))
        rows = conn.execute(
            f"SELECT message_id, timestamp FROM deliveries WHERE sender = ? AND message_id IN ({marks})",  # noqa: S608
            (sender, *ids),
        )
        found.update({(sender, str(message_id)): int(timestamp) for message_id, timestamp in rows})
    return found


def mail_each(conn: Conn, items: Sequence[tuple[str, EngineEvent]], announce: Announce) -> list[Mail]:
    """Inside a write: mail each (phone, event) of ``items`` to every device linked to the phone, in order, and
    tell the other nodes (``announce``); the mail stored for each item."""
    devices = {phone: linked_devices(conn, phone) for phone in {phone for phone, _ in items}}
    addressed: list[tuple[int, str, EngineEvent, bytes]] = []
    for index, (phone, event) in enumerate(items):
        if devices[phone]:
            raw = encode_event(event)
            addressed += [(index, session_id, event, raw) for session_id in devices[phone]]
    row_ids = insert_mail(conn, [(session_id, raw) for _, session_id, _, raw in addressed])
    announce(conn, "mail", sorted({session_id for _, session_id, _, _ in addressed}))
    mail: list[Mail] = [[] for _ in items]
    for (index, session_id, event, _), row_id in zip(addressed, row_ids, strict=True):
        mail[index].append((session_id, event, row_id))
    return mail
