"""Three gateway nodes as real processes on PostgreSQL and Redis: node death, a paused node, a graceful drain.

Each test starts three ``zapgate serve`` processes on a fresh PostgreSQL schema with leases of 3 s renewed every
0.5 s, pairs six simulator sessions through node 0 and waits until they are spread two per node. The judges
are outside the gateways: the simulated WhatsApp's tables (what it accepted, and on which connection), its log
of connects (which node and lease epoch connected each device) and the lease table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from zapgate.storage import Fence, LeaseLost, NewEvent, open_storage

from .cluster_support import (
    LEASE_TTL_S,
    Node,
    Traffic,
    assert_no_fight,
    connection_log,
    deliveries,
    eventually,
    holders,
    nodes_running,
    start_all,
)
from .services import REDIS_URL, postgres_schema, require
from .support import TIMEOUT_SCALE, RawClient

pytestmark = pytest.mark.slow

PHONES = [f"55119{i:08d}" for i in range(1, 7)]
SESSIONS = [f"s{i}" for i in range(len(PHONES))]
WAIT = 30.0 * TIMEOUT_SCALE


@pytest.fixture
def url() -> Iterator[str]:
    """A fresh PostgreSQL schema shared by the test's nodes (and Redis for their bus)."""
    require("redis")
    yield from postgres_schema()


@contextlib.asynccontextmanager
async def client(node: Node, token: str) -> AsyncIterator[RawClient]:
    c = await RawClient.open(node.url)
    try:
        await c.authenticate(token)
        yield c
    finally:
        with contextlib.suppress(Exception):
            await c.close()


class Observer:
    """A client that only reads events, noting when each arrived."""

    def __init__(self, c: RawClient) -> None:
        self.client = c
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while True:
            frame = json.loads(await self.client.ws.recv())  # (see Traffic._read)
            if frame["type"] == "event":
                self.events.append((time.monotonic(), frame))

    def connected_after(self, session: str, moment: float) -> float | None:
        for at, e in self.events:
            if (
                at >= moment
                and e["event"] == "session.status"
                and e["session"] == session
                and e["data"]["status"] == "connected"
            ):
                return at - moment
        return None

    def assert_in_order(self) -> None:
        seqs = [e["seq"] for _, e in self.events]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "events missing, repeated or out of order"

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def three_nodes_with_six_sessions(nodes: list[Node], url: str) -> str:
    await start_all(nodes)
    token = nodes[0].token()
    async with client(nodes[0], token) as setup:
        for session, phone in zip(SESSIONS, PHONES, strict=True):
            await setup.pair(session, phone)

    def spread() -> bool:
        held = holders(url)
        per_node = [sum(1 for holder, _, _ in held.values() if holder == n.name) for n in nodes]
        return len(held) == len(SESSIONS) and per_node == [2, 2, 2]

    await eventually(spread, "the sessions to spread two per node", WAIT)
    async with client(nodes[0], token) as check:
        for session in SESSIONS:
            await eventually_connected(check, session)
    return token


async def eventually_connected(c: RawClient, session: str, timeout: float = WAIT) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        reply = await c.request("session.get", session=session)
        if reply["ok"] and reply["data"]["status"] == "connected":
            return
        assert loop.time() < deadline, f"{session} not connected: {reply}"
        await asyncio.sleep(0.2)


async def drained(c: RawClient) -> None:
    """Every session connected with an empty outbox (asked through one node, answered by each owner)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    for session in SESSIONS:
        while True:
            reply = await c.request("session.get", session=session)
            if reply["ok"] and reply["data"]["status"] == "connected" and reply["data"]["outbox"]["queued"] == 0:
                break
            assert loop.time() < deadline, f"{session} not drained: {reply}"
            await asyncio.sleep(0.2)


def assert_exactly_once(url: str, traffic: Traffic) -> None:
    """Every accepted send reached WhatsApp, as the message id it was accepted with, and no send reached it as
    two different messages."""
    by_text: dict[str, list[str]] = {}
    for d in deliveries(url):
        if d["text"].startswith("traffic "):
            by_text.setdefault(d["text"].removeprefix("traffic "), []).append(d["message_id"])
    assert by_text == {key: [message_id] for key, message_id in traffic.accepted.items()}


async def test_kill_minus_nine_of_an_owner_mid_burst(tmp_path: Path, url: str) -> None:
    with nodes_running(tmp_path, url, REDIS_URL, 3) as nodes:
        token = await three_nodes_with_six_sessions(nodes, url)
        victim, survivors = nodes[1], {"n0", "n2"}
        moved = sorted(s for s, (holder, _, _) in holders(url).items() if holder == victim.name)
        async with client(nodes[2], token) as watching, client(nodes[0], token) as sending:
            observer = Observer(watching)
            traffic = Traffic(sending, SESSIONS, window=32)
            burst = asyncio.create_task(traffic.run(total=300))
            await eventually(lambda: traffic.answered >= 100, "a third of the burst", WAIT)
            killed_at = time.monotonic()
            victim.kill()
            await traffic.finish(burst, WAIT * 2, stop=False)
            assert traffic.failures == [] and len(traffic.accepted) == 300

            # Its sessions run on the other nodes, reconnected from their stored keys, within 30 s.
            await eventually(lambda: {holders(url).get(s, ("",))[0] for s in moved} <= survivors, "the take-over", WAIT)
            await drained(sending)
            reconnect = [observer.connected_after(s, killed_at) for s in moved]
            assert all(t is not None and t < 30.0 for t in reconnect), reconnect
            await eventually(lambda: set(traffic.accepted.values()) <= sent_seen(observer), "sent events", WAIT)
            await observer.close()

        assert_exactly_once(url, traffic)
        observer.assert_in_order()
        assert_no_fight(connection_log(url))
        assert traffic.retries > 0 or all(t is not None for t in reconnect)


def sent_seen(observer: Observer) -> set[str]:
    return {
        e["data"]["message_id"]
        for _, e in observer.events
        if e["event"] == "message.status" and e["data"]["status"] == "sent"
    }


async def test_a_paused_owner_loses_its_sessions_and_cannot_write_for_them(tmp_path: Path, url: str) -> None:
    with nodes_running(tmp_path, url, REDIS_URL, 3) as nodes:
        token = await three_nodes_with_six_sessions(nodes, url)
        victim = nodes[1]
        before = {s: h for s, h in holders(url).items() if h[0] == victim.name}
        victim_id = _node_id(url, victim.name)
        async with client(nodes[0], token) as sending, client(nodes[2], token) as checking:
            traffic = Traffic(sending, SESSIONS, window=16)
            steady = asyncio.create_task(traffic.run())
            await eventually(lambda: traffic.answered >= 30, "traffic", WAIT)

            victim.signal(signal.SIGSTOP)
            paused_at = time.monotonic()
            # The others take its sessions once the leases expire, with new epochs, and reconnect them.
            await eventually(
                lambda: all(holders(url).get(s, (victim.name,))[0] != victim.name for s in before),
                "the take-over of the paused node's sessions",
                WAIT,
            )
            for session in before:
                await eventually_connected(checking, session)
            taken = holders(url)
            assert all(taken[s][1] > epoch for s, (_, epoch, _) in before.items())
            mark = max((d["accepted"] for d in deliveries(url)), default=0)
            # Paused for longer than its lease (from its last renewal, the take-over needed nearly that already).
            await asyncio.sleep(max(0.0, LEASE_TTL_S + 1.0 - (time.monotonic() - paused_at)))
            victim.signal(signal.SIGCONT)

            # Resumed, it finds out it lost them and stops them without writing.
            def let_go() -> bool:
                leases = victim.healthz()["cluster"]["leases"]
                return int(leases["lost"]) + int(leases["self_fenced"]) >= len(before)

            await eventually(let_go, "the resumed node to give its sessions up", WAIT)
            await asyncio.sleep(1.0)  # let it try whatever it was doing when it was paused
            await traffic.finish(steady, WAIT)
            await drained(sending)
        health = victim.healthz()["cluster"]

        # Nothing was sent on its old connections after the take-over, and no device was fought over.
        phone_of = dict(zip(SESSIONS, PHONES, strict=True))
        old_connections = {(phone_of[s], victim_id, epoch) for s, (_, epoch, _) in before.items()}
        stale = [d for d in deliveries(url) if (d["sender"], d["node"], d["epoch"]) in old_connections]
        assert all(d["accepted"] <= mark for d in stale), "sent on a connection that had been replaced"
        assert_no_fight(connection_log(url))
        replaced = [e for e in connection_log(url) if e["outcome"] == "replaced"]
        assert {e["session_id"] for e in replaced} == {h[2] for h in before.values()}
        assert traffic.failures == []
        assert_exactly_once(url, traffic)
        # A write carrying its old fence is refused by the database, whatever the node believes.
        storage = open_storage(url)
        await storage.open()
        try:
            session, (_, epoch, session_id) = next(iter(before.items()))
            with pytest.raises(LeaseLost):
                await storage.append_events(
                    [NewEvent("acme", session, "x.y", b"{}")],
                    fence=Fence(session_id, victim_id, epoch),
                )
        finally:
            await storage.close()
        assert health["leases"]["current"] is True  # it stays in the cluster


def _node_id(url: str, name: str) -> str:
    from .cluster_support import query

    return str(query(url, "SELECT node FROM nodes WHERE name = %s", (name,))[0][0])


async def test_graceful_drain_hands_sessions_over_with_zero_failed_commands(tmp_path: Path, url: str) -> None:
    with nodes_running(tmp_path, url, REDIS_URL, 3) as nodes:
        token = await three_nodes_with_six_sessions(nodes, url)
        leaving = nodes[1]
        moved = sorted(s for s, (holder, _, _) in holders(url).items() if holder == leaving.name)
        async with client(nodes[0], token) as sending:
            traffic = Traffic(sending, SESSIONS, window=16, retry=False)  # not one command may fail
            steady = asyncio.create_task(traffic.run())
            await eventually(lambda: traffic.answered >= 30, "traffic", WAIT)
            # uvicorn stops gracefully, then ends by the signal it caught (the usual exit status for SIGTERM).
            assert await leaving.terminate() in (0, -signal.SIGTERM)
            assert "gateway closed" in leaving.log_tail(), leaving.log_tail()
            await eventually(
                lambda: {holders(url).get(s, ("",))[0] for s in moved} <= {"n0", "n2"}, "the hand-over", WAIT
            )
            answered = traffic.answered
            await eventually(lambda: traffic.answered >= answered + 30, "traffic after the drain", WAIT)
            await traffic.finish(steady, WAIT)
            await drained(sending)
        assert traffic.failures == []
        assert_exactly_once(url, traffic)
        log = connection_log(url)
        assert_no_fight(log)
        assert [e for e in log if e["outcome"] == "replaced"] == []  # it disconnected before handing over
