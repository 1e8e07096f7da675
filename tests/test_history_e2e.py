"""WhatsApp's history sync end to end on the simulator: thousands of earlier messages stored in batches with
``history.synced`` progress events, never sent as ``message.received``, while a live message that arrives during
the sync is delivered before the sync ends; a second device of an account gets the account's real conversations
with their unread counts and chat settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from zapgate.config import Settings
from zapgate.engines.simulator.accounts import HISTORY_BATCH_MESSAGES

from .conftest import fast_settings
from .support import RunningGateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
BOB_JID = "5521988880002@s.whatsapp.net"
ECHO_JID = "15550000000@s.whatsapp.net"
CONTACTS = ("5531977770003", "5541966660004")
HISTORY = 6000


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path, sim_contacts=CONTACTS, sim_history_messages=HISTORY)


def of(session: str) -> Any:
    return lambda e: e["session"] == session


async def test_a_large_history_sync_does_not_hold_up_a_live_message(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        live = await client.call("sim.receive", session="alice", **{"from": CONTACTS[0]}, text="are you there?")
        received = await client.event("message.received", of("alice"))
        assert received["data"]["message_id"] == live["message_id"]
        batches = []
        while not (batches and batches[-1]["data"]["final"]):
            batches.append(await client.event("history.synced", of("alice"), timeout=60))
        # The live message was not queued behind the sync: it was stored before the sync's last batch.
        assert received["seq"] < batches[-1]["seq"]
        assert len(batches) == -(-HISTORY // HISTORY_BATCH_MESSAGES)
        assert sum(b["data"]["messages"] for b in batches) == HISTORY == batches[-1]["data"]["total_messages"]
        assert [b["data"]["progress"] for b in batches][-1] == 100
        assert batches[-1]["data"]["chats"] == 3

        # History is not live: the only message.received of the session is the live one.
        live_ids, after = [], 0
        while True:
            page = await client.call("events.fetch", after=after, limit=1000)
            live_ids += [e["data"]["message_id"] for e in page["events"] if e["event"] == "message.received"]
            if not page["events"] or page["events"][-1]["seq"] >= page["last_seq"]:
                break
            after = page["events"][-1]["seq"]
        assert live_ids == [live["message_id"]]

        chats = await client.call("chat.list", session="alice")
        by_chat = {c["chat"]: c for c in chats["chats"]}
        assert set(by_chat) == {ECHO_JID, *(f"{c}@s.whatsapp.net" for c in CONTACTS)}
        assert by_chat[f"{CONTACTS[0]}@s.whatsapp.net"]["last_message"]["message_id"] == live["message_id"]
        assert by_chat[ECHO_JID].get("name") == "Echo", by_chat[ECHO_JID]
        # Page through the echo chat's history: every message once, newest first, all from the sync.
        seen: list[dict[str, Any]] = []
        before = None
        while True:
            fields = {"before": before} if before else {}
            page_ = await client.call("message.history", session="alice", chat=ECHO_JID, limit=500, **fields)
            seen += page_["messages"]
            if not page_["more"]:
                break
            before = page_["messages"][-1]["message_id"]
        assert len(seen) == len({m["message_id"] for m in seen}) == HISTORY // 3
        assert all(m.get("history") for m in seen)
        times = [m["timestamp"] for m in seen]
        assert times == sorted(times, reverse=True)


async def test_a_new_device_gets_the_accounts_conversations(tmp_path: Path) -> None:
    from .support import serve_gateway

    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway, gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("bob", BOB)
        sent = await client.call("message.send", session="alice", to=BOB, text="first")
        await client.event("message.received", of("bob"))
        answers = []
        for text in ("one", "two"):
            answers.append((await client.call("message.send", session="bob", to=ALICE, text=text))["message_id"])
            await client.event("message.received", lambda e, t=text: e["session"] == "alice" and e["data"]["text"] == t)
        await client.call("chat.archive", session="alice", chat=BOB)

        await client.pair("desk", ALICE)  # Alice links another device
        synced = await client.event("history.synced", of("desk"))
        assert synced["data"] == {"messages": 3, "chats": 1, "total_messages": 3, "final": True, "progress": 100}
        [bob] = (await client.call("chat.list", session="desk"))["chats"]
        assert bob["chat"] == BOB_JID and bob["unread"] == 2 and bob["archived"] is True
        assert bob["last_message"]["message_id"] == answers[-1]
        history = (await client.call("message.history", session="desk", chat=BOB))["messages"]
        assert [(m["message_id"], m["from_me"], m.get("unread", False)) for m in history] == [
            (answers[1], False, True),
            (answers[0], False, True),
            (sent["message_id"], True, False),
        ]
        assert all(m["history"] for m in history)
        # The history taught the new device who Bob is: his LID is in its phone <-> LID map.
        bob_lid = history[0]["from_lid"]
        assert await client.call("contact.resolve", session="desk", contact=BOB) == {
            "jid": BOB_JID,
            "lid": bob_lid,
            "phone": BOB_JID.split("@")[0],
        }
        # Reading the chat on the new device sends the receipts Bob had not had yet.
        assert await client.call("chat.mark_read", session="desk", chat=BOB) == {"read": 2}
        read = set()
        for _ in answers:
            status = await client.event(
                "message.status", lambda e: e["session"] == "bob" and e["data"]["status"] == "read"
            )
            read.add(status["data"]["message_id"])
        assert read == set(answers)
