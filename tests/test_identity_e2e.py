"""Who is who, end to end over a real socket on the simulator: every event names a person by phone number and by
LID when the session knows both; a sender who hides their number arrives by LID alone and can be answered by LID
or by phone number; answering by number teaches the session the pair, which ``contact.resolve`` then tells and
later events carry; the map survives a restart. Plus the pure map and its storage on every backend."""

from __future__ import annotations

from typing import Any

from zapgate.config import Settings
from zapgate.sessions.identity import IdentityMap
from zapgate.storage import Storage

from .support import RunningGateway, serve_gateway

ALICE = "+55 11 99999-0001"
ALICE_JID = "5511999990001@s.whatsapp.net"
DAVE = "+55 21 98888-0004"
DAVE_JID = "5521988880004@s.whatsapp.net"
BOB = "+55 31 97777-0002"
BOB_JID = "5531977770002@s.whatsapp.net"


def received_by(session: str, text: str) -> Any:
    return lambda e: e["session"] == session and e["data"].get("text") == text


async def test_a_sender_hiding_their_number_is_answered_by_lid_and_by_number(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("dave", DAVE)
        dave = await client.call("sim.contact", phone=DAVE, hide_phone=True)
        assert dave["jid"] == DAVE_JID and dave["lid"].endswith("@lid") and dave["hide_phone"] is True
        lid = dave["lid"]

        # Dave writes to Alice: WhatsApp shows him by LID alone.
        await client.call("message.send", session="dave", to=ALICE, text="hello from a hidden number")
        first = await client.event("message.received", received_by("alice", "hello from a hidden number"))
        assert (first["data"]["from"], first["data"]["from_lid"]) == (lid, lid)
        assert (first["data"]["chat"], first["data"]["chat_lid"]) == (lid, lid)
        assert await client.call("contact.resolve", session="alice", contact=lid) == {"lid": lid}

        # Alice answers the LID as it came: Dave gets it (and sees Alice by number, with her LID).
        sent = await client.call("message.send", session="alice", to=lid, text="answer by lid")
        assert sent["status"] == "sent" and sent["chat"] == lid
        got = await client.event("message.received", received_by("dave", "answer by lid"))
        assert got["data"]["from"] == ALICE_JID and got["data"]["from_lid"].endswith("@lid")

        # Alice knows Dave's number from elsewhere and answers by number: that works too, and WhatsApp's answer
        # to the look-up teaches her session the pair.
        sent = await client.call("message.send", session="alice", to=DAVE, text="answer by number")
        assert sent["chat"] == DAVE_JID
        await client.event("message.received", received_by("dave", "answer by number"))
        both = {"jid": DAVE_JID, "lid": lid, "phone": "5521988880004"}
        assert await client.call("contact.resolve", session="alice", contact=lid) == both
        assert await client.call("contact.resolve", session="alice", contact=DAVE) == both
        assert await client.call("contact.resolve", session="alice", contact=DAVE_JID) == both

        # From now on Dave's messages name him both ways, and a reply by LID goes to his number.
        await client.call("message.send", session="dave", to=ALICE, text="again")
        again = await client.event("message.received", received_by("alice", "again"))
        assert (again["data"]["from"], again["data"]["from_lid"]) == (DAVE_JID, lid)
        assert (again["data"]["chat"], again["data"]["chat_lid"]) == (DAVE_JID, lid)
        sent = await client.call("message.send", session="alice", to=lid, text="by lid, now known")
        assert sent["chat"] == DAVE_JID
        await client.event("message.received", received_by("dave", "by lid, now known"))
        status = await client.event(
            "message.status", lambda e: e["session"] == "alice" and e["data"]["message_id"] == sent["message_id"]
        )
        assert status["data"]["chat"] == DAVE_JID

        # Read receipts for a message that came by LID reach Dave.
        assert await client.call("message.read", session="alice", chat=lid, message_ids=[first["data"]["message_id"]])
        read = await client.event("message.status", lambda e: e["session"] == "dave" and e["data"]["status"] == "read")
        assert read["data"]["chat"] == ALICE_JID and read["data"]["chat_lid"].endswith("@lid")


async def test_every_form_resolves_and_addresses_the_same_person(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        bob = await client.call("sim.contact", phone=BOB)
        assert bob["hide_phone"] is False
        # Before anything was seen, only the form asked is known.
        assert await client.call("contact.resolve", session="alice", contact=BOB) == {
            "jid": BOB_JID,
            "phone": "5531977770002",
        }
        await client.call("sim.receive", session="alice", **{"from": BOB}, text="hi")
        hi = await client.event("message.received", received_by("alice", "hi"))
        assert hi["data"]["from"] == BOB_JID and hi["data"]["from_lid"] == bob["lid"]
        assert hi["data"]["chat"] == BOB_JID and hi["data"]["chat_lid"] == bob["lid"]
        both = {"jid": BOB_JID, "lid": bob["lid"], "phone": "5531977770002"}
        for form in (BOB, BOB_JID, bob["lid"], "5531977770002@c.us"):
            assert await client.call("contact.resolve", session="alice", contact=form) == both
        sent = await client.call("message.send", session="alice", to=bob["lid"], text="to the lid")
        assert sent["chat"] == BOB_JID

        refused = await client.request("contact.resolve", session="alice", contact="120363000000000001@g.us")
        assert refused["error"]["code"] == "invalid_recipient"
        missing = await client.request("contact.resolve", session="nobody", contact=BOB)
        assert missing["error"]["code"] == "session_not_found"


async def test_the_map_survives_a_restart(settings: Settings) -> None:
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("alice", ALICE)
        bob = await client.call("sim.contact", phone=BOB)
        await client.call("sim.receive", session="alice", **{"from": BOB}, text="remember me")
        await client.event("message.received", received_by("alice", "remember me"))
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        answer = await client.call("contact.resolve", session="alice", contact=bob["lid"])
        assert answer == {"jid": BOB_JID, "lid": bob["lid"], "phone": "5531977770002"}
        rest = await gateway.rest()
        try:
            over_http = await rest.ok(
                "GET", "/v1/sessions/{session}/contacts/resolve", session="alice", params={"contact": BOB}
            )
        finally:
            await rest.close()
        assert over_http == answer


def test_the_map_pairs_each_side_once() -> None:
    identities = IdentityMap([("5511999990001", "111")])
    assert identities.both("111@lid").phone == "5511999990001@s.whatsapp.net"
    assert identities.both("5511999990001:3@s.whatsapp.net").lid == "111@lid"
    assert not identities.learn("5511999990001", "111")
    # The number got a new LID (changed hands): the old LID no longer maps to it.
    assert identities.learn("5511999990001", "222")
    assert identities.phone_of("111") is None and identities.lid_of("5511999990001") == "222"
    assert identities.learn_jids("5511999990001@s.whatsapp.net", None) is None
    assert identities.learn_jids("111@lid", "5511999990001@s.whatsapp.net") is None  # sides swapped: ignored
    assert identities.both("120363000000000001@g.us").preferred == "120363000000000001@g.us"
    assert len(identities) == 1


async def test_identities_are_stored_per_session(storage: Storage) -> None:
    store = storage.identities
    await store.save("s1", [("5511999990001", "111"), ("5511999990002", "222")], 1.0)
    await store.save("s2", [("5511999990001", "999")], 1.0)
    await store.save("s1", [("5511999990001", "333")], 2.0)  # a new LID replaces the old pairing
    assert sorted(await store.load("s1")) == [("5511999990001", "333"), ("5511999990002", "222")]
    assert await store.load("s2") == [("5511999990001", "999")]
    await store.save("s1", [("5511999990003", "222")], 3.0)  # the LID now names another number
    assert sorted(await store.load("s1")) == [("5511999990001", "333"), ("5511999990003", "222")]
    assert await store.count("s1") == 2


async def test_a_batch_names_each_message_as_if_named_alone_in_order(storage: Storage) -> None:
    """A batch of received messages is named with what each message and those before it taught, repeated
    addresses included: one seen again after the map learned something is named anew."""
    from zapgate.engines.base import MessageIn
    from zapgate.protocol.content import Text
    from zapgate.sessions.identities import Identities

    lid, other_lid, group = "111@lid", "222@lid", "120363000000000001@g.us"

    def message(n: int, sender: str, sender_lid: str | None, chat: str, chat_lid: str | None = None) -> MessageIn:
        return MessageIn(f"M{n}", chat, sender, Text(text=str(n)), 1, sender_lid=sender_lid, chat_lid=chat_lid)

    batch = [
        message(1, lid, None, lid),  # by LID alone: no number known yet
        message(2, lid, None, lid),
        message(3, ALICE_JID, lid, group),  # teaches Alice's LID
        message(4, lid, None, lid),  # the same addresses as 1 and 2, now known both ways
        message(5, ALICE_JID, other_lid, ALICE_JID, other_lid),  # Alice's number got another LID
        message(6, lid, None, lid),  # the old LID no longer names her number
        message(7, ALICE_JID, None, ALICE_JID),
    ]
    together = Identities(storage.identities)
    named, saved = together.name_messages("batch", await together.map("batch"), batch)
    assert saved is not None
    await saved
    alone = Identities(storage.identities)
    assert named == [(await alone.messages("alone", [event]))[0] for event in batch]
    assert [(m.sender, m.sender_lid) for m in named] == [
        (lid, lid),
        (lid, lid),
        (ALICE_JID, lid),
        (ALICE_JID, lid),
        (ALICE_JID, other_lid),
        (lid, lid),
        (ALICE_JID, other_lid),
    ]
    assert (named[3].chat, named[3].chat_lid) == (ALICE_JID, lid)
    assert sorted(await storage.identities.load("batch")) == [("5511999990001", "222")]
