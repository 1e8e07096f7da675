"""The channel between the gateway and an engine worker process: typed messages, msgpack, length-prefixed.

The gateway creates a Unix socket pair and hands one end to the worker (its file descriptor number is on
the worker's command line). stdout is never used: neonize prints there. Every frame is a 4-byte big-endian
length followed by one msgpack-encoded :data:`Message`.

Gateway → worker: requests (each with an ``id`` answered by exactly one :class:`Reply`) and :class:`Ping`.
Worker → gateway: :class:`Hello` once, :class:`Pong` per ping, :class:`Reply` per request and
:class:`SessionEvent` whenever something happens to a session (in order per session).
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from typing import Any

import msgspec

from ...protocol.content import Content
from ..base import Availability, ChatState, EngineEvent, GroupChanges, MediaFile

__all__ = [
    "MAX_FRAME_BYTES",
    "PROXY_ENV",
    "Blocklist",
    "Channel",
    "ChannelClosed",
    "ChatPresence",
    "CheckPhones",
    "ContactInfo",
    "Download",
    "GroupRequest",
    "Hello",
    "LogoutSession",
    "MarkRead",
    "Message",
    "OpenSession",
    "Ping",
    "Pong",
    "ProfilePicture",
    "QuoteRef",
    "Reply",
    "Request",
    "Send",
    "SessionEvent",
    "SetBlocked",
    "SetPresence",
    "Shutdown",
    "StopSession",
    "SubscribePresence",
    "TargetRef",
    "WorkerConfig",
]

MAX_FRAME_BYTES = 16 * 1024 * 1024
"""Largest frame either side accepts; a longer one means a corrupt stream and closes the channel."""

_HEADER = struct.Struct(">I")


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a worker needs, passed as JSON on its command line (which any local user can read: secrets,
    such as a proxy's password, travel in the worker's environment instead; see :data:`PROXY_ENV`)."""

    worker_id: int
    data_dir: str
    max_sessions: int
    connect_attempts: int
    connect_backoff_s: float
    failed_retry_s: float
    log_level: str = "info"
    device_name: str = "zapgate"
    connect_timeout_s: float = 90.0
    reconnect_timeout_s: float = 900.0


PROXY_ENV = "ZAPGATE_WA_PROXY"
"""The worker reads the proxy for its connections to WhatsApp from this variable of its environment."""
DEVICE_DATABASE_ENV = "ZAPGATE_WA_DEVICE_DATABASE"
"""With several nodes, the worker reads the PostgreSQL URL of the shared device store from this variable of its
environment (not its command line: the URL may carry a password)."""


class _Msg(msgspec.Struct, tag_field="type", kw_only=True):
    pass


class Hello(_Msg, tag="hello"):
    """The worker is up and neonize is loaded."""

    pid: int
    neonize_version: str


class Ping(_Msg, tag="ping"):
    seq: int


class Pong(_Msg, tag="pong"):
    """Answer to a :class:`Ping`, sent from the worker's event loop, so it proves the loop is responsive."""

    seq: int
    sessions: int
    leaked_threads: int
    """Executor threads stuck in abandoned neonize connects (see docs/engines.md)."""


class QuoteRef(msgspec.Struct, frozen=True, kw_only=True):
    """The message a reply quotes, with WhatsApp's id."""

    message_id: str
    participant: str
    text: str | None = None


class Request(_Msg):
    id: int


class OpenSession(Request, tag="open"):
    session_id: str
    device: dict[str, Any] | None = None
    pair_phone: str | None = None


class StopSession(Request, tag="stop"):
    session_id: str


class LogoutSession(Request, tag="logout"):
    session_id: str
    device: dict[str, Any] | None = None


class TargetRef(msgspec.Struct, frozen=True, kw_only=True):
    """The message a reaction, edit, revoke or vote is about, with WhatsApp's id."""

    message_id: str
    from_me: bool
    participant: str | None = None
    """Its author, when someone else wrote it."""


class Send(Request, tag="send"):
    """Send a message of any kind. A media file is read by the worker from ``media.path`` (the data directory
    is shared): file bytes never travel on this channel."""

    session_id: str
    to: str
    content: Content
    quote: QuoteRef | None = None
    target: TargetRef | None = None
    mentions: list[str] = []
    forwarded: bool = False
    media: MediaFile | None = None


class Download(Request, tag="download"):
    """Download a received file (``media_ref`` of its message) into the file ``into``."""

    session_id: str
    media_ref: dict[str, Any]
    into: str


class ChatPresence(Request, tag="chat_presence"):
    session_id: str
    chat: str
    state: ChatState


class SetPresence(Request, tag="set_presence"):
    session_id: str
    state: Availability


class SubscribePresence(Request, tag="subscribe_presence"):
    session_id: str
    chat: str


class MarkRead(Request, tag="mark_read"):
    session_id: str
    chat: str
    sender: str | None
    message_ids: list[str]


class CheckPhones(Request, tag="check_phones"):
    """``is_on_whatsapp`` for ``phones`` (digits); the reply's ``data`` is a list of :class:`~..base.PhoneCheck`."""

    session_id: str
    phones: list[str]


class ContactInfo(Request, tag="contact_info"):
    """What WhatsApp tells about ``jid``; the reply's ``data`` is a :class:`~..base.ContactProfile`."""

    session_id: str
    jid: str


class ProfilePicture(Request, tag="profile_picture"):
    """Fetch ``jid``'s profile picture into the file ``into``; the reply's ``data`` is its id (None: none)."""

    session_id: str
    jid: str
    into: str


class SetBlocked(Request, tag="set_blocked"):
    """Block or unblock ``jid``; the reply's ``data`` is the blocklist (JIDs) after it."""

    session_id: str
    jid: str
    blocked: bool


class Blocklist(Request, tag="blocklist"):
    """The blocklist; the reply's ``data`` is a list of JIDs."""

    session_id: str


class GroupRequest(Request, tag="group"):
    """A group call (``op``: ``create``, ``list``, ``info``, ``participants``, ``invite_link``, ``join``,
    ``leave``, ``update``) with the fields it needs; the answer travels in :attr:`Reply.data`. A new picture is
    read from ``picture.path``."""

    session_id: str
    op: str
    group: str | None = None
    subject: str | None = None
    participants: list[str] = []
    action: str | None = None
    reset: bool = False
    code: str | None = None
    changes: GroupChanges | None = None
    picture: MediaFile | None = None


class Shutdown(Request, tag="shutdown"):
    """Stop every session (keeping their keys) and exit."""


class Reply(_Msg, tag="reply"):
    id: int
    ok: bool = True
    wa_id: str | None = None
    timestamp: int | None = None
    chat: str | None = None
    """For a send: the chat the message went to, when WhatsApp knows the recipient by another JID."""
    error_code: str | None = None
    error_message: str | None = None
    retryable: bool = False
    data: Any = None
    """The answer of a request that reads something (contacts, the blocklist), as plain data."""


class SessionEvent(_Msg, tag="event"):
    session_id: str
    event: EngineEvent


Message = (
    Hello
    | Ping
    | Pong
    | Reply
    | SessionEvent
    | OpenSession
    | StopSession
    | LogoutSession
    | Send
    | MarkRead
    | Download
    | ChatPresence
    | SetPresence
    | SubscribePresence
    | CheckPhones
    | ContactInfo
    | ProfilePicture
    | SetBlocked
    | Blocklist
    | GroupRequest
    | Shutdown
)

_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Message)


class ChannelClosed(Exception):
    """The other side went away (or sent garbage)."""


class Channel:
    """Framed, typed messages over an asyncio stream pair.

    :meth:`send` writes synchronously into the transport buffer, so messages leave in the order ``send`` was
    called, even from different tasks; :meth:`drain` applies back-pressure.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    @classmethod
    async def over_socket(cls, sock: Any) -> Channel:
        reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_FRAME_BYTES)
        return cls(reader, writer)

    def send(self, message: Message) -> None:
        if self._writer.is_closing():
            raise ChannelClosed("channel closed")
        payload = _encoder.encode(message)
        self._writer.write(_HEADER.pack(len(payload)) + payload)

    async def drain(self) -> None:
        try:
            await self._writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise ChannelClosed(str(exc)) from None

    async def receive(self) -> Message:
        """The next message; raises :class:`ChannelClosed` at end of stream or on a malformed frame."""
        try:
            header = await self._reader.readexactly(_HEADER.size)
            (size,) = _HEADER.unpack(header)
            if size > MAX_FRAME_BYTES:
                raise ChannelClosed(f"frame of {size} bytes exceeds {MAX_FRAME_BYTES}")
            payload = await self._reader.readexactly(size)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ChannelClosed("end of stream") from exc
        try:
            message: Message = _decoder.decode(payload)
        except msgspec.DecodeError as exc:
            raise ChannelClosed(f"malformed frame: {exc}") from None
        return message

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self._writer.wait_closed()
