"""SQLite: the embedded, zero-setup database of a single gateway (and of the simulator and engine side tables).

WAL mode, so readers never block the writer; ``synchronous=FULL`` (one fsync per group commit) unless the
operator chose ``normal``; temporary files in memory; the schema version in ``PRAGMA user_version``. Why our own
writer thread rather than aiosqlite: a group commit needs many statements in one thread hop
(``docs/decisions.md``).

With ``synchronous=NORMAL`` a ``COMMIT`` only writes the WAL (no fsync), so a small inline group commits on the
event loop's thread too (:attr:`~.database.Database.inline_commit`), saving the writer thread's round trip, about
60 µs of CPU per group (``bench/findings.md``, round 12). SQLite would run its automatic checkpoint inside such a
``COMMIT`` (copying the WAL into the database file, with fsyncs); that one is turned off, and the group-commit
loop runs a ``PASSIVE`` checkpoint in the writer thread, between groups, once the WAL holds
:data:`CHECKPOINT_FRAMES` frames: the count SQLite's own checkpoint goes by, read from the WAL index header in the
``-shm`` file (``mxFrame``, https://sqlite.org/walformat.html). Where that file cannot be read, nothing changes:
the ``COMMIT`` stays in the writer thread, with SQLite's automatic checkpoint.
"""

from __future__ import annotations

import itertools
import logging
import os
import sqlite3
import struct
import time
from collections.abc import Sequence
from pathlib import Path

from ..datadir import ensure_private_dir, ensure_private_file
from .database import Database

__all__ = ["SqliteDatabase"]

log = logging.getLogger("zapgate.storage")


BUSY_TIMEOUT_MS = 5000
"""How long a group waits for the write lock another connection holds (a CLI command, an ``sqlite3`` shell), and
a read for a lock (``PRAGMA busy_timeout`` of the reader's connection)."""

_BUSY_PAUSES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
"""The writer thread's waits between two tries to begin a group while another connection holds the write lock
(the last one repeats until :data:`BUSY_TIMEOUT_MS`)."""

INLINE_REQUESTS = 16
"""Groups of at most this many light requests run their statements on the event loop's thread
(:attr:`~.database.Database.inline_requests`). A request costs 40 to 100 µs there (a send's acceptance about 45, the
simulator's record of it about 95; ``bench/findings.md``, round 11), so such a group holds the loop for 1.5 ms at
most."""


CHECKPOINT_FRAMES = 1000
"""With commits on the event loop's thread: a checkpoint runs (in the writer thread) once the WAL holds this many
frames (pages), and, while a reader keeps it from completing, again each time this many more were written. SQLite's
own default (``PRAGMA wal_autocheckpoint``)."""

_MX_FRAME = struct.Struct("=I")
"""``mxFrame`` of the WAL index header: native byte order, at offset 16 of the ``-shm`` file."""
_MX_FRAME_OFFSET = 16


class SqliteDatabase(Database):
    """One SQLite file (see :class:`~.database.Database` for reads, writes and group commits)."""

    dialect = "sqlite"
    now_sql = "((julianday('now') - 2440587.5) * 86400.0)"
    inline_requests = INLINE_REQUESTS

    def __init__(self, path: Path, *, synchronous: str, migrations: Sequence[str], name: str) -> None:
        super().__init__(name=name, migrations=migrations)
        self.path = path
        self.synchronous = synchronous
        self._shm: int | None = None  # the -shm file, read-only, while commits run on the event loop's thread
        self._frames_at_checkpoint = 0  # the WAL's frame count when the last checkpoint ran

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
            # No busy handler on the writer's connection: the one statement that can meet another connection's
            # lock is a group's BEGIN IMMEDIATE, which must not wait on the event loop's thread (:meth:`_try_begin`)
            # and waits in the writer thread (:meth:`_begin`). Turning the handler off and on around every inline
            # BEGIN cost a lone message about 75 µs of the loop's CPU (``bench/findings.md``, round 16).
            conn.execute("PRAGMA busy_timeout=0")
            for suffix in ("-wal", "-shm", "-journal"):  # SQLite creates them with the file's mode
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    ensure_private_file(side)
            if self.synchronous != "full" and self._shm is None:
                self._shm = self._open_shm()
                if self._shm is not None:
                    conn.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints run between groups instead
        return conn

    @property
    def inline_commit(self) -> bool:
        # Exactly while the WAL index can be read: then SQLite's automatic checkpoint is off and ours is on.
        return self._shm is not None

    def _open_shm(self) -> int | None:
        """The WAL index (``-shm``) opened read-only, if its header can be read: else None."""
        try:
            fd = os.open(self.path.with_name(self.path.name + "-shm"), os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            log.info("%s: the WAL index cannot be read; commits stay in the writer thread", self.path.name)
            return None
        if len(os.pread(fd, _MX_FRAME.size, _MX_FRAME_OFFSET)) != _MX_FRAME.size:
            os.close(fd)
            return None
        return fd

    def _wal_frames(self) -> int:
        """How many frames the WAL holds (what a checkpoint would copy), as SQLite's own checkpoint reads it."""
        assert self._shm is not None
        raw = os.pread(self._shm, _MX_FRAME.size, _MX_FRAME_OFFSET)
        return int(_MX_FRAME.unpack(raw)[0]) if len(raw) == _MX_FRAME.size else 0

    def _checkpoint_due(self) -> bool:
        if self._shm is None:
            return False
        frames = self._wal_frames()
        if frames < self._frames_at_checkpoint:  # the WAL started over
            self._frames_at_checkpoint = 0
        return frames - self._frames_at_checkpoint >= CHECKPOINT_FRAMES

    def _checkpoint(self, conn: sqlite3.Connection) -> None:
        # PASSIVE: copies what no reader still needs and waits for nobody. With a reader in the way it stops short;
        # the next one is due after CHECKPOINT_FRAMES more frames.
        self._frames_at_checkpoint = self._wal_frames()
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    def _close_conn(self, conn: sqlite3.Connection) -> None:
        conn.close()
        if conn is self._wconn and self._shm is not None:
            os.close(self._shm)
            self._shm = None

    def _begin(self, conn: sqlite3.Connection) -> None:
        # In the writer thread: waits up to BUSY_TIMEOUT_MS for another connection's write lock.
        deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        for pause in itertools.chain(_BUSY_PAUSES, itertools.repeat(_BUSY_PAUSES[-1])):
            if self._try_begin(conn):
                return
            if time.monotonic() + pause > deadline:
                break
            time.sleep(pause)
        conn.execute("BEGIN IMMEDIATE")  # once more: begins, or raises SQLite's own "database is locked"

    def _try_begin(self, conn: sqlite3.Connection) -> bool:
        # On the event loop's thread: a write lock held by another process (a CLI command, an open sqlite3 shell)
        # must not stop the loop, so no wait here (the writer's connection has no busy handler: see _connect); the
        # group then runs in the writer thread, which waits.
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF == sqlite3.SQLITE_BUSY:
                return False
            raise
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
