"""Scenario 3, sessions: gateway RSS per connected simulator session, and the time to restore them at start.

One tenant, one client connection. The script pairs a few sessions to warm the gateway up, reads its RSS,
then pairs sessions (``session.start`` → QR event → ``sim.scan`` → ``connected``) up to each count in turn and
reads the RSS again: cost per session = RSS growth / sessions added. It then sends one message through every
session (each must come back ``sent``), which shows they all work, not just that they exist.

Restore: the gateway is stopped (SIGTERM) and started again on the same data directory. ``listening`` is
when it accepts connections (every stored session loaded and reopened), ``all connected`` when ``/healthz``
counts every session connected again. The baseline is the start of an empty gateway, measured in the same
run. The figures include the simulator engine's own per-session state (a device record and its event pump
task), so they are an upper bound for the gateway's share.

    python bench/sessions.py --counts 100,1000
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

from procs import SILENT_CONTACT, Client, Server, create_tokens, emit, phone, settle_rss, start_gateway

WARMUP = 10


async def pair_range(client: Client, start: int, stop: int, concurrency: int = 50) -> None:
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            await client.pair(f"s{i:05d}", phone(i))

    await asyncio.gather(*(one(i) for i in range(start, stop)))


async def send_through_all(client: Client, count: int, concurrency: int = 100) -> float:
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with limit:
            sent = await client.call("message.send", session=f"s{i:05d}", to=f"+{SILENT_CONTACT}", text="hi")
            if sent["status"] != "sent":
                raise RuntimeError(f"session s{i:05d}: message not sent: {sent}")

    began = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    return time.perf_counter() - began


async def grow(server: Server, token: str, counts: list[int], settle: float) -> dict[str, Any]:
    client = await Client.open(server.url, token)
    try:
        await pair_range(client, 0, WARMUP)
        base = await asyncio.to_thread(settle_rss, server.pid, settle)
        rows = []
        paired = WARMUP
        for count in counts:
            began = time.perf_counter()
            await pair_range(client, paired, count)
            pair_s = time.perf_counter() - began
            rss = await asyncio.to_thread(settle_rss, server.pid, settle)
            health = await asyncio.to_thread(server.healthz)
            connected = health["sessions"].get("connected", 0)
            if connected != count:
                raise RuntimeError(f"{connected} of {count} sessions connected: {health['sessions']}")
            send_s = await send_through_all(client, count)
            row = {
                "sessions": count,
                "rss_kib": rss,
                "per_session_kib": (rss - base) / (count - WARMUP),
                "paired_per_s": (count - paired) / pair_s,
                "send_to_all_s": send_s,
            }
            print(
                f"  {count:>5} connected sessions: RSS {rss / 1024:6.1f} MiB, {row['per_session_kib']:5.1f} KiB each "
                f"(paired {row['paired_per_s']:.0f}/s; one send through each in {send_s:.2f} s)",
                flush=True,
            )
            rows.append(row)
            paired = count
        return {"base_rss_kib": base, "rows": rows}
    finally:
        await client.close()


def wait_connected(server: Server, count: int, timeout: float = 300.0) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.healthz()["sessions"].get("connected", 0) == count:
            return time.perf_counter()
        time.sleep(0.02)
    raise RuntimeError(f"sessions not all connected after {timeout} s: {server.healthz()['sessions']}")


def restore(data_dir: Path, count: int, settings: dict[str, Any]) -> dict[str, Any]:
    began = time.perf_counter()
    server = start_gateway(data_dir, **settings)
    try:
        listening = time.perf_counter()
        connected = wait_connected(server, count)
        return {"listening_s": listening - began, "all_connected_s": connected - began}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=lambda s: [int(x) for x in s.split(",")], default=[100, 1000])
    parser.add_argument("--restores", type=int, default=3, help="restarts to take the median of")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds to let the server settle before RSS")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    counts = sorted(c for c in args.counts if c > WARMUP)
    settings: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        empty = [restore(Path(tmp) / f"empty{i}", 0, settings) for i in range(args.restores)]
        data_dir = Path(tmp) / "gateway"
        (token,) = create_tokens(data_dir, ["acme"])
        server = start_gateway(data_dir, **settings)
        try:
            grown = uvloop.run(grow(server, token, counts, args.settle))
        finally:
            began = time.perf_counter()
            server.stop()
            stop_s = time.perf_counter() - began
        restores = [restore(data_dir, counts[-1], settings) for _ in range(args.restores)]
    result = {
        "scenario": "sessions",
        **grown,
        "stop_s": stop_s,
        "restore": {"sessions": counts[-1], "runs": restores, "empty_runs": empty},
    }
    for r in restores:
        print(
            f"  restore {counts[-1]} sessions: listening after {r['listening_s']:.2f} s, "
            f"all connected after {r['all_connected_s']:.2f} s",
            flush=True,
        )
    print(f"  empty gateway: listening after {min(e['listening_s'] for e in empty):.2f} s", flush=True)
    emit(result, args.out)


if __name__ == "__main__":
    main()
