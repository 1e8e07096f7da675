"""Groups end to end over a real socket on the simulator: create (with a member whose privacy refuses adds), list,
info with roles and both id forms, add / remove / promote / demote with per-person results, invite links (get,
join, reset), leave, settings, the group events every member gets, messages of several kinds with mentions
(``all`` too) reaching every member session with the right author, and a 1,000-member group."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from zapgate.config import Settings

from .conftest import fast_settings
from .media_kit import png
from .support import RawClient, RunningGateway, serve_gateway

ALICE, BOB, CAROL = "+55 11 99999-0001", "+55 21 98888-0002", "+55 31 97777-0003"
ALICE_JID = "5511999990001@s.whatsapp.net"
BOB_JID = "5521988880002@s.whatsapp.net"
CAROL_JID = "5531977770003@s.whatsapp.net"
DAVE = "+55 41 96666-0004"  # a contact whose privacy refuses group adds
DAVE_JID = "5541966660004@s.whatsapp.net"


def of(session: str, **data: Any) -> Any:
    return lambda e: e["session"] == session and all(e["data"].get(k) == v for k, v in data.items())


async def three_sessions(client: RawClient) -> dict[str, str]:
    """Alice, Bob and Carol paired; their LIDs."""
    lids = {}
    for session, phone in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
        connected = await client.pair(session, phone)
        lids[session] = connected["data"]["me"]["lid"]
    return lids


async def test_create_members_roles_and_their_events(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        lids = await three_sessions(client)
        await client.call("sim.contact", phone=DAVE, refuse_group_adds=True)
        created = await client.call("group.create", session="alice", subject="Equipe", participants=[BOB, DAVE])
        group = created["group"]["group"]
        assert group.endswith("@g.us") and created["group"]["subject"] == "Equipe" and created["group"]["size"] == 2
        assert [(r["jid"], r["status"], r.get("code")) for r in created["participants"]] == [
            (BOB_JID, "ok", None),
            (DAVE_JID, "not_authorized", 403),
        ]
        assert created["participants"][0]["lid"] == lids["bob"]
        joined = await client.event("group.joined", of("alice", reason="created"))
        assert joined["data"]["group"]["group"] == group
        added = await client.event("group.joined", of("bob", reason="added"))
        assert (added["data"]["by"], added["data"]["by_lid"]) == (ALICE_JID, lids["alice"])

        info = await client.call("group.info", session="bob", group=group)
        assert info["owner"] == ALICE_JID and info["owner_lid"] == lids["alice"]
        members = {m["jid"]: m for m in info["participants"]}
        assert members[ALICE_JID] == {"jid": ALICE_JID, "lid": lids["alice"], "admin": True, "superadmin": True}
        assert members[BOB_JID] == {"jid": BOB_JID, "lid": lids["bob"], "admin": False, "superadmin": False}
        listed = await client.call("group.list", session="bob")
        assert [(g["group"], g["size"], "participants" in g) for g in listed["groups"]] == [(group, 2, False)]

        # Add Carol (by LID) and Bob again: one result each; members are told, Carol joins.
        result = await client.call(
            "group.participants", session="alice", group=group, action="add", participants=[lids["carol"], BOB]
        )
        assert [(r["jid"], r["status"]) for r in result["participants"]] == [
            (CAROL_JID, "ok"),
            (BOB_JID, "already_member"),
        ]
        told = await client.event("group.participants", of("bob", action="add"))
        assert told["data"]["participants"] == [{"jid": CAROL_JID, "lid": lids["carol"]}]
        assert (told["data"]["by"], told["data"]["by_lid"]) == (ALICE_JID, lids["alice"])
        await client.event("group.joined", of("carol", reason="added"))

        # Promote Bob; the creator cannot be demoted; a member cannot manage the group.
        result = await client.call(
            "group.participants", session="alice", group=group, action="promote", participants=[BOB]
        )
        assert result["participants"][0]["status"] == "ok"
        await client.event("group.participants", of("carol", action="promote"))
        result = await client.call(
            "group.participants", session="bob", group=group, action="demote", participants=[ALICE]
        )
        assert (result["participants"][0]["status"], result["participants"][0]["code"]) == ("not_authorized", 403)
        refused = await client.request(
            "group.participants", session="carol", group=group, action="remove", participants=[BOB]
        )
        assert refused["error"]["code"] == "not_group_admin"

        # Bob (now an admin) removes Carol: she is told too, and the group is gone for her.
        result = await client.call(
            "group.participants", session="bob", group=group, action="remove", participants=[CAROL]
        )
        assert result["participants"][0]["status"] == "ok"
        removed = await client.event("group.participants", of("carol", action="remove"))
        assert removed["data"]["by"] == BOB_JID
        gone = await client.request("group.info", session="carol", group=group)
        assert gone["error"]["code"] == "group_not_found"
        result = await client.call(
            "group.participants", session="alice", group=group, action="demote", participants=[CAROL]
        )
        assert result["participants"][0]["status"] == "not_member"

        bad = await client.request("group.info", validate=False, session="alice", group="not-a-group")
        assert bad["error"]["code"] == "invalid_request"
        unknown = await client.request("group.info", session="alice", group="120363999999999999@g.us")
        assert unknown["error"]["code"] == "group_not_found"


async def test_invite_links_join_reset_and_leave(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        lids = await three_sessions(client)
        group = (await client.call("group.create", session="alice", subject="Clube"))["group"]["group"]
        assert (await client.request("group.invite_link", session="bob", group=group))["error"]["code"] == (
            "group_not_found"
        )
        link = (await client.call("group.invite_link", session="alice", group=group))["link"]
        assert link.startswith("https://chat.whatsapp.com/")
        assert (await client.call("group.invite_link", session="alice", group=group))["link"] == link  # stable

        info = await client.call("group.join", session="bob", link=link)
        assert info["group"] == group and info["size"] == 2
        await client.event("group.joined", of("bob", reason="invited"))
        joined = await client.event("group.participants", of("alice", action="join"))
        assert joined["data"]["participants"] == [{"jid": BOB_JID, "lid": lids["bob"]}]

        new = (await client.call("group.invite_link", session="alice", group=group, reset=True))["link"]
        assert new != link
        reset = await client.event("group.updated", of("bob", invite_reset=True))
        assert reset["data"]["by"] == ALICE_JID
        stale = await client.request("group.join", session="carol", link=link)
        assert stale["error"]["code"] == "invite_invalid"
        assert (await client.request("group.join", session="carol", link="https://example.com/x"))["error"]["code"] == (
            "invalid_request"
        )
        await client.call("group.join", session="carol", link=new.removeprefix("https://chat.whatsapp.com/"))

        assert await client.call("group.leave", session="bob", group=group) == {}
        left = await client.event("group.participants", of("carol", action="leave"))
        assert left["data"]["participants"] == [{"jid": BOB_JID, "lid": lids["bob"]}] and "by" not in left["data"]
        assert (await client.call("group.list", session="bob"))["groups"] == []
        again = await client.request("group.leave", session="bob", group=group)
        assert again["error"]["code"] == "group_not_found"


async def test_settings_changes_reach_every_member(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await three_sessions(client)
        group = (await client.call("group.create", session="alice", subject="Antes", participants=[BOB]))["group"]
        jid = group["group"]
        info = await client.call(
            "group.update", session="alice", group=jid, subject="Depois", description="regras", ephemeral=86400
        )
        assert (info["subject"], info["description"], info["ephemeral"]) == ("Depois", "regras", 86400)
        updated = await client.event("group.updated", of("bob", subject="Depois"))
        assert updated["data"] == {
            "group": jid,
            "by": ALICE_JID,
            "by_lid": updated["data"]["by_lid"],
            "subject": "Depois",
            "description": "regras",
            "ephemeral": 86400,
        }
        picture = {"data": base64.b64encode(png()).decode(), "mimetype": "image/png"}
        await client.call("group.update", session="alice", group=jid, picture=picture)
        await client.event("group.updated", of("bob", picture=True))

        # Locked: only admins edit it; announce: only admins write.
        info = await client.call("group.update", session="alice", group=jid, locked=True, announce=True)
        assert info["locked"] and info["announce"]
        refused = await client.request("group.update", session="bob", group=jid, subject="meu")
        assert refused["error"]["code"] == "not_group_admin"
        nothing = await client.request("group.update", session="alice", group=jid)
        assert nothing["error"]["code"] == "invalid_request"
        muted = await client.request("message.send", session="bob", to=jid, text="posso?")
        assert muted["error"]["code"] == "send_failed" and "not_group_admin" in muted["error"]["message"]
        sent = await client.call("message.send", session="alice", to=jid, text="só admins")
        assert sent["status"] == "sent"
        await client.event("message.received", of("bob", text="só admins"))


async def test_every_kind_reaches_every_member_with_its_author_and_mentions(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        lids = await three_sessions(client)
        await client.call("sim.contact", phone=DAVE)  # a simulated member with no session
        created = await client.call("group.create", session="alice", subject="Todos", participants=[BOB, CAROL, DAVE])
        group = created["group"]["group"]

        sent = await client.call("message.send", session="alice", to=group, text="bom dia", mentions=["all"])
        assert sent["status"] == "sent" and sent["chat"] == group
        for session in ("bob", "carol"):
            got = await client.event("message.received", of(session, text="bom dia"))
            data = got["data"]
            assert (data["chat"], data["from"], data["from_lid"], data["from_me"]) == (
                group,
                ALICE_JID,
                lids["alice"],
                False,
            )
            assert "chat_lid" not in data
            assert sorted(data["mentions"]) == sorted([BOB_JID, CAROL_JID, DAVE_JID])
        await client.event("message.status", of("alice", message_id=sent["message_id"], status="delivered"))

        # Bob answers quoting it and mentioning Carol by LID; a poll, a vote and a reaction; a picture.
        reply = await client.call(
            "message.send", session="bob", to=group, text="oi", reply_to=sent["message_id"], mentions=[lids["carol"]]
        )
        got = await client.event("message.received", of("carol", text="oi"))
        assert got["data"]["from"] == BOB_JID and got["data"]["reply_to"] == sent["message_id"]
        assert got["data"]["mentions"] == [lids["carol"]]
        poll = {"kind": "poll", "question": "Pizza?", "options": ["sim", "não"]}
        asked = await client.call("message.send", session="alice", to=group, content=poll)
        await client.event("message.received", of("carol", kind="poll"))
        vote = {"kind": "vote", "message_id": asked["message_id"], "options": ["sim"]}
        await client.call("message.send", session="carol", to=group, content=vote)
        voted = await client.event("poll.vote", of("alice", message_id=asked["message_id"]))
        assert voted["data"]["from"] == CAROL_JID and voted["data"]["chat"] == group
        reaction = {"kind": "reaction", "message_id": reply["message_id"], "emoji": "👍"}
        await client.call("message.send", session="carol", to=group, content=reaction)
        reacted = await client.event("message.reaction", of("bob", message_id=reply["message_id"]))
        assert reacted["data"]["from"] == CAROL_JID and reacted["data"]["emoji"] == "👍"
        image = {"kind": "image", "media": {"data": base64.b64encode(png()).decode()}, "caption": "foto"}
        await client.call("message.send", session="alice", to=group, content=image, mentions=[BOB])
        pictured = await client.event("message.received", of("bob", kind="image"))
        assert pictured["data"]["text"] == "foto" and pictured["data"]["mentions"] == [BOB_JID]

        # Read receipts in a group reach the author.
        await client.call("message.read", session="bob", chat=group, message_ids=[sent["message_id"]])
        read = await client.event("message.status", of("alice", message_id=sent["message_id"], status="read"))
        assert read["data"]["chat"] == group

        outsider = await client.request("message.send", session="alice", to="120363999999999999@g.us", text="?")
        assert outsider["error"]["code"] == "send_failed"


async def test_a_member_hiding_their_number_is_listed_by_lid(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        lids = await three_sessions(client)
        await client.call("sim.contact", phone=BOB, hide_phone=True)
        group = (await client.call("group.create", session="alice", subject="Privado", participants=[BOB]))["group"]
        members = {m["lid"]: m for m in group["participants"]}
        assert members[lids["bob"]]["jid"] == lids["bob"]  # by LID alone: Alice never learned Bob's number
        # Bob writes in the group: Alice sees him by LID; answering him by LID works.
        await client.call("message.send", session="bob", to=group["group"], text="sou eu")
        got = await client.event("message.received", of("alice", text="sou eu"))
        assert (got["data"]["from"], got["data"]["from_lid"]) == (lids["bob"], lids["bob"])
        await client.call("message.send", session="alice", to=lids["bob"], text="oi Bob")
        await client.event("message.received", of("bob", text="oi Bob"))


@pytest.mark.slow
async def test_a_message_to_a_1000_member_group(tmp_path: Path) -> None:
    contacts = tuple(f"+1555{n:07d}" for n in range(1, 999))  # 998 simulated members, plus Alice and Bob
    settings: Settings = fast_settings(tmp_path / "data", sim_contacts=contacts)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        lids = await three_sessions(client)
        created = await client.call("group.create", session="alice", subject="Mil", participants=[BOB, *contacts])
        assert created["group"]["size"] == 1000
        assert all(r["status"] == "ok" for r in created["participants"])
        group = created["group"]["group"]
        info = await client.call("group.info", session="bob", group=group)
        assert len(info["participants"]) == 1000
        sent = await client.call("message.send", session="alice", to=group, text="para todos", mentions=["all"])
        assert sent["status"] == "sent"
        got = await client.event("message.received", of("bob", text="para todos"))
        assert (got["data"]["from"], got["data"]["from_lid"]) == (ALICE_JID, lids["alice"])
        assert len(got["data"]["mentions"]) == 999
