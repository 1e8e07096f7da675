"""``GET /v1/events``: the event log over HTTP — pages, long-polls and a Server-Sent Events stream.

It is ``events.fetch``'s route, and does two more things than run that command once:

- **long-poll** (``wait=S``): when the page would be empty, hold the request up to ``S`` seconds (at most
  ``rest_max_wait_s``) until an event newer than ``after`` exists, then answer the page;
- **Server-Sent Events** (``Accept: text/event-stream``): a ``ready`` message, then every event with
  ``seq > after`` (or ``> Last-Event-ID``), replayed from the log and then live, with no gap and no duplicate
  (the same order of operations as a WebSocket resume: subscribe, replay, then release what arrived meanwhile,
  skipping what was already sent). Each message is ``id: <seq>``, ``event: <name>``, ``data: <event frame>``.

``sessions`` and ``events`` (repeated query parameters, as in ``subscribe``) filter all three: the page, what
wakes a long-poll, and what a stream replays and pushes.

Live events come from the hub and are queued per stream without blocking; a client that lets more than
``send_buffer_frames`` events, or more than ``send_buffer_bytes`` of them, pile up is disconnected and resumes
with ``Last-Event-ID``. Streams and long-polls end at once when the server shuts down (:class:`Streams`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..auth import Caller
from ..errors import InvalidRequest
from ..gateway import Gateway
from ..protocol import EventsFetch, EventsPage, Ready, encode, event_filter
from .commands import run_command
from .rest import Operation, json_response, parse_command
from .sendbuffer import frame_size

__all__ = ["EVENT_STREAM", "LAST_EVENT_ID", "WAIT_PARAM", "EventStream", "Streams", "events_endpoint"]

log = logging.getLogger("zapgate.server")

EVENT_STREAM = "text/event-stream"
WAIT_PARAM = "wait"
LAST_EVENT_ID = "last-event-id"
_FINAL_SEND_TIMEOUT_S = 5.0
"""How long a stream being cut off (slow consumer) waits to end its response cleanly before dropping it."""


class Streams:
    """The long-lived HTTP responses in progress, so that a shutdown can end them at once."""

    def __init__(self) -> None:
        self.closing = False
        self._open: set[asyncio.Event] = set()

    def add(self, wake: asyncio.Event) -> None:
        self._open.add(wake)
        if self.closing:
            wake.set()

    def discard(self, wake: asyncio.Event) -> None:
        self._open.discard(wake)

    def close(self) -> None:
        """Wake every stream and long-poll: they answer what they have and end."""
        self.closing = True
        for wake in self._open:
            wake.set()

    def __len__(self) -> int:
        return len(self._open)


class _EventName(msgspec.Struct):
    event: str
    seq: int


_name_decoder = msgspec.json.Decoder(_EventName)


async def events_endpoint(op: Operation, request: Request, caller: Caller) -> Response:
    """``GET /v1/events``: a page, a long-poll (``wait``) or a Server-Sent Events stream (by ``Accept``)."""
    gateway: Gateway = request.app.state.gateway
    streams: Streams = request.app.state.streams
    query = [(k, v) for k, v in request.query_params.multi_items() if k != WAIT_PARAM]
    waits = request.query_params.getlist(WAIT_PARAM)
    stream = request.method == "GET" and EVENT_STREAM in request.headers.get("accept", "")
    resume = request.headers.get(LAST_EVENT_ID)
    if resume is not None:
        if not (resume.strip().isdecimal() and resume.strip().isascii() and len(resume.strip()) <= 19):
            raise InvalidRequest(f"Last-Event-ID must be an event seq (a non-negative integer), not {resume!r}")
        if stream:  # an EventSource reconnecting: resume where it was, not at the URL's after
            query = [(k, v) for k, v in query if k != "after"] + [("after", resume.strip())]
    command = parse_command(op, request.path_params, query, b"", request.headers)
    assert isinstance(command, EventsFetch)
    if stream:
        response = EventStream(gateway, streams, caller, command)
        await response.prepare()
        return response
    wait = _wait_seconds(waits, gateway.settings.rest_max_wait_s)
    return json_response(await long_poll(gateway, streams, caller, command, wait))


def _wait_seconds(values: list[str], limit: float) -> float:
    if not values:
        return 0.0
    if len(values) > 1:
        raise InvalidRequest("query parameter 'wait' is given more than once")
    try:
        wait = float(values[0])
    except ValueError:
        raise InvalidRequest(f"wait must be a number of seconds, not {values[0]!r}") from None
    if not 0 <= wait <= limit:
        raise InvalidRequest(f"wait must be between 0 and {limit:g} seconds (rest_max_wait_s), not {values[0]}")
    return wait


class _Waiter:
    """A hub subscriber that only notes that an event newer than ``after`` was published."""

    __slots__ = ("after", "wake")

    def __init__(self, after: int) -> None:
        self.after = after
        self.wake = asyncio.Event()

    def deliver(self, seq: int, frame: str) -> None:
        if seq > self.after:
            self.wake.set()


async def long_poll(gw: Gateway, streams: Streams, caller: Caller, command: EventsFetch, wait: float) -> EventsPage:
    """``events.fetch``, except that an empty page waits up to ``wait`` seconds for the next event."""
    waiter = _Waiter(command.after)
    # Subscribe before reading, so an event committed between the read and the wait still wakes us.
    gw.hub.subscribe(caller.tenant, waiter, caller.narrow(event_filter(command.sessions, command.events)))
    streams.add(waiter.wake)
    try:
        page: EventsPage = await run_command(gw, caller, command)
        if page.events or page.gap or wait <= 0 or streams.closing:
            return page
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(waiter.wake.wait(), wait)
        again: EventsPage = await run_command(gw, caller, command)
        return again
    finally:
        streams.discard(waiter.wake)
        gw.hub.unsubscribe(caller.tenant, waiter)


class EventStream(Response):
    """One Server-Sent Events response (an ASGI app of its own, returned by the endpoint)."""

    media_type = EVENT_STREAM

    def __init__(self, gw: Gateway, streams: Streams, caller: Caller, command: EventsFetch) -> None:
        self.status_code = 200
        self.background = None
        # No Content-Length: the body never ends by itself.
        self.raw_headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-store"),
            (b"x-accel-buffering", b"no"),
        ]
        self.gw = gw
        self.streams = streams
        self.caller = caller
        self.command = command
        self.live: collections.deque[tuple[int, str]] = collections.deque()
        self.live_bytes = 0
        self.wake = asyncio.Event()
        self.overflow = False
        self.sent_seq = command.after
        self.first: EventsPage | None = None
        self._writer: asyncio.Task[None] | None = None
        # While it streams, the gateway lists it with its connections: a revoked or expired token, or a disabled
        # tenant, ends it as it closes a WebSocket.
        self.token_id = caller.token_id
        self.tenant: str | None = caller.tenant
        self.revoked: str | None = None

    async def prepare(self) -> None:
        """Subscribe, then read the first page (so errors such as ``forbidden`` still get a JSON answer)."""
        only = self.caller.narrow(event_filter(self.command.sessions, self.command.events))
        self.gw.hub.subscribe(self.caller.tenant, self, only)
        try:
            self.first = await run_command(self.gw, self.caller, self.command)
        except BaseException:
            self.gw.hub.unsubscribe(self.caller.tenant, self)
            raise

    # -- the hub side: never blocks

    def deliver(self, seq: int, frame: str) -> None:
        if self.overflow:
            return
        size = frame_size(frame)
        settings = self.gw.settings
        if len(self.live) >= settings.send_buffer_frames or (
            self.live and self.live_bytes + size > settings.send_buffer_bytes
        ):
            log.info(
                "ending event stream of tenant %s: slow consumer, %d events (%d bytes) queued",
                self.caller.tenant,
                len(self.live),
                self.live_bytes,
            )
            self.overflow = True
            self.live.clear()
            self.live_bytes = 0
            self.gw.hub.unsubscribe(self.caller.tenant, self)
            if self._writer is not None:
                self._writer.cancel()  # it may be stuck sending to a client that reads nothing
        else:
            self.live.append((seq, frame))
            self.live_bytes += size
        self.wake.set()

    def revoke(self, why: str = "the token of this stream was revoked") -> None:
        log.info("ending event stream of tenant %s (token %s): %s", self.tenant, self.token_id, why)
        self.revoked = why
        self.wake.set()

    # -- the ASGI side

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.streams.add(self.wake)
        self.gw.connections.add(self)
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
            writer = self._writer = asyncio.create_task(self._write(send), name="sse-writer")
            watcher = asyncio.create_task(self._watch(receive), name="sse-watcher")
            try:
                done, _ = await asyncio.wait({writer, watcher}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in (writer, watcher):
                    task.cancel()
                results = await asyncio.gather(writer, watcher, return_exceptions=True)
        finally:
            self.streams.discard(self.wake)
            self.gw.connections.discard(self)
            self.gw.hub.unsubscribe(self.caller.tenant, self)
        for result in results:
            if isinstance(result, Exception):
                log.error("event stream of tenant %s failed", self.caller.tenant, exc_info=result)
        if self.overflow and watcher not in done:
            # The writer may have been stuck behind a client that reads nothing: end the response if it can be
            # written soon; otherwise return, and the server drops the connection.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._end(send, "slow consumer: resume with Last-Event-ID"), _FINAL_SEND_TIMEOUT_S
                )

    async def _watch(self, receive: Receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def _end(self, send: Send, why: str) -> None:
        await send({"type": "http.response.body", "body": f": {why}\n\n".encode(), "more_body": False})

    async def _write(self, send: Send) -> None:
        async def chunk(text: str) -> None:
            await send({"type": "http.response.body", "body": text.encode(), "more_body": True})

        command, first = self.command, self.first
        assert first is not None, "prepare() first"
        gap = first.gap
        ready = Ready(
            tenant=self.caller.tenant,
            last_seq=first.last_seq,
            resume="gap" if gap else "ok",
            engine=self.gw.engine.name,
            replayed=0 if gap else max(0, first.last_seq - command.after),
            **self.caller.grants(),
        )
        if gap:
            # Moving the browser's Last-Event-ID past the gap makes a reconnect resume from here.
            self.sent_seq = first.last_seq
            await chunk(f"id: {first.last_seq}\nevent: ready\ndata: {encode(ready).decode()}\n\n")
        else:
            await chunk(f"event: ready\ndata: {encode(ready).decode()}\n\n")
            page = first
            while page.events and not self.overflow and not self.streams.closing:
                await chunk(self._format(msgspec.json.encode(e).decode() for e in page.events))
                page = await run_command(
                    self.gw,
                    self.caller,
                    EventsFetch(
                        id=command.id,
                        after=self.sent_seq,
                        limit=command.limit,
                        sessions=command.sessions,
                        events=command.events,
                    ),
                )
        heartbeat = self.gw.settings.sse_heartbeat_s
        while not self.overflow and not self.streams.closing and self.revoked is None:
            if self.live:
                frames, self.live, self.live_bytes = self.live, collections.deque(), 0
                text = self._format(frame for seq, frame in frames if seq > self.sent_seq)
                if text:
                    await chunk(text)
                continue
            self.wake.clear()
            try:
                await asyncio.wait_for(self.wake.wait(), heartbeat)
            except TimeoutError:
                await chunk(": keep-alive\n\n")
        if self.revoked is not None:
            error = encode({"code": "unauthorized", "message": self.revoked}).decode()
            await chunk(f"event: error\ndata: {error}\n\n")
            await self._end(send, "unauthorized")
        elif self.streams.closing and not self.overflow:
            await self._end(send, "server shutting down: reconnect with Last-Event-ID")

    def _format(self, frames: Any) -> str:
        """SSE messages for event frames with a seq above what was sent, in order; updates ``sent_seq``."""
        parts = []
        for frame in frames:
            head = _name_decoder.decode(frame)
            if head.seq <= self.sent_seq:
                continue
            self.sent_seq = head.seq
            parts.append(f"id: {head.seq}\nevent: {head.event}\ndata: {frame}\n\n")
        return "".join(parts)
