"""Several gateway nodes on one PostgreSQL database and one bus, in this process (docs/scaling.md).

Each node is a real gateway under uvicorn on its own port; they share a fresh PostgreSQL schema, the simulated
WhatsApp in it, and Redis (or PostgreSQL LISTEN/NOTIFY) as their bus. Clients speak raw JSON frames to whichever
node they like. The subprocess tests (kill -9, SIGSTOP, drain) are in ``test_cluster_nodes.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from zapgate.config import Settings

from .conftest import fast_settings
from .services import REDIS_URL, postgres_schema, require
from .support import TIMEOUT, RawClient, RunningGateway, serve_gateway

PHONES = [f"55119{i:08d}" for i in range(1, 7)]
SILENT = "5521977770000"
"""A contact that exists on the simulated network and never answers."""


def node_settings(data_dir: Path, url: str, name: str, bus: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "bus_url": bus,
        "node_name": name,
        "lease_ttl_s": 6.0,
        "lease_renew_s": 0.5,
        "sim_contacts": (SILENT,),
    }
    values.update(overrides)
    return fast_settings(data_dir / name, **values)


@contextlib.asynccontextmanager
async def cluster(tmp_path: Path, nodes: int, bus: str, **overrides: Any) -> AsyncIterator[list[RunningGateway]]:
    for url in postgres_schema():
        async with contextlib.AsyncExitStack() as stack:
            running = [
                await stack.enter_async_context(serve_gateway(node_settings(tmp_path, url, f"n{i}", bus, **overrides)))
                for i in range(nodes)
            ]
            yield running


@pytest.fixture(params=["redis", "postgresql"])
def bus(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require("redis")
        return REDIS_URL
    return ""  # LISTEN/NOTIFY on the database itself


async def until(check: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check() if asyncio.iscoroutinefunction(check) else not check():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def runs(node: RunningGateway) -> set[str]:
    """Names of the sessions a node runs now."""
    return {s.name for s in node.gateway.sessions.all()}


def owner(nodes: list[RunningGateway], session: str) -> RunningGateway:
    found = [n for n in nodes if session in runs(n)]
    assert len(found) == 1, f"{session} runs on {len(found)} nodes"
    return found[0]


async def spread(nodes: list[RunningGateway], sessions: int) -> None:
    """Wait until every session runs on exactly one node, the nodes share them evenly, and every session is
    connected again (a session a node has just taken over starts its engine anew; a send before that is queued)."""
    share = -(-sessions // len(nodes))

    def even() -> bool:
        counts = [len(runs(n)) for n in nodes]
        connected = all(s.state.status.wire == "connected" for n in nodes for s in n.gateway.sessions.all())
        return (
            sum(counts) == sessions
            and max(counts) <= share
            and len(set().union(*map(runs, nodes))) == sessions
            and connected
        )

    await until(even, "sessions to spread evenly", TIMEOUT * 3)


async def test_sessions_spread_and_any_node_serves_any_session(tmp_path: Path, bus: str) -> None:
    async with cluster(tmp_path, 3, bus) as nodes:
        token = await nodes[0].token()
        a = await RawClient.open(nodes[0].url)
        await a.authenticate(token)
        try:
            for i, phone in enumerate(PHONES):
                await a.pair(f"s{i}", phone)
            await spread(nodes, len(PHONES))
            assert all(n.gateway.cluster is not None and len(runs(n)) == 2 for n in nodes)

            # A client on node 0 sends through a session node 1 runs: answered as if local.
            remote = sorted(runs(nodes[1]))[0]
            sent = await a.call("message.send", session=remote, to="+1 555 000 0000", text="via another node")
            assert sent["status"] == "sent" and sent["chat"] == "15550000000@s.whatsapp.net"
            echo = await a.event("message.received", lambda e: e["data"]["reply_to"] == sent["message_id"])
            assert echo["session"] == remote and echo["data"]["text"] == "via another node"

            # The same errors as locally.
            missing = await a.request("message.send", session="nope", to="+1 555 000 0000", text="x")
            assert missing["error"]["code"] == "session_not_found"
            stranger = await a.request("message.send", session=remote, to="+55 11 95555-4444", text="x")
            assert stranger["error"]["code"] == "not_on_whatsapp"
            first = await a.call("message.send", session=remote, to=f"+{SILENT}", text="one", idempotency_key="k1")
            again = await a.call("message.send", session=remote, to=f"+{SILENT}", text="one", idempotency_key="k1")
            assert again == first
            conflict = await a.request(
                "message.send", session=remote, to=f"+{SILENT}", text="two", idempotency_key="k1"
            )
            assert conflict["error"]["code"] == "idempotency_conflict"
            info = await a.call("session.get", session=remote)
            assert info["status"] == "connected" and info["me"]["phone"] in PHONES

            # session.list asks every node and answers every session, each described by its own node.
            listing = await a.call("session.list")
            assert [s["session"] for s in listing["sessions"]] == [f"s{i}" for i in range(len(PHONES))]
            assert {s["status"] for s in listing["sessions"]} == {"connected"}

            # The events of every node reach a client of any node, in seq order, without gap or duplicate.
            seqs = [e["seq"] for e in a.events]
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
            # Each node's /healthz and /metrics show its part: sessions run, leases, forwarding latency.
            async with httpx.AsyncClient() as http:
                health = (await http.get(f"{nodes[0].http}/healthz")).json()
                metrics = (await http.get(f"{nodes[0].http}/metrics")).text
            cluster_part = health["cluster"]
            assert health["status"] == "ok" and cluster_part["name"] == "n0"
            assert cluster_part["leases"]["held"] == cluster_part["leases"]["valid"] == 2
            assert cluster_part["leases"]["current"] and cluster_part["sessions_in_cluster"] == len(PHONES)
            assert [n["name"] for n in cluster_part["nodes"]] == ["n0", "n1", "n2"]
            assert cluster_part["forwarding"]["sent"] > 0 and cluster_part["forwarding"]["p50_ms"] > 0
            assert cluster_part["bus"]["connected"] is True
            assert "zapgate_leases_held 2.0" in metrics
            assert 'zapgate_cluster_nodes{state="alive"} 3.0' in metrics
            assert 'zapgate_forward_latency_seconds_bucket{le="+Inf"}' in metrics
        finally:
            await a.close()


async def test_resume_on_another_node_gets_exactly_the_missed_events(tmp_path: Path) -> None:
    require("redis")
    async with cluster(tmp_path, 2, REDIS_URL) as nodes:
        token = await nodes[0].token()
        async with nodes[0].connect() as setup:
            await setup.pair("s0", PHONES[0])
            await setup.pair("s1", PHONES[1])
        await spread(nodes, 2)
        first = await RawClient.open(nodes[0].url)
        await first.authenticate(token)
        for n in range(3):
            await first.call("sim.receive", session="s0", text=f"before {n}", **{"from": "+5531900000001"})
        await first.event("message.received", lambda e: e["data"]["text"] == "before 2")
        last = first.events[-1]["seq"]
        await first.close()

        # Events happen on both nodes while the client is away.
        async with nodes[1].connect() as other:
            for n in range(5):
                for session in ("s0", "s1"):
                    await other.call("sim.receive", session=session, text=f"away {n}", **{"from": "+5531900000002"})

        async with nodes[0].connect() as probe:
            log: list[dict[str, Any]] = []
            while len([e for e in log if e["event"] == "message.received"]) < 10:  # stored a moment after sim.receive
                await asyncio.sleep(0.05)
                log = (await probe.call("events.fetch", after=last, limit=1000))["events"]
        missed = [e["seq"] for e in log]

        second = await RawClient.open(nodes[1].url)
        ready = await second.authenticate(token, resume_from=last)
        try:
            assert ready["resume"] == "ok" and ready["replayed"] == len(missed)
            while len(second.events) < len(missed):
                await second.recv()
            while True:  # anything after the replay must continue the sequence
                try:
                    await second.recv(0.3)
                except TimeoutError:
                    break
            got = [e["seq"] for e in second.events]
            assert got[: len(missed)] == missed and got == list(range(last + 1, last + 1 + len(got)))
        finally:
            await second.close()


async def test_a_new_node_takes_its_share_and_a_stopped_node_hands_its_sessions_over(tmp_path: Path) -> None:
    require("redis")
    for url in postgres_schema():
        first = serve_gateway(node_settings(tmp_path, url, "n0", REDIS_URL))
        async with first as n0, n0.connect() as client:
            for i in range(4):
                await client.pair(f"s{i}", PHONES[i])
            assert len(runs(n0)) == 4
            async with serve_gateway(node_settings(tmp_path, url, "n1", REDIS_URL)) as n1:
                await spread([n0, n1], 4)
                moved = runs(n1)
                for name in moved:
                    await client.status(name, "connected")
            # n1 stopped (SIGTERM-like): it handed its sessions back before exiting.
            await until(lambda: len(runs(n0)) == 4, "n0 to take the sessions back")
            for name in moved:
                info = await client.call("session.get", session=name)
                assert info["status"] in {"starting", "connected"}
            engine = n0.gateway.engine
            log = await engine.connection_log()  # type: ignore[attr-defined]
            assert [e for e in log if e["outcome"] != "connected"] == []  # clean hand-overs replace nothing


async def test_a_qr_code_shown_by_one_node_is_served_as_an_image_by_another(tmp_path: Path) -> None:
    require("redis")
    async with cluster(tmp_path, 2, REDIS_URL) as nodes:
        token = await nodes[1].token()
        headers = {"Authorization": f"Bearer {token}"}
        async with nodes[1].connect() as client, httpx.AsyncClient() as http:
            await client.call("session.start", session="pairing")  # created, and shown, by node 1
            qr = await client.event("session.qr", lambda e: e["session"] == "pairing")
            assert runs(nodes[1]) == {"pairing"} and runs(nodes[0]) == set()
            image = await http.get(f"{nodes[0].http}/v1/sessions/pairing/qr.png", headers=headers)
            missing = await http.get(f"{nodes[0].http}/v1/sessions/nope/qr.png", headers=headers)
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
            assert image.headers["X-QR-Attempt"] == f"1/{qr['data']['max_attempts']}"
            assert missing.status_code == 404 and missing.json()["code"] == "session_not_found"
            # Once paired, the other node draws nothing: its code is in the log, but the session no longer shows it.
            await client.call("sim.scan", qr=qr["data"]["qr"], phone=PHONES[0])
            await client.status("pairing", "connected")
            paired = await http.get(f"{nodes[0].http}/v1/sessions/pairing/qr.png", headers=headers)
            assert paired.status_code == 404 and paired.json()["code"] == "qr_not_available"


async def test_scopes_quotas_and_disabled_tenants_hold_across_nodes(tmp_path: Path) -> None:
    """A session-limited token, a quota refusal and a tenant disabled on one node, for sessions another node runs
    (commands forwarded over the bus keep the caller's session limit, and the refusal its quota and limit)."""
    async with cluster(tmp_path, 2, "") as nodes:
        owner_token = await nodes[0].token("acme")
        a = await RawClient.open(nodes[0].url)
        await a.authenticate(owner_token)
        try:
            for i, phone in enumerate(PHONES[:4]):
                await a.pair(f"s{i}", phone)
            await spread(nodes, 4)
            remote = sorted(runs(nodes[1]))
            allowed, other = remote[0], remote[1]

            _, limited = await nodes[0].gateway.tokens.create("acme", scopes=["send"], sessions=[allowed])
            bot = await RawClient.open(nodes[0].url)
            await bot.authenticate(limited)
            sent = await bot.call("message.send", session=allowed, to=f"+{SILENT}", text="allowed")
            assert sent["status"] == "sent"
            refused = await bot.request("message.send", session=other, to=f"+{SILENT}", text="not allowed")
            assert refused["error"]["code"] == "forbidden"
            listed = await bot.call("session.list")
            assert [s["session"] for s in listed["sessions"]] == [allowed]
            await bot.close()

            # A queue quota refused by the node that runs the session, answered with its quota and limit.
            _, ops = await nodes[0].gateway.tokens.create("ops", scopes=["admin"])
            admin = await RawClient.open(nodes[0].url)
            await admin.authenticate(ops)
            await admin.call("tenant.update", tenant="acme", max_queued_messages=1)
            await a.call("sim.network", session=allowed, online=False)
            await a.status(allowed, "disconnected")
            await a.call("message.send", session=allowed, to=f"+{SILENT}", text="queued")
            over = await a.request("message.send", session=allowed, to=f"+{SILENT}", text="over")
            assert over["error"]["code"] == "quota_exceeded"
            assert (over["error"]["quota"], over["error"]["limit"]) == ("max_queued_messages", 1)

            # Disabling the tenant on node 0 stops the sessions node 1 runs, at once.
            await admin.call("tenant.disable", tenant="acme")
            await until(
                lambda: all(s.state.status.wire == "stopped" for s in nodes[1].gateway.sessions.for_tenant("acme")),
                "node 1's sessions of the tenant to stop",
            )
            await admin.close()
        finally:
            await a.close()
