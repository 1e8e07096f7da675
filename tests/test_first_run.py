"""The first run of ``zapgate serve``: on a data directory with no token, one is created and printed once, with
the dashboard's address, on stderr, and only where ``ZAPGATE_FIRST_RUN_TOKEN`` allows (a terminal, by default).

The gateway runs as a real subprocess; the terminal case gives it a real pseudo-terminal as stderr.
"""

from __future__ import annotations

import asyncio
import io
import os
import pty
import re
import select
import time
from pathlib import Path

import pytest

from zapgate.cli import firstrun

from .support import TIMEOUT, RawClient
from .test_cli import ZAPGATE, Running, cli, cli_env

LISTENING = re.compile(r"running on http://127\.0\.0\.1:(\d+)")


def test_the_token_is_wanted_only_where_it_may_be_shown() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert firstrun.wanted("tty", Terminal())
    assert not firstrun.wanted("tty", io.StringIO())
    assert firstrun.wanted("always", io.StringIO())
    assert not firstrun.wanted("never", Terminal())


def test_the_address_printed_works_from_this_machine() -> None:
    assert firstrun.dashboard_url("127.0.0.1", 8787) == "http://127.0.0.1:8787/"
    assert firstrun.dashboard_url("0.0.0.0", 8787) == "http://127.0.0.1:8787/"
    assert firstrun.dashboard_url("::1", 9000) == "http://[::1]:9000/"
    assert firstrun.dashboard_url("gw.lan", 80) == "http://gw.lan:80/"


async def serve_until_listening(env: dict[str, str]) -> tuple[Running, int, list[str]]:
    """Start ``zapgate serve`` (simulator, free port) and read stderr until it listens; return the lines read."""
    server = await Running.start("serve", "--engine", "simulator", "--port", "0", env=env)
    assert server.proc.stderr is not None
    lines: list[str] = []
    async with asyncio.timeout(TIMEOUT):
        while not (found := LISTENING.search(lines[-1] if lines else "")):
            line = (await server.proc.stderr.readline()).decode()
            assert line, "serve ended: " + "".join(lines)
            lines.append(line)
    return server, int(found[1]), lines


async def stop(server: Running) -> str:
    """Stop the gateway; return the rest of its stderr."""
    server.proc.terminate()
    async with asyncio.timeout(TIMEOUT):
        _, err = await server.proc.communicate()
    return err.decode()


@pytest.mark.slow
async def test_a_first_run_prints_one_token_and_the_dashboard_once(tmp_path: Path) -> None:
    env = cli_env(ZAPGATE_DATA_DIR=str(tmp_path / "data"), ZAPGATE_FIRST_RUN_TOKEN="always")
    server, port, lines = await serve_until_listening(env)
    assert server.proc.stderr is not None
    async with asyncio.timeout(TIMEOUT):
        while not lines[-1].startswith("More tokens:"):
            lines.append((await server.proc.stderr.readline()).decode())
    rest = await stop(server)
    output = "".join(lines) + rest
    tokens = re.findall(r"zgt_[0-9a-f]{12}_\S+", output)
    assert len(tokens) == 1, output  # printed once, and nowhere else (not in a log line)
    assert re.search(rf"^    {re.escape(tokens[0])}$", output, re.M)
    assert f"Dashboard:     http://127.0.0.1:{port}/  (sign in with the token above)" in output
    assert "first run: created an access token for tenant 'default'" in output
    assert "no tokens yet" not in output

    listed = await cli("token", "list", "--data-dir", str(tmp_path / "data"), env=cli_env())
    assert re.search(r"^[0-9a-f]{12}\s+default\s+.*active\s+first run$", listed.out, re.M), listed.out

    server, port, lines = await serve_until_listening(env)  # the second run: a token exists, nothing is printed
    try:
        client = await RawClient.open(f"ws://127.0.0.1:{port}/v1/ws")
        ready = await client.authenticate(tokens[0])
        assert ready["tenant"] == "default"
        await client.close()
    finally:
        rest = await stop(server)
    assert "zgt_" not in "".join(lines) + rest


@pytest.mark.slow
async def test_by_default_a_token_is_printed_only_on_a_terminal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    # stderr is a pipe (a container's or a CI job's log): no token is made, and the log says how to get one.
    server, _, lines = await serve_until_listening(cli_env(ZAPGATE_DATA_DIR=str(data)))
    output = "".join(lines) + await stop(server)
    assert "zgt_" not in output
    assert "no tokens yet" in output and "ZAPGATE_FIRST_RUN_TOKEN=always" in output
    listed = await cli("token", "list", "--data-dir", str(data), env=cli_env())
    assert "default" not in listed.out

    # stderr is a terminal: the token is printed there.
    main, terminal = pty.openpty()
    proc = await asyncio.create_subprocess_exec(
        ZAPGATE, "serve", "--engine", "simulator", "--port", "0",
        env=cli_env(ZAPGATE_DATA_DIR=str(data)), stdout=asyncio.subprocess.DEVNULL, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    try:
        seen = await asyncio.to_thread(read_until, main, "More tokens:")
    finally:
        proc.terminate()
        async with asyncio.timeout(TIMEOUT):
            await proc.wait()
        os.close(main)
    assert re.search(r"^    zgt_[0-9a-f]{12}_\S+\r?$", seen, re.M), seen
    assert re.search(r"Dashboard:     http://127\.0\.0\.1:\d+/", seen)


@pytest.mark.slow
async def test_never_means_never(tmp_path: Path) -> None:
    main, terminal = pty.openpty()
    env = cli_env(ZAPGATE_DATA_DIR=str(tmp_path / "data"), ZAPGATE_FIRST_RUN_TOKEN="never")
    proc = await asyncio.create_subprocess_exec(
        ZAPGATE, "serve", "--engine", "simulator", "--port", "0",
        env=env, stdout=asyncio.subprocess.DEVNULL, stderr=terminal,
    )  # fmt: skip
    os.close(terminal)
    try:
        seen = await asyncio.to_thread(read_until, main, "no tokens yet")
    finally:
        proc.terminate()
        async with asyncio.timeout(TIMEOUT):
            await proc.wait()
        os.close(main)
    assert "zgt_" not in seen


async def test_an_unknown_mode_is_a_configuration_error(tmp_path: Path) -> None:
    env = cli_env(ZAPGATE_DATA_DIR=str(tmp_path / "data"), ZAPGATE_FIRST_RUN_TOKEN="sometimes")
    result = await cli("serve", "--engine", "simulator", "--port", "0", env=env)
    assert result.code == 2
    assert "first_run_token must be one of tty, always, never, not 'sometimes'" in result.err


def read_until(fd: int, marker: str) -> str:
    """Read a pseudo-terminal until ``marker`` has appeared and its line has ended."""
    seen = ""
    deadline = time.monotonic() + TIMEOUT
    while not re.search(re.escape(marker) + r".*\n", seen):
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} on the terminal: {seen}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the other side closed
                break
            seen += chunk.decode(errors="replace")
    return seen
