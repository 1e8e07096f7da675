"""Wire protocol v1: every frame a client and the server exchange, on ``/v1/ws`` and through REST (pure, no I/O).

Client frames are JSON objects tagged by ``type``: ``auth`` and the commands. Server frames are ``hello``,
``ready``, ``reply``, ``event`` and ``error``. ``docs/protocol.md`` is the reference for users; this package
is the reference for code, and the two must agree (``tests/test_docs.py``).

=================  ==============================================================
``base``           field types, :class:`Scope`, the ``COMMANDS`` and ``EVENTS`` registries
``frames``         hello, auth, ready, reply, event, error frames; close codes
``sessions``       session commands, session info and session events
``content``        the content union: what a message says, sent or received
``messages``       sending, read receipts, message events
``media``          media files: info, retry, media.ready / media.failed
``presence``       typing and online status, both ways
``chats``          the chat list, archive / pin / mute, message history, history sync
``events``         reading the event log; ping
``subscriptions``  which events a client wants: ``subscribe`` and the filter it resolves to
``sim``            simulator-only commands
``codec``          encode / decode with precise errors
=================  ==============================================================
"""

from __future__ import annotations

from .base import COMMANDS, EVENTS, Command, CommandSpec, Empty, EventSpec, Scope
from .chats import (
    ChatArchive,
    ChatInfo,
    ChatList,
    ChatListResult,
    ChatMarkRead,
    ChatMute,
    ChatPin,
    ChatReadResult,
    ChatUnarchive,
    ChatUnmute,
    ChatUnpin,
    ChatUpdatedData,
    HistoryMessage,
    HistorySyncedData,
    LastMessage,
    MessageHistory,
    MessageHistoryResult,
)
from .codec import COMMAND_TYPES, ClientFrame, decode_client_frame, decode_server_frame, encode
from .content import Content
from .events import EVENTS_FETCH_MAX_BYTES, EventsFetch, EventsPage, Ping, Pong
from .frames import PROTOCOL_VERSION, Auth, CloseCode, ErrorBody, ErrorFrame, Event, Hello, Ready, Reply, ServerFrame
from .media import MediaFailedData, MediaGet, MediaInfo, MediaReadyData, MediaRetry
from .messages import (
    MAX_TEXT_CHARS,
    MessageEditedData,
    MessageReactionData,
    MessageRead,
    MessageReadResult,
    MessageReceivedData,
    MessageRevokedData,
    MessageSend,
    MessageStatusData,
    PollVoteData,
    SendResult,
    StatusReceivedData,
)
from .presence import ChatPresence, PresenceData, PresenceSet, PresenceSubscribe
from .sessions import (
    Me,
    OutboxState,
    PacingState,
    QrState,
    SessionDelete,
    SessionDeletedData,
    SessionDeleteResult,
    SessionGet,
    SessionInfo,
    SessionList,
    SessionListResult,
    SessionLogout,
    SessionPairCodeData,
    SessionQrData,
    SessionRestrictedData,
    SessionStart,
    SessionStatusData,
    SessionStop,
)
from .sim import (
    SimMediaFail,
    SimMediaFailResult,
    SimNetwork,
    SimReceive,
    SimReceiveResult,
    SimRestrict,
    SimRestrictResult,
    SimScan,
    SimScanResult,
    SimUnlink,
)
from .subscriptions import (
    EVERYTHING,
    MAX_FILTER_EVENTS,
    MAX_FILTER_SESSIONS,
    EventFilter,
    Subscribe,
    Subscription,
    event_filter,
)

__all__ = [
    "COMMANDS",
    "COMMAND_TYPES",
    "EVENTS",
    "EVENTS_FETCH_MAX_BYTES",
    "EVERYTHING",
    "MAX_FILTER_EVENTS",
    "MAX_FILTER_SESSIONS",
    "MAX_TEXT_CHARS",
    "PROTOCOL_VERSION",
    "Auth",
    "ChatArchive",
    "ChatInfo",
    "ChatList",
    "ChatListResult",
    "ChatMarkRead",
    "ChatMute",
    "ChatPin",
    "ChatPresence",
    "ChatReadResult",
    "ChatUnarchive",
    "ChatUnmute",
    "ChatUnpin",
    "ChatUpdatedData",
    "ClientFrame",
    "CloseCode",
    "Command",
    "CommandSpec",
    "Content",
    "Empty",
    "ErrorBody",
    "ErrorFrame",
    "Event",
    "EventFilter",
    "EventSpec",
    "EventsFetch",
    "EventsPage",
    "Hello",
    "HistoryMessage",
    "HistorySyncedData",
    "LastMessage",
    "Me",
    "MediaFailedData",
    "MediaGet",
    "MediaInfo",
    "MediaReadyData",
    "MediaRetry",
    "MessageEditedData",
    "MessageHistory",
    "MessageHistoryResult",
    "MessageReactionData",
    "MessageRead",
    "MessageReadResult",
    "MessageReceivedData",
    "MessageRevokedData",
    "MessageSend",
    "MessageStatusData",
    "OutboxState",
    "PacingState",
    "Ping",
    "PollVoteData",
    "Pong",
    "PresenceData",
    "PresenceSet",
    "PresenceSubscribe",
    "QrState",
    "Ready",
    "Reply",
    "Scope",
    "SendResult",
    "ServerFrame",
    "SessionDelete",
    "SessionDeleteResult",
    "SessionDeletedData",
    "SessionGet",
    "SessionInfo",
    "SessionList",
    "SessionListResult",
    "SessionLogout",
    "SessionPairCodeData",
    "SessionQrData",
    "SessionRestrictedData",
    "SessionStart",
    "SessionStatusData",
    "SessionStop",
    "SimMediaFail",
    "SimMediaFailResult",
    "SimNetwork",
    "SimReceive",
    "SimReceiveResult",
    "SimRestrict",
    "SimRestrictResult",
    "SimScan",
    "SimScanResult",
    "SimUnlink",
    "StatusReceivedData",
    "Subscribe",
    "Subscription",
    "decode_client_frame",
    "decode_server_frame",
    "encode",
    "event_filter",
]
