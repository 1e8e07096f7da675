"""Webhooks with several nodes on one PostgreSQL database: each endpoint is delivered by exactly one node, a
joining node takes its share, and when a node stops (or is killed: subprocess nodes) the others take its
endpoints over — every event reaches
every receiver, in order (a duplicate only ever repeats the same ``webhook-id`` and body)."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from zapgate.config import Settings

from .cluster_support import Node, query
from .services import postgres_schema
from .support import TIMEOUT_SCALE, RunningGateway, eventually, serve_gateway
from .test_cluster import node_settings
from .test_durability import authenticated
from .test_webhooks import FAST_RETRIES, emit
from .webhook_receiver import Receiver, receiver

ENDPOINTS = 4
MESSAGES = 30
KILL_AT = 10


def hook_node(tmp_path: Path, url: str, name: str) -> Settings:
    return node_settings(tmp_path, url, name, "", outbound_allow=("127.0.0.1/32",), webhook_retry_schedule=FAST_RETRIES)


def in_order_without_loss(rx: Receiver, seqs: list[int]) -> bool:
    first_seen: list[int] = []
    for request in rx.accepted:
        if request.frame["seq"] not in first_seen:
            first_seen.append(request.frame["seq"])
    return first_seen == seqs


def delivering(*nodes: RunningGateway) -> list[set[str]]:
    return [node.gateway.webhooks.delivering() for node in nodes]


async def test_each_endpoint_has_one_node_and_survives_a_node_stopping(tmp_path: Path) -> None:
    for url in postgres_schema():
        await one_node_per_endpoint(tmp_path, url)


async def one_node_per_endpoint(tmp_path: Path, url: str) -> None:
    async with contextlib.AsyncExitStack() as stack:
        receivers = [await stack.enter_async_context(receiver()) for _ in range(ENDPOINTS)]
        first = await stack.enter_async_context(serve_gateway(hook_node(tmp_path, url, "n0")))
        client = await stack.enter_async_context(first.connect())
        hooks: dict[str, Receiver] = {}
        for rx in receivers:
            hooks[(await client.call("webhook.create", url=rx.url))["webhook"]] = rx
        await eventually(lambda: delivering(first) == [set(hooks)], "the only node delivers to all")

        async with serve_gateway(hook_node(tmp_path, url, "n1")) as second:

            def shared() -> bool:
                a, b = delivering(first, second)
                return len(a) == len(b) == ENDPOINTS // 2 and a | b == set(hooks)

            await eventually(shared, "the joining node takes half of the endpoints")
            seqs = await emit(first, 10)
            for rx in receivers:
                await eventually(lambda rx=rx: in_order_without_loss(rx, seqs), "every event, in order")
                assert len(rx.accepted) == len(seqs), "one node per endpoint: nothing sent twice"
            taken_over = delivering(second)[0]
        # The second node stopped (and let its leases go): the first takes its endpoints back.
        await eventually(lambda: delivering(first) == [set(hooks)], "the remaining node delivers to all")
        seqs += await emit(first, 10)
        for webhook_id, rx in hooks.items():
            await eventually(lambda rx=rx: in_order_without_loss(rx, seqs), "every event after the stop")
            by_id: dict[str, bytes] = {}
            for request in rx.accepted:
                assert by_id.setdefault(request.id, request.body) == request.body
                assert request.id == f"{webhook_id}_{request.frame['seq']}"
        assert taken_over


@pytest.mark.slow
async def test_kill_9_of_the_delivering_node_loses_nothing(tmp_path: Path) -> None:
    """Two ``zapgate serve`` nodes; the one delivering to the endpoint is killed (by the receiver, before it answers
    a request): the other takes the endpoint over when the lease expires and goes on from the stored cursor."""
    for url in postgres_schema():
        await kill_the_delivering_node(tmp_path, url)


async def kill_the_delivering_node(tmp_path: Path, url: str) -> None:
    options = {"outbound_allow": "127.0.0.1/32", "webhook_retry_schedule": ",".join(["0.05"] * 100)}
    first, second = Node(tmp_path, "n0", url, "", **options), Node(tmp_path, "n1", url, "", **options)
    state: dict[str, Any] = {"accepted": 0, "killed_at": None}

    def answer(frame: dict[str, Any]) -> int:
        if state["killed_at"] is None and state["accepted"] == KILL_AT:
            first.kill()  # before answering: the dead node never learns this request got through
            state["killed_at"] = frame["seq"]
            return 200
        state["accepted"] += 1
        return 200

    try:
        async with receiver(answer) as rx:
            first.spawn()
            await first.started()
            token = first.token()
            async with authenticated(first.url, token) as client:
                created = await client.call("webhook.create", url=rx.url, events=["message.received"])

            def holder() -> str | None:
                rows = query(url, "SELECT n.name FROM webhooks w JOIN nodes n ON n.node = w.node")
                return rows[0][0] if rows else None

            await eventually(lambda: holder() == "n0", "the only node delivers to the endpoint")
            second.spawn()
            await second.started()
            async with authenticated(second.url, token) as client:
                await client.pair("s1", "+55 11 98888-0009")
                for n in range(MESSAGES):
                    await client.call("sim.receive", session="s1", **{"from": "+55 31 97777-0009"}, text=f"m{n}")
                for n in range(MESSAGES):
                    await client.event("message.received", lambda e, n=n: e["data"]["text"] == f"m{n}")
                page = await client.call("events.fetch", after=created["cursor"], limit=1000)
            seqs = [e["seq"] for e in page["events"] if e["event"] == "message.received"]
            deadline = asyncio.get_running_loop().time() + 60 * TIMEOUT_SCALE
            while not set(seqs) <= {r.frame["seq"] for r in rx.accepted}:
                assert asyncio.get_running_loop().time() < deadline, (
                    f"missing: {sorted(set(seqs) - set(rx.accepted_seqs()))}"
                )
                await asyncio.sleep(0.05)
            assert state["killed_at"] is not None, "the kill must land mid-delivery"
            assert holder() == "n1"
    finally:
        first.ensure_stopped()
        second.ensure_stopped()
    first_seen: list[int] = []
    by_id: dict[str, bytes] = {}
    for request in rx.accepted:
        request.verify(created["secret"])
        assert by_id.setdefault(request.id, request.body) == request.body
        if request.frame["seq"] not in first_seen:
            first_seen.append(request.frame["seq"])
    assert first_seen == seqs
    assert sum(r.frame["seq"] == state["killed_at"] for r in rx.accepted) == 2, "the event in flight, again"
