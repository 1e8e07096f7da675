"""``zapgate serve`` with its default engine (whatsapp) when WhatsApp cannot be reached: it starts, keeps
answering, reports why a session cannot connect (in the session's status and in ``/healthz``), and a Ctrl+C
stops it and its workers in seconds. WhatsApp is made unreachable by ``ZAPGATE_WA_PROXY`` pointing at a proxy on
127.0.0.1 that refuses every tunnel, so the test behaves the same on a machine with internet access."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import stat
import sys
from pathlib import Path

import httpx
import pytest

from .offline_proxy import CONNECT_WHATSAPP, RefusingProxy
from .support import RawClient

pytestmark = pytest.mark.slow

ZAPGATE = str(Path(sys.executable).with_name("zapgate"))
WAIT_S = 30.0


def children_of(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc")
async def test_serve_with_the_default_engine_offline(tmp_path: Path) -> None:
    async with RefusingProxy() as proxy:
        await _serve_offline(tmp_path, proxy)


async def _serve_offline(tmp_path: Path, proxy: RefusingProxy) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPGATE_") and k != "PYTHONASYNCIODEBUG"}
    env.update(PYTHONWARNINGS="error", ZAPGATE_WA_CONNECT_BACKOFF_S="0.1", ZAPGATE_WA_PROXY=proxy.url)
    data = str(tmp_path / "data")
    made = await asyncio.create_subprocess_exec(
        ZAPGATE, "token", "create", "--tenant", "acme", "--data-dir", data, env=env, stdout=asyncio.subprocess.PIPE
    )
    token = (await made.communicate())[0].decode().strip()
    assert made.returncode == 0 and token

    previous = os.umask(0)  # inherited by the gateway and its workers: its files are private whatever the umask
    try:
        serve = await asyncio.create_subprocess_exec(
            ZAPGATE, "serve", "--port", "0", "--data-dir", data, env=env, stderr=asyncio.subprocess.PIPE
        )
    finally:
        os.umask(previous)
    assert serve.stderr is not None
    log: list[str] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while not (match := re.search(r"zapgate running on http://127\.0\.0\.1:(\d+)", "".join(log))):
                line = await serve.stderr.readline()
                assert line, "".join(log)
                log.append(line.decode())
        port = int(match[1])
        drain = asyncio.create_task(_collect(serve.stderr, log))

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = (await http.get("/healthz")).json()
            assert health["status"] == "ok" and health["engine"] == "whatsapp"

            client = await RawClient.open(f"ws://127.0.0.1:{port}/v1/ws")
            await client.authenticate(token)
            seen: dict[str, tuple[bool, int]] = {}
            watching = asyncio.create_task(_watch_modes(Path(data), seen))
            await client.call("session.start", session="main")
            failed = await client.status("main", "failed", timeout=WAIT_S)
            watching.cancel()
            # whatsmeow's key store, written by the Go library in the worker while it tried to connect, was as
            # private as every other file although the gateway was started with umask 0.
            assert [name for name in seen if name.startswith("whatsapp/ses_")], sorted(seen)
            wrong = {name: oct(m) for name, (is_dir, m) in seen.items() if m != (0o700 if is_dir else 0o600)}
            assert not wrong, wrong
            detail = f"proxy {proxy.address} did not open a tunnel to web.whatsapp.com (Forbidden)"
            assert failed["data"]["reason"] == "whatsapp_unreachable" and failed["data"]["detail"] == detail
            health = (await http.get("/healthz")).json()
            assert health["sessions"] == {"failed": 1} and health["status"] == "degraded"
            assert health["reasons"] == [{"reason": "whatsapp_unreachable", "detail": detail, "sessions": 1}]
            assert set(proxy.requests) == {CONNECT_WHATSAPP}  # whatsmeow went there, and only there
            await client.close()

        workers = children_of(serve.pid)
        assert workers, "the session ran in an engine worker process"
        serve.send_signal(signal.SIGINT)  # Ctrl+C
        async with asyncio.timeout(WAIT_S):
            code = await serve.wait()
        await drain
        assert code == 0, "".join(log)
        assert not [pid for pid in workers if alive(pid)], "an engine worker outlived the gateway"
        assert "Traceback" not in "".join(log), "".join(log)
    finally:
        if serve.returncode is None:
            serve.kill()
            await serve.wait()


async def _watch_modes(root: Path, seen: dict[str, tuple[bool, int]]) -> None:
    """Record the mode of every file and directory under ``root`` every few milliseconds, until cancelled."""
    while True:
        for path in root.rglob("*"):
            with contextlib.suppress(FileNotFoundError):  # removed between the listing and the look
                seen[str(path.relative_to(root))] = (path.is_dir(), stat.S_IMODE(path.stat().st_mode))
        await asyncio.sleep(0.005)


async def _collect(stream: asyncio.StreamReader, log: list[str]) -> None:
    while line := await stream.readline():
        log.append(line.decode())
