"""A session runner's life: retries, a dead event pump, connections that never come, stop. The whatsmeow
client is scripted here, because offline a real connect always fails within milliseconds, a pump never dies
and a pairing never succeeds; the translation and the real client are covered in test_whatsapp_translate.py,
test_whatsapp_outbound.py and test_whatsapp_worker.py."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import Connected, Disconnected, Failed, Paired
from zapgate.engines.whatsapp import nz, policy
from zapgate.engines.whatsapp.session import SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef, store_path

from .neonize_kit import RecordingHost, fake_store, jid

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

    async def connect(self, proxy: Any = None) -> asyncio.Task[None]:
        self.connects += 1
        self.connection = asyncio.get_running_loop().create_future()
        self.connected.set()
        return asyncio.ensure_future(self._run(self.connection))

    @staticmethod
    async def _run(connection: asyncio.Future[None]) -> None:
        await connection

    async def set_proxy_address(self, address: str | None, **options: bool) -> None:
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
    def __init__(self, data_dir: Path, **config: Any) -> None:
        super().__init__(data_dir, **config)
        self.scripted = ScriptedClient()

    def adopt(self, create: Any) -> Any:
        return self.scripted


async def test_a_dead_event_pump_is_noticed_and_the_session_reconnects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
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
        # The real cause reaches the user, and the log has it once per broken pump, at ERROR.
        assert event.detail is not None and "proto: required field neonize.Receipt.Type not set" in event.detail
        errors = [r for r in caplog.records if r.levelno == logging.ERROR and "stopped delivering events" in r.message]
        assert len(errors) == round_ and "ses_1" in errors[-1].message and "Receipt.Type" in errors[-1].message
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


async def test_a_pairing_whose_reconnect_never_comes_is_reconnected_from_the_stored_keys(tmp_path: Path) -> None:
    # whatsmeow reconnects once after pairing; when that fails no event ever comes.
    host = ScriptedHost(tmp_path, connect_timeout_s=0.05)
    runner = SessionRunner(host, "ses_p", None)
    runner.start()
    client = host.scripted
    await client.next_connection()
    fake_store(store_path(tmp_path, "ses_p"), DEVICE.jid, "99887766:7@lid")
    success = N.PairStatus(ID=jid("5511911112222", device=7), BusinessName="", Platform="android", Status=2)
    await client.handlers[nz.events_module.PairStatusEv](client, success)
    assert isinstance(await host.next_event(1), Paired)
    stalled = await host.next_event(2)
    assert isinstance(stalled, Disconnected) and stalled.reason == "connect_timeout"
    assert stalled.detail is not None and "paired" in stalled.detail and stalled.retry_at is not None
    await client.next_connection()  # the new connect resumes the stored device: no new pairing
    assert client.stops == 1 and runner.device is not None and runner.device.jid == DEVICE.jid
    await client.handlers[nz.events_module.ConnectedEv](client, N.Connected(status=True))
    assert isinstance(await host.next_event(3), Connected)
    await runner.stop()


async def test_a_session_whatsmeow_keeps_reconnecting_is_reconnected_afresh(tmp_path: Path) -> None:
    # whatsmeow's own reconnect waits 2 s longer after every failure, without a cap.
    host = ScriptedHost(tmp_path, reconnect_timeout_s=0.05)
    fake_store(tmp_path / DEVICE.store, DEVICE.jid, "")
    runner = SessionRunner(host, "ses_1", DEVICE)
    runner.start()
    client = host.scripted
    await client.next_connection()
    await client.handlers[nz.events_module.ConnectedEv](client, N.Connected(status=True))
    await client.handlers[nz.events_module.DisconnectedEv](client, N.Disconnected(status=True))
    assert await host.next_event(2) == Disconnected(reason="network")
    restarted = await host.next_event(3)
    assert isinstance(restarted, Disconnected) and restarted.reason == "reconnect_timeout"
    await client.next_connection()
    assert (client.connects, client.stops) == (2, 1)
    await runner.stop()
