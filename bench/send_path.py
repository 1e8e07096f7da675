"""Scenario 1, the send path: ``message.send`` round trips through the gateway vs the ceiling.

Each of C connections is its own tenant with one paired simulator session (so a connection receives its own
session's events only, as a bot would). A request is a ``message.send`` to a simulated contact that exists
and never answers; its reply comes once the message is durably ``sent``: auth'd connection → decode → routing
→ outbox row committed → session sender → simulator engine (latency 0, its own durable delivery record) →
``sent`` committed → reply. Each send also pushes two events to the connection (``sent``, ``delivered``).
The ceiling (``ceiling.py``) answers the same frames with a reply of the same shape.

The same matrix is also run with ``ping`` commands on the gateway (auth'd connection, decode, routing and a
reply, no storage, no engine): that separates the cost of the WebSocket stack from that of the send path.

Closed loop at C x W, then a fixed-rate run (default 1,000 msgs/s over 16 connections) for the latency the
gateway adds; with ``--rate-curve``, more fixed rates for the ceiling and the send path (``CURVE_TARGETS``:
latency and CPU per message against the offered load). Every target is measured in turn within each repeat, and
medians are reported.

    python bench/send_path.py --connections 1,16,256 --in-flight 1,8 --seconds 3 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from loadgen import LoadResult, close_all, open_connections, run_load
from procs import (
    SILENT_CONTACT,
    SILENT_CONTACTS,
    Client,
    Server,
    cpu_seconds,
    create_tokens,
    emit,
    phone,
    start_ceiling,
    start_gateway,
    thread_cpu_seconds,
    until_quiet,
)

SESSION = "s"
TEXT = "Olá! Your order #1234 has shipped and will arrive tomorrow."


_rotation = itertools.cycle(SILENT_CONTACTS)


def make_request(_conn: int, request_id: str) -> str:
    to = next(_rotation)
    return f'{{"type":"message.send","id":"{request_id}","session":"{SESSION}","to":"+{to}","text":"{TEXT}"}}'


def make_ping(_conn: int, request_id: str) -> str:
    return f'{{"type":"ping","id":"{request_id}"}}'


REQUESTS = {"send": make_request, "ping": make_ping}

CURVE_TARGETS = ("ceiling", "gateway-full", "gateway-normal", "gateway-accept")
"""The targets measured at each rate of ``--rate-curve``."""


async def pair_all(server: Server, tokens: list[str]) -> None:
    limit = asyncio.Semaphore(32)

    async def one(i: int, token: str) -> None:
        async with limit:
            client = await Client.open(server.url, token)
            try:
                await client.pair(SESSION, phone(i))
                sent = await client.call("message.send", session=SESSION, to=f"+{SILENT_CONTACT}", text=TEXT)
                if sent["status"] not in ("sent", "queued"):  # queued: a gateway that replies at the accept
                    raise RuntimeError(f"a send on a connected session was not 'sent': {sent}")
            finally:
                await client.close()

    await asyncio.gather(*(one(i, t) for i, t in enumerate(tokens)))


async def measure(
    target: Target, connections: int, in_flight: int, seconds: float, rate: float | None = None
) -> LoadResult:
    conns = await open_connections(target.server.url, target.tokens, connections)
    try:
        pid = target.server.pid
        cpu_before, threads_before = cpu_seconds(pid), thread_cpu_seconds(pid)
        result = await run_load(conns, REQUESTS[target.request], in_flight=in_flight, seconds=seconds, rate=rate)
        # The kernel scales a thread's CPU time and the process's separately (each by its own run time), so the
        # loop's share can come out a fraction of a clock tick above the process's: it is counted as all of it.
        loop = thread_cpu_seconds(pid).get(pid, 0.0) - threads_before.get(pid, 0.0)
        cpu = cpu_seconds(pid) - cpu_before
        loop = min(loop, cpu)
        per_msg = 1e6 / result.replies if result.replies else float("nan")
        result.extra["cpu_us_per_msg"] = cpu * per_msg
        # The process's first thread is the event loop; the rest is the writer threads (and uvloop's resolver).
        result.extra["loop_us_per_msg"] = loop * per_msg
        result.extra["threads_us_per_msg"] = (cpu - loop) * per_msg
        if result.errors and target.server.log is not None:
            # The gateway logs why it answered with an error (the data directory, and the log, go with the run).
            tail = target.server.log.read_text(errors="replace")[-4000:]
            result.extra["server_log_tail"] = tail
            print(f"  {result.errors} error replies; the gateway's log ends with:\n{tail}", flush=True)
        return result
    finally:
        await close_all(conns)


def _median_of(runs: list[LoadResult]) -> dict[str, Any]:
    keys = ("msgs_per_s", "p50_ms", "p99_ms", "p999_ms", "max_ms")
    row: dict[str, Any] = {k: statistics.median(getattr(r, k) for r in runs) for k in keys}
    for key in ("cpu_us_per_msg", "loop_us_per_msg", "threads_us_per_msg"):
        row[key] = statistics.median(r.extra[key] for r in runs)
    row["runs"] = [{k: getattr(r, k) for k in (*keys, "completed", "errors")} for r in runs]
    row["errors"] = sum(r.errors for r in runs)
    row["first_error"] = next((r.first_error for r in runs if r.first_error), None)
    row["server_log_tail"] = next((r.extra["server_log_tail"] for r in runs if "server_log_tail" in r.extra), None)
    return row


@dataclass
class Target:
    server: Server
    tokens: list[str]
    request: str = "send"
    closed_loop: bool = True
    """False: measured only at the fixed rate (a gateway that replies at the durable accept would, in a closed
    loop, accept far faster than it sends and only grow its queue)."""


async def bench(args: argparse.Namespace, targets: dict[str, Target]) -> dict[str, Any]:
    for name, target in targets.items():
        if target.server.kind == "gateway" and target.request == "send":  # "before-*" too
            began = time.perf_counter()
            await pair_all(target.server, target.tokens)
            print(f"  {name}: paired {len(target.tokens)} sessions in {time.perf_counter() - began:.1f} s", flush=True)
    pids = [t.server.pid for t in targets.values()]

    async def measure_quiet(
        target: Target, connections: int, in_flight: int, seconds: float, rate: float | None = None
    ) -> LoadResult:
        # Each target is measured once every process of the run is quiet again (procs.until_quiet).
        waited = await until_quiet(pids)
        if waited > 1.0:
            print(f"  (waited {waited:.1f} s for the processes to go quiet)", flush=True)
        return await measure(target, connections, in_flight, seconds, rate)

    matrix = [(c, w) for c in args.connections for w in args.in_flight]
    closed: dict[str, dict[str, list[LoadResult]]] = {name: {} for name, t in targets.items() if t.closed_loop}
    fixed: dict[str, list[LoadResult]] = {name: [] for name in targets}
    curve: dict[float, dict[str, list[LoadResult]]] = {rate: {} for rate in args.rate_curve}
    for repeat in range(args.repeats):
        for c, w in matrix:
            for name, target in targets.items():
                if not target.closed_loop:
                    continue
                result = await measure_quiet(target, c, w, args.seconds)
                closed[name].setdefault(f"{c}x{w}", []).append(result)
                print(
                    f"  [{repeat + 1}/{args.repeats}] {name:<15} C={c:<4} W={w}: {result.msgs_per_s:9.0f} msgs/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                    f"CPU {result.extra['cpu_us_per_msg']:5.0f} us/msg (loop {result.extra['loop_us_per_msg']:4.0f})  "
                    f"errors {result.errors}",
                    flush=True,
                )
        if args.rate:
            for name, target in targets.items():
                result = await measure_quiet(target, args.rate_connections, 1, args.seconds, rate=args.rate)
                fixed[name].append(result)
                print(
                    f"  [{repeat + 1}/{args.repeats}] {name:<15} {args.rate:.0f}/s over {args.rate_connections}: "
                    f"p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  p99.9 {result.p999_ms:.2f} ms",
                    flush=True,
                )
        for rate in args.rate_curve:
            for name, target in targets.items():
                if name not in CURVE_TARGETS:
                    continue
                result = await measure_quiet(target, args.rate_connections, 1, args.seconds, rate=rate)
                curve[rate].setdefault(name, []).append(result)
                print(
                    f"  [{repeat + 1}/{args.repeats}] {name:<15} {rate:.0f}/s over {args.rate_connections}: "
                    f"p50 {result.p50_ms:.2f} ms  p99 {result.p99_ms:.2f} ms  "
                    f"CPU {result.extra['cpu_us_per_msg']:5.0f} us/msg",
                    flush=True,
                )
    return {
        "closed_loop": {name: {key: _median_of(runs) for key, runs in by.items()} for name, by in closed.items()},
        "fixed_rate": {name: _median_of(runs) for name, runs in fixed.items() if runs},
        "rate_curve": {
            f"{rate:g}": {name: _median_of(runs) for name, runs in by.items()} for rate, by in curve.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ints = lambda s: [int(x) for x in s.split(",")]  # noqa: E731
    floats = lambda s: [float(x) for x in s.split(",") if x]  # noqa: E731
    parser.add_argument("--connections", type=ints, default=[1, 16, 256])
    parser.add_argument("--in-flight", type=ints, default=[1, 8])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000.0, help="fixed-rate latency run (0 to skip)")
    parser.add_argument("--rate-connections", type=int, default=16)
    parser.add_argument(
        "--rate-curve",
        type=floats,
        default=[],
        help="also measure the ceiling and the send path (full, normal, accept) at each of these fixed rates "
        "(e.g. 250,500,750): latency and CPU per message against the offered load",
    )
    parser.add_argument("--sync", default="full,normal", help="sqlite_synchronous modes to run the gateway in")
    parser.add_argument(
        "--ping", action=argparse.BooleanOptionalAction, default=True, help="also measure 'ping' (no storage)"
    )
    parser.add_argument(
        "--compare-src",
        help="also run a gateway from this src directory (e.g. of `git worktree add /tmp/before main`) as the "
        "target 'before-<mode>', for a before/after measured in the same run",
    )
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    tenants = max([*args.connections, args.rate_connections if args.rate else 1])
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        targets: dict[str, Target] = {}
        try:
            # The ceiling accepts any token; each gateway has its own data directory and so its own tokens.
            targets["ceiling"] = Target(start_ceiling(), ["any"])
            for mode in args.sync.split(","):
                data_dir = Path(tmp) / f"gateway-{mode}"
                tokens = create_tokens(data_dir, [f"t{i:04d}" for i in range(tenants)])
                server = start_gateway(
                    data_dir, sqlite_synchronous=mode, max_inflight_commands=max(64, *args.in_flight)
                )
                targets[f"gateway-{mode}"] = Target(server, tokens)
                if args.compare_src is not None:
                    before_dir = Path(tmp) / f"before-{mode}"
                    source = Path(args.compare_src).resolve()
                    before_tokens = create_tokens(before_dir, [f"t{i:04d}" for i in range(tenants)], source)
                    before = start_gateway(
                        before_dir,
                        source=source,
                        sqlite_synchronous=mode,
                        max_inflight_commands=max(64, *args.in_flight),
                    )
                    targets[f"before-{mode}"] = Target(before, before_tokens)
            if args.rate and "full" in args.sync.split(","):
                # The same send path replying at the durable accept (send_wait_s=0): one commit before the reply,
                # `sent` follows as an event.
                data_dir = Path(tmp) / "gateway-accept"
                tokens = create_tokens(data_dir, [f"t{i:04d}" for i in range(tenants)])
                server = start_gateway(
                    data_dir, sqlite_synchronous="full", send_wait_s=0, max_inflight_commands=max(64, *args.in_flight)
                )
                targets["gateway-accept"] = Target(server, tokens, closed_loop=False)
            if args.ping:
                first = next(t for name, t in targets.items() if name.startswith("gateway-"))
                targets["gateway-ping"] = Target(first.server, first.tokens, "ping")
                before = next((t for name, t in targets.items() if name.startswith("before-")), None)
                if before is not None:
                    targets["before-ping"] = Target(before.server, before.tokens, "ping")
            results = uvloop.run(bench(args, targets))
        finally:
            for target in targets.values():
                target.server.stop()
    emit({"scenario": "send_path", "settings": vars(args), **results}, args.out)


if __name__ == "__main__":
    main()
