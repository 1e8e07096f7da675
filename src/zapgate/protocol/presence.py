"""Presence: showing the session typing or online, and seeing contacts do the same (pure).

WhatsApp keeps none of it: a ``presence`` event reports what WhatsApp said while the session was online, for
the contacts (and group chats) the session subscribed to with ``presence.subscribe``.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .base import Command, Empty, Recipient, Scope, SessionName, command, event

__all__ = ["ChatPresence", "PresenceData", "PresenceSet", "PresenceSubscribe"]


@command(reply=Empty, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/presence/chat"))
class ChatPresence(Command, tag="chat.presence"):
    """Show the session ``typing`` or ``recording`` (a voice note) in ``chat``, or stop (``paused``). WhatsApp
    clears it by itself after a while and when a message arrives; send it again to keep it shown."""

    session: SessionName
    chat: Recipient
    state: Literal["typing", "recording", "paused"]


@command(reply=Empty, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/presence"))
class PresenceSet(Command, tag="presence.set"):
    """Show the account online (``available``) or offline (``unavailable``) to contacts. The session announces
    ``available`` by itself when it connects; while ``unavailable``, phones may show messages as delivered
    later and keep notifying the account's phone."""

    session: SessionName
    state: Literal["available", "unavailable"]


@command(reply=Empty, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/presence/subscribe"))
class PresenceSubscribe(Command, tag="presence.subscribe"):
    """Ask WhatsApp for the presence of ``chat`` (a contact): ``presence`` events follow while the session is
    online, including typing in that chat. The subscription lasts until the session disconnects; the engine
    renews it when the session reconnects."""

    session: SessionName
    chat: Recipient


class PresenceData(msgspec.Struct, omit_defaults=True, kw_only=True):
    chat: str
    """The chat: the contact, or the group someone is typing in."""
    from_: str = msgspec.field(name="from")
    """Whose presence it is."""
    state: Literal["available", "unavailable", "typing", "recording", "paused"]
    last_seen: int | None = None
    """With ``unavailable``: when the contact was last online (unix seconds), if their privacy settings allow."""
    chat_lid: str | None = None
    """The chat's hidden-user id (``…@lid``), for a contact whose LID is known."""
    from_lid: str | None = None
    """The hidden-user id of the person whose presence it is, when known."""


event("presence", PresenceData, "a contact came online or went offline, or is typing or recording in a chat")
