"""The storage interface and the records it stores.

One implementation ships today, SQLite (``storage/sqlite.py``), embedded and zero-setup. The interface is
the set of operations the gateway needs, each one atomic, so that a PostgreSQL implementation for a
cluster can provide the same guarantees without the callers changing.

Events are appended inside the same transaction as the change they report (a session status, a sent
message, an inbound message), and handed to the event listener only after that transaction commits, in
``seq`` order: a client never sees an event that a crash could take back.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EventListener",
    "NewEvent",
    "OutboxItem",
    "SessionRecord",
    "Storage",
    "StoredEvent",
    "TokenRecord",
]


@dataclass(frozen=True, slots=True)
class TokenRecord:
    id: str
    tenant: str
    label: str
    created_at: float
    revoked_at: float | None = None


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
    text: str
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


EventListener = Callable[[Sequence[StoredEvent]], None]


class Storage(abc.ABC):
    """Durable state of one gateway (or, with a shared database, of a cluster)."""

    @abc.abstractmethod
    async def open(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    def set_event_listener(self, listener: EventListener) -> None:
        """Call ``listener`` with every batch of committed events, in ``seq`` order, on the event loop."""

    # -- tokens

    @abc.abstractmethod
    async def add_token(self, record: TokenRecord, token_hash: bytes) -> None: ...

    @abc.abstractmethod
    async def find_token(self, token_id: str) -> tuple[TokenRecord, bytes] | None:
        """The live (not revoked) token with this id, and its stored hash."""

    @abc.abstractmethod
    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]: ...

    @abc.abstractmethod
    async def revoke_token(self, token_id: str, now: float) -> bool: ...

    @abc.abstractmethod
    async def live_tokens(self, token_ids: Sequence[str]) -> set[str]:
        """Which of ``token_ids`` exist and are not revoked."""

    # -- sessions

    @abc.abstractmethod
    async def list_sessions(self) -> list[SessionRecord]: ...

    @abc.abstractmethod
    async def save_session(self, record: SessionRecord, events: Sequence[NewEvent] = ()) -> list[StoredEvent]:
        """Insert or update the session and append ``events``, atomically."""

    @abc.abstractmethod
    async def delete_session(self, record: SessionRecord, events: Sequence[NewEvent] = ()) -> list[StoredEvent]:
        """Remove the session with its outbox, inbound and contact records; append ``events``."""

    # -- events

    @abc.abstractmethod
    async def append_events(self, events: Sequence[NewEvent]) -> list[StoredEvent]: ...

    @abc.abstractmethod
    async def read_events(self, tenant: str, after: int, limit: int) -> list[StoredEvent]:
        """Events of ``tenant`` with ``seq > after``, oldest first, at most ``limit``."""

    @abc.abstractmethod
    async def event_bounds(self, tenant: str) -> tuple[int, int]:
        """(oldest retained seq, newest seq) of the tenant; (0, 0) when it has none."""

    @abc.abstractmethod
    async def prune(self, now: float, *, event_max_age: float, event_keep: int, record_max_age: float) -> int:
        """Drop events older than ``event_max_age`` beyond the newest ``event_keep`` per tenant, and finished
        outbox and inbound records older than ``record_max_age``. Returns how many events went."""

    # -- outgoing messages

    @abc.abstractmethod
    async def enqueue_message(self, item: OutboxItem) -> tuple[OutboxItem, bool]:
        """Store a message to send. If the item's idempotency key is already known for the session, store
        nothing and return ``(existing, False)``; otherwise return ``(stored, True)``."""

    @abc.abstractmethod
    async def find_message(self, session_id: str, idempotency_key: str) -> OutboxItem | None:
        """The message stored with this idempotency key for the session, if any."""

    @abc.abstractmethod
    async def pending_messages(self, session_id: str) -> list[OutboxItem]:
        """Queued messages of a session in acceptance order."""

    @abc.abstractmethod
    def finish_message(
        self,
        item: OutboxItem,
        events: Sequence[NewEvent],
        *,
        new_contact_at: float | None,
    ) -> asyncio.Future[list[StoredEvent]]:
        """Record the item's final ``status`` (sent or failed) and append ``events``; when
        ``new_contact_at`` is given, also remember its chat as a contact first written to then.

        The write is queued when this is called (not when the future is awaited), so writes queued one after
        the other are applied, and their events published, in that order."""

    @abc.abstractmethod
    async def fail_pending(self, session_id: str, reason: str, make_events: Callable[[OutboxItem], NewEvent]) -> int:
        """Mark every queued message of the session failed with ``reason``, one event each."""

    # -- incoming messages and contacts

    @abc.abstractmethod
    async def record_inbound(
        self, session_id: str, message_id: str, chat: str, events: Sequence[NewEvent], now: float
    ) -> list[StoredEvent] | None:
        """Append ``events`` for an inbound message unless it was recorded before (then return None).
        The chat becomes a known contact."""

    @abc.abstractmethod
    async def known_inbound(self, session_id: str, message_ids: Sequence[str]) -> set[str]:
        """Which of ``message_ids`` the session received (and still remembers: records are pruned)."""

    @abc.abstractmethod
    async def load_contacts(self, session_id: str, since: float) -> tuple[set[str], list[float]]:
        """(every known chat, times of first messages we sent to new contacts since ``since``)."""
