"""The frames around the commands: ``hello``, ``auth``, ``ready``, ``reply``, ``event``, ``error``, and the
WebSocket close codes (pure, no I/O)."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import msgspec

from .base import Scope, Seq, _Frame
from .subscriptions import EventPatterns, SessionNames

__all__ = [
    "PROTOCOL_VERSION",
    "Auth",
    "CloseCode",
    "ErrorBody",
    "ErrorFrame",
    "Event",
    "Hello",
    "Ready",
    "Reply",
    "ServerFrame",
]

PROTOCOL_VERSION = 1


class CloseCode(enum.IntEnum):
    """WebSocket close codes of ``/v1/ws`` (docs/protocol.md, "Close codes"). The SDK reads the same ones."""

    NORMAL = 1000
    GOING_AWAY = 1001
    INVALID_UTF8 = 1007
    """A text frame that is not valid UTF-8."""
    POLICY_VIOLATION = 1008
    """Pings (or pongs) beyond the connection's rate."""
    TOO_BIG = 1009
    SERVER_ERROR = 1011
    RESTARTING = 1012
    BAD_AUTH_FRAME = 4400
    """The ``auth`` frame itself is malformed (a field has the wrong type): fix the client; the token may be fine."""
    UNAUTHORIZED = 4401
    """Bad or revoked token, or another frame before ``auth``: fix the token, do not retry in a loop."""
    AUTH_TIMEOUT = 4408
    TOO_MANY_CONNECTIONS = 4409
    """The token already has ``max_connections_per_token`` open connections."""
    SLOW_CONSUMER = 4429
    """Replies overflowed the send buffer, or the client took no frame for ``send_timeout_s`` while some waited."""


class Auth(_Frame, tag="auth"):
    """First frame of a connection: the token, optionally the last ``seq`` seen (resume), and optionally a
    subscription (the fields of ``subscribe``) in force from the first event on, replay included."""

    token: Annotated[str, msgspec.Meta(min_length=1, max_length=512)]
    resume_from: Seq | None = None
    sessions: SessionNames | None = None
    events: EventPatterns | None = None


class _ServerFrame(msgspec.Struct, tag_field="type", omit_defaults=True, kw_only=True):
    pass


class Hello(_ServerFrame, tag="hello"):
    server: str
    auth: Literal["required", "accepted"]
    auth_timeout_s: float
    max_frame_bytes: int
    """The largest frame the client may send; the server's own frames can be larger (up to about 1 MiB)."""
    protocol: int


class Ready(_ServerFrame, tag="ready"):
    tenant: str
    last_seq: int
    resume: Literal["none", "ok", "gap"]
    engine: str
    replayed: int
    scopes: list[Scope] = msgspec.field(default_factory=list)
    """What the token may do, its scopes expanded (``tenant`` brings ``send`` and ``read``): a client such as the
    dashboard shows only what the token may use."""
    sessions: list[str] | None = None
    """The sessions the token is limited to; absent for every session of the tenant."""


class ErrorBody(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    retry_after: float | None = None
    """Seconds to wait before sending the command again (``rate_limited`` only)."""
    quota: str | None = None
    """The quota that would be passed (``quota_exceeded`` only): ``max_sessions``, ``max_queued_messages`` or
    ``max_queued_bytes``."""
    limit: int | None = None
    """The tenant's limit for that quota (``quota_exceeded`` only)."""


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
    retry_after: float | None = None


ServerFrame = Hello | Ready | Reply | Event | ErrorFrame
