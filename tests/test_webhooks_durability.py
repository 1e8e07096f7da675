"""Webhook delivery survives kill -9: the real ``zapgate serve`` in a subprocess is killed with SIGKILL while it
is delivering (by the receiver itself, before it answers one request), started again on the same data, and the
receiver ends up with every event, in order, each duplicate carrying the same ``webhook-id`` and body."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from .test_durability import GatewayProcess, authenticated
from .webhook_receiver import receiver

PHONE = "+55 11 98888-0000"
CONTACT = "+55 31 97777-0003"
MESSAGES = 60
KILL_AT = 20
"""The receiver kills the gateway when this many events were accepted, before answering the next one."""

pytestmark = pytest.mark.slow


async def test_kill_9_mid_delivery_loses_no_webhook(tmp_path: Path) -> None:
    gateway = GatewayProcess(
        tmp_path / "data", outbound_allow="127.0.0.1/32", webhook_retry_schedule=",".join(["0.05"] * 100)
    )
    state: dict[str, Any] = {"open": False, "accepted": 0, "killed_at": None}

    def answer(frame: dict[str, Any]) -> int:
        if not state["open"]:
            return 503
        if state["killed_at"] is None and state["accepted"] == KILL_AT:
            assert gateway.proc is not None
            os.kill(gateway.proc.pid, signal.SIGKILL)  # before answering: the gateway never learns it got through
            state["killed_at"] = frame["seq"]
            return 200
        state["accepted"] += 1
        return 200

    async with receiver(answer) as rx:
        await gateway.start()
        try:
            token = gateway.token("acme")
            async with authenticated(gateway.url, token) as client:
                created = await client.call("webhook.create", url=rx.url)
                await client.pair("s1", PHONE)
                for n in range(MESSAGES):
                    await client.call("sim.receive", session="s1", **{"from": CONTACT}, text=f"m{n}")
                for n in range(MESSAGES):
                    await client.event("message.received", lambda e, n=n: e["data"]["text"] == f"m{n}")
                expected = await client.call("events.fetch", after=created["cursor"], limit=1000)
            state["open"] = True
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while gateway.proc is not None and gateway.proc.poll() is None:
                assert loop.time() < deadline, "the receiver never killed the gateway"
                await asyncio.sleep(0.02)
            assert state["killed_at"] is not None
            seqs = [e["seq"] for e in expected["events"]]
            delivered_before = {r.frame["seq"] for r in rx.accepted}
            assert len(delivered_before) < len(seqs), "the kill must land mid-delivery"

            await gateway.start()
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            # (After the restart the session reconnects: its new events follow; they are not counted here.)
            while not set(seqs) <= {r.frame["seq"] for r in rx.accepted}:
                assert loop.time() < deadline, (
                    f"missing after restart: {set(seqs) - {r.frame['seq'] for r in rx.accepted}}"
                )
                await asyncio.sleep(0.05)
        finally:
            gateway.stop()

    by_id: dict[str, bytes] = {}
    for request in rx.accepted:
        request.verify(created["secret"])
        assert request.id == f"{created['webhook']}_{request.frame['seq']}"
        assert by_id.setdefault(request.id, request.body) == request.body, "a duplicate is the same request"
    first_seen: list[int] = []
    for request in rx.accepted:
        if request.frame["seq"] not in first_seen and request.frame["seq"] <= seqs[-1]:
            first_seen.append(request.frame["seq"])
    assert first_seen == seqs, "in order"
    assert [json.loads(by_id[f"{created['webhook']}_{s}"]) for s in seqs] == expected["events"], "the socket's frames"
    killed = [r for r in rx.accepted if r.frame["seq"] == state["killed_at"]]
    assert len(killed) == 2, "the event in flight at the kill is sent again after the restart"
