"""The per-turn budget of the event loop that spreads a burst of received messages over turns."""

from __future__ import annotations

import asyncio

from zapgate.sessions.turns import TurnBudget


async def test_work_beyond_the_budget_starts_in_a_later_turn() -> None:
    loop = asyncio.get_running_loop()
    budget = TurnBudget(100)
    turn = 0

    def count() -> None:  # once in every turn of the loop
        nonlocal turn
        turn += 1
        if turn < 50:
            loop.call_soon(count)

    loop.call_soon(count)
    started: dict[str, int] = {}

    async def work(name: str, units: int) -> None:
        await budget.take(units)
        started[name] = turn

    await asyncio.gather(work("a", 60), work("b", 30), work("c", 60), work("d", 200), work("e", 10))
    assert started["a"] == started["b"] == started["e"]  # 100 units: together
    assert started["c"] > started["a"]  # did not fit: the next turn
    assert started["d"] > started["c"]  # bigger than the budget: alone, in a turn of its own
