"""Scenario 5, many connections of one tenant: what a subscription saves.

Three ways to run C connections (default 16), each sending ``message.send`` in a closed loop at W in flight on a
session of its own (every send pushes two ``message.status`` events, ``sent`` and ``delivered``):

- ``tenants`` (the baseline): C tenants with one session and one connection each. A connection gets its own
  session's events only, because they are its tenant's only events.
- ``one-tenant``: one tenant with C sessions and C connections that did not subscribe. Every connection gets
  the events of every session: C times the event frames of the baseline, for the same sends.
- ``one-tenant-subscribed``: the same tenant and connections, each subscribed in its ``auth`` frame to its own
  session (``"sessions":["sNN"]``): the gateway hands each event to one connection, as in the baseline.

All three run in one gateway process (the sessions of the other targets sit idle meanwhile), measured in turn
within each repeat; medians are reported, and each figure as a ratio to the baseline of the same run. Besides
throughput, the gateway process's CPU time per message (user + system, from ``/proc``) is reported: on a shared
machine it drifts much less than throughput does.

    python bench/tenant_fanout.py --connections 16 --in-flight 8 --seconds 3 --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import uvloop

from loadgen import LoadResult, close_all, open_connections, run_load
from procs import (
    SILENT_CONTACT,
    Client,
    Server,
    cpu_seconds,
    create_tokens,
    emit,
    phone,
    start_gateway,
    until_quiet,
)

TEXT = "Olá! Your order #1234 has shipped and will arrive tomorrow."
TENANT = "shop"


def session_of(i: int) -> str:
    return f"s{i:02d}"


@dataclass
class Target:
    tokens: list[str]
    """Connection ``i`` uses token ``i % len(tokens)``."""
    session: Callable[[int], str]
    """The session connection ``i`` sends on."""
    subscribe: bool = False


def make_request(target: Target) -> Callable[[int, str], str]:
    def make(conn: int, request_id: str) -> str:
        return (
            f'{{"type":"message.send","id":"{request_id}","session":"{target.session(conn)}",'
            f'"to":"+{SILENT_CONTACT}","text":"{TEXT}"}}'
        )

    return make


async def pair(server: Server, pairs: list[tuple[str, str, str]]) -> None:
    """Pair each (token, session, phone) and check that a send on it is ``sent``."""
    limit = asyncio.Semaphore(16)

    async def one(token: str, session: str, number: str) -> None:
        async with limit:
            client = await Client.open(server.url, token)
            try:
                await client.pair(session, number)
                sent = await client.call("message.send", session=session, to=f"+{SILENT_CONTACT}", text=TEXT)
                if sent["status"] != "sent":
                    raise RuntimeError(f"a send on a connected session was not 'sent': {sent}")
            finally:
                await client.close()

    await asyncio.gather(*(one(*p) for p in pairs))


async def measure(server: Server, target: Target, connections: int, in_flight: int, seconds: float) -> LoadResult:
    auth = (lambda i: {"sessions": [target.session(i)]}) if target.subscribe else None
    conns = await open_connections(server.url, target.tokens, connections, auth=auth)
    try:
        return await run_load(conns, make_request(target), in_flight=in_flight, seconds=seconds)
    finally:
        await close_all(conns)


def _figures(r: LoadResult) -> dict[str, Any]:
    return {
        "msgs_per_s": r.msgs_per_s,
        "p50_ms": r.p50_ms,
        "p99_ms": r.p99_ms,
        "cpu_us_per_msg": r.extra["cpu_us_per_msg"],
        "completed": r.completed,
        "errors": r.errors,
    }


def _median_of(runs: list[LoadResult]) -> dict[str, Any]:
    figures = [_figures(r) for r in runs]
    keys = ("msgs_per_s", "p50_ms", "p99_ms", "cpu_us_per_msg")
    row: dict[str, Any] = {k: statistics.median(f[k] for f in figures) for k in keys}
    row["runs"] = figures
    row["errors"] = sum(r.errors for r in runs)
    row["first_error"] = next((r.first_error for r in runs if r.first_error), None)
    return row


async def bench(args: argparse.Namespace, server: Server, targets: dict[str, Target]) -> dict[str, Any]:
    c = args.connections
    began = time.perf_counter()
    baseline, shared = targets["tenants"], targets["one-tenant"]
    await pair(
        server,
        [(baseline.tokens[i], baseline.session(i), phone(i)) for i in range(c)]
        + [(shared.tokens[0], shared.session(i), phone(1000 + i)) for i in range(c)],
    )
    print(f"  paired {2 * c} sessions in {time.perf_counter() - began:.1f} s", flush=True)
    runs: dict[str, list[LoadResult]] = {name: [] for name in targets}
    for repeat in range(args.repeats):
        for name, target in targets.items():
            await until_quiet([server.pid])  # the target before goes on working for a while after its load
            cpu = cpu_seconds(server.pid)
            result = await measure(server, target, c, args.in_flight, args.seconds)
            result.extra["cpu_us_per_msg"] = (cpu_seconds(server.pid) - cpu) * 1e6 / max(1, result.completed)
            runs[name].append(result)
            print(
                f"  [{repeat + 1}/{args.repeats}] {name:<22} C={c} W={args.in_flight}: {result.msgs_per_s:8.0f} "
                f"msgs/s  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                f"gateway CPU {result.extra['cpu_us_per_msg']:5.0f} µs/msg  errors {result.errors}",
                flush=True,
            )
    medians = {name: _median_of(r) for name, r in runs.items()}
    base, base_cpu = medians["tenants"]["msgs_per_s"] or float("nan"), medians["tenants"]["cpu_us_per_msg"] or 1.0
    for row in medians.values():
        row["ratio_to_tenants"] = row["msgs_per_s"] / base
        row["cpu_ratio_to_tenants"] = row["cpu_us_per_msg"] / base_cpu
    return {"targets": medians}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    c = args.connections
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        data_dir = Path(tmp) / "gateway"
        tokens = create_tokens(data_dir, [*(f"t{i:04d}" for i in range(c)), TENANT])
        server = start_gateway(data_dir, sqlite_synchronous="normal", max_inflight_commands=max(64, args.in_flight))
        try:
            targets = {
                "tenants": Target(tokens[:c], lambda i: "s"),
                "one-tenant": Target(tokens[c:], session_of),
                "one-tenant-subscribed": Target(tokens[c:], session_of, subscribe=True),
            }
            results = uvloop.run(bench(args, server, targets))
        finally:
            server.stop()
    emit({"scenario": "tenant_fanout", "settings": vars(args), **results}, args.out)


if __name__ == "__main__":
    main()
