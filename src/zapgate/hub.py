"""In-process fan-out of committed events to the connections of their tenant.

The storage calls :meth:`EventHub.publish` after each commit, in ``seq`` order; the hub encodes each event
once and hands the frame to every subscriber of the tenant. Subscribers must not block: a connection
queues the frame (or, when its buffer is full, closes itself as a slow consumer). With several nodes this
becomes the bus (Redis), behind the same two calls.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from typing import Protocol

import msgspec

from .protocol import Event, encode
from .storage import StoredEvent

__all__ = ["EventHub", "Subscriber", "event_frame"]


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


class EventHub:
    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscriber]] = {}
        self.counts: collections.Counter[tuple[str, str]] = collections.Counter()
        """Events published so far, by (event, status) — status only for session.status and message.status."""

    def subscribe(self, tenant: str, subscriber: Subscriber) -> None:
        self._subscribers.setdefault(tenant, set()).add(subscriber)

    def unsubscribe(self, tenant: str, subscriber: Subscriber) -> None:
        subscribers = self._subscribers.get(tenant)
        if subscribers is not None:
            subscribers.discard(subscriber)
            if not subscribers:
                del self._subscribers[tenant]

    def publish(self, events: Sequence[StoredEvent]) -> None:
        for event in events:
            status = _status_decoder.decode(event.data).status if event.event in _COUNTED_BY_STATUS else ""
            self.counts[(event.event, status)] += 1
            subscribers = self._subscribers.get(event.tenant)
            if not subscribers:
                continue
            frame = event_frame(event)
            for subscriber in tuple(subscribers):
                subscriber.deliver(event.seq, frame)

    def connection_count(self) -> int:
        return sum(len(s) for s in self._subscribers.values())
