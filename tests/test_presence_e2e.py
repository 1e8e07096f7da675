"""Presence end to end over a real socket on the simulator: a session's typing and online status reach the
sessions that subscribed to it, and nobody else; the echo contact types before it answers; the SDK's methods
and typed events; repeats dropped; errors when the session cannot send presence."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from zapgate.client import Presence, connect
from zapgate.engines.base import PresenceIn
from zapgate.protocol import PresenceData
from zapgate.sessions.presence import REPEAT_WINDOW_S
from zapgate.sessions.presence import Presence as PresenceService

from .support import RunningGateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
CAROL = "+55 31 97777-0003"
ALICE_JID = "5511999990001@s.whatsapp.net"
BOB_JID = "5521988880002@s.whatsapp.net"
ECHO_JID = "15550000000@s.whatsapp.net"


def presence_of(session: str, state: str) -> Any:
    return lambda e: e["session"] == session and e["data"]["state"] == state


async def test_typing_and_online_status_reach_only_the_subscribers(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        for session, phone in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
            await client.pair(session, phone)
        # Bob subscribes to Alice; WhatsApp answers at once with her current presence.
        assert await client.call("presence.subscribe", session="bob", chat=ALICE) == {}
        first = await client.event("presence", lambda e: e["session"] == "bob")
        assert first["data"] == {"chat": ALICE_JID, "from": ALICE_JID, "state": "unavailable"}

        await client.call("presence.set", session="alice", state="available")
        online = await client.event("presence", presence_of("bob", "available"))
        assert online["data"] == {"chat": ALICE_JID, "from": ALICE_JID, "state": "available"}

        for state in ("typing", "recording", "paused"):
            assert await client.call("chat.presence", session="alice", chat=BOB, state=state) == {}
            seen = await client.event("presence", presence_of("bob", state))
            assert seen["data"] == {"chat": ALICE_JID, "from": ALICE_JID, "state": state}

        before = time.time()
        await client.call("presence.set", session="alice", state="unavailable")
        offline = await client.event("presence", presence_of("bob", "unavailable"))
        assert offline["data"]["last_seen"] >= int(before)

        # Carol did not subscribe to Alice: typing to her is not shown; and Alice never subscribed to Bob.
        await client.call("chat.presence", session="alice", chat=CAROL, state="typing")
        await client.call("chat.presence", session="bob", chat=ALICE, state="typing")
        await client.call("ping")  # a round trip after the sends: anything they caused has been stored
        stored = await client.call("events.fetch", after=0, limit=1000)
        sessions = {e["session"] for e in stored["events"] if e["event"] == "presence"}
        assert sessions == {"bob"}


async def test_the_echo_contact_types_before_it_answers(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.call("presence.subscribe", session="alice", chat="+1 555 000 0000")
        online = await client.event("presence", lambda e: e["session"] == "alice")
        assert online["data"] == {"chat": ECHO_JID, "from": ECHO_JID, "state": "available"}
        await client.call("message.send", session="alice", to="+1 555 000 0000", text="ping")
        typing = await client.event("presence", presence_of("alice", "typing"))
        answer = await client.event("message.received", lambda e: e["session"] == "alice")
        assert typing["data"]["from"] == ECHO_JID and typing["seq"] < answer["seq"]


async def test_presence_commands_need_a_paired_connected_session(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.call("session.start", session="fresh")
        refused = await client.request("chat.presence", session="fresh", chat=BOB, state="typing")
        assert refused["error"]["code"] == "session_not_paired"
        await client.pair("alice", ALICE)
        await client.call("sim.network", session="alice", online=False)
        await client.status("alice", "disconnected")
        offline = await client.request("presence.set", session="alice", state="available")
        assert offline["error"]["code"] == "engine_unavailable"
        await client.call("sim.network", session="alice", online=True)
        await client.status("alice", "connected")
        bad = await client.request("chat.presence", session="alice", chat=BOB, state="dancing", validate=False)
        assert bad["error"]["code"] == "invalid_request"
        group = await client.request("presence.subscribe", session="alice", chat="120363000000000000@g.us")
        assert group["error"]["code"] == "send_failed"


async def test_the_sdk_methods_and_typed_presence_events(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("bob", BOB)
    async with connect(gateway.url, token) as gw:
        await gw.subscribe_presence("bob", ALICE)
        await gw.set_presence("alice", "available")
        await gw.chat_presence("alice", BOB, "recording")
        states = []
        async for event in gw.events():
            if isinstance(event, Presence):
                assert event.session == "bob" and event.data.from_ == ALICE_JID
                states.append(event.data.state)
            if states[-1:] == ["recording"]:
                break
        assert states == ["unavailable", "available", "recording"]


class _Storage:
    def __init__(self) -> None:
        self.events: list[Any] = []

    async def append_events(self, events: list[Any]) -> list[Any]:
        self.events += events
        return events


class _Session:
    id = "ses_1"
    name = "main"
    paired = True


async def test_repeats_within_the_window_are_dropped(tmp_path: Path) -> None:
    now = [1000.0]
    storage = _Storage()
    service = PresenceService(
        engine=None,  # type: ignore[arg-type]
        storage=storage,  # type: ignore[arg-type]
        lookup=lambda tenant, name: _Session(),
        event=lambda session, name, data: (name, data),  # type: ignore[arg-type,return-value]
        clock=lambda: now[0],
    )
    typing = PresenceIn(chat=BOB_JID, sender=BOB_JID, state="typing")
    await service.received(_Session(), typing)
    now[0] += 2
    await service.received(_Session(), typing)  # WhatsApp repeats it while Bob keeps typing
    await service.received(_Session(), PresenceIn(chat=ALICE_JID, sender=ALICE_JID, state="typing"))
    now[0] += REPEAT_WINDOW_S
    await service.received(_Session(), typing)  # typing again, later: reported
    await service.received(_Session(), PresenceIn(chat=BOB_JID, sender=BOB_JID, state="paused"))
    assert storage.events == [
        ("presence", PresenceData(chat=BOB_JID, from_=BOB_JID, state="typing")),
        ("presence", PresenceData(chat=ALICE_JID, from_=ALICE_JID, state="typing")),
        ("presence", PresenceData(chat=BOB_JID, from_=BOB_JID, state="typing")),
        ("presence", PresenceData(chat=BOB_JID, from_=BOB_JID, state="paused")),
    ]
