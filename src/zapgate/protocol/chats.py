"""Chats and message history: the session's chat list, reading a whole chat, archive / pin / mute, the stored
messages of a chat, and the progress of WhatsApp's history sync (pure).

Everything here is read from what the gateway stored (live messages, sent messages, and the history WhatsApp
sends after pairing); nothing asks WhatsApp, so it also works while the session is offline. The commands that
change a chat (``chat.mark_read``, ``chat.archive`` …) tell WhatsApp too and need a connected session.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from .base import Command, MessageId, Recipient, Scope, SessionName, command, event
from .content import Content

__all__ = [
    "CHAT_LIST_MAX",
    "HISTORY_MAX",
    "ChatArchive",
    "ChatInfo",
    "ChatList",
    "ChatListResult",
    "ChatMarkRead",
    "ChatMute",
    "ChatPin",
    "ChatReadResult",
    "ChatUnarchive",
    "ChatUnmute",
    "ChatUnpin",
    "ChatUpdatedData",
    "HistoryMessage",
    "HistorySyncedData",
    "LastMessage",
    "MessageHistory",
    "MessageHistoryResult",
]

CHAT_LIST_MAX = 500
"""Chats per ``chat.list`` page at most."""
HISTORY_MAX = 500
"""Messages per ``message.history`` page at most."""


class LastMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    message_id: str
    from_me: bool
    kind: str
    timestamp: int
    from_: str | None = msgspec.field(default=None, name="from")
    """The author, for a received message."""
    text: str | None = None
    """The text a person reads first (a text, a caption …), when there is one."""


class ChatInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    chat: str
    """The chat's JID: the contact or the group."""
    unread: int
    """Received messages not read yet (``chat.mark_read`` reads them all)."""
    archived: bool
    pinned: bool
    muted: bool
    timestamp: int
    """The last message's time (unix seconds; 0 when the chat has no stored message)."""
    name: str | None = None
    """The contact's push name (or the name WhatsApp's history gave the chat)."""
    muted_until: int | None = None
    """With ``muted``: until when (unix seconds); absent while muted until unmuted."""
    last_message: LastMessage | None = None


class ChatListResult(msgspec.Struct, kw_only=True):
    chats: list[ChatInfo]
    """Most recent first."""
    more: bool
    """More chats follow: ask again with ``before`` set to the last chat of this page."""


class ChatReadResult(msgspec.Struct, kw_only=True):
    read: int
    """How many unread received messages got read receipts."""


class HistoryMessage(msgspec.Struct, omit_defaults=True, kw_only=True):
    message_id: str
    chat: str
    from_me: bool
    timestamp: int
    kind: str
    content: Content
    from_: str | None = msgspec.field(default=None, name="from")
    """The author (for a message the session sent, the session's own number when known)."""
    from_lid: str | None = None
    push_name: str | None = None
    text: str | None = None
    reply_to: str | None = None
    history: bool = False
    """The message came with WhatsApp's history sync (it was not seen live by the gateway)."""
    unread: bool = False
    """A received message not read yet."""


class MessageHistoryResult(msgspec.Struct, kw_only=True):
    messages: list[HistoryMessage]
    """Newest first."""
    more: bool
    """Older messages follow: ask again with ``before`` set to the last message id of this page."""


Limit = Annotated[int, msgspec.Meta(ge=1, le=CHAT_LIST_MAX)]
HistoryLimit = Annotated[int, msgspec.Meta(ge=1, le=HISTORY_MAX)]
Until = Annotated[int, msgspec.Meta(ge=1, description="unix seconds")]


@command(reply=ChatListResult, scope=Scope.READ, http=("GET", "/v1/sessions/{session}/chats"))
class ChatList(Command, tag="chat.list"):
    """The session's chats, most recent first, each with its last message, unread count and archived / pinned /
    muted settings, from what the gateway stored (live and history-synced messages)."""

    session: SessionName
    limit: Limit = 50
    before: Recipient | None = None
    """The last chat of the previous page: list the chats after it."""
    archived: bool | None = None
    """Only archived chats (true) or only the others (false); both when absent."""


@command(reply=ChatReadResult, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/chats/read"))
class ChatMarkRead(Command, tag="chat.mark_read"):
    """Read a whole chat: send read receipts for every unread message received in it, and set its unread count
    to 0."""

    session: SessionName
    chat: Recipient


class _ChatCommand(Command):
    session: SessionName
    chat: Recipient


@command(reply=ChatInfo, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/chats/archive"))
class ChatArchive(_ChatCommand, tag="chat.archive"):
    """Archive a chat (on the phone and every linked device too)."""


@command(reply=ChatInfo, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/chats/unarchive"))
class ChatUnarchive(_ChatCommand, tag="chat.unarchive"):
    """Take a chat out of the archive."""


@command(reply=ChatInfo, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/chats/pin"))
class ChatPin(_ChatCommand, tag="chat.pin"):
    """Pin a chat to the top of the chat list (WhatsApp allows 3 pinned chats)."""


@command(reply=ChatInfo, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/chats/unpin"))
class ChatUnpin(_ChatCommand, tag="chat.unpin"):
    """Unpin a chat."""


@command(reply=ChatInfo, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/chats/mute"))
class ChatMute(_ChatCommand, tag="chat.mute"):
    """Mute a chat's notifications, until ``until`` (unix seconds) or until unmuted."""

    until: Until | None = None


@command(reply=ChatInfo, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/chats/unmute"))
class ChatUnmute(_ChatCommand, tag="chat.unmute"):
    """Unmute a chat."""


@command(reply=MessageHistoryResult, scope=Scope.READ, http=("GET", "/v1/sessions/{session}/history"))
class MessageHistory(Command, tag="message.history"):
    """The messages of a chat the gateway stored (sent and received, live and from WhatsApp's history sync),
    newest first."""

    session: SessionName
    chat: Recipient
    before: MessageId | None = None
    """The last message id of the previous page: only older messages."""
    limit: HistoryLimit = 50


class ChatUpdatedData(ChatInfo, omit_defaults=True, kw_only=True):
    """The chat as it is now, after its archived / pinned / muted settings changed (by a command, or on the
    phone or another linked device)."""


class HistorySyncedData(msgspec.Struct, omit_defaults=True, kw_only=True):
    messages: int
    """Messages of this batch stored (those stored before, live or by an earlier batch, are not counted)."""
    chats: int
    """Chats this batch named."""
    total_messages: int
    """Messages stored by the history sync of this session so far (since the gateway started)."""
    final: bool
    """WhatsApp sent the last batch of this sync."""
    progress: int | None = None
    """WhatsApp's progress of the sync (0 to 100), when it says."""


event("chat.updated", ChatUpdatedData, "a chat was archived, pinned or muted (or un-), here or on the phone")
event(
    "history.synced",
    HistorySyncedData,
    "a batch of WhatsApp's history sync was stored (its messages are in message.history, not sent as events)",
)
