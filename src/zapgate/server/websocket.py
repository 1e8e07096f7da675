"""One WebSocket client connection on ``/v1/ws``: authentication, resume, commands and events.

A connection has two tasks: this one reads frames and starts a task per command (at most
``max_inflight_commands`` at once, then reading pauses), and a writer sends queued frames in order.
Events arrive from the hub through :meth:`Connection.deliver`, which never blocks: a client that lets more
than ``send_buffer_frames`` frames pile up is closed with 4429 and resumes from its last ``seq``.
"""

from __future__ import annotations

import asyncio
import collections
import logging

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import __version__
from ..auth import Caller
from ..errors import InvalidFrame, InvalidRequest, ProtocolError, Unauthorized, ZapgateError
from ..gateway import Gateway
from ..hub import event_frame
from ..protocol import (
    PROTOCOL_VERSION,
    Auth,
    CloseCode,
    Command,
    ErrorBody,
    ErrorFrame,
    Hello,
    Ready,
    Reply,
    decode_client_frame,
    encode,
)
from ..storage import TokenRecord
from .access import bearer_token
from .commands import run_command
from .origin import refuse_foreign_origin

__all__ = ["WebSocketClient", "websocket_endpoint"]

log = logging.getLogger("zapgate.server")

REPLAY_PAGE = 500
SUBPROTOCOL = f"zapgate.v{PROTOCOL_VERSION}"


async def websocket_endpoint(websocket: WebSocket) -> None:
    if await refuse_foreign_origin(websocket):
        return
    await WebSocketClient(websocket, websocket.app.state.gateway).run()


class WebSocketClient:
    """One client connected to ``/v1/ws`` (the SDK's own connection class is :class:`zapgate.client.Connection`)."""

    # Thousands of these can sit idle: slots, and no writer task or events until they are needed.
    __slots__ = (
        "_close",
        "_close_sent",
        "_holding",
        "_last_seq",
        "_out",
        "_sent",
        "_slots",
        "_tasks",
        "_writer",
        "caller",
        "gateway",
        "peer",
        "settings",
        "tenant",
        "token_id",
        "ws",
    )

    def __init__(self, websocket: WebSocket, gateway: Gateway) -> None:
        self.ws = websocket
        self.gateway = gateway
        self.settings = gateway.settings
        self.tenant: str | None = None
        self.token_id: str | None = None
        self.caller: Caller | None = None
        self._out: collections.deque[str] = collections.deque()
        self._writer: asyncio.Task[None] | None = None  # runs only while there is something to send
        self._sent: asyncio.Event | None = None  # made when someone first waits for the queue to drain
        self._close: tuple[int, str] | None = None
        self._close_sent = False
        self._slots = asyncio.Semaphore(self.settings.max_inflight_commands)
        self._tasks: set[asyncio.Task[None]] = set()
        self._holding: list[tuple[int, str]] | None = None  # live events held back while replaying
        self._last_seq = 0
        client = websocket.client
        self.peer = f"{client.host}:{client.port}" if client else "?"

    # -- lifecycle

    async def run(self) -> None:
        header_token = bearer_token(self.ws.headers)
        record: TokenRecord | None = None
        if header_token is not None:
            try:
                record = await self.gateway.tokens.authenticate(header_token)
            except Unauthorized as exc:
                log.info("connection from %s refused: bad bearer token", self.peer)
                await self.ws.send_denial_response(
                    JSONResponse({"code": exc.code, "message": exc.message}, status_code=401)
                )
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
            resume_from: int | None = None
            if record is None:
                authenticated = await self._authenticate()
                if authenticated is None:
                    return
                record, resume_from = authenticated
            else:
                resume_from = self._resume_header()
            self.tenant, self.token_id = record.tenant, record.id
            self.caller = Caller.of(record)
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
            if self._close is None:
                self._close = (1000, "")
            self._kick()
            if self._writer is not None:
                await asyncio.gather(self._writer, return_exceptions=True)

    def _resume_header(self) -> int | None:
        raw = self.ws.headers.get("zapgate-resume-from")
        if raw is None:
            return None
        return int(raw) if raw.isdigit() else None

    async def _authenticate(self) -> tuple[TokenRecord, int | None] | None:
        try:
            message = await asyncio.wait_for(self.ws.receive(), self.settings.auth_timeout_s)
        except TimeoutError:
            self._refuse(CloseCode.AUTH_TIMEOUT, "auth_timeout", "no auth frame within the time allowed")
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
                self._refuse(CloseCode.BAD_AUTH_FRAME, exc.code, exc.message)
                return None
            frame = None
        except ProtocolError:
            frame = None
        if not isinstance(frame, Auth):
            self._refuse(CloseCode.UNAUTHORIZED, "unauthorized", 'the first frame must be {"type":"auth","token":...}')
            return None
        try:
            record = await self.gateway.tokens.authenticate(frame.token)
        except Unauthorized as exc:
            log.info("connection from %s refused: bad token", self.peer)
            self._refuse(CloseCode.UNAUTHORIZED, exc.code, exc.message)
            return None
        return record, frame.resume_from

    def _refuse(self, code: int, error: str, message: str) -> None:
        self._send(ErrorFrame(code=error, message=message))
        self.close(code, error)

    def revoke(self) -> None:
        log.info("closing %s (tenant %s): token %s was revoked", self.peer, self.tenant, self.token_id)
        self._refuse(CloseCode.UNAUTHORIZED, "unauthorized", "the token of this connection was revoked")

    def close(self, code: int, reason: str) -> None:
        """Close after the frames already queued are sent."""
        if self._close is None:
            self._close = (code, reason)
            self._kick()
            if self._sent is not None:
                self._sent.set()

    # -- ready and resume

    async def _ready(self, tenant: str, resume_from: int | None) -> None:
        self._holding = []
        self.gateway.hub.subscribe(tenant, self)
        oldest, newest = await self.gateway.storage.event_bounds(tenant)
        if resume_from is None:
            self._send(
                Ready(tenant=tenant, last_seq=newest, resume="none", engine=self.gateway.engine.name, replayed=0)
            )
            self._release(after=0)
            return
        gap = resume_from > newest or (oldest > 0 and resume_from < oldest - 1)
        if gap:
            self._send(Ready(tenant=tenant, last_seq=newest, resume="gap", engine=self.gateway.engine.name, replayed=0))
            self._release(after=0)
            return
        self._send(
            Ready(
                tenant=tenant,
                last_seq=newest,
                resume="ok",
                engine=self.gateway.engine.name,
                replayed=newest - resume_from,
            )
        )
        # A page is at most half the send buffer and is pushed only once it fits, so a replay runs at the
        # client's pace and never overflows the buffer (which would close a client that reads promptly).
        page_size = min(REPLAY_PAGE, max(1, self.settings.send_buffer_frames // 2))
        cursor = resume_from
        while cursor < newest and self._close is None:
            page = await self.gateway.storage.read_events(tenant, cursor, page_size)
            if not page:
                break
            await self._drained(self.settings.send_buffer_frames - len(page))
            for event in page:
                self._push_event(event.seq, event_frame(event))
            cursor = page[-1].seq
        self._release(after=cursor)

    def _release(self, *, after: int) -> None:
        held, self._holding = self._holding or [], None
        for seq, frame in held:
            if seq > after:
                self._push_event(seq, frame)

    async def _drained(self, below: int) -> None:
        """Wait until the writer has brought the queue down to ``below`` frames (replay pacing)."""
        while len(self._out) > below and self._close is None:
            if self._sent is None:
                self._sent = asyncio.Event()
            self._sent.clear()
            self._kick()
            await self._sent.wait()

    # -- events from the hub

    def deliver(self, seq: int, frame: str) -> None:
        if self._holding is not None:
            self._holding.append((seq, frame))
            if len(self._holding) > self.settings.send_buffer_frames:
                self._slow_consumer()
            return
        self._push_event(seq, frame)

    def _push_event(self, seq: int, frame: str) -> None:
        if seq <= self._last_seq or self._close is not None:
            return
        if len(self._out) >= self.settings.send_buffer_frames:
            self._slow_consumer()
            return
        self._last_seq = seq
        self._out.append(frame)
        self._kick()

    def _slow_consumer(self) -> None:
        log.info("closing %s (tenant %s): slow consumer, %d frames queued", self.peer, self.tenant, len(self._out))
        self.close(CloseCode.SLOW_CONSUMER, "slow_consumer")

    # -- commands

    async def _read_loop(self) -> None:
        while self._close is None:
            # Replies count against the send buffer too: while it is full, read no more commands, so a client
            # that sends without reading is held back by TCP instead of growing this queue without bound.
            await self._drained(self.settings.send_buffer_frames - 1)
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            try:
                if text is None:
                    raise InvalidFrame("binary frames are not accepted: send JSON as text frames")
                frame = decode_client_frame(text)
                if isinstance(frame, Auth):
                    raise InvalidFrame("already authenticated")
            except ProtocolError as exc:
                log.debug("bad frame from %s: %s", self.peer, exc.message)
                self._send_error(exc.request_id, exc)
                continue
            await self._slots.acquire()
            task = asyncio.create_task(self._execute(frame), name=f"cmd-{frame.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _execute(self, command: Command) -> None:
        try:
            assert self.caller is not None
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
            self._slots.release()

    def _send_error(self, request_id: str | None, exc: ZapgateError) -> None:
        body = ErrorBody(exc.code, exc.message)
        if request_id is not None:
            self._send(Reply(id=request_id, ok=False, error=body))
        else:
            self._send(ErrorFrame(code=body.code, message=body.message))

    # -- output

    def _send(self, frame: object) -> None:
        """Queue a reply or control frame (these are bounded by the in-flight limit, not the buffer)."""
        self._out.append(encode(frame).decode())
        self._kick()

    def _kick(self) -> None:
        """Make sure a writer is draining the queue."""
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="ws-writer")

    async def _drain(self) -> None:
        """Send queued frames in order, then the close frame if one is due; end when there is nothing left.

        A frame queued while this runs is sent by this same task: it is only ever suspended inside
        ``send_text``, and it finishes (``done()``) in the same step in which it finds the queue empty."""
        try:
            while self._out:
                await self.ws.send_text(self._out.popleft())
                if self._sent is not None:
                    self._sent.set()
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
