"""The REST API over a real socket: routes derived from the registry, auth, parsing, limits, error statuses, CORS.

Every JSON answer here is also checked against ``/v1/openapi.json`` (``RestClient``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from websockets.exceptions import ConnectionClosed

from zapgate.config import ConfigError, Settings
from zapgate.errors import ERRORS_BY_CODE, HTTP_STATUS
from zapgate.protocol import COMMANDS, Command, CommandSpec, Scope
from zapgate.server.rest import operations, parse_command

from .conftest import fast_settings
from .support import TIMEOUT, RawClient, RestClient, RunningGateway, serve_gateway

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
ECHO = "+15550000000"


@pytest.fixture
async def rest(gateway: RunningGateway) -> AsyncIterator[RestClient]:
    client = await gateway.rest()
    yield client
    await client.close()


def test_cors_origins_must_be_exact_origins() -> None:
    assert Settings.load({"ZAPGATE_CORS_ORIGINS": "https://a.example, http://localhost:3000"}).cors_origins == (
        "https://a.example",
        "http://localhost:3000",
    )
    for bad in ("*", "https://a.example/path", "a.example", "https://*.example"):
        with pytest.raises(ConfigError, match="cors_origins"):
            Settings.load({"ZAPGATE_CORS_ORIGINS": bad})


def test_every_error_code_has_an_http_status() -> None:
    assert set(ERRORS_BY_CODE) <= set(HTTP_STATUS), set(ERRORS_BY_CODE) - set(HTTP_STATUS)
    assert all(400 <= status <= 599 for status in HTTP_STATUS.values())


async def test_every_registered_command_has_its_route(gateway: RunningGateway, rest: RestClient) -> None:
    routed = {op.spec.name for op in operations()}
    assert routed == {name for name, spec in COMMANDS.items() if spec.http}
    document = (await rest.http.get("/v1/openapi.json")).json()
    operation_ids = {op["operationId"] for path in document["paths"].values() for op in path.values()}
    assert routed <= operation_ids
    # Each route answers as itself: a request without a token gets a JSON 401, never a 404 or 405.
    anonymous = RestClient(gateway.http, None)
    try:
        for op in operations():
            answer = await anonymous.call(op.method, op.path, **dict.fromkeys(op.path_fields, "s1"))
            assert answer.status == 401, (op.spec.name, answer.status, answer.body)
    finally:
        await anonymous.close()


async def test_a_missing_or_bad_token_is_401_with_a_bearer_challenge(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        missing = await http.get("/v1/sessions")
        assert missing.status_code == 401 and missing.json()["code"] == "unauthorized"
        assert missing.headers["www-authenticate"] == 'Bearer realm="zapgate"'
        bad = await http.get("/v1/sessions", headers={"Authorization": "Bearer zgt_000000000000_nope"})
        assert bad.status_code == 401 and 'error="invalid_token"' in bad.headers["www-authenticate"]
        basic = await http.get("/v1/sessions", headers={"Authorization": "Basic dXNlcjpwYXNz"})
        assert basic.status_code == 401


async def test_the_session_flow_over_rest(rest: RestClient) -> None:
    info = await rest.ok("POST", "/v1/sessions/{session}/start", session="alice")
    assert info["session"] == "alice" and info["status"] in ("starting", "qr")
    seen: list[dict[str, Any]] = []
    while not any(e["event"] == "session.qr" for e in seen):  # long-polls until the QR event is there
        after = seen[-1]["seq"] if seen else 0
        seen += (await rest.ok("GET", "/v1/events", params={"after": after, "wait": min(TIMEOUT, 30.0)}))["events"]
    qr = next(e for e in seen if e["event"] == "session.qr")
    me = await rest.ok("POST", "/v1/sim/scan", json_body={"qr": qr["data"]["qr"], "phone": ALICE})
    assert me["me"]["phone"] == "5511999990001"
    listed = await rest.ok("GET", "/v1/sessions")
    assert [s["session"] for s in listed["sessions"]] == ["alice"]
    deleted = await rest.ok("DELETE", "/v1/sessions/{session}", session="alice")
    assert deleted == {"session": "alice", "deleted": True}
    missing = await rest.call("GET", "/v1/sessions/{session}", session="alice")
    assert missing.status == 404 and missing.body["code"] == "session_not_found"


async def test_error_codes_keep_their_http_status(rest: RestClient) -> None:
    await rest.ok("POST", "/v1/sessions/{session}/start", session="s")
    unpaired = await rest.call(
        "POST", "/v1/sessions/{session}/messages", session="s", json_body={"to": BOB, "text": "x"}
    )
    assert (unpaired.status, unpaired.body["code"]) == (409, "session_not_paired")
    bad_qr = await rest.call("POST", "/v1/sim/scan", json_body={"qr": "2@nope", "phone": ALICE})
    assert (bad_qr.status, bad_qr.body["code"]) == (404, "qr_unknown")
    bad_phone = await rest.call(
        "POST", "/v1/sessions/{session}/start", session="t", json_body={"pair_phone": "0800 123"}
    )
    assert (bad_phone.status, bad_phone.body["code"]) == (422, "invalid_recipient")
    bad_name = await rest.call("GET", "/v1/sessions/{session}", session="no spaces")
    assert (bad_name.status, bad_name.body["code"]) == (400, "invalid_request")
    assert "session" in bad_name.body["message"]


async def test_bodies_are_checked_like_frames(rest: RestClient) -> None:
    path = "/v1/sessions/{session}/start"
    cases = {
        "unknown field": ({"pair_phone": None, "colour": "red"}, "invalid_request", "colour"),
        "path field in the body": ({"session": "other"}, "invalid_request", "given by the path"),
        "the WebSocket id": ({"id": "7"}, "invalid_request", "`id`"),
        "wrong type": ({"pair_phone": 5511}, "invalid_request", "pair_phone"),
        "not an object": ([1, 2], "invalid_request", "JSON object"),
    }
    for name, (body, code, words) in cases.items():
        answer = await rest.call("POST", path, session="s", json_body=body)
        assert (answer.status, answer.body["code"]) == (400, code), name
        assert words in answer.body["message"], (name, answer.body)
    broken = await rest.call(
        "POST", path, session="s", content=b'{"pair_phone":', headers={"Content-Type": "application/json"}
    )
    assert (broken.status, broken.body["code"]) == (400, "invalid_json")
    deep = await rest.call(
        "POST", path, session="s", content=b"[" * 100000, headers={"Content-Type": "application/json"}
    )
    assert (deep.status, deep.body["code"]) == (400, "invalid_json")
    text = await rest.call("POST", path, session="s", content=b"{}", headers={"Content-Type": "text/plain"})
    assert (text.status, text.body["code"]) == (415, "unsupported_media_type")
    assert (await rest.call("POST", path, session="s")).status == 200  # no body at all is {}
    query = await rest.call("POST", path, session="s", params={"pair_phone": "x"})
    assert (query.status, query.body["code"]) == (400, "invalid_request")


async def test_query_parameters_are_converted_and_checked(rest: RestClient) -> None:
    assert (await rest.ok("GET", "/v1/events", params={"after": "0", "limit": "1"}))["gap"] is False
    for params, words in [
        ({"after": "0", "limit": "many"}, "'limit'"),
        ({"after": "-1"}, "after"),
        ({}, "after"),
        ({"after": "0", "colour": "red"}, "colour"),
        ([("after", "0"), ("after", "1")], "2 times"),
        ({"after": "0", "wait": "1000"}, "wait"),
    ]:
        answer = await rest.call("GET", "/v1/events", params=params)
        assert (answer.status, answer.body["code"]) == (400, "invalid_request"), params
        assert words in answer.body["message"], (params, answer.body)


class _Probe(Command, tag="probe.query"):
    """Not registered: shows how a list and a bool are read from a query string."""

    ids: list[int]
    flag: bool = False
    session: str = ""


def test_list_and_bool_query_parameters_are_converted() -> None:
    spec = CommandSpec("probe.query", _Probe, None, Scope.READ, ("GET", "/v1/probe/{session}"), "probe")
    (op,) = operations([spec])
    assert op.path_fields == ("session",) and set(op.fields) == {"ids", "flag"}
    command = parse_command(op, {"session": "s"}, [("ids", "1"), ("ids", "2"), ("flag", "true")], b"", {})
    assert msgspec.structs.asdict(command) | {"id": ""} == {"id": "", "ids": [1, 2], "flag": True, "session": "s"}


async def test_the_idempotency_key_header(rest: RestClient, gateway: RunningGateway) -> None:
    async with gateway.connect() as ws:
        await ws.pair("alice", ALICE)
    path = "/v1/sessions/{session}/messages"
    body = {"to": ECHO, "text": "once"}
    first = await rest.ok("POST", path, session="alice", json_body=body, headers={"Idempotency-Key": "k1"})
    again = await rest.ok("POST", path, session="alice", json_body=body, headers={"Idempotency-Key": "k1"})
    assert again["message_id"] == first["message_id"]
    in_body = await rest.ok("POST", path, session="alice", json_body=body | {"idempotency_key": "k1"})
    assert in_body["message_id"] == first["message_id"]
    conflict = await rest.call(
        "POST", path, session="alice", json_body={"to": ECHO, "text": "other"}, headers={"Idempotency-Key": "k1"}
    )
    assert (conflict.status, conflict.body["code"]) == (409, "idempotency_conflict")
    disagree = await rest.call(
        "POST", path, session="alice", json_body=body | {"idempotency_key": "k2"}, headers={"Idempotency-Key": "k3"}
    )
    assert (disagree.status, disagree.body["code"]) == (409, "idempotency_conflict")
    not_taken = await rest.call(
        "POST", "/v1/sessions/{session}/stop", session="alice", headers={"Idempotency-Key": "k"}
    )
    assert (not_taken.status, not_taken.body["code"]) == (400, "invalid_request")


async def test_a_body_over_the_limit_is_413_even_without_content_length(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path, rest_max_body_bytes=2048)) as gateway:
        rest = await gateway.rest()
        try:
            path = "/v1/sessions/{session}/start"
            declared = await rest.call("POST", path, session="s", json_body={"pair_phone": "1" * 3000})
            assert (declared.status, declared.body["code"]) == (413, "payload_too_large")

            async def chunks() -> AsyncIterator[bytes]:
                yield b'{"pair_phone":"'
                for _ in range(100):
                    yield b"1" * 100
                yield b'"}'

            streamed = await rest.http.post(
                "/v1/sessions/s/start",
                content=chunks(),
                headers={"Authorization": f"Bearer {rest.token}", "Content-Type": "application/json"},
            )
            assert "content-length" not in streamed.request.headers
            assert streamed.status_code == 413 and streamed.json()["code"] == "payload_too_large"
            assert (await rest.call("POST", path, session="s", json_body={})).status == 200
        finally:
            await rest.close()


async def test_unknown_routes_and_methods_answer_json(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        missing = await http.get("/v1/nothing")
        assert missing.status_code == 404 and missing.json()["code"] == "not_found"
        wrong = await http.put("/v1/sessions")
        assert wrong.status_code == 405 and wrong.json()["code"] == "method_not_allowed"
        assert "GET" in wrong.headers["allow"]


async def test_cors_is_off_unless_configured(gateway: RunningGateway, tmp_path: Path) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        answer = await http.options("/v1/sessions/s/start", headers=preflight)
        assert "access-control-allow-origin" not in answer.headers
        plain = await http.get("/v1/openapi.json", headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in plain.headers
    settings = fast_settings(tmp_path, cors_origins=("https://app.example",))
    async with (
        serve_gateway(settings) as configured,
        httpx.AsyncClient(base_url=configured.http, timeout=TIMEOUT) as http,
    ):
        allowed = await http.options(
            "/v1/sessions/s/start", headers=preflight | {"Access-Control-Request-Headers": "authorization"}
        )
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://app.example"
        other = await http.options("/v1/sessions/s/start", headers=preflight | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        token = await configured.token()
        call = await http.get(
            "/v1/sessions", headers={"Origin": "https://app.example", "Authorization": f"Bearer {token}"}
        )
        assert call.status_code == 200
        assert call.headers["access-control-allow-origin"] == "https://app.example"
        methods = {
            method.upper()
            for path in (await http.get("/v1/openapi.json")).json()["paths"].values()
            for method in path
            if method != "parameters"
        }
        assert "PATCH" in methods  # webhook.update, tenant.update
        for method in sorted(methods):  # a browser app may call every route, PATCH ones included
            answer = await http.options(
                "/v1/webhooks/wh_x", headers=preflight | {"Access-Control-Request-Method": method}
            )
            assert answer.status_code == 200, method
            assert method in answer.headers["access-control-allow-methods"]


async def test_the_descriptions_and_the_docs_page_need_no_token_and_load_nothing_from_elsewhere(
    gateway: RunningGateway,
) -> None:
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        assert (await http.get("/v1/openapi.json")).json()["openapi"] == "3.1.0"
        assert (await http.get("/v1/asyncapi.json")).json()["asyncapi"] == "3.0.0"
        page = await http.get("/v1/docs")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "connect-src 'self'" in csp
        assets = [page.text]
        for name in ("docs.js", "docs.css"):
            asset = await http.get(f"/v1/docs/{name}")
            assert asset.status_code == 200 and asset.headers["content-security-policy"] == csp
            assets.append(asset.text)
        for text in assets:
            assert "http://" not in text and "https://" not in text and "//cdn" not in text
            assert "localStorage" not in text and "sessionStorage" not in text and "document.cookie" not in text
        assert (await http.get("/v1/docs/../config.py")).status_code == 404


# -- limits per token and per address, as on the socket


async def test_requests_past_a_tokens_rate_get_429_with_retry_after(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data", command_rate_per_s=2.0, command_burst=5)) as gateway:
        first, other = await gateway.token("acme"), await gateway.token("acme")
        async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:

            def get(path: str, token: str) -> Any:
                return http.get(path, headers={"Authorization": f"Bearer {token}"})

            assert [(await get("/v1/sessions", first)).status_code for _ in range(5)] == [200] * 5  # the burst
            refused = await get("/v1/sessions", first)
            assert refused.status_code == 429 and refused.json()["code"] == "rate_limited", refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert (await get("/v1/media/nothing-here", first)).status_code == 429  # every route, media too
            assert (await get("/v1/sessions", other)).status_code == 200  # a bucket per token
            async with gateway.connect("acme") as client:  # the socket's own limit is per connection
                assert (await client.call("ping"))["time"] > 0
            await asyncio.sleep(int(refused.headers["retry-after"]))
            assert (await get("/v1/sessions", first)).status_code == 200


async def test_failed_authentications_over_rest_are_answered_slower_and_slower(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", auth_failure_delay_s=0.2, auth_failure_max_delay_s=0.8)
    async with serve_gateway(settings) as gateway:
        token = await gateway.token("acme")
        loop = asyncio.get_running_loop()
        # A failure on the socket starts the address's burst: REST and the socket count the same failures.
        client = await RawClient.open(gateway.url)
        await client.send({"type": "auth", "token": "zgt_000000000009_wrong"})
        with pytest.raises(ConnectionClosed):
            while True:
                await client.recv()
        async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
            took: list[float] = []
            for i in range(4):
                began = loop.time()
                bad = await http.get("/v1/sessions", headers={"Authorization": f"Bearer zgt_{i:012x}_wrong"})
                took.append(loop.time() - began)
                assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
            # Each failure is answered after the wait the earlier ones earned: 0.2, 0.4, 0.8 s (the cap), 0.8 s.
            # Lower bounds, which a loaded machine only makes easier to meet: never a race.
            assert all(span >= wait for span, wait in zip(took, (0.2, 0.4, 0.8, 0.8), strict=True)), took
            # A valid token is checked at once, even from that address, and so are requests in parallel.
            answers = await asyncio.gather(
                *(http.get("/v1/sessions", headers={"Authorization": f"Bearer {token}"}) for _ in range(8))
            )
            assert [a.status_code for a in answers] == [200] * 8
