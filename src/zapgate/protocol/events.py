"""Reading the tenant's event log, and a liveness probe."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .base import Command, Scope, Seq, command
from .frames import Event
from .subscriptions import EventPatterns, SessionNames

__all__ = ["EVENTS_FETCH_MAX_BYTES", "EventsFetch", "EventsPage", "Ping", "Pong"]

EVENTS_FETCH_MAX_BYTES = 512 * 1024
"""An ``events.fetch`` reply stops adding events past this size (but always carries at least one), so that it
fits the 1 MiB default message limit of common WebSocket clients."""


class EventsPage(msgspec.Struct, kw_only=True):
    events: list[Event]
    """Event frames with ``seq > after``, oldest first."""
    oldest_seq: int
    """The oldest event still kept (0 when there is none)."""
    last_seq: int
    """The newest event of the tenant."""
    gap: bool
    """True when ``after`` is older than the oldest kept event, or newer than the newest one (e.g. a wiped data
    directory): nothing is returned then."""


@command(reply=EventsPage, scope=Scope.READ, http=("GET", "/v1/events"))
class EventsFetch(Command, tag="events.fetch"):
    """Read a range of the tenant's event log: events with ``seq > after``, oldest first. It does not affect the
    live stream. ``sessions`` and ``events`` (as in ``subscribe``) keep only the matching events: ``limit``
    counts those, and the next page starts after the last one returned."""

    after: Seq
    limit: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 100
    sessions: SessionNames | None = None
    events: EventPatterns | None = None


class Pong(msgspec.Struct, kw_only=True):
    time: float
    """The server's clock (epoch seconds)."""


@command(reply=Pong, scope=None, http=("GET", "/v1/ping"))
class Ping(Command, tag="ping"):
    """A round trip through the command path; any valid token may run it, whatever its scopes."""
