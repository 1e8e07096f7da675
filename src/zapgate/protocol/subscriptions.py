"""Which events a client wants: the ``subscribe`` command, the same fields on ``auth``, ``events.fetch`` and
``GET /v1/events``, and the filter they resolve to (pure, no I/O).

A subscription names sessions and event types. Event types are exact names (``message.received``) or a prefix
wildcard (``message.*``: every event whose name starts with ``message.``; ``*``: every event), checked against
the event registry when the subscription is made, so a typo is an error rather than a silent filter that lets
nothing through. A wildcard is expanded then into the exact names it covers: matching an event is two set
lookups, and the event log can be read with ``event IN (...)``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated

import msgspec

from ..errors import InvalidRequest
from .base import EVENTS, Command, Scope, SessionName, command

__all__ = [
    "EVERYTHING",
    "MAX_FILTER_EVENTS",
    "MAX_FILTER_SESSIONS",
    "EventFilter",
    "EventPattern",
    "EventPatterns",
    "SessionNames",
    "Subscribe",
    "Subscription",
    "event_filter",
]

MAX_FILTER_SESSIONS = 100
"""The most sessions one subscription (or one ``events.fetch``) may name."""
MAX_FILTER_EVENTS = 50
"""The most event types or patterns one subscription (or one ``events.fetch``) may name."""

EventPattern = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=64,
        pattern=r"\A(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)\Z",
        description="an event name (message.received), a prefix wildcard (message.*), or * for every event",
    ),
]
SessionNames = Annotated[
    list[SessionName],
    msgspec.Meta(max_length=MAX_FILTER_SESSIONS, description="only events of these sessions; empty: every session"),
]
EventPatterns = Annotated[
    list[EventPattern],
    msgspec.Meta(max_length=MAX_FILTER_EVENTS, description="only these event types; empty: every event"),
]


class Subscription(msgspec.Struct, kw_only=True):
    """The subscription in force, with wildcards expanded; ``null`` means every session (or every event)."""

    sessions: list[str] | None
    events: list[str] | None


@command(reply=Subscription, scope=Scope.READ)
class Subscribe(Command, tag="subscribe"):
    """Choose which events this connection receives: only those of ``sessions`` and of the event types in
    ``events`` (exact names or prefix wildcards such as ``message.*``). It replaces the connection's previous
    subscription; an absent or empty field means every session (or every event). Live events and the events
    replayed on resume are filtered; replies and error frames always arrive. WebSocket only: over HTTP, give
    the same ``sessions`` and ``events`` to ``GET /v1/events``."""

    sessions: SessionNames | None = None
    events: EventPatterns | None = None


@dataclass(frozen=True, slots=True)
class EventFilter:
    """A resolved subscription: the sessions and exact event names wanted (``None``: all of them)."""

    sessions: frozenset[str] | None = None
    events: frozenset[str] | None = None

    @property
    def everything(self) -> bool:
        return self.sessions is None and self.events is None

    def matches(self, session: str, event: str) -> bool:
        return (self.sessions is None or session in self.sessions) and (self.events is None or event in self.events)

    def describe(self) -> Subscription:
        return Subscription(
            sessions=sorted(self.sessions) if self.sessions is not None else None,
            events=sorted(self.events) if self.events is not None else None,
        )


EVERYTHING = EventFilter()


def event_filter(sessions: Iterable[str] | None, events: Iterable[str] | None) -> EventFilter:
    """The filter a subscription's fields stand for; :class:`InvalidRequest` names an event type that does not
    exist. The fields are already checked for form (session names, pattern syntax, counts) by their types."""
    wanted_sessions = frozenset(sessions) if sessions else None
    patterns = list(events or ())
    if not patterns or "*" in patterns:
        return EventFilter(wanted_sessions, None)
    names: set[str] = set()
    for pattern in patterns:
        if pattern.endswith(".*"):
            prefix = pattern[:-1]
            covered = {name for name in EVENTS if name.startswith(prefix)}
            if not covered:
                raise InvalidRequest(f"no event type matches {pattern!r}; event types are: {_known()}")
            names |= covered
        elif pattern in EVENTS:
            names.add(pattern)
        else:
            raise InvalidRequest(f"unknown event type {pattern!r}; event types are: {_known()}")
    return EventFilter(wanted_sessions, frozenset(names))


def _known() -> str:
    return ", ".join(sorted(EVENTS))
