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
    EventListener,
    InboundRecord,
    NewEvent,
    OutboxItem,
    QueuedMessage,
    SessionRecord,
    StoredEvent,
    TokenRecord,
)
from .database import Conn, Database
from .media import MediaRecord, MediaStore
from .schema import migrations_for
from .sqlite import SqliteDatabase
from .store import Storage

__all__ = [
    "Conn",
    "Database",
    "EventListener",
    "InboundRecord",
    "MediaRecord",
    "MediaStore",
    "NewEvent",
    "OutboxItem",
    "QueuedMessage",
    "SessionRecord",
    "SqliteDatabase",
    "Storage",
    "StoredEvent",
    "TokenRecord",
    "open_database",
    "open_storage",
    "redact_url",
]

SCHEMES = ("sqlite", "postgresql", "postgres")


def open_database(url: str | Path, *, synchronous: str = "full") -> Database:
    """The gateway's database for ``url`` (a ``sqlite:///`` or ``postgresql://`` URL, or a plain file path).

    Nothing is opened yet; ``await db.open()`` connects and applies the migrations."""
    text = str(url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return _sqlite(Path(text), synchronous)
    if scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path, as SQLAlchemy spells them
        path = rest[1:] if rest.startswith("/") else rest
        if not path:
            raise ValueError("a sqlite URL needs a path: sqlite:///zapgate-data/zapgate.db")
        return _sqlite(Path(path), synchronous)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresDatabase

        return PostgresDatabase(text, migrations=migrations_for("postgresql"), name="zapgate-db")
    raise ValueError(f"unsupported database URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def _sqlite(path: Path, synchronous: str) -> SqliteDatabase:
    return SqliteDatabase(path, synchronous=synchronous, migrations=migrations_for("sqlite"), name="zapgate-db")


def open_storage(url: str | Path, *, synchronous: str = "full") -> Storage:
    """:class:`Storage` over :func:`open_database` (not opened yet)."""
    return Storage(open_database(url, synchronous=synchronous))


def redact_url(url: str) -> str:
    """``url`` without its password, for logs and messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    credentials, _, host = rest.partition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url
