"""Stand-ins for :class:`asyncio.Queue` and :class:`asyncio.Event` that cost next to nothing while unused.

Every open WebSocket connection has a receive queue and a "writable" event. asyncio's allocate a
``collections.deque`` (a 64-slot block, 760 bytes) for each of their waiter lists and for the queue's items,
whether or not anything ever waits: about 4 KiB of a connection that sits idle (``bench/findings.md``, "Idle
connections, round 4"). These hold a list or a future only while something is queued or waiting.

They offer the operations uvicorn's WebSocket protocol uses (``tests/test_edge_internals.py`` checks which), and
the few :class:`~zapgate.server.edge.EdgeWebSocketProtocol` rewrites its ``receive`` with.
"""

from __future__ import annotations

import asyncio
from typing import Generic, Literal, TypeVar

__all__ = ["Inbox", "WaitFlag"]

T = TypeVar("T")


class Inbox(Generic[T]):
    """A FIFO queue without bound for one reader at a time: ``put_nowait``, ``await get()``, ``empty`` (and
    ``get_nowait`` and :meth:`wait`, which uvicorn's ``receive`` is rewritten with).

    As with :class:`asyncio.Queue`, an item stays queued until a reader takes it, so a ``get`` cancelled after
    it was woken loses nothing."""

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: list[T] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items) if self._items else 0

    def put_nowait(self, item: T) -> None:
        if self._items is None:
            self._items = [item]
        else:
            self._items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def get_nowait(self) -> T:
        """The oldest item; :class:`asyncio.QueueEmpty` if there is none."""
        items = self._items
        if not items:
            raise asyncio.QueueEmpty
        item = items.pop(0)  # a handful at most: uvicorn stops reading while one waits
        if not items:
            self._items = None
        return item

    def wait(self) -> asyncio.Future[None]:
        """A future done when an item is put (at once if there is one): ``while inbox.empty(): await
        inbox.wait()`` waits without a coroutine of its own."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            raise RuntimeError("Inbox: another reader is already waiting")
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        if self._items:
            self._waiter = None
            waiter.set_result(None)
        return waiter

    async def get(self) -> T:
        while not self._items:
            await self.wait()
        return self.get_nowait()


class WaitFlag:
    """A flag that can be awaited: ``set``, ``clear``, ``is_set``, ``await wait()``, as :class:`asyncio.Event`."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> Literal[True]:
        if self._set:
            return True
        waiter = asyncio.get_running_loop().create_future()
        if self._waiters is None:
            self._waiters = [waiter]
        else:
            self._waiters.append(waiter)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)
                if not self._waiters:
                    self._waiters = None
