"""A budget of work per turn of the event loop, so that a burst does not keep other clients waiting.

asyncio runs every callback that is ready before it looks at the sockets again. When a hundred sessions' received
messages are handed over at once, each batch is a little work, but all of them land in one turn of the loop, and
another tenant's ``ping`` waits for all of them. A :class:`TurnBudget` lets work of up to ``limit`` units start in
one turn; whoever finds it spent waits for the next turn (after the loop has read and written its sockets).
"""

from __future__ import annotations

import asyncio

__all__ = ["TurnBudget"]


class TurnBudget:
    __slots__ = ("_used", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._used = 0

    async def take(self, units: int) -> None:
        """Return once ``units`` may start in this turn (at once if the turn's budget has room for them, or if
        nothing was started in it yet: a batch bigger than the budget still goes, alone)."""
        # The next turn itself is what is awaited (after its I/O), not an event: hence sleep(0) in a loop.
        while self._used and self._used + units > self.limit:  # noqa: ASYNC110
            await asyncio.sleep(0)
        if not self._used:
            asyncio.get_running_loop().call_soon(self._new_turn)  # runs first in the next turn
        self._used += units

    def _new_turn(self) -> None:
        self._used = 0
