"""One WebSocket client connection on ``/v1/ws``: authentication, resume, commands and events.

A connection has a reader (this task: it reads frames and starts a task per command, at most
``max_inflight_commands`` at once, each command costing a token of a per-connection rate limit; while it waits
with nothing queued, a frame's command starts in the step of the loop that read it, see :meth:`_take_now`), a
writer that sends queued frames in order (a short reply to a connection with nothing queued is written at once,
without it: one turn of the event loop sooner, which is what other clients wait for while a burst makes each turn
long), and, while the connection is behind, a task that reads events from the event log. Frames wait in a
:class:`~zapgate.server.sendbuffer.SendBuffer` bounded in frames and bytes: a live event that does not fit is not
queued; the connection falls behind and reads it from the log once the client has taken what is queued, so a client
that reads is never closed for a burst. A reply that does not fit, or a client that takes nothing for
``send_timeout_s``, closes the connection with 4429 (it resumes from its last ``seq``). What happens before the
upgrade is bounded in ``edge.py``.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__
from ..auth import Caller
from ..eager import start_eagerly
from ..errors import (
    AuthTimeout,
    Forbidden,
    InvalidFrame,
    InvalidRequest,
    ProtocolError,
    QuotaExceeded,
    RateLimited,
    Unauthorized,
    ZapgateError,
)
from ..gateway import Gateway
from ..hub import event_frame
from ..protocol import (
    EVERYTHING,
    PROTOCOL_VERSION,
    Auth,
    CloseCode,
    Command,
    ErrorBody,
    ErrorFrame,
    EventFilter,
    Hello,
    Ready,
    Reply,
    Scope,
    Subscribe,
    Subscription,
    decode_client_frame,
    encode,
    event_filter,
)
from ..storage import TokenRecord
from .access import bearer_token, check_token
from .commands import run_command
from .edge import EDGE_EXTENSION, SEND_NOW_EXTENSION, SEND_TEXTS_EXTENSION, TAKE_TEXTS_EXTENSION, log_refusal
from .guard import Admission, EdgeGuard, TokenBucket
from .origin import refuse_foreign_origin
from .sendbuffer import SendBuffer, frame_size

__all__ = ["WebSocketClient", "resume_header", "websocket_endpoint"]

log = logging.getLogger("zapgate.server")

REPLAY_PAGE = 500
WRITE_BYTES = 64 * 1024
"""Most bytes of queued frames written to the socket at once (about the transport's high-water mark, so that a
client that reads slowly makes the writer wait as often as before)."""
SUBPROTOCOL = f"zapgate.v{PROTOCOL_VERSION}"
MAX_SEQ = 2**63 - 1
_SEQ_DIGITS = re.compile(r"[0-9]{1,19}")


async def websocket_endpoint(websocket: WebSocket) -> None:
    if await refuse_foreign_origin(websocket):
        return
    state = websocket.app.state
    await WebSocketClient(websocket, state.gateway, state.edge).run()


def resume_header(headers: Any) -> int | None:
    """The ``Zapgate-Resume-From`` header's seq, None without one; :class:`InvalidRequest` if it is not one."""
    raw = headers.get("zapgate-resume-from")
    if raw is None:
        return None
    value = raw.strip()
    if not _SEQ_DIGITS.fullmatch(value) or int(value) > MAX_SEQ:
        raise InvalidRequest("Zapgate-Resume-From must be the seq of the last event you saw: ASCII digits, 0 to 2^63-1")
    return int(value)


class WebSocketClient:
    """One client connected to ``/v1/ws`` (the SDK's own connection class is :class:`zapgate.client.Connection`)."""

    # Thousands of these can sit idle: slots, and no writer task or events until they are needed.
    __slots__ = (
        "_admission",
        "_bucket",
        "_catch_up_task",
        "_close",
        "_close_sent",
        "_filter",
        "_free",
        "_freed",
        "_last_seq",
        "_live",
        "_newest",
        "_out",
        "_reading",
        "_send_now",
        "_send_texts",
        "_sent",
        "_take_texts_with",
        "_tasks",
        "_token",
        "_writer",
        "address",
        "caller",
        "gateway",
        "guard",
        "peer",
        "settings",
        "tenant",
        "token_id",
        "ws",
    )

    def __init__(self, websocket: WebSocket, gateway: Gateway, guard: EdgeGuard) -> None:
        self.ws = websocket
        self.gateway = gateway
        self.guard = guard
        self.settings = s = gateway.settings
        self.tenant: str | None = None
        self.token_id: str | None = None
        self.caller: Caller | None = None
        self._token: str | None = None  # counted against max_connections_per_token
        extensions = websocket.scope.get("extensions") or {}
        self._admission: Admission | None = extensions.get(EDGE_EXTENSION)
        # Under zapgate's own server: all the frames queued for this connection go out in one socket write.
        self._send_texts: Callable[[list[str]], Awaitable[None]] | None = extensions.get(SEND_TEXTS_EXTENSION)
        self._send_now: Callable[[bytes], bool] | None = extensions.get(SEND_NOW_EXTENSION)
        # ... and a command is taken in the step of the loop that read its frame (see _take_now).
        self._take_texts_with: Callable[[Callable[[str], bool] | None], None] | None = extensions.get(
            TAKE_TEXTS_EXTENSION
        )
        self._out = SendBuffer(s.send_buffer_frames, s.send_buffer_bytes)
        self._writer: asyncio.Task[None] | None = None  # runs only while there is something to send
        self._sent: asyncio.Event | None = None  # made when someone first waits for the queue to drain
        self._close: tuple[int, str] | None = None
        self._close_sent = False
        self._free = s.max_inflight_commands  # commands that may start before one of those running ends
        self._freed: asyncio.Future[None] | None = None  # the reader waits on it while none may start
        self._reading = False  # the reader waits for the next frame, and none is queued ahead of it
        self._tasks: set[asyncio.Task[None]] = set()
        self._catch_up_task: asyncio.Task[None] | None = None
        self._live = False  # live events are queued as they come; else they are read from the log
        self._newest = 0  # the newest seq of the tenant this connection has heard of
        self._last_seq = 0  # the seq of the last event queued (or passed over by the filter while reading the log)
        self._filter: EventFilter = EVERYTHING  # which events this connection subscribed to
        loop = asyncio.get_running_loop()
        self._bucket = TokenBucket(s.command_rate_per_s, s.command_burst, loop.time()) if s.command_rate_per_s else None
        client = websocket.client
        self.peer = f"{client.host}:{client.port}" if client else "?"
        self.address = client.host if client else ""

    # -- lifecycle

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            if self._token is not None:
                self.guard.close_token(self._token)
                self._token = None

    async def _run(self) -> None:
        try:
            resume_from = resume_header(self.ws.headers)
        except InvalidRequest as exc:
            log.debug("upgrade from %s refused: %s", self.peer, exc.message)
            await self._deny(exc)
            return
        header_token = bearer_token(self.ws.headers)
        record: TokenRecord | None = None
        if header_token is not None:
            try:
                record = await self._check_token(header_token)
            except Unauthorized as exc:
                await self._deny(exc)
                return
            refusal = self._open_token(record)
            if refusal is not None:
                await self._deny(refusal)
                return
        # A browser that offers subprotocols fails the connection unless one is chosen: ours is zapgate.v1.
        offered = self.ws.scope.get("subprotocols") or []
        await self.ws.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
        try:
            self._send(
                Hello(
                    protocol=PROTOCOL_VERSION,
                    server=f"zapgate/{__version__}",
                    auth="accepted" if record else "required",
                    auth_timeout_s=self.settings.auth_timeout_s,
                    max_frame_bytes=self.settings.max_frame_bytes,
                )
            )
            if record is None:
                authenticated = await self._authenticate()
                if authenticated is None:
                    return
                record, auth = authenticated
                if auth.resume_from is not None:
                    resume_from = auth.resume_from
            self.tenant, self.token_id = record.tenant, record.id
            self.caller = Caller.of(record)
            self._filter = self.caller.narrow(self._filter)  # a token limited to some sessions sees only theirs
            if self._admission is not None:
                self._admission.authenticated()
            self.gateway.connections.add(self)
            log.info("connection from %s authenticated as tenant %s (token %s)", self.peer, record.tenant, record.id)
            await self._ready(record.tenant, resume_from)
            await self._read_loop()
        except WebSocketDisconnect:
            pass
        finally:
            self.gateway.connections.discard(self)
            if self.tenant is not None:
                self.gateway.hub.unsubscribe(self.tenant, self)
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.close(CloseCode.NORMAL, "")
            self._kick()
            if self._writer is not None:
                await asyncio.gather(self._writer, return_exceptions=True)

    async def _deny(self, error: ZapgateError) -> None:
        """Refuse the upgrade with an HTTP response carrying the error (before ``hello``)."""
        body = {"code": error.code, "message": error.message}
        await self.ws.send_denial_response(JSONResponse(body, status_code=error.status))

    async def _check_token(self, token: str) -> TokenRecord:
        """The token's record, or :class:`Unauthorized`; an address whose attempts keep failing waits first."""
        return await check_token(self.gateway.tokens, self.guard, self.address, token)

    def _open_token(self, record: TokenRecord) -> ZapgateError | None:
        refusal = self.guard.open_token(record.id)
        if refusal is not None:
            log_refusal(self.guard, self.peer, refusal, asyncio.get_running_loop().time())
            return refusal
        self._token = record.id
        return None

    async def _authenticate(self) -> tuple[TokenRecord, Auth] | None:
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.settings.auth_timeout_s)
        except TimeoutError:
            self._refuse(CloseCode.AUTH_TIMEOUT, AuthTimeout("no auth frame within the time allowed"))
            return None
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        try:
            if text is None:
                raise InvalidFrame("frames must be JSON text")
            frame = decode_client_frame(text)
        except InvalidRequest as exc:
            if exc.message.startswith("invalid 'auth' frame"):
                # The token may well be right: say which field is wrong, with a close code of its own.
                self._refuse(CloseCode.BAD_AUTH_FRAME, exc)
                return None
            frame = None
        except ProtocolError:
            frame = None
        if not isinstance(frame, Auth):
            self._refuse(CloseCode.UNAUTHORIZED, Unauthorized('the first frame must be {"type":"auth","token":...}'))
            return None
        try:
            record = await self._check_token(frame.token)
        except Unauthorized as exc:
            self._refuse(CloseCode.UNAUTHORIZED, exc)
            return None
        if frame.sessions or frame.events:
            try:
                self._filter = event_filter(frame.sessions, frame.events)
            except InvalidRequest as exc:
                self._refuse(CloseCode.BAD_AUTH_FRAME, InvalidRequest(f"invalid 'auth' frame: {exc.message}"))
                return None
        refusal = self._open_token(record)
        if refusal is not None:
            self._refuse(CloseCode.TOO_MANY_CONNECTIONS, refusal)
            return None
        return record, frame

    def _refuse(self, code: CloseCode, error: ZapgateError) -> None:
        self._send(ErrorFrame(code=error.code, message=error.message))
        self.close(code, error.code)

    def revoke(self, why: str = "the token of this connection was revoked") -> None:
        log.info("closing %s (tenant %s, token %s): %s", self.peer, self.tenant, self.token_id, why)
        self._refuse(CloseCode.UNAUTHORIZED, Unauthorized(why))

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued are sent; the edge cuts the connection if that takes longer
        than ``close_timeout_s`` (a client that does not read)."""
        if self._close is None:
            self._close = (code, reason)
            if self._admission is not None:
                self._admission.closing()
            self._kick()
            if self._sent is not None:
                self._sent.set()

    # -- ready, resume and catching up from the log

    async def _ready(self, tenant: str, resume_from: int | None) -> None:
        self.gateway.hub.subscribe(tenant, self, self._filter)  # not live yet: deliver() only notes the newest seq
        oldest, newest = await self.gateway.storage.event_bounds(tenant)
        self._newest = max(self._newest, newest)
        engine = self.gateway.engine.name
        if resume_from is None or resume_from > newest or (oldest > 0 and resume_from < oldest - 1):
            self._last_seq = newest
            resume: Literal["none", "gap"] = "none" if resume_from is None else "gap"
            self._send(
                Ready(tenant=tenant, last_seq=newest, resume=resume, engine=engine, replayed=0, **self._grants())
            )
        else:
            # The replay is the catch-up below: every event after resume_from, in order, then live ones.
            self._last_seq = resume_from
            replayed = newest - resume_from
            self._send(
                Ready(tenant=tenant, last_seq=newest, resume="ok", engine=engine, replayed=replayed, **self._grants())
            )
        self._catch_up()

    def _grants(self) -> dict[str, Any]:
        assert self.caller is not None
        return self.caller.grants()

    def _catch_up(self) -> None:
        """Go live if nothing is missing, else (keep) reading the missing events from the log."""
        if self._last_seq >= self._newest:
            self._live = True
            return
        self._live = False
        if self._catch_up_task is None or self._catch_up_task.done():
            task = asyncio.create_task(self._read_log(), name="ws-catch-up")
            self._catch_up_task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read_log(self) -> None:
        tenant = self.tenant
        assert tenant is not None
        try:
            while self._close is None:
                if self._last_seq >= self._newest:
                    self._live = True
                    return
                if not await self._wait_until(self._out.has_room_for_events):
                    return
                limit = min(REPLAY_PAGE, self._out.event_room())
                only, newest = self._filter, self._newest
                page = await self.gateway.storage.read_events(
                    tenant, self._last_seq, limit, sessions=only.sessions, events=only.events
                )
                # A filtered read skips seqs as a matter of course: only the log's own bounds tell a loss.
                if (not page or page[0].seq > self._last_seq + 1) and await self._lost_events(tenant):
                    log.info("closing %s (tenant %s): events after %d left the log", self.peer, tenant, self._last_seq)
                    self.close(CloseCode.SLOW_CONSUMER, "slow_consumer")
                    return
                if only is not self._filter:
                    continue  # the subscription changed during the read: read again with the new one
                pushed = 0
                for event in page:
                    frame = event_frame(event)
                    size = frame_size(frame)
                    if not self._out.fits_event(size):
                        if pushed:
                            break  # the rest of the page is read again once there is room
                        # A big event: wait until it fits (an empty buffer takes anything).
                        if not await self._wait_until(lambda size=size: self._out.fits_event(size)):  # type: ignore[misc]
                            return
                    self._out.push(frame, size)
                    self._last_seq = event.seq
                    pushed += 1
                    self._kick()
                if pushed == len(page) < limit:
                    # The read found every matching event there was, so none is missing up to the newest seq heard
                    # of before it (committed, hence visible to the read): a filtered connection passes over the
                    # rest instead of reading it again.
                    self._last_seq = max(self._last_seq, newest)
        except Exception:
            log.exception("reading the event log for %s failed", self.peer)
            self.close(1011, "internal error")

    async def _lost_events(self, tenant: str) -> bool:
        oldest, _ = await self.gateway.storage.event_bounds(tenant)
        return self._last_seq < oldest - 1

    # -- events from the hub

    def deliver(self, seq: int, frame: str) -> None:
        if seq > self._newest:
            self._newest = seq
        if not self._live or self._close is not None or seq <= self._last_seq:
            return
        size = frame_size(frame)
        if self._out.fits_event(size):
            self._out.push(frame, size)
            self._last_seq = seq
            self._kick()
            return
        log.debug("%s is behind: reading events after seq %d from the log", self.peer, self._last_seq)
        self._catch_up()

    def _slow_consumer(self, why: str) -> None:
        if self._close is None:
            log.info("closing %s (tenant %s): slow consumer, %s", self.peer, self.tenant, why)
            self.close(CloseCode.SLOW_CONSUMER, "slow_consumer")

    async def _wait_until(self, ready: Callable[[], bool]) -> bool:
        """Wait, as the writer sends, until ``ready()``; False if the connection closes first. A client that takes
        no frame for ``send_timeout_s`` meanwhile is closed as a slow consumer."""
        while not ready():
            if self._close is not None:
                return False
            if self._sent is None:
                self._sent = asyncio.Event()
            self._sent.clear()
            self._kick()
            try:
                await asyncio.wait_for(self._sent.wait(), self.settings.send_timeout_s)
            except TimeoutError:
                self._slow_consumer(f"it took no frame for {self.settings.send_timeout_s:g} s")
                return False
        return self._close is None

    # -- commands

    async def _read_loop(self) -> None:
        if self._take_texts_with is not None:
            self._take_texts_with(self._take_now)
        try:
            while self._close is None:
                # While the buffer is three quarters full, read no more commands: a client that sends without
                # reading is held back by TCP; one whose replies still overflow the buffer is closed (4429).
                if not await self._wait_until(self._out.accepts_commands):
                    return
                self._reading = True
                try:
                    message = await self.ws.receive()
                finally:
                    self._reading = False
                if message["type"] == "websocket.disconnect":
                    return
                frame = self._decode(message.get("text"))
                if frame is None:
                    continue
                while self._free == 0:
                    self._freed = asyncio.get_running_loop().create_future()
                    await self._freed
                self._start(frame)
        finally:
            if self._take_texts_with is not None:
                self._take_texts_with(None)

    def _take_now(self, text: str) -> bool:
        """A text frame, offered by the protocol in the step of the loop that read it, before it is queued for
        :meth:`_read_loop` (``TAKE_TEXTS_EXTENSION``). When the reader is waiting for a frame with none queued
        ahead, the buffer takes commands and one may start, it is taken here (True): its command starts now, one
        turn of the loop sooner than from the reader, which during a burst is a long turn. Otherwise False, and
        the reader takes it in turn."""
        if not self._reading or self._close is not None or self._free == 0 or not self._out.accepts_commands():
            return False
        frame = self._decode(text)
        if frame is not None:
            self._start(frame)
        return True

    def _decode(self, text: str | None) -> Command | None:
        """The command of a frame; or None, its error answered, when it is not one or the rate limit refuses it."""
        wait = self._bucket.take(asyncio.get_running_loop().time()) if self._bucket is not None else 0.0
        try:
            if text is None:
                raise InvalidFrame("binary frames are not accepted: send JSON as text frames")
            frame = decode_client_frame(text)
            if isinstance(frame, Auth):
                raise InvalidFrame("already authenticated")
        except ProtocolError as exc:
            log.debug("bad frame from %s: %s", self.peer, exc.message)
            self._send_error(exc.request_id, self._rate_limited(wait) if wait else exc)
            return None
        if wait:
            self._send_error(frame.id, self._rate_limited(wait))
            return None
        return frame

    def _start(self, command: Command) -> None:
        """Start a command (one may start: :attr:`_free`). Its first step runs now, in this step of the loop (an
        eager task): a command that waits for nothing is answered at once, not one turn later."""
        self._free -= 1
        task = start_eagerly(self._execute(command), name=f"cmd-{command.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _subscribe(self, command: Subscribe) -> Subscription:
        """Replace this connection's subscription: the events queued so far stay queued, every later one (live or
        read from the log) is matched against the new filter."""
        assert self.caller is not None and self.tenant is not None
        if not self.caller.allows(Scope.READ):
            raise Forbidden("subscribe needs a token with the 'read' scope")
        self._filter = self.caller.narrow(event_filter(command.sessions, command.events))
        self.gateway.hub.subscribe(self.tenant, self, self._filter)
        return self._filter.describe()

    def _rate_limited(self, wait: float) -> RateLimited:
        log_refusal(self.guard, self.peer, RateLimited("command rate limit"), asyncio.get_running_loop().time())
        retry_after = math.ceil(wait * 1000) / 1000
        rate = self.settings.command_rate_per_s
        return RateLimited(
            f"more than {rate:g} commands per second on this connection: send it again in {retry_after:g} s",
            retry_after,
        )

    async def _execute(self, command: Command) -> None:
        try:
            assert self.caller is not None
            if isinstance(command, Subscribe):
                data: object = self._subscribe(command)
            else:
                data = await run_command(self.gateway, self.caller, command)
            self._send(Reply(id=command.id, ok=True, data=data if data is not None else {}))
        except ZapgateError as exc:
            self._send_error(command.id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("command %s failed", type(command).__name__)
            self._send(Reply(id=command.id, ok=False, error=ErrorBody("internal", "internal error; see server log")))
        finally:
            self._free += 1
            if self._freed is not None and not self._freed.done():
                self._freed.set_result(None)

    def _send_error(self, request_id: str | None, exc: ZapgateError) -> None:
        retry_after = exc.retry_after if isinstance(exc, RateLimited) else None
        if request_id is not None:
            quota, limit = (exc.quota, exc.limit) if isinstance(exc, QuotaExceeded) else (None, None)
            body = ErrorBody(exc.code, exc.message, retry_after, quota, limit)
            self._send(Reply(id=request_id, ok=False, error=body))
        else:
            self._send(ErrorFrame(code=exc.code, message=exc.message, retry_after=retry_after))

    # -- output

    def _send(self, frame: object) -> None:
        """Send a reply or control frame: at once when nothing is queued before it, it is no longer than one step of
        the writer (``WRITE_BYTES``) and the socket takes it (no writer task, and no turn of the event loop to wait
        for: during a burst each turn is long); else queued behind the rest. One the buffer cannot take closes the
        connection (4429)."""
        data = encode(frame)
        if (
            self._send_now is not None
            and len(data) <= WRITE_BYTES
            and not self._out
            and self._close is None
            and (self._writer is None or self._writer.done())
            and self._send_now(data)
        ):
            return
        if not self._out.fits_reply(len(data)):
            self._slow_consumer(f"{len(self._out)} frames ({self._out.bytes} bytes) wait for it")
            return
        self._out.push(data.decode(), len(data))
        self._kick()

    def _kick(self) -> None:
        """Make sure a writer is draining the queue."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="ws-writer")

    async def _drain(self) -> None:
        """Send queued frames in order, then the close frame if one is due; end when there is nothing left.

        A frame queued while this runs is sent by this same task: it is only ever suspended inside
        ``send_text`` or between two writes, and it finishes (``done()``) in the same step in which it finds the
        queue empty. Between two writes it lets the loop turn, so that a long queue (a burst of events) is
        written a ``WRITE_BYTES`` at a time among other clients' work, not in one long step."""
        try:
            while self._out:
                if self._send_texts is not None:
                    await self._send_texts(self._out.pop_many(WRITE_BYTES))
                else:
                    await self.ws.send_text(self._out.pop())
                if self._sent is not None:
                    self._sent.set()
                if self._out:
                    await asyncio.sleep(0)
            if self._close is not None and not self._close_sent:
                self._close_sent = True
                await self.ws.close(*self._close)
        except Exception:  # the peer is gone: nothing more can be sent
            log.debug("writer for %s stopped", self.peer, exc_info=True)
            self._out.clear()
            self._close_sent = True
            if self._close is None:
                self._close = (1006, "")
        finally:
            if self._sent is not None:
                self._sent.set()
