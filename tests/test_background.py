"""Every background task is owned: tracked while it runs, its failure logged, cancelled when its owner closes.
And nothing slow runs on the event loop: file and CPU work goes to a thread."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import segno

from zapgate.background import BackgroundTasks
from zapgate.engines.base import EngineEvent, Failed
from zapgate.engines.whatsapp import WhatsAppEngine
from zapgate.engines.whatsapp import store as whatsapp_store
from zapgate.storage.sqlite import SqliteDatabase

from .conftest import fast_settings
from .support import RunningGateway, serve_gateway

log = logging.getLogger("tests.background")


# -- BackgroundTasks ------------------------------------------------------------------------------------------


async def test_a_failing_task_is_logged_with_its_name_and_traceback(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks(log)

    async def broken() -> None:
        raise RuntimeError("boom")

    task = tasks.spawn(broken(), name="the-broken-one")
    await asyncio.gather(task, return_exceptions=True)
    await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    failures = [r for r in caplog.records if r.name == "tests.background"]
    assert [r.getMessage() for r in failures] == ["background task the-broken-one failed"]
    assert failures[0].exc_info is not None and str(failures[0].exc_info[1]) == "boom"
    assert len(tasks) == 0


async def test_close_cancels_and_awaits_every_task_and_refuses_new_ones() -> None:
    tasks = BackgroundTasks(log)
    ran: list[str] = []
    started = asyncio.Event()

    async def forever() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            ran.append("cleaned up")

    tasks.spawn(forever(), name="forever")
    later = tasks.later(3600, ran.append, "too late", name="later")
    await started.wait()
    assert len(tasks) == 2
    await tasks.close()
    assert ran == ["cleaned up"] and later.cancelled() and len(tasks) == 0
    with pytest.raises(RuntimeError, match="its owner is closed"):
        tasks.spawn(forever(), name="after close")


async def test_later_calls_sync_and_async_functions_after_the_delay() -> None:
    tasks = BackgroundTasks(log)
    seen: list[str] = []

    async def coroutine_function(value: str) -> None:
        seen.append(value)

    await asyncio.gather(
        tasks.later(0.01, seen.append, "sync", name="a"), tasks.later(0, coroutine_function, "async", name="b")
    )
    assert sorted(seen) == ["async", "sync"]
    await tasks.close()


# -- the session manager's automatic restart -------------------------------------------------------------------


def restart_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("restart-") and not t.done()]


async def test_a_passing_failure_restarts_the_session_in_an_owned_task(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway, gateway.connect() as client:
        await client.pair("main", "+55 11 95000-0001")
        session_id = gateway.gateway.sessions.get("acme", "main").id
        # What an engine does on a temporary ban: it stops the session and reports when to try again.
        await gateway.gateway.engine.stop(session_id)
        failure = Failed(reason="temporary_ban:test", retry_at=time.time() + 0.2)
        await gateway.gateway.sessions.on_engine_event(session_id, failure)
        assert (await client.status("main", "failed"))["data"]["retry_at"] == failure.retry_at
        assert len(restart_tasks()) == 1
        await client.status("main", "starting")
        await client.status("main", "connected")
        assert restart_tasks() == []


async def test_closing_the_gateway_cancels_a_pending_restart(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway, gateway.connect() as client:
        await client.pair("main", "+55 11 95000-0002")
        session_id = gateway.gateway.sessions.get("acme", "main").id
        await gateway.gateway.engine.stop(session_id)
        event = Failed(reason="temporary_ban:test", retry_at=time.time() + 3600)
        await gateway.gateway.sessions.on_engine_event(session_id, event)
        await client.status("main", "failed")
        assert len(restart_tasks()) == 1
    assert restart_tasks() == []


# -- nothing blocking on the event loop --------------------------------------------------------------------------


def spy_threads(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[threading.Thread]:
    """Record the thread each call of ``owner.name`` runs in; the real function still does the work."""
    real: Callable[..., Any] = getattr(owner, name)
    threads: list[threading.Thread] = []

    def spy(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return threads


async def test_the_qr_png_is_rendered_off_the_event_loop(
    gateway: RunningGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads = spy_threads(monkeypatch, segno, "make_qr")
    token = await gateway.token()
    async with gateway.connect() as client:
        await client.call("session.start", session="main")
        await client.event("session.qr")
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        answer = await http.get("/v1/sessions/main/qr.png", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.content.startswith(b"\x89PNG")
    assert threads and threading.main_thread() not in threads


async def test_closing_a_database_ends_its_threads_without_joining_them_on_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = SqliteDatabase(tmp_path / "x.db", synchronous="normal", migrations=["CREATE TABLE t (x)"], name="x")
    await db.open()
    await db.write(lambda conn: (conn.execute("INSERT INTO t VALUES (1)"), []))
    mine = {"x-write", "x-read"}
    assert mine <= {thread.name for thread in threading.enumerate()}
    real = threading.Thread.join
    joined_on: list[threading.Thread] = []

    def spy(self: threading.Thread, timeout: float | None = None) -> None:
        joined_on.append(threading.current_thread())
        real(self, timeout)

    monkeypatch.setattr(threading.Thread, "join", spy)
    await db.close()
    assert threading.current_thread() not in joined_on  # the event loop never waits for a thread to end
    for _ in range(200):
        if not mine & {thread.name for thread in threading.enumerate()}:
            break
        await asyncio.sleep(0.01)
    assert not mine & {thread.name for thread in threading.enumerate()}  # ... and both threads end


async def test_the_whatsapp_engine_deletes_device_stores_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def sink(session_id: str, event: EngineEvent) -> None:
        pass

    engine = WhatsAppEngine(fast_settings(tmp_path / "data", engine="whatsapp"))
    await engine.start(sink)
    try:
        store = tmp_path / "data" / "whatsapp" / "ses_gone.db"
        store.write_bytes(b"keys")
        threads = spy_threads(monkeypatch, whatsapp_store, "delete_store")
        await engine.logout("ses_gone", None)  # not on any worker, no stored device: only the local files
        assert not store.exists()
        assert threads and threading.current_thread() not in threads
    finally:
        await engine.close()
