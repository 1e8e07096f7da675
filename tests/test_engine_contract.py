"""What the session manager relies on from every engine: one test body per promise, run against the simulator
and the real whatsapp engine (offline: its workers load neonize and connect through a proxy on 127.0.0.1 that
refuses every tunnel, so they behave the same on a machine with internet access, and never reach WhatsApp)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines import create_engine
from zapgate.engines.base import Connected, Engine, EngineEvent, Failed, LoggedOut, QrCode, SendError
from zapgate.engines.simulator import SimulatorEngine
from zapgate.engines.whatsapp import nz
from zapgate.engines.whatsapp.session import SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef
from zapgate.jid import Jid
from zapgate.protocol import Me
from zapgate.protocol.content import Text

from .conftest import fast_settings
from .neonize_kit import RecordingHost, deliver_like_go, fake_store
from .offline_proxy import CONNECT_WHATSAPP, RefusingProxy
from .support import serve_gateway

# A device record as each engine stores it; each is foreign to the other engine (simulator records made before
# the simulator named its engine have no "engine" key).
DEVICE_RECORDS: dict[str, dict[str, Any]] = {
    "simulator": {"jid": "5511911112222:1@s.whatsapp.net", "phone": "5511911112222", "lid": "1@lid"},
    "whatsapp": {"engine": "whatsapp", "jid": "5511911112222:7@s.whatsapp.net", "store": "whatsapp/ses_x.db"},
}
ACCOUNT_LID = re.compile(r"[0-9]+@lid")
"""``me.lid``: the account's hidden-user id, without a device part."""


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, EngineEvent]] = []
        self._changed = asyncio.Condition()

    async def sink(self, session_id: str, event: EngineEvent) -> None:
        async with self._changed:
            self.seen.append((session_id, event))
            self._changed.notify_all()

    async def first(self, session_id: str, where: Any = lambda _: True) -> EngineEvent:
        async with asyncio.timeout(30), self._changed:
            while True:
                for sid, event in self.seen:
                    if sid == session_id and where(event):
                        return event
                await self._changed.wait()


@dataclass
class Running:
    name: str
    engine: Engine
    events: Events
    proxy: RefusingProxy


@pytest.fixture(params=["simulator", "whatsapp"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Running]:
    async with RefusingProxy() as proxy:
        settings = fast_settings(
            tmp_path / "data",
            engine=request.param,
            wa_connect_attempts=2,
            wa_connect_backoff_s=0.05,
            wa_heartbeat_s=0.2,
            wa_proxy=proxy.url,
        )
        engine = create_engine(settings)
        events = Events()
        await engine.start(events.sink)
        try:
            yield Running(request.param, engine, events, proxy)
        finally:
            await asyncio.wait_for(engine.close(), 15)  # "must finish in seconds"


async def test_message_ids_look_like_whatsapp_web_ids(engine: Running) -> None:
    ids = {engine.engine.new_message_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(re.fullmatch(r"3EB0[0-9A-F]{18}", i) for i in ids)


async def test_stop_and_logout_of_sessions_never_opened_are_harmless_and_idempotent(engine: Running) -> None:
    for _ in range(2):
        await engine.engine.stop("ses_never")
        await engine.engine.logout("ses_never", None)
        await engine.engine.logout("ses_never", DEVICE_RECORDS[engine.name])  # its keys are not there
    assert engine.events.seen == []


async def test_sending_on_a_session_that_is_not_open_stays_queued(engine: Running) -> None:
    eng = engine.engine
    with pytest.raises(SendError) as refused:
        await eng.send("ses_never", eng.new_message_id(), Jid("5511999990000"), Text(text="olá"))
    assert (refused.value.code, refused.value.retryable) == ("not_connected", True)


async def test_a_device_of_this_engine_that_is_gone_needs_a_new_pairing(engine: Running) -> None:
    await engine.engine.open("ses_gone", DEVICE_RECORDS[engine.name])
    assert isinstance(await engine.events.first("ses_gone"), LoggedOut)


async def test_a_device_paired_by_the_other_engine_is_kept_for_it(engine: Running) -> None:
    other = "whatsapp" if engine.name == "simulator" else "simulator"
    await engine.engine.open("ses_foreign", DEVICE_RECORDS[other])
    failed = await engine.events.first("ses_foreign")
    # Not logged out (the manager would forget the pairing): failed, saying which engine to run.
    assert isinstance(failed, Failed) and failed.reason == "engine_mismatch" and failed.retry_at is None
    assert failed.detail is not None and f"--engine {other}" in failed.detail


async def test_an_unpaired_session_shows_a_qr_code_or_says_why_it_cannot(engine: Running) -> None:
    await engine.engine.open("ses_new", None)
    first = await engine.events.first("ses_new")
    if engine.name == "simulator":
        assert isinstance(first, QrCode) and first.attempt == 1
        assert engine.engine.health() == []
    else:  # the proxy refuses: whatsmeow tried to reach WhatsApp through it, and the reason says so
        detail = f"proxy {engine.proxy.address} did not open a tunnel to web.whatsapp.com (Forbidden)"
        assert first == Failed(reason="whatsapp_unreachable", detail=detail)
        assert await engine.proxy.saw(2) == [CONNECT_WHATSAPP] * 2
        assert [issue.reason for issue in engine.engine.health()] == ["whatsapp_unreachable"]
    await engine.engine.stop("ses_new")
    await engine.engine.stop("ses_new")
    assert engine.engine.health() == []


async def test_me_names_the_linked_device_by_jid_and_the_account_by_lid(engine: Running, tmp_path: Path) -> None:
    """``me.jid`` is the linked device (``…:N@s.whatsapp.net``), ``me.lid`` the account (``…@lid``, no device).
    The real engine cannot pair offline: its session runner gets whatsmeow's events through neonize's dispatch."""
    if isinstance(engine.engine, SimulatorEngine):
        sim = engine.engine
        await sim.open("ses_me", None)
        qr = await engine.events.first("ses_me")
        assert isinstance(qr, QrCode)
        await sim.scan(qr.code, "+5511911112222")
        connected = await engine.events.first("ses_me", lambda e: isinstance(e, Connected))
        assert isinstance(connected, Connected)
        me = connected.me
    else:
        me = await _me_of_a_real_runner(tmp_path)
    assert me.phone == "5511911112222" and re.fullmatch(r"5511911112222:[0-9]+@s\.whatsapp\.net", me.jid)
    assert me.lid is not None and ACCOUNT_LID.fullmatch(me.lid), me.lid


async def _me_of_a_real_runner(tmp_path: Path) -> Me:
    nz.events_module.event_global_loop = asyncio.get_running_loop()
    try:
        host = RecordingHost(tmp_path / "runner")
        device = DeviceRef(engine="whatsapp", jid="5511911112222:7@s.whatsapp.net", store="whatsapp/ses_me.db")
        fake_store(host.data_dir / device.store, device.jid, "99887766:7@lid")  # whatsmeow stores the device's LID
        client = SessionRunner(host, "ses_me", device)._client()
        deliver_like_go(client, nz.N.Connected(status=True))
        connected = await host.first(lambda e: isinstance(e, Connected))
        assert isinstance(connected, Connected)
        return connected.me
    finally:
        nz.events_module.event_global_loop = None


async def test_a_send_reports_the_chat_whatsapp_knows_the_recipient_by(tmp_path: Path) -> None:
    """A Brazilian mobile number registered before the ninth digit, typed with it: the message goes to the
    account's JID, and ``message.send`` and the status events name that chat (the real engine's side of this,
    ``is_on_whatsapp``'s answer, is in test_whatsapp_outbound.py)."""
    settings = fast_settings(tmp_path / "data", sim_contacts=("551188887777",))
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("main", "+5511911112222")
        sent = await client.call("message.send", session="main", to="+55 11 98888-7777", text="olá")
        assert sent["chat"] == "551188887777@s.whatsapp.net" and sent["status"] == "sent"
        status = await client.event("message.status", lambda e: e["data"]["status"] == "sent")
        assert status["data"]["chat"] == "551188887777@s.whatsapp.net"
        delivered = await client.event("message.status", lambda e: e["data"]["status"] == "delivered")
        assert delivered["data"]["chat"] == "551188887777@s.whatsapp.net"
