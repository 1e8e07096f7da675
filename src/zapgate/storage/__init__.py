"""Durable state: the gateway's :class:`Storage` over a :class:`Database` chosen by URL.

==================  ===========================================================================
``sqlite:///path``  SQLite, embedded, zero setup (the default: ``<data_dir>/zapgate.db``)
``postgresql://…``  PostgreSQL, shared by several gateway nodes (``docs/scaling.md``)
==================  ===========================================================================

Every operation is written once, in portable SQL, and runs on both (:mod:`.database`); the storage contract
tests run the same bodies against each.
"""

from __future__ import annotations

from pathlib import Path

from .base import (
    AuditEntry,
    EventListener,
    InboundRecord,
    NewEvent,
    OutboxItem,
    QueuedMessage,
    SessionRecord,
    StoredEvent,
    TenantQuotas,
    TenantRecord,
    TokenRecord,
)
from .by_url import database_for, is_postgres_url, redact_url
from .chats import MUTED_FOREVER, ChatRecord, ChatSettings, ChatStore, StoredMessage
from .database import Conn, Database
from .leases import Fence, Lease, LeaseLost, LeaseStore, Located, NodeInfo
from .media import MediaRecord, MediaStore
from .schema import MIGRATIONS
from .sqlite import SqliteDatabase
from .store import InboundRequest, MessageIdTaken, SessionExists, Storage
from .webhooks import AttemptRecord, DeadLetterRecord, WebhookFence, WebhookRecord, WebhookStore

__all__ = [
    "MUTED_FOREVER",
    "AttemptRecord",
    "AuditEntry",
    "ChatRecord",
    "ChatSettings",
    "ChatStore",
    "Conn",
    "Database",
    "DeadLetterRecord",
    "EventListener",
    "Fence",
    "InboundRecord",
    "InboundRequest",
    "Lease",
    "LeaseLost",
    "LeaseStore",
    "Located",
    "MediaRecord",
    "MediaStore",
    "MessageIdTaken",
    "NewEvent",
    "NodeInfo",
    "OutboxItem",
    "QueuedMessage",
    "SessionExists",
    "SessionRecord",
    "SqliteDatabase",
    "Storage",
    "StoredEvent",
    "StoredMessage",
    "TenantQuotas",
    "TenantRecord",
    "TokenRecord",
    "WebhookFence",
    "WebhookRecord",
    "WebhookStore",
    "database_for",
    "is_postgres_url",
    "open_database",
    "open_storage",
    "redact_url",
]

SCHEMES = ("sqlite", "postgresql", "postgres")


def open_database(url: str | Path, *, synchronous: str = "full", lock_hold_limit_s: float | None = None) -> Database:
    """The gateway's database for ``url`` (a ``sqlite:///`` or ``postgresql://`` URL, or a plain file path), with
    its schema (:mod:`.schema`); see :func:`~.by_url.database_for`. Nothing is opened yet; ``await db.open()``
    connects and applies the migrations."""
    return database_for(
        url, migrations=MIGRATIONS, name="zapgate-db", synchronous=synchronous, lock_hold_limit_s=lock_hold_limit_s
    )


def open_storage(url: str | Path, *, synchronous: str = "full", lock_hold_limit_s: float | None = None) -> Storage:
    """:class:`Storage` over :func:`open_database` (not opened yet)."""
    return Storage(open_database(url, synchronous=synchronous, lock_hold_limit_s=lock_hold_limit_s))
