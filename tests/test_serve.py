"""``zapgate serve`` as a process: one gateway per data directory, start-up failures, signals, version, help.

Every test runs the real ``zapgate`` executable (or ``python3 tasks.py serve``) in a subprocess.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import os
import re
import signal
import socket
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from .support import TIMEOUT, RawClient
from .test_whatsapp_serve import alive, children_of

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
ZAPGATE = str(Path(sys.executable).with_name("zapgate"))
RUNNING = re.compile(r"zapgate running on http://127\.0\.0\.1:(\d+)")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPGATE_") and k != "PYTHONASYNCIODEBUG"}
    env["PYTHONWARNINGS"] = "error"
    env.update(extra)
    return env


@dataclass
class Served:
    """A ``zapgate serve`` subprocess and what it wrote to stderr so far."""

    proc: asyncio.subprocess.Process
    log: list[str] = field(default_factory=list)
    port: int = 0
    _drain: asyncio.Task[None] | None = None

    @property
    def text(self) -> str:
        return "".join(self.log)

    async def ready(self) -> None:
        """Read stderr until the gateway says where it listens; then keep collecting in the background."""
        assert self.proc.stderr is not None
        async with asyncio.timeout(TIMEOUT * 3):
            while not (found := RUNNING.search(self.text)):
                line = await self.proc.stderr.readline()
                assert line, f"serve exited ({await self.proc.wait()}) before it was ready:\n{self.text}"
                self.log.append(line.decode())
        self.port = int(found[1])
        self._drain = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        assert self.proc.stderr is not None
        while line := await self.proc.stderr.readline():
            self.log.append(line.decode())

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        self.proc.send_signal(signum)
        async with asyncio.timeout(TIMEOUT * 3):
            code = await self.proc.wait()
            if self._drain is not None:
                await self._drain
        return code


@contextlib.asynccontextmanager
async def serving(*command: str, env: dict[str, str]) -> AsyncIterator[Served]:
    proc = await asyncio.create_subprocess_exec(*command, env=env, stderr=asyncio.subprocess.PIPE)
    served = Served(proc)
    try:
        yield served
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        if served._drain is not None:
            served._drain.cancel()


@dataclass
class Ran:
    code: int
    out: str
    err: str


async def run(*args: str, env: dict[str, str], cwd: Path | None = None) -> Ran:
    proc = await asyncio.create_subprocess_exec(
        ZAPGATE, *args, env=env, cwd=cwd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(TIMEOUT * 3):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


def simulator(data: Path, port: int = 0) -> list[str]:
    return [ZAPGATE, "serve", "--engine", "simulator", "--port", str(port), "--data-dir", str(data)]


# -- one gateway per data directory ----------------------------------------------------------------------


async def test_a_second_gateway_on_the_same_data_directory_exits_2_and_names_the_first(tmp_path: Path) -> None:
    data = tmp_path / "data"
    env = clean_env()
    async with serving(*simulator(data), env=env) as first:
        await first.ready()

        second = await run("serve", "--engine", "simulator", "--port", "0", "--data-dir", str(data), env=env)
        assert second.code == 2
        assert second.err.splitlines() == [
            f"zapgate: data directory {data} is in use by another zapgate gateway (pid {first.proc.pid})"
        ]

        # The token commands share the database with the running gateway.
        created = await run("token", "create", "--tenant", "acme", "--data-dir", str(data), env=env)
        assert created.code == 0, created.err
        token = created.out.strip()
        listed = await run("token", "list", "--data-dir", str(data), env=env)
        assert listed.code == 0 and re.search(r"^\w+\s+acme\s+.*active", listed.out, re.M), listed

        # The first gateway goes on serving, with the token just created.
        client = await RawClient.open(f"ws://127.0.0.1:{first.port}/v1/ws")
        await client.authenticate(token)
        assert (await client.call("session.start", session="main"))["status"] in ("starting", "qr")
        await client.close()
        revoked = await run("token", "revoke", listed.out.splitlines()[1].split()[0], "--data-dir", str(data), env=env)
        assert revoked.code == 0, revoked.err

        assert await first.stop(signal.SIGTERM) == 0
        assert "Traceback" not in first.text and "gateway closed" in first.text, first.text

    # Once the first one is gone, the directory is free again.
    async with serving(*simulator(data), env=env) as third:
        await third.ready()
        assert await third.stop(signal.SIGINT) == 0
        assert "Traceback" not in third.text, third.text


# -- start-up failures -------------------------------------------------------------------------------------


def unwritable_directory(tmp_path: Path) -> Path:
    """A directory this process cannot create files in (root ignores permissions: then a sysfs directory)."""
    locked = tmp_path / "read-only"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if not os.access(locked, os.W_OK):
        return locked
    sysfs = Path("/sys")
    try:
        (sysfs / "zapgate-probe").open("x").close()
    except OSError:
        return sysfs
    pytest.skip("no directory here is unwritable for this user")


@pytest.mark.parametrize("cause", ["port in use", "data dir not creatable", "data dir not writable"])
async def test_start_up_failures_exit_2_with_one_line_and_never_say_ready(tmp_path: Path, cause: str) -> None:
    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = 0
        if cause == "port in use":
            port = taken.getsockname()[1]
            expected = f"zapgate: cannot listen on 127.0.0.1:{port}: address already in use"
        elif cause == "data dir not creatable":
            (tmp_path / "a-file").write_text("")
            data = tmp_path / "a-file" / "data"
            expected = f"zapgate: cannot use data directory {data}: not a directory"
        else:
            data = unwritable_directory(tmp_path)
            expected = f"zapgate: cannot use data directory {data}: permission denied"
        failed = await run(*simulator(data, port)[1:], env=clean_env())
    assert failed.code == 2
    assert failed.err.splitlines() == [expected]  # nothing else: no traceback, no "gateway ready"


# -- the CLI's own surface -----------------------------------------------------------------------------------


async def test_version_and_serve_help(tmp_path: Path) -> None:
    from zapgate import __version__

    version = await run("--version", env=clean_env())
    assert version.code == 0 and version.out.strip() == f"zapgate {__version__}"
    helped = await run("serve", "--help", env=clean_env())
    assert helped.code == 0
    assert "(default: None)" not in helped.out and "(default:" not in helped.out
    assert helped.out.count("8787") == 1 and "{whatsapp,simulator}" in helped.out


async def test_token_create_says_which_data_directory_it_wrote_to(tmp_path: Path) -> None:
    created = await run("token", "create", "--tenant", "acme", env=clean_env(), cwd=tmp_path)
    assert created.code == 0, created.err
    assert f"for tenant acme (scopes tenant) in {tmp_path / 'zapgate-data'};" in created.err
    assert (tmp_path / "zapgate-data" / "zapgate.db").exists()

    elsewhere = await run("token", "list", "--data-dir", str(tmp_path / "nothing-here"), env=clean_env())
    assert elsewhere.code == 2
    assert elsewhere.err.splitlines() == [
        f"zapgate: no zapgate database in {tmp_path / 'nothing-here'}; pass the gateway's --data-dir "
        "(or set ZAPGATE_DATA_DIR)"
    ]
    assert not (tmp_path / "nothing-here").exists()
    bad = await run("token", "create", "--tenant", "Not Valid", "--data-dir", str(tmp_path / "d"), env=clean_env())
    assert bad.code == 2 and bad.err.startswith("zapgate: invalid tenant name 'Not Valid'")
    assert "Traceback" not in bad.err


# -- SIGTERM to the task runner ------------------------------------------------------------------------------


def _tasks_is_set_up() -> bool:
    spec = importlib.util.spec_from_file_location("zapgate_tasks", ROOT / "tasks.py")
    assert spec is not None and spec.loader is not None
    tasks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tasks)
    return bool(tasks.is_set_up() and Path(sys.executable).parent == tasks.BIN)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds worker processes through /proc")
async def test_sigterm_to_python3_tasks_py_serve_stops_the_gateway_and_its_workers(tmp_path: Path) -> None:
    if not _tasks_is_set_up():
        pytest.skip("this checkout's .venv was not made by tasks.py (the test must not install anything)")
    data = tmp_path / "data"
    env = clean_env(ZAPGATE_WA_CONNECT_BACKOFF_S="0.1")
    created = await run("token", "create", "--tenant", "acme", "--data-dir", str(data), env=env)
    token = created.out.strip()
    command = [sys.executable, str(ROOT / "tasks.py"), "serve", "--port", "0", "--data-dir", str(data)]
    async with serving(*command, env=env) as served:
        await served.ready()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served.port}") as http:
            assert (await http.get("/healthz")).json()["engine"] == "whatsapp"
        client = await RawClient.open(f"ws://127.0.0.1:{served.port}/v1/ws")
        await client.authenticate(token)
        await client.call("session.start", session="main")
        await client.status("main", "failed", timeout=TIMEOUT * 3)  # this machine cannot reach WhatsApp
        await client.close()
        workers = children_of(served.proc.pid)  # tasks.py exec'd the gateway: it is this very process
        assert workers, "the session ran in an engine worker process"

        assert await served.stop(signal.SIGTERM) == 0
        assert "gateway closed" in served.text and "Traceback" not in served.text, served.text
        assert not [pid for pid in workers if alive(pid)], "an engine worker outlived the gateway"
