"""A client that reconnects never misses an event: resume, gaps, explicit ranges and slow consumers.

Each test runs a real gateway on 127.0.0.1 and speaks raw JSON frames. Inbound traffic comes from
``sim.receive`` on other connections, so the events under test are produced while the client comes and goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from zapgate.config import ConfigError, Settings
from zapgate.protocol import EVENTS_FETCH_MAX_BYTES
from zapgate.server.websocket import WebSocketClient

from .conftest import fast_settings
from .support import TIMEOUT, TIMEOUT_SCALE, RawClient, RunningGateway, serve_gateway

PHONE = "5511977770000"
CONTACTS = ("5531900000001", "5531900000002", "5531900000003")


# -- helpers --------------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def connected(gateway: RunningGateway, token: str | None = None, **auth: Any) -> AsyncIterator[RawClient]:
    """An authenticated raw client for tenant ``acme``, closed with :func:`close` at the end of the block."""
    client = await RawClient.open(gateway.url)
    try:
        await client.authenticate(token or await gateway.token(), **auth)
        yield client
    finally:
        await client.close()


async def pair(gateway: RunningGateway) -> None:
    async with connected(gateway) as client:
        await client.pair("s", PHONE)


async def next_event(client: RawClient, timeout: float = TIMEOUT) -> dict[str, Any]:
    while True:
        frame = await client.recv(timeout)
        if frame["type"] == "event":
            return frame


async def receive(client: RawClient, sender: str, text: str) -> str:
    """A contact writes to the session; the new message's id."""
    data = await client.call("sim.receive", session="s", text=text, **{"from": sender})
    message_id: str = data["message_id"]
    return message_id


async def fetch_log(client: RawClient, after: int = 0) -> list[dict[str, Any]]:
    """The tenant's whole event log after ``after``, page by page with ``events.fetch``."""
    log: list[dict[str, Any]] = []
    while True:
        page = await client.call("events.fetch", after=after, limit=100)
        assert not page["gap"]
        log += page["events"]
        if not page["events"] or page["events"][-1]["seq"] >= page["last_seq"]:
            return log
        after = page["events"][-1]["seq"]


def received_ids(events: list[dict[str, Any]]) -> list[str]:
    return [e["data"]["message_id"] for e in events if e["event"] == "message.received"]


def assert_contiguous(events: list[dict[str, Any]], first: int) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(first, first + len(seqs))), "events missing, repeated or out of order"


@contextlib.asynccontextmanager
async def producing(gateway: RunningGateway, producers: int = 2) -> AsyncIterator[list[str]]:
    """Steady inbound traffic for the block's duration: each producer connection injects one message after
    another. Yields the ids injected so far (a live list); on exit, stops and waits for the producers."""
    injected: list[str] = []
    stop = asyncio.Event()

    async def produce(number: int) -> None:
        async with connected(gateway) as client:
            i = 0
            while not stop.is_set():
                injected.append(await receive(client, CONTACTS[number], f"inbound {number}.{i}"))
                i += 1

    tasks = [asyncio.create_task(produce(n)) for n in range(producers)]
    try:
        yield injected
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def injected_grows(injected: list[str], by: int) -> None:
    target = len(injected) + by
    async with asyncio.timeout(TIMEOUT):
        while len(injected) < target:
            await asyncio.sleep(0.001)


def abort(client: RawClient) -> None:
    """Drop the TCP connection without a WebSocket close handshake."""
    transport = client.ws.transport
    assert transport is not None
    transport.abort()


# -- resume under random disconnects ------------------------------------------------------------------


async def test_fifty_random_disconnects_during_inbound_traffic_lose_and_repeat_nothing(tmp_path: Path) -> None:
    seed = int(os.environ.get("RESUME_TEST_SEED", random.randrange(2**32)))
    rng = random.Random(seed)
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway:
        token = await gateway.token()
        await pair(gateway)
        seen: list[dict[str, Any]] = []  # every event the client processed, across all its connections
        how: dict[str, int] = {}

        async with producing(gateway) as injected:
            await injected_grows(injected, 20)  # traffic is flowing before the client first connects
            for _ in range(50):
                last = seen[-1]["seq"] if seen else 0
                client = await RawClient.open(gateway.url)
                moment = rng.choice(["before_ready", "after_ready", "mid_stream", "mid_stream", "mid_stream"])
                if moment == "before_ready":
                    await client.send({"type": "auth", "token": token, "resume_from": last})
                else:
                    ready = await client.authenticate(token, resume_from=last)
                    assert ready["resume"] == "ok", (seed, ready)
                    for _ in range(rng.randrange(60) if moment == "mid_stream" else 0):
                        event = await next_event(client)
                        assert event["seq"] == (seen[-1]["seq"] if seen else 0) + 1, (seed, event["seq"])
                        seen.append(event)
                if rng.random() < 0.4:
                    moment += "+abort"
                    abort(client)
                await client.close()
                how[moment] = how.get(moment, 0) + 1
                # Sometimes stay away long enough for a backlog to build up, so the next resume replays it.
                if rng.random() < 0.3:
                    await injected_grows(injected, rng.randrange(1, 80))

        # Traffic has stopped: one last resume brings everything still missing.
        async with connected(gateway, token, resume_from=seen[-1]["seq"]) as client:
            while len(received_ids(seen)) < len(injected):
                seen.append(await next_event(client))
            log = await fetch_log(client)

    assert_contiguous(seen, 1)
    assert sorted(received_ids(seen)) == sorted(injected), seed
    assert [strip(e) for e in seen] == [strip(e) for e in log], seed
    assert sum(how.values()) == 50, how


def strip(event: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in event.items() if not k.startswith("_")}


# -- slow consumers -------------------------------------------------------------------------------------


def closed_as_slow(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The gateway's log lines saying it closed a connection as a slow consumer (its logging contract)."""
    return [r.getMessage() for r in caplog.records if r.name == "zapgate.server" and "slow consumer" in r.getMessage()]


async def test_slow_consumer_is_closed_4429_with_a_bounded_queue_then_resumes_everything(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that stops reading falls behind: live events stop being queued for it beyond half the buffer
    (the rest stays in the log), and once it has taken nothing for send_timeout_s it is closed with 4429."""
    caplog.set_level(logging.INFO, logger="zapgate.server")
    limit = 16
    settings = fast_settings(
        tmp_path / "data",
        send_buffer_frames=limit,
        send_timeout_s=2.0 * TIMEOUT_SCALE,
        close_timeout_s=TIMEOUT,  # time for the test to start reading again before the connection is cut
    )
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        await pair(gateway)
        # A small receive buffer, so the kernel does not soak up what the client leaves unread.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gateway.port))
        slow = await RawClient.open(gateway.url, sock=sock)
        ready = await slow.authenticate(token, resume_from=0)
        seen = [await next_event(slow) for _ in range(ready["last_seq"])]  # catch up, then stop reading

        injected: list[str] = []
        async with connected(gateway) as producer:
            text = "x" * 4000
            while not closed_as_slow(caplog):
                assert len(injected) < 5000, "never closed as a slow consumer"
                injected.append(await receive(producer, CONTACTS[0], f"{len(injected)} {text}"))
            # Closed because it took nothing for send_timeout_s: what it did not take stayed in the event log.
            took_nothing = f"it took no frame for {settings.send_timeout_s:g} s"
            expected = f"closing {slow_peer(slow)} (tenant acme): slow consumer, {took_nothing}"
            assert closed_as_slow(caplog) == [expected]
            newest_at_close = (await producer.call("events.fetch", after=0, limit=1))["last_seq"]
            # What is produced from now on is not queued for it.
            for _ in range(limit * 2):
                injected.append(await receive(producer, CONTACTS[0], f"{len(injected)} {text}"))

            # The client reads again: it gets what was queued for it, then the close code.
            with contextlib.suppress(websockets.ConnectionClosed):
                while True:
                    seen.append(await next_event(slow))
            assert slow.ws.close_code == 4429 and slow.ws.close_reason == "slow_consumer"
            assert seen[-1]["seq"] <= newest_at_close
            before_close = len(seen)

            # It resumes from the last seq it saw and gets everything it missed, in order, exactly once.
            async with connected(gateway, token, resume_from=seen[-1]["seq"]) as resumed:
                ready = resumed.ready
                assert ready is not None
                assert ready["resume"] == "ok" and ready["replayed"] == ready["last_seq"] - seen[-1]["seq"]
                assert ready["replayed"] > limit  # more than one buffer's worth, paced by the replay
                while len(received_ids(seen)) < len(injected):
                    seen.append(await next_event(resumed))
                log = await fetch_log(resumed)

    assert_contiguous(seen, 1)
    assert received_ids(seen) == injected
    assert [strip(e) for e in seen] == [strip(e) for e in log]
    assert before_close < len(seen)


def slow_peer(client: RawClient) -> str:
    """How the gateway names ``client``'s connection in its log: its address and port."""
    host, port = client.ws.local_address[:2]
    return f"{host}:{port}"


# -- retention, gaps and explicit ranges ------------------------------------------------------------------


async def inject_and_wait(gateway: RunningGateway, count: int, size: int = 0) -> list[dict[str, Any]]:
    """Inject ``count`` inbound messages (padded to ``size`` characters) and return their events once all are
    in the log."""
    async with connected(gateway) as client:
        ids = [await receive(client, CONTACTS[1], f"message {i} ".ljust(size, "x")) for i in range(count)]
        while len(received_ids(client.events)) < count:  # RawClient keeps every event frame it reads
            await client.recv()
    events = [e for e in client.events if e["event"] == "message.received"]
    assert received_ids(events) == ids
    return events


async def test_resume_after_retention_pruned_says_gap_and_replays_nothing(tmp_path: Path) -> None:
    keep = 10
    settings = fast_settings(tmp_path / "data", event_retention_count=keep, event_retention_s=0.0)
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        await pair(gateway)
        await inject_and_wait(gateway, 30)
        async with connected(gateway, token) as client:
            newest = client.ready["last_seq"] if client.ready else 0
            assert (await client.call("events.fetch", after=0, limit=1))["oldest_seq"] == 1

        assert await gateway.gateway.prune() == newest - keep
        oldest = newest - keep + 1

        # Just inside the retained log: every retained event, in order, then live ones.
        async with connected(gateway, token, resume_from=oldest - 1) as client:
            assert client.ready is not None
            assert client.ready["resume"] == "ok" and client.ready["replayed"] == keep
            replayed = [await next_event(client) for _ in range(keep)]
            assert_contiguous(replayed, oldest)

        # One event older than the log holds, or a seq the gateway never issued: a gap, and nothing partial.
        for resume_from in (oldest - 2, 0, newest + 5):
            async with connected(gateway, token, resume_from=resume_from) as client:
                assert client.ready is not None
                assert client.ready["resume"] == "gap" and client.ready["replayed"] == 0
                assert client.ready["last_seq"] == newest
                live = await inject_and_wait_on(gateway, client)
                assert live["seq"] == newest + 1  # the first event after "gap" is live, not replayed
                newest += 1

        # events.fetch reports the same gap and returns nothing rather than a partial range.
        async with connected(gateway, token) as client:
            gap = await client.call("events.fetch", after=oldest - 2, limit=100)
            assert gap == {"events": [], "oldest_seq": oldest, "last_seq": newest, "gap": True}
            ok = await client.call("events.fetch", after=oldest - 1, limit=3)
            assert [e["seq"] for e in ok["events"]] == [oldest, oldest + 1, oldest + 2] and not ok["gap"]


async def inject_and_wait_on(gateway: RunningGateway, client: RawClient) -> dict[str, Any]:
    """Inject one inbound message from another connection; the first event ``client`` then receives."""
    async with connected(gateway) as producer:
        message_id = await receive(producer, CONTACTS[2], "live")
    event = await next_event(client)
    assert event["event"] == "message.received" and event["data"]["message_id"] == message_id, event
    return event


async def test_events_younger_than_the_retention_age_are_kept(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", event_retention_count=5, event_retention_s=3600.0)
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        await pair(gateway)
        events = await inject_and_wait(gateway, 20)
        assert await gateway.gateway.prune() == 0
        async with connected(gateway, token, resume_from=0) as client:
            assert client.ready is not None and client.ready["resume"] == "ok"
            replayed = [await next_event(client) for _ in range(client.ready["replayed"])]
        assert_contiguous(replayed, 1)
        assert [strip(e) for e in replayed[-20:]] == [strip(e) for e in events]


async def test_events_fetch_reads_an_explicit_range(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway:
        token = await gateway.token()
        await pair(gateway)
        async with connected(gateway, token, resume_from=0) as watcher:
            live = await inject_and_wait(gateway, 25)
            newest = live[-1]["seq"]
            everything = [await next_event(watcher) for _ in range(newest)]
            assert_contiguous(everything, 1)

            # Any window [after+1, after+limit] comes back exactly as it was pushed live.
            for after, limit in ((0, 1), (3, 7), (newest - 10, 10), (newest - 3, 100)):
                page = await watcher.call("events.fetch", after=after, limit=limit)
                assert not page["gap"] and page["oldest_seq"] == 1 and page["last_seq"] == newest
                assert page["events"] == [strip(e) for e in everything[after : after + limit]]
            # At the head of the log: an empty page, not a gap.
            head = await watcher.call("events.fetch", after=newest, limit=10)
            assert head["events"] == [] and not head["gap"]
            # Paging through the whole log gives the whole log.
            assert [strip(e) for e in await fetch_log(watcher)] == [strip(e) for e in everything]


async def test_seq_keeps_counting_across_a_restart_after_the_log_is_pruned(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", event_retention_count=1, event_retention_s=0.0)
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        await pair(gateway)
        newest = (await inject_and_wait(gateway, 5))[-1]["seq"]
        assert await gateway.gateway.prune() == newest - 1
    async with serve_gateway(settings) as gateway, connected(gateway, token, resume_from=newest) as client:
        assert client.ready is not None and client.ready["resume"] == "ok"
        # The session reopens after the restart: its events continue the old numbering, never reuse it.
        assert client.ready["last_seq"] >= newest
        assert (await next_event(client))["seq"] == newest + 1
    # Keeping no event at all would lose the newest seq, and a restart would start counting again from 1.
    with pytest.raises(ConfigError, match="event_retention_count"):
        Settings.load({"ZAPGATE_EVENT_RETENTION_COUNT": "0"})


def server_side(gateway: RunningGateway, client: RawClient) -> WebSocketClient:
    """The server's object for ``client``'s connection (in-process gateway), to watch its send queue.

    Private state: how far the queue grows while the server holds a client back has no public measure yet
    (the WebSocket server's byte bounds are being reworked; that work gives it one)."""
    for connection in gateway.gateway.hub.subscribers("acme"):
        if isinstance(connection, WebSocketClient) and connection.peer == slow_peer(client):
            return connection
    raise AssertionError("no server-side connection for this client")


async def test_a_client_that_sends_without_reading_is_held_back_not_buffered(tmp_path: Path) -> None:
    limit, inflight = 16, 4
    # The frame count binds here: bytes are plentiful, so that the replies of the commands in progress fit in
    # the quarter above where the reader stops (test_edge_buffers.py shows what happens when they do not).
    settings = fast_settings(
        tmp_path / "data", send_buffer_frames=limit, send_buffer_bytes=64 * 1024 * 1024, max_inflight_commands=inflight
    )
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        await pair(gateway)
        await inject_and_wait(gateway, 40, size=4000)  # so that each events.fetch reply is several hundred KB
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gateway.port))
        greedy = await RawClient.open(gateway.url, sock=sock)
        await greedy.authenticate(token)
        server = server_side(gateway, greedy)

        # Far more replies than the buffer, the in-flight limit and every socket buffer on the way can hold.
        requests = 120
        flood = asyncio.create_task(send_all(greedy, requests))
        deepest = 0
        # Bound: the buffer, plus one reply for each command in progress and one for the command read last.
        bound = limit + inflight
        while not flood.done() and len(server._out) < bound - 1:
            await asyncio.sleep(0.001)
        for _ in range(200):  # watch the queue while the client still reads nothing
            deepest = max(deepest, len(server._out))
            await asyncio.sleep(0.001)
        # The reader stops at three quarters of the buffer; replies of commands in progress may add to that.
        assert limit * 3 // 4 <= deepest <= bound  # the writer was blocked, and the queue stopped growing

        # Nothing was dropped: once the client reads, every command gets its reply.
        replies = set()
        while len(replies) < requests:
            frame = await greedy.recv()
            if frame["type"] == "reply":
                assert frame["ok"] and len(frame["data"]["events"]) == 40
                replies.add(frame["id"])
        await flood
        await greedy.close()


async def send_all(client: RawClient, count: int) -> None:
    for i in range(count):
        await client.send({"type": "events.fetch", "id": f"fetch{i}", "after": 0, "limit": 40})


async def test_events_fetch_pages_large_events_under_the_size_cap(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("s", "+55 11 99999-0001")
        big = "x" * 60000
        for _ in range(12):
            await client.call("sim.receive", session="s", **{"from": "+1 555 000 1234"}, text=big)
        for _ in range(12):
            await client.event("message.received")
        reply = await client.request("events.fetch", after=0, limit=1000)
        assert len(reply["data"]["events"]) < reply["data"]["last_seq"]  # stopped early
        assert len(json.dumps(reply)) < EVENTS_FETCH_MAX_BYTES + 70000
        seen, after = [], 0
        while after < reply["data"]["last_seq"]:
            page = (await client.request("events.fetch", after=after, limit=1000))["data"]
            assert page["events"]
            seen += [e["seq"] for e in page["events"]]
            after = seen[-1]
        assert seen == list(range(1, reply["data"]["last_seq"] + 1))
