"""Data at rest is private to the gateway's user, whatever the umask: the data directory ``0700`` and every
database file (gateway, simulator, the real engine's message-id map, and their WAL files) ``0600``."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from zapgate.engines.base import EngineEvent
from zapgate.engines.whatsapp import WhatsAppEngine
from zapgate.engines.whatsapp.store import STORE_DIR

from .conftest import fast_settings
from .support import TIMEOUT, serve_gateway

ZAPGATE = str(Path(sys.executable).with_name("zapgate"))


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    previous = os.umask(0)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def database_files(data_dir: Path) -> list[Path]:
    return sorted(p for p in data_dir.rglob("*") if p.is_file() and ".db" in p.name)


@pytest.mark.usefixtures("permissive_umask")
async def test_the_gateway_and_both_engines_keep_their_files_private(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    settings = fast_settings(data)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("main", "+55 11 96000-0001")
        await client.call("message.send", session="main", to="+1 555 000 0000", text="private")
        running = {p.name: mode(p) for p in database_files(data)}  # WAL files exist while the databases are open

    async def sink(session_id: str, event: EngineEvent) -> None:
        pass

    engine = WhatsAppEngine(settings.replace(engine="whatsapp"))  # its message-id map; no worker starts
    await engine.start(sink)
    try:
        running |= {p.name: mode(p) for p in database_files(data / STORE_DIR)}
    finally:
        await engine.close()

    assert mode(data) == 0o700
    assert mode(data / STORE_DIR) == 0o700
    assert {"zapgate.db-wal", "simulator.db-wal", "messages.db", "messages.db-wal"} <= set(running), running
    assert running == dict.fromkeys(running, 0o600)
    assert {p.name: mode(p) for p in database_files(data)} == {p.name: 0o600 for p in database_files(data)}


@pytest.mark.usefixtures("permissive_umask")
async def test_an_older_world_readable_database_is_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with serve_gateway(fast_settings(data)):
        pass
    for path in database_files(data):
        path.chmod(0o644)
    async with serve_gateway(fast_settings(data)):
        pass
    assert {p.name: mode(p) for p in database_files(data)} == {p.name: 0o600 for p in database_files(data)}


async def test_token_create_under_a_permissive_umask(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPGATE_")}
    proc = await asyncio.create_subprocess_exec(
        "sh",
        "-c",
        'umask 000 && exec "$0" token create --tenant acme --data-dir "$1"',
        ZAPGATE,
        str(data),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(TIMEOUT * 3):
        _, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert mode(data) == 0o700
    assert {p.name: mode(p) for p in database_files(data)} == {p.name: 0o600 for p in database_files(data)}
