"""Two costs under a group commit, measured alone: a round trip from the event loop to a connection's thread, and
one ``fdatasync`` on the data directory's disk.

1. Round trip: the event loop hands a function that does nothing to a thread and awaits its result, N times in a
   row, with ``loop.run_in_executor`` on a one-thread ``ThreadPoolExecutor`` (what zapgate's storage used until
   round 6 of issue 16) and with :class:`zapgate.storage.threads.ConnectionThread` (what it uses now). The figure is
   the process's CPU time per round trip (both threads), under uvloop as the gateway runs.
2. ``fdatasync``: a page written in place and made durable, at a fixed rate, as SQLite's WAL commits do; the
   latency distribution shows whether the disk itself stalls.

    .venv/bin/python bench/thread_hop.py --hops 20000 --syncs 3000 --sync-rate 500 --dir zapgate-data
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvloop

from loadgen import percentile
from procs import emit
from zapgate.storage.threads import ConnectionThread


def _nothing() -> int:
    return 1


async def _per_hop(hop: Callable[[], Awaitable[Any]], count: int) -> dict[str, float]:
    for _ in range(min(1000, count)):  # warm-up
        await hop()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(count):
        await hop()
    return {
        "cpu_us": 1e6 * (time.process_time() - cpu) / count,
        "wall_us": 1e6 * (time.perf_counter() - wall) / count,
    }


async def hops(count: int) -> dict[str, dict[str, float]]:
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1, thread_name_prefix="bench-pool")
    thread = ConnectionThread("bench-thread")
    try:
        return {
            "run_in_executor": await _per_hop(lambda: loop.run_in_executor(pool, _nothing), count),
            "ConnectionThread": await _per_hop(lambda: thread.run(_nothing), count),
        }
    finally:
        pool.shutdown()
        thread.stop()


def syncs(directory: str, count: int, rate: float) -> dict[str, float]:
    with tempfile.NamedTemporaryFile(dir=directory, prefix="fsync-probe-") as probe:
        page = os.urandom(4096)
        latencies: list[float] = []
        due = time.perf_counter()
        for i in range(count):
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            due += 1 / rate
            began = time.perf_counter()
            os.pwrite(probe.fileno(), page, (i % 256) * 4096)
            os.fdatasync(probe.fileno())
            latencies.append(1e3 * (time.perf_counter() - began))
    latencies.sort()
    return {
        "p50_ms": percentile(latencies, 0.5),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "max_ms": latencies[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hops", type=int, default=20000)
    parser.add_argument("--syncs", type=int, default=3000)
    parser.add_argument("--sync-rate", type=float, default=500.0)
    parser.add_argument("--dir", default=".", help="a directory on the disk to probe (default: here)")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    result: dict[str, Any] = {"scenario": "thread_hop", "settings": vars(args), "hops": uvloop.run(hops(args.hops))}
    for name, row in result["hops"].items():
        print(f"  {name:<17} {row['cpu_us']:6.1f} us CPU, {row['wall_us']:6.1f} us wall per round trip", flush=True)
    if args.syncs:
        os.makedirs(args.dir, exist_ok=True)
        result["fdatasync"] = row = syncs(args.dir, args.syncs, args.sync_rate)
        print(
            f"  fdatasync at {args.sync_rate:.0f}/s: p50 {row['p50_ms']:.2f} ms  p99 {row['p99_ms']:.2f} ms  "
            f"p99.9 {row['p999_ms']:.2f} ms  max {row['max_ms']:.2f} ms",
            flush=True,
        )
    emit(result, args.out)


if __name__ == "__main__":
    main()
