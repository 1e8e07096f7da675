"""``/metrics`` behind a bearer token (``metrics_token``) or on a listener of its own (``metrics_port``)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from zapgate.config import ConfigError, Settings

from .conftest import fast_settings
from .edge_support import ZAPGATE, served_gateway
from .support import TIMEOUT, serve_gateway

STRONG = "mt_9fK2xQ7vLp3RzW8cYb6N4sHd"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("short-but-random-1A", "fewer than 24"),
        ("a" * 64, "fewer than 12 different"),
        ("0123456789" * 3, "fewer than 12 different"),
        (STRONG + "\x00", "cannot be printed"),
    ],
)
def test_a_weak_metrics_token_stops_the_start_up_without_being_quoted(token: str, says: str) -> None:
    with pytest.raises(ConfigError, match="metrics_token is too weak") as refused:
        Settings(metrics_token=token)
    assert says in str(refused.value) and token.strip() not in str(refused.value)


def test_a_weak_token_stops_zapgate_serve_with_exit_2(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "ZAPGATE_DATA_DIR": str(tmp_path / "d"), "ZAPGATE_METRICS_TOKEN": "secret"}
    done = subprocess.run([ZAPGATE, "serve", "--engine", "simulator"], env=env, capture_output=True, timeout=60)
    assert done.returncode == 2 and b"metrics_token is too weak" in done.stderr


async def test_with_a_token_metrics_need_the_bearer(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", metrics_token=STRONG)
    async with serve_gateway(settings) as gateway, httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        for headers in ({}, {"Authorization": "Bearer " + STRONG[:-1] + "x"}, {"Authorization": STRONG}):
            refused = await http.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["code"] == "unauthorized"
            assert refused.headers["www-authenticate"].startswith("Bearer")
            assert "zapgate_sessions" not in refused.text
        scraped = await http.get("/metrics", headers={"Authorization": f"Bearer {STRONG}"})
        assert scraped.status_code == 200 and "zapgate_sessions" in scraped.text
        # The rest of the gateway is unaffected.
        assert (await http.get("/healthz")).status_code == 200


async def test_without_a_token_metrics_stay_open(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data")
    async with serve_gateway(settings) as gateway, httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        assert (await http.get("/metrics")).status_code == 200


async def test_a_separate_metrics_listener_serves_metrics_and_nothing_else(tmp_path: Path) -> None:
    port = free_port()
    settings = fast_settings(tmp_path / "data", metrics_port=port, metrics_token=STRONG)
    async with serve_gateway(settings) as gateway, httpx.AsyncClient(timeout=TIMEOUT) as http:
        api = await http.get(f"{gateway.http}/metrics", headers={"Authorization": f"Bearer {STRONG}"})
        assert api.status_code == 404  # not on the API's port any more
        scraped = await http.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {STRONG}"})
        assert scraped.status_code == 200 and "zapgate_connections" in scraped.text
        assert (await http.get(f"http://127.0.0.1:{port}/metrics")).status_code == 401
        assert (await http.get(f"http://127.0.0.1:{port}/healthz")).status_code == 404
        assert (await http.get(f"http://127.0.0.1:{port}/v1/sessions")).status_code == 404
        # The edge's limits hold there too: a forged Host is refused.
        forged = await http.get(f"http://127.0.0.1:{port}/metrics", headers={"Host": "evil.example"})
        assert forged.status_code == 421
    with socket.socket() as s:  # the listener is closed with the gateway
        assert s.connect_ex(("127.0.0.1", port)) != 0


async def test_zapgate_serve_runs_the_metrics_listener_on_loopback(tmp_path: Path) -> None:
    port = free_port()
    async with served_gateway(tmp_path, metrics_port=port) as served:
        async with httpx.AsyncClient(timeout=TIMEOUT) as http:
            async with asyncio.timeout(TIMEOUT):
                while True:
                    try:
                        scraped = await http.get(f"http://127.0.0.1:{port}/metrics")
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
            assert scraped.status_code == 200 and "zapgate_uptime_seconds" in scraped.text
            assert (await http.get(f"http://127.0.0.1:{served.port}/metrics")).status_code == 404
        assert f"metrics served on http://127.0.0.1:{port}/metrics" in served.log_text()


async def test_zapgate_serve_says_in_one_line_that_the_metrics_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"PATH": "/usr/bin:/bin", "ZAPGATE_DATA_DIR": str(tmp_path / "d"), "ZAPGATE_METRICS_PORT": str(port)}
        done = subprocess.run(
            [ZAPGATE, "serve", "--engine", "simulator", "--port", "0"], env=env, capture_output=True, timeout=60
        )
    assert done.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr.decode(), done.stderr
