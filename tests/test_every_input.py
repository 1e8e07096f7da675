"""Every input answered (issue 10, review §5.4, §5.10, §5.13), over real sockets: before and after
authentication, over WebSocket and REST; a documented error or close code, never a traceback.

The cases the review found after authentication (``{"type":"nope",}``, deep nesting, invalid UTF-8, odd
``Zapgate-Resume-From`` values, ``"main\\n"``) are in ``test_security.py``; this file covers the rest.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from zapgate.protocol import COMMANDS

from .support import TIMEOUT, RawClient, RunningGateway

NASTY_FRAMES = [
    '{"type":"nope",}',  # a ValidationError, then a DecodeError on the rest
    '{"type":"auth","token":' + "[" * 20000 + "]" * 20000 + "}",  # deeper than the decoder recurses
    "[" * 60000,
    '{"type":"auth","token":"\\ud800"}',  # a lone surrogate, escaped
    '{"type":"auth","token":"x","token":"y"}',
    "\x00",
    "",
    "null",
    '"auth"',
    "1e999999",
]


def quiet(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Records that would show an attack as a crash: ERROR and above, or any traceback."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def closed_with(client: RawClient) -> tuple[int | None, list[dict[str, Any]]]:
    frames = []
    try:
        while True:
            frames.append(await client.recv())
    except ConnectionClosed as closed:
        return (closed.rcvd.code if closed.rcvd else None), frames


@pytest.mark.parametrize("frame", NASTY_FRAMES)
async def test_before_auth_any_undecodable_frame_closes_4401_with_the_error_frame(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture, frame: str
) -> None:
    client = await RawClient.open(gateway.url)
    await client.send(frame, validate=False)
    code, frames = await closed_with(client)
    assert code == 4401, frame[:40]
    assert frames and frames[0]["type"] == "error" and frames[0]["code"] == "unauthorized"
    assert not quiet(caplog)


async def test_after_auth_the_same_frames_are_answered_and_the_connection_stays_usable(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    async with gateway.connect() as client:
        for frame in NASTY_FRAMES:
            await client.send(frame, validate=False)
            answer = await client.recv()
            assert answer["type"] in {"error", "reply"}, (frame[:40], answer)
            code = answer["code"] if answer["type"] == "error" else answer["error"]["code"]
            assert code in {"invalid_json", "invalid_frame", "unknown_type", "invalid_request"}, (frame[:40], answer)
        assert (await client.call("ping"))["time"] > 0
    assert not quiet(caplog)


def patterns(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        for key, value in schema.items():
            if key == "pattern" and isinstance(value, str):
                yield value
            else:
                yield from patterns(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from patterns(value)


def test_every_pattern_of_the_protocol_is_anchored_at_the_very_end() -> None:
    # msgspec matches patterns with re.search: "^…$" lets "main\n" through, "\A…\Z" does not.
    _, components = msgspec.json.schema_components([spec.request for spec in COMMANDS.values()])
    found = sorted(set(patterns(components)))
    assert found, "the protocol has patterns"
    for pattern in found:
        assert pattern.startswith("\\A") and pattern.endswith("\\Z"), pattern
        assert not re.search(pattern, "a\n")


@pytest.mark.parametrize(
    ("command", "fields"),
    [
        ("session.get", {"session": "main\n"}),
        ("session.start", {"session": "main\n"}),
        ("sim.restrict", {"session": "main", "seconds": 1, "reason": "rate_limit\n"}),
        ("media.get", {"media_id": "med_abcdefgh\n"}),
    ],
)
async def test_a_trailing_newline_is_refused_over_websocket_and_rest(
    gateway: RunningGateway, command: str, fields: dict[str, Any]
) -> None:
    async with gateway.connect() as client:
        await client.call("session.start", session="main")
        reply = await client.request(command, validate=False, **fields)
        assert reply["ok"] is False and reply["error"]["code"] == "invalid_request", reply
        listed = await client.call("session.list")
        assert [s["session"] for s in listed["sessions"]] == ["main"]


async def test_rest_bodies_that_do_not_decode_get_400_invalid_json_without_a_traceback(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    token = await gateway.token()
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    bodies = [
        b'{"to":"+1 555 000 0000","text":"x",}',
        b'{"text":' + b"[" * 20000 + b"]" * 20000 + b"}",
        b'{"to":"+1 555 000 0000","text":"\xff\xfe"}',
        b"[" * 60000,
    ]
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        for body in bodies:
            answer = await http.post("/v1/sessions/main/messages", content=body, headers=headers)
            assert answer.status_code == 400, (body[:40], answer.text)
            assert answer.json()["code"] in {"invalid_json", "invalid_request"}, (body[:40], answer.text)
        # Odd query values and path segments as well.
        for path in ("/v1/events?after=%C2%B2", "/v1/events?after=" + "9" * 5000, "/v1/sessions/main%0A"):
            answer = await http.get(path, headers=headers)
            assert answer.status_code in {400, 404}, (path[:40], answer.text)
            assert answer.json()["code"] in {"invalid_request", "session_not_found", "not_found"}, answer.text
    assert not quiet(caplog)


async def test_odd_resume_headers_with_the_auth_frame_are_refused_before_the_upgrade(gateway: RunningGateway) -> None:
    # Without a Bearer header the upgrade happens only after the header is checked (test_security checks it with
    # one): the value is refused the same way, 400 invalid_request.
    for value in ("\u00b2", "9" * 5000, "1e3", "-1"):
        with pytest.raises(InvalidStatus) as refused:
            await RawClient.open(gateway.url, additional_headers={"Zapgate-Resume-From": value})
        response = refused.value.response
        assert response.status_code == 400, value[:20]
        assert json.loads(response.body or b"{}")["code"] == "invalid_request"
