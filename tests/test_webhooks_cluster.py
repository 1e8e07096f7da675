"""Webhooks with several nodes on one PostgreSQL database: each endpoint is delivered by exactly one node, a
joining node takes its share, and when a node stops the others take its endpoints over — every event reaches
every receiver, in order (a duplicate only ever repeats the same ``webhook-id`` and body)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from zapgate.config import Settings

from .services import postgres_schema
from .support import RunningGateway, eventually, serve_gateway
from .test_cluster import node_settings
from .test_webhooks import FAST_RETRIES, emit
from .webhook_receiver import Receiver, receiver

ENDPOINTS = 4


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
