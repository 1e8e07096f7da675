"""The protocol as docs/protocol.md states it, checked over a real socket: the places where the 0.1 review found
the server and the documentation disagreeing, and the command registry (scopes, one handler per command)."""

from __future__ import annotations

import json

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from zapgate.auth import Caller
from zapgate.errors import Forbidden, InvalidRecipient
from zapgate.jid import parse_recipient
from zapgate.protocol import Scope, SessionList, SessionStart
from zapgate.server.commands import run_command

from .support import TIMEOUT, RawClient, RunningGateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"


async def closed_with(client: RawClient) -> tuple[int | None, list[dict[str, object]]]:
    frames = []
    try:
        while True:
            frames.append(await client.recv())
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), frames


@pytest.mark.parametrize("resume_from", ["3", -1, 1.5])
async def test_a_malformed_auth_field_is_invalid_request_with_4400_not_unauthorized(
    gateway: RunningGateway, resume_from: object
) -> None:
    client = await RawClient.open(gateway.url)
    await client.send({"type": "auth", "token": await gateway.token(), "resume_from": resume_from}, validate=False)
    code, frames = await closed_with(client)
    assert code == 4400
    assert frames[0]["type"] == "error" and frames[0]["code"] == "invalid_request"
    assert "resume_from" in str(frames[0]["message"])


async def test_an_unknown_field_in_auth_is_named(gateway: RunningGateway) -> None:
    client = await RawClient.open(gateway.url)
    await client.send({"type": "auth", "token": await gateway.token(), "tenant": "x"}, validate=False)
    code, frames = await closed_with(client)
    assert code == 4400 and "tenant" in str(frames[0]["message"])


async def test_a_numeric_id_gets_an_error_saying_ids_are_strings(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.send({"type": "ping", "id": 5}, validate=False)
        frame = await client.recv()
        assert frame["type"] == "error" and frame["code"] == "invalid_frame"
        assert "'id' must be a string" in frame["message"]
        assert await client.call("ping")  # still usable


async def test_from_me_is_always_present_and_message_read_counts_what_was_read(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("bob", BOB)
        sent = await client.call("message.send", session="alice", to=BOB, text="oi")
        received = await client.event("message.received", lambda e: e["session"] == "bob")
        assert received["data"]["from_me"] is False
        alice_chat = received["data"]["chat"]
        unknown = [f"3EB0{i:018X}" for i in range(5)]
        answer = await client.call(
            "message.read", session="bob", chat=alice_chat, message_ids=[sent["message_id"], *unknown]
        )
        assert answer == {"read": 1}
        await client.event(
            "message.status",
            lambda e: e["session"] == "alice"
            and e["data"]["message_id"] == sent["message_id"]
            and e["data"]["status"] == "read",
        )
        nothing = await client.call("message.read", session="bob", chat=alice_chat, message_ids=unknown)
        assert nothing == {"read": 0}


async def test_a_device_qualified_jid_is_a_valid_recipient(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        bob = await client.pair("bob", BOB)
        bob_device = bob["data"]["me"]["jid"]
        assert ":" in bob_device
        sent = await client.call("message.send", session="alice", to=bob_device, text="to a device jid")
        assert sent["chat"] == "5521988880002@s.whatsapp.net"
    assert str(parse_recipient("123456789012:7@lid")) == "123456789012@lid"


async def test_a_bad_pair_phone_is_invalid_recipient(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        reply = await client.request("session.start", session="s", pair_phone="0800 123")
        assert reply["error"]["code"] == "invalid_recipient" and "pair_phone" in reply["error"]["message"]


async def test_events_fetch_after_the_newest_event_is_a_gap_and_at_the_newest_is_not(
    gateway: RunningGateway,
) -> None:
    async with gateway.connect() as client:
        await client.call("session.start", session="s")
        await client.event("session.qr")
        page = await client.call("events.fetch", after=0)
        newest = page["last_seq"]
        assert not page["gap"] and page["events"][-1]["seq"] == newest
        assert await client.call("events.fetch", after=newest) == {
            "events": [],
            "oldest_seq": page["oldest_seq"],
            "last_seq": newest,
            "gap": False,
        }
        assert (await client.call("events.fetch", after=newest + 1))["gap"] is True


async def test_the_zapgate_subprotocol_is_selected_when_offered(gateway: RunningGateway) -> None:
    async with websockets.connect(
        gateway.url, subprotocols=[websockets.Subprotocol("zapgate.v1")], open_timeout=TIMEOUT
    ) as ws:
        assert ws.subprotocol == "zapgate.v1"
        hello = json.loads(await ws.recv())
        assert hello["type"] == "hello"


async def test_scopes_are_checked_before_the_handler_runs(gateway: RunningGateway) -> None:
    reader = Caller(tenant="acme", token_id=None, scopes=frozenset({Scope.READ}))
    with pytest.raises(Forbidden, match="tenant"):
        await run_command(gateway.gateway, reader, SessionStart(id="1", session="s"))
    assert gateway.gateway.sessions.for_tenant("acme") == []  # nothing was created
    listed = await run_command(gateway.gateway, reader, SessionList(id="2"))
    assert listed.sessions == []


def test_invalid_recipients_keep_their_code() -> None:
    with pytest.raises(InvalidRecipient):
        parse_recipient("12:3@g.us")
