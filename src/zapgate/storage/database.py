"""One database, whatever its engine: reads in a reader thread, writes in **group commits** in a writer thread.

Every write is a plain function ``fn(conn) -> (result, events)`` run in the writer thread. All writes requested
while the previous commit was in flight are applied in the next transaction, each in its own savepoint (so
one failing write does not undo the others), and one ``COMMIT`` makes the whole group durable. After the
commit, ``on_commit(events)`` runs on the event loop for each write in order, before its caller resumes.

Operations are written once, in **portable SQL**, and run on SQLite and PostgreSQL alike:

- placeholders are ``?`` (translated to ``%s`` for PostgreSQL);
- ``INSERT … ON CONFLICT … DO NOTHING/UPDATE`` (never ``INSERT OR IGNORE``), ``RETURNING`` (never
  ``lastrowid``);
- DDL in :mod:`.schema` uses ``{BLOB}``, ``{REAL}``, ``{BIGINT}``, ``{AUTOID}`` and ``{WITHOUT_ROWID}``
  placeholders that each dialect fills in;
- no engine-specific functions in queries.

:class:`~.sqlite.SqliteDatabase` and :class:`~.postgres.PostgresDatabase` differ only in how they connect,
begin a transaction and track the schema version.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol, TypeVar

from .base import StoredEvent

__all__ = ["Conn", "Cursor", "Database", "WriteFn"]

log = logging.getLogger("zapgate.storage")

T = TypeVar("T")

MAX_GROUP = 2000
"""Most writes applied in one transaction; bounds the latency of a single commit."""


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Any: ...


class Conn(Protocol):
    """What an operation may do with the connection it is given (sqlite3's API, which PostgreSQL's adapter
    mirrors)."""

    def execute(self, sql: str, params: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> Any: ...


WriteFn = Callable[[Any], tuple[T, list[Any]]]
"""A write: takes the connection (a :class:`Conn`; engines' own SQLite tables use sqlite3's directly) and
returns ``(result, events to publish after the commit)``."""


class Database(abc.ABC):
    """The group-commit machinery; subclasses provide connections and transactions (see the module docs)."""

    dialect: str
    """``sqlite`` or ``postgresql``."""

    def __init__(self, *, name: str, migrations: Sequence[str]) -> None:
        self.name = name
        self._migrations = migrations
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-write")
        self._reader = ThreadPoolExecutor(1, thread_name_prefix=f"{name}-read")
        self._wconn: Any = None
        self._rconn: Any = None
        self._pending: list[tuple[WriteFn[Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self.on_commit: Callable[[list[StoredEvent]], None] | None = None
        self._closed = False

    # -- what a backend provides

    @abc.abstractmethod
    def _connect(self, *, writer: bool) -> Any:
        """A new connection (in the thread that will use it). The writer's also applies the migrations."""

    @abc.abstractmethod
    def _begin(self, conn: Any) -> None:
        """Start the write transaction of a group."""

    def _close_conn(self, conn: Any) -> None:
        conn.close()

    def describe(self) -> str:
        """Where the data lives, for logs (never with a password)."""
        return self.name

    # -- lifecycle

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        self._wconn = await loop.run_in_executor(self._writer, lambda: self._connect(writer=True))
        self._rconn = await loop.run_in_executor(self._reader, lambda: self._connect(writer=False))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            await self._flusher
        loop = asyncio.get_running_loop()
        for pool, conn in ((self._writer, self._wconn), (self._reader, self._rconn)):
            if conn is not None:
                await loop.run_in_executor(pool, self._close_conn, conn)
            # The pools are idle now; don't block the event loop joining their threads.
            pool.shutdown(wait=False)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- reads and writes

    async def read(self, fn: Callable[[Any], T]) -> T:
        if self._closed:
            raise RuntimeError("storage is closed")
        assert self._rconn is not None, "storage not opened"
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn, self._rconn)

    def submit(self, fn: WriteFn[T]) -> asyncio.Future[T]:
        """Queue ``fn`` for the next group commit now; the future resolves once it is durable and its events
        are published. Writes are applied in the order they were submitted."""
        if self._closed:
            raise RuntimeError("storage is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._pending.append((fn, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush(), name=f"{self.name}-flush")
        return future

    async def write(self, fn: WriteFn[T]) -> T:
        return await self.submit(fn)

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._pending:
                # Let every callback that is ready run first: writes they request join this group, so one
                # commit serves them all.
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
        self._begin(conn)
        try:
            for fn in fns:
                conn.execute("SAVEPOINT op")
                try:
                    outcomes.append((True, fn(conn)))
                    conn.execute("RELEASE SAVEPOINT op")
                except Exception as exc:
                    conn.execute("ROLLBACK TO SAVEPOINT op")
                    conn.execute("RELEASE SAVEPOINT op")
                    outcomes.append((False, exc))
            conn.execute("COMMIT")
        except BaseException:
            self._rollback(conn)
            raise
        return outcomes

    def _rollback(self, conn: Any) -> None:
        try:
            conn.execute("ROLLBACK")
        except Exception:
            log.debug("rollback after a failed commit failed", exc_info=True)
