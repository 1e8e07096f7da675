"""Scenario 4, the real engine's cost: RSS of a neonize engine worker holding 1 and N sessions, offline.

The worker is started exactly as the gateway's supervisor starts it (``python -m
zapgate.engines.whatsapp.worker --fd N --config JSON`` over a Unix socket pair) and driven over the same
channel. Each session is a new pairing (``open`` with no device): the worker creates a whatsmeow client through
neonize and tries to connect, through a proxy address on 127.0.0.1 where nothing listens (so it fails on any
machine and never reaches WhatsApp), and the worker keeps retrying with backoff. RSS is read after ``Hello``
(neonize loaded, no session: the baseline), after the first session, and after N. Cost per session =
(RSS at N - RSS at 1) / (N - 1).

What this cannot show offline: a paired, connected session holds Signal sessions, app state and caches that
only exist after talking to WhatsApp, so the real per-session cost is higher (published whatsmeow figures
are in docs/performance.md).

    python bench/engine_worker.py --sessions 1,50
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from procs import emit, settle_rss
from zapgate.config import Settings
from zapgate.engines.whatsapp import ipc
from zapgate.engines.whatsapp.supervisor import worker_environment


async def run(counts: list[int], settle_s: float, data_dir: Path) -> dict[str, Any]:
    config = ipc.WorkerConfig(
        worker_id=1,
        data_dir=str(data_dir),
        max_sessions=max(counts),
        connect_attempts=1000,  # keep every session alive and retrying for the whole measurement
        connect_backoff_s=1.0,
        failed_retry_s=60.0,
        log_level="warning",
    )
    ours, theirs = socket.socketpair()
    dead = socket.socket()  # bound, never listening: connects to it are refused
    dead.bind(("127.0.0.1", 0))
    settings = Settings(engine="whatsapp", wa_proxy=f"http://127.0.0.1:{dead.getsockname()[1]}")
    log = (data_dir / "worker.log").open("wb")
    began = time.perf_counter()
    command = [sys.executable, "-m", "zapgate.engines.whatsapp.worker", "--fd", str(theirs.fileno())]
    proc = subprocess.Popen(
        [*command, "--config", msgspec.json.encode(config).decode()],
        pass_fds=(theirs.fileno(),),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,  # neonize prints there
        stderr=log,
        env=worker_environment(os.environ, settings),  # as the supervisor starts it
    )
    theirs.close()
    channel = await ipc.Channel.over_socket(ours)
    events: collections.Counter[str] = collections.Counter()
    replies: dict[int, asyncio.Future[ipc.Reply]] = {}
    hello: asyncio.Future[ipc.Hello] = asyncio.get_running_loop().create_future()

    async def read() -> None:
        while True:
            message = await channel.receive()
            if isinstance(message, ipc.Hello):
                hello.set_result(message)
            elif isinstance(message, ipc.Reply) and message.id in replies:
                replies.pop(message.id).set_result(message)
            elif isinstance(message, ipc.SessionEvent):
                reason = getattr(message.event, "reason", None)
                events[type(message.event).__name__ + (f"({reason})" if reason else "")] += 1

    reader = asyncio.create_task(read())
    try:
        said = await asyncio.wait_for(hello, 60)
        started_s = time.perf_counter() - began
        base = await asyncio.to_thread(settle_rss, proc.pid, settle_s)
        rows = []
        opened = 0
        for count in counts:
            for i in range(opened, count):
                future: asyncio.Future[ipc.Reply] = asyncio.get_running_loop().create_future()
                replies[i] = future
                channel.send(ipc.OpenSession(id=i, session_id=f"ses_bench{i:05d}"))
                reply = await asyncio.wait_for(future, 60)
                if not reply.ok:
                    raise RuntimeError(f"open failed: {reply.error_code}: {reply.error_message}")
            opened = count
            rss = await asyncio.to_thread(settle_rss, proc.pid, settle_s)
            threads = len(list(Path(f"/proc/{proc.pid}/task").iterdir()))
            fds = len(list(Path(f"/proc/{proc.pid}/fd").iterdir()))
            rows.append({"sessions": count, "rss_kib": rss, "threads": threads, "fds": fds, "events": dict(events)})
            print(
                f"  engine worker with {count:>3} offline sessions: RSS {rss / 1024:6.1f} MiB, {threads} threads, "
                f"{fds} fds (events so far: {dict(events)})",
                flush=True,
            )
        first, last = rows[0], rows[-1]
        per_session = (last["rss_kib"] - first["rss_kib"]) / max(1, last["sessions"] - first["sessions"])
        shutdown = ipc.Shutdown(id=-1)
        replies[-1] = asyncio.get_running_loop().create_future()
        channel.send(shutdown)
        await asyncio.wait_for(replies[-1], 10)
        return {
            "neonize": said.neonize_version,
            "start_s": started_s,
            "base_rss_kib": base,
            "rows": rows,
            "per_session_kib": per_session,
            "first_session_kib": first["rss_kib"] - base,
        }
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await channel.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        dead.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=lambda s: [int(x) for x in s.split(",")], default=[1, 50])
    parser.add_argument("--settle", type=float, default=3.0, help="seconds to let the worker settle before RSS")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        result = asyncio.run(run(sorted(args.sessions), args.settle, Path(tmp)))
    print(
        f"  per session: {result['per_session_kib']:.0f} KiB (first session {result['first_session_kib']:.0f} KiB, "
        f"worker with neonize loaded {result['base_rss_kib'] / 1024:.1f} MiB)",
        flush=True,
    )
    emit({"scenario": "engine_worker", **result}, args.out)


if __name__ == "__main__":
    main()
