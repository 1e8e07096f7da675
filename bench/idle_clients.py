"""Scenario 2, idle clients: server RSS per authenticated, idle WebSocket connection, gateway vs ceiling.

For each server (the gateway with the simulator engine, the bare ``websockets`` ceiling, and uvicorn's floor:
the same handshake as a bare ASGI app under uvicorn with the gateway's settings) the script warms
it up with a few connections, closes them, reads its RSS, then opens connections up to each count in turn
(authenticated: ``hello`` → ``auth`` → ``ready``, spread over 100 tenants on the gateway), lets the server
settle and reads its RSS again. Cost per connection = RSS growth / connections. The gateway's ``/healthz``
must report every connection as subscribed, which proves they are authenticated. With ``--compare-src DIR`` a
second gateway, run from another source tree, is measured in the same run as ``before``.

    python bench/idle_clients.py --counts 1000,10000 [--compare-src /tmp/before/src]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop
from websockets.asyncio.client import ClientConnection

from loadgen import close_all, open_connections
from procs import (
    Server,
    create_tokens,
    emit,
    raise_fd_limit,
    settle_rss,
    start_ceiling,
    start_gateway,
    start_uvicorn_floor,
)

TENANTS = 100
WARMUP = 50


async def measure(server: Server, label: str, tokens: list[str], counts: list[int], settle: float) -> dict[str, Any]:
    warm = await open_connections(server.url, tokens, min(WARMUP, max(counts)))
    await close_all(warm)
    await asyncio.sleep(0.5)
    base = await asyncio.to_thread(settle_rss, server.pid, settle)
    held: list[ClientConnection] = []
    rows = []
    try:
        for count in counts:
            began = time.perf_counter()
            held += await open_connections(server.url, tokens, count - len(held), concurrency=200)
            opened_s = time.perf_counter() - began
            rss = await asyncio.to_thread(settle_rss, server.pid, settle)
            row: dict[str, Any] = {
                "connections": count,
                "rss_kib": rss,
                "per_connection_kib": (rss - base) / count,
                "open_per_s": (count - (rows[-1]["connections"] if rows else 0)) / opened_s,
            }
            if server.kind == "gateway":
                health = await asyncio.to_thread(server.healthz)
                row["subscribed"] = health["connections"]
                if health["connections"] != count:
                    raise RuntimeError(f"gateway reports {health['connections']} connections, expected {count}")
            print(
                f"  {label:<8} {count:>6} idle connections: RSS {rss / 1024:7.1f} MiB, "
                f"{row['per_connection_kib']:5.1f} KiB each (opened {row['open_per_s']:.0f}/s)",
                flush=True,
            )
            rows.append(row)
    finally:
        await close_all(held)
    return {"base_rss_kib": base, "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")], default=[1000, 10000])
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to let the server settle before RSS")
    parser.add_argument(
        "--compare-src",
        help="also measure a gateway run from this src directory (e.g. of `git worktree add /tmp/before main`) as "
        "'before', for a before/after measured in the same run",
    )
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    needed = max(args.counts) + WARMUP + 200
    # Client and server are separate processes, each with one descriptor per connection; children inherit it.
    limit = raise_fd_limit(needed + 1000)
    if limit < needed:
        parser.exit(2, f"open-file limit is {limit}, below the {needed} needed; raise the hard limit (ulimit -Hn)\n")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        data_dir = Path(tmp) / "gateway"
        tokens = create_tokens(data_dir, [f"t{i:03d}" for i in range(TENANTS)])
        starts = {
            "ceiling": (start_ceiling, tokens),
            "uvicorn": (start_uvicorn_floor, tokens),
            "gateway": (lambda: start_gateway(data_dir), tokens),
        }
        if args.compare_src is not None:
            source = Path(args.compare_src).resolve()
            before_dir = Path(tmp) / "before"
            before_tokens = create_tokens(before_dir, [f"t{i:03d}" for i in range(TENANTS)], source)
            starts["before"] = (lambda: start_gateway(before_dir, source=source), before_tokens)
        for kind, (start, kind_tokens) in starts.items():
            server = start()
            try:
                results[kind] = uvloop.run(measure(server, kind, kind_tokens, sorted(args.counts), args.settle))
            finally:
                server.stop()
    emit({"scenario": "idle_clients", "fd_limit": limit, **results}, args.out)


if __name__ == "__main__":
    main()
