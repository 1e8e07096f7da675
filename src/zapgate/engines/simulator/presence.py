"""Presence in the simulated WhatsApp: who is online, who is typing to whom, and who gets to know.

Like WhatsApp, a device learns a contact's presence, and sees the contact typing, only after it subscribed to
that contact (``presence.subscribe``), and only while it is online: presence is never stored for later. A
subscription is answered at once with the contact's current presence. The echo contact is always online and
types before it answers. Subscriptions live in memory while the simulator runs (the real engine renews its own
at every reconnect, so both keep them across a network drop).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Protocol

from ..base import Availability, ChatState, EngineEvent, PresenceIn

__all__ = ["SimPresence"]


class _Device(Protocol):
    session_id: str
    online: bool
    phone: str | None


def _jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


class SimPresence:
    """The presence side of the simulated server (see the module documentation)."""

    def __init__(
        self,
        *,
        devices_of: Callable[[str], Iterable[_Device]],
        device: Callable[[str], _Device | None],
        emit: Callable[[_Device, EngineEvent], None],
        always_online: Callable[[str], bool],
    ) -> None:
        """``devices_of(phone)``: the devices linked to an account; ``device(session_id)``: one device, if known;
        ``emit``: hand an event to a device's pump; ``always_online(phone)``: an account that never goes offline."""
        self._devices_of = devices_of
        self._device = device
        self._emit = emit
        self._always_online = always_online
        self._subscribed: dict[str, set[str]] = {}  # session id -> phones it subscribed to
        self._status: dict[str, tuple[Availability, int | None]] = {}  # phone -> (state, last seen)

    def chat_state(self, sender: str, recipient: str, state: ChatState) -> None:
        """``sender`` is typing (or recording, or stopped) in its chat with ``recipient``."""
        event = PresenceIn(chat=_jid(sender), sender=_jid(sender), state=state)
        for device in self._devices_of(recipient):
            self._tell(device, sender, event)

    def set(self, phone: str, state: Availability) -> None:
        """The account ``phone`` goes online or offline; every device subscribed to it hears of it."""
        last_seen = int(time.time()) if state == "unavailable" else None
        self._status[phone] = (state, last_seen)
        event = PresenceIn(chat=_jid(phone), sender=_jid(phone), state=state, last_seen=last_seen)
        for session_id, phones in self._subscribed.items():
            device = self._device(session_id) if phone in phones else None
            if device is not None:
                self._tell(device, phone, event)

    def subscribe(self, device: _Device, phone: str) -> None:
        """``device`` subscribes to ``phone``'s presence and is told its current one."""
        self._subscribed.setdefault(device.session_id, set()).add(phone)
        current: tuple[Availability, int | None] = ("available", None)
        if not self._always_online(phone):
            current = self._status.get(phone, ("unavailable", None))
        state, last_seen = current
        self._tell(device, phone, PresenceIn(chat=_jid(phone), sender=_jid(phone), state=state, last_seen=last_seen))

    def forget(self, session_id: str) -> None:
        """The device is gone (logged out): its subscriptions end."""
        self._subscribed.pop(session_id, None)

    def _tell(self, device: _Device, about: str, event: PresenceIn) -> None:
        if device.online and about in self._subscribed.get(device.session_id, ()):
            self._emit(device, event)
