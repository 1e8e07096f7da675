"""Token scopes and session limits over a real socket and REST: every command of the registry against every scope,
a token limited to some sessions, expiry, revocation of a live connection and disabled tenants."""

from __future__ import annotations

import asyncio
import collections
import enum
import time
import typing
from typing import Any

import msgspec
import pytest

from zapgate.auth import expand_scopes
from zapgate.protocol import COMMANDS, CommandSpec, Scope, decode_client_frame
from zapgate.server.commands.registry import audited

from .support import TIMEOUT, RawClient, RestClient, RunningGateway, eventually
from .test_rest_events import SSE
from .test_rest_parity import ROUTES
from .test_security import closed_with

ALICE = "+55 11 99999-0101"
BOB = "+55 21 98888-0102"

SAMPLES: dict[str, Any] = {
    "session": "main",
    "to": BOB,
    "chat": BOB,
    "from": BOB,
    "phone": ALICE,
    "content": {"kind": "text", "text": "x"},
    "text": "x",
    "message_ids": ["x"],
    "media_id": "med_unknown0",
    "qr": "not-a-code",
    "tenant": "scope-matrix-nobody",
    "token_id": "0123456789ab",
    "after": 0,
    "phones": [BOB],
    "url": "https://[::1]:9/hook",
    "group": "120363000000000001@g.us",
    "participants": [BOB],
    "link": "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv",
}
"""A valid value for each required field, by wire name (a new command with new fields gets them here)."""


def _sample(field: msgspec.structs.FieldInfo) -> Any:
    if field.encode_name in SAMPLES:
        return SAMPLES[field.encode_name]
    kind = field.type
    while typing.get_origin(kind) is typing.Annotated:
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) is typing.Literal:
        return typing.get_args(kind)[0]
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return next(iter(kind)).value
    if typing.get_origin(kind) is list:
        return [{bool: True, int: 1, float: 1.0}.get(typing.get_args(kind)[0], "x")]
    return {bool: True, int: 1, float: 1.0, str: "x"}.get(kind, "x")  # type: ignore[call-overload]


def sample_frame(spec: CommandSpec) -> dict[str, Any]:
    """A frame of the command that decodes (its required fields filled with sample values)."""
    frame: dict[str, Any] = {"type": spec.name, "id": "x"}
    for field in msgspec.structs.fields(spec.request):
        if field.required and field.encode_name not in frame:
            frame[field.encode_name] = _sample(field)
    decode_client_frame(msgspec.json.encode(frame))  # a sample that does not decode: add it to SAMPLES
    return frame


async def test_every_command_is_refused_exactly_to_tokens_without_its_scope(gateway: RunningGateway) -> None:
    """Table-driven over the registry: each scope runs each command over the socket and REST; ``forbidden`` comes
    back exactly when the scope (with what it includes) lacks the command's scope. Every run of an audited
    command, and every refusal, is then in the audit log, under the token that asked."""
    made = {scope: await gateway.gateway.tokens.create("matrix", scopes=[scope.value]) for scope in Scope}
    tokens = {scope: token for scope, (_, token) in made.items()}
    expected: collections.Counter[tuple[str, str, bool]] = collections.Counter()
    for scope in Scope:
        client = await RawClient.open(gateway.url)
        rest = RestClient(gateway.http, tokens[scope])
        try:
            await client.authenticate(tokens[scope])
            for name, spec in COMMANDS.items():
                frame = sample_frame(spec)
                fields = {k: v for k, v in frame.items() if k not in ("type", "id")}
                allowed = spec.scope is None or spec.scope in expand_scopes({scope})
                reply = await client.request(name, **fields)
                socket_code = None if reply["ok"] else reply["error"]["code"]
                if name not in ROUTES:  # WebSocket only (subscribe)
                    assert (socket_code == "forbidden") is not allowed, (name, scope.value, socket_code)
                    continue
                op = ROUTES[name]
                path = {k: str(fields.pop(k)) for k in op.path_fields}
                if op.in_query:
                    answer = await rest.call(op.method, op.path, params=fields, **path)
                else:
                    answer = await rest.call(op.method, op.path, json_body=fields, **path)
                rest_code = None if answer.status == 200 else answer.body["code"]
                where = f"{name} with a {scope.value!r} token"
                if audited(spec) or not allowed:
                    expected[(made[scope][0].id, name, not allowed)] += 2  # the socket's run and the REST one
                if allowed:
                    assert socket_code != "forbidden" and rest_code != "forbidden", where
                else:
                    assert socket_code == "forbidden" and rest_code == "forbidden", (where, socket_code, rest_code)
                    assert answer.status == 403, where
        finally:
            await client.close()
            await rest.close()
    entries = await gateway.gateway.storage.tenants.list_audit(tenant=None, after=0, limit=1000)
    found = collections.Counter((e.token_id or "", e.command, e.outcome == "forbidden") for e in entries)
    assert found == expected
    assert any(command.startswith("webhook.") for _, command, refused in expected if not refused)


def test_scopes_include_what_the_docs_say() -> None:
    assert expand_scopes({Scope.TENANT}) == {Scope.TENANT, Scope.SEND, Scope.READ}
    assert expand_scopes({Scope.SEND}) == {Scope.SEND, Scope.READ}
    assert expand_scopes({Scope.READ}) == {Scope.READ}
    assert expand_scopes({Scope.ADMIN}) == {Scope.ADMIN}
    read_only = {n for n, s in COMMANDS.items() if s.scope is Scope.READ}
    assert {"events.fetch", "session.list", "session.get", "media.get"} <= read_only
    assert [n for n, s in COMMANDS.items() if s.scope is None] == ["ping"]  # any valid token
    assert "message.send" not in read_only and COMMANDS["message.send"].scope is Scope.SEND
    assert {n for n, s in COMMANDS.items() if s.scope is Scope.ADMIN} >= {
        "tenant.create",
        "tenant.list",
        "tenant.disable",
        "token.create",
        "token.list",
        "token.revoke",
        "audit.list",
    }


# -- a token limited to some sessions


async def test_the_ready_frame_says_what_the_token_may_do(gateway: RunningGateway) -> None:
    """``scopes`` (expanded) and ``sessions`` in ``ready``, over the socket and in the SSE stream's ready message:
    what lets the dashboard show only what the token may use."""
    cases = [
        ({"scopes": ["tenant"]}, ["read", "send", "tenant"], None),
        ({"scopes": ["read"]}, ["read"], None),
        ({"scopes": ["send"], "sessions": ["b", "a"]}, ["read", "send"], ["a", "b"]),
        ({"scopes": ["admin"]}, ["admin"], None),
        ({"scopes": ["admin", "tenant"]}, ["read", "send", "tenant", "admin"], None),
    ]
    for grant, scopes, sessions in cases:
        _, token = await gateway.gateway.tokens.create("shown", **grant)
        client = await RawClient.open(gateway.url)
        try:
            ready = await client.authenticate(token)
        finally:
            await client.close()
        assert ready["scopes"] == scopes, grant
        assert ready.get("sessions") == sessions, grant
        if "read" in scopes:
            rest = RestClient(gateway.http, token)
            headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
            try:
                async with rest.http.stream("GET", "/v1/events", params={"after": 0}, headers=headers) as response:
                    sse_ready = (await SSE(response).take(1))[0]
            finally:
                await rest.close()
            assert sse_ready["event"] == "ready", sse_ready
            assert sse_ready["data"]["scopes"] == scopes
            assert sse_ready["data"].get("sessions") == sessions


async def test_a_session_limited_token_sees_and_uses_only_its_sessions(gateway: RunningGateway) -> None:
    async with gateway.connect("acme") as owner:
        await owner.pair("s1", ALICE)
        await owner.pair("s2", BOB)
        _, limited = await gateway.gateway.tokens.create("acme", scopes=["tenant"], sessions=["s1", "s3"])
        bot = await RawClient.open(gateway.url)
        try:
            await bot.authenticate(limited, resume_from=0)
            # The replay from seq 0 and live events: only s1's.
            await bot.status("s1", "connected")
            await owner.call("sim.receive", session="s2", **{"from": "+55 31 97777-0103"}, text="to s2")
            await owner.call("sim.receive", session="s1", **{"from": "+55 31 97777-0103"}, text="to s1")
            received = await bot.event("message.received")
            assert received["session"] == "s1" and received["data"]["content"]["text"] == "to s1"
            assert {e["session"] for e in bot.events} == {"s1"}

            listed = await bot.call("session.list")
            assert [s["session"] for s in listed["sessions"]] == ["s1"]
            for name, fields in (
                ("session.get", {"session": "s2"}),
                ("message.send", {"session": "s2", "to": ALICE, "text": "no"}),
                ("session.stop", {"session": "s2"}),
                ("session.start", {"session": "s4"}),  # it cannot create sessions outside its list
            ):
                reply = await bot.request(name, **fields)
                assert not reply["ok"] and reply["error"]["code"] == "forbidden", name
                assert "s1, s3" in reply["error"]["message"]
            assert (await bot.call("session.get", session="s1"))["status"] == "connected"
            assert (await bot.call("session.start", session="s3"))["session"] == "s3"  # in its list: allowed

            page = await bot.call("events.fetch", after=0, limit=1000)
            assert page["events"] and {e["session"] for e in page["events"]} <= {"s1", "s3"}
            everything = await owner.call("events.fetch", after=0, limit=1000)
            assert "s2" in {e["session"] for e in everything["events"]}
            # Asking for another session's events narrows to nothing, on every path.
            asked = await bot.call("events.fetch", after=0, limit=1000, sessions=["s2"])
            assert asked["events"] == []
            subscribed = await bot.call("subscribe", sessions=["s1", "s2"])
            assert subscribed["sessions"] == ["s1"]
            await owner.call("sim.receive", session="s2", **{"from": "+55 31 97777-0103"}, text="again s2")
            await owner.call("sim.receive", session="s1", **{"from": "+55 31 97777-0103"}, text="again s1")
            again = await bot.event("message.received", lambda e: e["data"]["content"]["text"].startswith("again"))
            assert again["session"] == "s1"
            assert {e["session"] for e in bot.events} == {"s1", "s3"} or {e["session"] for e in bot.events} == {"s1"}
        finally:
            await bot.close()

        rest = RestClient(gateway.http, limited)
        try:
            events = await rest.ok("GET", "/v1/events", params={"after": 0, "limit": 1000})
            assert {e["session"] for e in events["events"]} <= {"s1", "s3"}
            answer = await rest.call("GET", "/v1/sessions/{session}", session="s2")
            assert answer.status == 403 and answer.body["code"] == "forbidden"
            png = await rest.http.get("/v1/sessions/s2/qr.png", headers={"Authorization": f"Bearer {limited}"})
            assert png.status_code == 403
        finally:
            await rest.close()


# -- expiry, revocation, disabled tenants


async def test_an_expired_token_is_refused_and_its_connection_closed(gateway: RunningGateway) -> None:
    record, token = await gateway.gateway.tokens.create("acme", expires_at=time.time() + 1.0)
    client = await RawClient.open(gateway.url)
    await client.authenticate(token)
    await eventually(lambda: time.time() > record.expires_at + 0.05, "the token to expire")  # type: ignore[operator]
    assert await gateway.gateway.check_tokens() == 1
    code, frames = await closed_with(client)
    assert code == 4401 and frames[-1]["message"] == "the token of this connection expired"

    again = await RawClient.open(gateway.url)
    await again.send({"type": "auth", "token": token})
    refused = await again.recv()
    assert refused["code"] == "unauthorized" and "expired" in refused["message"]
    rest = RestClient(gateway.http, token)
    try:
        answer = await rest.call("GET", "/v1/sessions")
        assert answer.status == 401 and "expired" in answer.body["message"]
    finally:
        await rest.close()


async def admin(gateway: RunningGateway) -> RawClient:
    _, token = await gateway.gateway.tokens.create("ops", scopes=["admin"])
    client = await RawClient.open(gateway.url)
    await client.authenticate(token)
    return client


async def test_revoking_through_the_admin_api_closes_live_connections_at_once(gateway: RunningGateway) -> None:
    record, token = await gateway.gateway.tokens.create("acme")
    victim = await RawClient.open(gateway.url)
    await victim.authenticate(token)
    ops = await admin(gateway)
    try:
        revoked = await ops.call("token.revoke", token_id=record.id)
        assert revoked["state"] == "revoked" and revoked["token_id"] == record.id
        code, frames = await closed_with(victim)  # no periodic check needed
        assert code == 4401 and frames[-1]["message"] == "the token of this connection was revoked"
        again = await ops.request("token.revoke", token_id=record.id)
        assert again["error"]["code"] == "token_not_found"
    finally:
        await ops.close()


async def test_a_disabled_tenant_is_refused_its_connections_closed_and_sessions_stopped(
    gateway: RunningGateway,
) -> None:
    _, token = await gateway.gateway.tokens.create("acme")
    owner = await RawClient.open(gateway.url)
    await owner.authenticate(token)
    await owner.pair("main", ALICE)
    ops = await admin(gateway)
    try:
        info = await ops.call("tenant.disable", tenant="acme")
        assert info["disabled"] is True
        code, frames = await closed_with(owner)
        assert code == 4401 and frames[-1]["message"] == "tenant 'acme' was disabled"
        assert gateway.gateway.sessions.get("acme", "main").state.status.wire == "stopped"

        refused = await RawClient.open(gateway.url)
        await refused.send({"type": "auth", "token": token})
        assert (await refused.recv())["message"] == "tenant 'acme' is disabled"
        rest = RestClient(gateway.http, token)
        try:
            assert (await rest.call("GET", "/v1/sessions")).status == 401
        finally:
            await rest.close()

        assert (await ops.call("tenant.enable", tenant="acme"))["disabled"] is False
        back = await RawClient.open(gateway.url)
        await back.authenticate(token)
        session = await back.call("session.get", session="main")
        assert session["status"] == "stopped"  # stays stopped until started again
        await back.close()
    finally:
        await ops.close()


@pytest.mark.parametrize("name", ["tenant.create", "token.create", "token.list", "audit.list", "tenant.disable"])
async def test_tenant_tokens_never_run_admin_commands(gateway: RunningGateway, name: str) -> None:
    async with gateway.connect("acme") as client:
        fields = {k: v for k, v in sample_frame(COMMANDS[name]).items() if k not in ("type", "id")}
        fields["tenant"] = "acme"
        reply = await client.request(name, **fields)
        assert reply["error"]["code"] == "forbidden"
    assert gateway.gateway.storage is not None
    entries = await gateway.gateway.storage.tenants.list_audit(tenant="acme", after=None, limit=10)
    assert [(e.command, e.outcome) for e in entries] == [(name, "forbidden")]


async def test_revoking_a_token_ends_its_event_stream(gateway: RunningGateway) -> None:
    record, token = await gateway.gateway.tokens.create("acme", scopes=["read"])
    ops = await admin(gateway)
    rest = RestClient(gateway.http, token)
    try:
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
        async with rest.http.stream("GET", "/v1/events", params={"after": 0}, headers=headers) as response:
            stream = SSE(response)
            assert (await stream.take(1))[0]["event"] == "ready"
            await ops.call("token.revoke", token_id=record.id)
            ended = await stream.take(1)
            assert ended[0]["event"] == "error"
            assert ended[0]["data"] == {"code": "unauthorized", "message": "the token of this connection was revoked"}
            assert await asyncio.wait_for(stream.next(), TIMEOUT) is None
            assert stream.comments[-1] == "unauthorized"
    finally:
        await rest.close()
        await ops.close()
