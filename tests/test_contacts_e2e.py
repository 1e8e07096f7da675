"""Contacts end to end over a real socket on the simulator: which numbers are on WhatsApp (a Brazilian number
typed with the ninth digit answered as the account registered without it, a business, the 100-number limit),
profiles with the picture served from the media store, privacy, and blocking (a blocked contact's messages stop
arriving)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zapgate.config import Settings

from . import media_kit as kit
from .conftest import fast_settings
from .support import RunningGateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
ALICE_JID = "5511999990001@s.whatsapp.net"
BOB_JID = "5521988880002@s.whatsapp.net"
OLD_NUMBER = "551188887777"
"""A Brazilian mobile number registered before the ninth digit."""
ECHO_JID = "15550000000@s.whatsapp.net"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path, sim_contacts=(OLD_NUMBER,))


async def test_check_numbers(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        me = (await client.pair("alice", ALICE))["data"]["me"]
        phones = ["+55 11 98888-7777", "+55 21 98888-0002", "+1 555 000 0000", "+44 20 7946 0000", BOB]
        await client.pair("bob", BOB)
        answer = await client.call("contact.check", session="alice", phones=phones)
        old, bob, echo, nobody, bob_again = answer["contacts"]
        assert old["phone"] == "+55 11 98888-7777" and old["on_whatsapp"] is True
        assert old["jid"] == f"{OLD_NUMBER}@s.whatsapp.net" and old["lid"].endswith("@lid")
        assert bob["jid"] == BOB_JID and bob_again == bob | {"phone": BOB} and "business" not in bob
        assert echo["jid"] == ECHO_JID and echo["business"] is True and echo["business_name"] == "Zapgate Echo"
        assert nobody == {"phone": "+44 20 7946 0000", "on_whatsapp": False}
        # What WhatsApp answered feeds the session's phone <-> LID map.
        resolved = await client.call("contact.resolve", session="alice", contact=old["lid"])
        assert resolved["jid"] == old["jid"]
        # The LID is the one the account has everywhere (the session's own LID is in `me`).
        mine = await client.call("contact.check", session="bob", phones=[ALICE])
        assert mine["contacts"][0]["lid"] == me["lid"]
        # Sending to the number as typed goes to the account WhatsApp answered.
        sent = await client.call("message.send", session="alice", to="+55 11 98888-7777", text="oi")
        assert sent["chat"] == f"{OLD_NUMBER}@s.whatsapp.net"

        too_many = await client.request("contact.check", session="alice", phones=[BOB] * 101, validate=False)
        assert too_many["error"]["code"] == "invalid_request"
        empty = await client.request("contact.check", session="alice", phones=[], validate=False)
        assert empty["error"]["code"] == "invalid_request"
        bad = await client.request("contact.check", session="alice", phones=[BOB, "not a phone"])
        assert bad["error"]["code"] == "invalid_recipient"
        hundred = [f"+1 555 010 {n:04d}" for n in range(100)]
        assert len((await client.call("contact.check", session="alice", phones=hundred))["contacts"]) == 100


async def test_contact_info_with_picture_and_privacy(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        bob_me = (await client.pair("bob", BOB))["data"]["me"]
        info = await client.call("contact.info", session="alice", contact=BOB)
        assert info["jid"] == BOB_JID and info["lid"] == bob_me["lid"]
        assert info["about"] == "Hey there! I am using WhatsApp." and "business" not in info
        picture = info["picture"]
        assert picture["mimetype"] == "image/png" and picture["size"] > 0
        async with kit.http(gateway.http, await gateway.token()) as http:
            served = await http.get(f"/v1/media/{picture['media_id']}")
        assert served.status_code == 200 and served.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert len(served.content) == picture["size"]
        # The same picture again: the same media id; by LID too.
        again = await client.call("contact.info", session="alice", contact=bob_me["lid"])
        assert again["picture"]["media_id"] == picture["media_id"] and again["jid"] == BOB_JID

        # Bob turns into a business with a new picture: a new picture id and media id.
        await client.call("sim.profile", phone=BOB, business_name="Bob's Bakery", about="Fresh bread", picture=True)
        changed = await client.call("contact.info", session="alice", contact=BOB_JID)
        assert changed["business"] is True and changed["business_name"] == "Bob's Bakery"
        assert changed["about"] == "Fresh bread"
        assert changed["picture"]["picture_id"] != picture["picture_id"]
        assert changed["picture"]["media_id"] != picture["media_id"]
        checked = await client.call("contact.check", session="alice", phones=["+55 21 98888-0002"])
        assert checked["contacts"][0]["business_name"] == "Bob's Bakery"

        # Privacy "nobody": about and picture hidden; the echo contact is a business with a picture.
        await client.call("sim.profile", phone=BOB, hide_profile=True)
        hidden = await client.call("contact.info", session="alice", contact=BOB)
        assert "about" not in hidden and "picture" not in hidden and hidden["push_name"]
        echo = await client.call("contact.info", session="alice", contact="+1 555 000 0000")
        assert echo["business_name"] == "Zapgate Echo" and echo["picture"]["mimetype"] == "image/png"

        nobody = await client.request("contact.info", session="alice", contact="+44 20 7946 0000")
        assert nobody["error"]["code"] == "not_on_whatsapp"
        group = await client.request("contact.info", session="alice", contact="120363000000000000@g.us")
        assert group["error"]["code"] == "send_failed"


async def test_block_and_unblock(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("bob", BOB)
        assert await client.call("contact.blocklist", session="alice") == {"blocked": []}
        assert await client.call("contact.block", session="alice", contact=BOB) == {"jid": BOB_JID, "blocked": True}
        assert await client.call("contact.blocklist", session="alice") == {"blocked": [BOB_JID]}
        assert (await client.call("contact.info", session="alice", contact=BOB))["blocked"] is True
        # Alice blocked Bob: Bob no longer sees her about or picture, and his messages stop reaching her.
        seen_by_bob = await client.call("contact.info", session="bob", contact=ALICE)
        assert "about" not in seen_by_bob and "picture" not in seen_by_bob
        blocked = await client.call("message.send", session="bob", to=ALICE, text="are you there?")
        assert blocked["status"] == "sent"
        await client.call("sim.receive", session="alice", **{"from": BOB}, text="hello?")
        assert await client.call("contact.unblock", session="alice", contact=BOB_JID) == {
            "jid": BOB_JID,
            "blocked": False,
        }
        after = await client.call("message.send", session="bob", to=ALICE, text="now?")
        arrived = await client.event("message.received", lambda e: e["session"] == "alice")
        assert arrived["data"]["message_id"] == after["message_id"]  # nothing sent while blocked arrived
        assert await client.call("contact.blocklist", session="alice") == {"blocked": []}
        # Blocking the Brazilian number as typed with its ninth digit blocks the account WhatsApp knows.
        old = await client.call("contact.block", session="alice", contact="+55 11 98888-7777")
        assert old == {"jid": f"{OLD_NUMBER}@s.whatsapp.net", "blocked": True}


async def test_contact_commands_need_a_connected_session(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.call("session.start", session="fresh")
        for name, fields in (
            ("contact.check", {"phones": [BOB]}),
            ("contact.info", {"contact": BOB}),
            ("contact.block", {"contact": BOB}),
            ("contact.blocklist", {}),
        ):
            refused = await client.request(name, session="fresh", **fields)
            assert refused["error"]["code"] == "session_not_paired", name
        await client.pair("alice", ALICE)
        await client.call("sim.network", session="alice", online=False)
        await client.status("alice", "disconnected")
        offline = await client.request("contact.check", session="alice", phones=[BOB])
        assert offline["error"]["code"] == "engine_unavailable"


async def test_sim_profile_is_for_contacts_and_your_own_phones(gateway: RunningGateway) -> None:
    async with gateway.connect() as client, gateway.connect("other") as other:
        await client.pair("alice", ALICE)
        echo = await client.request("sim.profile", phone="+1 555 000 0000", about="hacked")
        assert echo["error"]["code"] == "phone_taken"
        theirs = await other.request("sim.profile", phone=ALICE, about="hacked")
        assert theirs["error"]["code"] == "phone_taken"
        assert await client.call("sim.profile", phone=ALICE, about="mine") == {}
        assert await other.call("sim.profile", phone="+55 31 97777-0003", about="a contact") == {}
        info = await client.call("contact.info", session="alice", contact="+55 31 97777-0003")
        assert info["about"] == "a contact"
