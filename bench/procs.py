"""Shared by the bench scripts: servers in their own processes, RSS, fd limits, tokens and a tiny client.

The gateway runs exactly as a user runs it, ``zapgate serve --engine simulator`` in its own process, configured
through ``ZAPGATE_*`` variables; the bench talks to it only over its socket (and creates tokens in its data
directory the way ``zapgate token create`` does).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
BIN = Path(sys.executable).parent
GATEWAY_BIN = Path(os.environ["BENCH_GATEWAY_BIN"]) if os.environ.get("BENCH_GATEWAY_BIN") else BIN
"""Where the benchmarked gateway's ``zapgate`` is: this interpreter's, or another virtual environment's ``bin``."""
SILENT_CONTACT = "5511988887777"
"""A simulated contact that exists on the network and never answers: sends to it cost only the send path."""
SILENT_CONTACTS = tuple(f"55119888877{i:02d}" for i in range(8))
"""Eight more such contacts: the send path rotates over them (per-chat ordering rightly serialises one chat)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit(wanted: int) -> int:
    """Raise this process's open-file limit towards ``wanted`` (children inherit it); return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def rss_kib(pid: int) -> int:
    """Resident set size of a process in KiB (Linux ``/proc``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by process ``pid`` (all its threads), from ``/proc``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until_quiet(pids: Iterable[int], *, share: float = 0.05, window: float = 0.25, most: float = 15.0) -> float:
    """Wait until the processes ``pids`` together use less than ``share`` of a core over ``window`` seconds (or
    ``most`` seconds passed); return how long it took. A gateway goes on working after a measured load ends (the
    simulator's deliveries and receipts, their writes, checkpoints): measured right after it, another target would
    share the cores with that tail, and the second of two targets measured in turn would be the slower one."""
    watched = list(dict.fromkeys(pids))
    began = time.perf_counter()
    before = sum(cpu_seconds(pid) for pid in watched)
    while time.perf_counter() - began < most:
        await asyncio.sleep(window)
        after = sum(cpu_seconds(pid) for pid in watched)
        if after - before < share * window:
            break
        before = after
    return time.perf_counter() - began


def thread_cpu_seconds(pid: int) -> dict[int, float]:
    """User + system CPU time used so far by each thread of process ``pid``, by thread id, from ``/proc``. The
    thread whose id is ``pid`` is the process's first thread: the gateway's event loop."""
    ticks = os.sysconf("SC_CLK_TCK")
    times = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        times[int(tid)] = (int(fields[11]) + int(fields[12])) / ticks
    return times


def settle_rss(pid: int, seconds: float = 1.0) -> int:
    """RSS after letting the process settle: the largest of a few samples over ``seconds``."""
    samples = []
    for _ in range(5):
        time.sleep(seconds / 5)
        samples.append(rss_kib(pid))
    return max(samples)


def machine() -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with contextlib.suppress(OSError):
        mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    from importlib.metadata import version

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "packages": {p: version(p) for p in ("websockets", "uvicorn", "uvloop", "starlette", "msgspec", "neonize")},
    }


@dataclass
class Server:
    """A server in its own process, listening on ``port``."""

    proc: subprocess.Popen[bytes]
    port: int
    kind: str
    data_dir: Path | None = None
    log: Path | None = None
    started_s: float = 0.0

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws" if self.kind == "gateway" else f"ws://127.0.0.1:{self.port}/"

    def rss_kib(self) -> int:
        return rss_kib(self.pid)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def metrics(self, prefix: str = "zapgate_") -> dict[str, float]:
        """The samples of ``/metrics`` whose names start with ``prefix`` (the bench's gateway serves it without a
        token), by name with labels."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            if line.startswith(prefix):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def healthz(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=10) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result


def _wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float, log: Path | None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            detail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"server exited with {proc.returncode} while starting\n{detail}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.005)
    proc.kill()
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


def start_ceiling() -> Server:
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(BENCH / "ceiling.py"), "--port", str(port)], stdout=subprocess.DEVNULL)
    _wait_listening(proc, port, 30, None)
    return Server(proc, port, "ceiling", started_s=time.perf_counter() - began)


def start_uvicorn_floor() -> Server:
    port = free_port()
    began = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(BENCH / "uvicorn_floor.py"), "--port", str(port)])
    _wait_listening(proc, port, 30, None)
    return Server(proc, port, "uvicorn", started_s=time.perf_counter() - began)


def gateway_env(data_dir: Path, **settings: Any) -> dict[str, str]:
    """The environment of a benchmarked gateway: the user's, minus other ZAPGATE_* settings, plus ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPGATE_")}
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "engine": "simulator",
        "log_level": "warning",
        "pacing": "false",
        "sim_latency_s": 0,
        "sim_contacts": ",".join((SILENT_CONTACT, *SILENT_CONTACTS)),
        # The bench opens thousands of connections from 127.0.0.1 and drives them flat out: no edge caps.
        "max_connections_per_ip": 0,
        "max_connections_per_token": 0,
        "max_unauthenticated_connections": 0,
        "command_rate_per_s": 0,
        # One tenant holds up to 1,000 sessions in scenario 3: no per-tenant session quota either.
        "tenant_max_sessions": 0,
    }
    values.update(settings)
    env.update({f"ZAPGATE_{k.upper()}": str(v) for k, v in values.items()})
    return env


def start_gateway(
    data_dir: Path,
    *,
    timeout: float = 120.0,
    source: Path | None = None,
    extra_env: dict[str, str] | None = None,
    **settings: Any,
) -> Server:
    """Run ``zapgate serve`` in its own process; returns once it accepts connections (sessions loaded).

    ``source``: a ``src`` directory of another zapgate checkout to run instead of the installed one (the
    before side of a before/after comparison measured in one run). ``extra_env``: more variables for the
    gateway's environment only."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log = data_dir / "gateway.log"
    env = gateway_env(data_dir, port=port, **settings) | (extra_env or {})
    if source is not None:
        env["PYTHONPATH"] = str(source)
        # An older tree does not know every setting of this one (and refuses unknown ones): leave those out.
        known = (source / "zapgate" / "config.py").read_text()
        for key in [k for k in env if k.startswith("ZAPGATE_") and k.removeprefix("ZAPGATE_").lower() not in known]:
            del env[key]
    began = time.perf_counter()
    with log.open("ab") as out:
        proc = subprocess.Popen([str(GATEWAY_BIN / "zapgate"), "serve"], env=env, stdout=out, stderr=out)
    _wait_listening(proc, port, timeout, log)
    return Server(proc, port, "gateway", data_dir, log, time.perf_counter() - began)


@contextlib.contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        server.stop()


def create_tokens(data_dir: Path, tenants: Sequence[str], source: Path | None = None) -> list[str]:
    """One token per tenant, made in the data directory's database as ``zapgate token create`` makes them;
    with ``source``, by that zapgate tree (its database schema may be older than this one's)."""
    if source is not None:
        code = (
            "import json, sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
            "from procs import create_tokens; print(json.dumps(create_tokens(Path(sys.argv[2]), sys.argv[3:])))"
        )
        env = {**os.environ, "PYTHONPATH": str(source)}
        out = subprocess.run(
            [sys.executable, "-c", code, str(BENCH), str(data_dir), *tenants],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        return list(json.loads(out))
    from zapgate.auth import TokenIssuer
    from zapgate.config import Settings
    from zapgate.storage import open_storage

    settings = Settings(data_dir=data_dir, engine="simulator", sqlite_synchronous="normal")

    async def make() -> list[str]:
        storage = open_storage(settings.database_path, synchronous="normal")
        await storage.open()
        try:
            issuer = TokenIssuer(storage)
            made = await asyncio.gather(*(issuer.create(t, "bench") for t in tenants))
            return [token for _, token in made]
        finally:
            await storage.close()

    return asyncio.run(make())


class _Frame(msgspec.Struct):
    type: str
    id: str | None = None
    ok: bool | None = None
    data: Any = None
    error: Any = None
    event: str | None = None
    session: str | None = None


_decode = msgspec.json.Decoder(_Frame).decode


@dataclass
class Client:
    """A minimal raw-JSON client for set-up work (pairing sessions, checks); not used for measuring."""

    ws: ClientConnection
    replies: dict[str, asyncio.Future[_Frame]] = field(default_factory=dict)
    waiters: list[tuple[Any, asyncio.Future[_Frame]]] = field(default_factory=list)
    ids: Iterator[int] = field(default_factory=itertools.count)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, token: str) -> Client:
        ws = await connect(url, compression=None, open_timeout=30, max_queue=None)
        hello = _decode(await ws.recv())
        assert hello.type == "hello", hello
        await ws.send(json.dumps({"type": "auth", "token": token}))
        ready = _decode(await ws.recv())
        if ready.type != "ready":
            raise RuntimeError(f"not authenticated: {ready}")
        client = cls(ws)
        client.reader = asyncio.create_task(client._read())
        return client

    async def _read(self) -> None:
        async for raw in self.ws:
            frame = _decode(raw)
            if frame.type == "reply" and frame.id in self.replies:
                self.replies.pop(frame.id).set_result(frame)
            elif frame.type == "event":
                for entry in list(self.waiters):
                    match, future = entry
                    if not future.done() and match(frame):
                        future.set_result(frame)
                        self.waiters.remove(entry)

    def wait_event(self, match: Any) -> asyncio.Future[_Frame]:
        future: asyncio.Future[_Frame] = asyncio.get_running_loop().create_future()
        self.waiters.append((match, future))
        return future

    async def call(self, type_: str, timeout: float = 60.0, **fields: Any) -> Any:
        request_id = f"setup-{next(self.ids)}"
        future: asyncio.Future[_Frame] = asyncio.get_running_loop().create_future()
        self.replies[request_id] = future
        await self.ws.send(json.dumps({"type": type_, "id": request_id, **fields}))
        reply = await asyncio.wait_for(future, timeout)
        if not reply.ok:
            raise RuntimeError(f"{type_} failed: {reply.error}")
        return reply.data

    async def pair(self, session: str, phone: str, timeout: float = 60.0) -> None:
        """Start ``session``, scan its QR with a simulated phone and wait until it is connected."""
        qr = self.wait_event(lambda f: f.event == "session.qr" and f.session == session)
        connected = self.wait_event(
            lambda f: f.event == "session.status" and f.session == session and f.data["status"] == "connected"
        )
        await self.call("session.start", session=session)
        code = (await asyncio.wait_for(qr, timeout)).data["qr"]
        await self.call("sim.scan", qr=code, phone=phone)
        await asyncio.wait_for(connected, timeout)

    async def close(self) -> None:
        await self.ws.close()
        if self.reader is not None:
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)


def phone(i: int) -> str:
    """The i-th simulated phone number of the bench (Brazilian mobile numbers)."""
    return f"55119{i:08d}"


def emit(result: dict[str, Any], out: str | None) -> None:
    """Write a script's result as JSON to ``out`` (or stdout)."""
    text = json.dumps(result, indent=2)
    if out:
        Path(out).write_text(text)
    else:
        print(text)
