"""A small group of light batched writes (``submit_batched(..., inline=True)``: a send's acceptance, its outcome)
runs its statements on the event loop's thread and only its ``COMMIT`` in the writer thread; a larger group, or one
holding any other write, runs wholly in the writer thread; and a write lock held by another connection never stops
the event loop (storage/database.py, ``Database.inline_requests``)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from zapgate.storage import open_storage
from zapgate.storage.sqlite import INLINE_REQUESTS


def _ensure_table(conn: Any) -> tuple[None, list[Any]]:
    conn.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
    return None, []


def _insert_batch(conn: Any, numbers: list[int]) -> tuple[list[tuple[bool, Any]], list[Any]]:
    conn.executemany("INSERT INTO probe (n) VALUES (?)", [(n,) for n in numbers])
    return [(True, threading.get_ident())] * len(numbers), []


async def test_a_small_group_runs_its_statements_here_and_commits_in_the_writer_thread(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'zapgate.db'}", synchronous="full")
    await storage.open()
    try:
        await storage.db.write(_ensure_table)
        here = threading.get_ident()
        statements: list[tuple[int, str]] = []
        storage.db._wconn.set_trace_callback(lambda sql: statements.append((threading.get_ident(), sql)))

        def insert(n: int, *, inline: bool = True) -> Any:
            return storage.db.submit_batched("probe", n, _insert_batch, inline=inline)

        small = await asyncio.gather(*(insert(n) for n in range(INLINE_REQUESTS)))
        assert set(small) == {here}
        commits = [thread for thread, sql in statements if sql == "COMMIT"]
        assert commits and here not in commits  # the disk write and its fsync leave the loop free

        large = await asyncio.gather(*(insert(n) for n in range(INLINE_REQUESTS + 1)))
        assert len(set(large)) == 1 and here not in set(large)

        # a write not declared light (its cost is not bounded by its requests) never runs here, nor does the batch
        # it joins
        assert await insert(0, inline=False) != here
        assert await storage.db.write(lambda conn: (threading.get_ident(), [])) != here
        mixed = await asyncio.gather(insert(1), insert(2, inline=False), insert(3))
        assert len(set(mixed)) == 1 and here not in set(mixed)

        def count(conn: Any) -> int:
            return int(conn.execute("SELECT count(*) FROM probe").fetchone()[0])

        assert await storage.db.read(count) == 2 * INLINE_REQUESTS + 5
    finally:
        await storage.close()


async def test_a_write_lock_held_elsewhere_delays_the_write_but_never_the_event_loop(tmp_path: Path) -> None:
    path = tmp_path / "zapgate.db"
    storage = open_storage(f"sqlite:///{path}", synchronous="full")
    await storage.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await storage.db.write(_ensure_table)
        other.execute("BEGIN IMMEDIATE")  # another process (a CLI command, an sqlite3 shell) holds the write lock
        other.execute("INSERT INTO probe (n) VALUES (-1)")

        write = storage.db.submit_batched("probe", 1, _insert_batch, inline=True)
        gaps: list[float] = []
        last = time.perf_counter()
        for _ in range(30):  # the loop goes on turning while the write waits for the lock
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now
        assert not write.done()
        assert max(gaps) < 0.2, gaps
        other.execute("COMMIT")
        assert await asyncio.wait_for(write, 10) != threading.get_ident()  # the writer thread took it over

        def values(conn: Any) -> list[int]:
            return [int(n) for (n,) in conn.execute("SELECT n FROM probe ORDER BY rowid")]

        assert await storage.db.read(values) == [-1, 1]
        # and the next small group runs on the loop's thread again, with the usual wait for a lock restored
        assert await storage.db.submit_batched("probe", 2, _insert_batch, inline=True) == threading.get_ident()
        assert int(storage.db._wconn.execute("PRAGMA busy_timeout").fetchone()[0]) == 5000
    finally:
        other.close()
        await storage.close()


def _insert_or_refuse(conn: Any, numbers: list[int]) -> tuple[list[tuple[bool, Any]], list[Any]]:
    if any(n < 0 for n in numbers):
        raise ValueError("negative")
    return _insert_batch(conn, numbers)


@pytest.mark.parametrize("inline", [True, False], ids=["on the loop's thread", "in the writer thread"])
async def test_a_failing_request_of_a_batch_alone_in_its_group_fails_alone(tmp_path: Path, inline: bool) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'zapgate.db'}", synchronous="full")
    await storage.open()
    try:
        await storage.db.write(_ensure_table)
        here = threading.get_ident()
        futures = [storage.db.submit_batched("probe", n, _insert_or_refuse, inline=inline) for n in (1, -2, 3)]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert isinstance(outcomes[1], ValueError)
        assert outcomes[0] == outcomes[2] and (outcomes[0] == here) is inline

        def values(conn: Any) -> list[int]:
            return [int(n) for (n,) in conn.execute("SELECT n FROM probe ORDER BY rowid")]

        assert await storage.db.read(values) == [1, 3]
    finally:
        await storage.close()
