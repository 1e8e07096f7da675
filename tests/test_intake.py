"""The turn budget: how much of an inbound burst one turn of the event loop takes (``sessions/intake.py``), and
the publishing of big committed batches, which waits for its share of it (``Database.pace_publishing``).

A turn is observed with a callback that schedules itself with ``call_soon``: it runs exactly once per turn."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from zapgate.sessions.intake import TurnBudget
from zapgate.storage import StoredEvent
from zapgate.storage.database import PACED_EVENTS
from zapgate.storage.sqlite import SqliteDatabase

from .support import RunningGateway, eventually


def _turn_counter() -> tuple[Callable[[], int], Callable[[], None]]:
    """(the current turn's number, stop counting)."""
    loop = asyncio.get_running_loop()
    state = {"turn": 0, "on": True}

    def tick() -> None:
        if state["on"]:
            state["turn"] += 1
            loop.call_soon(tick)

    loop.call_soon(tick)
    return (lambda: state["turn"]), (lambda: state.update(on=False))


async def _admit_all(budget: TurnBudget, sizes: list[int]) -> list[tuple[int, int, int]]:
    """Every request queued in the same turn; returns (request index, units, turn admitted) in admission order."""
    turn, stop = _turn_counter()
    admitted: list[tuple[int, int, int]] = []

    async def request(i: int, units: int) -> None:
        await budget.admit(units)
        admitted.append((i, units, turn()))

    await asyncio.sleep(0)
    await asyncio.gather(*(request(i, units) for i, units in enumerate(sizes)))
    stop()
    return admitted


async def test_a_turn_takes_at_most_its_room_and_the_rest_follow_in_order() -> None:
    budget = TurnBudget(32)
    admitted = await _admit_all(budget, [10] * 10)

    assert [i for i, _, _ in admitted] == list(range(10))  # first come, first served
    per_turn: dict[int, int] = defaultdict(int)
    for _, units, turn in admitted:
        per_turn[turn] += units
    assert max(per_turn.values()) <= 32
    assert len(per_turn) == 4  # 30 + 30 + 30 + 10: the work is spread over four turns
    assert budget.waiting == 0


async def test_a_request_larger_than_a_turn_is_admitted_alone() -> None:
    budget = TurnBudget(8)
    admitted = await _admit_all(budget, [3, 20, 3])

    turns = [turn for _, _, turn in admitted]
    assert [i for i, _, _ in admitted] == [0, 1, 2]
    assert len(set(turns)) == 3  # the large one did not share its turn, and did not wait forever


async def test_a_cancelled_request_gives_up_its_place() -> None:
    budget = TurnBudget(4)
    order: list[str] = []

    async def request(name: str) -> None:
        await budget.admit(4)
        order.append(name)

    filler = asyncio.create_task(request("filler"))  # takes the whole turn the three start in
    first = asyncio.create_task(request("first"))
    second = asyncio.create_task(request("second"))
    await asyncio.sleep(0)  # all three ran up to their admission: the last two wait
    assert budget.waiting == 2
    await filler
    first.cancel()
    await second
    assert order == ["filler", "second"]
    with pytest.raises(asyncio.CancelledError):
        await first
    assert budget.waiting == 0


async def test_nothing_waits_while_a_turn_has_room() -> None:
    budget = TurnBudget(32)
    turn, stop = _turn_counter()
    await asyncio.sleep(0)
    before = turn()
    for _ in range(4):
        await budget.admit(8)  # 32 in all: no request waits for another turn
    assert turn() == before
    stop()


def test_a_turn_must_have_room() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        TurnBudget(0)


async def test_a_write_publishing_many_events_waits_for_the_pace_and_one_with_few_does_not(tmp_path: Path) -> None:
    db = SqliteDatabase(tmp_path / "x.db", synchronous="normal", migrations=["CREATE TABLE t (x)"], name="x")
    gate = asyncio.Event()
    asked: list[int] = []

    async def pace(events: int) -> None:
        asked.append(events)
        await gate.wait()

    published: list[int] = []
    db.pace_publishing = pace
    db.on_commit = lambda events: published.append(len(events))

    def writing(events: int) -> Callable[[Any], tuple[int, list[StoredEvent]]]:
        def write(conn: Any) -> tuple[int, list[StoredEvent]]:
            conn.execute("INSERT INTO t VALUES (?)", (events,))
            return events, [StoredEvent("acme", i + 1, "s", "message.received", b"{}", 0.0) for i in range(events)]

        return write

    await db.open()
    try:
        assert await db.write(writing(PACED_EVENTS - 1)) == PACED_EVENTS - 1
        assert asked == [] and published == [PACED_EVENTS - 1]
        many = asyncio.ensure_future(db.write(writing(PACED_EVENTS)))
        await eventually(lambda: asked == [PACED_EVENTS], "the big batch to ask for its share of a turn")
        await asyncio.sleep(0.05)
        assert published == [PACED_EVENTS - 1] and not many.done()  # committed, not yet published
        gate.set()
        assert await many == PACED_EVENTS
        assert published == [PACED_EVENTS - 1, PACED_EVENTS]
    finally:
        await db.close()


async def test_publishing_waits_for_a_share_of_a_turn_only_while_received_messages_are_queued(
    gateway: RunningGateway,
) -> None:
    gw = gateway.gateway
    assert gw.storage.db.pace_publishing == gw.sessions.admit_publishing
    turn, stop = _turn_counter()
    await asyncio.sleep(0)
    started = turn()
    await gw.sessions.admit_publishing(256)  # no received messages are being queued: it does not wait
    assert turn() == started
    await gw.sessions._intake.admit(1)  # received messages take some of this turn's room
    await gw.sessions.admit_publishing(256)  # a full batch takes a whole turn's room: it waits for the next
    stop()
    assert turn() > started


async def test_a_budget_is_busy_while_a_turn_has_admitted_work_or_some_waits() -> None:
    budget = TurnBudget(32)
    assert not budget.busy
    await budget.admit(1)
    assert budget.busy
    turn, stop = _turn_counter()
    start = turn()
    while turn() < start + 2:  # a turn with nothing admitted resets it
        await asyncio.sleep(0)
    stop()
    assert not budget.busy
