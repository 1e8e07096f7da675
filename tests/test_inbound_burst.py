"""A burst of received messages: mail that waited while sessions were offline arrives all at once.

The simulator hands each device's waiting mail to the gateway in batches (the engine's batch sink), the gateway
stores each batch in one batched write and pushes the events to subscribed clients, several frames per socket
write. Whatever the batching, every message is stored once, its event is pushed once, in ``seq`` order, and each
session's messages arrive in the order they were written.
"""

from __future__ import annotations

from pathlib import Path

from .conftest import fast_settings
from .support import RunningGateway, serve_gateway

SESSIONS = {"a": "5511977770001", "b": "5511977770002", "c": "5511977770003"}
CONTACTS = ("+5531900000001", "+5531900000002")
PER_SESSION = 40


async def _burst(gateway: RunningGateway) -> tuple[dict[str, list[str]], list[dict[str, object]]]:
    """Mail for every session written while they were offline, then delivered at once; returns the ids written
    per session and the ``message.received`` events a subscribed client got."""
    async with gateway.connect() as setup, gateway.connect() as watcher:
        for name, phone in SESSIONS.items():
            await setup.pair(name, phone)
        for name in SESSIONS:
            await setup.call("sim.network", session=name, online=False)
            await setup.status(name, "disconnected")
        written: dict[str, list[str]] = {name: [] for name in SESSIONS}
        for i in range(PER_SESSION):
            for name in SESSIONS:
                data = await setup.call(
                    "sim.receive", session=name, text=f"burst {i}", **{"from": CONTACTS[i % len(CONTACTS)]}
                )
                written[name].append(data["message_id"])
        for name in SESSIONS:
            await setup.call("sim.network", session=name, online=True)
        total = PER_SESSION * len(SESSIONS)
        received = [e for e in watcher.events if e["event"] == "message.received"]
        while len(received) < total:
            await watcher.event("message.received")
            received = [e for e in watcher.events if e["event"] == "message.received"]
        return written, received


async def test_mail_delivered_in_batches_is_stored_and_pushed_once_each_in_order(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway:
        written, received = await _burst(gateway)
        assert len(received) == sum(len(ids) for ids in written.values())
        for name, ids in written.items():
            arrived = [e["data"]["message_id"] for e in received if e["session"] == name]  # type: ignore[index]
            assert arrived == ids, name  # each once, in the order written
        seqs = [e["seq"] for e in received]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

        # Stored: the log and each session's history hold every message once.
        async with gateway.connect() as reader:
            logged = []
            after = 0
            while True:
                page = await reader.call("events.fetch", after=after, limit=100)
                logged += [e for e in page["events"] if e["event"] == "message.received"]
                if not page["events"] or page["events"][-1]["seq"] >= page["last_seq"]:
                    break
                after = page["events"][-1]["seq"]
            assert [e["seq"] for e in logged] == seqs
            for name, ids in written.items():
                stored: list[str] = []
                for contact in CONTACTS:
                    history = await reader.call("message.history", session=name, chat=contact, limit=100)
                    stored += [m["message_id"] for m in history["messages"]]
                assert sorted(stored) == sorted(ids), name

            # What the batches taught (each contact's LID, learned from their first message) was kept.
            for name in SESSIONS:
                for contact in CONTACTS:
                    known = await reader.call("contact.resolve", session=name, contact=contact)
                    assert known["phone"] == contact.removeprefix("+") and known["lid"].endswith("@lid"), known
