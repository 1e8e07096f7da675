"""Several nodes (docs/scaling.md): what forwarding costs, how fast events fan out, how long a fail-over takes.

Every node is ``zapgate serve --engine simulator`` in its own process, on a fresh PostgreSQL schema, with Redis
(or PostgreSQL LISTEN/NOTIFY) as the bus; the load generator (``loadgen.py``) is another process.

- ``latency``: one session, run by node B. The same closed loop (C connections, W commands in flight) runs
  against B itself (local) and against node A (every command forwarded to B), alternating, and the percentiles
  are compared: what forwarding adds. ``session.get`` isolates the forwarding (no storage); ``message.send`` is
  the durable path. Run once per bus (Redis, PostgreSQL NOTIFY): the figures behind the choice of bus.
- ``fanout``: six sessions spread over three nodes, one subscriber connection per node; producers send through
  every session; each subscriber must get every event of the tenant in ``seq`` order without gap. Events/s
  per subscriber, set against the same load on one node.
- ``failover``: three nodes with the default leases (10 s, renewed every 2 s); a node running sessions is
  killed with SIGKILL, and the time until each of its sessions is ``connected`` on another node is measured
  from a subscriber on a surviving node; the node is restarted and the cluster rebalanced; repeated.

    python bench/cluster.py --figures latency,fanout,failover --kills 20 --out /tmp/cluster.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import uvloop

from loadgen import close_all, open_connections, percentile, run_load
from procs import SILENT_CONTACT, Client, Server, emit, phone, start_gateway

POSTGRES = os.environ.get("ZAPGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
REDIS = os.environ.get("ZAPGATE_TEST_REDIS", "redis://127.0.0.1:6379/0")
TEXT = "Olá! Your order #1234 has shipped and will arrive tomorrow."


@contextlib.contextmanager
def fresh_schema() -> Iterator[str]:
    schema = f"zb_{secrets.token_hex(5)}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def start_nodes(root: Path, url: str, bus: str, count: int, **settings: Any) -> list[Server]:
    return [
        start_gateway(root / f"n{i}", database_url=url, bus_url=bus, node_name=f"n{i}", **settings)
        for i in range(count)
    ]


def stop_all(nodes: list[Server]) -> None:
    for node in nodes:
        node.stop()


async def make_token(url: str) -> str:
    from zapgate.auth import TokenIssuer
    from zapgate.storage import open_storage

    storage = open_storage(url)
    await storage.open()
    try:
        _, token = await TokenIssuer(storage).create("acme", "bench")
        return str(token)
    finally:
        await storage.close()


def holders(url: str) -> dict[str, str]:
    """Session name → name of the node holding its lease now."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT s.name, n.name FROM leases l JOIN sessions s ON s.id = l.session_id "
            "JOIN nodes n ON n.node = l.node WHERE l.expires_at > extract(epoch FROM clock_timestamp())"
        ).fetchall()
    return {r[0]: r[1] for r in rows}


async def until(check: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def pair_spread(nodes: list[Server], url: str, token: str, sessions: int) -> None:
    client = await Client.open(nodes[0].url, token)
    try:
        for i in range(sessions):
            await client.pair(f"s{i}", phone(i))
    finally:
        await client.close()
    share = -(-sessions // len(nodes))

    def even() -> bool:
        held = holders(url)
        counts = [sum(1 for n in held.values() if n == f"n{i}") for i in range(len(nodes))]
        return len(held) == sessions and max(counts) <= share

    await until(even, "the sessions to spread")


# -- latency ------------------------------------------------------------------------------------------------


def request_maker(command: str, session: str) -> Any:
    if command == "get":
        return lambda _c, rid: f'{{"type":"session.get","id":"{rid}","session":"{session}"}}'
    return lambda _c, rid: (
        f'{{"type":"message.send","id":"{rid}","session":"{session}","to":"+{SILENT_CONTACT}","text":"{TEXT}"}}'
    )


async def latency(root: Path, bus_name: str, args: argparse.Namespace) -> dict[str, Any]:
    bus = REDIS if bus_name == "redis" else ""
    with fresh_schema() as url:
        nodes = start_nodes(root / bus_name, url, bus, 2)
        try:
            token = await make_token(url)
            await pair_spread(nodes, url, token, 2)
            session = next(name for name, node in holders(url).items() if node == "n1")
            owner, other = nodes[1], nodes[0]
            out: dict[str, Any] = {"bus": bus_name, "connections": args.connections, "in_flight": args.in_flight}
            for command in ("get", "send"):
                make = request_maker(command, session)
                runs: dict[str, list[Any]] = {"local": [], "forwarded": []}
                for _ in range(args.repeats):
                    for label, target in (("local", owner), ("forwarded", other)):
                        conns = await open_connections(target.url, [token], args.connections)
                        try:
                            runs[label].append(
                                await run_load(conns, make, in_flight=args.in_flight, seconds=args.seconds)
                            )
                        finally:
                            await close_all(conns)
                summary = {}
                for label, results in runs.items():
                    summary[label] = {
                        "msgs_per_s": statistics.median(r.msgs_per_s for r in results),
                        "p50_ms": statistics.median(r.p50_ms for r in results),
                        "p99_ms": statistics.median(r.p99_ms for r in results),
                        "errors": sum(r.errors for r in results),
                    }
                summary["added_p50_ms"] = summary["forwarded"]["p50_ms"] - summary["local"]["p50_ms"]
                summary["added_p99_ms"] = summary["forwarded"]["p99_ms"] - summary["local"]["p99_ms"]
                out[command] = summary
            return out
        finally:
            stop_all(nodes)


# -- fan-out ------------------------------------------------------------------------------------------------


class Subscriber:
    """Counts the tenant's events on one connection and checks they come in order without gap."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.seqs: list[int] = []
        self.first_at = 0.0
        self.last_at = 0.0
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.client.ws:
            frame = json.loads(raw)
            if frame.get("type") == "event":
                now = time.perf_counter()
                self.first_at = self.first_at or now
                self.last_at = now
                self.seqs.append(frame["seq"])

    def in_order(self) -> bool:
        return self.seqs == list(range(self.seqs[0], self.seqs[0] + len(self.seqs))) if self.seqs else True


async def fanout_once(root: Path, nodes_count: int, args: argparse.Namespace) -> dict[str, Any]:
    with fresh_schema() as url:
        nodes = start_nodes(root / f"fanout{nodes_count}", url, REDIS, nodes_count)
        try:
            token = await make_token(url)
            sessions = 6
            await pair_spread(nodes, url, token, sessions)
            subs = []
            for node in nodes:
                client = await Client.open(node.url, token)
                if client.reader is not None:
                    client.reader.cancel()
                subs.append(Subscriber(client))
            producers = await open_connections(nodes[0].url, [token], sessions)

            def make(conn: int, rid: str) -> str:
                return request_maker("send", f"s{conn % sessions}")(conn, rid)

            began = time.perf_counter()
            load = await run_load(producers, make, in_flight=args.in_flight, seconds=args.seconds, warmup=0.0)
            await close_all(producers)
            with psycopg.connect(url, autocommit=True) as conn:
                (newest,) = conn.execute("SELECT seq FROM tenant_seq WHERE tenant = 'acme'").fetchone()
            await until(lambda: all(s.seqs and s.seqs[-1] >= newest for s in subs), "every event at every node", 120)
            result = {
                "nodes": nodes_count,
                "sends_per_s": load.msgs_per_s,
                "errors": load.errors,
                "events": newest,
                "subscribers": [
                    {
                        "node": f"n{i}",
                        "events": len(s.seqs),
                        "events_per_s": len(s.seqs) / max(1e-9, s.last_at - began),
                        "in_order_without_gap": s.in_order(),
                    }
                    for i, s in enumerate(subs)
                ],
            }
            for sub in subs:
                sub.task.cancel()
                await sub.client.ws.close()
            return result
        finally:
            stop_all(nodes)


# -- fail-over ----------------------------------------------------------------------------------------------


def health(node: Server) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{node.port}/healthz", timeout=10) as response:
        return dict(json.loads(response.read()))


async def failover(root: Path, args: argparse.Namespace) -> dict[str, Any]:
    sessions = 6
    with fresh_schema() as url:
        nodes = start_nodes(root / "failover", url, REDIS, 3)
        try:
            token = await make_token(url)
            await pair_spread(nodes, url, token, sessions)
            times: list[float] = []
            per_session: list[float] = []
            for kill in range(args.kills):
                held = holders(url)
                victim_index = kill % len(nodes)
                victim = nodes[victim_index]
                moved = [s for s, n in held.items() if n == f"n{victim_index}"]
                watcher_node = nodes[(victim_index + 1) % len(nodes)]
                watcher = await Client.open(watcher_node.url, token)
                connected: dict[str, float] = {}
                waits = {s: watcher.wait_event(_connected(s)) for s in moved}
                killed_at = time.perf_counter()
                victim.proc.kill()
                victim.proc.wait()
                for s, fut in waits.items():
                    await asyncio.wait_for(fut, 120)
                    connected[s] = time.perf_counter() - killed_at
                await watcher.close()
                if connected:
                    times.append(max(connected.values()))
                    per_session.extend(connected.values())
                print(f"kill {kill + 1}: {len(moved)} sessions back in {max(connected.values(), default=0):.2f} s")
                nodes[victim_index] = start_gateway(
                    victim.data_dir or root, database_url=url, bus_url=REDIS, node_name=f"n{victim_index}"
                )
                await pair_settled(nodes, url, sessions)
            ordered = sorted(times)
            return {
                "kills": args.kills,
                "sessions": sessions,
                "lease_ttl_s": 10.0,
                "lease_renew_s": 2.0,
                "node_back_s": {
                    "min": ordered[0],
                    "p50": percentile(ordered, 0.5),
                    "p90": percentile(ordered, 0.9),
                    "max": ordered[-1],
                    "mean": statistics.fmean(ordered),
                },
                "all": times,
                "per_session_p50": percentile(sorted(per_session), 0.5),
            }
        finally:
            stop_all(nodes)


def _connected(session: str) -> Any:
    return lambda f: f.event == "session.status" and f.session == session and f.data["status"] == "connected"


async def pair_settled(nodes: list[Server], url: str, sessions: int) -> None:
    """Wait until the restarted node took its share back (the cluster is as before the kill)."""

    def even() -> bool:
        held = holders(url)
        counts = [sum(1 for n in held.values() if n == f"n{i}") for i in range(len(nodes))]
        return len(held) == sessions and counts == [sessions // len(nodes)] * len(nodes)

    await until(even, "the cluster to rebalance", 120)
    await asyncio.sleep(2.0)  # let the moved sessions connect


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figures", default="latency,fanout,failover")
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--out")
    args = parser.parse_args()
    figures = set(args.figures.split(","))
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zapgate-cluster-") as scratch:
        root = Path(scratch)
        if "latency" in figures:
            result["latency"] = [await latency(root, bus, args) for bus in ("redis", "postgresql")]
        if "fanout" in figures:
            result["fanout"] = [await fanout_once(root, n, args) for n in (1, 3)]
        if "failover" in figures:
            result["failover"] = await failover(root, args)
    emit(result, args.out)


if __name__ == "__main__":
    uvloop.run(main())
