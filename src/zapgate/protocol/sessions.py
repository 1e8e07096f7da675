"""Sessions: the commands that create, start, stop and remove them, what they answer, and their events."""

from __future__ import annotations

from typing import Literal

import msgspec

from .base import Command, Scope, SessionName, command, event

__all__ = [
    "Me",
    "OutboxState",
    "PacingState",
    "QrState",
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
    "Status",
]

Status = Literal["starting", "qr", "connected", "disconnected", "logged_out", "failed", "stopped"]


class Me(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The WhatsApp account a session is linked to."""

    phone: str
    """The account's phone number, digits only."""
    jid: str
    """This linked device's JID, with its device number (``5511…:3@s.whatsapp.net``)."""
    lid: str | None = None
    """The account's hidden-user id (``…@lid``), without a device number."""
    name: str | None = None
    """The account's push name, when known."""


class QrState(msgspec.Struct, kw_only=True):
    attempt: int
    max_attempts: int
    expires_at: float


class OutboxState(msgspec.Struct, kw_only=True):
    queued: int
    """Messages accepted and not yet handed to WhatsApp."""


class PacingState(msgspec.Struct, omit_defaults=True, kw_only=True):
    enabled: bool
    new_contacts_today: int
    new_contacts_per_day: int
    paused_until: float | None = None
    paused_reason: str | None = None


class SessionInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A session as ``session.get`` describes it."""

    session: str
    status: Status
    paired: bool
    created_at: float
    since: float | None = None
    """When the session entered its current status (for a session not running since the gateway started: when
    it was last stored)."""
    reason: str | None = None
    """Why it is in this status (``qr_timeout``, ``network``, ``logged_out``…), when there is a reason."""
    detail: str | None = None
    """A human explanation of ``reason`` (e.g. the network error), when the engine knows one."""
    me: Me | None = None
    qr: QrState | None = None
    outbox: OutboxState | None = None
    pacing: PacingState | None = None


class SessionListResult(msgspec.Struct, kw_only=True):
    sessions: list[SessionInfo]


class SessionDeleteResult(msgspec.Struct, kw_only=True):
    session: str
    deleted: bool


# -- commands


@command(reply=SessionInfo, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/start"))
class SessionStart(Command, tag="session.start"):
    """Create the session if needed and start it: reconnect with its stored keys, or begin a pairing (QR codes,
    and a pairing code when ``pair_phone`` is given). Idempotent."""

    session: SessionName
    pair_phone: str | None = None
    """Pair by phone number: a ``session.pair_code`` event gives the code to type on that phone."""


@command(reply=SessionListResult, scope=Scope.READ, http=("GET", "/v1/sessions"))
class SessionList(Command, tag="session.list"):
    """Every session of the tenant."""


@command(reply=SessionInfo, scope=Scope.READ, http=("GET", "/v1/sessions/{session}"))
class SessionGet(Command, tag="session.get"):
    """One session."""

    session: SessionName


@command(reply=SessionInfo, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/stop"))
class SessionStop(Command, tag="session.stop"):
    """Disconnect the session and keep its pairing; queued messages stay queued. Idempotent."""

    session: SessionName


@command(reply=SessionInfo, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/logout"))
class SessionLogout(Command, tag="session.logout"):
    """Unlink the device from the phone and forget its keys; queued messages fail (``logged_out``)."""

    session: SessionName


@command(reply=SessionDeleteResult, scope=Scope.TENANT, http=("DELETE", "/v1/sessions/{session}"))
class SessionDelete(Command, tag="session.delete"):
    """Log out, fail queued messages (``session_deleted``) and remove everything stored for the session."""

    session: SessionName


# -- events


class SessionStatusData(msgspec.Struct, omit_defaults=True, kw_only=True):
    status: Status
    reason: str | None = None
    detail: str | None = None
    me: Me | None = None
    """The linked account, with ``connected``."""
    retry_at: float | None = None
    """When the engine tries again by itself, if it does."""


class SessionQrData(msgspec.Struct, kw_only=True):
    qr: str
    """WhatsApp's pairing string: render it as a QR code, never log it."""
    attempt: int
    max_attempts: int
    expires_at: float


class SessionPairCodeData(msgspec.Struct, kw_only=True):
    code: str
    """``ABCD-EFGH``: type it on the phone (Linked devices → Link with phone number)."""
    expires_at: float


class SessionRestrictedData(msgspec.Struct, frozen=True, kw_only=True):
    """WhatsApp restricted sending for the session until ``until`` (epoch seconds); sends wait."""

    reason: str
    until: float


class SessionDeletedData(msgspec.Struct, frozen=True):
    """``session.deleted`` carries no payload."""


event("session.status", SessionStatusData, "the session changed status")
event("session.qr", SessionQrData, "a new QR code to show; it replaces the previous one")
event("session.pair_code", SessionPairCodeData, "a pairing code to type on the phone")
event("session.restricted", SessionRestrictedData, "WhatsApp restricts sending until a time; the queue pauses")
event("session.deleted", SessionDeletedData, "the session was deleted")
