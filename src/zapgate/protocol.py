"""Wire protocol v1: every frame a client and the server exchange on ``/v1/ws`` (pure, no I/O).

Frames are JSON text. Client frames are tagged by ``type``: ``auth`` and the commands. Server frames are
``hello``, ``ready``, ``reply``, ``event`` and ``error``. ``docs/protocol.md`` is the reference for users;
this module is the reference for code, and the two must agree.
"""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal

import msgspec

from .errors import InvalidFrame, InvalidJSON, InvalidRequest, UnknownType

__all__ = [
    "COMMAND_TYPES",
    "PROTOCOL_VERSION",
    "Auth",
    "ClientFrame",
    "Command",
    "ErrorBody",
    "ErrorFrame",
    "Event",
    "EventsFetch",
    "Hello",
    "Me",
    "MessageRead",
    "MessageReceivedData",
    "MessageSend",
    "MessageStatusData",
    "Ping",
    "QrState",
    "Ready",
    "Reply",
    "SendResult",
    "SessionDelete",
    "SessionDeletedData",
    "SessionGet",
    "SessionInfo",
    "SessionList",
    "SessionLogout",
    "SessionPairCodeData",
    "SessionQrData",
    "SessionRestrictedData",
    "SessionStart",
    "SessionStatusData",
    "SessionStop",
    "SimNetwork",
    "SimReceive",
    "SimRestrict",
    "SimScan",
    "SimUnlink",
    "decode_client_frame",
    "decode_server_frame",
    "encode",
]

PROTOCOL_VERSION = 1

SessionName = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="1-64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit",
    ),
]
RequestId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=65536)]
MessageId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
IdempotencyKey = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
Seq = Annotated[int, msgspec.Meta(ge=0)]


class _Frame(msgspec.Struct, tag_field="type", forbid_unknown_fields=True, kw_only=True):
    """Base of client frames: tagged by ``type``, unknown fields rejected."""


# --- client frames -----------------------------------------------------------------------------


class Auth(_Frame, tag="auth"):
    """First frame of a connection: the token, and optionally the last ``seq`` seen (resume)."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    resume_from: Seq | None = None


class _Command(_Frame):
    id: RequestId


class SessionStart(_Command, tag="session.start"):
    session: SessionName
    pair_phone: str | None = None


class SessionList(_Command, tag="session.list"):
    pass


class SessionGet(_Command, tag="session.get"):
    session: SessionName


class SessionStop(_Command, tag="session.stop"):
    session: SessionName


class SessionLogout(_Command, tag="session.logout"):
    session: SessionName


class SessionDelete(_Command, tag="session.delete"):
    session: SessionName


class MessageSend(_Command, tag="message.send"):
    session: SessionName
    to: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    text: Text
    reply_to: MessageId | None = None
    idempotency_key: IdempotencyKey | None = None


class MessageRead(_Command, tag="message.read"):
    session: SessionName
    chat: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    message_ids: Annotated[list[MessageId], msgspec.Meta(min_length=1, max_length=256)]


class EventsFetch(_Command, tag="events.fetch"):
    """Read a range of this tenant's event log: events with ``seq > after``, oldest first."""

    after: Seq
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100


class Ping(_Command, tag="ping"):
    pass


class SimScan(_Command, tag="sim.scan"):
    """Simulator only: a simulated phone with number ``phone`` scans ``qr``."""

    qr: Annotated[str, msgspec.Meta(min_length=1, max_length=1024)]
    phone: str


class SimUnlink(_Command, tag="sim.unlink"):
    """Simulator only: the session's phone removes it from *Linked devices*."""

    session: SessionName


class SimNetwork(_Command, tag="sim.network"):
    """Simulator only: drop (``online: false``) or restore the session's network."""

    session: SessionName
    online: bool


class SimReceive(_Command, tag="sim.receive"):
    """Simulator only: a simulated contact ``from_`` sends ``text`` to the session's number."""

    session: SessionName
    from_: Annotated[str, msgspec.Meta(min_length=1, max_length=128)] = msgspec.field(name="from")
    text: Text
    reply_to: MessageId | None = None


class SimRestrict(_Command, tag="sim.restrict"):
    """Simulator only: WhatsApp restricts the session's sending for ``seconds`` (like a temporary ban)."""

    session: SessionName
    seconds: Annotated[float, msgspec.Meta(gt=0, le=7 * 86400)]
    reason: Annotated[str, msgspec.Meta(pattern=r"^[a-z_]{1,40}$")] = "send_restricted"


Command = (
    SessionStart
    | SessionList
    | SessionGet
    | SessionStop
    | SessionLogout
    | SessionDelete
    | MessageSend
    | MessageRead
    | EventsFetch
    | Ping
    | SimScan
    | SimUnlink
    | SimNetwork
    | SimReceive
    | SimRestrict
)
ClientFrame = Auth | Command

COMMAND_TYPES: frozenset[str] = frozenset(str(cls.__struct_config__.tag) for cls in typing.get_args(Command))
_CLIENT_TYPES = COMMAND_TYPES | {"auth"}


# --- shared payloads -----------------------------------------------------------------------------


class Me(msgspec.Struct, omit_defaults=True):
    """The WhatsApp account a session is linked to."""

    phone: str
    jid: str
    lid: str | None = None
    name: str | None = None


class QrState(msgspec.Struct):
    attempt: int
    max_attempts: int
    expires_at: float


class OutboxState(msgspec.Struct):
    queued: int
    """Messages accepted and not yet handed to WhatsApp."""


class PacingState(msgspec.Struct, omit_defaults=True):
    enabled: bool
    new_contacts_today: int
    new_contacts_per_day: int
    paused_until: float | None = None
    paused_reason: str | None = None


class SessionInfo(msgspec.Struct, omit_defaults=True):
    session: str
    status: str
    paired: bool
    created_at: float
    reason: str | None = None
    me: Me | None = None
    qr: QrState | None = None
    outbox: OutboxState | None = None
    pacing: PacingState | None = None


class SendResult(msgspec.Struct, omit_defaults=True):
    message_id: str
    chat: str
    status: Literal["sent", "queued"]
    timestamp: int | None = None


# --- event payloads ------------------------------------------------------------------------------


class SessionQrData(msgspec.Struct):
    qr: str
    attempt: int
    max_attempts: int
    expires_at: float


class SessionPairCodeData(msgspec.Struct):
    code: str
    expires_at: float


class SessionStatusData(msgspec.Struct, omit_defaults=True):
    status: str
    reason: str | None = None
    me: Me | None = None
    retry_at: float | None = None


class SessionRestrictedData(msgspec.Struct, frozen=True):
    """WhatsApp restricted sending for the session until ``until`` (epoch seconds); sends wait."""

    reason: str
    until: float


class SessionDeletedData(msgspec.Struct, frozen=True):
    """``session.deleted`` carries no payload."""


class MessageStatusData(msgspec.Struct, omit_defaults=True):
    message_id: str
    chat: str
    status: Literal["sent", "delivered", "read", "played", "failed"]
    timestamp: int
    reason: str | None = None


class MessageReceivedData(msgspec.Struct, omit_defaults=True):
    message_id: str
    chat: str
    text: str
    timestamp: int
    from_: str = msgspec.field(name="from")
    from_lid: str | None = None
    from_me: bool = False
    push_name: str | None = None
    reply_to: str | None = None


# --- server frames -------------------------------------------------------------------------------


class _ServerFrame(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    pass


class Hello(_ServerFrame, tag="hello"):
    server: str
    auth: Literal["required", "accepted"]
    auth_timeout_s: float
    max_frame_bytes: int
    protocol: int


class Ready(_ServerFrame, tag="ready"):
    tenant: str
    last_seq: int
    resume: Literal["none", "ok", "gap"]
    engine: str
    replayed: int


class ErrorBody(msgspec.Struct):
    code: str
    message: str


class Reply(_ServerFrame, tag="reply"):
    id: str
    ok: bool
    data: Any = None
    error: ErrorBody | None = None


class Event(_ServerFrame, tag="event"):
    event: str
    seq: int
    session: str
    data: Any
    ts: float


class ErrorFrame(_ServerFrame, tag="error"):
    code: str
    message: str


ServerFrame = Hello | Ready | Reply | Event | ErrorFrame


# --- codecs --------------------------------------------------------------------------------------


class _Envelope(msgspec.Struct):
    """Just enough of a frame to report a precise error for it."""

    type: Any = None
    id: Any = None


_client_decoder = msgspec.json.Decoder(ClientFrame)
_envelope_decoder = msgspec.json.Decoder(_Envelope)
_server_decoder = msgspec.json.Decoder(ServerFrame)
_encoder = msgspec.json.Encoder()


def encode(obj: object) -> bytes:
    """Encode a frame or payload as compact JSON."""
    return _encoder.encode(obj)


def decode_client_frame(data: str | bytes) -> ClientFrame:
    """Decode one client frame, or raise a :class:`~zapgate.errors.ProtocolError` saying what is wrong.

    The error carries the frame's ``id`` when it has a readable one, so the caller can answer it as a reply.
    """
    try:
        frame: ClientFrame = _client_decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise _explain(data, exc) from None
    except msgspec.DecodeError as exc:
        raise InvalidJSON(f"frame is not valid JSON: {exc}") from None
    return frame


def _explain(data: str | bytes, exc: msgspec.ValidationError) -> Exception:
    try:
        envelope = _envelope_decoder.decode(data)
    except msgspec.ValidationError:
        return InvalidFrame("a frame must be a JSON object with a string 'type'")
    request_id = envelope.id if isinstance(envelope.id, str) and envelope.id else None
    kind = envelope.type
    if kind is None:
        return InvalidFrame("frame has no 'type'", request_id)
    if not isinstance(kind, str):
        return InvalidFrame("'type' must be a string", request_id)
    if kind not in _CLIENT_TYPES:
        return UnknownType(f"unknown frame type {kind!r}; commands are: {', '.join(sorted(COMMAND_TYPES))}", request_id)
    return InvalidRequest(f"invalid {kind!r} frame: {exc}", request_id)


def decode_server_frame(data: str | bytes) -> ServerFrame:
    """Decode one server frame (used by the client SDK and tests)."""
    frame: ServerFrame = _server_decoder.decode(data)
    return frame
