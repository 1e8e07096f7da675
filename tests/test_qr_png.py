"""``GET /v1/sessions/{session}/qr.png``: the current QR code as an image, for the token's tenant only."""

from __future__ import annotations

import asyncio
import json
import struct
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from zapgate.client import SessionQr, connect
from zapgate.config import Settings

from .conftest import fast_settings
from .support import TIMEOUT, RunningGateway
from .test_client import next_event, pair

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """QR codes that live long enough for a slow machine to scan the first one (rotation is tested apart)."""
    return fast_settings(tmp_path / "data")


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, str]:
        data: dict[str, str] = json.loads(self.body)
        return data


def _get(url: str, token: str | None) -> Response:
    request = urllib.request.Request(url)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy
    try:
        with opener.open(request, timeout=TIMEOUT) as answer:
            return Response(answer.status, dict(answer.headers), answer.read())
    except urllib.error.HTTPError as error:
        with error:
            return Response(error.code, dict(error.headers), error.read())


async def get(gateway: RunningGateway, session: str, token: str | None) -> Response:
    return await asyncio.to_thread(_get, f"{gateway.http}/v1/sessions/{session}/qr.png", token)


async def test_qr_png_while_showing_a_qr_and_404_when_not(gateway: RunningGateway) -> None:
    token = await gateway.token("acme")
    async with connect(gateway.url, token) as client:
        await client.start_session("main")
        qr = await next_event(client, SessionQr)

        shown = await get(gateway, "main", token)
        assert shown.status == 200
        assert shown.headers["content-type"] == "image/png"
        assert shown.headers["cache-control"] == "no-store"
        assert shown.headers["x-qr-attempt"] == f"{qr.data.attempt}/{qr.data.max_attempts}"
        assert shown.body.startswith(PNG_SIGNATURE)
        width, height = struct.unpack(">II", shown.body[16:24])  # the IHDR chunk
        assert width == height and width >= 8 * 21  # at least a version 1 symbol at scale 8

        await client.sim_scan(qr.data.qr, "+55 11 93333-0000")
        await client.stop_session("main")
    gone = await get(gateway, "main", token)
    assert gone.status == 404 and gone.json()["code"] == "qr_not_available"


async def test_qr_png_of_a_connected_session_is_404(gateway: RunningGateway) -> None:
    token = await gateway.token("acme")
    async with connect(gateway.url, token) as client:
        await pair(client, "main", "+55 11 93333-0001")
        connected = await get(gateway, "main", token)
    assert connected.status == 404 and connected.json()["code"] == "qr_not_available"


async def test_qr_png_needs_the_tenants_token(gateway: RunningGateway) -> None:
    token = await gateway.token("acme")
    async with connect(gateway.url, token) as client:
        await client.start_session("main")
        await next_event(client, SessionQr)
        assert (await get(gateway, "main", token)).status == 200

        missing = await get(gateway, "main", None)
        assert missing.status == 401 and missing.json()["code"] == "unauthorized"
        wrong = await get(gateway, "main", "zgt_not_a_token")
        assert wrong.status == 401 and wrong.json()["code"] == "unauthorized"
        assert wrong.body.find(b"zgt_not_a_token") == -1

        # Another tenant's session is indistinguishable from a missing one.
        other = await get(gateway, "main", await gateway.token("globex"))
        assert other.status == 404 and other.json()["code"] == "session_not_found"
        nope = await get(gateway, "nope", token)
        assert nope.status == 404 and nope.json()["code"] == "session_not_found"
