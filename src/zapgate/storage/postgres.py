"""PostgreSQL: the database several gateway nodes share (``docs/scaling.md``).

The same operations as SQLite run here unchanged (:mod:`.database`): this module only connects, translates
``?`` placeholders, begins transactions and versions the schema. Migrations run under a PostgreSQL advisory
lock, so nodes that start at the same time apply each one exactly once. psycopg 3 runs in the writer and
reader threads; ``docs/decisions.md`` says why it was preferred to asyncpg.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from .database import Database

__all__ = ["PostgresDatabase"]

log = logging.getLogger("zapgate.storage")

MIGRATION_LOCK = 0x7A617067  # "zapg": the advisory lock key held while migrating


@functools.lru_cache(maxsize=4096)
def _translate(sql: str) -> str:
    return sql.replace("?", "%s")


class _Connection:
    """A psycopg connection with sqlite3's calling conventions (``?`` placeholders, ``executemany``)."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self.raw.execute(_translate(sql), params or None)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Any:
        cursor = self.raw.cursor()
        cursor.executemany(_translate(sql), list(rows))
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

        conn = _Connection(psycopg.connect(self.url, autocommit=True, application_name="zapgate"))
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
