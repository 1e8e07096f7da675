"""Gateway nodes as real subprocesses (``zapgate serve``) on one PostgreSQL schema and one Redis, and what the
tests read back from the shared database: leases, what the simulated WhatsApp accepted, and its connection log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg

from .support import TIMEOUT_SCALE, RawClient

ZAPGATE = Path(sys.executable).with_name("zapgate")
STARTUP_TIMEOUT = 30.0 * TIMEOUT_SCALE
SILENT = ("5521900000001", "5521900000002", "5521900000003")
"""Contacts that exist on the simulated network and never answer."""
LEASE_TTL_S = 8.0
LEASE_RENEW_S = 1.0
"""Shorter than the defaults (10 s, 2 s) so that fail-overs take seconds, yet with room for a loaded machine: a
node whose renewal takes longer than 6 s (starved of CPU, or of disk for PostgreSQL's commits) stops its sessions
— correctly, but it would make the test about something else."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Node:
    """``zapgate serve --engine simulator`` as one node of a cluster."""

    def __init__(self, root: Path, name: str, database_url: str, bus_url: str, **settings: str) -> None:
        self.name = name
        self.data_dir = root / name
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = root / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPGATE_") and k != "PYTHONASYNCIODEBUG"}
        env.update(
            {
                "ZAPGATE_DATA_DIR": str(self.data_dir),
                "ZAPGATE_PORT": str(self.port),
                "ZAPGATE_DATABASE_URL": database_url,
                "ZAPGATE_BUS_URL": bus_url,
                "ZAPGATE_NODE_NAME": name,
                "ZAPGATE_LEASE_TTL_S": str(LEASE_TTL_S),
                "ZAPGATE_LEASE_RENEW_S": str(LEASE_RENEW_S),
                "ZAPGATE_PACING": "false",
                "ZAPGATE_SIM_LATENCY_S": "0",
                "ZAPGATE_SIM_CONTACTS": ",".join(SILENT),
                "ZAPGATE_SIM_QR_SCHEDULE": "60,60,60",
                "ZAPGATE_PING_INTERVAL_S": "0",
                "ZAPGATE_LOG_LEVEL": "info",
            }
        )
        env.update({f"ZAPGATE_{k.upper()}": v for k, v in settings.items()})
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def token(self, tenant: str = "acme") -> str:
        out = subprocess.run(
            [ZAPGATE, "token", "create", "--tenant", tenant],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=STARTUP_TIMEOUT,
        )
        return out.stdout.decode().strip()

    def spawn(self) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen([ZAPGATE, "serve", "--engine", "simulator"], env=self.env, stderr=log)

    async def started(self) -> None:
        """Wait until it accepts connections (it has joined the cluster by then)."""
        assert self.proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while True:
            assert self.proc.poll() is None, f"{self.name} exited with {self.proc.returncode}:\n{self.log_tail()}"
            try:
                probe = await RawClient.open(self.url)
            except OSError:
                assert loop.time() < deadline, f"{self.name} did not start:\n{self.log_tail()}"
                await asyncio.sleep(0.05)
                continue
            await probe.close()
            return

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.signal(signal.SIGKILL)
        assert self.proc is not None
        self.proc.wait(STARTUP_TIMEOUT)

    async def terminate(self) -> int:
        """SIGTERM (graceful: it hands its sessions over first); its exit code."""
        self.signal(signal.SIGTERM)
        assert self.proc is not None
        return await asyncio.to_thread(self.proc.wait, STARTUP_TIMEOUT)

    def ensure_stopped(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGCONT)
        self.proc.kill()
        self.proc.wait()

    def healthz(self) -> dict[str, Any]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=10) as response:
                result: dict[str, Any] = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503 while degraded still has the body
            result = json.loads(exc.read())
        return result

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@contextlib.contextmanager
def nodes_running(root: Path, database_url: str, bus_url: str, count: int) -> Iterator[list[Node]]:
    nodes = [Node(root, f"n{i}", database_url, bus_url) for i in range(count)]
    try:
        yield nodes
    finally:
        for node in nodes:
            node.ensure_stopped()


async def start_all(nodes: list[Node]) -> None:
    for node in nodes:
        node.spawn()
    await asyncio.gather(*(node.started() for node in nodes))


# -- reading the shared database ---------------------------------------------------------------------


def query(database_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()


def holders(database_url: str) -> dict[str, tuple[str, int, str]]:
    """Session name → (holder node name, epoch, session id), for leases held now."""
    rows = query(
        database_url,
        "SELECT s.name, n.name, l.epoch, s.id FROM leases l JOIN sessions s ON s.id = l.session_id "
        "JOIN nodes n ON n.node = l.node WHERE l.expires_at > extract(epoch FROM clock_timestamp())",
    )
    return {r[0]: (r[1], int(r[2]), r[3]) for r in rows}


def deliveries(database_url: str) -> list[dict[str, Any]]:
    """What the simulated WhatsApp accepted from the gateways' sessions, in the order it accepted it."""
    rows = query(
        database_url,
        "SELECT sender, message_id, recipient, text, attempts, node, epoch, accepted FROM deliveries "
        "WHERE node IS NOT NULL ORDER BY accepted",
    )
    keys = ("sender", "message_id", "recipient", "text", "attempts", "node", "epoch", "accepted")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def connection_log(database_url: str) -> list[dict[str, Any]]:
    rows = query(
        database_url,
        "SELECT session_id, node, epoch, outcome, other_node, other_epoch FROM connection_log ORDER BY id",
    )
    keys = ("session_id", "node", "epoch", "outcome", "other_node", "other_epoch")
    return [dict(zip(keys, r, strict=True)) for r in rows]


def assert_no_fight(log: list[dict[str, Any]]) -> None:
    """Two nodes never fought over a device: per device, connects come with non-decreasing lease epochs, none
    was refused (a node that lost the lease connecting again), and each replacement cut off an older epoch."""
    last: dict[str, int] = {}
    for entry in log:
        assert entry["outcome"] != "refused", f"a node connected a device it had lost: {entry}"
        assert entry["epoch"] >= last.get(entry["session_id"], 0), f"an older epoch connected again: {entry}"
        if entry["outcome"] == "replaced":
            assert entry["other_epoch"] < entry["epoch"], entry
        last[entry["session_id"]] = entry["epoch"]


async def eventually(check: Callable[[], bool], what: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        await asyncio.sleep(0.1)


class Traffic:
    """``message.send`` frames with idempotency keys, round-robin over ``sessions``, pipelined on one connection
    (at most ``window`` unanswered). A ``session_unavailable`` reply is retried with the same key (safe: that is
    what the key is for) when ``retry`` is true; ``rate_limited`` is sent again after its ``retry_after``, as a
    well-behaved client does; any other error is recorded as a failure."""

    def __init__(self, client: RawClient, sessions: list[str], *, window: int = 32, retry: bool = True) -> None:
        self.client = client
        self.sessions = sessions
        self.window = window
        self.retry = retry
        self.accepted: dict[str, str] = {}  # idempotency key -> message id
        self.failures: list[dict[str, Any]] = []
        self.retries = 0
        self.rate_limited = 0
        self._unanswered: dict[str, dict[str, Any]] = {}  # request id -> frame
        self._again: list[dict[str, Any]] = []  # frames to send again
        self._waiting_to_retry = 0
        self._changed = asyncio.Event()
        self._stop = False
        self._made = 0
        self._attempts: dict[str, int] = {}

    def _frame(self, index: int) -> dict[str, Any]:
        key = f"k{index:05d}"
        return {
            "type": "message.send",
            "session": self.sessions[index % len(self.sessions)],
            "to": "+" + SILENT[index % len(SILENT)],
            "text": f"traffic {key}",
            "idempotency_key": key,
        }

    def _next(self, total: int | None) -> dict[str, Any] | None:
        if self._again:
            return self._again.pop(0)
        if not self._stop and (total is None or self._made < total):
            self._made += 1
            return self._frame(self._made - 1)
        return None

    def _finished(self, total: int | None) -> bool:
        more = not self._stop and (total is None or self._made < total)
        return not (more or self._unanswered or self._again or self._waiting_to_retry)

    async def _write(self, total: int | None) -> None:
        while not self._finished(total):
            frame = self._next(total) if len(self._unanswered) < self.window else None
            if frame is None:
                self._changed.clear()
                await self._changed.wait()
                continue
            key = frame["idempotency_key"]
            self._attempts[key] = self._attempts.get(key, 0) + 1
            request_id = f"{key}-{self._attempts[key]}"
            self._unanswered[request_id] = frame
            await self.client.send({**frame, "id": request_id})

    async def _retry_later(self, frame: dict[str, Any], delay: float = 0.2) -> None:
        await asyncio.sleep(delay)
        self._again.append(frame)
        self._waiting_to_retry -= 1
        self._changed.set()

    async def _read(self) -> None:
        retrying: set[asyncio.Task[None]] = set()
        while True:
            # Straight from the connection: websockets' recv() is safe to cancel (a wait_for around it, in
            # Python 3.11, may not pass the cancellation on when a frame arrives at the same moment).
            frame = json.loads(await self.client.ws.recv())
            if frame.get("type") != "reply" or frame["id"] not in self._unanswered:
                continue
            sent = self._unanswered.pop(frame["id"])
            if frame["ok"]:
                self.accepted[sent["idempotency_key"]] = frame["data"]["message_id"]
            elif self.retry and frame["error"]["code"] == "session_unavailable":
                self.retries += 1
                self._waiting_to_retry += 1
                task = asyncio.create_task(self._retry_later(sent))
                retrying.add(task)
                task.add_done_callback(retrying.discard)
            elif frame["error"]["code"] == "rate_limited":
                self.rate_limited += 1
                self._waiting_to_retry += 1
                task = asyncio.create_task(self._retry_later(sent, frame["error"]["retry_after"]))
                retrying.add(task)
                task.add_done_callback(retrying.discard)
            else:
                self.failures.append(frame)
            self._changed.set()

    async def run(self, total: int | None = None) -> None:
        """Send ``total`` messages (or until :meth:`stop`) and read every answer, retries included."""
        reader = asyncio.create_task(self._read())
        writer = asyncio.create_task(self._write(total))
        try:
            done, _ = await asyncio.wait({reader, writer}, return_when=asyncio.FIRST_COMPLETED)
            if reader in done:
                reader.result()  # raises what ended it
                raise AssertionError("the connection stopped delivering answers")
            writer.result()
        finally:
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)

    def stop(self) -> None:
        self._stop = True
        self._changed.set()

    async def finish(self, task: asyncio.Task[None], timeout: float, *, stop: bool = True) -> None:
        """Stop sending (unless ``stop`` is false) and wait for every answer; fail saying what is unanswered."""
        if stop:
            self.stop()
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise AssertionError(
                f"unanswered after {timeout:.0f} s: {sorted(self._unanswered)[:10]}; to retry: "
                f"{[f['idempotency_key'] for f in self._again][:10]} (+{self._waiting_to_retry} waiting); "
                f"{self.retries} retries so far"
            )
        task.result()

    @property
    def answered(self) -> int:
        return len(self.accepted) + len(self.failures)
