"""The records the storage keeps (plain data, no I/O)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AuditEntry",
    "EventListener",
    "InboundRecord",
    "NewEvent",
    "OutboxItem",
    "QueuedMessage",
    "SessionRecord",
    "StoredEvent",
    "TenantQuotas",
    "TenantRecord",
    "TokenRecord",
]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    tenant: str
    label: str
    created_at: float
    revoked_at: float | None = None
    scopes: tuple[str, ...] = ("tenant",)
    """Scope names as given at creation (``admin``, ``tenant``, ``send``, ``read``), not expanded."""
    sessions: tuple[str, ...] | None = None
    """The session names the token is limited to; None for every session of its tenant."""
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class TenantQuotas:
    """Limits of one tenant. 0 is "no limit"; in a tenant's own limits, None is "the gateway's default"."""

    max_sessions: int | None = None
    max_queued_messages: int | None = None
    max_queued_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class TenantRecord:
    name: str
    created_at: float
    disabled_at: float | None = None
    quotas: TenantQuotas = TenantQuotas()
    """The tenant's own limits; a None field uses the gateway's default."""


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One audited command: who ran it (token id), what, for which tenant and session, when, and how it ended."""

    id: int
    ts: float
    token_id: str | None
    tenant: str | None
    session: str | None
    command: str
    outcome: str
    """``ok``, or the error code the command answered."""
    detail: str | None = None


@dataclass(slots=True)
class SessionRecord:
    id: str
    """Globally unique, never reused; engines know sessions only by this id."""
    tenant: str
    name: str
    status: str
    created_at: float
    updated_at: float
    reason: str | None = None
    me: dict[str, Any] | None = None
    device: dict[str, Any] | None = None
    """What the engine needs to resume the pairing without a scan (engine-specific)."""
    want_running: bool = False


@dataclass(frozen=True, slots=True)
class NewEvent:
    tenant: str
    session: str
    event: str
    data: bytes
    """The event's ``data`` object, already encoded as JSON."""


@dataclass(frozen=True, slots=True)
class StoredEvent:
    tenant: str
    seq: int
    session: str
    event: str
    data: bytes
    ts: float


@dataclass(slots=True)
class OutboxItem:
    message_id: str
    session_id: str
    chat: str
    content: bytes
    """The message's :data:`~zapgate.protocol.content.Content`, encoded as JSON."""
    created_at: float
    reply_to: str | None = None
    idempotency_key: str | None = None
    fingerprint: str | None = None
    status: str = "queued"
    """queued → sent | failed."""
    reason: str | None = None
    wa_timestamp: int | None = None
    position: int = field(default=0, compare=False)
    """Order of acceptance within the store; sends keep this order per chat."""
    extra: bytes | None = None
    """What else the send needs (mentions, forwarded flag, the target of a reaction…), encoded as JSON."""
    media_id: str | None = field(default=None, compare=False)
    """The media file the message sends, if any (kept while the message is queued; written, not read back)."""

    @property
    def queued_size(self) -> int:
        """The bytes it counts for in its tenant's queue: what :data:`~.tenants.QUEUED_SIZE` computes in SQL."""
        return len(self.content) + len(self.extra or b"")


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message waiting in a session's queue, without its content (which stays in the database until sent)."""

    message_id: str
    chat: str
    position: int


@dataclass(frozen=True, slots=True)
class InboundRecord:
    """A message the session received: enough to answer, react to or mark it read later."""

    message_id: str
    chat: str | None
    sender: str | None
    kind: str | None


EventListener = Callable[[Sequence[StoredEvent]], None]
