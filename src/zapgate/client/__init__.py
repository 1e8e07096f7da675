"""The Python SDK for zapgate: ``async with zapgate.client.connect(url, token) as client:``.

.. code-block:: python

    import zapgate.client
    from zapgate.client import MessageReceived

    async with zapgate.client.connect("ws://127.0.0.1:8787/v1/ws", token) as client:
        await client.start_session("main")
        async for event in client.events():
            match event:
                case MessageReceived(session=session, data=msg) if not msg.from_me and msg.text:
                    await client.send_text(session, msg.chat, msg.text, reply_to=msg.message_id)

Typed methods for every command, typed events, the server's errors as the same exception classes
(:mod:`zapgate.errors`), automatic reconnection with resume, file uploads and downloads over HTTP.
``docs/client.md`` is the guide. This package imports only :mod:`zapgate.protocol`, :mod:`zapgate.errors`,
:mod:`zapgate.backoff`, ``msgspec`` and ``websockets`` (and ``httpx`` when a file is first transferred): never
the server stack.

Errors the client adds to the :mod:`zapgate.errors` tree (client side only, never on the wire)::

    ConnectionClosed                   connection_closed
    └── GatewayUnreachable             gateway_unreachable
    RequestTimeout (also TimeoutError) timeout
"""

from __future__ import annotations

from ..errors import ConnectionClosed, ZapgateError
from ..protocol import (
    ChatInfo,
    ContactIdentity,
    ContactInfoResult,
    GroupCreated,
    GroupInfo,
    GroupMember,
    HistoryMessage,
    Me,
    MediaInfo,
    NumberCheck,
    ParticipantResult,
    SendResult,
    SessionInfo,
    Subscription,
    WebhookAttempt,
    WebhookCreated,
    WebhookDeadLetter,
    WebhookInfo,
    WebhookSecretRotated,
    WebhookTestResult,
)
from ..protocol.content import (
    Audio,
    ContactCard,
    Contacts,
    Content,
    Document,
    Edit,
    Image,
    LinkPreview,
    Location,
    Media,
    Poll,
    Reaction,
    Revoke,
    Sticker,
    Text,
    Unsupported,
    Video,
    Vote,
)
from .api import Client, connect
from .connection import DEFAULT_URL, Connection, GatewayUnreachable, RequestTimeout
from .events import (
    ChatUpdated,
    Event,
    EventGap,
    EventPage,
    GroupJoined,
    GroupParticipantsChanged,
    GroupUpdated,
    HistorySynced,
    MediaFailed,
    MediaReady,
    MessageEdited,
    MessageReaction,
    MessageReceived,
    MessageRevoked,
    MessageStatus,
    PollVote,
    Presence,
    SessionDeleted,
    SessionPairCode,
    SessionQr,
    SessionRestricted,
    SessionStatus,
    StatusReceived,
    UnknownEvent,
    WebhookDisabled,
    event_to_json,
)

__all__ = [
    "DEFAULT_URL",
    "Audio",
    "ChatInfo",
    "ChatUpdated",
    "Client",
    "Connection",
    "ConnectionClosed",
    "ContactCard",
    "ContactIdentity",
    "ContactInfoResult",
    "Contacts",
    "Content",
    "Document",
    "Edit",
    "Event",
    "EventGap",
    "EventPage",
    "GatewayUnreachable",
    "GroupCreated",
    "GroupInfo",
    "GroupJoined",
    "GroupMember",
    "GroupParticipantsChanged",
    "GroupUpdated",
    "HistoryMessage",
    "HistorySynced",
    "Image",
    "LinkPreview",
    "Location",
    "Me",
    "Media",
    "MediaFailed",
    "MediaInfo",
    "MediaReady",
    "MessageEdited",
    "MessageReaction",
    "MessageReceived",
    "MessageRevoked",
    "MessageStatus",
    "NumberCheck",
    "ParticipantResult",
    "Poll",
    "PollVote",
    "Presence",
    "Reaction",
    "RequestTimeout",
    "Revoke",
    "SendResult",
    "SessionDeleted",
    "SessionInfo",
    "SessionPairCode",
    "SessionQr",
    "SessionRestricted",
    "SessionStatus",
    "StatusReceived",
    "Sticker",
    "Subscription",
    "Text",
    "UnknownEvent",
    "Unsupported",
    "Video",
    "Vote",
    "WebhookAttempt",
    "WebhookCreated",
    "WebhookDeadLetter",
    "WebhookDisabled",
    "WebhookInfo",
    "WebhookSecretRotated",
    "WebhookTestResult",
    "ZapgateError",
    "connect",
    "event_to_json",
]
