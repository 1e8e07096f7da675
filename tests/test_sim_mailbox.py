"""The simulated WhatsApp keeps a device's mail until the gateway stored it, then forgets exactly that mail: after a
device that was offline takes its waiting messages (in batches whose deletions name dozens of ids at once), its
mailbox is empty and another device's waiting mail is untouched."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from pathlib import Path

from .conftest import fast_settings
from .support import TIMEOUT, serve_gateway

PHONE = "+55 11 99999-0001"
OTHER = "+55 11 99999-0002"
CONTACT = "+55 31 90000-0001"


def _mailbox(path: Path) -> list[tuple[str, int]]:
    """Each waiting mail's session and how many there are."""
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT session_id, count(*) FROM mailbox GROUP BY session_id ORDER BY session_id")
        return [(str(session), int(count)) for session, count in rows]


async def test_delivered_mail_is_forgotten_and_only_it(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    async with serve_gateway(fast_settings(data_dir)) as gateway, gateway.connect() as client:
        await client.pair("s", PHONE)
        await client.pair("t", OTHER)
        for name in ("s", "t"):
            await client.call("sim.network", session=name, online=False)
            await client.status(name, "disconnected")
        waiting = 203  # deletions of 64, 64, 64 and 11 ids (the last padded to 16), or as the batches fall
        for i in range(waiting):
            await client.call("sim.receive", session="s", **{"from": CONTACT}, text=f"m{i}")
        for i in range(3):
            await client.call("sim.receive", session="t", **{"from": CONTACT}, text=f"t{i}")
        before = _mailbox(data_dir / "simulator.db")
        assert sorted(count for _, count in before) == [3, waiting]

        await client.call("sim.network", session="s", online=True)
        for i in range(waiting):
            await client.event("message.received", lambda e, text=f"m{i}": e["data"]["text"] == text)
        deadline = time.monotonic() + TIMEOUT
        while (left := _mailbox(data_dir / "simulator.db")) != [(s, n) for s, n in before if n == 3]:
            assert time.monotonic() < deadline, left
            await asyncio.sleep(0.05)
