"""Every kind of message, both ways, end to end over a real socket on the simulator: what one session sends,
another receives with the same content, field by field; reactions, edits, revokes and votes land on the
messages they are about."""

from __future__ import annotations

from typing import Any

import pytest

from .support import RawClient, RunningGateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
BOB_JID = "5521988880002@s.whatsapp.net"
ALICE_JID = "5511999990001@s.whatsapp.net"
ECHO = "+1 555 000 0000"


async def pair_both(client: RawClient) -> None:
    await client.pair("alice", ALICE)
    await client.pair("bob", BOB)


async def alice_to_bob(
    client: RawClient, content: dict[str, Any], **extra: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Alice sends ``content`` to Bob; returns her reply and the event Bob's session gets for it."""
    sent = await client.call("message.send", session="alice", to=BOB, content=content, **extra)
    assert sent["status"] == "sent"
    received = await client.event(
        "message.received", lambda e: e["session"] == "bob" and e["data"]["message_id"] == sent["message_id"]
    )
    return sent, received["data"]


CONTENTS = [
    {"kind": "text", "text": "olá, Bob"},
    {"kind": "location", "latitude": -23.5613, "longitude": -46.6565, "name": "MASP", "address": "Av. Paulista, 1578"},
    {
        "kind": "contacts",
        "contacts": [
            {"name": "Carla", "phones": ["+5511988887777"]},
            {"vcard": "BEGIN:VCARD\nVERSION:3.0\nFN:Davi\nTEL;waid=5521977776666:+55 21 97777-6666\nEND:VCARD"},
        ],
    },
    {"kind": "poll", "question": "Pizza?", "options": ["sim", "não", "talvez"], "selectable": 2},
]


@pytest.mark.parametrize("content", CONTENTS, ids=[c["kind"] for c in CONTENTS])
async def test_each_kind_arrives_with_the_same_content(gateway: RunningGateway, content: dict[str, Any]) -> None:
    async with gateway.connect() as client:
        await pair_both(client)
        _, received = await alice_to_bob(client, content)
        assert received["kind"] == content["kind"]
        assert received["content"] == content
        assert received["chat"] == ALICE_JID and received["from"] == ALICE_JID and received["from_me"] is False


async def test_text_with_mentions_reply_and_forwarded_flag(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await pair_both(client)
        first, _ = await alice_to_bob(client, {"kind": "text", "text": "primeira"})
        _, received = await alice_to_bob(
            client,
            {"kind": "text", "text": "oi @5511977776666, veja"},
            mentions=["+55 21 96666-5555"],
            reply_to=first["message_id"],
            forwarded=True,
        )
        assert received["reply_to"] == first["message_id"]
        assert received["mentions"] == ["5521966665555@s.whatsapp.net", "5511977776666@s.whatsapp.net"]
        assert received["forwarded"] is True


async def test_reaction_edit_and_revoke_land_on_their_message(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await pair_both(client)
        sent, _ = await alice_to_bob(client, {"kind": "text", "text": "reunião às 10h"})
        mid = sent["message_id"]

        edited = await client.call(
            "message.send", session="alice", to=BOB, content={"kind": "edit", "message_id": mid, "text": "às 11h"}
        )
        assert edited["message_id"] != mid
        event = await client.event("message.edited", lambda e: e["session"] == "bob")
        assert event["data"]["message_id"] == mid and event["data"]["content"] == {"kind": "text", "text": "às 11h"}

        # Bob reacts to Alice's message, then takes the reaction back.
        for emoji in ("👍", ""):
            await client.call(
                "message.send", session="bob", to=ALICE, content={"kind": "reaction", "message_id": mid, "emoji": emoji}
            )
            reaction = await client.event(
                "message.reaction", lambda e, x=emoji: e["session"] == "alice" and e["data"]["emoji"] == x
            )
            assert reaction["data"]["message_id"] == mid and reaction["data"]["from"] == BOB_JID

        await client.call("message.send", session="alice", to=BOB, content={"kind": "revoke", "message_id": mid})
        revoked = await client.event("message.revoked", lambda e: e["session"] == "bob")
        assert revoked["data"]["message_id"] == mid and revoked["data"]["from"] == ALICE_JID


async def test_whatsapp_refuses_edits_and_revokes_of_someone_elses_message(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await pair_both(client)
        sent, _ = await alice_to_bob(client, {"kind": "text", "text": "minha"})
        for content in (
            {"kind": "edit", "message_id": sent["message_id"], "text": "tua"},
            {"kind": "revoke", "message_id": sent["message_id"]},
        ):
            reply = await client.request("message.send", session="bob", to=ALICE, content=content)
            assert (
                reply["error"]["code"] == "invalid_request"
                and "not a message this session sent" in reply["error"]["message"]
            )


async def test_a_poll_is_voted_on(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await pair_both(client)
        poll, _ = await alice_to_bob(client, {"kind": "poll", "question": "Cor?", "options": ["azul", "verde"]})
        await client.call(
            "message.send",
            session="bob",
            to=ALICE,
            content={"kind": "vote", "message_id": poll["message_id"], "options": ["verde"]},
        )
        vote = await client.event("poll.vote", lambda e: e["session"] == "alice")
        assert vote["data"]["message_id"] == poll["message_id"]
        assert vote["data"]["options"] == ["verde"] and vote["data"]["from"] == BOB_JID
        too_many = await client.request(
            "message.send",
            session="bob",
            to=ALICE,
            content={"kind": "vote", "message_id": poll["message_id"], "options": ["azul", "verde"]},
        )
        assert too_many["error"]["code"] == "send_failed" and "vote_refused" in too_many["error"]["message"]


async def test_the_echo_contact_votes_in_polls_and_echoes_locations(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        poll = await client.call(
            "message.send",
            session="alice",
            to=ECHO,
            content={"kind": "poll", "question": "?", "options": ["um", "dois"]},
        )
        vote = await client.event("poll.vote", lambda e: e["data"]["message_id"] == poll["message_id"])
        assert vote["data"]["options"] == ["um"]
        pin = {"kind": "location", "latitude": 1.5, "longitude": 2.5}
        sent = await client.call("message.send", session="alice", to=ECHO, content=pin)
        echo = await client.event("message.received", lambda e: e["data"].get("reply_to") == sent["message_id"])
        assert echo["data"]["content"] == pin and echo["data"]["kind"] == "location"


async def test_a_contact_sends_any_kind_through_the_simulator(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.call("sim.receive", session="alice", **{"from": BOB}, text="eu existo")
        sent = await client.call("message.send", session="alice", to=BOB, text="oi")
        await client.call(
            "sim.receive",
            session="alice",
            **{"from": BOB},
            content={"kind": "reaction", "message_id": sent["message_id"], "emoji": "❤️"},
        )
        reaction = await client.event("message.reaction", lambda e: e["session"] == "alice")
        assert reaction["data"]["emoji"] == "❤️" and reaction["data"]["message_id"] == sent["message_id"]


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"content": {"kind": "unsupported", "type": "x"}}, "cannot be sent"),
        ({"content": {"kind": "text", "text": "a"}, "text": "b"}, "exactly one of 'content' and 'text'"),
        ({}, "exactly one of 'content' and 'text'"),
        ({"content": {"kind": "poll", "question": "?", "options": ["a", "a"]}}, "options must differ"),
        ({"content": {"kind": "contacts", "contacts": [{"name": "só nome"}]}}, "contacts[0]"),
        ({"content": {"kind": "location", "latitude": 1, "longitude": 2, "live": True}}, "live location"),
        ({"content": {"kind": "text", "text": "x"}, "mentions": ["all"]}, "invalid_recipient: not a group"),
        ({"content": {"kind": "image", "media": {"id": "med_abcdefgh", "url": "https://x/y"}}}, "exactly one of id"),
        ({"content": {"kind": "location", "latitude": 91, "longitude": 0}}, "$.content.latitude"),
    ],
)
async def test_bad_content_is_refused_with_a_precise_error(
    gateway: RunningGateway, fields: dict[str, Any], says: str
) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        reply = await client.request("message.send", session="alice", to=BOB, validate=False, **fields)
        code, _, says = says.rpartition(": ") if says.startswith("invalid_") else ("invalid_request", "", says)
        assert reply["error"]["code"] == code, reply
        assert says in reply["error"]["message"]


async def test_the_idempotency_fingerprint_covers_the_content(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await pair_both(client)
        pin = {"kind": "location", "latitude": 1.0, "longitude": 2.0}
        first = await client.call("message.send", session="alice", to=BOB, content=pin, idempotency_key="k")
        again = await client.call("message.send", session="alice", to=BOB, content=pin, idempotency_key="k")
        assert again["message_id"] == first["message_id"]
        moved = await client.request(
            "message.send", session="alice", to=BOB, content=pin | {"latitude": 1.5}, idempotency_key="k"
        )
        assert moved["error"]["code"] == "idempotency_conflict"
