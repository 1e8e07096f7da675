"""Authentication, tenant isolation, hostile frames and what never reaches the logs."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import sqlite3
from pathlib import Path

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import fast_settings
from .edge_support import served_gateway
from .support import TIMEOUT, RawClient, RunningGateway, serve_gateway

ALICE = "+55 11 99999-0001"


async def closed_with(client: RawClient) -> tuple[int | None, list[dict[str, object]]]:
    """Read until the server closes; return the close code and the frames received before it."""
    frames = []
    try:
        while True:
            frames.append(await client.recv())
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), frames


# -- authentication


async def test_wrong_token_is_refused_with_4401(gateway: RunningGateway) -> None:
    client = await RawClient.open(gateway.url)
    assert client.hello is not None
    assert client.hello["auth"] == "required" and client.hello["auth_timeout_s"] == 5.0
    assert client.hello["max_frame_bytes"] == 65536 and client.hello["protocol"] == 1
    await client.send({"type": "auth", "token": "zgt_000000000000_not-a-token"})
    code, frames = await closed_with(client)
    assert code == 4401
    assert frames == [{"type": "error", "code": "unauthorized", "message": "invalid or revoked token"}]


@pytest.mark.parametrize(
    "first", [{"type": "ping", "id": "1"}, {"type": "session.list", "id": "1"}, "not json", {"token": "x"}]
)
async def test_any_other_frame_before_auth_closes_4401(gateway: RunningGateway, first: object) -> None:
    client = await RawClient.open(gateway.url)
    await client.send(first if isinstance(first, str) else json.dumps(first), validate=False)
    code, frames = await closed_with(client)
    assert code == 4401 and frames[0]["code"] == "unauthorized"


async def test_no_auth_in_time_closes_4408(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path, auth_timeout_s=0.3)) as gateway:
        client = await RawClient.open(gateway.url)
        code, frames = await closed_with(client)
        assert code == 4408 and frames[0]["code"] == "auth_timeout"


async def test_revoked_token_is_refused(gateway: RunningGateway) -> None:
    record, token = await gateway.gateway.tokens.create("acme")
    async with gateway.connect():
        pass
    assert await gateway.gateway.tokens.revoke(record.id)
    client = await RawClient.open(gateway.url)
    await client.send({"type": "auth", "token": token})
    code, _ = await closed_with(client)
    assert code == 4401


async def test_revoking_a_token_closes_its_live_connections(gateway: RunningGateway) -> None:
    record, token = await gateway.gateway.tokens.create("acme")
    revoked = await RawClient.open(gateway.url)
    await revoked.authenticate(token)
    async with gateway.connect("acme") as other:
        await gateway.gateway.tokens.revoke(record.id)
        assert await gateway.gateway.check_tokens() == 1
        code, frames = await closed_with(revoked)
        assert code == 4401 and frames[-1]["message"] == "the token of this connection was revoked"
        assert (await other.call("ping"))["time"] > 0  # same tenant, another token: untouched


async def test_bearer_header_authenticates_the_upgrade(gateway: RunningGateway) -> None:
    token = await gateway.token("acme")
    headers = {"Authorization": f"Bearer {token}"}
    async with websockets.connect(gateway.url, additional_headers=headers) as ws:
        client = RawClient(ws)
        hello = await client.recv()
        assert hello["type"] == "hello" and hello["auth"] == "accepted"
        ready = await client.recv()
        assert ready["type"] == "ready" and ready["tenant"] == "acme" and ready["resume"] == "none"
        assert (await client.call("ping"))["time"] > 0
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(gateway.url, additional_headers={"Authorization": "Bearer zgt_nope"})
    assert refused.value.response.status_code == 401


async def test_tokens_are_stored_hashed(gateway: RunningGateway) -> None:
    token = await gateway.token("acme")
    secret = token.split("_", 2)[2]  # zgt_<id>_<secret>; the secret itself may contain '_'
    assert len(secret) >= 43
    database = gateway.settings.database_path  # the token's write is committed once token() returned
    raw = b"".join(p.read_bytes() for p in database.parent.glob("zapgate.db*"))
    assert secret.encode() not in raw and token.encode() not in raw
    with contextlib.closing(sqlite3.connect(database)) as db:
        stored = db.execute("SELECT hash FROM tokens").fetchall()
    assert stored == [(hashlib.sha256(token.encode()).digest(),)]  # its SHA-256 digest, and only that


# -- tenant isolation


async def test_every_command_on_another_tenants_session_looks_missing(gateway: RunningGateway) -> None:
    async with gateway.connect("acme") as acme, gateway.connect("globex") as globex:
        await acme.pair("main", ALICE)
        qr_session = await acme.call("session.start", session="pairing")
        assert qr_session["session"] == "pairing"
        acme_qr = await acme.event("session.qr", lambda e: e["session"] == "pairing")

        commands = [
            ("session.get", {}),
            ("session.stop", {}),
            ("session.logout", {}),
            ("session.delete", {}),
            ("message.send", {"to": "+1 555 000 0000", "text": "hi"}),
            ("message.send", {"to": "+1 555 000 0000", "text": "hi", "idempotency_key": "k"}),
            ("message.read", {"chat": "15550000000@s.whatsapp.net", "message_ids": ["3EB0AA"]}),
            ("sim.unlink", {}),
            ("sim.network", {"online": False}),
            ("sim.receive", {"from": "+1 555 000 0001", "text": "hi"}),
            ("sim.restrict", {"seconds": 5}),
        ]
        for command, fields in commands:
            theirs = await globex.request(command, session="main", **fields)
            missing = await globex.request(command, session="no-such-session", **fields)
            assert theirs["ok"] is False and theirs["error"]["code"] == "session_not_found", command
            assert theirs["error"] == {
                **missing["error"],
                "message": missing["error"]["message"].replace("no-such-session", "main"),
            }, command
        assert (await globex.call("session.list"))["sessions"] == []
        stolen = await globex.request("sim.scan", qr=acme_qr["data"]["qr"], phone="+55 11 90000-0000")
        assert stolen["error"]["code"] == "qr_unknown"
        # session.start with the same name makes globex its own, separate session.
        own = await globex.call("session.start", session="main")
        assert own["status"] in {"starting", "qr"} and not own["paired"]

        # acme's session was not disturbed, and no acme event reached globex.
        info = await acme.call("session.get", session="main")
        assert info["status"] == "connected" and info["paired"]
        sent = await acme.call("message.send", session="main", to="+1 555 000 0000", text="still mine")
        assert sent["status"] == "sent"
        await globex.call("ping")
        assert all(e["session"] == "main" and e["event"] in {"session.status", "session.qr"} for e in globex.events)
        assert not [e for e in globex.events if e["event"].startswith("message.")]
        fetched = await globex.call("events.fetch", after=0, limit=1000)
        assert {e["event"] for e in fetched["events"]} <= {"session.status", "session.qr"}


# -- hostile frames


async def test_hostile_frames_get_errors_and_the_connection_stays_usable(gateway: RunningGateway) -> None:
    async with gateway.connect("other") as bystander, gateway.connect() as client:
        await bystander.pair("s", ALICE)
        cases: list[tuple[object, str, bool]] = [
            ("{", "invalid_json", False),
            ("[]", "invalid_frame", False),
            (json.dumps({"id": "a"}), "invalid_frame", True),
            (json.dumps({"type": "drop.tables", "id": "b"}), "unknown_type", True),
            (json.dumps({"type": "session.get", "id": "c"}), "invalid_request", True),
            (
                json.dumps({"type": "message.send", "id": "d", "session": "s", "to": 5, "text": "x"}),
                "invalid_request",
                True,
            ),
            (json.dumps({"type": "auth", "token": "again"}), "invalid_frame", False),
            (b"\x00\x01binary", "invalid_frame", False),
        ]
        for frame, code, has_id in cases:
            await client.ws.send(frame)  # type: ignore[arg-type]
            answer = await client.recv()
            if has_id:
                assert answer["type"] == "reply" and answer["ok"] is False, frame
            else:
                assert answer["type"] == "error", frame
            assert (answer["error"]["code"] if has_id else answer["code"]) == code, frame
        assert (await client.call("ping"))["time"] > 0
        # The other client noticed nothing and still works.
        sent = await bystander.call("message.send", session="s", to="+1 555 000 0000", text="hello")
        assert sent["status"] == "sent"


async def test_frame_over_the_limit_closes_1009(gateway: RunningGateway) -> None:
    async with gateway.connect() as bystander:
        client = await gateway.client(max_size=None)
        await client.send(json.dumps({"type": "ping", "id": "x" * 70000}), validate=False)
        code, _ = await closed_with(client)
        assert code == 1009
        assert (await bystander.call("ping"))["time"] > 0


async def test_frame_just_under_the_limit_is_accepted(gateway: RunningGateway) -> None:
    async with gateway.connect() as client:
        await client.pair("s", ALICE)
        text = "a" * 60000
        sent = await client.call("message.send", session="s", to="+1 555 000 0000", text=text)
        assert sent["status"] == "sent"


# -- logging contract


async def test_tokens_and_texts_never_logged_at_info(gateway: RunningGateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret_text = "top-secret-message-body"
    token = await gateway.token("acme")
    client = await RawClient.open(gateway.url)
    await client.authenticate(token)
    await client.pair("s", ALICE)
    await client.call("message.send", session="s", to="+1 555 000 0000", text=secret_text)
    await client.event("message.received", lambda e: e["data"]["text"] == secret_text)
    bad = await RawClient.open(gateway.url)
    await bad.send({"type": "auth", "token": token + "x"})
    await closed_with(bad)
    await client.close()
    loud = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert loud, "expected lifecycle logs at INFO"
    for record in loud:
        message = record.getMessage()
        assert token not in message and token.split("_", 2)[2] not in message
        assert secret_text not in message


async def test_tokens_and_texts_never_logged_even_at_debug(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # websockets logs at DEBUG the upgrade's headers and the start and end of each frame: a Bearer token whole, most
    # of an auth frame's token, message texts. The gateway switches that off; its own DEBUG lines stay.
    caplog.set_level(logging.DEBUG)
    secret_text = "top-secret-message-body"
    async with serve_gateway(fast_settings(tmp_path / "data")) as gateway:
        token = await gateway.token("acme")
        by_header = await RawClient.open(gateway.url, additional_headers={"Authorization": f"Bearer {token}"})
        await by_header.close()
        client = await RawClient.open(gateway.url)
        await client.authenticate(token)
        await client.pair("s", ALICE)
        await client.call("message.send", session="s", to="+1 555 000 0000", text=secret_text)
        await client.event("message.received", lambda e: e["data"]["text"] == secret_text)
        await client.close()
        async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as http:
            listed = await http.get(f"{gateway.http}/v1/sessions/s/history", params={"chat": "+1 555 000 0000"})
            assert secret_text in listed.text
    secret = token.split("_", 2)[2]
    assert [r for r in caplog.records if r.levelno == logging.DEBUG and r.name.startswith("zapgate")]
    # The test's own clients log their side (websockets.client, httpx, httpcore): not the gateway's log.
    for record in [r for r in caplog.records if not r.name.startswith(("websockets.", "httpx", "httpcore"))]:
        message = record.getMessage()
        assert secret[:12] not in message and secret[-12:] not in message, (record.name, message)
        assert secret_text not in message, (record.name, message)


# -- every input answered (review §5.4, §5.10, §5.13)


async def test_undecodable_frames_are_answered_and_the_connection_stays_usable(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway.connect() as client:
        cases = [
            ('{"type":"nope",}', "invalid_json"),  # a ValidationError, then a DecodeError on the rest
            ('{"type":' + "[" * 20000 + "]" * 20000 + "}", "invalid_json"),  # deeper than the decoder recurses
            ("[" * 60000, "invalid_frame"),
        ]
        for frame, code in cases:
            await client.send(frame, validate=False)
            answer = await client.recv()
            assert answer["type"] == "error" and answer["code"] == code, (frame[:30], answer)
        reply = await client.request("session.get", session="main\n")  # a trailing newline is not a name
        assert reply["error"]["code"] == "invalid_request"
        assert (await client.call("ping"))["time"] > 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_text_frame_that_is_not_utf8_closes_1007_without_a_traceback(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    for authenticated in (False, True):
        client = await (gateway.client() if authenticated else RawClient.open(gateway.url))
        await client.ws.send(b'{"type":"ping","id":"\xff\xfe"}', text=True)
        code, _ = await closed_with(client)
        assert code == 1007
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize("value", ["\u00b2", "9" * 5000, "-1", "1e3", "0x10", "", str(2**63)])
async def test_a_bad_resume_header_is_refused_400(gateway: RunningGateway, value: str) -> None:
    token = await gateway.token()
    headers = {"Authorization": f"Bearer {token}", "Zapgate-Resume-From": value}
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(gateway.url, additional_headers=headers)
    assert refused.value.response.status_code == 400
    assert json.loads(refused.value.response.body or b"")["code"] == "invalid_request"


async def test_the_resume_header_also_works_with_the_auth_frame(gateway: RunningGateway) -> None:
    async with gateway.connect() as producer:
        await producer.pair("s", ALICE)
        newest = (await producer.call("events.fetch", after=0, limit=1))["last_seq"]
    client = await RawClient.open(gateway.url, additional_headers={"Zapgate-Resume-From": str(newest - 1)})
    ready = await client.authenticate(await gateway.token())
    assert ready["resume"] == "ok" and ready["replayed"] == 1
    assert (await client.recv())["seq"] == newest
    await client.close()


async def test_a_basic_authorization_header_is_ignored_not_refused(gateway: RunningGateway) -> None:
    # Some proxies add their own Basic credentials; they are not zapgate's: the client uses the auth frame.
    token = await gateway.token()
    client = await RawClient.open(gateway.url, additional_headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert client.hello is not None and client.hello["auth"] == "required"
    await client.authenticate(token)
    assert (await client.call("ping"))["time"] > 0
    await client.close()


async def test_a_token_in_the_url_never_reaches_any_log(tmp_path: Path) -> None:
    async with served_gateway(tmp_path, log_level="debug") as gateway:
        token = gateway.token()
        secret = token.split("_", 2)[2]
        client = await RawClient.open(f"{gateway.url}?token={token}&x=1")
        await client.authenticate(token)
        await client.close()
        with pytest.raises(InvalidStatus):  # refused before the upgrade, which uvicorn logs too
            await websockets.connect(f"{gateway.url}?token={token}", additional_headers={"Authorization": "Bearer x"})
        async with asyncio.timeout(TIMEOUT):  # the refusal is logged a moment after it is sent
            while '"WebSocket /v1/ws?…" 401' not in gateway.log_text():
                await asyncio.sleep(0.05)
        log = gateway.log_text()
    assert '"WebSocket /v1/ws?…" [accepted]' in log  # uvicorn's line is there, without the query string
    assert token not in log and secret not in log
