"""Subscriptions: a connection (or an ``events.fetch`` / ``GET /v1/events`` request) gets only the events of
the sessions and event types it asked for — live, replayed on resume, and read from the log.

Every test runs a real gateway on 127.0.0.1 and speaks raw JSON frames (or HTTP). Events of the sessions a
client did not subscribe to are produced *before* the ones it waits for, so that, events being sent in ``seq``
order, a filter that let them through would have delivered them first: no test depends on timing.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from zapgate.hub import EventHub
from zapgate.protocol import MAX_FILTER_SESSIONS, event_filter
from zapgate.storage import StoredEvent

from .services import REDIS_URL, require
from .support import TIMEOUT, RawClient, RunningGateway
from .test_cluster import PHONES, cluster, runs, spread
from .test_rest_events import SSE, events_of

PHONE_1 = "+55 11 99999-0001"
PHONE_2 = "+55 21 98888-0002"
CONTACT = "+55 31 97777-0003"


async def pair_two(client: RawClient) -> None:
    await client.pair("s1", PHONE_1)
    await client.pair("s2", PHONE_2)


async def receive(client: RawClient, session: str, text: str) -> str:
    data = await client.call("sim.receive", session=session, text=text, **{"from": CONTACT})
    message_id: str = data["message_id"]
    return message_id


def received_on(client: RawClient, message_id: str) -> Any:
    return client.event("message.received", lambda e: e["data"]["message_id"] == message_id)


@contextlib.asynccontextmanager
async def authenticated(gateway: RunningGateway, **auth: Any) -> AsyncIterator[RawClient]:
    """A raw client whose ``auth`` frame carries ``auth``'s extra fields (resume_from, sessions, events)."""
    client = await RawClient.open(gateway.url)
    try:
        await client.send({"type": "auth", "token": await gateway.token(), **auth})
        client.ready = await client.recv()
        assert client.ready["type"] == "ready", client.ready
        yield client
    finally:
        await client.close()


# -- the hub (pure: no socket)


class Recorder:
    def __init__(self) -> None:
        self.frames: list[tuple[int, str]] = []

    def deliver(self, seq: int, frame: str) -> None:
        self.frames.append((seq, frame))


def stored(seq: int, session: str, event: str) -> StoredEvent:
    return StoredEvent("acme", seq, session, event, msgspec.json.encode({"status": "qr"}), 1.0)


def test_the_hub_hands_each_event_to_the_matching_subscribers_only_with_one_shared_frame() -> None:
    hub = EventHub()
    everything, s1, s1_messages, other_tenant = Recorder(), Recorder(), Recorder(), Recorder()
    hub.subscribe("acme", everything)
    hub.subscribe("acme", s1, event_filter(["s1"], None))
    hub.subscribe("acme", s1_messages, event_filter(["s1", "s3"], ["message.*"]))
    hub.subscribe("other", other_tenant)
    hub.publish(
        [
            stored(1, "s1", "session.status"),
            stored(2, "s2", "message.received"),
            stored(3, "s1", "message.received"),
        ]
    )
    assert [seq for seq, _ in everything.frames] == [1, 2, 3]
    assert [seq for seq, _ in s1.frames] == [1, 3]
    assert [seq for seq, _ in s1_messages.frames] == [3]
    assert other_tenant.frames == []
    # Encoded once: every subscriber that wants event 3 holds the very same string.
    assert everything.frames[2][1] is s1.frames[1][1] is s1_messages.frames[0][1]
    # Subscribing again replaces the filter; unsubscribing removes it from every index.
    hub.subscribe("acme", s1, event_filter(None, ["session.status"]))
    hub.unsubscribe("acme", s1_messages)
    hub.publish([stored(4, "s3", "message.received"), stored(5, "s2", "session.status")])
    assert [seq for seq, _ in s1.frames] == [1, 3, 5]
    assert [seq for seq, _ in s1_messages.frames] == [3]
    assert hub.connection_count() == 3


# -- over the socket


async def test_a_connection_subscribed_to_one_session_gets_only_its_events(gateway: RunningGateway) -> None:
    async with gateway.connect() as producer, gateway.connect() as everything, gateway.connect() as only_s1:
        await pair_two(producer)
        reply = await only_s1.request("subscribe", sessions=["s1"])
        assert reply["ok"] and reply["data"] == {"sessions": ["s1"], "events": None}, reply
        mark = len(only_s1.events)
        other = await receive(producer, "s2", "for s2")
        mine = await receive(producer, "s1", "for s1")
        await received_on(only_s1, mine)
        assert {e["session"] for e in only_s1.events[mark:]} == {"s1"}
        assert other not in [e["data"].get("message_id") for e in only_s1.events]
        # The connection without a subscription still gets everything.
        await received_on(everything, other)
        await received_on(everything, mine)
        # Subscribing again replaces the subscription: an empty one is every session again.
        reply = await only_s1.request("subscribe", sessions=[])
        assert reply["data"] == {"sessions": None, "events": None}
        again = await receive(producer, "s2", "for everyone")
        await received_on(only_s1, again)


async def test_an_event_wildcard_keeps_only_those_event_types(gateway: RunningGateway) -> None:
    async with gateway.connect() as producer, gateway.connect() as messages:
        await producer.pair("s1", PHONE_1)
        reply = await messages.request("subscribe", events=["message.*", "presence"])
        assert reply["ok"], reply
        assert reply["data"]["sessions"] is None
        assert {"message.received", "message.status", "presence"} <= set(reply["data"]["events"])
        assert not any(name.startswith("session.") for name in reply["data"]["events"])
        mark = len(messages.events)
        await producer.call("sim.network", session="s1", online=False)
        await producer.status("s1", "disconnected")
        await producer.call("sim.network", session="s1", online=True)
        await producer.status("s1", "connected")
        message_id = await receive(producer, "s1", "hello")
        await received_on(messages, message_id)
        names = {e["event"] for e in messages.events[mark:]}
        assert names == {"message.received"}, names


async def test_resume_replays_only_the_subscribed_events(gateway: RunningGateway) -> None:
    async with gateway.connect() as producer:
        await pair_two(producer)
        start = (await producer.call("events.fetch", after=0))["last_seq"]
        missed = [await receive(producer, session, f"while away {n}") for n in range(3) for session in ("s2", "s1")]
        await received_on(producer, missed[-1])  # stored, hence in the log
        log = (await producer.call("events.fetch", after=start, limit=1000))["events"]
        expected = [e["seq"] for e in log if e["session"] == "s1"]
        assert len(expected) >= 3
        async with authenticated(gateway, resume_from=start, sessions=["s1"]) as client:
            assert client.ready is not None and client.ready["resume"] == "ok"
            # After the replay, a live event of s2 then one of s1: only the s1 one may come.
            await receive(producer, "s2", "live, s2")
            live = await receive(producer, "s1", "live, s1")
            await received_on(client, live)
            seqs = [e["seq"] for e in client.events]
            assert seqs[: len(expected)] == expected
            assert {e["session"] for e in client.events} == {"s1"}
            got = [e["data"].get("message_id") for e in client.events]
            assert [m for m in missed if m in got] == missed[1::2]  # the s1 ones, in order


async def test_an_auth_frame_subscription_filters_from_the_first_event(gateway: RunningGateway) -> None:
    async with gateway.connect() as producer:
        await pair_two(producer)
        async with authenticated(gateway, sessions=["s2"], events=["message.received"]) as client:
            assert client.ready is not None and client.ready["resume"] == "none"
            await producer.call("sim.restrict", session="s2", seconds=1)  # session.restricted: not asked for
            await receive(producer, "s1", "not for you")
            mine = await receive(producer, "s2", "for you")
            await received_on(client, mine)
            assert [(e["session"], e["event"]) for e in client.events] == [("s2", "message.received")]
            # A later subscribe replaces what the auth frame asked for.
            reply = await client.request("subscribe", sessions=["s1"])
            assert reply["data"] == {"sessions": ["s1"], "events": None}


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"events": ["message.recieved"]}, "unknown event type 'message.recieved'"),
        ({"events": ["chats.*"]}, "no event type matches 'chats.*'"),
        ({"events": ["message*"]}, "$.events[0]"),
        ({"events": [""]}, "$.events[0]"),
        ({"sessions": ["not a name"]}, "$.sessions[0]"),
        ({"sessions": [f"s{n}" for n in range(MAX_FILTER_SESSIONS + 1)]}, "$.sessions"),
        ({"sessions": "s1"}, "$.sessions"),
    ],
)
async def test_invalid_filters_are_refused_with_a_stable_code(
    gateway: RunningGateway, fields: dict[str, Any], says: str
) -> None:
    valid_form = "unknown" in says or "matches" in says
    async with gateway.connect() as client:
        assert (await client.call("subscribe", sessions=["s1"]))["sessions"] == ["s1"]
        reply = await client.request("subscribe", validate=valid_form, **fields)
        assert not reply["ok"] and reply["error"]["code"] == "invalid_request", reply
        assert says in reply["error"]["message"], reply
        fetch = await client.request("events.fetch", after=0, validate=valid_form, **fields)
        assert not fetch["ok"] and fetch["error"]["code"] == "invalid_request", fetch
        # A refused subscribe leaves the one in force.
        assert (await client.call("subscribe", sessions=["s1"]))["sessions"] == ["s1"]
    # In the auth frame: an error frame naming the field, then close 4400 (the token may be fine).
    client = await RawClient.open(gateway.url)
    try:
        await client.send({"type": "auth", "token": await gateway.token(), **fields}, validate=valid_form)
        error = await client.recv()
        assert error["type"] == "error" and error["code"] == "invalid_request", error
        assert "auth" in error["message"] and says in error["message"], error
        await asyncio.wait_for(client.ws.wait_closed(), TIMEOUT)
        assert client.ws.close_code == 4400
    finally:
        await client.close()


async def test_events_fetch_filters_and_pages_by_the_matching_events(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await pair_two(client)
        start = (await client.call("events.fetch", after=0))["last_seq"]
        for n in range(3):
            await receive(client, "s1", f"one {n}")
            last = await receive(client, "s2", f"two {n}")
        await received_on(client, last)
        everything = (await client.call("events.fetch", after=start, limit=1000))["events"]
        wanted = [e for e in everything if e["session"] == "s2" and e["event"] == "message.received"]
        assert len(wanted) == 3
        paged: list[dict[str, Any]] = []
        after = start
        while True:
            page = await client.call("events.fetch", after=after, limit=1, sessions=["s2"], events=["message.received"])
            if not page["events"]:
                break
            paged += page["events"]
            after = page["events"][-1]["seq"]
        assert paged == wanted


async def test_rest_pages_and_sse_streams_take_the_same_filters(gateway: RunningGateway) -> None:
    rest = await gateway.rest()
    try:
        for name in ("a", "b"):
            await rest.ok("POST", "/v1/sessions/{session}/start", session=name)
        all_events = (await rest.ok("GET", "/v1/events", params={"after": 0, "limit": 1000}))["events"]
        of_b = [e for e in all_events if e["session"] == "b"]
        page = await rest.ok("GET", "/v1/events", params={"after": 0, "limit": 1000, "sessions": ["b"]})
        assert page["events"] == of_b and of_b
        statuses = await rest.ok(
            "GET", "/v1/events", params=[("after", "0"), ("limit", "1000"), ("events", "session.status")]
        )
        assert statuses["events"] == [e for e in all_events if e["event"] == "session.status"]
        bad = await rest.call("GET", "/v1/events", params={"after": 0, "events": "session.statsu"})
        assert bad.status == 400 and bad.body["code"] == "invalid_request"
        assert "session.statsu" in bad.body["message"]
        # The stream replays b's events, then pushes b's live ones only.
        headers = {"Authorization": f"Bearer {rest.token}", "Accept": "text/event-stream"}
        params = {"after": 0, "sessions": "b", "events": "session.*"}
        async with rest.http.stream("GET", "/v1/events", params=params, headers=headers) as response:
            assert response.status_code == 200
            stream = SSE(response)
            replayed = events_of(await stream.take(1 + len(of_b)))
            assert replayed == of_b
            await rest.ok("POST", "/v1/sessions/{session}/stop", session="a")
            await rest.ok("POST", "/v1/sessions/{session}/stop", session="b")
            live: list[dict[str, Any]] = []
            while not any(f["data"].get("status") == "stopped" for f in live):
                live += events_of(await stream.take(1))
            assert {f["session"] for f in live} == {"b"}
        # A long-poll for b's events is not woken by a's.
        last = (await rest.ok("GET", "/v1/events", params={"after": 0}))["last_seq"]
        poll = asyncio.create_task(rest.ok("GET", "/v1/events", params={"after": last, "wait": 30, "sessions": "b"}))
        await rest.ok("POST", "/v1/sessions/{session}/start", session="a")
        await rest.ok("POST", "/v1/sessions/{session}/start", session="b")
        answer = await asyncio.wait_for(poll, TIMEOUT)
        assert answer["events"] and {e["session"] for e in answer["events"]} == {"b"}
    finally:
        await rest.close()


async def test_with_two_nodes_a_subscription_gets_the_other_nodes_session_only(tmp_path: Path) -> None:
    """The events of a session another node runs reach this node through the bus and the log (the hub's cursor);
    a subscribed connection here gets exactly the subscribed session's ones, in order, and nothing else."""
    require("redis")
    async with cluster(tmp_path, 2, REDIS_URL) as nodes:
        async with nodes[0].connect() as setup:
            await setup.pair("s0", PHONES[0])
            await setup.pair("s1", PHONES[1])
        await spread(nodes, 2)
        elsewhere = next(name for name in ("s0", "s1") if name not in runs(nodes[0]))
        here = "s0" if elsewhere == "s1" else "s1"
        async with authenticated(nodes[0], sessions=[elsewhere]) as client, nodes[1].connect() as producer:
            start = client.ready["last_seq"] if client.ready else 0
            sent = []
            for n in range(5):
                await receive(producer, here, f"here {n}")
                sent.append(await receive(producer, elsewhere, f"elsewhere {n}"))
            await received_on(client, sent[-1])
            page = await producer.call("events.fetch", after=start, limit=1000, sessions=[elsewhere])
            expected = [e["seq"] for e in page["events"] if e["seq"] <= client.events[-1]["seq"]]
            assert [e["seq"] for e in client.events] == expected
            assert {e["session"] for e in client.events} == {elsewhere}
            got = [e["data"]["message_id"] for e in client.events if e["event"] == "message.received"]
            assert got == sent
