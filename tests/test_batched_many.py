"""Several requests of a batched write queued together share one future (``Database.submit_batched_many``, what
an engine's batch of received messages uses): it resolves with each request's own outcome, in order; requests
beyond a batch's ``MAX_BATCH`` go to the next batch; a request that fails fails alone, and a group that fails as a
whole fails each of its requests. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

from zapgate.storage import Storage
from zapgate.storage.database import MAX_BATCH


def _ensure_table(conn: Any) -> tuple[None, list[Any]]:
    conn.execute("CREATE TABLE IF NOT EXISTS probe (n INTEGER)")
    return None, []


def _insert(conn: Any, numbers: list[int]) -> tuple[list[tuple[bool, Any]], list[Any]]:
    """Each number is stored and answered with its square and the size of its batch; a negative one fails the
    batch (so the database writes its requests one by one, and only that one fails)."""
    if any(n < 0 for n in numbers):
        raise ValueError("negative")
    conn.executemany("INSERT INTO probe (n) VALUES (?)", [(n,) for n in numbers])
    return [(True, (n * n, len(numbers))) for n in numbers], []


async def _stored(storage: Storage) -> list[int]:
    return [int(n) for (n,) in await storage.db.read(lambda c: c.execute("SELECT n FROM probe ORDER BY n").fetchall())]


async def test_requests_queued_together_get_their_own_outcomes_in_order(storage: Storage) -> None:
    await storage.db.write(_ensure_table)
    alone = [storage.db.submit_batched("probe", n, _insert) for n in range(MAX_BATCH - 10)]
    together = storage.db.submit_batched_many("probe", list(range(1000, 1030)), _insert)
    after = storage.db.submit_batched("probe", 2000, _insert)

    outcomes = await together
    assert [value[0] for _, value in outcomes] == [n * n for n in range(1000, 1030)]
    assert all(ok for ok, _ in outcomes)
    # 10 of them filled the first batch; the other 20 began the next one, which the request after them joined
    assert [value[1] for _, value in outcomes] == [MAX_BATCH] * 10 + [21] * 20
    assert await after == (2000 * 2000, 21)
    assert [n for n, _ in await asyncio.gather(*alone)] == [n * n for n in range(MAX_BATCH - 10)]
    assert await _stored(storage) == [*range(MAX_BATCH - 10), *range(1000, 1030), 2000]


async def test_a_failing_request_fails_alone_and_nothing_queued_is_an_empty_answer(storage: Storage) -> None:
    await storage.db.write(_ensure_table)
    outcomes = await storage.db.submit_batched_many("probe", [1, -2, 3], _insert)
    assert [ok for ok, _ in outcomes] == [True, False, True]
    assert isinstance(outcomes[1][1], ValueError)
    assert outcomes[0][1] == (1, 1) and outcomes[2][1] == (9, 1)  # written one by one after the batch failed
    assert await storage.db.submit_batched_many("probe", [], _insert) == []
    assert await _stored(storage) == [1, 3]


async def test_a_group_that_fails_as_a_whole_fails_each_request(storage: Storage) -> None:
    await storage.db.write(_ensure_table)
    broken = RuntimeError("the group could not commit")

    async def failing(fns: list[Any]) -> Any:
        raise broken

    storage.db._apply_group = failing  # type: ignore[method-assign]
    outcomes = await storage.db.submit_batched_many("probe", list(range(MAX_BATCH + 5)), _insert)
    assert outcomes == [(False, broken)] * (MAX_BATCH + 5)
