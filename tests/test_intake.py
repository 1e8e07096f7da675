"""The turn budget: how much of an inbound burst one turn of the event loop takes (``sessions/intake.py``).

A turn is observed with a callback that schedules itself with ``call_soon``: it runs exactly once per turn."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable

import pytest

from zapgate.sessions.intake import TurnBudget


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
