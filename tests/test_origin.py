"""The ``Origin`` allow-list for WebSocket upgrades: the pure policy, and the 403 over a real socket."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import InvalidStatus

from zapgate.config import ConfigError, Settings
from zapgate.origins import OriginPolicy, parse_origin

from .conftest import fast_settings
from .support import TIMEOUT, RawClient, RunningGateway, serve_gateway

# -- the policy (pure) ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("http://example.com", ("http", "example.com", 80)),
        ("https://Example.COM", ("https", "example.com", 443)),
        ("http://example.com:80", ("http", "example.com", 80)),
        ("http://127.0.0.1:8787", ("http", "127.0.0.1", 8787)),
        ("http://[::1]:8787", ("http", "::1", 8787)),
    ],
)
def test_origins_compare_as_scheme_host_and_port(text: str, parsed: tuple[str, str, int]) -> None:
    assert parse_origin(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "null",
        "",
        "example.com",
        "ftp://example.com",
        "http://example.com/",
        "http://example.com/path",
        "http://example.com?q",
        "http://user@example.com",
        "http://example.com:99999",
        "http://[::1",
        " http://example.com",
        "file://",
    ],
)
def test_anything_but_an_http_origin_is_not_one(text: str) -> None:
    assert parse_origin(text) is None


def test_the_gateways_own_origin_is_allowed_and_others_only_when_listed() -> None:
    policy = OriginPolicy.of(["https://crm.example.com", "http://localhost:3000"])
    own = {"scheme": "ws", "host": "127.0.0.1:8787"}
    assert policy.allows(None, **own)  # no Origin header: not a browser
    assert policy.allows("http://127.0.0.1:8787", **own)
    assert not policy.allows("http://127.0.0.1:8788", **own)  # another port is another origin
    assert not policy.allows("https://127.0.0.1:8787", **own)  # and so is another scheme
    assert not policy.allows("http://localhost:8787", **own)
    assert policy.allows("https://crm.example.com", **own)
    assert policy.allows("https://CRM.example.com:443", **own)
    assert policy.allows("http://localhost:3000", **own)
    assert not policy.allows("http://evil.example", **own)
    assert not policy.allows("null", **own)
    # Behind a TLS proxy that says so (X-Forwarded-Proto), the upgrade arrives as wss: the page is https.
    assert policy.allows("https://gw.example.com", scheme="wss", host="gw.example.com")
    assert not policy.allows("http://gw.example.com", scheme="wss", host="gw.example.com")
    assert policy.allows("http://gw.example.com", scheme="ws", host="gw.example.com:80")
    assert not policy.allows("http://gw.example.com", scheme="ws", host=None)  # no Host: no own origin
    assert not policy.allows("http://gw.example.com", scheme="ws", host="gw.example.com/x")


def test_star_allows_every_origin_but_null() -> None:
    policy = OriginPolicy.of(["*"])
    assert policy.allows("http://anything.example:1234", scheme="ws", host="127.0.0.1:8787")
    assert not policy.allows("null", scheme="ws", host="127.0.0.1:8787")


def test_a_malformed_allowed_origin_stops_the_gateway_at_start_up() -> None:
    with pytest.raises(ConfigError, match=r"allowed_origins: 'crm\.example\.com' is not an origin"):
        Settings.load({"ZAPGATE_ALLOWED_ORIGINS": "https://ok.example, crm.example.com"})
    loaded = Settings.load({"ZAPGATE_ALLOWED_ORIGINS": "https://ok.example, http://localhost:3000"})
    assert loaded.allowed_origins == ("https://ok.example", "http://localhost:3000")


# -- over a real socket -----------------------------------------------------------------------------------------


async def refused(url: str, origin: str) -> dict[str, object]:
    """Connect with ``Origin: origin``; return the JSON body of the refusal (fails if it was accepted)."""
    with pytest.raises(InvalidStatus) as refusal:
        await websockets.connect(url, origin=origin, open_timeout=TIMEOUT)  # type: ignore[arg-type]
    response = refusal.value.response
    assert response.status_code == 403
    body: dict[str, object] = json.loads(response.body or b"{}")
    return body


async def test_a_page_from_another_origin_is_refused_before_the_upgrade(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "zapgate.server")
    body = await refused(gateway.url, "http://evil.example")
    assert body["code"] == "origin_not_allowed"
    assert "ZAPGATE_ALLOWED_ORIGINS" in str(body["message"])
    assert (await refused(gateway.url, "null"))["code"] == "origin_not_allowed"
    assert (await refused(gateway.url, f"http://localhost:{gateway.port}"))["code"] == "origin_not_allowed"
    assert (await refused(gateway.url, f"https://127.0.0.1:{gateway.port}"))["code"] == "origin_not_allowed"
    assert not gateway.gateway.connections
    assert "origin 'http://evil.example' is not allowed" in caplog.text
    assert any(r.levelno == logging.INFO for r in caplog.records if "is not allowed" in r.getMessage())


async def test_the_gateways_own_pages_and_non_browsers_connect(gateway: RunningGateway) -> None:
    token = await gateway.token("acme")
    for origin in (f"http://127.0.0.1:{gateway.port}", None):
        client = await RawClient.open(gateway.url, origin=origin)
        assert client.hello is not None and client.hello["type"] == "hello"
        ready = await client.authenticate(token)
        assert ready["tenant"] == "acme"
        await client.close()


async def test_listed_origins_connect(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", allowed_origins=("https://crm.example.com",))
    async with serve_gateway(settings) as gateway:
        client = await RawClient.open(gateway.url, origin="https://crm.example.com")
        await client.authenticate(await gateway.token("acme"))
        await client.close()
        await refused(gateway.url, "https://crm.example.com.evil.example")
