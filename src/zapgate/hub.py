"""Fan-out of committed events to the connections (and other consumers) of their tenant.

One node: the storage calls :meth:`EventHub.publish` after each commit, in ``seq`` order; the hub hands each
event to the subscribers of the tenant whose filter (``subscribe``: sessions and event types) it matches. It
finds them through an index by session, so a tenant with many connections that each follow their own session
costs one lookup per event, not one check per connection; it encodes the event once, and only when at least one
subscriber wants it, and every one of them gets the same frame. Subscribers must not block: a connection queues
the frame (or, when its buffer is full, reads it from the log later).

Several nodes (``docs/scaling.md``): events of one tenant are committed by several nodes, so this node's own
commits are no longer the whole story. The hub then keeps, per tenant, a **cursor**: every event up to it is
committed and was handed to the subscribers here. It learns that a tenant has events up to ``seq`` N from its
own commits (:meth:`publish`) and from the bus (:meth:`notify`); when they do not follow the cursor directly, it
reads the missing ones from the log, in order, so subscribers always get every event after the cursor they
subscribed at, in ``seq`` order, with no gap and no duplicate. A slow periodic check of the log covers a notice
the bus lost.

Why a subscriber misses nothing when it subscribes, then reads the log up to the newest ``seq`` it finds, then
takes what the hub hands it: every event up to the cursor at the moment of subscribing is committed (the cursor
only ever advances over committed events, and a tenant's events commit in ``seq`` order), so the subscriber's
read finds them; the hub hands it every later one.

Other consumers that only need "tenant T has events up to N" (webhook deliverers) register with
:meth:`EventHub.add_waker` and read the log themselves.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from typing import Protocol

import msgspec

from .protocol import EVERYTHING, Event, EventFilter, encode
from .storage import StoredEvent

__all__ = ["EventHub", "Subscriber", "Waker", "event_frame"]

log = logging.getLogger("zapgate.server")

READ_BACK_PAGE = 500
POLL_INTERVAL_S = 5.0
"""How often a clustered hub checks the log of its subscribed tenants for events no notice told it about."""

Reader = Callable[[str, int, int], Awaitable[list[StoredEvent]]]
"""``(tenant, after, limit)`` → the tenant's events after ``after``, in order."""
Newest = Callable[[list[str]], Awaitable[dict[str, int]]]
"""The newest committed ``seq`` of each of the given tenants."""
Waker = Callable[[str, int], None]
"""Told that ``tenant`` has committed events up to ``seq``; must return at once."""


class Subscriber(Protocol):
    def deliver(self, seq: int, frame: str) -> None:
        """Take one encoded event frame; must return at once."""


def event_frame(event: StoredEvent) -> str:
    """The wire frame of a stored event."""
    return encode(
        Event(event=event.event, seq=event.seq, session=event.session, data=msgspec.Raw(event.data), ts=event.ts)
    ).decode()


class _Status(msgspec.Struct):
    status: str = ""


_status_decoder = msgspec.json.Decoder(_Status)
_COUNTED_BY_STATUS = frozenset({"session.status", "message.status"})


class _Audience:
    """The subscribers of one tenant, indexed by the sessions they follow."""

    __slots__ = ("all_sessions", "by_session", "filters")

    def __init__(self) -> None:
        self.filters: dict[Subscriber, EventFilter] = {}
        self.all_sessions: set[Subscriber] = set()
        """Those that follow every session."""
        self.by_session: dict[str, set[Subscriber]] = {}
        """Those that follow some sessions, under each of them."""

    def add(self, subscriber: Subscriber, only: EventFilter) -> None:
        self.remove(subscriber)
        self.filters[subscriber] = only
        if only.sessions is None:
            self.all_sessions.add(subscriber)
        else:
            for session in only.sessions:
                self.by_session.setdefault(session, set()).add(subscriber)

    def remove(self, subscriber: Subscriber) -> None:
        only = self.filters.pop(subscriber, None)
        if only is None:
            return
        if only.sessions is None:
            self.all_sessions.discard(subscriber)
            return
        for session in only.sessions:
            followers = self.by_session.get(session)
            if followers is not None:
                followers.discard(subscriber)
                if not followers:
                    del self.by_session[session]

    def wanting(self, session: str, event: str) -> list[Subscriber]:
        """The subscribers whose filter matches an event of ``session`` named ``event``."""
        found = [s for s in self.all_sessions if self._wants_type(s, event)]
        followers = self.by_session.get(session)
        if followers:
            found += [s for s in followers if self._wants_type(s, event)]
        return found

    def _wants_type(self, subscriber: Subscriber, event: str) -> bool:
        events = self.filters[subscriber].events
        return events is None or event in events

    def __len__(self) -> int:
        return len(self.filters)

    def __iter__(self) -> Iterator[Subscriber]:
        return iter(self.filters)


class EventHub:
    def __init__(self) -> None:
        self._subscribers: dict[str, _Audience] = {}
        self._wakers: list[Waker] = []
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        """Events this node committed so far, by (event, status) — status only for session.status and
        message.status."""
        # Clustered only:
        self._reader: Reader | None = None
        self._cursor: dict[str, int] = {}
        self._target: dict[str, int] = {}
        self._catching_up: dict[str, asyncio.Task[None]] = {}
        self._poller: asyncio.Task[None] | None = None
        self.caught_up = 0
        """Events read back from the log (committed by other nodes, or behind a notice that came first)."""

    @property
    def clustered(self) -> bool:
        return self._reader is not None

    def cluster(self, reader: Reader, newest: Newest, cursors: dict[str, int]) -> None:
        """Switch to several nodes: read missing events with ``reader``, start from ``cursors`` (every tenant's
        newest ``seq`` now), and check ``newest`` now and then. Call once, before any event is published."""
        self._reader = reader
        self._cursor = dict(cursors)
        self._poller = asyncio.create_task(self._poll(newest), name="hub-poll")

    async def close(self) -> None:
        tasks = [*self._catching_up.values(), *([self._poller] if self._poller else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- subscribers

    def subscribe(self, tenant: str, subscriber: Subscriber, only: EventFilter = EVERYTHING) -> None:
        """Hand ``subscriber`` the tenant's events that match ``only`` from now on. Subscribing again replaces
        the filter: the next event is matched against the new one."""
        audience = self._subscribers.get(tenant)
        if audience is None:
            audience = self._subscribers[tenant] = _Audience()
        audience.add(subscriber, only)

    def unsubscribe(self, tenant: str, subscriber: Subscriber) -> None:
        audience = self._subscribers.get(tenant)
        if audience is not None:
            audience.remove(subscriber)
            if not audience:
                del self._subscribers[tenant]

    def subscribers(self, tenant: str) -> list[Subscriber]:
        """The tenant's subscribers here, whatever they follow."""
        audience = self._subscribers.get(tenant)
        return list(audience) if audience is not None else []

    def add_waker(self, waker: Waker) -> None:
        self._wakers.append(waker)

    def connection_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())

    # -- events in

    def publish(self, events: Sequence[StoredEvent]) -> None:
        """Events this node just committed, in ``seq`` order per tenant."""
        for event in events:
            status = _status_decoder.decode(event.data).status if event.event in _COUNTED_BY_STATUS else ""
            self.counts[(event.event, status)] += 1
        if not self.clustered:
            newest: dict[str, int] = {}
            for event in events:
                self._deliver(event)
                newest[event.tenant] = event.seq
            for tenant, seq in newest.items():  # once per tenant: a waker wants the newest seq, not each one
                self._wake(tenant, seq)
            return
        by_tenant: dict[str, list[StoredEvent]] = {}
        for event in events:
            by_tenant.setdefault(event.tenant, []).append(event)
        for tenant, batch in by_tenant.items():
            self._arrive(tenant, batch[-1].seq, batch)

    def notify(self, tenant: str, seq: int) -> None:
        """Another node committed events of ``tenant`` up to ``seq`` (from the bus)."""
        if self.clustered:
            self._arrive(tenant, seq, None)

    def _arrive(self, tenant: str, last: int, events: list[StoredEvent] | None) -> None:
        cursor = self._cursor.get(tenant, 0)
        if last <= cursor:
            return
        if tenant not in self._subscribers:
            # Nobody here wants them: only remember that they are committed.
            self._cursor[tenant] = last
            self._wake(tenant, last)
            return
        if events is not None and events[0].seq == cursor + 1 and tenant not in self._catching_up:
            for event in events:
                self._deliver(event)
            self._cursor[tenant] = last
            self._wake(tenant, last)
            return
        self._target[tenant] = max(self._target.get(tenant, 0), last)
        if tenant not in self._catching_up:
            self._catching_up[tenant] = asyncio.create_task(self._catch_up(tenant), name=f"hub-catch-up-{tenant}")

    async def _catch_up(self, tenant: str) -> None:
        """Read the tenant's events between the cursor and the target from the log and hand them on in order."""
        assert self._reader is not None
        try:
            while self._cursor.get(tenant, 0) < self._target.get(tenant, 0):
                cursor, target = self._cursor.get(tenant, 0), self._target[tenant]
                try:
                    page = await self._reader(tenant, cursor, min(READ_BACK_PAGE, target - cursor))
                except Exception:
                    log.exception("reading the events of tenant %s after %d failed; retrying", tenant, cursor)
                    await asyncio.sleep(1.0)
                    continue
                if not page:
                    # Pruned before anyone here needed them: nothing left to hand on.
                    log.warning("events %d-%d of tenant %s are no longer in the log", cursor + 1, target, tenant)
                    self._cursor[tenant] = target
                    continue
                for event in page:
                    if event.seq > self._cursor.get(tenant, 0):
                        self._deliver(event)
                        self._cursor[tenant] = event.seq
                self.caught_up += len(page)
                self._wake(tenant, self._cursor[tenant])
        finally:
            self._target.pop(tenant, None)
            self._catching_up.pop(tenant, None)

    async def _poll(self, newest: Newest) -> None:
        while True:
            await asyncio.sleep(POLL_INTERVAL_S)
            tenants = list(self._subscribers)
            if not tenants:
                continue
            try:
                for tenant, seq in (await newest(tenants)).items():
                    self._arrive(tenant, seq, None)
            except Exception:
                log.exception("checking the event log for missed notices failed")

    # -- events out

    def _deliver(self, event: StoredEvent) -> None:
        audience = self._subscribers.get(event.tenant)
        if not audience:
            return
        wanting = audience.wanting(event.session, event.event)
        if not wanting:
            return  # nobody here wants it: not even encoded
        frame = event_frame(event)
        for subscriber in wanting:
            subscriber.deliver(event.seq, frame)

    def _wake(self, tenant: str, seq: int) -> None:
        for waker in self._wakers:
            try:
                waker(tenant, seq)
            except Exception:
                log.exception("event waker failed")

    def tenants_with_subscribers(self) -> Iterable[str]:
        return self._subscribers.keys()
