"""Several chats of one session in flight at once, each chat still in acceptance order (``send_concurrency``).

Over a real socket with the simulator, whose every send takes ``sim_latency_s`` to be acknowledged: what is
compared is the *order* of the ``sent`` events, which the latency makes unambiguous, never a duration.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from zapgate.config import ConfigError

from .conftest import fast_settings
from .support import RawClient, serve_gateway

PHONE = "5511977770000"
SLOW, OTHER = "5521911110001", "5521911110002"


async def sent_order(client: RawClient, ids: list[str]) -> list[str]:
    """The message ids of ``ids`` in the order their ``sent`` events arrived."""
    order: list[str] = []
    for _ in ids:
        event = await client.event(
            "message.status", lambda e: e["data"]["status"] == "sent" and e["data"]["message_id"] in ids
        )
        order.append(event["data"]["message_id"])
    return order


@pytest.mark.parametrize("concurrency", [1, 8])
async def test_a_busy_chat_does_not_hold_the_sessions_other_chats(tmp_path: Path, concurrency: int) -> None:
    # Replies come at the durable accept (send_wait_s=0), so the three messages are queued together while the
    # first one is still with the engine (each send takes 0.4 s to be acknowledged).
    settings = fast_settings(
        tmp_path / "data", sim_contacts=(SLOW, OTHER), sim_latency_s=0.4, send_wait_s=0.0, send_concurrency=concurrency
    )
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("s", PHONE)
        first = await client.call("message.send", session="s", to="+" + SLOW, text="first to slow")
        second = await client.call("message.send", session="s", to="+" + SLOW, text="second to slow")
        other = await client.call("message.send", session="s", to="+" + OTHER, text="to the other chat")
        ids = [first["message_id"], second["message_id"], other["message_id"]]
        assert all(reply["status"] == "queued" for reply in (first, second, other))

        order = await sent_order(client, ids)
        if concurrency == 1:
            # One message with the engine at a time: acceptance order across the session.
            assert order == ids
        else:
            # The other chat went while the first message was with the engine; the second message to the same
            # chat waited for the first, so it comes last.
            assert order[2] == second["message_id"], order
        assert order.index(first["message_id"]) < order.index(second["message_id"])


def test_send_concurrency_is_bounded(tmp_path: Path) -> None:
    for bad in (0, 65):
        with pytest.raises(ConfigError, match="send_concurrency must be between 1 and 64"):
            fast_settings(tmp_path, send_concurrency=bad)


async def test_with_pacing_a_second_new_contact_waits_for_the_first_one_in_flight(tmp_path: Path) -> None:
    # One new contact a day. The first message to a new contact is still with the engine (0.4 s) when the
    # session interval (0.1 s) would let the next chat go: that chat is a new contact too, so it must wait for
    # the first one's outcome, which uses up the day's allowance, and it stays queued.
    settings = fast_settings(
        tmp_path / "data",
        sim_contacts=(SLOW, OTHER),
        sim_latency_s=0.4,
        send_wait_s=0.0,
        pacing=True,
        pacing_interval_s=0.1,
        pacing_jitter_s=0.0,
        pacing_recipient_interval_s=0.0,
        pacing_new_contacts_per_day=1,
    )
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("s", PHONE)
        first = await client.call("message.send", session="s", to="+" + SLOW, text="first new contact")
        second_new = await client.call("message.send", session="s", to="+" + OTHER, text="second new contact")
        again = await client.call("message.send", session="s", to="+" + SLOW, text="a known chat now")
        # The known chat's second message goes after the first one's outcome; by then the second new contact
        # would long have been sent if it had not waited.
        assert await sent_order(client, [first["message_id"], again["message_id"]]) == [
            first["message_id"],
            again["message_id"],
        ]
        info = await client.call("session.get", session="s")
        assert info["outbox"]["queued"] == 1, info
        assert info["pacing"]["new_contacts_today"] == 1, info
        sent = [e["data"]["message_id"] for e in client.events if e["event"] == "message.status"]
        assert second_new["message_id"] not in sent
