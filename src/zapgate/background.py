"""Owned background tasks: every task zapgate starts is tracked, its failure logged, and cancelled on close.

A bare ``asyncio.create_task`` or ``call_later`` whose result nobody keeps can be garbage-collected while it
runs, and its exception is only reported, if at all, when that happens. :class:`BackgroundTasks` keeps a
reference to each task until it ends, logs the exception of one that fails, and cancels (and awaits) all of
them when its owner closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

__all__ = ["BackgroundTasks"]

T = TypeVar("T")


class BackgroundTasks:
    """The background tasks of one owner (a manager, an engine); ``log`` receives their failures."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def closed(self) -> bool:
        return self._closed

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str) -> asyncio.Task[T]:
        """Run ``coro`` in a task owned here."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"cannot start {name}: its owner is closed")
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def later(self, delay: float, fn: Callable[..., Awaitable[Any] | Any], *args: Any, name: str) -> asyncio.Task[None]:
        """After ``delay`` seconds, call ``fn(*args)`` (awaiting it if it is a coroutine function), in a task
        owned here; cancel the task to call it off."""

        async def run() -> None:
            if delay > 0:
                await asyncio.sleep(delay)
            result = fn(*args)
            if asyncio.iscoroutine(result):
                await result

        return self.spawn(run(), name=name)

    async def close(self) -> None:
        """Cancel every task still running and wait until they have all ended."""
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._log.error("background task %s failed", task.get_name(), exc_info=exc)
