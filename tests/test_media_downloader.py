"""The downloader of received files, in-process with the real gateway and the simulator: downloads are bounded
and taken from the tenants in turn. The simulator's downloads are held at a gate so the order can be seen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from zapgate.engines.simulator import SimulatorEngine
from zapgate.gateway import Gateway
from zapgate.media.library import Declared
from zapgate.protocol.content import Document, Media

from . import media_kit as kit
from .conftest import fast_settings
from .support import TIMEOUT


class GatedSimulator(SimulatorEngine):
    """The simulator, whose downloads wait for :attr:`gate` and are recorded in the order they ran."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gate = asyncio.Semaphore(0)
        self.order: list[str] = []
        self.inside = 0
        self.most_inside = 0

    async def download(self, session_id: str, media_ref: dict[str, Any], into: Path) -> None:
        self.inside += 1
        self.most_inside = max(self.most_inside, self.inside)
        try:
            await self.gate.acquire()
            self.order.append(session_id)
            await super().download(session_id, media_ref, into)
        finally:
            self.inside -= 1


async def until(check: Any, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def pending(gateway: Gateway, tenant: str, n: int) -> None:
    """Wait until ``tenant`` has ``n`` received files recorded (their messages arrive asynchronously)."""
    deadline = time.monotonic() + TIMEOUT
    while len([r for r in await gateway.storage.media.unfinished() if r.tenant == tenant]) < n:
        assert time.monotonic() < deadline, f"{tenant}'s files did not all arrive"
        await asyncio.sleep(0.01)


async def paired(gateway: Gateway, engine: GatedSimulator, tenant: str, name: str, phone: str) -> str:
    session = await gateway.sessions.start_session(tenant, name)
    await until(lambda: session.qr_code is not None, "a QR code")
    assert session.qr_code is not None
    await engine.scan(session.qr_code, phone)
    await until(lambda: session.state.status.value == "connected", "connected")
    return session.id


async def one(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def receive_files(gateway: Gateway, engine: GatedSimulator, tenant: str, session_id: str, n: int) -> None:
    for i in range(n):
        record = await gateway.media.upload(tenant, one(kit.pdf(2000)), Declared(filename=f"{i}.pdf"))
        content = Document(media=Media(id=record.id), filename=f"{i}.pdf")
        file = await gateway.media.file_for(content)
        await engine.receive(session_id, "+5521900000009", content, media=file)


async def test_downloads_are_bounded_and_shared_between_tenants_in_turn(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", media_download_concurrency=1)
    engine = GatedSimulator(settings.data_dir, qr_schedule=settings.sim_qr_schedule, latency=0.0)
    gateway = Gateway(settings, engine=engine)
    await gateway.start()
    try:
        busy = await paired(gateway, engine, "busy", "main", "+5511911110001")
        quiet = await paired(gateway, engine, "quiet", "main", "+5511922220002")
        await receive_files(gateway, engine, "busy", busy, 10)
        await pending(gateway, "busy", 10)  # the busy tenant's files are all queued first
        await receive_files(gateway, engine, "quiet", quiet, 2)
        await pending(gateway, "quiet", 2)
        unfinished = gateway.storage.media.unfinished
        await until(lambda: engine.inside == 1, "the first download to start")  # one runs, held at the gate
        for released in range(12):
            engine.gate.release()
            await until(lambda n=released: len(engine.order) == n + 1, f"download {released + 1}")
        await until(lambda: gateway.sessions.downloads.backlog == 0, "the backlog to empty")
        deadline = time.monotonic() + TIMEOUT
        while await unfinished():
            assert time.monotonic() < deadline, await unfinished()
            await asyncio.sleep(0.02)
    finally:
        await gateway.close()
    assert engine.most_inside == 1
    # The quiet tenant's two files, queued last, did not wait behind the busy tenant's nine others: the tenants
    # took turns (first come, first served would have put them 11th and 12th).
    assert engine.order[0] == busy and engine.order[:5].count(quiet) == 2, engine.order
    assert engine.order.count(busy) == 10 and engine.order.count(quiet) == 2


async def test_at_most_the_configured_number_of_downloads_run_at_once(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", media_download_concurrency=3)
    engine = GatedSimulator(settings.data_dir, qr_schedule=settings.sim_qr_schedule, latency=0.0)
    gateway = Gateway(settings, engine=engine)
    await gateway.start()
    try:
        session = await paired(gateway, engine, "acme", "main", "+5511933330003")
        await receive_files(gateway, engine, "acme", session, 8)
        await pending(gateway, "acme", 8)
        await until(lambda: engine.inside == 3, "three downloads to start")
        await asyncio.sleep(0.1)  # give a fourth the chance to start, were the bound broken
        assert engine.inside == 3
        for _ in range(8):
            engine.gate.release()
        await until(lambda: len(engine.order) == 8, "every download")
    finally:
        await gateway.close()
    assert engine.most_inside == 3
