"""Chats and message history end to end over a real socket on the simulator: the chat list with last message
and unread count, reading a whole chat (the author sees the read receipts), archive / pin / mute followed by the
account's other linked device, ``message.history`` paging, and the errors."""

from __future__ import annotations

from typing import Any

from .support import RunningGateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
ALICE_JID = "5511999990001@s.whatsapp.net"
BOB_JID = "5521988880002@s.whatsapp.net"
ECHO_JID = "15550000000@s.whatsapp.net"


def of(session: str) -> Any:
    return lambda e: e["session"] == session


async def test_chat_list_history_and_reading_a_whole_chat(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("bob", BOB)
        sent = []
        for text in ("one", "two", "three"):
            reply = await client.call("message.send", session="bob", to=ALICE, text=text)
            sent.append(reply["message_id"])
            await client.event("message.received", lambda e, t=text: e["session"] == "alice" and e["data"]["text"] == t)
        answer = await client.call("message.send", session="alice", to="+1 555 000 0000", text="hi echo")
        echoed = await client.event(
            "message.received", lambda e: e["session"] == "alice" and e["data"]["chat"] == ECHO_JID
        )

        listed = await client.call("chat.list", session="alice")
        assert listed["more"] is False
        assert [c["chat"] for c in listed["chats"]] == [ECHO_JID, BOB_JID]
        echo, bob = listed["chats"]
        assert echo["unread"] == 1 and echo["last_message"]["message_id"] == echoed["data"]["message_id"]
        assert bob["unread"] == 3 and bob["name"] == f"+{BOB_JID.split('@')[0]}"
        assert bob["last_message"] == {
            "message_id": sent[-1],
            "from_me": False,
            "from": BOB_JID,
            "kind": "text",
            "text": "three",
            "timestamp": bob["timestamp"],
        }
        assert not bob["archived"] and not bob["pinned"] and not bob["muted"]
        page = await client.call("chat.list", session="alice", limit=1)
        assert [c["chat"] for c in page["chats"]] == [ECHO_JID] and page["more"] is True
        rest = await client.call("chat.list", session="alice", limit=1, before=ECHO_JID)
        assert [c["chat"] for c in rest["chats"]] == [BOB_JID] and rest["more"] is False

        # History of the echo chat: our message and its answer, newest first; bob's chat pages back.
        echo_history = await client.call("message.history", session="alice", chat="+1 555 000 0000")
        assert [m["message_id"] for m in echo_history["messages"]] == [
            echoed["data"]["message_id"],
            answer["message_id"],
        ]
        mine = echo_history["messages"][1]
        assert (
            mine["from_me"] is True
            and mine["from"] == ALICE_JID
            and mine["content"]
            == {
                "kind": "text",
                "text": "hi echo",
            }
        )
        first = await client.call("message.history", session="alice", chat=BOB, limit=2)
        assert [m["text"] for m in first["messages"]] == ["three", "two"] and first["more"] is True
        assert all(m["unread"] and "history" not in m for m in first["messages"])
        second = await client.call("message.history", session="alice", chat=BOB, limit=2, before=sent[1])
        assert [m["text"] for m in second["messages"]] == ["one"] and second["more"] is False
        # Bob's side has the same conversation, from the sender's point of view.
        bobs = await client.call("message.history", session="bob", chat=ALICE)
        assert [(m["text"], m["from_me"]) for m in bobs["messages"]] == [("three", True), ("two", True), ("one", True)]

        # Reading the whole chat sends read receipts for all three; bob sees them.
        assert await client.call("chat.mark_read", session="alice", chat=BOB) == {"read": 3}
        read = set()
        while read != set(sent):
            status = await client.event(
                "message.status", lambda e: e["session"] == "bob" and e["data"]["status"] == "read"
            )
            read.add(status["data"]["message_id"])
        assert await client.call("chat.mark_read", session="alice", chat=BOB) == {"read": 0}
        after = await client.call("chat.list", session="alice")
        assert {c["chat"]: c["unread"] for c in after["chats"]} == {ECHO_JID: 1, BOB_JID: 0}

        # message.read of the echo's answer reads it in the chat list too.
        await client.call("message.read", session="alice", chat=ECHO_JID, message_ids=[echoed["data"]["message_id"]])
        assert (await client.call("chat.list", session="alice", limit=1))["chats"][0]["unread"] == 0


async def test_archive_pin_mute_reach_the_accounts_other_device(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("desk", ALICE)  # a second device linked to Alice's phone
        await client.pair("bob", BOB)
        await client.call("message.send", session="bob", to=ALICE, text="hello")
        await client.event("message.received", of("alice"))
        await client.event("message.received", of("desk"))

        archived = await client.call("chat.archive", session="alice", chat=BOB)
        assert archived["chat"] == BOB_JID and archived["archived"] is True and archived["unread"] == 1
        mine = await client.event("chat.updated", of("alice"))
        assert mine["data"] == archived
        theirs = await client.event("chat.updated", of("desk"))
        assert theirs["data"]["chat"] == BOB_JID and theirs["data"]["archived"] is True
        assert [c["chat"] for c in (await client.call("chat.list", session="desk", archived=True))["chats"]] == [
            BOB_JID
        ]
        assert (await client.call("chat.list", session="desk", archived=False))["chats"] == []

        pinned = await client.call("chat.pin", session="alice", chat=BOB_JID)
        assert pinned["pinned"] is True and pinned["archived"] is True
        muted = await client.call("chat.mute", session="alice", chat=BOB, until=4_000_000_000)
        assert muted["muted"] is True and muted["muted_until"] == 4_000_000_000
        forever = await client.call("chat.mute", session="alice", chat=BOB)
        assert forever["muted"] is True and "muted_until" not in forever
        await client.event(
            "chat.updated", lambda e: e["session"] == "desk" and e["data"]["muted"] and "muted_until" not in e["data"]
        )
        cleared = [
            await client.call(kind, session="alice", chat=BOB)
            for kind in ("chat.unmute", "chat.unpin", "chat.unarchive")
        ]
        assert cleared[-1] | {"timestamp": 0} == {
            "chat": BOB_JID,
            "name": f"+{BOB_JID.split('@')[0]}",
            "unread": 1,
            "archived": False,
            "pinned": False,
            "muted": False,
            "timestamp": 0,
            "last_message": cleared[-1]["last_message"],
        }
        final = await client.event("chat.updated", lambda e: e["session"] == "desk" and not e["data"]["archived"])
        assert not final["data"]["pinned"] and not final["data"]["muted"]


async def test_chat_errors(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.call("session.start", session="fresh")
        assert (await client.call("chat.list", session="fresh")) == {"chats": [], "more": False}
        refused = await client.request("chat.archive", session="fresh", chat=BOB)
        assert refused["error"]["code"] == "session_not_paired"
        await client.pair("alice", ALICE)
        unknown = await client.request("chat.list", session="alice", before=BOB)
        assert unknown["error"]["code"] == "invalid_request"
        no_message = await client.request("message.history", session="alice", chat=BOB, before="3EB0NOPE")
        assert no_message["error"]["code"] == "invalid_request"
        too_many = await client.request("message.history", session="alice", chat=BOB, limit=501, validate=False)
        assert too_many["error"]["code"] == "invalid_request"
        bad = await client.request("chat.pin", session="alice", chat="nobody")
        assert bad["error"]["code"] == "invalid_recipient"
        missing = await client.request("chat.list", session="ghost")
        assert missing["error"]["code"] == "session_not_found"
        await client.call("sim.network", session="alice", online=False)
        await client.status("alice", "disconnected")
        offline = await client.request("chat.mute", session="alice", chat=BOB)
        assert offline["error"]["code"] == "engine_unavailable"
        # Stored chats and history are still readable while offline.
        assert (await client.call("message.history", session="alice", chat=BOB)) == {"messages": [], "more": False}


async def test_an_edit_changes_the_stored_message_on_both_sides(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("bob", BOB)
        typo = await client.call("message.send", session="bob", to=ALICE, text="see you at 8")
        await client.event("message.received", of("alice"))
        edit = {"kind": "edit", "message_id": typo["message_id"], "text": "see you at 9"}
        await client.call("message.send", session="bob", to=ALICE, content=edit)
        edited = await client.event("message.edited", of("alice"))
        assert edited["data"]["message_id"] == typo["message_id"]
        for session, chat in (("alice", BOB), ("bob", ALICE)):
            [message] = (await client.call("message.history", session=session, chat=chat))["messages"]
            assert message["message_id"] == typo["message_id"], session
            assert (message["text"], message["content"]["text"]) == ("see you at 9", "see you at 9"), session
