"""The network edge: uvicorn's HTTP and WebSocket protocols, with the limits they lack (docs/security.md).

uvicorn parses HTTP with httptools and speaks WebSocket with websockets' sans-I/O protocol. What they leave
unbounded, these subclasses bound:

- A new connection is admitted by the :class:`~zapgate.server.guard.EdgeGuard` before a byte is parsed
  (connections per client address, unauthenticated connections in total: 429 and 503).
- A request whose ``Host`` is not a name the gateway answers to (``allowed_hosts``, :mod:`zapgate.hosts`) is
  refused (421) before any route, WebSocket upgrades included: DNS rebinding cannot reach a loopback gateway.
- The request head must arrive whole within ``handshake_timeout_s`` (408), in at most ``max_header_bytes``
  and ``max_headers`` (431). httptools has no such limit: endless headers were buffered without bound.
- A refused connection gets its HTTP answer, then its input is read and dropped for at most
  :data:`REFUSAL_LINGER_S` so that the answer is not lost to a TCP reset, then it is cut.
- Pings are answered with one pong for the latest ping of each read (RFC 6455 §5.5.3 allows it), and none
  while the client does not read: a ping flood cannot grow the write buffer. Pings and pongs from the client
  share a token bucket (``command_rate_per_s``, ``command_burst``); a flood closes 1008, because parsing
  them at line rate would take a core and starve every timer of the event loop.
- Every close really happens: :class:`EdgeTransport` aborts a connection that is still there
  ``close_timeout_s`` after it was asked to close (a client that does not read never takes the close frame).
- A text frame that is not UTF-8 closes 1007 and is logged at DEBUG, not as a traceback; an upgrade answered
  with an HTTP response (401, 400, 429) is not logged as an ERROR.
- A text frame is offered to the connection in the step of the loop that read it
  (:meth:`EdgeWebSocketProtocol.take_texts_with`): while nothing is queued, a command starts there, without a
  turn through the receive queue and without pausing and resuming the socket's reading as uvicorn does for each
  message it queues.
- An idle WebSocket connection costs little: uvicorn's per-connection state is trimmed (slots, a lean receive
  queue and event, no request head kept once the upgrade is accepted; :class:`EdgeWebSocketProtocol`).
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, cast

import httptools
import msgspec
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.utils import ClientDisconnected
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.exceptions import InvalidState
from websockets.protocol import State

from ..errors import HandshakeTimeout, InvalidRequest, RateLimited, RequestHeadTooLarge, ZapgateError
from ..protocol import CloseCode
from .guard import Admission, EdgeGuard, TokenBucket, forwarded_client
from .lean import Inbox, WaitFlag

__all__ = [
    "EDGE_EXTENSION",
    "SEND_NOW_EXTENSION",
    "SEND_TEXTS_EXTENSION",
    "TAKE_TEXTS_EXTENSION",
    "EdgeHttpProtocol",
    "EdgeTransport",
    "EdgeWebSocketProtocol",
    "http_error_response",
    "http_protocol",
    "log_refusal",
]

log = logging.getLogger("zapgate.server")

EDGE_EXTENSION = "zapgate.edge"
"""The scope extension under which a WebSocket connection's :class:`~zapgate.server.guard.Admission` is found."""

_SHORT_TEXT_HEADERS = [bytes((0x81, size)) for size in range(126)]


def text_frame_header(size: int) -> bytes:
    """The header of a text frame of ``size`` bytes that a server sends whole (RFC 6455, section 5.2): FIN and the
    text opcode, no mask, and the length in 7 bits, or 16 or 64 after a 126 or 127. What ``websockets`` writes for
    such a frame, without its objects per frame (``bench/findings.md``, round 22)."""
    if size < 126:
        return _SHORT_TEXT_HEADERS[size]
    if size < 1 << 16:
        return b"\x81\x7e" + size.to_bytes(2, "big")
    return b"\x81\x7f" + size.to_bytes(8, "big")


SEND_TEXTS_EXTENSION = "zapgate.send_texts"
"""The scope extension under which a WebSocket connection offers :meth:`EdgeWebSocketProtocol.send_texts`."""
SEND_NOW_EXTENSION = "zapgate.send_text_now"
"""The scope extension under which a WebSocket connection offers :meth:`EdgeWebSocketProtocol.send_text_now`."""
TAKE_TEXTS_EXTENSION = "zapgate.take_texts"
"""The scope extension under which a WebSocket connection offers :meth:`EdgeWebSocketProtocol.take_texts_with`."""
REFUSAL_LINGER_S = 1.0
"""How long a refused connection is kept, reading and dropping its input, so that it can read our answer."""


def http_protocol(guard: EdgeGuard) -> type[EdgeHttpProtocol]:
    """The protocol class to give uvicorn (``Config(http=...)``): :class:`EdgeHttpProtocol` bound to ``guard``."""
    return type("ZapgateHttpProtocol", (EdgeHttpProtocol,), {"guard": guard})


def http_error_response(error: ZapgateError) -> bytes:
    """A complete ``Connection: close`` HTTP response whose JSON body is ``{"code", "message"}``."""
    body = msgspec.json.encode({"code": error.code, "message": error.message})
    lines = [
        f"HTTP/1.1 {error.status} {http.HTTPStatus(error.status).phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if isinstance(error, RateLimited) and error.retry_after_header is not None:
        lines.append(f"retry-after: {error.retry_after_header}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def log_refusal(guard: EdgeGuard, peer: str, error: ZapgateError, now: float) -> None:
    """Log a refusal at DEBUG, and at WARNING the first of its kind and then at most once a minute, so that an
    attack cannot flood the log."""
    unlogged = guard.note_refusal(error.code, now)
    if unlogged is None:
        log.debug("refused %s: %s (%s)", peer, error.code, error.message)
        return
    more = f"; {unlogged} more refused for this reason since the last warning" if unlogged else ""
    log.warning("refused %s: %s (%s)%s", peer, error.code, error.message, more)


class EdgeTransport(asyncio.Transport):
    """A transport that really closes: ``close()`` waits for the write buffer to drain, which a client that
    does not read never lets happen, so the connection is aborted if it is still there after the grace."""

    def __init__(self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop, grace: float) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop
        self._grace = grace
        self._cut: asyncio.TimerHandle | None = None
        self._lost = False

    def cut_after_grace(self) -> None:
        """Abort the connection unless it is gone within the grace (idempotent)."""
        if self._cut is None and not self._lost:
            self._cut = self._loop.call_later(self._grace, self._abort)

    def _abort(self) -> None:
        if not self._lost:
            log.debug("cutting a connection that did not close within %g s", self._grace)
            self._inner.abort()

    def lost(self) -> None:
        """The connection is gone; called by the protocol."""
        self._lost = True
        if self._cut is not None:
            self._cut.cancel()
            self._cut = None

    def close(self) -> None:
        self._inner.close()
        self.cut_after_grace()

    def abort(self) -> None:
        self._inner.abort()

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def write(self, data: bytes | bytearray | memoryview[Any]) -> None:
        self._inner.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._inner.writelines(list_of_data)

    def write_eof(self) -> None:
        self._inner.write_eof()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._inner.pause_reading()

    def resume_reading(self) -> None:
        self._inner.resume_reading()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()


class EdgeHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with admission, a handshake deadline and request-head limits."""

    guard: ClassVar[EdgeGuard]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._admission: Admission | None = None
        self._edge: EdgeTransport | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._head_open = True
        self._head_bytes = 0
        self._header_count = 0
        self._refused = False

    @property
    def _peer(self) -> str:
        return self.client[0] if self.client else ""

    # -- connection lifecycle

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        settings = self.guard.settings
        self._edge = EdgeTransport(cast(asyncio.Transport, transport), self.loop, settings.close_timeout_s)
        super().connection_made(self._edge)
        admitted = self.guard.admit(self._peer)
        if isinstance(admitted, ZapgateError):
            self._refuse(admitted)
            return
        self._admission = admitted
        self._arm_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if self._edge is not None:
            self._edge.lost()
        if self._admission is not None:
            self._admission.release()
            self._admission = None
        super().connection_lost(exc)

    def _arm_deadline(self) -> None:
        if self._deadline is None and not self._refused:
            self._deadline = self.loop.call_later(self.guard.settings.handshake_timeout_s, self._handshake_timeout)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _handshake_timeout(self) -> None:
        self._deadline = None
        seconds = self.guard.settings.handshake_timeout_s
        self._refuse(HandshakeTimeout(f"the request head did not arrive within {seconds:g} s"))

    def _refuse(self, error: ZapgateError) -> None:
        """Answer ``error`` with an HTTP response and close; the input is dropped until then."""
        if self._refused:
            return
        self._refused = True
        self._cancel_deadline()
        log_refusal(self.guard, self._peer, error, self.loop.time())
        transport = self.transport
        if transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            transport.abort()  # a response is being written: ours would garble it
            return
        transport.write(http_error_response(error))
        if transport.can_write_eof():
            transport.write_eof()
        self._linger = self.loop.call_later(REFUSAL_LINGER_S, transport.abort)

    # -- parsing

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._head_open:
            self._head_bytes += len(data)
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return
        except httptools.HttpParserError as exc:
            reason = exc.__context__
            self._refuse(reason if isinstance(reason, ZapgateError) else InvalidRequest(f"malformed HTTP: {exc}"))
            return
        limit = self.guard.settings.max_header_bytes
        if self._head_open and self._head_bytes > limit:
            self._refuse(RequestHeadTooLarge(f"the request head is larger than {limit} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_open = True
        self._header_count = 0
        self._arm_deadline()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        limit = self.guard.settings.max_headers
        if self._header_count > limit:
            raise RequestHeadTooLarge(f"the request has more than {limit} headers")
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._head_open = False
        self._head_bytes = 0
        self._cancel_deadline()
        refusal = self.guard.check_host([value.decode("latin-1") for name, value in self.headers if name == b"host"])
        if refusal is not None:
            raise refusal
        if self._admission is not None and self.guard.is_trusted_proxy(self._peer):
            forwarded = [value.decode("latin-1") for name, value in self.headers if name == b"x-forwarded-for"]
            client = forwarded_client(self._peer, forwarded, self.guard.trusted)
            refusal = self._admission.identify(client)
            if refusal is not None:
                raise refusal
        super().on_headers_complete()

    def handle_websocket_upgrade(self) -> None:
        # As uvicorn's, with zapgate's WebSocket protocol, which takes over the connection's admission.
        self.connections.discard(self)
        self._cancel_deadline()
        method = self.scope["method"].encode()
        output = [method, b" ", self.url, b" HTTP/1.1\r\n"]
        for name, value in self.scope["headers"]:
            output += [name, b": ", value, b"\r\n"]
        output.append(b"\r\n")
        protocol = EdgeWebSocketProtocol(
            config=self.config,
            server_state=self.server_state,
            app_state=self.app_state,
            admission=self._admission,
            close_timeout=self.guard.settings.close_timeout_s,
            control_rate=(self.guard.settings.command_rate_per_s, self.guard.settings.command_burst),
        )
        self._admission = None
        self._edge = None  # the WebSocket protocol reports the loss from now on
        protocol.connection_made(self.transport)
        protocol.data_received(b"".join(output))
        self.transport.set_protocol(protocol)


def _is_pong(chunk: bytes) -> bool:
    return chunk[:1] == b"\x8a"  # FIN + opcode 0xA; server frames are not masked


_UVICORN_ATTRIBUTES = (
    "app",
    "app_state",
    "asgi_version",
    "client",
    "close_sent",
    "close_timeout",
    "close_timer",
    "config",
    "conn",
    "connections",
    "curr_msg_data_type",
    "default_headers",
    "disconnected",
    "frames",
    "handshake_complete",
    "handshake_initiated",
    "initial_response",
    "last_ping_rtt",
    "logger",
    "loop",
    "pending_ping_payload",
    "ping_interval",
    "ping_sent_at",
    "ping_timeout",
    "ping_timer",
    "pong_timer",
    "queue",
    "read_paused",
    "request",
    "response",
    "root_path",
    "scheme",
    "scope",
    "server",
    "tasks",
    "transport",
    "writable",
)
"""Every attribute uvicorn's ``WebSocketsSansIOProtocol`` sets (``tests/test_edge_internals.py`` keeps the list
whole): as slots of the subclass they cost 8 bytes each instead of a 1.5 KiB instance dictionary."""


class EdgeWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol: coalesced pongs, closes that happen, quiet refusals, and lean
    per-connection state.

    Thousands of connections sit idle, so what uvicorn keeps for each is trimmed (``bench/findings.md``, "Idle
    connections, round 4"): its attributes are slots, its receive queue and "writable" event are
    :mod:`~zapgate.server.lean`'s, and the request head (the websockets request and response, the scope's
    headers) is dropped once the upgrade is accepted: the app reads the headers before it accepts.
    """

    __slots__ = (
        *_UVICORN_ATTRIBUTES,
        "_admission",
        "_close_timeout",
        "_control",
        "_edge",
        "_pending_pong",
        "_take_text",
    )

    queue: Inbox[Any]  # type: ignore[assignment]
    writable: WaitFlag  # type: ignore[assignment]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        admission: Admission | None = None,
        close_timeout: float = 5.0,
        control_rate: tuple[float, int] | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # At DEBUG, websockets logs the upgrade's headers (a Bearer token whole) and the start and end of every
        # frame (an auth frame's token, message texts): never, at any level (docs/security.md).
        self.conn.debug = False
        self.queue = Inbox()
        self.writable = WaitFlag()
        self.writable.set()
        self._admission = admission
        self._close_timeout = close_timeout
        self._edge: EdgeTransport | None = None
        self._pending_pong: bytes | None = None
        self._take_text: Callable[[str], bool] | None = None
        self._control = TokenBucket(*control_rate, self.loop.time()) if control_rate and control_rate[0] else None
        if admission is not None:
            admission.on_close = self._cut_if_lingering

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, EdgeTransport):
            transport = EdgeTransport(cast(asyncio.Transport, transport), self.loop, self._close_timeout)
        self._edge = transport
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._edge is not None:
            self._edge.lost()
        if self._admission is not None:
            self._admission.release()
        super().connection_lost(exc)

    def _cut_if_lingering(self) -> None:
        if self._edge is not None:
            self._edge.cut_after_grace()

    def handle_connect(self, event: Any) -> None:
        super().handle_connect(event)
        # The request's headers are in the scope now. websockets' parser keeps the request for the connection's
        # whole life (a local of its generator), uvicorn as ``self.request``: neither reads it again.
        event.headers.clear()
        del self.request
        if self.response.status_code != 101:
            return
        extensions = self.scope.get("extensions")
        if extensions is not None and self._admission is not None:
            extensions[EDGE_EXTENSION] = cast(dict[object, object], self._admission)
        if extensions is not None:
            extensions[SEND_TEXTS_EXTENSION] = cast(dict[object, object], self.send_texts)
            extensions[SEND_NOW_EXTENSION] = cast(dict[object, object], self.send_text_now)
            extensions[TAKE_TEXTS_EXTENSION] = cast(dict[object, object], self.take_texts_with)

    # -- pings

    def _control_frame_allowed(self) -> bool:
        """Count a ping or pong against the bucket; a flood is closed (1008) and its frames are ignored."""
        if self.close_sent:
            return False
        if self._control is None or self._control.take(self.loop.time()) == 0.0:
            return True
        log.debug("closing %s: more pings than %g per second", self.client, self._control.rate)
        self.conn.send_close(CloseCode.POLICY_VIOLATION, "too many pings")
        self.handle_parser_exception()
        return False

    def handle_pong(self, event: Any) -> None:
        if self._control_frame_allowed():
            super().handle_pong(event)

    def handle_ping(self) -> None:
        # websockets queued a pong for every ping of this read: always take them, or a flood that goes on while
        # the connection closes would pile them up there; keep the latest, unless the pings are refused.
        chunks = self.conn.data_to_send()
        pongs = [chunk for chunk in chunks if _is_pong(chunk)]
        others = [chunk for chunk in chunks if not _is_pong(chunk)]
        if others:
            self.transport.write(b"".join(others))
        if not self._control_frame_allowed():
            return
        if pongs:
            self._pending_pong = pongs[-1]  # only the latest ping needs an answer
        self._flush_pong()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._flush_pong()

    def _flush_pong(self) -> None:
        if self._pending_pong is not None and self.writable.is_set() and not self.transport.is_closing():
            pong, self._pending_pong = self._pending_pong, None
            self.transport.write(pong)

    # -- frames and closes

    def take_texts_with(self, take: Callable[[str], bool] | None) -> None:
        """Offer each text frame, in the step of the loop that read it, to ``take`` (None: no more) before queueing
        it for ``receive``: while nothing is queued, a frame ``take`` accepts (True) is its, never queued, and the
        app reads it one turn of the loop sooner. A frame it refuses (False), and every frame while others are
        queued, is queued as before, so that frames keep their order."""
        self._take_text = take

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type == "text" and not self.close_sent:
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            if not data.isascii():
                try:
                    data.decode()
                except UnicodeDecodeError:
                    log.debug("closing %s: a text frame is not valid UTF-8", self.client)
                    self.frames = []
                    self.conn.send_close(CloseCode.INVALID_UTF8, "text frames must be UTF-8")
                    self.handle_parser_exception()
                    return
            take = self._take_text
            if take is not None and self.queue.empty() and take(data.decode()):
                self.frames = []
                return
        super().send_receive_event_to_app()

    def _open_for_texts(self) -> bool:
        """Accepted, still open and not closing: text frames may be written straight to the transport."""
        return not (
            self.disconnected or not self.handshake_complete or self.close_sent or self.initial_response is not None
        )

    def _frames_written_here(self) -> bool:
        """Text frames may be written by :func:`text_frame_header` and their payload: the connection is open, sends
        no fragmented message and negotiated no extension (compression is off, ``server/__init__.py``), so a frame
        is exactly that; else the protocol object writes each."""
        conn = self.conn
        return conn.state is State.OPEN and not conn.extensions and not conn.expect_continuation_frame

    def send_text_now(self, data: bytes) -> bool:
        """Write a text frame (``data``: its UTF-8) to the socket now, in this step of the loop, and return True; or
        write nothing and return False when it cannot go at once (the transport asked to stop writing, or the
        connection is not open): the caller then queues it as usual."""
        if not self.writable.is_set() or not self._open_for_texts():
            return False
        try:
            self.conn.send_text(data)
        except InvalidState:
            return False
        self.transport.write(b"".join(self.conn.data_to_send()))
        return True

    async def send_texts(self, texts: Sequence[str]) -> None:
        """Send text frames, in order, with one write to the socket: a connection's queued events cost one system
        call together instead of one each. As ``send`` of one ``websocket.send`` per text otherwise."""
        await self.writable.wait()
        if not self._open_for_texts():
            for text in texts:  # the rare cases, answered exactly as uvicorn answers them
                await self.send({"type": "websocket.send", "text": text})
            return
        if self._frames_written_here():
            parts = self.conn.data_to_send()  # what the protocol queued before (a pong) goes first
            for text in texts:
                payload = text.encode()
                parts += (text_frame_header(len(payload)), payload)
            self.transport.write(b"".join(parts))
            return
        try:
            for text in texts:
                self.conn.send_text(text.encode())
        except InvalidState:
            raise ClientDisconnected() from None
        self.transport.write(b"".join(self.conn.data_to_send()))

    async def send(self, message: Any) -> None:
        kind = message["type"]
        if kind == "websocket.close":
            self._cut_if_lingering()
        await super().send(message)
        if kind == "websocket.accept" and self.handshake_complete:
            # The response has been sent and the app has read the headers it needs.
            # The scope's list is emptied in place: Starlette's ``WebSocket.headers`` shares it once read.
            del self.response
            cast(list[tuple[bytes, bytes]], self.scope["headers"]).clear()
        elif kind == "websocket.http.response.body" and not message.get("more_body", False):
            # The upgrade was answered with an HTTP response (401, 429...): a complete handshake, not an error.
            self.handshake_complete = True

    async def receive(self) -> Any:
        # As uvicorn's, without its coroutine for ``Queue.get`` while the inbox is empty (an idle connection).
        queue = self.queue
        while queue.empty():
            await queue.wait()
        message = queue.get_nowait()
        if self.read_paused and queue.empty():
            self.read_paused = False
            self.transport.resume_reading()
        return message
