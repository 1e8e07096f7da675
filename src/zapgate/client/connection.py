"""The SDK's client: one logical connection to a gateway that survives dropped sockets.

How it behaves, in short (``docs/client.md`` says it at length):

- **Events.** Every event the gateway sends is put in an in-memory queue as it arrives, whether or not
  anyone iterates :meth:`Connection.events` yet, so nothing is lost between ``connect`` and the first
  ``async for``. The queue holds at most ``max_pending_events``; beyond that the client stops queueing and,
  once the consumer has caught up, reads what it skipped from the gateway's log with ``events.fetch``.
  Memory stays bounded and nothing is skipped.
- **Reconnection.** When the socket drops, the client reconnects with capped, fully jittered exponential
  backoff and asks the gateway to resume after the last ``seq`` it accepted. Events are deduplicated by
  ``seq``, so the stream neither skips nor repeats. When the gateway no longer has the events the client
  missed, the stream carries an :class:`~zapgate.client.events.EventGap` where they would have been.
- **Subscriptions.** With ``sessions``/``events`` (at :func:`~zapgate.client.connect`, or later with
  :meth:`Connection.subscribe`), the gateway sends only those events. The subscription is sent again in the
  ``auth`` frame of every reconnection, so the replay of a resume is filtered too, and what the client reads
  from the log to catch up is read with the same filter.
- **Commands across a drop.** A command whose reply was lost with the socket is sent again on the new
  connection only when doing it twice is harmless: reads, ``session.start``/``stop``/``logout``,
  ``message.read``, ``sim.network`` and ``message.send``, which always carries an idempotency key (the SDK
  makes one when the caller gives none), so the gateway answers a repeat with the original result and sends
  nothing twice. Any other command fails with :class:`~zapgate.errors.ConnectionClosed`: it may or may not
  have taken effect. A command issued while disconnected waits for the next connection. Every command is
  bounded by ``request_timeout`` (:class:`RequestTimeout`), reconnection included.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import msgspec
import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidHandshake, InvalidStatus, InvalidURI
from websockets.uri import parse_uri

from .. import __version__
from ..backoff import backoff_delays
from ..errors import ConnectionClosed, HostNotAllowed, Unauthorized, ZapgateError, error_from_wire
from ..protocol import (
    Auth,
    CloseCode,
    Command,
    ErrorFrame,
    EventsFetch,
    Hello,
    Ready,
    Reply,
    Subscribe,
    Subscription,
    decode_server_frame,
    encode,
)
from ..protocol import Event as EventFrame
from .events import Event, EventGap, EventPage, event_from_frame
from .stream import EventStream

__all__ = ["DEFAULT_URL", "Connection", "GatewayUnreachable", "RequestTimeout"]

log = logging.getLogger("zapgate.client")

DEFAULT_URL = "ws://127.0.0.1:8787/v1/ws"

CATCH_UP_PAGE = 500
CLOSE_TIMEOUT = 3.0  # seconds to wait for the gateway to answer our close frame
MAX_INCOMING_FRAME = 64 * 1024 * 1024  # an events.fetch page of 1000 events of up to 64 KiB each

T = TypeVar("T")


class GatewayUnreachable(ConnectionClosed):
    """The gateway could not be reached (refused, unresolvable, not a zapgate WebSocket, handshake failed).

    Raised by :meth:`Connection.open` (and ``async with connect(...)``): nothing was sent, so retrying is safe.
    """

    code = "gateway_unreachable"


class RequestTimeout(ZapgateError, TimeoutError):
    """No reply within the client's ``request_timeout`` (or no ``ready`` within ``open_timeout``).

    The command may still take effect on the gateway. Also a :class:`TimeoutError`.
    """

    code = "timeout"


@dataclass(eq=False)
class _Pending:
    command: Command
    future: asyncio.Future[Any]
    retry_safe: bool
    sent: bool = False

    @property
    def name(self) -> str:
        return str(type(self.command).__struct_config__.tag)


class Connection:
    """One logical connection to a gateway as one tenant: sockets, reconnection, replies and the event stream.

    :class:`~zapgate.client.Client` adds a typed method per command; build it with
    :func:`~zapgate.client.connect`.
    """

    def __init__(
        self,
        url: str,
        token: str,
        *,
        resume_from: int | None = None,
        request_timeout: float | None = 30.0,
        open_timeout: float = 10.0,
        reconnect: bool = True,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_pending_events: int = 10_000,
        sessions: Iterable[str] | None = None,
        events: Iterable[str] | None = None,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI:
            raise ValueError(f"{url!r} is not a WebSocket URL: expected ws://HOST:PORT/v1/ws or wss://...") from None
        if not token:
            raise ValueError("a token is required (create one with 'zapgate token create --tenant NAME')")
        if resume_from is not None and resume_from < 0:
            raise ValueError("resume_from must be a seq, 0 or more")
        self.url = url
        self._token = token
        self._request_timeout = request_timeout
        self._open_timeout = open_timeout
        self._reconnect = reconnect
        self._backoff = (backoff_base, backoff_cap)
        self._stream = EventStream(resume_from, max_pending_events)
        self._wake = asyncio.Event()
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._prefix = uuid.uuid4().hex[:8]
        self._ws: ClientConnection | None = None
        self._connected = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._closed = False
        self._fatal: ZapgateError | None = None
        self._ready: Ready | None = None
        self._last_error: ErrorFrame | None = None
        self._sessions = _names(sessions, "sessions")
        self._events = _names(events, "events")

    # -- lifecycle

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open(self) -> None:
        """Connect and authenticate; raises :class:`GatewayUnreachable`, :class:`~zapgate.errors.Unauthorized`
        or :class:`RequestTimeout` at once rather than retrying."""
        if self._runner is not None or self._closed:
            raise RuntimeError("a Client is opened once; make a new one with connect()")
        ws = await self._handshake()
        self._runner = asyncio.create_task(self._run(ws), name="zapgate-client")

    async def close(self) -> None:
        """Close the connection. Commands still waiting fail with ConnectionClosed; ``events()`` ends."""
        if self._closed:
            return
        self._closed = True
        if self._runner is not None:
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        ws, self._ws = self._ws, None
        self._connected.clear()
        if ws is not None:
            await ws.close()
        self._fail_pending(ConnectionClosed("the client was closed before the reply arrived"))
        self._wake.set()

    @property
    def connected(self) -> bool:
        """True while a socket is up and authenticated (False while reconnecting)."""
        return self._ws is not None

    @property
    def tenant(self) -> str | None:
        """The tenant the token belongs to (known once connected)."""
        return self._ready.tenant if self._ready else None

    @property
    def engine(self) -> str | None:
        """The gateway's engine: ``"whatsapp"`` or ``"simulator"`` (known once connected)."""
        return self._ready.engine if self._ready else None

    @property
    def last_seq(self) -> int | None:
        """The ``seq`` of the last event accepted into the stream (handled or still queued)."""
        return self._stream.cursor

    # -- connecting

    async def _handshake(self) -> ClientConnection:
        """Open a socket, authenticate, and take the ``ready`` frame; the socket is returned ready to read.

        The token goes in the ``Authorization`` header, so that a bad one is refused before the upgrade; with a
        subscription, in the ``auth`` frame instead, the one place that also carries the subscription."""
        resume = self._stream.resume_point()
        headers = {}
        if self._sessions is None and self._events is None:
            headers["Authorization"] = f"Bearer {self._token}"
            if resume is not None:
                headers["Zapgate-Resume-From"] = str(resume)
        try:
            ws = await websockets.connect(
                self.url,
                additional_headers=headers,
                open_timeout=self._open_timeout,
                compression=None,
                max_size=MAX_INCOMING_FRAME,
                close_timeout=CLOSE_TIMEOUT,
                user_agent_header=f"zapgate-client/{__version__}",
            )
        except InvalidStatus as exc:
            raise _refusal(self.url, exc) from None
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            raise GatewayUnreachable(f"cannot reach the gateway at {self.url}: {exc or type(exc).__name__}") from None
        try:
            async with asyncio.timeout(self._open_timeout):
                hello = decode_server_frame(await ws.recv())
                if not isinstance(hello, Hello):
                    raise GatewayUnreachable(f"{self.url} did not greet like a zapgate gateway")
                if hello.auth == "required":  # no Authorization header, or it did not reach the gateway (a proxy?)
                    auth = Auth(token=self._token, resume_from=resume, sessions=self._sessions, events=self._events)
                    await ws.send(encode(auth).decode())
                frame = decode_server_frame(await ws.recv())
            if isinstance(frame, ErrorFrame):
                raise error_from_wire(frame.code, frame.message)
            if not isinstance(frame, Ready):
                raise GatewayUnreachable(f"{self.url} sent {type(frame).__name__} instead of ready")
        except TimeoutError:
            await ws.close()
            raise RequestTimeout(f"the gateway at {self.url} did not get ready within {self._open_timeout} s") from None
        except websockets.ConnectionClosed as exc:
            if exc.rcvd is not None and exc.rcvd.code == CloseCode.UNAUTHORIZED:
                raise Unauthorized(exc.rcvd.reason or "the gateway refused the token") from None
            raise GatewayUnreachable(f"the gateway at {self.url} closed the connection while connecting") from None
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await ws.close()
            raise GatewayUnreachable(f"{self.url} is not a zapgate gateway (bad frame: {exc})") from None
        except BaseException:
            await ws.close()
            raise
        self._on_ready(frame, resume)
        self._ws = ws
        self._connected.set()
        return ws

    def _on_ready(self, ready: Ready, resumed_from: int | None) -> None:
        self._ready = ready
        if ready.resume == "gap":
            log.warning("the gateway no longer has every event after seq %s; reading what it kept", resumed_from)
        elif ready.resume == "ok":
            log.debug("resumed after seq %s; %d events replayed", resumed_from, ready.replayed)
        self._stream.on_ready(ready.resume, ready.last_seq)
        self._wake.set()

    # -- the connection loop

    async def _run(self, ws: ClientConnection) -> None:
        try:
            while True:
                await self._flush(ws)
                await self._read(ws)
                self._dropped(ws)
                if not self._reconnect:
                    self._fail(ConnectionClosed(f"the connection to {self.url} was lost"))
                    return
                ws = await self._reconnect_loop()
        except ZapgateError as exc:  # fatal: the token no longer works
            self._fail(exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("zapgate client connection loop crashed")
            self._fail(ConnectionClosed(f"the client failed: {exc!r}"))

    async def _read(self, ws: ClientConnection) -> None:
        try:
            async for message in ws:
                self._on_frame(message)
        except websockets.ConnectionClosed:
            pass
        if ws.close_code == CloseCode.UNAUTHORIZED:
            said = self._last_error.message if self._last_error else ws.close_reason
            raise Unauthorized(said or "the gateway no longer accepts the token")
        log.info(
            "connection to %s lost (%s)%s",
            self.url,
            _close_description(ws),
            "; reconnecting" if self._reconnect else "",
        )

    def _dropped(self, ws: ClientConnection) -> None:
        if self._ws is ws:
            self._ws = None
            self._connected.clear()
        for pending in list(self._pending.values()):
            if not pending.sent or pending.future.done():
                continue
            if pending.retry_safe:
                pending.sent = False  # sent again on the next connection
            else:
                pending.future.set_exception(
                    ConnectionClosed(
                        f"the connection dropped before the reply to {pending.name} arrived: it may or may not "
                        "have taken effect"
                    )
                )

    async def _reconnect_loop(self) -> ClientConnection:
        base, cap = self._backoff
        for attempt, delay in enumerate(backoff_delays(base=base, cap=cap), start=1):
            await asyncio.sleep(delay)
            try:
                ws = await self._handshake()
            except Unauthorized:
                raise
            except (ZapgateError, OSError) as exc:
                log.info("reconnect attempt %d to %s failed: %s", attempt, self.url, exc)
                continue
            log.info("reconnected to %s", self.url)
            return ws
        raise AssertionError("backoff_delays is endless")

    async def _flush(self, ws: ClientConnection) -> None:
        for pending in list(self._pending.values()):
            if not pending.sent and not pending.future.done():
                await self._transmit(ws, pending)

    async def _transmit(self, ws: ClientConnection, pending: _Pending) -> None:
        pending.sent = True
        # On a closed socket the read loop sees the drop too, and _dropped() decides what becomes of the command.
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(encode(pending.command).decode())

    # -- incoming frames

    def _on_frame(self, message: str | bytes) -> None:
        try:
            frame = decode_server_frame(message)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring a frame this client cannot read: %s", exc)
            return
        if isinstance(frame, EventFrame):
            if self._stream.accept(event_from_frame(frame)):
                self._wake.set()
        elif isinstance(frame, Reply):
            pending = self._pending.get(frame.id)
            if pending is None or pending.future.done():
                return
            if frame.ok:
                pending.future.set_result(frame.data)
            else:
                error = frame.error
                if error is None:
                    pending.future.set_exception(error_from_wire("internal", "error reply without details"))
                else:
                    pending.future.set_exception(
                        error_from_wire(
                            error.code, error.message, error.retry_after, quota=error.quota, limit=error.limit
                        )
                    )
        elif isinstance(frame, ErrorFrame):
            self._last_error = frame  # explains the close that usually follows
            log.warning("the gateway reported %s: %s", frame.code, frame.message)

    # -- the event stream

    def events(self) -> _EventIterator:
        """The tenant's events, in ``seq`` order, across reconnections: ``async for event in client.events():``.

        Yields :class:`~zapgate.client.events.Event` subclasses and, when the gateway lost events this
        client missed, an :class:`~zapgate.client.events.EventGap`. Iterate from one task: each event is
        delivered once. Ends when the client is closed; raises when it fails for good (e.g. the token was
        revoked: :class:`~zapgate.errors.Unauthorized`).
        """
        return _EventIterator(self)

    async def next_event(self) -> Event | EventGap | None:
        """The next event of the stream, waiting for it; None once the client is closed."""
        stream = self._stream
        while True:
            event = stream.pop()
            if event is not None:
                return event
            if self._fatal is not None:
                raise self._fatal
            if self._closed:
                return None
            if stream.behind:
                await self._catch_up()
                continue
            self._wake.clear()
            await self._wake.wait()

    async def _catch_up(self) -> None:
        """Read one page of what the stream passed over from the gateway's log (what the subscription wants)."""
        after = self._stream.cursor or 0
        try:
            page = await self.fetch_events(after, limit=CATCH_UP_PAGE, sessions=self._sessions, events=self._events)
        except (ConnectionClosed, RequestTimeout):
            if not self._closed and self._fatal is None:
                await self._wait_connected()
            return
        self._stream.apply_page(after, page)

    async def _wait_connected(self) -> None:
        waiter = asyncio.create_task(self._connected.wait())
        self._wake.clear()
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({waiter, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
            woken.cancel()

    # -- commands

    def _new_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    async def _call(self, command: Command, *, retry_safe: bool) -> Any:
        if self._fatal is not None:
            raise self._fatal
        if self._closed or self._runner is None:
            raise ConnectionClosed("the client is not open: use 'async with connect(url, token) as client:'")
        pending = _Pending(command, asyncio.get_running_loop().create_future(), retry_safe)
        self._pending[command.id] = pending
        try:
            async with asyncio.timeout(self._request_timeout):
                if self._ws is not None:
                    await self._transmit(self._ws, pending)
                return await pending.future
        except TimeoutError as exc:
            if isinstance(exc, ZapgateError):
                raise
            where = "" if self.connected else " (the gateway is unreachable; still reconnecting)"
            raise RequestTimeout(f"no reply to {pending.name} within {self._request_timeout} s{where}") from None
        finally:
            self._pending.pop(command.id, None)

    async def _request(self, command: Command, result: type[T], *, retry_safe: bool) -> T:
        data = await self._call(command, retry_safe=retry_safe)
        return msgspec.convert(data, result)

    async def fetch_events(
        self,
        after: int,
        *,
        limit: int = 100,
        sessions: Iterable[str] | None = None,
        events: Iterable[str] | None = None,
    ) -> EventPage:
        """Read the tenant's event log: up to ``limit`` (1-1000) events with ``seq > after``, oldest first; only
        those of ``sessions`` and of the event types in ``events`` (names or ``prefix.*``) when given.

        Independent of the live stream and of its subscription; use it to page through history.
        """
        cmd = EventsFetch(
            id=self._new_id(),
            after=after,
            limit=limit,
            sessions=_names(sessions, "sessions"),
            events=_names(events, "events"),
        )
        data = await self._call(cmd, retry_safe=True)
        page = msgspec.convert(data, _RawPage)
        found = [event_from_frame(msgspec.convert(raw, EventFrame)) for raw in page.events]
        return EventPage(events=found, oldest_seq=page.oldest_seq, last_seq=page.last_seq, gap=page.gap)

    async def subscribe(
        self, *, sessions: Iterable[str] | None = None, events: Iterable[str] | None = None
    ) -> Subscription:
        """Receive only the events of ``sessions`` and of the event types in ``events`` (exact names, or a prefix
        wildcard such as ``"message.*"``); None or empty: every session (every event type).

        Replaces the subscription in force (``subscribe()`` with no argument: everything again); it also holds
        after a reconnection. Returns the subscription as the gateway applied it, wildcards expanded.
        :class:`~zapgate.errors.InvalidRequest` names an event type that does not exist, and the previous
        subscription stays."""
        cmd = Subscribe(id=self._new_id(), sessions=_names(sessions, "sessions"), events=_names(events, "events"))
        applied = await self._request(cmd, Subscription, retry_safe=True)
        self._sessions, self._events = cmd.sessions, cmd.events
        return applied

    @property
    def subscription(self) -> tuple[list[str] | None, list[str] | None]:
        """``(sessions, events)`` as last asked for (None: all)."""
        return self._sessions, self._events

    # -- failure

    def _fail(self, exc: ZapgateError) -> None:
        if self._fatal is None and not self._closed:
            log.error("zapgate client stopped: %s", exc)
            self._fatal = exc
        self._ws = None
        self._connected.clear()
        self._fail_pending(exc)
        self._wake.set()

    def _fail_pending(self, exc: ZapgateError) -> None:
        for pending in list(self._pending.values()):
            if not pending.future.done():
                pending.future.set_exception(exc)


class _EventIterator:
    def __init__(self, client: Connection) -> None:
        self._client = client

    def __aiter__(self) -> _EventIterator:
        return self

    async def __anext__(self) -> Event | EventGap:
        event = await self._client.next_event()
        if event is None:
            raise StopAsyncIteration
        return event


class _RawPage(msgspec.Struct):
    events: list[Any]
    oldest_seq: int
    last_seq: int
    gap: bool


def _names(values: Iterable[str] | None, what: str) -> list[str] | None:
    """A subscription field as sent: None when empty; a lone string is one name, not its characters."""
    if values is None:
        return None
    names = [values] if isinstance(values, str) else list(values)
    if not all(isinstance(name, str) for name in names):
        raise TypeError(f"{what} must be strings")
    return names or None


def _refusal(url: str, exc: InvalidStatus) -> ZapgateError:
    """The error for an HTTP answer instead of a WebSocket upgrade."""
    response = exc.response
    body: dict[str, Any] = {}
    with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
        body = msgspec.json.decode(response.body or b"{}", type=dict[str, Any])
    message = str(body.get("message") or "")
    if response.status_code == 401:
        return Unauthorized(message or "the gateway refused the token")
    if body.get("code") == HostNotAllowed.code:  # the URL's host name is not one the gateway answers to
        return HostNotAllowed(f"{url}: {message}")
    return GatewayUnreachable(
        f"{url} answered HTTP {response.status_code} instead of a WebSocket upgrade{': ' + message if message else ''}"
        " (is this the gateway's /v1/ws URL?)"
    )


def _close_description(ws: ClientConnection) -> str:
    """``close code 1012 service restart``, ``close code 1006``, or ``no close frame``, for logs."""
    if ws.close_code is None:
        return "no close frame"
    return f"close code {ws.close_code}" + (f" {ws.close_reason}" if ws.close_reason else "")
