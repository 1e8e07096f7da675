"""A session runner's life: retries, a dead event pump, stop. The whatsmeow client is scripted here, because
offline a real connect always fails within milliseconds and a pump never dies; the translation and the real
client are covered in test_whatsapp_translate.py and test_whatsapp_worker.py."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from zapgate.engines.base import Connected, Disconnected, Failed
from zapgate.engines.whatsapp import nz, policy
from zapgate.engines.whatsapp.session import SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef

from .test_whatsapp_translate import RecordingHost, fake_store

N = nz.N
DEVICE = DeviceRef(engine="whatsapp", jid="5511911112222:7@s.whatsapp.net", store="whatsapp/ses_1.db")


class ScriptedClient:
    """The surface of neonize's ``NewAClient`` a runner uses; each connect runs until the test ends it."""

    def __init__(self) -> None:
        self.handlers: dict[Any, Any] = {}
        self.connects = 0
        self.stops = 0
        self.me = None
        self.name = ""
        self.connection: asyncio.Future[None] | None = None
        self.connected = asyncio.Event()

    def qr(self, callback: Any) -> None:
        pass

    def event(self, event_type: Any) -> Any:
        return lambda handler: self.handlers.__setitem__(event_type, handler)

    async def connect(self) -> asyncio.Task[None]:
        self.connects += 1
        self.connection = asyncio.get_running_loop().create_future()
        self.connected.set()
        return asyncio.ensure_future(self._run(self.connection))

    @staticmethod
    async def _run(connection: asyncio.Future[None]) -> None:
        await connection

    async def set_proxy_address(self, address: str | None) -> None:
        return None

    async def stop(self) -> None:
        self.stops += 1
        if self.connection is not None and not self.connection.done():
            self.connection.set_result(None)

    async def next_connection(self) -> asyncio.Future[None]:
        async with asyncio.timeout(10):
            await self.connected.wait()
        self.connected.clear()
        assert self.connection is not None
        return self.connection


class ScriptedHost(RecordingHost):
    def __init__(self, data_dir: Path) -> None:
        super().__init__(data_dir)
        self.scripted = ScriptedClient()

    def client(self, uuid: str, create: Any) -> Any:
        return self.scripted


async def test_a_dead_event_pump_is_noticed_and_the_session_reconnects(tmp_path: Path) -> None:
    host = ScriptedHost(tmp_path)
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "99887766:7@lid")
    runner = SessionRunner(host, "ses_1", DEVICE, retry=policy.RetryPolicy(attempts=2, base=0.01))
    runner.start()
    client = host.scripted
    for round_ in range(1, 4):
        connection = await client.next_connection()
        await client.handlers[nz.events_module.ConnectedEv](client, N.Connected(status=True))
        assert isinstance(host.events[-1], Connected) and runner.online
        # neonize's event pump died (an event it could not encode); whatsmeow itself would stay connected.
        connection.set_exception(RuntimeError("proto: required field neonize.Receipt.Type not set"))
        event = await host.next_event(2 * round_)
        assert isinstance(event, Disconnected) and event.reason == "event_stream_broken"
    # Each time the stale client was stopped before a new connect, and the session never gave up: it had
    # reached WhatsApp every time, so these are not failed attempts.
    await client.next_connection()
    assert (client.connects, client.stops) == (4, 3)
    await runner.stop()
    assert runner.done.is_set() and client.stops == 4
    assert not any(isinstance(e, Failed) for e in host.events)


async def test_connects_that_never_reach_whatsapp_end_failed(tmp_path: Path) -> None:
    host = ScriptedHost(tmp_path)
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "")
    runner = SessionRunner(host, "ses_1", DEVICE, retry=policy.RetryPolicy(attempts=3, base=0.01))
    runner.start()
    for _ in range(3):
        connection = await host.scripted.next_connection()
        connection.set_exception(RuntimeError("failed to dial whatsapp web websocket: i/o timeout"))
    async with asyncio.timeout(10):
        await runner.done.wait()
    reasons = [(type(e).__name__, e.reason) for e in host.events]  # type: ignore[attr-defined]
    assert reasons == [
        ("Disconnected", "whatsapp_unreachable"),
        ("Disconnected", "whatsapp_unreachable"),
        ("Failed", "whatsapp_unreachable"),
    ]
    final = host.events[-1]
    assert isinstance(final, Failed) and final.retry_at is not None  # tried again in wa_failed_retry_s


async def test_stop_while_connecting_ends_the_runner_without_events(tmp_path: Path) -> None:
    host = ScriptedHost(tmp_path)
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "")
    runner = SessionRunner(host, "ses_1", DEVICE)
    runner.start()
    await host.scripted.next_connection()
    await runner.stop()
    assert runner.done.is_set() and host.scripted.stops == 1 and host.events == []
