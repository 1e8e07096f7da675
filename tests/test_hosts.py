"""The ``Host`` allow-list (DNS rebinding): the pure policy, and the 421 over real sockets, before any route."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

import zapgate.client
from zapgate.config import ConfigError, Settings
from zapgate.errors import HostNotAllowed
from zapgate.hosts import HostPolicy, parse_host

from .conftest import fast_settings
from .edge_support import raw_socket, read_to_end, served_gateway, upgrade_request
from .support import TIMEOUT, RawClient, RunningGateway, serve_gateway

# -- the policy (pure) ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("localhost", ("localhost", None)),
        ("LocalHost:8787", ("localhost", 8787)),
        ("gw.example.com.", ("gw.example.com", None)),
        ("127.0.0.1:80", ("127.0.0.1", 80)),
        ("[::1]", ("[::1]", None)),
        ("[0:0::1]:8787", ("[::1]", 8787)),
    ],
)
def test_hosts_parse_as_name_and_port(text: str, parsed: tuple[str, int | None]) -> None:
    assert parse_host(text) == parsed


@pytest.mark.parametrize(
    "text", ["", " localhost", "a b", "evil/x", "h:", "h:99999", "h:8a", "h:\u00b2", "[::1", "[::1]x", "::1", "é.com"]
)
def test_anything_but_a_host_is_not_one(text: str) -> None:
    assert parse_host(text) is None


def test_a_loopback_gateway_answers_only_to_loopback_names_by_default() -> None:
    policy = HostPolicy.default_for(bind_loopback=True)
    for host in ("localhost", "localhost:8787", "127.0.0.1:1", "[::1]:8787", "LOCALHOST."):
        assert policy.allows(host), host
    for host in (None, "", "evil.example", "evil.example:8787", "127.0.0.2", "localhost.evil.example", "0.0.0.0"):
        assert not policy.allows(host), host
    assert HostPolicy.default_for(bind_loopback=False).allows("anything.example")


def test_listed_hosts_with_and_without_ports_and_subdomains() -> None:
    policy = HostPolicy.of(["gw.example.com", "api.example.com:8443", "*.corp.example"])
    assert policy.allows("gw.example.com") and policy.allows("gw.example.com:9000")
    assert policy.allows("api.example.com:8443") and not policy.allows("api.example.com")
    assert policy.allows("a.corp.example:1") and policy.allows("a.b.corp.example")
    assert not policy.allows("corp.example") and not policy.allows("xcorp.example")
    assert not policy.allows("localhost")  # a list replaces the default
    assert HostPolicy.of(["*"]).allows("whatever")


def test_settings_refuse_a_malformed_host_and_default_to_the_bind_address() -> None:
    with pytest.raises(ConfigError, match=r"allowed_hosts: 'gw\.example\.com/x' is not a host"):
        Settings.load({"ZAPGATE_ALLOWED_HOSTS": "localhost, gw.example.com/x"})
    with pytest.raises(ConfigError, match=r"allowed_hosts: '\*\.example\.com:80' is not a host pattern"):
        Settings.load({"ZAPGATE_ALLOWED_HOSTS": "*.example.com:80"})
    assert not Settings(host="127.0.0.1").host_policy.allows("evil.example")
    assert not Settings(host="::1").host_policy.allows("evil.example")
    assert Settings(host="0.0.0.0").host_policy.allows("evil.example")
    assert not Settings(host="0.0.0.0", allowed_hosts=("gw.example.com",)).host_policy.allows("evil.example")


# -- over real sockets --------------------------------------------------------------------------------------------


async def raw_request(port: int, head: str) -> tuple[int, dict[str, object], bytes]:
    """Send ``head`` (a complete request head); return the status, the JSON body and the whole answer."""
    sock = await raw_socket(port)
    try:
        await asyncio.get_running_loop().sock_sendall(sock, head.encode("latin-1"))
        answer = await read_to_end(sock)
    finally:
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0
    body = answer.partition(b"\r\n\r\n")[2]
    return status, (json.loads(body) if body.startswith(b"{") else {}), answer


@pytest.mark.parametrize("path", ["/healthz", "/metrics", "/v1/sessions", "/", "/v1/openapi.json", "/nope"])
async def test_a_forged_host_gets_421_on_every_route(gateway: RunningGateway, path: str) -> None:
    status, body, _ = await raw_request(
        gateway.port, f"GET {path} HTTP/1.1\r\nHost: rebind.evil.example:{gateway.port}\r\nConnection: close\r\n\r\n"
    )
    assert status == 421
    assert body["code"] == "host_not_allowed" and "ZAPGATE_ALLOWED_HOSTS" in str(body["message"])


async def test_a_websocket_upgrade_with_a_forged_host_is_refused_before_the_upgrade(
    gateway: RunningGateway, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "zapgate.server")
    token = await gateway.token()
    request = upgrade_request(gateway.port, f"Authorization: Bearer {token}\r\n").replace(
        f"Host: 127.0.0.1:{gateway.port}".encode(), b"Host: evil.example"
    )
    sock = await raw_socket(gateway.port)
    try:
        await asyncio.get_running_loop().sock_sendall(sock, request)
        answer = await read_to_end(sock)
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 421 Misdirected Request\r\n"), answer[:80]
    assert b'"code":"host_not_allowed"' in answer and b"101" not in answer.split(b"\r\n", 1)[0]
    assert gateway.edge.refused["host_not_allowed"] >= 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not gateway.gateway.connections  # nothing reached the WebSocket endpoint


@pytest.mark.parametrize(
    "hosts",
    [
        [],  # HTTP/1.1 requires one
        ["127.0.0.1", "evil.example"],  # two: which one did the client mean?
        ["localhost/x"],
        ["localhost:8a"],
    ],
)
async def test_a_missing_doubled_or_malformed_host_is_refused(gateway: RunningGateway, hosts: list[str]) -> None:
    lines = "".join(f"Host: {h}\r\n" for h in hosts)
    status, body, _ = await raw_request(gateway.port, f"GET /healthz HTTP/1.1\r\n{lines}Connection: close\r\n\r\n")
    assert (status, body["code"]) == (421, "host_not_allowed")


async def test_loopback_names_are_answered_over_http_and_websocket(gateway: RunningGateway) -> None:
    for host in (f"127.0.0.1:{gateway.port}", f"localhost:{gateway.port}", f"[::1]:{gateway.port}", "localhost"):
        status, _, answer = await raw_request(
            gateway.port, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        assert status == 200, answer[:200]
    # A client that connects by name sends Host: localhost:PORT.
    client = await RawClient.open(f"ws://localhost:{gateway.port}/v1/ws", host="127.0.0.1")
    await client.authenticate(await gateway.token())
    assert (await client.call("ping"))["time"] > 0
    await client.close()


async def test_listed_hosts_are_answered_and_the_list_replaces_the_default(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", allowed_hosts=("gw.example.com", "*.corp.example"))
    async with serve_gateway(settings) as gateway:
        for host, status in (
            ("gw.example.com", 200),
            (f"gw.example.com:{gateway.port}", 200),
            ("a.corp.example", 200),
            (f"127.0.0.1:{gateway.port}", 421),
            ("evil.example", 421),
        ):
            got, _, _ = await raw_request(
                gateway.port, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
            )
            assert got == status, host


async def test_the_sdk_says_which_setting_to_change(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", allowed_hosts=("zapgate.example.com",))
    async with serve_gateway(settings) as gateway:
        with pytest.raises(HostNotAllowed, match="ZAPGATE_ALLOWED_HOSTS"):
            async with zapgate.client.connect(gateway.url, await gateway.token()):
                pass


async def test_keep_alive_cannot_switch_to_a_forged_host(gateway: RunningGateway) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    try:
        writer.write(f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{gateway.port}\r\n\r\n".encode())
        async with asyncio.timeout(TIMEOUT):
            first = await reader.readuntil(b"\r\n\r\n")
            length = int(first.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: evil.example\r\n\r\n")
            second = await reader.read()
    finally:
        writer.close()
    assert first.startswith(b"HTTP/1.1 200 ")
    assert second.startswith(b"HTTP/1.1 421 Misdirected Request\r\n") and b"host_not_allowed" in second


async def test_a_served_gateway_bound_elsewhere_warns_that_any_host_is_answered(tmp_path: Path) -> None:
    async with served_gateway(tmp_path, host="0.0.0.0") as served:
        async with asyncio.timeout(TIMEOUT):
            while "ZAPGATE_ALLOWED_HOSTS is not set" not in served.log_text():
                await asyncio.sleep(0.05)
        status, _, _ = await raw_request(
            served.port, "GET /healthz HTTP/1.1\r\nHost: anything.example\r\nConnection: close\r\n\r\n"
        )
        assert status == 200
