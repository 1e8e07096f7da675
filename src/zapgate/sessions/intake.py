"""How much of an inbound burst one turn of the event loop takes.

Engines hand a session's waiting messages to the gateway in batches (up to
:data:`~zapgate.engines.base.SINK_BATCH`), and after a reconnect or a history sync every session of a node
does so at once. Naming and queueing a received message costs tens of microseconds of the event loop, so a
hundred sessions' batches resumed in one turn would hold the loop for a hundred milliseconds, and every other
client's command waits behind them. :class:`TurnBudget` admits at most a fixed number of messages per turn of
the loop, first come first served; the rest wait for the following turns, between which the loop serves
sockets. A burst then costs the same work spread over more, short turns. While it is in use, publishing a big
committed batch takes its share of it too (:meth:`~zapgate.sessions.manager.SessionManager.admit_publishing`),
so that a turn does not both queue received messages and publish a batch of their events.
"""

from __future__ import annotations

import asyncio
import collections

__all__ = ["TurnBudget"]


class TurnBudget:
    """About ``per_turn`` units of work admitted per turn of the event loop (never more than twice that).

    A turn is what runs between two polls of the loop's selector: a callback scheduled with ``call_soon`` runs
    in the next one. Once a turn's room is spent, requests wait and are admitted in the order they came, each
    later turn's room going to the first of them; a request larger than ``per_turn`` is admitted alone, so
    nothing waits forever. (The bound is twice ``per_turn`` because a turn runs both what the previous turn
    admitted for it and what arrives after its own room was handed out and fits in it.)
    """

    __slots__ = ("_next_turn_scheduled", "_per_turn", "_spent", "_waiting")

    def __init__(self, per_turn: int) -> None:
        if per_turn < 1:
            raise ValueError("per_turn must be at least 1")
        self._per_turn = per_turn
        self._spent = 0
        self._waiting: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._next_turn_scheduled = False

    @property
    def waiting(self) -> int:
        """Requests waiting for a later turn."""
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        """Whether this turn admitted work or some waits for a later one."""
        return self._spent > 0 or bool(self._waiting)

    async def admit(self, units: int) -> None:
        """Return once ``units`` of work may run: at once if this turn has room, else in a later turn."""
        if not self._waiting and self._fits(units):
            self._spent += units
            self._schedule_next_turn()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((units, future))
        self._schedule_next_turn()
        await future  # if cancelled, the next turn skips it

    def _fits(self, units: int) -> bool:
        return self._spent == 0 or self._spent + units <= self._per_turn

    def _schedule_next_turn(self) -> None:
        if not self._next_turn_scheduled:
            self._next_turn_scheduled = True
            asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        """Runs once per turn while work is admitted or waiting: a new turn's room, given to the waiting in
        order (they resume in the next turn)."""
        self._next_turn_scheduled = False
        self._spent = 0
        while self._waiting:
            units, future = self._waiting[0]
            if future.done():  # cancelled while waiting
                self._waiting.popleft()
                continue
            if not self._fits(units):
                break
            self._waiting.popleft()
            self._spent += units
            future.set_result(None)
        if self._spent or self._waiting:
            self._schedule_next_turn()
