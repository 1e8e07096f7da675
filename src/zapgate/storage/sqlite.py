"""SQLite storage: embedded, zero setup, durable.

The database runs in WAL mode. All writes go through one writer thread that applies them in **group
commits**: every write requested while the previous commit was in flight is applied in the next
transaction (each in its own savepoint, so one failing write does not undo the others), and a single
``COMMIT`` (with ``synchronous=FULL``, one fsync) makes the whole group durable. Reads use a second
connection in a reader thread and see the last committed state.

Why not aiosqlite: it costs one thread hop per statement, while a group commit needs many statements in
one hop; see ``docs/decisions.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from .base import (
    EventListener,
    NewEvent,
    OutboxItem,
    SessionRecord,
    Storage,
    StoredEvent,
    TokenRecord,
)

__all__ = ["SqliteDatabase", "SqliteStorage"]

log = logging.getLogger("zapgate.storage")

T = TypeVar("T")
WriteFn = Callable[[sqlite3.Connection], tuple[T, list[StoredEvent]]]

MAX_GROUP = 2000
"""Most writes applied in one transaction; bounds the latency of a single commit."""

MIGRATIONS: list[str] = [
    # 1: initial schema
    """
    CREATE TABLE tokens (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        hash BLOB NOT NULL UNIQUE,
        label TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        tenant TEXT NOT NULL,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        reason TEXT,
        me TEXT,
        device TEXT,
        want_running INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        UNIQUE (tenant, name)
    );
    CREATE TABLE events (
        tenant TEXT NOT NULL,
        seq INTEGER NOT NULL,
        session TEXT NOT NULL,
        event TEXT NOT NULL,
        data BLOB NOT NULL,
        ts REAL NOT NULL,
        PRIMARY KEY (tenant, seq)
    ) WITHOUT ROWID;
    CREATE TABLE outbox (
        position INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        text TEXT NOT NULL,
        reply_to TEXT,
        idempotency_key TEXT,
        fingerprint TEXT,
        status TEXT NOT NULL,
        reason TEXT,
        wa_timestamp INTEGER,
        created_at REAL NOT NULL,
        finished_at REAL
    );
    CREATE UNIQUE INDEX outbox_idempotency ON outbox (session_id, idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    CREATE INDEX outbox_queued ON outbox (session_id, position) WHERE status = 'queued';
    CREATE TABLE inbound (
        session_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        received_at REAL NOT NULL,
        PRIMARY KEY (session_id, message_id)
    ) WITHOUT ROWID;
    CREATE TABLE contacts (
        session_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        first_seen_at REAL NOT NULL,
        we_wrote_first INTEGER NOT NULL,
        PRIMARY KEY (session_id, chat)
    ) WITHOUT ROWID;
    """,
]


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


def _migrate(conn: sqlite3.Connection, migrations: Sequence[str]) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(migrations):
        raise RuntimeError(
            f"{conn.execute('PRAGMA database_list').fetchone()[2]} was written by a newer zapgate "
            f"(schema {version}, this one knows {len(migrations)})"
        )
    for number, script in enumerate(migrations[version:], start=version + 1):
        log.info("applying database migration %d", number)
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


def _token(row: sqlite3.Row | tuple[Any, ...]) -> TokenRecord:
    return TokenRecord(id=row[0], tenant=row[1], label=row[2], created_at=row[3], revoked_at=row[4])


def _session(row: tuple[Any, ...]) -> SessionRecord:
    return SessionRecord(
        id=row[0],
        tenant=row[1],
        name=row[2],
        status=row[3],
        reason=row[4],
        me=json.loads(row[5]) if row[5] else None,
        device=json.loads(row[6]) if row[6] else None,
        want_running=bool(row[7]),
        created_at=row[8],
        updated_at=row[9],
    )


_OUTBOX_COLUMNS = (
    "message_id, session_id, chat, text, created_at, reply_to, idempotency_key, fingerprint, status, reason, "
    "wa_timestamp, position"
)


def _outbox(row: tuple[Any, ...]) -> OutboxItem:
    return OutboxItem(*row)


class SqliteDatabase:
    """One SQLite file with a writer thread doing group commits and a reader thread.

    ``write(fn)`` runs ``fn(conn)`` in the writer thread inside the next group commit and resolves once that
    commit is durable. ``fn`` returns ``(result, events)``; after the commit, ``on_commit(events)`` runs on
    the event loop for each write in order, before its caller resumes.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str,
        migrations: Sequence[str],
        name: str,
        on_open: Callable[[sqlite3.Connection], None] | None = None,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self._migrations = migrations
        self._on_open = on_open
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-read")
        self._wconn: sqlite3.Connection | None = None
        self._rconn: sqlite3.Connection | None = None
        self._pending: list[tuple[WriteFn[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.on_commit: Callable[[list[StoredEvent]], None] | None = None
        self.on_rollback: Callable[[sqlite3.Connection], None] | None = None
        self._closed = False

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()

        def open_writer() -> None:
            self._wconn = _connect(self.path, self.synchronous)
            _migrate(self._wconn, self._migrations)
            if self._on_open is not None:
                self._on_open(self._wconn)

        await loop.run_in_executor(self._writer, open_writer)

        def open_reader() -> None:
            self._rconn = _connect(self.path, self.synchronous)

        await loop.run_in_executor(self._reader, open_reader)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await self._flusher
        loop = asyncio.get_running_loop()
        for pool, attr in ((self._writer, "_wconn"), (self._reader, "_rconn")):
            conn = getattr(self, attr)
            if conn is not None:
                await loop.run_in_executor(pool, conn.close)
            pool.shutdown(wait=True)

    @property
    def closed(self) -> bool:
        return self._closed

    async def read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise RuntimeError("storage is closed")
        conn = self._rconn
        assert conn is not None, "storage not opened"
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, conn)

    def submit(self, fn: WriteFn[T]) -> asyncio.Future[T]:
        """Queue ``fn`` for the next group commit now; the future resolves once it is durable and its events
        are published. Writes are applied in the order they were submitted."""
        if self._closed:
            raise RuntimeError("storage is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name=f"{self.path.name}-flush")
        return future

    async def write(self, fn: WriteFn[T]) -> T:
        return await self.submit(fn)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                # Let every callback that is ready run first: writes they request join this group, so one
                # commit (and one write of each page they share) serves them all.
                await asyncio.sleep(0)
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                try:
                    outcomes = await loop.run_in_executor(self._writer, self._apply, [fn for fn, _ in group])
                except Exception as exc:  # the COMMIT itself failed: nothing in the group happened
                    log.exception("database commit failed")
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), (ok, value) in zip(group, outcomes, strict=True):
                    if ok:
                        result, events = value
                        if events and self.on_commit is not None:
                            try:
                                self.on_commit(events)
                            except Exception:
                                log.exception("event listener failed")
                        if not future.done():
                            future.set_result(result)
                    elif not future.done():
                        future.set_exception(value)
        finally:
            self._flusher = None

    def _apply(self, fns: list[WriteFn[Any]]) -> list[tuple[bool, Any]]:
        conn = self._wconn
        assert conn is not None
        outcomes: list[tuple[bool, Any]] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            for fn in fns:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, fn(conn)))
                    conn.execute("RELEASE op")
                except Exception as exc:
                    conn.execute("ROLLBACK TO op")
                    conn.execute("RELEASE op")
                    if self.on_rollback is not None:
                        self.on_rollback(conn)
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if self.on_rollback is not None:
                self.on_rollback(conn)
            raise
        return outcomes


class SqliteStorage(Storage):
    def __init__(self, path: Path, *, synchronous: str = "full") -> None:
        self.path = path
        self._db = SqliteDatabase(
            path, synchronous=synchronous, migrations=MIGRATIONS, name="zapgate-db", on_open=self._load_seqs
        )
        # A write that rolls back may have taken sequence numbers: recount from what the database holds.
        self._db.on_rollback = self._load_seqs
        self._read = self._db.read
        self._write = self._db.write
        self._last_seq: dict[str, int] = {}  # owned by the writer thread

    async def open(self) -> None:
        await self._db.open()

    async def close(self) -> None:
        await self._db.close()

    def set_event_listener(self, listener: EventListener) -> None:
        self._db.on_commit = listener

    def _load_seqs(self, conn: sqlite3.Connection) -> None:
        self._last_seq = dict(conn.execute("SELECT tenant, max(seq) FROM events GROUP BY tenant").fetchall())

    def _append(self, conn: sqlite3.Connection, events: Sequence[NewEvent], now: float) -> list[StoredEvent]:
        stored = []
        for e in events:
            seq = self._last_seq.get(e.tenant, 0) + 1
            self._last_seq[e.tenant] = seq
            stored.append(StoredEvent(e.tenant, seq, e.session, e.event, e.data, now))
        conn.executemany(
            "INSERT INTO events (tenant, seq, session, event, data, ts) VALUES (?, ?, ?, ?, ?, ?)",
            [(s.tenant, s.seq, s.session, s.event, s.data, s.ts) for s in stored],
        )
        return stored

    # -- tokens

    async def add_token(self, record: TokenRecord, token_hash: bytes) -> None:
        def op(conn: sqlite3.Connection) -> tuple[None, list[StoredEvent]]:
            conn.execute(
                "INSERT INTO tokens (id, tenant, hash, label, created_at) VALUES (?, ?, ?, ?, ?)",
                (record.id, record.tenant, token_hash, record.label, record.created_at),
            )
            return None, []

        await self._write(op)

    async def find_token(self, token_id: str) -> tuple[TokenRecord, bytes] | None:
        def op(conn: sqlite3.Connection) -> tuple[TokenRecord, bytes] | None:
            row = conn.execute(
                "SELECT id, tenant, label, created_at, revoked_at, hash FROM tokens "
                "WHERE id = ? AND revoked_at IS NULL",
                (token_id,),
            ).fetchone()
            return (_token(row), row[5]) if row else None

        return await self._read(op)

    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]:
        def op(conn: sqlite3.Connection) -> list[TokenRecord]:
            sql = "SELECT id, tenant, label, created_at, revoked_at FROM tokens"
            rows = (
                conn.execute(sql + " WHERE tenant = ? ORDER BY created_at", (tenant,))
                if tenant
                else conn.execute(sql + " ORDER BY tenant, created_at")
            )
            return [_token(r) for r in rows]

        return await self._read(op)

    async def revoke_token(self, token_id: str, now: float) -> bool:
        def op(conn: sqlite3.Connection) -> tuple[bool, list[StoredEvent]]:
            cur = conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id))
            return cur.rowcount > 0, []

        return await self._write(op)

    async def live_tokens(self, token_ids: Sequence[str]) -> set[str]:
        ids = list(token_ids)

        def op(conn: sqlite3.Connection) -> set[str]:
            live: set[str] = set()
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT id FROM tokens WHERE id IN ({marks}) AND revoked_at IS NULL",  # noqa: S608
                    chunk,
                )
                live.update(r[0] for r in rows)
            return live

        return await self._read(op)

    # -- sessions

    async def list_sessions(self) -> list[SessionRecord]:
        def op(conn: sqlite3.Connection) -> list[SessionRecord]:
            rows = conn.execute(
                "SELECT id, tenant, name, status, reason, me, device, want_running, created_at, updated_at "
                "FROM sessions ORDER BY tenant, name"
            )
            return [_session(r) for r in rows]

        return await self._read(op)

    async def save_session(self, record: SessionRecord, events: Sequence[NewEvent] = ()) -> list[StoredEvent]:
        values = (
            record.id,
            record.tenant,
            record.name,
            record.status,
            record.reason,
            json.dumps(record.me) if record.me else None,
            json.dumps(record.device) if record.device else None,
            int(record.want_running),
            record.created_at,
            record.updated_at,
        )

        def op(conn: sqlite3.Connection) -> tuple[list[StoredEvent], list[StoredEvent]]:
            conn.execute(
                "INSERT INTO sessions (id, tenant, name, status, reason, me, device, want_running, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "status = excluded.status, reason = excluded.reason, me = excluded.me, device = excluded.device, "
                "want_running = excluded.want_running, updated_at = excluded.updated_at",
                values,
            )
            stored = self._append(conn, events, time.time())
            return stored, stored

        return await self._write(op)

    async def delete_session(self, record: SessionRecord, events: Sequence[NewEvent] = ()) -> list[StoredEvent]:
        def op(conn: sqlite3.Connection) -> tuple[list[StoredEvent], list[StoredEvent]]:
            for table, column in (
                ("sessions", "id"),
                ("outbox", "session_id"),
                ("inbound", "session_id"),
                ("contacts", "session_id"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (record.id,))  # noqa: S608
            stored = self._append(conn, events, time.time())
            return stored, stored

        return await self._write(op)

    # -- events

    async def append_events(self, events: Sequence[NewEvent]) -> list[StoredEvent]:
        def op(conn: sqlite3.Connection) -> tuple[list[StoredEvent], list[StoredEvent]]:
            stored = self._append(conn, events, time.time())
            return stored, stored

        return await self._write(op)

    async def read_events(self, tenant: str, after: int, limit: int) -> list[StoredEvent]:
        def op(conn: sqlite3.Connection) -> list[StoredEvent]:
            rows = conn.execute(
                "SELECT tenant, seq, session, event, data, ts FROM events WHERE tenant = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (tenant, after, limit),
            )
            return [StoredEvent(*r) for r in rows]

        return await self._read(op)

    async def event_bounds(self, tenant: str) -> tuple[int, int]:
        def op(conn: sqlite3.Connection) -> tuple[int, int]:
            row = conn.execute("SELECT min(seq), max(seq) FROM events WHERE tenant = ?", (tenant,)).fetchone()
            return (row[0] or 0, row[1] or 0)

        return await self._read(op)

    async def prune(self, now: float, *, event_max_age: float, event_keep: int, record_max_age: float) -> int:
        def op(conn: sqlite3.Connection) -> tuple[int, list[StoredEvent]]:
            removed = 0
            for tenant, newest in list(self._last_seq.items()):
                cur = conn.execute(
                    "DELETE FROM events WHERE tenant = ? AND seq <= ? AND ts < ?",
                    (tenant, newest - event_keep, now - event_max_age),
                )
                removed += cur.rowcount
            conn.execute("DELETE FROM outbox WHERE status != 'queued' AND created_at < ?", (now - record_max_age,))
            conn.execute("DELETE FROM inbound WHERE received_at < ?", (now - record_max_age,))
            return removed, []

        return await self._write(op)

    # -- outgoing messages

    async def enqueue_message(self, item: OutboxItem) -> tuple[OutboxItem, bool]:
        def op(conn: sqlite3.Connection) -> tuple[tuple[OutboxItem, bool], list[StoredEvent]]:
            if item.idempotency_key is not None:
                row = conn.execute(
                    f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE session_id = ? AND idempotency_key = ?",  # noqa: S608
                    (item.session_id, item.idempotency_key),
                ).fetchone()
                if row:
                    return (_outbox(row), False), []
            cur = conn.execute(
                "INSERT INTO outbox (message_id, session_id, chat, text, reply_to, idempotency_key, fingerprint, "
                "status, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?)",
                (
                    item.message_id,
                    item.session_id,
                    item.chat,
                    item.text,
                    item.reply_to,
                    item.idempotency_key,
                    item.fingerprint,
                    item.created_at,
                ),
            )
            item.position = cur.lastrowid or 0
            return (item, True), []

        return await self._write(op)

    async def find_message(self, session_id: str, idempotency_key: str) -> OutboxItem | None:
        def op(conn: sqlite3.Connection) -> OutboxItem | None:
            row = conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE session_id = ? AND idempotency_key = ?",  # noqa: S608
                (session_id, idempotency_key),
            ).fetchone()
            return _outbox(row) if row else None

        return await self._read(op)

    async def pending_messages(self, session_id: str) -> list[OutboxItem]:
        def op(conn: sqlite3.Connection) -> list[OutboxItem]:
            rows = conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE session_id = ? AND status = 'queued' "  # noqa: S608
                "ORDER BY position",
                (session_id,),
            )
            return [_outbox(r) for r in rows]

        return await self._read(op)

    def finish_message(
        self, item: OutboxItem, events: Sequence[NewEvent], *, new_contact_at: float | None
    ) -> asyncio.Future[list[StoredEvent]]:
        def op(conn: sqlite3.Connection) -> tuple[list[StoredEvent], list[StoredEvent]]:
            now = time.time()
            conn.execute(
                "UPDATE outbox SET status = ?, reason = ?, wa_timestamp = ?, finished_at = ? WHERE message_id = ?",
                (item.status, item.reason, item.wa_timestamp, now, item.message_id),
            )
            if new_contact_at is not None:
                conn.execute(
                    "INSERT OR IGNORE INTO contacts (session_id, chat, first_seen_at, we_wrote_first) "
                    "VALUES (?, ?, ?, 1)",
                    (item.session_id, item.chat, new_contact_at),
                )
            stored = self._append(conn, events, now)
            return stored, stored

        return self._db.submit(op)

    async def fail_pending(self, session_id: str, reason: str, make_events: Callable[[OutboxItem], NewEvent]) -> int:
        def op(conn: sqlite3.Connection) -> tuple[int, list[StoredEvent]]:
            rows = conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE session_id = ? AND status = 'queued' "  # noqa: S608
                "ORDER BY position",
                (session_id,),
            ).fetchall()
            items = [_outbox(r) for r in rows]
            now = time.time()
            conn.execute(
                "UPDATE outbox SET status = 'failed', reason = ?, finished_at = ? "
                "WHERE session_id = ? AND status = 'queued'",
                (reason, now, session_id),
            )
            for it in items:
                it.status, it.reason = "failed", reason
            stored = self._append(conn, [make_events(it) for it in items], now)
            return len(items), stored

        return await self._write(op)

    # -- incoming messages and contacts

    async def record_inbound(
        self, session_id: str, message_id: str, chat: str, events: Sequence[NewEvent], now: float
    ) -> list[StoredEvent] | None:
        def op(conn: sqlite3.Connection) -> tuple[list[StoredEvent] | None, list[StoredEvent]]:
            cur = conn.execute(
                "INSERT OR IGNORE INTO inbound (session_id, message_id, received_at) VALUES (?, ?, ?)",
                (session_id, message_id, now),
            )
            if cur.rowcount == 0:
                return None, []
            conn.execute(
                "INSERT OR IGNORE INTO contacts (session_id, chat, first_seen_at, we_wrote_first) VALUES (?, ?, ?, 0)",
                (session_id, chat, now),
            )
            stored = self._append(conn, events, now)
            return stored, stored

        return await self._write(op)

    async def known_inbound(self, session_id: str, message_ids: Sequence[str]) -> set[str]:
        ids = list(message_ids)

        def op(conn: sqlite3.Connection) -> set[str]:
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT message_id FROM inbound WHERE session_id = ? AND message_id IN ({marks})",  # noqa: S608
                (session_id, *ids),
            )
            return {r[0] for r in rows}

        return await self._read(op) if ids else set()

    async def load_contacts(self, session_id: str, since: float) -> tuple[set[str], list[float]]:
        def op(conn: sqlite3.Connection) -> tuple[set[str], list[float]]:
            rows = conn.execute(
                "SELECT chat, first_seen_at, we_wrote_first FROM contacts WHERE session_id = ?", (session_id,)
            ).fetchall()
            return {r[0] for r in rows}, sorted(r[1] for r in rows if r[2] and r[1] >= since)

        return await self._read(op)
