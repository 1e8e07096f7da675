"""Engine workers and their supervisor with the real neonize library, offline.

Every test here starts real worker processes (``python -m zapgate.engines.whatsapp.worker``) that load neonize
and try to reach WhatsApp through a proxy on 127.0.0.1 that refuses every tunnel (``wa_proxy``, or
``HTTPS_PROXY`` in the environment): they fail within milliseconds on any machine, with or without internet,
and what the proxy saw proves where whatsmeow tried to go. Device stores are real whatsmeow stores (created by
neonize itself) holding a fabricated linked device, so resumes go down whatsmeow's real "already paired" path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from zapgate.config import Settings
from zapgate.engines.base import (
    Disconnected,
    DownloadError,
    EngineEvent,
    EngineIssue,
    Failed,
    LoggedOut,
    SendError,
)
from zapgate.engines.whatsapp import WhatsAppEngine
from zapgate.engines.whatsapp.store import read_device, store_path
from zapgate.jid import Jid
from zapgate.protocol.content import Location, Text

from .conftest import fast_settings
from .offline_proxy import CONNECT_WHATSAPP, RefusingProxy, dead_port
from .support import serve_gateway

pytestmark = pytest.mark.slow

DEVICE_JID = "5511911112222:7@s.whatsapp.net"
DEVICE_LID = "99887766:7@lid"
WAIT_S = 30.0

MAKE_STORE = r"""
import asyncio, os, sqlite3, sys
from zapgate.engines.whatsapp import nz

async def main(path, jid, lid, proxy):
    client = nz.NewAClient(path, uuid="template", new_device=True)
    task = await client.connect(nz.ProxySettings(proxy))  # creates whatsmeow's schema, then the proxy refuses
    try:
        await task
    except Exception:
        pass
    await client.stop()
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO whatsmeow_device (jid, lid, registration_id, noise_key, identity_key, signed_pre_key, "
            "signed_pre_key_id, signed_pre_key_sig, adv_key, adv_details, adv_account_sig, adv_account_sig_key, "
            "adv_device_sig, platform, business_name, push_name) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (jid, lid, 1, os.urandom(32), os.urandom(32), os.urandom(32), 1, os.urandom(64), os.urandom(32),
             b"\x08\x01", os.urandom(64), os.urandom(32), os.urandom(64), "android", "", "Bob"),
        )

asyncio.run(main(*sys.argv[1:]))
os._exit(0)
"""


@pytest.fixture(scope="session")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A whatsmeow device store with one (fabricated) linked device, made by neonize in a subprocess."""
    path = tmp_path_factory.mktemp("store") / "template.db"
    with dead_port() as port:
        subprocess.run(
            [sys.executable, "-c", MAKE_STORE, str(path), DEVICE_JID, DEVICE_LID, f"http://127.0.0.1:{port}"],
            check=True,
            timeout=120,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    assert read_device(path, DEVICE_JID) is not None
    return path


def paired_device(settings: Settings, template: Path, session_id: str, device_no: int = 7) -> dict[str, Any]:
    """Install a copy of the template store as ``session_id``'s keys, for linked device number ``device_no``;
    return the record the session manager would keep."""
    target = store_path(settings.data_dir, session_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(template, target)
    jid = DEVICE_JID.replace(":7@", f":{device_no}@")
    with contextlib.closing(sqlite3.connect(target)) as conn, conn:
        conn.execute("UPDATE whatsmeow_device SET jid = ?", (jid,))
    return {"engine": "whatsapp", "jid": jid, "store": f"whatsapp/{session_id}.db"}


@pytest.fixture
async def proxy() -> AsyncIterator[RefusingProxy]:
    async with RefusingProxy() as running:
        yield running


def wa_settings(tmp_path: Path, proxy: RefusingProxy | None, **overrides: Any) -> Settings:
    """Settings of the real engine for a test; ``proxy`` is where whatsmeow connects (None: the test puts one in
    ``HTTPS_PROXY`` itself)."""
    values: dict[str, Any] = {
        "engine": "whatsapp",
        "wa_proxy": proxy.url if proxy is not None else "",
        "wa_connect_attempts": 2,
        "wa_connect_backoff_s": 0.05,
        "wa_heartbeat_s": 0.2,
        "wa_heartbeat_timeout_s": 10.0,
        "wa_failed_retry_s": 300.0,
    }
    values.update(overrides)
    return fast_settings(tmp_path / "data", **values)


class Recorder:
    """The engine sink: records every event, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, EngineEvent]] = []
        self._changed = asyncio.Condition()

    async def sink(self, session_id: str, event: EngineEvent) -> None:
        async with self._changed:
            self.events.append((session_id, event))
            self._changed.notify_all()

    async def next(self, session_id: str, where: Callable[[EngineEvent], bool], *, after: int = 0) -> tuple[int, Any]:
        """The first event of ``session_id`` at index ``after`` or later matching ``where``: (index, event)."""
        async with asyncio.timeout(WAIT_S), self._changed:
            while True:
                for index in range(after, len(self.events)):
                    sid, event = self.events[index]
                    if sid == session_id and where(event):
                        return index, event
                await self._changed.wait()

    def of(self, session_id: str) -> list[EngineEvent]:
        return [event for sid, event in self.events if sid == session_id]


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[WhatsAppEngine, Recorder]]:
    engine = WhatsAppEngine(settings)
    recorder = Recorder()
    await engine.start(recorder.sink)
    seen: set[int] = set()
    try:
        yield engine, recorder
    finally:
        seen.update(w.pid for w in engine.workers() if w.pid is not None)
        await engine.close()
        assert not [pid for pid in seen if alive(pid)], "a worker outlived engine.close()"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def hosted_by_new_worker(engine: WhatsAppEngine, session_id: str, old_pid: int) -> int:
    async with asyncio.timeout(WAIT_S):
        while True:
            for worker in engine.workers():
                if session_id in worker.sessions and worker.ready and worker.pid not in (None, old_pid):
                    assert worker.pid is not None
                    return worker.pid
            await asyncio.sleep(0.02)


def pid_of(engine: WhatsAppEngine, session_id: str) -> int:
    pid = next(w.pid for w in engine.workers() if session_id in w.sessions)
    assert pid is not None
    return pid


def unreachable(event: EngineEvent) -> bool:
    return isinstance(event, (Disconnected, Failed)) and event.reason == "whatsapp_unreachable"


# -- tests


async def test_a_pairing_that_cannot_reach_whatsapp_fails_saying_so(tmp_path: Path, proxy: RefusingProxy) -> None:
    async with running(wa_settings(tmp_path, proxy)) as (engine, events):
        await engine.open("ses_pair", None)
        _, failed = await events.next("ses_pair", lambda e: isinstance(e, Failed))
        detail = f"proxy {proxy.address} did not open a tunnel to web.whatsapp.com (Forbidden)"
        assert failed == Failed(reason="whatsapp_unreachable", retry_at=None, detail=detail)
        assert events.of("ses_pair") == [failed]  # a pairing does not go through "disconnected"
        assert await proxy.saw(2) == [CONNECT_WHATSAPP] * 2  # its two attempts, and nothing else
        assert engine.health() == [EngineIssue(reason="whatsapp_unreachable", detail=detail, sessions=1)]
        (worker,) = engine.workers()
        assert worker.ready and worker.pid is not None and worker.sessions == ()
        assert not store_path(engine._settings.data_dir, "ses_pair").exists()


async def test_a_paired_session_retries_with_backoff_then_fails_with_a_retry_time(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    settings = wa_settings(tmp_path, proxy, wa_connect_attempts=3)
    device = paired_device(settings, template_store, "ses_a")
    async with running(settings) as (engine, events):
        await engine.open("ses_a", device)
        _, failed = await events.next("ses_a", lambda e: isinstance(e, Failed))
        history = events.of("ses_a")
        assert [type(e).__name__ for e in history] == ["Disconnected", "Disconnected", "Failed"]
        assert all(e.reason == "whatsapp_unreachable" and e.retry_at is not None for e in history)  # type: ignore[attr-defined]
        assert all(e.detail and proxy.address in e.detail for e in history)  # type: ignore[attr-defined]
        assert failed.retry_at is not None  # the manager tries again in wa_failed_retry_s
        assert await proxy.saw(3) == [CONNECT_WHATSAPP] * 3
        await engine.stop("ses_a")
        assert engine.health() == []
        assert read_device(store_path(settings.data_dir, "ses_a"), DEVICE_JID) is not None  # keys kept


async def test_a_session_that_is_not_connected_defers_sends_downloads_and_presence(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    settings = wa_settings(tmp_path, proxy, wa_connect_attempts=1000, wa_connect_backoff_s=0.5)
    device = paired_device(settings, template_store, "ses_o")
    async with running(settings) as (engine, events):
        await engine.open("ses_o", device)
        await events.next("ses_o", unreachable)
        assert (settings.data_dir / "whatsapp" / "polls.db").exists()  # the worker's poll book
        to = Jid("5511999990000")
        ref = {"media_type": "image", "direct_path": "/v/x", "media_key": "", "file_length": 3}
        with pytest.raises(SendError) as send:
            await engine.send("ses_o", engine.new_message_id(), to, Location(latitude=1.0, longitude=2.0))
        with pytest.raises(DownloadError) as download:
            await engine.download("ses_o", ref, tmp_path / "file")
        presence = []
        for call in (
            engine.chat_presence("ses_o", to, "typing"),
            engine.set_presence("ses_o", "available"),
            engine.subscribe_presence("ses_o", to),
        ):
            with pytest.raises(SendError) as refused:
                await call
            presence.append(refused.value)
        # Each request reached the worker, which answered it: the session is not connected, try later.
        for error in (send.value, download.value, *presence):
            assert (error.code, error.retryable) == ("not_connected", True), error.message


async def test_a_session_whose_keys_are_gone_needs_a_new_pairing(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    settings = wa_settings(tmp_path, proxy)
    device = paired_device(settings, template_store, "ses_k")
    store_path(settings.data_dir, "ses_k").unlink()
    async with running(settings) as (engine, events):
        await engine.open("ses_k", device)
        await engine.open("ses_bad", {"engine": "whatsapp", "jid": DEVICE_JID, "store": "../elsewhere.db"})
        assert (await events.next("ses_k", lambda e: True))[1] == LoggedOut(reason="device_keys_missing")
        assert (await events.next("ses_bad", lambda e: True))[1] == LoggedOut(reason="device_record_invalid")


async def test_a_device_paired_by_the_simulator_is_kept_for_it(tmp_path: Path, proxy: RefusingProxy) -> None:
    async with running(wa_settings(tmp_path, proxy)) as (engine, events):
        await engine.open("ses_sim", {"jid": "5511911112222:1@s.whatsapp.net", "phone": "5511911112222", "lid": None})
        _, failed = await events.next("ses_sim", lambda e: True)
        assert isinstance(failed, Failed) and failed.reason == "engine_mismatch" and failed.retry_at is None
        assert failed.detail is not None and "--engine simulator" in failed.detail
        assert engine.workers() == [] and proxy.requests == []  # nothing started, nothing tried


async def test_a_worker_killed_mid_run_is_restarted_and_its_sessions_recover(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    # Many slow attempts keep the paired session running (and retrying) for the whole test.
    settings = wa_settings(tmp_path, proxy, wa_connect_attempts=1000, wa_connect_backoff_s=0.5)
    device = paired_device(settings, template_store, "ses_live")
    async with running(settings) as (engine, events):
        await engine.open("ses_live", device)
        await engine.open("ses_pairing", None)  # on the same worker, mid-pairing
        await events.next("ses_live", unreachable)
        old_pid = pid_of(engine, "ses_live")
        assert pid_of(engine, "ses_pairing") == old_pid

        os.kill(old_pid, signal.SIGKILL)
        mark, restarted = await events.next("ses_live", lambda e: e.reason == "engine_worker_restarted")  # type: ignore[attr-defined]
        assert isinstance(restarted, Disconnected) and restarted.retry_at is not None
        assert restarted.detail is not None and f"pid {old_pid}) exited with code -9" in restarted.detail
        _, pairing = await events.next("ses_pairing", lambda e: isinstance(e, Failed))
        assert pairing.reason == "engine_worker_restarted" and pairing.retry_at is not None  # the manager restarts it

        new_pid = await hosted_by_new_worker(engine, "ses_live", old_pid)
        assert not alive(old_pid)
        # The new worker resumed the session from its stored keys: it is trying WhatsApp again, not pairing.
        await events.next("ses_live", unreachable, after=mark + 1)
        assert not any(isinstance(e, (LoggedOut, Failed)) for e in events.of("ses_live"))
        assert alive(new_pid)
        with pytest.raises(SendError) as offline:
            await engine.send("ses_live", engine.new_message_id(), Jid("5511999990000"), Text(text="olá"))
        assert offline.value.retryable


async def test_an_unresponsive_worker_is_killed_and_restarted(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    settings = wa_settings(
        tmp_path, proxy, wa_connect_attempts=1000, wa_connect_backoff_s=0.5, wa_heartbeat_timeout_s=2.0
    )
    device = paired_device(settings, template_store, "ses_h")
    async with running(settings) as (engine, events):
        await engine.open("ses_h", device)
        await events.next("ses_h", unreachable)
        old_pid = pid_of(engine, "ses_h")
        os.kill(old_pid, signal.SIGSTOP)  # alive, but its event loop answers nothing
        try:
            await events.next("ses_h", lambda e: e.reason == "engine_worker_restarted")  # type: ignore[attr-defined]
            await hosted_by_new_worker(engine, "ses_h", old_pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(old_pid, signal.SIGCONT)
        assert not alive(old_pid)


async def test_a_worker_that_keeps_dying_ends_its_sessions_failed(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    settings = wa_settings(tmp_path, proxy, wa_connect_attempts=1000, wa_connect_backoff_s=0.5, wa_worker_restarts=2)
    device = paired_device(settings, template_store, "ses_c")
    async with running(settings) as (engine, events):
        await engine.open("ses_c", device)
        pid = 0
        for _ in range(3):  # the first worker and its two restarts
            pid = await hosted_by_new_worker(engine, "ses_c", pid)
            os.kill(pid, signal.SIGKILL)
        _, failed = await events.next("ses_c", lambda e: isinstance(e, Failed))
        assert failed.reason == "engine_worker_crash_loop" and failed.retry_at is None
        assert failed.detail is not None and "exited with code -9" in failed.detail  # SIGKILL, said in words
        restarts = [e for e in events.of("ses_c") if getattr(e, "reason", "") == "engine_worker_restarted"]
        assert len(restarts) == 2 and engine.workers() == []


async def test_logout_deletes_the_device_keys_whether_or_not_the_session_runs(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    settings = wa_settings(tmp_path, proxy, wa_connect_attempts=1000, wa_connect_backoff_s=0.5)
    running_device = paired_device(settings, template_store, "ses_on", 7)
    resting_device = paired_device(settings, template_store, "ses_off", 8)
    async with running(settings) as (engine, events):
        await engine.open("ses_on", running_device)
        await events.next("ses_on", unreachable)
        await engine.logout("ses_on", running_device)
        await engine.logout("ses_off", resting_device)  # never opened in this process
        for session_id in ("ses_on", "ses_off"):
            assert not store_path(settings.data_dir, session_id).exists()
        await engine.logout("ses_off", resting_device)  # idempotent
        await engine.stop("ses_on")
        assert not any(w.sessions for w in engine.workers())


async def test_shutdown_takes_seconds_and_leaves_no_worker(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    settings = wa_settings(
        tmp_path, proxy, wa_connect_attempts=1000, wa_connect_backoff_s=0.5, wa_sessions_per_worker=2
    )
    devices = {f"ses_{i}": paired_device(settings, template_store, f"ses_{i}", 10 + i) for i in range(3)}
    engine = WhatsAppEngine(settings)
    events = Recorder()
    await engine.start(events.sink)
    for session_id, device in devices.items():
        await engine.open(session_id, device)
    for session_id in devices:
        await events.next(session_id, unreachable)
    pids = {w.pid for w in engine.workers()}
    assert len(pids) == 2  # two sessions per worker
    await asyncio.wait_for(engine.close(), 15)
    assert not [pid for pid in pids if pid is not None and alive(pid)]


async def test_the_gateway_stays_healthy_while_workers_die(tmp_path: Path, proxy: RefusingProxy) -> None:
    """A real gateway on the whatsapp engine: a client starts a session offline, the worker is killed, the
    session is restarted by the manager and fails saying WhatsApp is unreachable; the gateway never stops
    answering."""
    settings = wa_settings(tmp_path, proxy, wa_connect_attempts=3, wa_connect_backoff_s=1.0)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        engine = gateway.gateway.engine
        assert isinstance(engine, WhatsAppEngine)
        await client.call("session.start", session="main")
        await client.status("main", "starting")
        pid = await hosted_by_new_worker(engine, next(s.id for s in gateway.gateway.sessions.all()), 0)
        os.kill(pid, signal.SIGKILL)
        restarted = await client.status("main", "failed", timeout=WAIT_S)
        assert restarted["data"]["reason"] == "engine_worker_restarted" and restarted["data"]["retry_at"]
        final = await client.event(
            "session.status",
            lambda e: e["data"]["status"] == "failed" and e["data"]["reason"] == "whatsapp_unreachable",
            timeout=WAIT_S,
        )
        assert final["session"] == "main"
        detail = f"proxy {proxy.address} did not open a tunnel to web.whatsapp.com (Forbidden)"
        assert final["data"]["detail"] == detail  # the cause, for people
        async with httpx.AsyncClient() as http:
            response = await http.get(f"{gateway.http}/healthz")
        assert response.status_code == 200  # the gateway answers; its engine cannot reach WhatsApp
        assert response.json()["status"] == "degraded" and response.json()["engine"] == "whatsapp"
        assert response.json()["reasons"] == [{"reason": "whatsapp_unreachable", "detail": detail, "sessions": 1}]
        listed = await client.call("session.list")
        assert [(s["session"], s["reason"], s["detail"]) for s in listed["sessions"]] == [
            ("main", "whatsapp_unreachable", detail)
        ]
        await client.call("session.stop", session="main")
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{gateway.http}/healthz")).json()["status"] == "ok"


async def test_one_linked_device_never_runs_in_two_sessions(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path
) -> None:
    settings = wa_settings(tmp_path, proxy, wa_connect_attempts=1000, wa_connect_backoff_s=0.5)
    first = paired_device(settings, template_store, "ses_1")
    copy = paired_device(settings, template_store, "ses_2")  # the same device, e.g. a restored backup
    assert first["jid"] == copy["jid"]
    async with running(settings) as (engine, events):
        await engine.open("ses_1", first)
        await events.next("ses_1", unreachable)
        await engine.open("ses_2", copy)
        assert (await events.next("ses_2", lambda e: True))[1] == Failed(reason="device_in_use")
        pid = pid_of(engine, "ses_1")
        await engine.logout("ses_2", copy)  # deletes the copy's keys without touching the running device
        assert not store_path(settings.data_dir, "ses_2").exists()
        assert store_path(settings.data_dir, "ses_1").exists() and pid_of(engine, "ses_1") == pid
        assert not any(getattr(e, "reason", "") == "engine_worker_restarted" for e in events.of("ses_1"))


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads the worker's environment through /proc")
async def test_workers_start_with_the_bot_tag_off_and_the_proxy_in_their_environment(
    tmp_path: Path, proxy: RefusingProxy
) -> None:
    # neonize's Go side reads NEONIZE_BOT_TAG from the environment the process started with; without "off" it
    # marks every one-to-one message with <bot biz_bot="1"/>. The proxy is not on the (world-readable) command line.
    async with running(wa_settings(tmp_path, proxy)) as (engine, events):
        await engine.open("ses_pair", None)
        await events.next("ses_pair", lambda e: isinstance(e, Failed))
        (worker,) = engine.workers()
        environ = dict(
            entry.split("=", 1) for entry in Path(f"/proc/{worker.pid}/environ").read_text().split("\0") if "=" in entry
        )
        assert environ["NEONIZE_BOT_TAG"] == "off"
        assert environ["ZAPGATE_WA_PROXY"] == proxy.url
        assert proxy.url not in Path(f"/proc/{worker.pid}/cmdline").read_text()


async def test_a_proxy_from_the_environment_carries_every_connect(
    tmp_path: Path, proxy: RefusingProxy, template_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A deployment behind a mandatory ``HTTPS_PROXY``: whatsmeow must use it at the first connect and at every
    retry; zapgate's registration probe must not switch it off."""
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.delenv("https_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    settings = wa_settings(tmp_path, None, wa_connect_attempts=3)
    device = paired_device(settings, template_store, "ses_env")
    async with running(settings) as (engine, events):
        await engine.open("ses_env", device)
        await engine.open("ses_new", None)
        _, paired_failed = await events.next("ses_env", lambda e: isinstance(e, Failed))
        await events.next("ses_new", lambda e: isinstance(e, Failed))
        # Three attempts of the paired session, three of the pairing: all through the proxy.
        assert await proxy.saw(6) == [CONNECT_WHATSAPP] * 6
        assert paired_failed.detail == f"proxy {proxy.address} did not open a tunnel to web.whatsapp.com (Forbidden)"


async def test_switching_from_the_simulator_keeps_its_sessions_for_it(
    tmp_path: Path, proxy: RefusingProxy, caplog: pytest.LogCaptureFixture
) -> None:
    """The same data directory, first with the simulator, then with the real engine, then the simulator again:
    the real engine says what happened and deletes nothing, so the simulator's session comes back."""
    data = tmp_path / "data"
    simulator = fast_settings(data)
    async with serve_gateway(simulator) as gateway, gateway.connect() as client:
        await client.pair("main", "+5511911112222")
    caplog.set_level(logging.INFO)
    async with serve_gateway(wa_settings(tmp_path, proxy)) as gateway, gateway.connect() as client:
        async with asyncio.timeout(WAIT_S):  # the gateway resumed the session as it started
            while (info := await client.call("session.get", session="main"))["status"] != "failed":
                await asyncio.sleep(0.02)
        assert info["paired"] and info["reason"] == "engine_mismatch" and "--engine simulator" in info["detail"]
        await client.call("session.start", session="main")  # again: the same explanation, still nothing deleted
        await client.event(
            "session.status",
            lambda e: e["data"]["status"] == "failed" and e["data"]["reason"] == "engine_mismatch",
            timeout=WAIT_S,
        )
        assert (await client.call("session.get", session="main"))["paired"]
    assert "Run the gateway with --engine simulator" in caplog.text
    assert "session acme/main (ses_" in caplog.text  # the gateway's lines map the ses_ id to tenant and name
    assert proxy.requests == []
    async with serve_gateway(simulator) as gateway, gateway.connect() as client:
        await client.call("session.start", session="main")
        connected = await client.status("main", "connected", timeout=WAIT_S)
        assert connected["data"]["me"]["phone"] == "5511911112222"
