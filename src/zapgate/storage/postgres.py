"""PostgreSQL: the database several gateway nodes share (``docs/scaling.md``).

The same operations as SQLite run here unchanged (:mod:`.database`): this module only connects, translates
``?`` placeholders, begins transactions and versions the schema. Migrations run under a PostgreSQL advisory
lock, so nodes that start at the same time apply each one exactly once. psycopg 3 runs in the writer and
reader threads; ``docs/decisions.md`` says why it was preferred to asyncpg.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from .database import Database

__all__ = ["PostgresDatabase"]

log = logging.getLogger("zapgate.storage")

MIGRATION_LOCK = 0x7A617067  # "zapg": the advisory lock key held while migrating


ROWS_PER_MESSAGE = 1000
"""Most rows an :meth:`_Connection.executemany` sends in one message (one statement, or one string of them)."""

_ROWS_INSERT = re.compile(
    r"(?is)^(\s*INSERT\s+INTO\s.+?\sVALUES\s*)(\([^()]*\))(\s*(?:ON\s+CONFLICT\b.*?\bDO\s+NOTHING\s*)?)$"
)


@functools.lru_cache(maxsize=4096)
def _translate(sql: str) -> str:
    return sql.replace("?", "%s")


@functools.lru_cache(maxsize=256)
def _multi_row(sql: str) -> tuple[str, str, str] | None:
    """``(head, row, tail)`` of an ``INSERT … VALUES (…)`` (without ``ON CONFLICT``, or with ``DO NOTHING``)
    whose rows can go in one multi-row ``INSERT``; None for any other statement. (An ``ON CONFLICT … DO UPDATE``
    is not one: two of its rows may update the same row, which one statement cannot do.)"""
    match = _ROWS_INSERT.match(sql)
    if match is None:
        return None
    head, row, tail = match.groups()
    return head, _translate(row), tail


class _Connection:
    """A psycopg connection with sqlite3's calling conventions (``?`` placeholders, ``executemany``)."""

    def __init__(self, raw: Any, literal: Any) -> None:
        self.raw = raw
        self._literal = literal
        """A client-side-binding cursor (``psycopg.ClientCursor``) on ``raw``, for :meth:`executemany`."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(_translate(sql), params or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        """Run ``sql`` for each of ``rows``, sent as **one simple-protocol message** per
        :data:`ROWS_PER_MESSAGE` rows: one multi-row ``INSERT`` where :func:`_multi_row` allows it, else the
        statements one after the other in one string (so one round trip either way).

        Never psycopg's own ``executemany``: it pipelines the rows one extended-protocol message at a time, sends
        the closing Sync after the last and then a flush request. While the server waits for the rest of a
        pipeline it counts as busy, and a message after the Sync (that flush request) turns its idle timer off
        until the next statement: either way ``idle_in_transaction_session_timeout`` (the lock-hold limit,
        :attr:`PostgresDatabase.lock_hold_limit_s`) did not run. A node paused then (SIGSTOP, a VM freeze) kept
        its row locks (a tenant's ``tenant_seq``, lease rows) until it resumed, and every other node's writes,
        lease renewals included, waited behind them. A simple-protocol message is one message answered by
        ReadyForQuery: the limit runs while the server waits for it and from the moment it is done."""
        cursor = self._literal
        todo = list(rows)
        plan = _multi_row(sql)
        for start in range(0, len(todo), ROWS_PER_MESSAGE):
            chunk = todo[start : start + ROWS_PER_MESSAGE]
            if plan is not None:
                head, row, tail = plan
                text = head + ",".join(cursor.mogrify(row, values) for values in chunk) + tail
            else:
                one = _translate(sql)
                text = ";\n".join(cursor.mogrify(one, values) for values in chunk)
            cursor.execute(text, prepare=False)
        return cursor

    def close(self) -> None:
        self.raw.close()


class PostgresDatabase(Database):
    """A PostgreSQL database at ``url`` (see :class:`~.database.Database`)."""

    dialect = "postgresql"
    now_sql = "CAST(extract(epoch FROM clock_timestamp()) AS DOUBLE PRECISION)"

    def __init__(
        self,
        url: str,
        *,
        migrations: Sequence[str],
        name: str,
        version_table: str = "zapgate_schema",
        lock_hold_limit_s: float | None = None,
    ) -> None:
        super().__init__(name=name, migrations=migrations)
        self.url = url
        self.version_table = version_table
        """Where this set of migrations records its version: several sets (the gateway's, the simulator's, the
        engine's) can share one database."""
        self.lock_hold_limit_s = lock_hold_limit_s
        """With several nodes: the server ends this node's write transaction (and the connection) when it sits
        idle this long. A node paused mid-transaction (SIGSTOP, a VM freeze) would otherwise keep its row locks —
        on leases, on a tenant's sequence counter — and stall every other node's writes behind them."""

    def describe(self) -> str:
        from .by_url import redact_url

        return redact_url(self.url)

    def _connect(self, *, writer: bool) -> _Connection:
        import psycopg

        raw = psycopg.connect(self.url, autocommit=True, application_name="zapgate")
        conn = _Connection(raw, psycopg.ClientCursor(raw))
        if writer:
            self._migrate(conn)
            if self.lock_hold_limit_s is not None:
                limit_ms = max(1, round(self.lock_hold_limit_s * 1000))
                conn.execute(f"SET idle_in_transaction_session_timeout = {limit_ms}")
        return conn

    def _broken(self, conn: _Connection) -> bool:
        return bool(conn.raw.closed or conn.raw.broken)

    def _transient(self, exc: Exception) -> bool:
        import psycopg.errors

        return isinstance(exc, psycopg.errors.DeadlockDetected | psycopg.errors.SerializationFailure)

    def _begin(self, conn: _Connection) -> None:
        conn.execute("BEGIN")

    def _migrate(self, conn: _Connection) -> None:
        conn.execute("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK,))
        try:
            table = self.version_table
            conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (version BIGINT NOT NULL)")
            (version,) = conn.execute(f"SELECT coalesce(max(version), 0) FROM {table}").fetchone()  # noqa: S608
            if version > len(self._migrations):
                raise RuntimeError(
                    f"{self.describe()} was written by a newer zapgate (schema {version}, "
                    f"this one knows {len(self._migrations)})"
                )
            for number, script in enumerate(self._migrations[version:], start=version + 1):
                log.info("%s: applying database migration %d", self.describe(), number)
                conn.execute("BEGIN")
                try:
                    for statement in script.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"INSERT INTO {table} (version) VALUES (?)", (number,))  # noqa: S608
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
        finally:
            conn.execute("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK,))
