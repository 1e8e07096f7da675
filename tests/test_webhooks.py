"""Webhooks end to end: a real gateway on 127.0.0.1 POSTs to a real receiver on 127.0.0.1, which verifies every
request with the official ``standardwebhooks`` library. Ordering, retries with stable ids, dead letters,
disabling, filters, rotation, replay, isolation of a hanging endpoint and the SSRF guard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from zapgate.config import Settings
from zapgate.netguard import AddressPolicy
from zapgate.protocol import PresenceData, encode
from zapgate.storage import NewEvent
from zapgate.webhooks.sender import Sender

from .conftest import fast_settings
from .support import RawClient, RunningGateway, eventually, serve_gateway
from .webhook_receiver import HANG, receiver

ALICE = "+55 11 99999-0001"
CONTACT = "+55 31 97777-0003"
FAST_RETRIES = (0.05,) * 400


def hook_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"outbound_allow": ("127.0.0.1/32",), "webhook_retry_schedule": FAST_RETRIES}
    values.update(overrides)
    return fast_settings(data_dir, **values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return hook_settings(tmp_path / "data")


async def emit(gw: RunningGateway, count: int, *, tenant: str = "acme", session: str = "s1") -> list[int]:
    """Append ``count`` presence events to the tenant's log (as the session manager does); return their seqs."""
    data = encode(PresenceData(chat="1@s.whatsapp.net", from_="1@s.whatsapp.net", state="available"))
    stored = await gw.gateway.storage.append_events([NewEvent(tenant, session, "presence", data)] * count)
    return [e.seq for e in stored]


async def cursor_reaches(client: RawClient, hook: str, seq: int) -> dict[str, Any]:
    """The endpoint's info once its cursor reached ``seq`` (the receiver gets a request before the gateway has
    recorded its answer)."""
    found: dict[str, Any] = {}

    async def reached() -> bool:
        found.update(await client.call("webhook.get", webhook=hook))
        return bool(found["cursor"] >= seq)

    await eventually(reached, f"cursor at {seq}")
    return found


async def test_events_arrive_signed_and_in_order_exactly_as_the_socket_sends_them(gateway: RunningGateway) -> None:
    async with receiver() as rx, gateway.connect() as client:
        created = await client.call("webhook.create", url=rx.url)
        secret, hook = created["secret"], created["webhook"]
        assert secret.startswith("whsec_") and created["enabled"] is True
        assert "secret" not in (await client.call("webhook.get", webhook=hook))
        await client.pair("s1", ALICE)
        for n in range(5):
            await client.call("sim.receive", session="s1", **{"from": CONTACT}, text=f"oi {n}")
        for n in range(5):
            await client.event("message.received", lambda e, n=n: e["data"]["text"] == f"oi {n}")
        frames = (await client.call("events.fetch", after=created["cursor"], limit=1000))["events"]
        await eventually(lambda: len(rx.accepted) >= len(frames), "every event delivered")
        assert [r.frame for r in rx.accepted] == frames, "the body is the socket's event frame, in order"
        for request in rx.accepted:
            assert request.verify(secret) == request.frame
            assert request.id == f"{hook}_{request.frame['seq']}"
            assert request.headers["content-type"] == "application/json"
        texts = [f["data"]["content"]["text"] for f in frames if f["event"] == "message.received"]
        assert texts == [f"oi {n}" for n in range(5)]
        info = await cursor_reaches(client, hook, frames[-1]["seq"])
        assert info["cursor"] == frames[-1]["seq"] and info["pending"] == 0 and info["last_status"] == 200
        attempts = (await client.call("webhook.attempts", webhook=hook))["attempts"]
        assert [a["seq"] for a in attempts] == [f["seq"] for f in reversed(frames)]
        assert all(a["outcome"] == "delivered" and a["status"] == 200 for a in attempts)
        async with httpx.AsyncClient() as http:
            metrics = (await http.get(f"{gateway.http}/metrics")).text
        assert f'zapgate_webhook_attempts_total{{outcome="delivered"}} {float(len(frames))}' in metrics
        assert "zapgate_webhook_pending_events 0.0" in metrics
        assert "zapgate_webhook_endpoints_active 1.0" in metrics
        assert "zapgate_webhook_latency_seconds_count" in metrics


async def test_a_receiver_down_for_a_while_gets_everything_in_order_with_stable_ids(gateway: RunningGateway) -> None:
    down = {"on": True}
    async with receiver(lambda frame: 503 if down["on"] else 200) as rx, gateway.connect() as client:
        created = await client.call("webhook.create", url=rx.url)
        seqs = await emit(gateway, 20)
        await eventually(lambda: len(rx.requests) >= 10, "several failed attempts")
        info = await client.call("webhook.get", webhook=created["webhook"])
        assert info["failing_since"] is not None and info["last_status"] == 503 and info["cursor"] == created["cursor"]
        failed_ids = {r.id for r in rx.requests}
        assert failed_ids == {f"{created['webhook']}_{seqs[0]}"}, "retries of the first event only, same id"
        down["on"] = False
        await eventually(lambda: len(rx.accepted) == 20, "all delivered once the receiver is back")
        assert rx.accepted_seqs() == seqs
        assert rx.accepted[0].id in failed_ids
        for request in rx.requests:
            request.verify(created["secret"])
        info = await cursor_reaches(client, created["webhook"], seqs[-1])
        assert "failing_since" not in info and info["cursor"] == seqs[-1]
        retries = [
            a for a in (await client.call("webhook.attempts", webhook=created["webhook"], limit=1000))["attempts"]
        ]
        assert sum(a["outcome"] == "retry" for a in retries) >= 10
        assert [a["attempt"] for a in reversed(retries) if a["seq"] == seqs[0]][:3] == [1, 2, 3]


async def test_410_dead_letters_the_event_and_disables_the_endpoint(gateway: RunningGateway) -> None:
    async with receiver(lambda frame: 410) as rx, gateway.connect() as client:
        created = await client.call("webhook.create", url=rx.url, sessions=["s1"])
        hook = created["webhook"]
        seqs = await emit(gateway, 3)
        disabled = await client.event("webhook.disabled", lambda e: e["data"]["webhook"] == hook)
        assert disabled["data"]["reason"] == "gone" and disabled["data"]["url"] == rx.url
        assert disabled["session"] == ""
        info = await client.call("webhook.get", webhook=hook)
        assert info["enabled"] is False and info["disabled_reason"] == "gone"
        assert info["cursor"] == seqs[0], "the refused event is done (a dead letter); the others wait"
        assert len(rx.requests) == 1, "nothing more was sent after 410"
        dead = (await client.call("webhook.dead_letters", webhook=hook))["dead_letters"]
        assert [(d["seq"], d["status"], d["attempts"]) for d in dead] == [(seqs[0], 410, 1)]
        # Re-enabled, it goes on at its cursor (the receiver still says 410: disabled again after one request).
        rx.answer = lambda frame: 200
        info = await client.call("webhook.update", webhook=hook, enabled=True)
        assert info["enabled"] is True and "disabled_reason" not in info
        await eventually(lambda: rx.accepted_seqs() == seqs[1:], "the rest delivered after re-enabling")


async def test_a_refused_event_becomes_a_dead_letter_and_can_be_redelivered(gateway: RunningGateway) -> None:
    refuse: set[int] = set()
    async with receiver(lambda frame: 422 if frame["seq"] in refuse else 200) as rx, gateway.connect() as client:
        created = await client.call("webhook.create", url=rx.url)
        hook = created["webhook"]
        seqs = await emit(gateway, 1)
        await eventually(lambda: rx.accepted_seqs() == seqs, "first delivered")
        refuse.add(seqs[0] + 1)
        seqs += await emit(gateway, 3)
        await eventually(lambda: rx.accepted_seqs() == [seqs[0], *seqs[2:]], "the others go on past the refused one")
        assert sum(r.frame["seq"] == seqs[1] for r in rx.requests) == 1, "422 is not retried"
        dead = (await client.call("webhook.dead_letters", webhook=hook))["dead_letters"]
        assert [(d["seq"], d["status"], d["event"], d["session"]) for d in dead] == [(seqs[1], 422, "presence", "s1")]
        refuse.clear()
        assert await client.call("webhook.redeliver", webhook=hook, seq=seqs[1]) == {"queued": 1}
        await eventually(lambda: rx.accepted_seqs()[-1:] == [seqs[1]], "redelivered")
        assert rx.accepted[-1].id == f"{hook}_{seqs[1]}"

        async def no_dead_letters() -> bool:  # the receiver has it before the gateway recorded the answer
            return (await client.call("webhook.dead_letters", webhook=hook))["dead_letters"] == []

        await eventually(no_dead_letters, "the dead letter gone once delivered")
        assert await client.call("webhook.redeliver", webhook=hook) == {"queued": 0}


async def test_a_hanging_endpoint_does_not_delay_another_endpoint_nor_the_socket(tmp_path: Path) -> None:
    async with (
        serve_gateway(hook_settings(tmp_path / "data", webhook_timeout_s=60.0)) as gw,
        receiver(lambda frame: HANG) as stuck,
        receiver() as fine,
        gw.connect() as client,
    ):
        await client.call("webhook.create", url=stuck.url)
        await client.call("webhook.create", url=fine.url)
        seqs = await emit(gw, 50)
        await eventually(lambda: fine.accepted_seqs() == seqs, "the healthy endpoint got everything")
        page = await client.call("events.fetch", after=seqs[0] - 1, limit=1000)
        assert [e["seq"] for e in page["events"]] == seqs, "the socket is not held up either"
        assert len(stuck.requests) == 1, "the hanging endpoint is still on its first request"


async def test_an_endpoint_failing_for_the_whole_window_is_disabled_then_resumes(tmp_path: Path) -> None:
    async with (
        serve_gateway(hook_settings(tmp_path / "data", webhook_disable_after_s=0.5)) as gw,
        receiver(lambda frame: 500) as rx,
        gw.connect() as client,
    ):
        created = await client.call("webhook.create", url=rx.url)
        seqs = await emit(gw, 2)
        disabled = await client.event("webhook.disabled", lambda e: e["data"]["webhook"] == created["webhook"])
        assert disabled["data"]["reason"] == "failing"
        info = await client.call("webhook.get", webhook=created["webhook"])
        assert info["enabled"] is False and info["cursor"] == created["cursor"], "nothing given up on"
        assert (await client.call("webhook.dead_letters", webhook=created["webhook"]))["dead_letters"] == []
        rx.answer = lambda frame: 200
        await client.call("webhook.update", webhook=created["webhook"], enabled=True)
        # Its own webhook.disabled event is in the log after its cursor too.
        after = [*seqs, disabled["seq"]]
        await eventually(lambda: rx.accepted_seqs() == after, "delivered after re-enabling")


async def test_filters_by_event_and_session(gateway: RunningGateway) -> None:
    async with receiver() as by_session, receiver() as by_event, gateway.connect() as client:
        await client.call("webhook.create", url=by_session.url, sessions=["s2"])
        await client.call("webhook.create", url=by_event.url, events=["message.status"])
        s1 = await emit(gateway, 2, session="s1")
        s2 = await emit(gateway, 3, session="s2")
        other_tenant = await emit(gateway, 2, tenant="globex", session="s2")
        await eventually(lambda: by_session.accepted_seqs() == s2, "only s2's events")
        assert {r.frame["session"] for r in by_session.accepted} == {"s2"}
        assert s1 and other_tenant
        await client.call("ping")
        assert by_event.requests == [], "no message.status event happened"
        bad = await client.request("webhook.create", url=by_event.url, events=["message.recieved"])
        assert bad["error"]["code"] == "invalid_request" and "message.recieved" in bad["error"]["message"]


async def test_rotation_signs_with_both_secrets_for_the_grace_window(gateway: RunningGateway) -> None:
    async with receiver() as rx, gateway.connect() as client:
        created = await client.call("webhook.create", url=rx.url)
        old = created["secret"]
        rotated = await client.call("webhook.rotate_secret", webhook=created["webhook"])
        new = rotated["secret"]
        assert new != old and rotated["previous_secret_expires_at"] > created["created_at"]
        await emit(gateway, 1)
        await eventually(lambda: len(rx.accepted) == 1, "delivered")
        request = rx.accepted[0]
        assert len(request.headers["webhook-signature"].split(" ")) == 2
        request.verify(new)
        request.verify(old)
        # A secret given by the caller, through webhook.update.
        given = "whsec_" + "A" * 43 + "="
        await client.call("webhook.update", webhook=created["webhook"], secret=given)
        await emit(gateway, 1)
        await eventually(lambda: len(rx.accepted) == 2, "delivered")
        rx.accepted[1].verify(given)
        rx.accepted[1].verify(new)
        bad = await client.request("webhook.update", webhook=created["webhook"], secret="whsec_c2hvcnQ=")
        assert bad["error"]["code"] == "invalid_request"


async def test_replay_sends_again_with_the_same_ids(gateway: RunningGateway) -> None:
    async with receiver() as rx, gateway.connect() as client:
        created = await client.call("webhook.create", url=rx.url)
        seqs = await emit(gateway, 5)
        await eventually(lambda: rx.accepted_seqs() == seqs, "delivered")
        first_ids = [r.id for r in rx.accepted]
        info = await client.call("webhook.replay", webhook=created["webhook"], from_seq=seqs[2])
        assert info["cursor"] == seqs[1]
        await eventually(lambda: len(rx.accepted) == 8, "replayed")
        assert rx.accepted_seqs()[5:] == seqs[2:]
        assert [r.id for r in rx.accepted[5:]] == first_ids[2:]


async def test_create_from_an_earlier_seq_delivers_the_log_since_then(gateway: RunningGateway) -> None:
    seqs = await emit(gateway, 4)
    async with receiver() as rx, gateway.connect() as client:
        await client.call("webhook.create", url=rx.url, from_seq=seqs[1])
        await eventually(lambda: rx.accepted_seqs() == seqs[1:], "the log from seq on")


async def test_ping_and_errors(gateway: RunningGateway) -> None:
    async with receiver() as rx, gateway.connect() as client, gateway.connect("globex") as other:
        created = await client.call("webhook.create", url=rx.url, description="crm")
        result = await client.call("webhook.test", webhook=created["webhook"])
        assert result["ok"] is True and result["status"] == 200 and result["latency_ms"] >= 0
        ping = rx.requests[0]
        assert ping.verify(created["secret"])["event"] == "webhook.ping"
        assert ping.frame["data"] == {"webhook": created["webhook"]}
        attempts = (await client.call("webhook.attempts", webhook=created["webhook"]))["attempts"]
        assert [(a["outcome"], a["event"], a["status"]) for a in attempts] == [("ping", "webhook.ping", 200)]
        # Another tenant's endpoint is exactly like a missing one.
        for command in ("webhook.get", "webhook.test", "webhook.delete", "webhook.attempts", "webhook.dead_letters"):
            reply = await other.request(command, webhook=created["webhook"])
            assert reply["error"]["code"] == "webhook_not_found", command
        assert (await other.call("webhook.list"))["webhooks"] == []
        listed = (await client.call("webhook.list"))["webhooks"]
        assert [(w["webhook"], w["description"]) for w in listed] == [(created["webhook"], "crm")]
        for url in ("ftp://x.example/", "http://user:pw@x.example/", "not a url", "http://..../", "http://a:99999/"):
            reply = await client.request("webhook.create", url=url, validate=False)
            assert reply["error"]["code"] == "invalid_request", url
        await client.call("webhook.delete", webhook=created["webhook"])
        assert (await client.request("webhook.get", webhook=created["webhook"]))["error"]["code"] == "webhook_not_found"


async def test_too_many_endpoints(tmp_path: Path) -> None:
    async with serve_gateway(hook_settings(tmp_path / "data", webhook_max_per_tenant=2)) as gw, gw.connect() as client:
        for _ in range(2):
            await client.call("webhook.create", url="http://127.0.0.1:9/")
        reply = await client.request("webhook.create", url="http://127.0.0.1:9/")
        assert reply["error"]["code"] == "too_many_webhooks"


async def test_private_addresses_are_refused_unless_allowed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with receiver() as rx:
        async with serve_gateway(fast_settings(data)) as gw, gw.connect() as client:
            for url in (
                rx.url,
                "http://localhost/x",
                "http://169.254.169.254/latest",
                "http://10.1.2.3/",
                "http://[::1]/",
            ):
                reply = await client.request("webhook.create", url=url)
                assert reply["error"]["code"] == "invalid_request", url
                assert "ZAPGATE_OUTBOUND_ALLOW" in reply["error"]["message"]
        # Allowed when created; the policy tightened since: every connection is checked, so nothing is sent.
        async with serve_gateway(hook_settings(data)) as gw, gw.connect() as client:
            created = await client.call("webhook.create", url=rx.url)
        async with (
            serve_gateway(fast_settings(data, webhook_retry_schedule=FAST_RETRIES)) as gw,
            gw.connect() as client,
        ):
            await emit(gw, 1)

            async def refused() -> bool:
                attempts = (await client.call("webhook.attempts", webhook=created["webhook"]))["attempts"]
                return bool(attempts) and attempts[0]["error"].startswith("refused:")

            await eventually(refused, "a refused attempt")
            result = await client.call("webhook.test", webhook=created["webhook"])
            assert result["ok"] is False and "not a public address" in result["error"]
        assert rx.requests == []


async def test_a_restart_resumes_at_the_cursor(tmp_path: Path) -> None:
    data = tmp_path / "data"
    async with receiver() as rx:
        async with serve_gateway(hook_settings(data)) as gw, gw.connect() as client:
            created = await client.call("webhook.create", url=rx.url)
            seqs = await emit(gw, 3)
            await eventually(lambda: rx.accepted_seqs() == seqs, "delivered")
        rx.answer = lambda frame: 503
        async with serve_gateway(hook_settings(data)) as gw:
            seqs += await emit(gw, 3)
            await eventually(lambda: len(rx.requests) > 3, "failing attempts")
        rx.answer = lambda frame: 200
        async with serve_gateway(hook_settings(data)) as gw, gw.connect() as client:
            await eventually(lambda: rx.accepted_seqs() == seqs, "delivered after the restart")
            await cursor_reaches(client, created["webhook"], seqs[-1])


async def test_only_tokens_for_the_whole_tenant_manage_webhooks(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        created = await client.call("webhook.create", url="http://127.0.0.1:9/")
    for scopes, sessions in ((["tenant"], ["s1"]), (["send"], None), (["read"], None)):
        _, token = await gateway.gateway.tokens.create("acme", scopes=scopes, sessions=sessions)
        limited = await RawClient.open(gateway.url)
        try:
            await limited.authenticate(token)
            for command, fields in (("webhook.list", {}), ("webhook.get", {"webhook": created["webhook"]})):
                reply = await limited.request(command, **fields)
                assert reply["error"]["code"] == "forbidden", (scopes, sessions, command)
            reply = await limited.request("webhook.create", url="http://127.0.0.1:9/")
            assert reply["error"]["code"] == "forbidden"
        finally:
            await limited.close()


async def test_an_unusable_url_is_a_failed_attempt_not_an_error() -> None:
    """URLs the gateway refuses at creation can still reach the sender (stored before a check existed, or
    failing only in httpx's own parser): the attempt fails with the reason, it never raises."""
    sender = Sender(AddressPolicy(), timeout=5.0, connect_timeout=5.0, max_response_bytes=1024)
    try:
        for url in ("http://xn--/", "http://..../", "http://[zz]/", "http://a\x00b/"):
            answer = await sender.post(url, "m", ["whsec_" + "A" * 43 + "="], b"{}")
            assert answer.status is None and answer.error, url
    finally:
        await sender.close()
