"""REST and WebSocket parity: the simulator's whole flow run once through each gives the same data and the same
error codes (values that are new every run — times, message ids, QR strings — compared by presence only)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from zapgate.config import Settings
from zapgate.server.rest import operations

from .conftest import fast_settings
from .support import TIMEOUT, RawClient, RestClient, RunningGateway, serve_gateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
CONTACT = "+55 31 97777-0003"
VOLATILE = {
    *("time", "created_at", "expires_at", "timestamp", "until", "paused_until", "ts"),
    *("message_id", "qr", "lid", "from_lid", "chat_lid", "sender_lid", "participant_lid", "seq", "last_seq", "since"),
    *("token", "token_id", "tenant", "id", "detail", "disabled_at", "revoked_at"),
    *("webhook", "secret", "cursor", "pending", "latency_ms", "at", "last_attempt_at", "updated_at"),
    *("previous_secret_expires_at",),
    *("media_id", "picture_id"),
    *("group", "link", "owner_lid", "by_lid", "created"),  # each simulator draws its own group ids and codes
}
ROUTES = {op.spec.name: op for op in operations()}
NOBODY = "http://127.0.0.1:9/hook"
"""A webhook receiver that refuses connections (the discard port, closed)."""


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data", outbound_allow=("127.0.0.1/32",))

Run = Callable[..., Awaitable[tuple[str, Any]]]


def normalize(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: ("*" if k in VOLATILE and v is not None and not isinstance(v, dict) else normalize(v))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return type(value)(normalize(v) for v in value)
    return value


def over_websocket(client: RawClient) -> Run:
    async def run(name: str, validate: bool = True, **fields: Any) -> tuple[str, Any]:
        reply = await client.request(name, validate=validate, **fields)
        return ("ok", reply["data"]) if reply["ok"] else ("error", reply["error"]["code"])

    return run


def over_rest(rest: RestClient) -> Run:
    async def run(name: str, validate: bool = True, **fields: Any) -> tuple[str, Any]:
        op = ROUTES[name]
        path = {k: fields.pop(k) for k in op.path_fields}
        if op.in_query:
            answer = await rest.call(op.method, op.path, params=fields, **path)
        else:
            answer = await rest.call(op.method, op.path, json_body=fields, **path)
        return ("ok", answer.body) if answer.status == 200 else ("error", answer.body["code"])

    return run


async def wait_for_event(run: Run, after: int, found: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while loop.time() < deadline:
        kind, page = await run("events.fetch", after=after, limit=1000)
        assert kind == "ok", page
        for frame in page["events"]:
            if found(frame):
                return frame
        await asyncio.sleep(0.02)
    raise AssertionError("event not seen")


async def flow(run: Run) -> list[tuple[str, Any]]:
    """The simulator's whole flow; returns every result, in order."""
    results: list[tuple[str, Any]] = []

    async def step(name: str, **fields: Any) -> Any:
        outcome = await run(name, **fields)
        results.append((name, normalize(outcome)))
        return outcome[1]

    start = (await run("events.fetch", after=0))[1]["last_seq"]
    await step("ping")
    await step("session.list")
    await step("session.get", session="s1")
    await webhook_steps(step)
    for session, phone in (("s1", ALICE), ("s2", BOB)):
        await run("session.start", session=session)  # the status it answers (starting or qr) depends on timing
        qr = await wait_for_event(run, start, lambda f, s=session: f["event"] == "session.qr" and f["session"] == s)
        await step("sim.scan", qr=qr["data"]["qr"], phone=phone)
        await step("sim.scan", qr=qr["data"]["qr"], phone=phone)
        await wait_for_event(
            run, start, lambda f, s=session: f["session"] == s and f["data"].get("status") == "connected"
        )
        await step("session.get", session=session)
    sent = await step("message.send", session="s1", to=BOB, text="olá", idempotency_key="k")
    await step("message.send", session="s1", to=BOB, text="olá", idempotency_key="k")
    await step("message.send", session="s1", to=BOB, text="other", idempotency_key="k")
    await step("message.send", session="s1", to="not a phone", text="x")
    await step("message.send", session="nope", to=BOB, text="x")
    received = await wait_for_event(
        run, start, lambda f: f["event"] == "message.received" and f["data"]["message_id"] == sent["message_id"]
    )
    await step("message.read", session="s2", chat=received["data"]["chat"], message_ids=[sent["message_id"]])
    await step("sim.receive", session="s1", **{"from": CONTACT}, text="oi")
    await step("presence.set", session="s1", state="available")
    await step("presence.subscribe", session="s1", chat=BOB)
    await step("chat.presence", session="s1", chat=BOB, state="typing")
    await step("chat.presence", session="s1", chat=BOB, state="paused")
    await step("chat.list", session="s2", limit=10)
    await step("message.history", session="s2", chat=ALICE, limit=5)
    await step("message.history", session="s2", chat=ALICE, before="unknown")
    await step("chat.mark_read", session="s1", chat=CONTACT)
    for change in ("chat.archive", "chat.unarchive", "chat.pin", "chat.unpin", "chat.unmute"):
        await step(change, session="s1", chat=CONTACT)
    await step("chat.mute", session="s1", chat=CONTACT, until=4_000_000_000)
    created = await step("group.create", session="s1", subject="Parity", participants=[BOB, CONTACT])
    group = created["group"]["group"]
    await step("group.list", session="s1")
    await step("group.info", session="s2", group=group)
    await step("group.participants", session="s1", group=group, action="promote", participants=[BOB])
    link = (await step("group.invite_link", session="s1", group=group))["link"]
    await step("group.update", session="s1", group=group, subject="Renamed", announce=True)
    await step("group.leave", session="s2", group=group)
    await step("group.join", session="s2", link=link)
    await step("group.info", session="s1", group="120363999999999999@g.us")
    await step("sim.contact", phone=BOB, hide_phone=False)
    await step("contact.resolve", session="s1", contact=BOB)
    await step("contact.resolve", validate=False, session="s1", contact="not a number")
    await step("contact.check", session="s1", phones=[BOB, CONTACT, "+44 20 7946 0000"])
    await step("sim.profile", phone=CONTACT, about="Olá", picture=True)
    await step("contact.info", session="s1", contact=CONTACT)
    await step("contact.block", session="s1", contact=CONTACT)
    await step("contact.blocklist", session="s1")
    await step("contact.unblock", session="s1", contact=CONTACT)
    await step("media.get", validate=False, media_id="unknown")
    await step("media.retry", validate=False, media_id="unknown")
    await step("sim.media_fail", session="s1", times=1)
    await step("sim.network", session="s1", online=False)
    await step("sim.network", session="s1", online=True)
    await step("sim.restrict", session="s1", seconds=1)
    await step("events.fetch", after=start, limit=1)
    await step("session.stop", session="s1")
    await step("session.stop", session="s1")
    await step("session.logout", session="s2")
    await step("sim.unlink", session="s1")
    await step("session.start", validate=False, session="bad name")
    await step("session.list")
    await step("session.delete", session="s1")
    await step("session.delete", session="s2")
    await step("session.get", session="s1")
    await step("session.list")
    return results


async def admin_flow(run: Run, prefix: str) -> list[tuple[str, Any]]:
    """The admin API's flow, for tenants named ``prefix-…`` (tenant names and token ids differ per run)."""
    results: list[tuple[str, Any]] = []

    async def step(name: str, **fields: Any) -> Any:
        outcome = await run(name, **fields)
        results.append((name, normalize(outcome)))
        return outcome[1]

    await step("tenant.create", tenant=f"{prefix}-a", max_sessions=1)
    await step("tenant.create", tenant=f"{prefix}-a")
    await step("tenant.create", validate=False, tenant="Not Valid")
    listed = await run("tenant.list")  # holds every tenant so far: differs between the runs
    assert listed[0] == "ok" and f"{prefix}-a" in [t["tenant"] for t in listed[1]["tenants"]]
    await step("tenant.update", tenant=f"{prefix}-a", max_sessions=None, max_queued_bytes=1000)
    await step("tenant.update", tenant=f"{prefix}-nope", max_sessions=3)
    await step("tenant.disable", tenant=f"{prefix}-a")
    await step("tenant.enable", tenant=f"{prefix}-a")
    await step("tenant.disable", tenant=f"{prefix}-nope")
    created = await step(
        "token.create", tenant=f"{prefix}-a", scopes=["send"], sessions=["main"], expires_in=3600, label="bot"
    )
    await step("token.create", tenant=f"{prefix}-nope")
    await step("token.create", validate=False, tenant=f"{prefix}-a", scopes=["root"])
    await step("token.list", tenant=f"{prefix}-a")
    await step("token.revoke", token_id=created["info"]["token_id"])
    await step("token.revoke", token_id=created["info"]["token_id"])
    await step("audit.list", tenant=f"{prefix}-a", limit=3)
    return results


async def webhook_steps(step: Callable[..., Awaitable[Any]]) -> None:
    hook = (await step("webhook.create", url=NOBODY, events=["message.received"], description="crm"))["webhook"]
    await step("webhook.create", url="http://10.0.0.1/hook")
    await step("webhook.create", url=NOBODY, events=["no.such_event"])
    await step("webhook.create", validate=False, url="ftp://example.com/")
    await step("webhook.list")
    await step("webhook.get", webhook=hook)
    await step("webhook.update", webhook=hook, description="help desk", sessions=["s1"])
    await step("webhook.rotate_secret", webhook=hook)
    await step("webhook.test", webhook=hook)
    await step("webhook.replay", webhook=hook, from_seq=1)
    await step("webhook.attempts", webhook=hook)
    await step("webhook.dead_letters", webhook=hook)
    await step("webhook.redeliver", webhook=hook)
    await step("webhook.delete", webhook=hook)
    await step("webhook.get", webhook=hook)
    await step("webhook.delete", webhook=hook)


async def test_rest_and_websocket_give_the_same_results(gateway: RunningGateway, tmp_path: Path) -> None:
    async with gateway.connect("ws-tenant") as client:
        by_socket = await flow(over_websocket(client))
    # On a gateway of its own: the flow's phone numbers are now the first tenant's (a simulated phone belongs
    # to one tenant), and the results must be the same numbers.
    async with serve_gateway(fast_settings(tmp_path / "rest", outbound_allow=("127.0.0.1/32",))) as other:
        rest = await other.rest("rest-tenant")
        try:
            by_rest = await flow(over_rest(rest))
        finally:
            await rest.close()
    _, admin_token = await gateway.gateway.tokens.create("ops", scopes=["admin"])
    admin_socket = await RawClient.open(gateway.url)
    try:
        await admin_socket.authenticate(admin_token)
        by_socket += await admin_flow(over_websocket(admin_socket), "ws")
    finally:
        await admin_socket.close()
    admin_rest = RestClient(gateway.http, admin_token)
    try:
        by_rest += await admin_flow(over_rest(admin_rest), "rest")
    finally:
        await admin_rest.close()
    assert len(by_socket) == len(by_rest)
    for (name, socket_result), (_, rest_result) in zip(by_socket, by_rest, strict=True):
        assert socket_result == rest_result, name
    codes = {result[1] for _, result in by_socket if result[0] == "error"}
    assert {"session_not_found", "qr_used", "idempotency_conflict", "invalid_recipient", "invalid_request"} <= codes
    assert {"tenant_exists", "tenant_not_found", "token_not_found"} <= codes
    assert "webhook_not_found" in codes
    covered = {name for name, _ in by_socket} | {"session.start", "events.fetch", "tenant.list"}
    assert covered == set(ROUTES), set(ROUTES) - covered
