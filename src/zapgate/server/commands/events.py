"""``events.fetch`` and ``ping``."""

from __future__ import annotations

import time
from typing import Any, cast

import msgspec

from ...auth import Caller
from ...errors import CommandUnavailable
from ...gateway import Gateway
from ...hub import event_frame
from ...protocol import (
    EVENTS_FETCH_MAX_BYTES,
    EventsFetch,
    EventsPage,
    Ping,
    Pong,
    Subscribe,
    Subscription,
    event_filter,
)
from .registry import handles

__all__: list[str] = []


@handles(EventsFetch)
async def events_fetch(gw: Gateway, caller: Caller, cmd: EventsFetch) -> EventsPage:
    only = caller.narrow(event_filter(cmd.sessions, cmd.events))
    oldest, newest = await gw.storage.event_bounds(caller.tenant)
    gap = cmd.after > newest or (oldest > 0 and cmd.after < oldest - 1)
    frames: list[msgspec.Raw] = []
    size = 0
    found = (
        []
        if gap
        else await gw.storage.read_events(
            caller.tenant, cmd.after, cmd.limit, sessions=only.sessions, events=only.events
        )
    )
    for event in found:
        frame = event_frame(event).encode()
        if frames and size + len(frame) > EVENTS_FETCH_MAX_BYTES:
            break  # the client pages on with after = the last seq it got
        frames.append(msgspec.Raw(frame))
        size += len(frame)
    # Already-encoded frames stand in for Event structs: they encode to the same JSON.
    return EventsPage(events=cast(Any, frames), oldest_seq=oldest, last_seq=newest, gap=gap)


@handles(Subscribe)
async def subscribe(gw: Gateway, caller: Caller, cmd: Subscribe) -> Subscription:
    # A WebSocket connection answers subscribe itself (it changes that connection); nothing else can.
    raise CommandUnavailable(
        "subscribe chooses the events of a WebSocket connection; over HTTP, give sessions and events to GET /v1/events"
    )


@handles(Ping)
async def ping(gw: Gateway, caller: Caller, cmd: Ping) -> Pong:
    return Pong(time=time.time())
