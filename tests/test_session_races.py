"""Lifecycle commands and engine events racing each other, over a real socket with the simulator.

A send in flight when its session is logged out or unlinked, concurrent delete/stop/logout of one session,
and what a restart finds afterwards.
"""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from .conftest import fast_settings
from .support import RawClient, eventually, serve_gateway

ECHO = "+1 555 000 0000"
PHONE = "+55 11 97000-0001"
SECOND_PHONE = "+55 11 97000-0002"


async def queued(client: RawClient, session: str) -> int:
    count: int = (await client.call("session.get", session=session))["outbox"]["queued"]
    return count


@pytest.mark.parametrize("unlink", ["session.logout", "sim.unlink"])
async def test_a_send_in_flight_when_the_session_is_unlinked_leaves_the_sender_working(
    tmp_path: Path, unlink: str
) -> None:
    # Each send waits 0.5 s for WhatsApp's acknowledgement: the first one is with the engine when the unlink
    # lands, and send_wait_s is far beyond the test, so only the unlink can answer the others.
    settings = fast_settings(tmp_path / "data", sim_latency_s=0.5, send_wait_s=600.0)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("s", PHONE)
        ids = [f"send-{n}" for n in range(4)]
        for request_id in ids:
            await client.send(
                {"type": "message.send", "id": request_id, "session": "s", "to": ECHO, "text": request_id}
            )
        await eventually(lambda: queued(client, "s"), "the sends to be stored")
        await client.call(unlink, session="s")
        await client.status("s", "logged_out")

        # The one with the engine went out (WhatsApp acknowledged it); every other one failed, and each
        # waiting message.send was answered with that, not left waiting.
        replies = {request_id: await client.reply(request_id) for request_id in ids}
        sent = [r for r in replies.values() if r["ok"]]
        refused = [r for r in replies.values() if not r["ok"]]
        assert len(sent) == 1 and sent[0]["data"]["status"] == "sent", replies
        assert len(refused) == 3 and all(r["error"]["code"] == "send_failed" for r in refused), replies
        assert all("the session was logged out (logged_out)" in r["error"]["message"] for r in refused)
        assert await queued(client, "s") == 0

        # Paired again, the session sends at once: its sender did not die with the unlink.
        await client.call("session.start", session="s")
        qr = await client.event("session.qr", lambda e: e["session"] == "s")
        await client.call("sim.scan", qr=qr["data"]["qr"], phone=SECOND_PHONE)
        await client.status("s", "connected")
        after = await client.call("message.send", session="s", to=ECHO, text="after the new pairing")
        assert after["status"] == "sent"

        statuses: dict[str, list[str]] = {}
        for frame in client.events:
            if frame["event"] == "message.status" and frame["data"]["status"] in ("sent", "failed"):
                statuses.setdefault(frame["data"]["message_id"], []).append(frame["data"]["status"])
        assert statuses[sent[0]["data"]["message_id"]] == ["sent"]  # never reported failed as well
        assert sorted(statuses.values()) == [["failed"]] * 3 + [["sent"]] * 2

    went_out = next(request_id for request_id, reply in replies.items() if reply["ok"])
    assert sorted(await delivered_to_echo(tmp_path)) == sorted([went_out, "after the new pairing"])


async def delivered_to_echo(tmp_path: Path) -> list[str]:
    """Texts the simulated WhatsApp accepted for the echo contact, from its record (the gateway has stopped)."""
    with contextlib.closing(sqlite3.connect(tmp_path / "data" / "simulator.db")) as db:
        rows = db.execute("SELECT text FROM deliveries WHERE recipient = '15550000000'").fetchall()
    return [text for (text,) in rows]


COMMANDS = ["session.delete", "session.stop", "session.delete", "session.logout", "session.delete", "session.stop"]


async def test_concurrent_lifecycle_commands_never_fail_internally_and_a_deleted_session_stays_deleted(
    tmp_path: Path,
) -> None:
    settings = fast_settings(tmp_path / "data")
    names = [f"s{n}" for n in range(6)]
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        for number, name in enumerate(names):
            await client.pair(name, f"+55 11 97100-{number:04d}")
        # Every command for every session at once, in a different order per session.
        sent: list[tuple[str, str, str]] = []
        for number, name in enumerate(names):
            for index in range(len(COMMANDS)):
                command = COMMANDS[(index + number) % len(COMMANDS)]
                request_id = f"{name}-{index}"
                sent.append((request_id, name, command))
                await client.send({"type": command, "id": request_id, "session": name})
        replies = [(name, command, await client.reply(request_id)) for request_id, name, command in sent]

        for name in names:
            mine = [(command, reply) for n, command, reply in replies if n == name]
            assert not [r for _, r in mine if not r["ok"] and r["error"]["code"] != "session_not_found"], mine
            deleted = [r for command, r in mine if command == "session.delete" and r["ok"]]
            assert len(deleted) == 1, mine
        assert (await client.call("session.list"))["sessions"] == []

    # After a restart the sessions are still gone, and their names can be used again.
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        assert (await client.call("session.list"))["sessions"] == []
        for name in names:
            info = await client.call("session.start", session=name)
            assert info["status"] in ("starting", "qr") and not info["paired"]
