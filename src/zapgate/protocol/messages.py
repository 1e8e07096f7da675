"""Messages: sending, read receipts, and the events that report both directions."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .base import Command, IdempotencyKey, MessageId, Recipient, Scope, SessionName, command, event
from .content import MAX_TEXT_CHARS, Content

__all__ = [
    "MAX_MENTIONS",
    "MAX_TEXT_CHARS",
    "MessageEditedData",
    "MessageReactionData",
    "MessageRead",
    "MessageReadResult",
    "MessageReceivedData",
    "MessageRevokedData",
    "MessageSend",
    "MessageStatusData",
    "PollVoteData",
    "SendResult",
    "StatusReceivedData",
]

MAX_MENTIONS = 1024

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
    """Send a message: ``content`` of any kind (``text`` is a shorthand for a text). Accepted only once stored
    durably; the reply says ``sent`` (with WhatsApp's timestamp) when WhatsApp took it within ``send_wait_s``,
    else ``queued`` and a ``message.status`` event follows."""

    session: SessionName
    to: Recipient
    content: Content | None = None
    """What to send; exactly one of ``content`` and ``text``."""
    text: Text | None = None
    """Shorthand for ``content: {"kind": "text", "text": …}``."""
    reply_to: MessageId | None = None
    """The id of a message to quote."""
    mentions: Annotated[list[Recipient], msgspec.Meta(max_length=MAX_MENTIONS)] | None = None
    """People to mention (phone numbers or JIDs; in a group, ``"all"`` mentions every member). Mentions
    written in the text as ``@5511…`` are found by themselves."""
    forwarded: bool = False
    """Show the message as forwarded."""
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
    chat_lid: str | None = None
    """The chat's hidden-user id (``…@lid``), for a contact whose LID is known."""


class _Incoming(msgspec.Struct, omit_defaults=True, kw_only=True):
    """What every event about a message from a chat carries."""

    message_id: str
    chat: str
    """The conversation: the contact, or the group."""
    from_: str = msgspec.field(name="from")
    """The author."""
    from_me: bool
    """True for a message the account sent from the phone itself (always present)."""
    timestamp: int
    from_lid: str | None = None
    """The author's hidden-user id (``…@lid``), when known. ``from`` is the phone-number JID whenever the number is
    known, else the LID too (the author hides their number and was never seen with it)."""
    chat_lid: str | None = None
    """For a one-to-one chat: the contact's hidden-user id, when known (``chat`` follows the same rule as
    ``from``). Absent for groups."""
    push_name: str | None = None


class MessageReceivedData(_Incoming, omit_defaults=True, kw_only=True):
    kind: str
    """The content's kind (``text``, ``image``, … ``unsupported``)."""
    content: Content
    text: str | None = None
    """The text a person reads first (a text, a caption, a poll question), when there is one."""
    reply_to: str | None = None
    """The id of the message this one quotes."""
    mentions: list[str] | None = None
    forwarded: bool = False
    view_once: bool = False
    ephemeral: bool = False
    """Sent in a chat with disappearing messages."""


class MessageReactionData(_Incoming, omit_defaults=True, kw_only=True):
    """``message_id`` is the message reacted to; an empty ``emoji`` removes the author's reaction."""

    emoji: str


class MessageEditedData(_Incoming, omit_defaults=True, kw_only=True):
    """``message_id`` is the edited message; ``content`` its new text."""

    content: Content


class MessageRevokedData(_Incoming, omit_defaults=True, kw_only=True):
    """``message_id`` was deleted for everyone by its author (or a group admin)."""


class PollVoteData(_Incoming, omit_defaults=True, kw_only=True):
    """``message_id`` is the poll; ``options`` the voter's current choice (empty: vote withdrawn)."""

    options: list[str]


class StatusReceivedData(_Incoming, omit_defaults=True, kw_only=True):
    """A contact posted a status (a story): it is not a chat message and cannot be answered in a chat."""

    kind: str
    content: Content
    text: str | None = None


event("message.status", MessageStatusData, "a message we sent was sent, delivered, read, played, or failed")
event("message.received", MessageReceivedData, "a message arrived in a chat of the session")
event("message.reaction", MessageReactionData, "someone reacted to a message (or removed a reaction)")
event("message.edited", MessageEditedData, "a message was edited by its author")
event("message.revoked", MessageRevokedData, "a message was deleted for everyone")
event("poll.vote", PollVoteData, "someone voted in a poll")
event("status.received", StatusReceivedData, "a contact posted a status")
