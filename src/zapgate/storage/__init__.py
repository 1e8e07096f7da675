"""Durable state: the :class:`~zapgate.storage.base.Storage` interface and its implementations."""

from __future__ import annotations

from pathlib import Path

from .base import NewEvent, OutboxItem, SessionRecord, Storage, StoredEvent, TokenRecord

__all__ = ["NewEvent", "OutboxItem", "SessionRecord", "Storage", "StoredEvent", "TokenRecord", "open_storage"]


def open_storage(path: Path, *, synchronous: str = "full") -> Storage:
    """The storage for a data directory's database (SQLite today; chosen by URL once PostgreSQL lands)."""
    from .sqlite import SqliteStorage

    return SqliteStorage(path, synchronous=synchronous)
