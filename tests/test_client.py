"""The Python SDK end to end against a real gateway on 127.0.0.1 running the simulator.

Dropped connections are real: a TCP relay between the SDK and the gateway (:class:`TcpRelay`) cuts both
sockets at once, as a network failure does, or stops passing the gateway's frames to the client so that a
command is in flight when the cut comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

import zapgate.client
from zapgate.client import (
    Client,
    EventGap,
    GatewayUnreachable,
    MessageReceived,
    MessageStatus,
    RequestTimeout,
    SessionQr,
    SessionRestricted,
    SessionStatus,
)
from zapgate.config import Settings
from zapgate.errors import (
    ConnectionClosed,
    IdempotencyConflict,
    InvalidRequest,
    SessionNotFound,
    SessionNotPaired,
    Unauthorized,
    ZapgateError,
)

from .conftest import fast_settings
from .support import TIMEOUT, RunningGateway, eventually, serve_gateway

E = TypeVar("E")

ECHO = "+1 555 000 0000"
FAST = {"backoff_base": 0.02, "backoff_cap": 0.2}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """QR codes that live long enough for a slow machine to scan the first one (rotation is tested apart)."""
    return fast_settings(tmp_path / "data")


# -- helpers --------------------------------------------------------------------------------------------


class TcpRelay:
    """A TCP relay on 127.0.0.1 in front of the gateway, to break connections the way a network does."""

    def __init__(self, target_port: int, *, strip_authorization: bool = False) -> None:
        self.target_port = target_port
        self.strip_authorization = strip_authorization  # as some proxies do with WebSocket upgrades
        self.stripped = 0
        self.port = 0
        self.accepted = 0
        self._server: asyncio.Server | None = None
        self._pipes: list[tuple[asyncio.StreamWriter, asyncio.StreamWriter, set[asyncio.Task[None]]]] = []
        self._downstream = asyncio.Event()
        self._downstream.set()
        self.refusing = False

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    async def __aenter__(self) -> TcpRelay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.cut()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _accept(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if self.refusing:
            client_w.transport.abort()
            return
        self.accepted += 1
        server_r, server_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        tasks = {
            asyncio.create_task(self._copy(client_r, server_w, gate=None, upstream=True)),
            asyncio.create_task(self._copy(server_r, client_w, gate=self._downstream)),
        }
        self._pipes.append((client_w, server_w, tasks))

    async def _copy(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, gate: asyncio.Event | None, upstream: bool = False
    ) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await src.read(65536):
                if gate is not None:
                    await gate.wait()
                if upstream and self.strip_authorization and b"\r\nAuthorization: " in data:
                    data = data.replace(b"\r\nAuthorization: ", b"\r\nX-Stripped: ")
                    self.stripped += 1
                dst.write(data)
                await dst.drain()
            dst.close()

    def hold_downstream(self) -> None:
        """Stop passing the gateway's frames to clients (they pile up here and die with the next cut)."""
        self._downstream.clear()

    def cut(self) -> None:
        """Reset every relayed connection at once, with no close handshake; new connections pass again."""
        for client_w, server_w, tasks in self._pipes:
            client_w.transport.abort()
            server_w.transport.abort()
            for task in tasks:
                task.cancel()
        self._pipes.clear()
        self._downstream.set()


async def next_event(client: Client, kind: type[E], where: Callable[[E], bool] = lambda _: True) -> E:
    """The next event of type ``kind`` matching ``where``; the stream's other events are passed over."""
    async with asyncio.timeout(TIMEOUT):
        async for event in client.events():
            if isinstance(event, kind) and where(event):
                return event
    raise AssertionError("the event stream ended")


def status_is(session: str, status: str) -> Callable[[SessionStatus], bool]:
    return lambda e: e.session == session and e.data.status == status


async def pair(client: Client, session: str, phone: str) -> None:
    await client.start_session(session)
    qr = await next_event(client, SessionQr, lambda e: e.session == session)
    await client.sim_scan(qr.data.qr, phone)
    await next_event(client, SessionStatus, status_is(session, "connected"))


@contextlib.asynccontextmanager
async def sdk(url: str, token: str, **options: Any) -> AsyncIterator[Client]:
    async with zapgate.client.connect(url, token, **{**FAST, **options}) as client:
        yield client


# -- import isolation -----------------------------------------------------------------------------------

SERVER_ONLY = ("starlette", "uvicorn", "aiosqlite", "neonize", "segno", "sqlite3", "httpx")
SERVER_MODULES = ("zapgate.server", "zapgate.storage", "zapgate.engines", "zapgate.sessions", "zapgate.gateway")


def loaded_after_import(module: str) -> list[str]:
    code = (
        f"import json, sys; import {module}; "
        f"print(json.dumps([m for m in sys.modules if m.split('.')[0] in {SERVER_ONLY!r} "
        f"or m.startswith({SERVER_MODULES!r})]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    loaded: list[str] = json.loads(out.stdout)
    return loaded


def test_importing_the_sdk_loads_no_server_dependency() -> None:
    assert loaded_after_import("zapgate.client") == []
    # The same probe does see the server stack when it is imported: it can fail.
    assert {"starlette", "uvicorn", "zapgate.server"} <= set(loaded_after_import("zapgate.server"))


def test_public_surface_is_declared() -> None:
    """``__all__`` is exactly what the package offers: every public name it binds, except its submodules."""
    offered = {
        name
        for name, value in vars(zapgate.client).items()
        if not name.startswith("_") and not inspect.ismodule(value) and name != "annotations"
    }
    assert sorted(zapgate.client.__all__) == sorted(offered)
    assert len(set(zapgate.client.__all__)) == len(zapgate.client.__all__)


# -- the seed's flow ------------------------------------------------------------------------------------


async def test_pair_send_receive_and_statuses(gateway: RunningGateway) -> None:
    async with sdk(gateway.url, await gateway.token("acme")) as client:
        assert client.tenant == "acme" and client.engine == "simulator" and client.connected

        info = await client.start_session("main")
        assert info.session == "main" and info.status in {"starting", "qr"} and not info.paired
        qr = await next_event(client, SessionQr)
        assert qr.data.attempt == 1 and qr.data.qr.startswith("2@")
        me = await client.sim_scan(qr.data.qr, "+55 11 99999-0000")
        assert me.phone == "5511999990000"
        connected = await next_event(client, SessionStatus, status_is("main", "connected"))
        assert connected.data.me is not None and connected.data.me.phone == "5511999990000"

        sent = await client.send_text("main", ECHO, "olá")
        assert sent.status == "sent" and sent.chat == "15550000000@s.whatsapp.net" and sent.timestamp
        statuses = []
        while "read" not in statuses:
            update = await next_event(client, MessageStatus, lambda e: e.data.message_id == sent.message_id)
            statuses.append(update.data.status)
        assert statuses == ["sent", "delivered", "read"]
        echo = await next_event(client, MessageReceived, lambda e: e.data.reply_to == sent.message_id)
        assert echo.data.text == "olá" and echo.data.from_ == "15550000000@s.whatsapp.net" and not echo.data.from_me
        await client.mark_read("main", echo.data.chat, [echo.data.message_id])

        listed = await client.sessions()
        assert [(s.session, s.status, s.me.phone if s.me else None) for s in listed] == [
            ("main", "connected", "5511999990000")
        ]
        assert (await client.session("main")).paired
        assert await client.ping() > 0

        page = await client.fetch_events(0, limit=1000)
        assert not page.gap and page.events[0].seq == page.oldest_seq
        assert [e.seq for e in page.events] == sorted({e.seq for e in page.events})

        stopped = await client.stop_session("main")
        assert stopped.status == "stopped" and stopped.paired
        logged_out = await client.logout("main")
        assert logged_out.status == "logged_out" and not logged_out.paired
        await client.delete_session("main")
        assert await client.sessions() == []


async def test_send_with_idempotency_key_is_sent_once(gateway: RunningGateway) -> None:
    async with sdk(gateway.url, await gateway.token()) as client:
        await pair(client, "main", "+55 11 90000-0001")
        first = await client.send_text("main", ECHO, "pedido 42 confirmado", idempotency_key="order-42")
        again = await client.send_text("main", ECHO, "pedido 42 confirmado", idempotency_key="order-42")
        assert again.message_id == first.message_id
        with pytest.raises(IdempotencyConflict, match="order-42"):
            await client.send_text("main", ECHO, "something else", idempotency_key="order-42")
        # Without a key the SDK makes a fresh one per call: two calls are two messages, even at the same time.
        burst = await asyncio.gather(
            *(client.send_text("main", ECHO, "hi") for _ in range(10)), client.ping(), client.sessions()
        )
        assert len({r.message_id for r in burst[:10]}) == 10
    deliveries = await gateway.gateway.engine.deliveries()  # type: ignore[attr-defined]
    assert [d["attempts"] for d in deliveries if d["message_id"] == first.message_id] == [1]


# -- errors -----------------------------------------------------------------------------------------------


async def test_gateway_errors_raise_the_servers_exception_classes(gateway: RunningGateway) -> None:
    async with (
        sdk(gateway.url, await gateway.token("acme")) as acme,
        sdk(gateway.url, await gateway.token("globex")) as globex,
    ):
        with pytest.raises(SessionNotFound, match="nope") as missing:
            await acme.session("nope")
        assert missing.value.code == "session_not_found" and isinstance(missing.value, ZapgateError)

        await acme.start_session("private")
        with pytest.raises(SessionNotFound):  # another tenant's session looks exactly like a missing one
            await globex.session("private")
        with pytest.raises(SessionNotFound):
            await globex.send_text("private", ECHO, "hi")

        with pytest.raises(SessionNotPaired):
            await acme.send_text("private", ECHO, "too early")
        with pytest.raises(InvalidRequest, match="session"):
            await acme.start_session("no spaces allowed")
        # An error reply changes nothing for the connection: the next command works.
        assert [s.session for s in await acme.sessions()] == ["private"]


async def test_wrong_token_and_unreachable_gateway_fail_at_connect(gateway: RunningGateway) -> None:
    with pytest.raises(Unauthorized, match="token"):
        async with sdk(gateway.url, "zg_not-a-real-token"):
            pass
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with pytest.raises(GatewayUnreachable, match=str(closed_port)) as unreachable:
        async with sdk(f"ws://127.0.0.1:{closed_port}/v1/ws", "zg_x"):
            pass
    assert isinstance(unreachable.value, ConnectionClosed)
    with pytest.raises(GatewayUnreachable, match="HTTP 403"):
        async with sdk(f"ws://127.0.0.1:{gateway.port}/not-the-api", "zg_x"):
            pass
    with pytest.raises(ValueError, match="WebSocket URL"):
        zapgate.client.connect("http://127.0.0.1:8787/v1/ws", "zg_x")
    with pytest.raises(ValueError, match="token"):
        zapgate.client.connect(gateway.url, "")


# -- dropped connections ----------------------------------------------------------------------------------


async def test_event_stream_survives_dropped_connections_without_skips_or_repeats(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with TcpRelay(gateway.port) as relay, sdk(relay.url, token) as client, sdk(gateway.url, token) as phone:
        await pair(client, "main", "+55 11 90000-0002")
        start = client.last_seq
        assert start is not None

        received: list[Any] = []

        async def consume() -> None:
            async for event in client.events():
                received.append(event)
                if sum(isinstance(e, MessageReceived) for e in received) == 60:
                    return

        consumer = asyncio.create_task(consume())
        for burst in range(3):
            for n in range(20):
                await phone.sim_receive("main", "+55 21 98888-0000", f"msg {burst}-{n}")
            relay.cut()  # events of this burst may be in flight: they must come again, once
        async with asyncio.timeout(TIMEOUT):
            await consumer
        assert relay.accepted >= 2, "the SDK should have reconnected through the relay"

        assert not any(isinstance(e, EventGap) for e in received)
        seqs = [e.seq for e in received]
        log = await client.fetch_events(start, limit=1000)
        assert seqs == [e.seq for e in log.events][: len(seqs)]  # exactly the log, in order
        texts = [e.data.text for e in received if isinstance(e, MessageReceived)]
        assert texts == [f"msg {b}-{n}" for b in range(3) for n in range(20)]


async def test_client_rides_through_a_gateway_restart(settings: Settings) -> None:
    async with serve_gateway(settings) as first:
        token = await first.token()
        port = first.port
        client = zapgate.client.connect(first.url, token, **FAST)
        await client.open()
        await pair(client, "main", "+55 11 90000-0008")
        before = client.last_seq
    try:
        # The gateway stopped (closing the socket); a new process on the same port and data directory.
        async with serve_gateway(settings.replace(port=port)) as second:
            async with sdk(second.url, token) as phone:
                await phone.sim_receive("main", "+55 21 93333-0000", "after the restart")
            event = await next_event(client, MessageReceived)
            assert event.data.text == "after the restart"
            assert before is not None and event.seq > before
            assert (await client.session("main")).status == "connected"  # no re-scan needed
    finally:
        await client.close()


async def test_auth_frame_when_a_proxy_drops_the_authorization_header(gateway: RunningGateway) -> None:
    token = await gateway.token()
    relay = TcpRelay(gateway.port, strip_authorization=True)
    async with relay, sdk(relay.url, token) as client, sdk(gateway.url, token) as phone:
        await pair(client, "main", "+55 11 90000-0009")
        relay.refusing = True
        relay.cut()
        await eventually(lambda: not client.connected, "the SDK to notice the cut")
        await phone.sim_receive("main", "+55 21 92222-0000", "while the bot was away")
        relay.refusing = False
        event = await next_event(client, MessageReceived)  # replayed: resume_from went in the auth frame
        assert event.data.text == "while the bot was away"
        assert relay.stripped == relay.accepted == 2


async def test_a_drop_is_logged_with_its_close_code_and_nothing_dangling(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zapgate.client")
    async with TcpRelay(gateway.port) as relay, sdk(relay.url, await gateway.token()) as client:
        relay.cut()
        # Not "disconnected, then connected": a fast reconnect can happen between two looks.
        await eventually(lambda: relay.accepted >= 2 and client.connected, "the SDK to reconnect")
    lost = [r.getMessage() for r in caplog.records if " lost (" in r.getMessage()]
    why = r"(close code \d+( [^ )][^)]*)?|no close frame)"
    shape = rf"connection to ws://127\.0\.0\.1:\d+/v1/ws lost \({why}\); reconnecting"
    assert lost and all(re.fullmatch(shape, line) for line in lost), lost


async def test_commands_wait_for_the_next_connection(gateway: RunningGateway) -> None:
    async with TcpRelay(gateway.port) as relay, sdk(relay.url, await gateway.token()) as client:
        relay.refusing = True  # the gateway looks down: reconnect attempts fail
        relay.cut()
        await eventually(lambda: not client.connected, "the SDK to notice the cut")
        listing = asyncio.create_task(client.sessions())
        await asyncio.sleep(0.1)
        assert not listing.done()
        relay.refusing = False
        async with asyncio.timeout(TIMEOUT):
            assert await listing == []  # sent once the SDK is back
        assert client.connected and relay.accepted == 2


async def test_send_in_flight_during_a_drop_is_resent_and_sent_once(gateway: RunningGateway) -> None:
    async with TcpRelay(gateway.port) as relay, sdk(relay.url, await gateway.token()) as client:
        await pair(client, "main", "+55 11 90000-0003")
        engine: Any = gateway.gateway.engine
        relay.hold_downstream()  # the gateway's reply will never reach the SDK
        send = asyncio.create_task(client.send_text("main", ECHO, "exactly once"))

        async def accepted() -> bool:
            return any(d["text"] == "exactly once" for d in await engine.deliveries())  # ours or the echo

        await eventually(accepted, "the gateway to send the message")
        relay.cut()
        async with asyncio.timeout(TIMEOUT):
            result = await send  # the SDK sent it again on a new connection, with the same idempotency key
        assert result.status == "sent"
        sends = [d for d in await engine.deliveries() if d["text"] == "exactly once" and d["sender"] == "5511900000003"]
        assert [(d["message_id"], d["attempts"]) for d in sends] == [(result.message_id, 1)]


async def test_unsafe_command_in_flight_during_a_drop_fails_with_connection_closed(gateway: RunningGateway) -> None:
    async with TcpRelay(gateway.port) as relay, sdk(relay.url, await gateway.token()) as client:
        await pair(client, "main", "+55 11 90000-0004")
        relay.hold_downstream()
        receive = asyncio.create_task(client.sim_receive("main", "+55 31 97777-0000", "only once"))

        async def arrived() -> bool:
            page = await gateway.gateway.storage.read_events("acme", 0, 1000)
            return any(e.event == "message.received" and b"only once" in e.data for e in page)

        await eventually(arrived, "the gateway to take the message")
        relay.cut()
        with pytest.raises(ConnectionClosed, match=r"sim\.receive.*may or may not"):
            await receive
        # It did take effect once, and the stream delivers it once.
        event = await next_event(client, MessageReceived, lambda e: e.data.text == "only once")
        assert event.session == "main"


async def test_without_reconnect_a_drop_ends_the_client(gateway: RunningGateway) -> None:
    async with TcpRelay(gateway.port) as relay, sdk(relay.url, await gateway.token(), reconnect=False) as client:
        relay.cut()
        with pytest.raises(ConnectionClosed, match="lost"):
            async with asyncio.timeout(TIMEOUT):
                await client.next_event()
        with pytest.raises(ConnectionClosed):
            await client.ping()
        assert relay.accepted == 1


async def test_no_reply_in_time_raises_request_timeout(gateway: RunningGateway) -> None:
    async with TcpRelay(gateway.port) as relay, sdk(relay.url, await gateway.token(), request_timeout=0.3) as client:
        relay.hold_downstream()
        with pytest.raises(RequestTimeout, match="ping") as timeout:
            await client.ping()
        relay.cut()
        assert isinstance(timeout.value, TimeoutError) and isinstance(timeout.value, ZapgateError)


async def test_revoked_token_stops_the_client_for_good(gateway: RunningGateway) -> None:
    record, token = await gateway.gateway.tokens.create("acme")
    async with TcpRelay(gateway.port) as relay, sdk(gateway.url, token) as live, sdk(relay.url, token) as away:
        assert await gateway.gateway.tokens.revoke(record.id)
        relay.hold_downstream()  # "away" is cut off while the gateway closes "live" (4401)
        assert await gateway.gateway.check_tokens() == 2
        relay.cut()  # "away" reconnects and is refused (HTTP 401)
        for client, said in ((live, "the token of this connection was revoked"), (away, "invalid or revoked token")):
            with pytest.raises(Unauthorized, match=said):
                async with asyncio.timeout(TIMEOUT):
                    await client.next_event()
            with pytest.raises(Unauthorized):
                await client.ping()
            assert not client.connected


# -- resume from a stored seq, gaps, bounded memory ---------------------------------------------------------


async def test_resume_from_a_stored_seq_in_a_new_client(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with sdk(gateway.url, token) as client:
        await pair(client, "main", "+55 11 90000-0005")
        handled = client.last_seq
        assert handled is not None
        for n in range(5):
            await client.sim_receive("main", "+55 21 96666-0000", f"while away {n}")
    async with sdk(gateway.url, token, resume_from=handled) as again:
        texts = [(await next_event(again, MessageReceived)).data.text for _ in range(5)]
    assert texts == [f"while away {n}" for n in range(5)]


async def test_gap_is_reported_then_the_kept_events_follow(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with sdk(gateway.url, token) as client:
        await pair(client, "main", "+55 11 90000-0006")
        for n in range(10):
            await client.sim_receive("main", "+55 21 95555-0000", f"m{n}")
        await next_event(client, MessageReceived, lambda e: e.data.text == "m9")
        newest = client.last_seq
        assert newest is not None
    # The gateway keeps only its newest 4 events: a client that last saw seq 1 missed too much.
    await gateway.gateway.storage.prune(time.time() + 1, event_max_age=0, event_keep=4, record_max_age=1e9)
    async with sdk(gateway.url, token, resume_from=1) as late:
        gap = await late.next_event()
        assert gap == EventGap(after=1, last_seq=newest - 4)
        kept = [await late.next_event() for _ in range(4)]
        assert [e.seq for e in kept if not isinstance(e, EventGap)] == list(range(newest - 3, newest + 1))
        await late.sim_receive("main", "+55 21 95555-0000", "after the gap")
        live = await next_event(late, MessageReceived)
        assert live.data.text == "after the gap" and live.seq == newest + 1


async def test_full_event_queue_catches_up_from_the_log(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with sdk(gateway.url, token, max_pending_events=3) as client, sdk(gateway.url, token) as phone:
        await pair(phone, "main", "+55 11 90000-0007")
        for n in range(30):
            await phone.sim_receive("main", "+55 21 94444-0000", f"burst {n}")
        await next_event(phone, MessageReceived, lambda e: e.data.text == "burst 29")
        texts = [(await next_event(client, MessageReceived)).data.text for _ in range(30)]
        assert texts == [f"burst {n}" for n in range(30)]


async def test_sim_restrict_holds_the_sessions_sends_until_it_ends(gateway: RunningGateway) -> None:
    async with sdk(gateway.url, await gateway.token()) as client:
        await pair(client, "main", "+55 11 90000-0010")
        before = time.time()
        until = await client.sim_restrict("main", 60, reason="rate_limit")
        assert before + 60 <= until <= time.time() + 60
        restricted = await next_event(client, SessionRestricted)
        assert (restricted.data.reason, restricted.data.until) == ("rate_limit", until)
        held = await client.send_text("main", ECHO, "held back")
        assert held.status == "queued"
        pacing = (await client.session("main")).pacing
        assert pacing is not None and (pacing.paused_until, pacing.paused_reason) == (until, "rate_limit")
