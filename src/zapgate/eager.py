"""Start a task's first step at once, in the caller's turn of the event loop (an *eager* task).

``asyncio.create_task`` runs a coroutine's first step in the loop's *next* turn. During an inbound burst a turn
lasts about 2 ms, and a command read from a socket went through three of them before its reply (read, start,
answer: ``bench/findings.md``, rounds 10 and 12); a command that waits for nothing (``ping``) can be answered in
the turn in which the connection's reader takes it. Python 3.12 has this built in
(``asyncio.Task(..., eager_start=True)``); on 3.11 :func:`start_eagerly` does what it does: the task is made
first, and its first step runs at once *as that task* (``asyncio.current_task()`` is the new task while it runs,
so an ``asyncio.timeout`` or an anyio cancel scope entered there belongs to it, not to the caller), in the task's
own context. The task then continues the coroutine from where that step stopped, and ends with its result,
exception or cancellation.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine, Generator
from typing import Any

__all__ = ["start_eagerly"]

_HANDED: Any = object()
"""What :attr:`_Steps._first` holds once the task has taken over (or before the first step ran)."""


def start_eagerly(coro: Coroutine[Any, Any, None], *, name: str) -> asyncio.Task[None]:
    """A task running ``coro``, whose first step has already run (up to its first wait, or to its end)."""
    loop = asyncio.get_running_loop()
    if sys.version_info >= (3, 12):
        return asyncio.Task(coro, loop=loop, name=name, eager_start=True)
    steps = _Steps(coro)
    context = contextvars.copy_context()
    task: asyncio.Task[None] = loop.create_task(steps, name=name, context=context)
    caller = asyncio.current_task(loop)
    if caller is not None:
        asyncio.tasks._leave_task(loop, caller)
    asyncio.tasks._enter_task(loop, task)
    try:
        context.run(steps.first)
    finally:
        asyncio.tasks._leave_task(loop, task)
        if caller is not None:
            asyncio.tasks._enter_task(loop, caller)
    return task


class _Steps(Coroutine[Any, Any, None]):
    """The coroutine a task of :func:`start_eagerly` runs: ``coro``, whose first step :meth:`first` took already.
    The task's own first step hands it what that step waits for (or its end); later steps are ``coro``'s."""

    __slots__ = ("_coro", "_first")

    def __init__(self, coro: Coroutine[Any, Any, None]) -> None:
        self._coro = coro
        self._first: Any = _HANDED  # what the first step awaits (a future, or None), or how it ended

    def first(self) -> None:
        try:
            self._first = self._coro.send(None)
        except BaseException as exc:  # StopIteration included: the task ends with it at its first step
            self._first = _Ended(exc)

    def send(self, value: Any) -> Any:
        first = self._first
        if first is _HANDED:
            return self._coro.send(value)
        self._first = _HANDED
        if isinstance(first, _Ended):
            raise first.exc
        return first  # the task now waits for what coro waits for

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:
        first, self._first = self._first, _HANDED
        if isinstance(first, _Ended):  # coro ended in its first step: cancelling the task now changes nothing in it
            raise first.exc
        # else a cancellation (before the task's own first step or later) reaches coro where it waits
        return self._coro.throw(typ) if val is None and tb is None else self._coro.throw(typ, val, tb)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, None, None]:
        raise TypeError("an eager task's coroutine is driven by its task")


class _Ended:
    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
