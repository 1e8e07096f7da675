"""The admin token given at start-up (the real ``zapgate serve``), the audit log, per-tenant quotas and the
``zapgate tenant|token|audit`` commands, over a real socket, REST, the SDK and the CLI."""

from __future__ import annotations

import gc
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from zapgate.auth import estimate_entropy_bits
from zapgate.client import connect
from zapgate.errors import Forbidden, QuotaExceeded, TenantNotFound, TokenNotFound
from zapgate.protocol import Scope

from .conftest import fast_settings
from .support import RawClient, RestClient, eventually, serve_gateway
from .test_serve import clean_env, run, serving, simulator

ALICE = "+55 11 99999-0201"
BOB = "+55 21 98888-0202"
STRONG = "4f9c2b7e0d1a58c3b6e9f20a7d4c1e8b5a3f6d0c9e2b7a41f8d3c6b0e5a9d2c7"  # 64 hex digits: 256 bits


# -- the admin token


@pytest.mark.parametrize(
    ("secret", "why"),
    [
        ("short-secret", "too short (12 characters"),
        ("a" * 40, "too weak (about 0 bits"),
        ("password" * 5, "too weak"),
        ("0123456789abcdef" * 3, "too weak"),  # a repeated pattern counts once
        ("zgt_0123456789ab_" + "x" * 40, "looks like a tenant token"),
    ],
)
async def test_serve_refuses_a_weak_admin_token_and_exits_2(tmp_path: Path, secret: str, why: str) -> None:
    ran = await run(*simulator(tmp_path / "data")[1:], env=clean_env(ZAPGATE_ADMIN_TOKEN=secret))
    assert ran.code == 2
    assert ran.err.startswith("zapgate: configuration error: ZAPGATE_ADMIN_TOKEN "), ran.err
    assert len(ran.err.splitlines()) == 1 and why in ran.err and "openssl rand -hex 32" in ran.err
    assert secret not in ran.err  # the secret itself is never printed


async def test_serve_refuses_an_admin_token_file_others_can_read(tmp_path: Path) -> None:
    secret_file = tmp_path / "admin-token"
    secret_file.write_text(STRONG + "\n")
    secret_file.chmod(0o644)
    ran = await run(*simulator(tmp_path / "data")[1:], env=clean_env(ZAPGATE_ADMIN_TOKEN_FILE=str(secret_file)))
    assert ran.code == 2 and "can be read by other users (mode 644)" in ran.err and "chmod 600" in ran.err
    both = await run(
        *simulator(tmp_path / "data")[1:],
        env=clean_env(ZAPGATE_ADMIN_TOKEN_FILE=str(secret_file), ZAPGATE_ADMIN_TOKEN=STRONG),
    )
    assert both.code == 2 and "not both" in both.err


async def test_serve_accepts_a_strong_admin_token_from_a_private_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "admin-token"
    secret_file.write_text(STRONG + "\n")
    secret_file.chmod(0o600)
    env = clean_env(ZAPGATE_ADMIN_TOKEN_FILE=str(secret_file))
    async with serving(*simulator(tmp_path / "data"), env=env) as served:
        await served.ready()
        admin = RestClient(f"http://127.0.0.1:{served.port}", STRONG)
        try:
            created = await admin.ok("POST", "/v1/tenants", json_body={"tenant": "acme", "max_sessions": 2})
            assert created["quotas"]["max_sessions"] == 2
            token = await admin.ok("POST", "/v1/tokens", json_body={"tenant": "acme", "scopes": ["send"]})
            assert token["token"].startswith("zgt_") and token["info"]["scopes"] == ["send"]
            listed = await admin.ok("GET", "/v1/tokens", params={"tenant": "acme"})
            assert [t["token_id"] for t in listed["tokens"]] == [token["info"]["token_id"]]
            assert "token" not in json.dumps(listed["tokens"][0]).replace("token_id", "")
            # The admin token acts on no tenant's sessions.
            assert (await admin.call("GET", "/v1/sessions")).body["code"] == "forbidden"
            entries = (await admin.ok("GET", "/v1/audit"))["entries"]
            assert [(e["command"], e["token_id"], e["outcome"]) for e in entries] == [
                ("tenant.create", "admin", "ok"),
                ("token.create", "admin", "ok"),
                ("session.list", "admin", "forbidden"),
            ]
        finally:
            await admin.close()
        assert await served.stop() == 0
    assert STRONG not in served.text


def test_entropy_estimate() -> None:
    assert estimate_entropy_bits(STRONG) == 256
    assert estimate_entropy_bits("0123456789abcdef" * 2) == 64  # one pattern, twice
    assert estimate_entropy_bits("a" * 64) == 0
    assert estimate_entropy_bits("Tr0ub4dor&3-Tr0ub4dor&3-Tr0ub4dor&3") < 128
    assert estimate_entropy_bits(os.urandom(32).hex()) >= 128


# -- quotas


async def test_session_quota_refuses_the_next_session_with_its_limit(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data", tenant_max_sessions=2)) as gateway:
        async with gateway.connect("acme") as client:
            await client.call("session.start", session="one")
            await client.call("session.start", session="two")
            refused = await client.request("session.start", session="three")
            assert refused["error"]["code"] == "quota_exceeded"
            assert (refused["error"]["quota"], refused["error"]["limit"]) == ("max_sessions", 2)
            assert (await client.call("session.start", session="one"))["session"] == "one"  # existing: still fine
            listed = await client.call("session.list")
            assert [s["session"] for s in listed["sessions"]] == ["one", "two"]
        rest = await gateway.rest("acme")
        try:
            answer = await rest.call("POST", "/v1/sessions/{session}/start", json_body={}, session="four")
            assert answer.status == 429
            assert answer.body["code"] == "quota_exceeded" and answer.body["quota"] == "max_sessions"
            assert answer.body["limit"] == 2
        finally:
            await rest.close()
        # A tenant's own quota replaces the default.
        _, ops = await gateway.gateway.tokens.create("ops", scopes=["admin"])
        async with connect(gateway.url, ops) as admin:
            raised = await admin.update_tenant("acme", max_sessions=3)
            assert raised.quotas.max_sessions == 3 and raised.usage.sessions == 2
        async with gateway.connect("acme") as client:
            await client.call("session.start", session="three")
        async with gateway.connect("globex") as other:  # other tenants keep the default
            await other.call("session.start", session="one")


async def test_queue_quota_refuses_sends_and_loses_nothing(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data", sim_contacts=(BOB,))) as gateway:
        _, ops = await gateway.gateway.tokens.create("ops", scopes=["admin"])
        async with connect(gateway.url, ops) as admin:
            await admin.create_tenant("acme", max_queued_messages=3)
        _, token = await gateway.gateway.tokens.create("acme")
        client = await RawClient.open(gateway.url)
        await client.authenticate(token)
        try:
            await client.pair("main", ALICE)
            await client.call("sim.network", session="main", online=False)  # messages stay queued
            await client.status("main", "disconnected")
            queued = [await client.call("message.send", session="main", to=BOB, text=f"m{n}") for n in range(3)]
            assert {q["status"] for q in queued} == {"queued"}
            refused = await client.request("message.send", session="main", to=BOB, text="m3")
            assert refused["error"]["code"] == "quota_exceeded"
            assert (refused["error"]["quota"], refused["error"]["limit"]) == ("max_queued_messages", 3)
            # The SDK raises the same error with the quota and limit.
            async with connect(gateway.url, token) as sdk:
                with pytest.raises(QuotaExceeded) as exc:
                    await sdk.send_text("main", BOB, "m4")
                assert (exc.value.quota, exc.value.limit) == ("max_queued_messages", 3)
            # Nothing lost: the three queued messages are sent once the session is back.
            await client.call("sim.network", session="main", online=True)
            for q in queued:
                await client.event(
                    "message.status",
                    lambda e, mid=q["message_id"]: e["data"]["message_id"] == mid and e["data"]["status"] == "sent",
                )
            sent = await client.call("message.send", session="main", to=BOB, text="after")
            assert sent["status"] in {"queued", "sent"}
        finally:
            await client.close()


async def test_queued_bytes_quota(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", tenant_max_queued_bytes=200)
    async with serve_gateway(settings) as gateway, gateway.connect("acme") as client:
        await client.pair("main", ALICE)
        await client.call("sim.network", session="main", online=False)
        await client.status("main", "disconnected")
        await client.call("message.send", session="main", to=BOB, text="x" * 100)
        refused = await client.request("message.send", session="main", to=BOB, text="y" * 100)
        assert refused["error"]["code"] == "quota_exceeded" and refused["error"]["quota"] == "max_queued_bytes"
        assert refused["error"]["limit"] == 200


# -- the audit log


async def test_audit_log_records_who_did_what_and_admins_read_it(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway:
        record, token = await gateway.gateway.tokens.create("acme")
        _, reader = await gateway.gateway.tokens.create("acme", scopes=["read"])
        client = await RawClient.open(gateway.url)
        await client.authenticate(token)
        await client.call("session.start", session="main")
        await client.call("session.stop", session="main")
        await client.request("session.stop", session="nope")
        await client.call("ping")  # read scope: not audited
        await client.close()
        limited = await RawClient.open(gateway.url)
        await limited.authenticate(reader)
        assert (await limited.request("session.delete", session="main"))["error"]["code"] == "forbidden"
        await limited.close()

        _, ops = await gateway.gateway.tokens.create("ops", scopes=["admin"])
        async with connect(gateway.url, ops) as admin:
            entries = await admin.audit(tenant="acme")
            # The page before an entry (the dashboard's "Older"), through the SDK.
            before = await admin.audit(tenant="acme", before=entries[2].id, limit=1)
            assert [e.id for e in before] == [entries[1].id]
        rows = [(e.token_id, e.command, e.session, e.outcome) for e in entries]
        assert rows[:3] == [
            (record.id, "session.start", "main", "ok"),
            (record.id, "session.stop", "main", "ok"),
            (record.id, "session.stop", "nope", "session_not_found"),
        ]
        assert rows[3][1:] == ("session.delete", "main", "forbidden") and rows[3][0] != record.id
        assert all(e.tenant == "acme" and e.ts > 0 for e in entries)
        rest = RestClient(gateway.http, ops)
        try:
            page = await rest.ok("GET", "/v1/audit", params={"after": entries[1].id})
            older = await rest.ok("GET", "/v1/audit", params={"tenant": "acme", "before": entries[3].id, "limit": 2})
        finally:
            await rest.close()
        assert [e["id"] for e in page["entries"]][:2] == [entries[2].id, entries[3].id]
        assert [e["id"] for e in older["entries"]] == [entries[1].id, entries[2].id]

    # The CLI reads the same log from the data directory.
    env = clean_env()
    shown = await run("audit", "--tenant", "acme", "--json", "--data-dir", str(tmp_path / "data"), env=env)
    assert shown.code == 0
    lines = [json.loads(line) for line in shown.out.splitlines()]
    assert [(e["command"], e["outcome"]) for e in lines][:3] == [
        ("session.start", "ok"),
        ("session.stop", "ok"),
        ("session.stop", "session_not_found"),
    ]


# -- the CLI on the gateway's machine


async def test_cli_tenants_tokens_and_audit(tmp_path: Path) -> None:
    data = str(tmp_path / "data")
    env = clean_env()
    created = await run("tenant", "create", "acme", "--max-sessions", "1", "--data-dir", data, env=env)
    assert (
        created.code == 0 and "max_sessions=1," in created.err and "max_queued_messages=10000 (default)" in created.err
    )
    again = await run("tenant", "create", "acme", "--data-dir", data, env=env)
    assert again.code == 2 and "exists already" in again.err
    bad = await run("tenant", "create", "Not Valid", "--data-dir", data, env=env)
    assert bad.code == 2

    token = await run(
        "token", "create", "--tenant", "acme", "--scope", "send,read", "--session", "main", "--expires-in", "12h",
        "--label", "bot", "--data-dir", data, env=env,
    )  # fmt: skip
    assert token.code == 0 and token.out.strip().startswith("zgt_")
    assert "scopes read, send, sessions main, expires" in token.err
    wrong = await run("token", "create", "--tenant", "acme", "--scope", "root", "--data-dir", data, env=env)
    assert wrong.code == 2 and "unknown scope 'root'" in wrong.err
    late = await run("token", "create", "--tenant", "acme", "--expires-in", "soon", "--data-dir", data, env=env)
    assert late.code == 2 and "--expires-in" in late.err

    listed = await run("token", "list", "--data-dir", data, env=env)
    assert listed.code == 0
    row = next(line for line in listed.out.splitlines() if "bot" in line)
    assert "read,send" in row and "main" in row and "active" in row

    tenants = await run("tenant", "list", "--data-dir", data, env=env)
    assert tenants.code == 0 and "acme" in tenants.out and "0/1" in tenants.out
    off = await run("tenant", "disable", "acme", "--data-dir", data, env=env)
    assert off.code == 0
    assert "disabled" in (await run("tenant", "list", "--data-dir", data, env=env)).out
    missing = await run("tenant", "disable", "nope", "--data-dir", data, env=env)
    assert missing.code == 1 and "no tenant 'nope'" in missing.err
    updated = await run("tenant", "update", "acme", "--max-sessions", "default", "--data-dir", data, env=env)
    assert updated.code == 0 and "max_sessions=100 (default)" in updated.err

    # A gateway on that data directory refuses the disabled tenant's token, then accepts it once enabled.
    secret = token.out.strip()
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway:
        client = await RawClient.open(gateway.url)
        await client.send({"type": "auth", "token": secret})
        assert (await client.recv())["message"] == "tenant 'acme' is disabled"
        assert (await run("tenant", "enable", "acme", "--data-dir", data, env=env)).code == 0
        ok = await RawClient.open(gateway.url)
        await ok.authenticate(secret)
        await ok.close()

    audit = await run("audit", "--data-dir", data, env=env)
    assert audit.code == 0
    commands = [line.split()[-2] for line in audit.out.splitlines()[1:]]
    assert commands == ["tenant.create", "token.create", "tenant.disable", "tenant.update", "tenant.enable"]
    assert all(" cli " in line for line in audit.out.splitlines()[1:])


async def test_sessions_of_a_tenant_disabled_from_the_cli_stop_at_the_next_check(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway, gateway.connect("acme") as client:
        await client.pair("main", ALICE)
        ran = await run("tenant", "disable", "acme", "--data-dir", str(tmp_path / "data"), env=clean_env())
        assert ran.code == 0
        assert await gateway.gateway.check_tokens() == 2  # this connection, and the running session
        await eventually(
            lambda: gateway.gateway.sessions.get("acme", "main").state.status.wire == "stopped", "the stop"
        )


async def test_queued_message_contents_stay_in_the_database_not_in_memory(tmp_path: Path) -> None:
    """300 queued messages of 50,000 characters (15 MB of text) to a session that is offline: what the gateway
    process holds in Python objects afterwards grows by far less than the texts (they are read back when sent)."""
    settings = fast_settings(tmp_path / "data", sim_contacts=(BOB,), tenant_max_queued_bytes=0)
    async with serve_gateway(settings) as gateway, gateway.connect("acme") as client:
        await client.pair("main", ALICE)
        await client.call("sim.network", session="main", online=False)
        await client.status("main", "disconnected")
        gc.collect()
        tracemalloc.start()
        try:
            before, _ = tracemalloc.get_traced_memory()
            for n in range(300):
                queued = await client.call("message.send", session="main", to=BOB, text=f"{n:05d}" + "x" * 49_995)
                assert queued["status"] == "queued"
            client.events.clear()
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (await client.call("session.get", session="main"))["outbox"]["queued"] == 300
        grown = after - before
        assert grown < 3_000_000, f"{grown} bytes held for 15,000,000 bytes of queued text"


async def test_sdk_admin_methods(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway:
        _, ops = await gateway.gateway.tokens.create("ops", scopes=["admin"])
        async with connect(gateway.url, ops) as admin:
            created = await admin.create_tenant("acme", max_sessions=4)
            assert created.tenant == "acme" and created.own_quotas.max_sessions == 4 and not created.disabled
            assert "acme" in [t.tenant for t in await admin.tenants()]
            updated = await admin.update_tenant("acme", max_queued_bytes=1000)
            assert updated.own_quotas.max_sessions == 4 and updated.quotas.max_queued_bytes == 1000
            reset = await admin.update_tenant("acme", max_sessions=None)
            assert reset.own_quotas.max_sessions is None and reset.quotas.max_sessions == 100
            token = await admin.create_token("acme", scopes=["read"], sessions=["main"], expires_in=60, label="r")
            assert token.token.startswith("zgt_") and token.info.scopes == [Scope.READ]
            assert token.info.expires_at is not None and token.info.state == "active"
            assert [t.token_id for t in await admin.tokens("acme")] == [token.info.token_id]
            assert (await admin.disable_tenant("acme")).disabled
            assert not (await admin.enable_tenant("acme")).disabled
            revoked = await admin.revoke_token(token.info.token_id)
            assert revoked.state == "revoked"
            with pytest.raises(TokenNotFound):
                await admin.revoke_token(token.info.token_id)
            with pytest.raises(TenantNotFound):
                await admin.create_token("nobody")
            commands = [e.command for e in await admin.audit(tenant="acme")]
            assert commands == [
                "tenant.create",
                "tenant.update",
                "tenant.update",
                "token.create",
                "tenant.disable",
                "tenant.enable",
                "token.revoke",
            ]
        async with connect(gateway.url, await gateway.token("acme")) as tenant:
            with pytest.raises(Forbidden):
                await tenant.tenants()
