"""A database written with an earlier schema, opened by the current code: what a migration must keep."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from zapgate.storage import Storage, open_storage
from zapgate.storage.by_url import database_for
from zapgate.storage.schema import MIGRATIONS

__all__ = ["storage_written_before"]


async def storage_written_before(
    storage_url: str, applied: int, write: Callable[[Any], tuple[None, list[object]]]
) -> Storage:
    """The database at ``storage_url`` laid out by the first ``applied`` migrations, with ``write`` run in one
    transaction of it, then opened (and so migrated) by the current code; the caller closes what is returned."""
    old = database_for(storage_url, migrations=MIGRATIONS[:applied], name="zapgate-db", synchronous="normal")
    await old.open()
    try:
        await old.write(write)
    finally:
        await old.close()
    storage = open_storage(storage_url, synchronous="normal")
    await storage.open()
    return storage
