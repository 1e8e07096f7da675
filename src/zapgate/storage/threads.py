"""A database connection's own thread: it runs the functions the event loop hands it, one at a time, in order.

This is what ``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor`` does, at a third of the cost of a
round trip (18 to 30 instead of 60 to 90 µs of CPU in ``bench/thread_hop.py`` runs under uvloop on the benchmark
machine; see ``bench/findings.md``, round 6): no ``concurrent.futures.Future`` with its condition variable and
no chaining of two futures, only a queue, the loop's future and one ``call_soon_threadsafe``. A group commit
makes one round trip, and at a few hundred messages a second each message makes several of them alone.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["ConnectionThread"]

log = logging.getLogger("zapgate.storage")

T = TypeVar("T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], asyncio.Future[Any], asyncio.AbstractEventLoop]


class ConnectionThread:
    """One thread, started at the first :meth:`run` and ended by :meth:`stop`, for good: a second thread would
    share the first one's queue, and the connection with it. It is a daemon thread: a gateway
    closes its databases before it exits (each group is committed or rolled back by then), and a process that
    did not close them does not hang at exit on a thread waiting for work."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run ``fn(*args)`` in the thread after the functions handed to it before; the future resolves with its
        result (or exception) on the calling event loop. Cancelling the future does not stop ``fn``."""
        if self._stopped:
            raise RuntimeError(f"{self.name} was stopped")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self.name, daemon=True)
            self._thread.start()
        self._jobs.put((fn, args, future, loop))
        return future

    def stop(self) -> None:
        """End the thread once the functions already handed to it have run (it is not waited for); :meth:`run`
        refuses from now on."""
        if self._thread is not None and not self._stopped:
            self._jobs.put(None)
        self._stopped = True

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, future, loop = job
            try:
                outcome: tuple[bool, Any] = (True, fn(*args))
            except BaseException as exc:  # handed to the caller, as an executor does
                outcome = (False, exc)
            try:
                loop.call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the loop is closed: no one is waiting any more
                log.debug("%s: a result arrived after its event loop closed", self.name)


def _settle(future: asyncio.Future[Any], outcome: tuple[bool, Any]) -> None:
    if future.done():  # cancelled by its caller meanwhile
        return
    ok, value = outcome
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
