"""A small group of light batched writes (``submit_batched(..., inline=True)``: a send's acceptance, its outcome)
runs its statements on the event loop's thread and only its ``COMMIT`` in the writer thread; a larger group, or one
holding any other write, runs wholly in the writer thread; and a write lock held by another connection never stops
the event loop (storage/database.py, ``Database.inline_requests``). With ``synchronous=normal`` such a group commits
on the loop's thread too, and the WAL's checkpoints run in the writer thread between groups
(``Database.inline_commit``, storage/sqlite.py)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from zapgate.storage import Storage, open_storage
from zapgate.storage import sqlite as sqlite_storage
from zapgate.storage.sqlite import CHECKPOINT_FRAMES, INLINE_REQUESTS


def _ensure_table(conn: Any) -> tuple[None, list[Any]]:
    conn.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
    return None, []


def _insert_batch(conn: Any, numbers: list[int]) -> tuple[list[tuple[bool, Any]], list[Any]]:
    conn.executemany("INSERT INTO probe (n) VALUES (?)", [(n,) for n in numbers])
    return [(True, threading.get_ident())] * len(numbers), []


def _traced(storage: Any) -> list[tuple[int, str]]:
    """Every statement the writer's connection runs from now on, with the thread that ran it."""
    statements: list[tuple[int, str]] = []
    storage.db._wconn.set_trace_callback(lambda sql: statements.append((threading.get_ident(), sql)))
    return statements


async def test_a_small_group_runs_its_statements_here_and_commits_in_the_writer_thread(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'zapgate.db'}", synchronous="full")
    await storage.open()
    try:
        await storage.db.write(_ensure_table)
        here = threading.get_ident()
        statements = _traced(storage)

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


@contextlib.asynccontextmanager
async def _with_another_connection(path: Path, synchronous: str) -> AsyncIterator[tuple[Storage, sqlite3.Connection]]:
    """A storage with the probe table, and another connection to its file (a CLI command, an sqlite3 shell)."""
    storage = open_storage(f"sqlite:///{path}", synchronous=synchronous)
    await storage.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await storage.db.write(_ensure_table)
        yield storage, other
    finally:
        other.close()
        await storage.close()


@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_a_write_lock_held_elsewhere_delays_the_write_but_never_the_event_loop(
    tmp_path: Path, synchronous: str
) -> None:
    async with _with_another_connection(tmp_path / "zapgate.db", synchronous) as (storage, other):
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
        # and the next small group runs on the loop's thread again
        assert await storage.db.submit_batched("probe", 2, _insert_batch, inline=True) == threading.get_ident()
        # while a group of the writer thread still waits for a lock held elsewhere, and goes on once it is freed
        other.execute("BEGIN IMMEDIATE")
        freed = threading.Timer(0.3, other.execute, ("COMMIT",))
        began = time.perf_counter()
        freed.start()
        await asyncio.wait_for(storage.db.submit_batched("probe", 3, _insert_batch, inline=False), 10)
        assert time.perf_counter() - began >= 0.25
        freed.join()
        assert await storage.db.read(values) == [-1, 1, 2, 3]


@pytest.mark.parametrize("synchronous", ["full", "normal"])
async def test_a_write_lock_held_elsewhere_for_too_long_fails_the_group_clearly(
    tmp_path: Path, synchronous: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sqlite_storage, "BUSY_TIMEOUT_MS", 300)
    async with _with_another_connection(tmp_path / "zapgate.db", synchronous) as (storage, other):
        other.execute("BEGIN IMMEDIATE")
        began = time.perf_counter()
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            await asyncio.wait_for(storage.db.submit_batched("probe", 1, _insert_batch, inline=True), 10)
        assert 0.25 <= time.perf_counter() - began < 5  # it waited about BUSY_TIMEOUT_MS, not SQLite's default
        # the log names the database and what failed, with SQLite's reason
        (record,) = [r for r in caplog.records if r.name == "zapgate.storage" and r.levelname == "ERROR"]
        assert record.getMessage() == f"{tmp_path / 'zapgate.db'}: a group of 1 writes failed as a whole"
        assert record.exc_info is not None and "database is locked" in str(record.exc_info[1])
        other.execute("ROLLBACK")
        # nothing was left half done: the next write goes through
        assert await storage.db.submit_batched("probe", 2, _insert_batch, inline=True) == threading.get_ident()


def _insert_or_refuse(conn: Any, numbers: list[int]) -> tuple[list[tuple[bool, Any]], list[Any]]:
    if any(n < 0 for n in numbers):
        raise ValueError("negative")
    return _insert_batch(conn, numbers)


@pytest.mark.parametrize("synchronous", ["full", "normal"])
@pytest.mark.parametrize("inline", [True, False], ids=["on the loop's thread", "in the writer thread"])
async def test_a_failing_request_of_a_batch_alone_in_its_group_fails_alone(
    tmp_path: Path, inline: bool, synchronous: str
) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'zapgate.db'}", synchronous=synchronous)
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


def _pages(conn: Any, numbers: list[int]) -> tuple[list[tuple[bool, Any]], list[Any]]:
    """Each request writes a 4 KiB row: a page of the WAL, and more for the index of its table."""
    conn.executemany("INSERT INTO probe (n, filler) VALUES (?, zeroblob(4096))", [(n,) for n in numbers])
    return [(True, threading.get_ident())] * len(numbers), []


def _ensure_wide_table(conn: Any) -> tuple[None, list[Any]]:
    conn.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER, filler BLOB)")
    return None, []


async def test_with_synchronous_normal_a_small_group_commits_on_the_loops_thread_too(tmp_path: Path) -> None:
    normal = open_storage(f"sqlite:///{tmp_path / 'normal.db'}", synchronous="normal")
    full = open_storage(f"sqlite:///{tmp_path / 'full.db'}", synchronous="full")
    await normal.open()
    await full.open()
    try:
        here = threading.get_ident()
        for storage in (normal, full):
            await storage.db.write(_ensure_table)
        statements = _traced(normal)
        small = await asyncio.gather(
            *(normal.db.submit_batched("probe", n, _insert_batch, inline=True) for n in range(INLINE_REQUESTS))
        )
        assert set(small) == {here}
        commits = [thread for thread, sql in statements if sql == "COMMIT"]
        assert commits and set(commits) == {here}  # no fsync to wait for: no round trip to the writer thread
        # a group in the writer thread still commits there
        assert await normal.db.write(lambda conn: (threading.get_ident(), [])) != here
        assert statements[-1][1] == "COMMIT" and statements[-1][0] != here
        # SQLite's own checkpoint, which would run inside such a COMMIT, is off where commits run here; with
        # synchronous=full nothing changes
        assert normal.db.inline_commit and not full.db.inline_commit
        assert int(normal.db._wconn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 0
        assert int(full.db._wconn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]) == 1000
    finally:
        await normal.close()
        await full.close()


async def _write_frames(storage: Any, frames: int) -> None:
    """Small inline groups (8 requests) until about ``frames`` pages were written."""
    for start in range(0, frames, 8):
        await asyncio.gather(
            *(storage.db.submit_batched("probe", n, _pages, inline=True) for n in range(start, start + 8))
        )


@contextlib.asynccontextmanager
async def _normal_storage(path: Path) -> AsyncIterator[Storage]:
    """A gateway database with synchronous=normal and a table of wide rows, open."""
    storage = open_storage(f"sqlite:///{path}", synchronous="normal")
    await storage.open()
    try:
        await storage.db.write(_ensure_wide_table)
        yield storage
    finally:
        await storage.close()


async def test_with_synchronous_normal_checkpoints_run_in_the_writer_thread_and_bound_the_wal(tmp_path: Path) -> None:
    path = tmp_path / "zapgate.db"
    async with _normal_storage(path) as storage:
        here = threading.get_ident()
        statements = _traced(storage)
        await _write_frames(storage, 4 * CHECKPOINT_FRAMES)
        checkpoints = [thread for thread, sql in statements if "wal_checkpoint" in sql]
        assert 3 <= len(checkpoints) <= 5, len(checkpoints)
        assert here not in checkpoints  # its copying and fsyncs never hold the event loop
        # The WAL holds no more than about one checkpoint's worth, and its file stays that size
        assert storage.db._wal_frames() < CHECKPOINT_FRAMES + 64
        page = int(storage.db._wconn.execute("PRAGMA page_size").fetchone()[0])
        assert path.with_name(path.name + "-wal").stat().st_size < (CHECKPOINT_FRAMES + 64) * (page + 24) + 32

        def count(conn: Any) -> int:
            return int(conn.execute("SELECT count(*) FROM probe").fetchone()[0])

        assert await storage.db.read(count) == 4 * CHECKPOINT_FRAMES
    # What was committed is there after a restart (the last close checkpoints and removes the WAL)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT count(*) FROM probe").fetchone()[0] == 4 * CHECKPOINT_FRAMES


async def test_a_reader_keeping_the_wal_does_not_make_every_group_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "zapgate.db"
    reader = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        async with _normal_storage(path) as storage:
            await _write_frames(storage, 8)
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM probe").fetchone()  # holds its snapshot: the WAL cannot start over
            statements: list[str] = []
            storage.db._wconn.set_trace_callback(statements.append)
            await _write_frames(storage, 3 * CHECKPOINT_FRAMES)
            checkpoints = sum("wal_checkpoint" in sql for sql in statements)
            assert 1 <= checkpoints <= 4, checkpoints  # once per CHECKPOINT_FRAMES written, not after every group
            assert storage.db._wal_frames() >= 3 * CHECKPOINT_FRAMES
            reader.execute("COMMIT")
            await _write_frames(storage, 2 * CHECKPOINT_FRAMES)  # the next checkpoint completes, the WAL starts over
            assert storage.db._wal_frames() < CHECKPOINT_FRAMES + 64
    finally:
        reader.close()
