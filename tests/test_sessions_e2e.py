"""Sessions end to end over a real socket with the simulator: pairing, QR rotation, messaging, restarts."""

from __future__ import annotations

from pathlib import Path

from zapgate.config import Settings

from .conftest import fast_settings
from .support import RunningGateway, eventually, serve_gateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"


ROTATING_QR = (1.0, 0.5, 0.5)
"""A short QR schedule for the tests that watch codes rotate and expire (the default one is long)."""


async def test_qr_rotates_then_times_out(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", sim_qr_schedule=ROTATING_QR)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.call("session.start", session="s")
        codes = []
        for attempt in (1, 2, 3):
            qr = await client.event("session.qr", lambda e, a=attempt: e["data"]["attempt"] == a)
            assert qr["data"]["max_attempts"] == 3
            codes.append(qr["data"]["qr"])
        assert len(set(codes)) == 3
        failed = await client.status("s", "failed")
        assert failed["data"]["reason"] == "qr_timeout"
        info = await client.call("session.get", session="s")
        assert info["status"] == "failed" and info["reason"] == "qr_timeout" and not info["paired"]
        # An expired pairing's codes can no longer be scanned; a restart gives fresh ones.
        reply = await client.request("sim.scan", qr=codes[-1], phone=ALICE)
        assert reply["error"]["code"] == "qr_used"
        await client.call("session.start", session="s")
        fresh = await client.event("session.qr", lambda e: e["data"]["attempt"] == 1 and e["data"]["qr"] not in codes)
        await client.call("sim.scan", qr=fresh["data"]["qr"], phone=ALICE)
        await client.status("s", "connected")


async def test_scan_errors(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", sim_qr_schedule=ROTATING_QR)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.call("session.start", session="s")
        first = await client.event("session.qr", lambda e: e["data"]["attempt"] == 1)
        await client.event("session.qr", lambda e: e["data"]["attempt"] == 2)
        expired = await client.request("sim.scan", qr=first["data"]["qr"], phone=ALICE)
        assert expired["error"]["code"] == "qr_expired"
        unknown = await client.request("sim.scan", qr="2@nothing,a,b,c", phone=ALICE)
        assert unknown["error"]["code"] == "qr_unknown"
        bad_phone = await client.request("sim.scan", qr=first["data"]["qr"], phone="0800")
        assert bad_phone["error"]["code"] == "invalid_recipient"


async def test_two_sessions_message_each_other_with_receipts(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("alice", ALICE)
        await client.pair("bob", BOB)
        sent = await client.call("message.send", session="alice", to=BOB, text="oi Bob")
        assert sent["status"] == "sent"
        mid = sent["message_id"]
        received = await client.event("message.received", lambda e: e["session"] == "bob")
        lid = received["data"].pop("from_lid")
        assert lid.endswith("@lid") and received["data"].pop("chat_lid") == lid  # Alice by LID too (issue 12)
        assert received["data"] | {"timestamp": 0} == {
            "message_id": mid,
            "chat": "5511999990001@s.whatsapp.net",
            "from": "5511999990001@s.whatsapp.net",
            "from_me": False,
            "kind": "text",
            "content": {"kind": "text", "text": "oi Bob"},
            "text": "oi Bob",
            "timestamp": 0,
            "push_name": "+5511999990001",
        }
        await client.event("message.status", lambda e: e["session"] == "alice" and e["data"]["status"] == "delivered")
        await client.call("message.read", session="bob", chat=received["data"]["chat"], message_ids=[mid])
        read = await client.event("message.status", lambda e: e["data"]["status"] == "read")
        assert read["session"] == "alice" and read["data"]["message_id"] == mid
        assert read["data"]["chat"] == "5521988880002@s.whatsapp.net"  # the chat with Bob, who read it

        reply = await client.call("message.send", session="bob", to=ALICE, text="oi Alice", reply_to=mid)
        answer = await client.event("message.received", lambda e: e["session"] == "alice")
        assert answer["data"]["reply_to"] == mid and answer["data"]["message_id"] == reply["message_id"]


async def test_errors_for_bad_sends(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("s", ALICE)
        nobody = await client.request("message.send", session="s", to="+44 20 7946 0000", text="hi")
        assert nobody["error"]["code"] == "not_on_whatsapp"
        bad = await client.request("message.send", session="s", to="not a number", text="hi")
        assert bad["error"]["code"] == "invalid_recipient"
        await client.call("session.start", session="fresh")
        unpaired = await client.request("message.send", session="fresh", to=ALICE, text="hi")
        assert unpaired["error"]["code"] == "session_not_paired"
        missing = await client.request("message.send", session="ghost", to=ALICE, text="hi")
        assert missing["error"]["code"] == "session_not_found"


async def test_stop_keeps_pairing_logout_unlinks_delete_removes(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("s", ALICE)
        stopped = await client.call("session.stop", session="s")
        assert stopped["status"] == "stopped" and stopped["paired"]
        await client.call("session.start", session="s")
        await client.status("s", "connected")  # no QR: the pairing was kept
        assert not [e for e in client.events if e["event"] == "session.qr" and e["seq"] > stopped_seq(client)]

        out = await client.call("session.logout", session="s")
        assert out["status"] == "logged_out" and not out["paired"]
        await client.call("session.start", session="s")
        await client.event("session.qr", lambda e: e["data"]["attempt"] == 1 and e["seq"] > stopped_seq(client))

        assert (await client.call("session.delete", session="s")) == {"session": "s", "deleted": True}
        await client.event("session.deleted", lambda e: e["session"] == "s")
        gone = await client.request("session.get", session="s")
        assert gone["error"]["code"] == "session_not_found"
        assert (await client.call("session.list"))["sessions"] == []


def stopped_seq(client) -> int:
    """The seq of the latest 'stopped' or 'logged_out' status seen."""
    marks = [
        e["seq"]
        for e in client.events
        if e["event"] == "session.status" and e["data"]["status"] in {"stopped", "logged_out"}
    ]
    return marks[-1]


async def test_start_is_idempotent(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        first = await client.call("session.start", session="s")
        second = await client.call("session.start", session="s")
        assert first["created_at"] == second["created_at"]
        await client.event("session.qr", lambda e: e["data"]["attempt"] == 1)
        sessions = (await client.call("session.list"))["sessions"]
        assert [s["session"] for s in sessions] == ["s"]
        assert len([e for e in client.events if e["event"] == "session.qr" and e["data"]["attempt"] == 1]) == 1


async def test_phone_unlinks_and_network_flaps(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("s", ALICE)
        await client.call("sim.network", session="s", online=False)
        down = await client.status("s", "disconnected")
        assert down["data"]["reason"] == "network"
        queued = await client.call("message.send", session="s", to="+1 555 000 0000", text="later")
        assert queued["status"] == "queued"
        await client.call("sim.network", session="s", online=True)
        await client.status("s", "connected")
        sent = await client.event(
            "message.status",
            lambda e: e["data"]["message_id"] == queued["message_id"] and e["data"]["status"] == "sent",
        )
        assert sent["data"]["chat"] == "15550000000@s.whatsapp.net"

        await client.call("sim.unlink", session="s")
        out = await client.status("s", "logged_out")
        assert out["data"]["reason"] == "unlinked_from_phone"
        assert not (await client.call("session.get", session="s"))["paired"]


async def test_pairing_code_flow(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.call("session.start", session="s", pair_phone=ALICE)
        code = (await client.event("session.pair_code"))["data"]["code"]
        assert len(code) == 9 and code[4] == "-"
        wrong = await client.request("sim.scan", qr=code, phone=BOB)
        assert wrong["error"]["code"] == "qr_unknown"
        me = (await client.call("sim.scan", qr=code, phone=ALICE))["me"]
        assert me["phone"] == "5511999990001"
        await client.status("s", "connected")
        bad = await client.request("session.start", session="t", pair_phone="12")
        assert bad["error"]["code"] == "invalid_recipient"


async def test_send_restriction_pauses_the_queue(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("s", ALICE)
        until = (await client.call("sim.restrict", session="s", seconds=0.6, reason="reachout_timelock"))["until"]
        restricted = await client.event("session.restricted")
        assert restricted["data"] == {"reason": "reachout_timelock", "until": until}
        info = await client.call("session.get", session="s")
        assert info["pacing"]["paused_reason"] == "reachout_timelock"
        await client.call("message.send", session="s", to="+1 555 000 0000", text="after the pause")
        done = await client.event("message.status", lambda e: e["data"]["status"] == "sent")
        assert done["ts"] >= until  # nothing went out while WhatsApp said no


async def test_restart_keeps_paired_sessions(tmp_path: Path) -> None:
    settings: Settings = fast_settings(tmp_path / "data")
    async with serve_gateway(settings) as gateway:
        token = await gateway.token("acme")
        async with gateway.connect() as client:
            await client.pair("s", ALICE)
            last = client.events[-1]["seq"]
    async with serve_gateway(settings) as gateway:
        from .support import RawClient

        client = await RawClient.open(gateway.url)
        try:
            ready = await client.authenticate(token, resume_from=last)
            assert ready["resume"] == "ok"
            await client.status("s", "starting")
            connected = await client.status("s", "connected")
            assert connected["data"]["me"]["phone"] == "5511999990001"
            assert not [e for e in client.events if e["event"] == "session.qr"]
            sent = await client.call("message.send", session="s", to="+1 555 000 0000", text="still here")
            assert sent["status"] == "sent"
        finally:
            await client.close()


async def test_deleting_a_session_answers_a_send_waiting_for_it(tmp_path: Path) -> None:
    # send_wait_s is far beyond the test's timeout: only the deletion can produce the reply in time.
    settings = fast_settings(tmp_path / "data", send_wait_s=600.0)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("s", ALICE)
        await client.call("sim.restrict", session="s", seconds=600)
        await client.send(
            {
                "type": "message.send",
                "id": "waiting",
                "session": "s",
                "to": "+1 555 000 0000",
                "text": "held back by the restriction",
            }
        )

        async def stored() -> bool:
            return bool((await client.call("session.get", session="s"))["outbox"]["queued"])

        await eventually(stored, "the send to be stored and waiting")
        await client.call("session.delete", session="s")
        answer = await client.reply("waiting")
        assert not answer["ok"] and answer["error"]["code"] == "send_failed", answer
        assert "was not sent: the session was deleted (session_deleted)" in answer["error"]["message"]
        failed = await client.event("message.status", lambda e: e["data"]["status"] == "failed")
        assert failed["data"]["reason"] == "session_deleted"


async def test_session_info_says_since_when_the_session_is_in_its_status(tmp_path: Path) -> None:
    """``since`` moves with each status change (not with anything else) and survives a restart of a resting one."""
    settings = fast_settings(tmp_path / "data")
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("s", ALICE)
        statuses = {e["data"]["status"]: e for e in client.events if e["event"] == "session.status"}
        qr, connected = statuses["qr"], statuses["connected"]
        since = (await client.call("session.get", session="s"))["since"]
        assert qr["ts"] < since <= connected["ts"]
        await client.call("message.send", session="s", to="+1 555 000 0000", text="not a status change")
        assert (await client.call("session.get", session="s"))["since"] == since

        await client.call("session.stop", session="s")
        stopped = await client.status("s", "stopped")
        since = (await client.call("session.list"))["sessions"][0]["since"]
        assert connected["ts"] < since <= stopped["ts"]
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        after = (await client.call("session.get", session="s"))["since"]
        assert since <= after <= stopped["ts"]  # when it was stored, just after it stopped
