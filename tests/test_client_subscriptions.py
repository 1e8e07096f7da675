"""The SDK's subscriptions end to end: ``connect(sessions=..., events=...)``, ``Client.subscribe``, and a
subscription that holds across dropped connections, resumes and catch-ups from the log."""

from __future__ import annotations

import asyncio

import pytest

from zapgate.client import Event, EventGap, MessageReceived, SessionStatus
from zapgate.errors import InvalidRequest, Unauthorized

from .support import TIMEOUT, RunningGateway
from .test_client import TcpRelay, next_event, pair, sdk

SENDER = "+55 21 98888-0000"


async def test_a_subscription_at_connect_holds_across_dropped_connections(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with sdk(gateway.url, token) as phone:
        await pair(phone, "a", "+55 11 90000-0101")
        await pair(phone, "b", "+55 11 90000-0102")
        async with TcpRelay(gateway.port) as relay, sdk(relay.url, token, sessions=["a"]) as client:
            assert client.subscription == (["a"], None)
            received: list[Event | EventGap] = []

            async def consume() -> None:
                async for event in client.events():
                    received.append(event)
                    if isinstance(event, MessageReceived) and event.data.text == "a 2-9":
                        return

            consumer = asyncio.create_task(consume())
            for burst in range(3):
                for n in range(10):
                    await phone.sim_receive("b", SENDER, f"b {burst}-{n}")
                    await phone.sim_receive("a", SENDER, f"a {burst}-{n}")
                relay.cut()  # the reconnection's auth frame carries the subscription: the replay is filtered
            async with asyncio.timeout(TIMEOUT):
                await consumer
            assert relay.accepted >= 2, "the SDK should have reconnected through the relay"
            assert not any(isinstance(e, EventGap) for e in received)
            assert {e.session for e in received if isinstance(e, Event)} == {"a"}
            texts = [e.data.text for e in received if isinstance(e, MessageReceived)]
            assert texts == [f"a {b}-{n}" for b in range(3) for n in range(10)]


async def test_subscribe_replaces_the_subscription_and_refuses_unknown_event_types(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with sdk(gateway.url, token) as phone, sdk(gateway.url, token, events=["message.*"]) as client:
        await pair(phone, "a", "+55 11 90000-0103")
        await phone.sim_receive("a", SENDER, "first")
        first = await client.next_event()  # the pairing's session.* events were not sent
        assert isinstance(first, MessageReceived) and first.data.text == "first"
        with pytest.raises(InvalidRequest, match=r"message\.recieved"):
            await client.subscribe(events=["message.recieved"])
        assert client.subscription == (None, ["message.*"])
        applied = await client.subscribe(sessions="a", events=["session.status"])
        assert applied.sessions == ["a"] and applied.events == ["session.status"]
        await phone.sim_receive("a", SENDER, "not any more")
        await phone.stop_session("a")
        stopping = await client.next_event()  # the message came first, but was filtered out
        assert isinstance(stopping, SessionStatus) and stopping.session == "a"
        assert (await client.subscribe()).events is None


async def test_catching_up_from_the_log_reads_only_the_subscribed_events(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with sdk(gateway.url, token) as phone:
        await pair(phone, "a", "+55 11 90000-0104")
        await pair(phone, "b", "+55 11 90000-0105")
        async with sdk(gateway.url, token, max_pending_events=3, sessions=["b"]) as client:
            for n in range(20):
                await phone.sim_receive("a", SENDER, f"a {n}")
                await phone.sim_receive("b", SENDER, f"b {n}")
            await next_event(phone, MessageReceived, lambda e: e.data.text == "b 19")
            got = [await client.next_event() for _ in range(20)]
            assert [e.data.text for e in got if isinstance(e, MessageReceived)] == [f"b {n}" for n in range(20)]
            page = await client.fetch_events(0, limit=1000, sessions=["a"], events=["message.received"])
            assert [e.data.text for e in page.events if isinstance(e, MessageReceived)] == [f"a {n}" for n in range(20)]


async def test_a_subscribed_client_with_a_bad_token_or_filter_fails_at_connect(gateway: RunningGateway) -> None:
    # With a subscription the token goes in the auth frame, not the header: the failures must be the same.
    with pytest.raises(Unauthorized):
        async with sdk(gateway.url, "zgt_000000000000_wrong", sessions=["a"]):
            pass
    with pytest.raises(InvalidRequest, match=r"unknown event type 'sesion\.status'"):
        async with sdk(gateway.url, await gateway.token(), events=["sesion.status"]):
            pass
