"""Outbound requests refuse non-public addresses after DNS, per connection, redirects included (a real server)."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.routing import Route

from zapgate.netguard import AddressPolicy, BlockedAddress, guarded_client

from .support import serve_asgi


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("hello")


async def bounce(request: Request) -> RedirectResponse:
    return RedirectResponse(request.query_params["to"])


@pytest.fixture
async def server() -> AsyncIterator[int]:
    app = Starlette(routes=[Route("/hello", hello), Route("/bounce", bounce)])
    async with serve_asgi(app) as port:
        yield port


async def test_loopback_is_refused_by_default_by_address_and_by_name(server: int) -> None:
    async with guarded_client(AddressPolicy(), timeout=5) as client:
        for url in (f"http://127.0.0.1:{server}/hello", f"http://localhost:{server}/hello"):
            with pytest.raises(httpx.ConnectError, match="not a public address") as caught:
                await client.get(url)
            assert isinstance(caught.value.__context__ or caught.value, Exception)


async def test_an_allowed_network_is_reachable(server: int) -> None:
    async with guarded_client(AddressPolicy.parse(["127.0.0.1/32"]), timeout=5) as client:
        answer = await client.get(f"http://127.0.0.1:{server}/hello")
        assert answer.text == "hello"


async def test_a_redirect_to_a_refused_address_is_refused(server: int) -> None:
    policy = AddressPolicy.parse(["127.0.0.1/32"])
    async with guarded_client(policy, timeout=5) as client:
        with pytest.raises(httpx.ConnectError, match=r"127\.0\.0\.2"):
            await client.get(f"http://127.0.0.1:{server}/bounce", params={"to": f"http://127.0.0.2:{server}/hello"})


@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "10.1.2.3", "192.168.0.1", "100.64.0.1", "::1", "::ffff:127.0.0.1", "fe80::1", "224.0.0.1"],
)
def test_non_public_addresses_are_not_permitted(address: str) -> None:
    assert not AddressPolicy().permits(ipaddress.ip_address(address))


def test_public_addresses_are_permitted() -> None:
    for address in ("8.8.8.8", "2001:4860:4860::8888", "157.240.1.1"):
        assert AddressPolicy().permits(ipaddress.ip_address(address))


def test_blocked_address_is_a_connect_error() -> None:
    assert issubclass(BlockedAddress, Exception)
