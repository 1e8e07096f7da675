"""SQLite keeps its temporary files in memory: a multi-row write's statement journal and a sort without an
index are never written to /var/tmp (where a message's content would otherwise land for a moment, outside the
private data directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from zapgate.storage import open_storage

MEMORY = 2
"""``PRAGMA temp_store``: 0 the build's default, 1 files, 2 memory."""


async def test_the_writer_and_the_reader_keep_temporary_files_in_memory(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'zapgate.db'}", synchronous="full")
    await storage.open()
    try:

        def temp_store(conn: Any) -> int:
            return int(conn.execute("PRAGMA temp_store").fetchone()[0])

        assert await storage.db.read(temp_store) == MEMORY
        assert await storage.db.write(lambda conn: (temp_store(conn), [])) == MEMORY
    finally:
        await storage.close()
