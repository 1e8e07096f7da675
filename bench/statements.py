"""Where a gateway's SQL goes: the CPU of each statement per message, by thread, next to each thread's whole CPU.

The gateway runs with ``bench/statement_probe`` first on its ``PYTHONPATH``: a ``sitecustomize`` that times every
``execute`` and ``executemany`` of Python's ``sqlite3`` with the calling thread's CPU clock, only while the
measured load runs. Two loads:

- ``send``: C connections, each its own tenant and session, W ``message.send`` in flight each, for a few seconds
  (``bench/send_path.py``'s closed loop, durable, simulator latency 0);
- ``burst``: ``bench/inbound.py``'s burst (S sessions receive N messages kept as mail, handed over at once).

The probe's own cost (a Python call and two clock reads per statement, about 1 to 2 µs) is inside the figures, and
the run is slower than the benchmark's: the table shows where the SQL time goes, not the gateway's speed.

    python bench/statements.py send --connections 16 --in-flight 8 --seconds 5
    python bench/statements.py burst --sessions 100 --messages 50000
"""

from __future__ import annotations

import argparse
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import uvloop

import inbound
import send_path
from loadgen import close_all, open_connections, run_load
from procs import BENCH, Server, cpu_seconds, create_tokens, emit, start_gateway, thread_cpu_seconds

PROBE = BENCH / "statement_probe"
TOP = 25
"""Statements listed (the most costly first); the totals count them all."""


def _gateway(data_dir: Path, out: Path, **settings: Any) -> Server:
    """A gateway with the probe loaded (only it: the variables go to its environment, not to this process's)."""
    paths = (str(PROBE), os.environ.get("PYTHONPATH", ""))
    probe_env = {"PYTHONPATH": os.pathsep.join(p for p in paths if p), "BENCH_STATEMENTS_OUT": str(out)}
    return start_gateway(data_dir, extra_env=probe_env, **settings)


class _Window:
    """The measured window: the probe counts between two ``SIGUSR2``; the threads' CPU is read at both ends."""

    def __init__(self, server: Server, out: Path) -> None:
        self.server, self.out = server, out
        self.threads: dict[int, float] = {}  # CPU seconds by thread id: at the start, then over the window
        self.cpu = 0.0  # the process's CPU seconds: at the start, then over the window

    def __call__(self, starting: bool) -> None:
        pid = self.server.pid
        if starting:
            self.threads = thread_cpu_seconds(pid)
            self.cpu = cpu_seconds(pid)
            os.kill(pid, signal.SIGUSR2)
            return
        os.kill(pid, signal.SIGUSR2)
        after = thread_cpu_seconds(pid)
        self.threads = {tid: after[tid] - self.threads.get(tid, 0.0) for tid in after}
        self.cpu = cpu_seconds(pid) - self.cpu
        for _ in range(100):  # the probe writes its file from the gateway's main thread, at its next turn
            if self.out.exists():
                return
            time.sleep(0.05)
        raise RuntimeError("the gateway's statement probe wrote nothing (was it loaded?)")


def _report(window: _Window, units: int, unit: str) -> dict[str, Any]:
    probe = msgspec.json.decode(window.out.read_bytes())
    per = 1e6 / units
    threads: dict[str, dict[str, Any]] = {}
    for name, tid in probe["threads"].items():
        threads[name] = {"cpu_us": window.threads.get(tid, 0.0) * per, "sql_us": 0.0}
    if window.server.pid not in probe["threads"].values():  # the event loop ran no statement in the window
        threads["MainThread"] = {"cpu_us": window.threads.get(window.server.pid, 0.0) * per, "sql_us": 0.0}
    statements = []
    for thread, sql, calls, rows, spent in probe["statements"]:
        threads[thread]["sql_us"] += spent * per
        statements.append({"thread": thread, "sql": sql, "calls": calls, "rows": rows, "cpu_us": spent * per})
    statements.sort(key=lambda s: -s["cpu_us"])
    sql_us = sum(t["sql_us"] for t in threads.values())
    print(f"  {units} {unit}s: gateway CPU {window.cpu * per:.0f} us/{unit}, of it in SQLite calls {sql_us:.0f}")
    for name, t in sorted(threads.items()):
        print(f"    {name:<20} thread CPU {t['cpu_us']:6.1f} us/{unit}, SQL {t['sql_us']:6.1f}")
    for s in statements[:TOP]:
        where = f"{s['calls']:7d} calls {s['rows']:7d} rows  {s['thread']:<18}"
        print(f"    {s['cpu_us']:6.2f} us  {where} {s['sql'][:90]}")
    return {
        unit + "s": units,
        f"cpu_us_per_{unit}": window.cpu * per,
        f"sql_us_per_{unit}": sql_us,
        "threads": threads,
        "statements": statements,
    }


async def _send(args: argparse.Namespace, server: Server, tokens: list[str], window: _Window) -> int:
    await send_path.pair_all(server, tokens)
    conns = await open_connections(server.url, tokens, args.connections)
    try:
        await run_load(conns, send_path.make_request, in_flight=args.in_flight, seconds=1.0)  # warm up
        window(True)
        result = await run_load(conns, send_path.make_request, in_flight=args.in_flight, seconds=args.seconds)
        window(False)
        if result.errors:
            raise RuntimeError(f"{result.errors} sends failed: {result.first_error}")
        return result.replies
    finally:
        await close_all(conns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("load", choices=["send", "burst"])
    parser.add_argument("--connections", type=int, default=16, help="send: connections (tenants)")
    parser.add_argument("--in-flight", type=int, default=8, help="send: requests in flight per connection")
    parser.add_argument("--seconds", type=float, default=5.0, help="send: how long the measured load runs")
    parser.add_argument("--sessions", type=int, default=100, help="burst: sessions")
    parser.add_argument("--messages", type=int, default=50_000, help="burst: messages")
    parser.add_argument("--sync", default="full", help="sqlite_synchronous of the gateway")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        data_dir, out = Path(tmp) / "gateway", Path(tmp) / "statements.json"
        measure: Callable[[Server, _Window], Any]
        if args.load == "send":
            tokens = create_tokens(data_dir, [f"t{i:04d}" for i in range(args.connections)])
            server = _gateway(data_dir, out, sqlite_synchronous=args.sync)
            measure = lambda server, window: _send(args, server, tokens, window)  # noqa: E731
            unit = "message"
        else:
            token, other = create_tokens(data_dir, ["burst", "other"])
            server = _gateway(data_dir, out, sqlite_synchronous=args.sync, max_inflight_commands=128)
            burst_args = argparse.Namespace(
                sessions=args.sessions, messages=args.messages, ping_rate=50.0, quiet=0.5, ping_seconds=1.0,
                timeout=600.0,
            )
            measure = lambda server, window: inbound.burst(  # noqa: E731
                server, token, other, burst_args, Path(tmp), on_burst=window
            )
            unit = "event"
        try:
            window = _Window(server, out)
            outcome = uvloop.run(measure(server, window))
            units = outcome if isinstance(outcome, int) else int(outcome["messages"])
            result = _report(window, units, unit)
        finally:
            server.stop()
    emit({"scenario": "statements", "settings": vars(args), **result}, args.out)


if __name__ == "__main__":
    main()
