"""SQLite: the embedded, zero-setup database of a single gateway (and of the simulator and engine side tables).

WAL mode, so readers never block the writer; ``synchronous=FULL`` (one fsync per group commit) unless the
operator chose ``normal``; temporary files in memory; the schema version in ``PRAGMA user_version``. Why our own
writer thread rather than aiosqlite: a group commit needs many statements in one thread hop
(``docs/decisions.md``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from ..datadir import ensure_private_dir, ensure_private_file
from .database import Database

__all__ = ["SqliteDatabase"]

log = logging.getLogger("zapgate.storage")


BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for a lock another connection holds (``PRAGMA busy_timeout``)."""

INLINE_REQUESTS = 16
"""Groups of at most this many light requests run their statements on the event loop's thread
(:attr:`~.database.Database.inline_requests`). A request costs 40 to 100 µs there (a send's acceptance about 45, the
simulator's record of it about 95; ``bench/findings.md``, round 11), so such a group holds the loop for 1.5 ms at
most."""


class SqliteDatabase(Database):
    """One SQLite file (see :class:`~.database.Database` for reads, writes and group commits)."""

    dialect = "sqlite"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    inline_requests = INLINE_REQUESTS

    def __init__(self, path: Path, *, synchronous: str, migrations: Sequence[str], name: str) -> None:
        super().__init__(name=name, migrations=migrations)
        self.path = path
        self.synchronous = synchronous

    def describe(self) -> str:
        return str(self.path)

    def _connect(self, *, writer: bool) -> sqlite3.Connection:
        if writer:
            # Private from the first byte, whatever the umask: messages, QR codes and keys live here. A file an
            # older zapgate left world-readable is tightened.
            ensure_private_dir(self.path.parent)
            ensure_private_file(self.path)
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.synchronous == 'full' else 'NORMAL'}")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys=ON")
        # The temporary files SQLite would otherwise write in /var/tmp (the statement journal of a multi-row
        # write, a sort without an index) stay in memory: no message content on disk outside the data directory,
        # and no file created, written and deleted per group commit.
        conn.execute("PRAGMA temp_store=MEMORY")
        if writer:
            _migrate(conn, self._migrations, self.path)
            for suffix in ("-wal", "-shm", "-journal"):  # SQLite creates them with the file's mode
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    ensure_private_file(side)
        return conn

    def _begin(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")  # waits up to BUSY_TIMEOUT_MS for another connection's write lock

    def _try_begin(self, conn: sqlite3.Connection) -> bool:
        # On the event loop's thread: a write lock held by another process (a CLI command, an open sqlite3 shell)
        # must not stop the loop, so no wait here; the group then runs in the writer thread, which waits.
        conn.execute("PRAGMA busy_timeout=0")
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False
            raise
        finally:
            conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return True

    def _rollback(self, conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


def _migrate(conn: sqlite3.Connection, migrations: Sequence[str], path: Path) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise RuntimeError(
            f"{path} was written by a newer zapgate (schema {version}, this one knows {len(migrations)})"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        log.info("%s: applying database migration %d", path.name, number)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in script.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version={number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
