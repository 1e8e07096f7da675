"""One rule for every call into neonize's Go library in a worker: nothing touches Go's global maps while a
connect or a stop writes them.

neonize keeps its clients in plain Go maps (``clients``, ``eventChannel``, ``StopSignal``) without a mutex.
``Neonize()`` (a connect) writes them until the new client is registered, ``Stop()`` deletes from them, and
*every* other exported function starts by reading ``clients[uuid]``. A read that overlaps a write is a Go
``fatal error: concurrent map read and map write``, which kills the worker and every session in it.

So the worker's calls take an :class:`FfiLock`: connects (until Go has registered the client) and stops hold it
**exclusively**; every other call (sends, ``is_on_whatsapp``, read receipts, presence, pairing codes, logout)
holds it **shared**, for the whole call. Shared holders run side by side, so sends of one or many sessions are
never serialised against each other; a connect or stop waits for the calls in flight, and calls that arrive
while it waits queue behind it (writer preference: a busy worker cannot starve its connects).

:class:`GuardedGo` applies the shared side automatically: it replaces a client's FFI object
(``client._NewAClient__client``, the seam every neonize method goes through), so no call can forget it.

What this cannot cover (docs/engines.md): reads Go makes by itself, inside a running ``Neonize()`` when a
session's event pump starts (``eventChannel[id]``, ``clients[id]``); the map deletes of a ``Stop()`` that is
still stuck after its timeout; and the registration probe, which must read ``clients`` while its own connect
may be writing it (one write of nanoseconds against a probe every 10 ms). All are outside anything Python can
order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

__all__ = ["UNGUARDED_CALLS", "FfiLock", "GuardedGo"]

UNGUARDED_CALLS = frozenset({"Neonize", "Stop", "StopAll", "SetProxyAddress"})
"""FFI functions :class:`GuardedGo` passes through without the shared lock: ``Neonize`` runs for the whole
life of a session (the exclusive part of a connect is taken around it by the session runner), ``Stop`` is
called under the exclusive lock, and ``SetProxyAddress`` is the registration probe made inside a connect's
exclusive section."""


class FfiLock:
    """A readers-writer lock for one event loop, with writer preference (see the module documentation)."""

    def __init__(self) -> None:
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0
        self._changed = asyncio.Condition()
        self.stats: collections.Counter[str] = collections.Counter()
        """``shared``/``exclusive``: holds so far; ``max_shared``: most shared holders at once."""

    @property
    def readers(self) -> int:
        return self._readers

    @contextlib.asynccontextmanager
    async def shared(self) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: not self._writing and self._writers_waiting == 0)
            self._readers += 1
            self.stats["shared"] += 1
            self.stats["max_shared"] = max(self.stats["max_shared"], self._readers)
        try:
            yield
        finally:
            async with self._changed:
                self._readers -= 1
                self._changed.notify_all()

    @contextlib.asynccontextmanager
    async def exclusive(self) -> AsyncIterator[None]:
        async with self._changed:
            self._writers_waiting += 1
            try:
                await self._changed.wait_for(lambda: not self._writing and self._readers == 0)
            finally:
                self._writers_waiting -= 1
            self._writing = True
            self.stats["exclusive"] += 1
        try:
            yield
        finally:
            async with self._changed:
                self._writing = False
                self._changed.notify_all()


class GuardedGo:
    """Wraps a client's FFI object so that each call holds ``lock`` shared (except :data:`UNGUARDED_CALLS`)."""

    def __init__(self, ffi: Any, lock: FfiLock) -> None:
        self.ffi = ffi
        self.lock = lock

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        target = getattr(self.ffi, name)
        if name in UNGUARDED_CALLS:
            unguarded: Callable[..., Awaitable[Any]] = target
            return unguarded

        async def guarded(*args: Any) -> Any:
            async with self.lock.shared():
                return await target(*args)

        return guarded
