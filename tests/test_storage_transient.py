"""Two nodes' writers that deadlock on PostgreSQL: the database runs the losing write again instead of failing it.

Each node has one writer connection; two of them that lock two rows in opposite orders deadlock, and PostgreSQL
aborts one of them. That is not an error the write caused, so the write must not answer ``internal``."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from zapgate.storage.by_url import database_for

from .services import postgres_schema

TABLE = ["CREATE TABLE counters (name TEXT PRIMARY KEY, n {BIGINT} NOT NULL);"]


@pytest.fixture
def url() -> Iterator[str]:
    yield from postgres_schema()


async def test_two_writers_that_deadlock_both_succeed(url: str) -> None:
    first = database_for(url, migrations=TABLE, name="node-a")
    second = database_for(url, migrations=TABLE, name="node-b")
    await first.open()
    await second.open()
    try:
        def rows_x_and_y(conn: Any) -> tuple[None, list[Any]]:
            conn.execute("INSERT INTO counters VALUES ('x', 0), ('y', 0)")
            return None, []

        await first.write(rows_x_and_y)
        both_hold_one = threading.Barrier(2, timeout=10)
        attempts = {"a": 0, "b": 0}

        def locking(name: str, rows: tuple[str, str]) -> Any:
            def write(conn: Any) -> tuple[None, list[Any]]:
                attempts[name] += 1
                conn.execute("UPDATE counters SET n = n + 1 WHERE name = ?", (rows[0],))
                if attempts[name] == 1:  # only the first run of each waits for the other: a sure deadlock
                    both_hold_one.wait()
                conn.execute("UPDATE counters SET n = n + 1 WHERE name = ?", (rows[1],))
                return None, []

            return write

        await asyncio.gather(first.write(locking("a", ("x", "y"))), second.write(locking("b", ("y", "x"))))

        rows = await first.read(lambda conn: dict(conn.execute("SELECT name, n FROM counters").fetchall()))
        assert rows == {"x": 2, "y": 2}  # each write applied exactly once
        assert attempts["a"] + attempts["b"] >= 3, attempts  # one of them was the deadlock's victim and ran again
    finally:
        await first.close()
        await second.close()
