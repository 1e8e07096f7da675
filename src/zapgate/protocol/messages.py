"""Messages: sending, read receipts, and the events that report both directions."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .base import Command, IdempotencyKey, MessageId, Recipient, Scope, SessionName, command, event

__all__ = [
    "MAX_TEXT_CHARS",
    "MessageRead",
    "MessageReadResult",
    "MessageReceivedData",
    "MessageSend",
    "MessageStatusData",
    "SendResult",
]

MAX_TEXT_CHARS = 65536
"""WhatsApp's own limit for the text of a message."""

Text = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT_CHARS)]


class SendResult(msgspec.Struct, omit_defaults=True, kw_only=True):
    message_id: str
    """The WhatsApp message id, chosen when the message was accepted and kept across retries."""
    chat: str
    """The chat the message goes to, as a JID."""
    status: Literal["sent", "queued"]
    timestamp: int | None = None
    """WhatsApp's timestamp, with ``sent``."""


class MessageReadResult(msgspec.Struct, kw_only=True):
    read: int
    """How many of the ids were messages this session received in that chat (the others were ignored)."""


@command(reply=SendResult, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/messages"))
class MessageSend(Command, tag="message.send"):
    """Send a message. Accepted only once stored durably; the reply says ``sent`` (with WhatsApp's timestamp)
    when WhatsApp took it within ``send_wait_s``, else ``queued`` and a ``message.status`` event follows."""

    session: SessionName
    to: Recipient
    text: Text
    reply_to: MessageId | None = None
    """The id of a message to quote."""
    idempotency_key: IdempotencyKey | None = None
    """The same key again returns the first result and sends nothing (kept ``idempotency_ttl_s``)."""


@command(reply=MessageReadResult, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/messages/read"))
class MessageRead(Command, tag="message.read"):
    """Send read receipts for messages received in ``chat``."""

    session: SessionName
    chat: Recipient
    message_ids: Annotated[list[MessageId], msgspec.Meta(min_length=1, max_length=256)]


class MessageStatusData(msgspec.Struct, omit_defaults=True, kw_only=True):
    message_id: str
    chat: str
    status: Literal["sent", "delivered", "read", "played", "failed"]
    timestamp: int
    reason: str | None = None
    """Why it failed, with ``failed``."""


class MessageReceivedData(msgspec.Struct, omit_defaults=True, kw_only=True):
    message_id: str
    chat: str
    """The conversation: the contact, or the group."""
    from_: str = msgspec.field(name="from")
    """The author."""
    from_me: bool
    """True for a message the account sent from the phone itself (always present)."""
    text: str
    timestamp: int
    from_lid: str | None = None
    push_name: str | None = None
    reply_to: str | None = None


event("message.status", MessageStatusData, "a message we sent was sent, delivered, read, played, or failed")
event("message.received", MessageReceivedData, "a message arrived in a chat of the session")
