"""The simulator records the sends asked for at once in one batched write; each must come out as it would alone:
a repeated id dropped and counted, an edit of a message of the same batch accepted and one of an unknown message
refused, a message to an account that blocked the sender accepted and never delivered, and the others delivered
with their receipts, in order."""

from __future__ import annotations

import asyncio

from zapgate.engines.base import SendError, Sent
from zapgate.engines.simulator import SimulatorEngine
from zapgate.jid import Jid
from zapgate.protocol.content import Edit, Text

from .support import RunningGateway

ALICE = "5511912340001"
BOB = "5511912340002"
CAROL = "5511912340003"


async def test_sends_recorded_together_each_get_their_own_outcome(gateway: RunningGateway) -> None:
    engine = gateway.gateway.engine
    assert isinstance(engine, SimulatorEngine)
    async with gateway.connect("acme") as acme:
        for name, phone in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
            await acme.pair(name, phone)
        alice, carol = (gateway.gateway.sessions.get("acme", name).id for name in ("alice", "carol"))
        await acme.call("contact.block", session="carol", contact=f"+{ALICE}")

        first, twice, edit, unknown, blocked, other = (engine.new_message_id() for _ in range(6))
        outcomes = await asyncio.gather(
            engine.send(alice, first, Jid(BOB), Text(text="um")),
            engine.send(alice, twice, Jid(BOB), Text(text="dois")),
            engine.send(alice, twice, Jid(BOB), Text(text="dois")),  # the same id again: dropped
            engine.send(alice, edit, Jid(BOB), Edit(message_id=first, text="um!")),  # a message of this batch
            engine.send(alice, engine.new_message_id(), Jid(BOB), Edit(message_id=unknown, text="?")),
            engine.send(alice, blocked, Jid(CAROL), Text(text="bloqueado")),
            engine.send(carol, other, Jid(BOB), Text(text="três")),
            return_exceptions=True,
        )
        refused = outcomes.pop(4)
        assert isinstance(refused, SendError) and refused.code == "edit_refused", refused
        assert all(isinstance(o, Sent) for o in outcomes), outcomes
        assert outcomes[1] == outcomes[2]  # the repeat answers with the original's timestamp

        accepted = [(d["sender"], d["message_id"], d["attempts"]) for d in await engine.deliveries()]
        # The message to Carol, who blocked Alice, is answered as sent but recorded nowhere: never delivered.
        assert accepted[-4:] == [(ALICE, first, 1), (ALICE, twice, 2), (ALICE, edit, 1), (CAROL, other, 1)]
        # Bob gets the messages and the edit; Alice hears that each reached Bob's phone, not the one to Carol.
        for text in ("um", "dois", "três"):
            await acme.event("message.received", lambda e, t=text: e["session"] == "bob" and e["data"]["text"] == t)
        edited = await acme.event("message.edited", lambda e: e["session"] == "bob")
        assert edited["data"]["message_id"] == first
        for message_id in (first, twice, edit):
            await acme.event(
                "message.status",
                lambda e, m=message_id: (
                    e["session"] == "alice" and e["data"]["status"] == "delivered" and e["data"]["message_id"] == m
                ),
            )
        received = [e for e in acme.events if e["event"] == "message.received" and e["session"] == "bob"]
        assert sorted(e["data"]["text"] for e in received) == ["dois", "três", "um"]
        # Bob's chat with Alice shows her messages in the order WhatsApp accepted them.
        assert [e["data"]["text"] for e in received if e["data"]["text"] != "três"] == ["um", "dois"]
        assert not [e for e in acme.events if e["event"] == "message.received" and e["session"] == "carol"]
        assert not [
            e
            for e in acme.events
            if e["event"] == "message.status"
            and e["data"].get("message_id") == blocked
            and e["data"]["status"] == "delivered"
        ]
