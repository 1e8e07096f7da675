"""The bus contract, the same bodies over Redis and PostgreSQL LISTEN/NOTIFY (both real, on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Callable

import pytest

from zapgate.bus import Bus, open_bus

from .services import POSTGRES_URL, REDIS_URL, require
from .support import TIMEOUT


@pytest.fixture(params=["redis", "postgresql"])
def bus_url(request: pytest.FixtureRequest) -> str:
    require("redis" if request.param == "redis" else "postgres")
    return REDIS_URL if request.param == "redis" else POSTGRES_URL


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.changed = asyncio.Event()

    def handler(self, channel: str) -> Callable[[bytes], None]:
        def take(payload: bytes) -> None:
            self.messages.append((channel, payload))
            self.changed.set()

        return take

    async def wait_for(self, count: int) -> list[tuple[str, bytes]]:
        async def enough() -> None:
            while len(self.messages) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(enough(), TIMEOUT)
        return self.messages


@pytest.fixture
async def buses(bus_url: str) -> AsyncIterator[tuple[list[Bus], list[Inbox], str]]:
    prefix = f"zt{secrets.token_hex(4)}"
    inboxes = [Inbox(), Inbox()]
    started: list[Bus] = []
    try:
        for n, inbox in enumerate(inboxes):
            bus = open_bus(bus_url, prefix)
            await bus.start({"events": inbox.handler("events"), f"node.n{n}": inbox.handler(f"node.n{n}")})
            started.append(bus)
        yield started, inboxes, prefix
    finally:
        for bus in started:
            await bus.close()


async def test_broadcast_reaches_every_node_in_order_and_addressed_only_one(
    buses: tuple[list[Bus], list[Inbox], str],
) -> None:
    (a, b), (inbox_a, inbox_b), _ = buses
    for i in range(20):
        await a.publish("events", b"e%d" % i)
    await b.publish("node.n0", b"for a")
    expected = [("events", b"e%d" % i) for i in range(20)]
    assert await inbox_b.wait_for(20) == expected
    assert await inbox_a.wait_for(21) == [*expected, ("node.n0", b"for a")]
    assert inbox_b.messages == expected
    assert a.connected and b.connected


async def test_a_large_payload_arrives_whole(buses: tuple[list[Bus], list[Inbox], str]) -> None:
    (a, _), (_, inbox_b), _ = buses
    big = os.urandom(70_000)
    await a.publish("node.n1", big)
    await a.publish("node.n1", b"small")
    assert await inbox_b.wait_for(2) == [("node.n1", big), ("node.n1", b"small")]


async def test_another_cluster_on_the_same_server_hears_nothing(
    bus_url: str, buses: tuple[list[Bus], list[Inbox], str]
) -> None:
    (a, _), (inbox_a, _), _ = buses
    other = open_bus(bus_url, f"zt{secrets.token_hex(4)}")
    stranger = Inbox()
    await other.start({"events": stranger.handler("events")})
    try:
        # The server delivers in the order it took the messages: "ours" before "theirs".
        await a.publish("events", b"ours")
        await other.publish("events", b"theirs")
        assert await stranger.wait_for(1) == [("events", b"theirs")]
        assert await inbox_a.wait_for(1) == [("events", b"ours")]
    finally:
        await other.close()
