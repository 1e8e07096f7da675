"""The client commands of the ``zapgate`` CLI, run as real subprocesses against a real gateway on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import pty
import re
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import segno

from zapgate.cli import build_parser, parse
from zapgate.client import MessageReceived, SessionDeleted, SessionPairCode, SessionQr, SessionRestricted, connect
from zapgate.config import Settings

from .conftest import fast_settings
from .support import TIMEOUT, RunningGateway, serve_gateway
from .test_client import TcpRelay, next_event, pair

pytestmark = pytest.mark.slow  # each test runs the zapgate executable (but the --help ones)

ZAPGATE = str(Path(sys.executable).with_name("zapgate"))
ECHO = "+1 555 000 0000"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """QR codes that live long enough for a slow machine to scan the first one (rotation is tested apart)."""
    return fast_settings(tmp_path / "data")


def cli_env(url: str | None = None, token: str | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPGATE_") and k != "PYTHONASYNCIODEBUG"}
    env["PYTHONWARNINGS"] = "error"
    if url is not None:
        env["ZAPGATE_URL"] = url
    if token is not None:
        env["ZAPGATE_TOKEN"] = token
    env.update(extra)
    return env


@dataclass
class Result:
    code: int
    out: str
    err: str


async def cli(*args: str, env: dict[str, str]) -> Result:
    """Run ``zapgate ARGS`` to completion."""
    proc = await asyncio.create_subprocess_exec(
        ZAPGATE, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    async with asyncio.timeout(TIMEOUT * 3):
        out, err = await proc.communicate()
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


class Running:
    """A ``zapgate`` subprocess whose stdout is read as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str, env: dict[str, str]) -> Running:
        return await cls.start_command(ZAPGATE, *args, env=env)

    @classmethod
    async def start_command(cls, *command: str, env: dict[str, str]) -> Running:
        proc = await asyncio.create_subprocess_exec(
            *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        return cls(proc)

    async def expect(self, pattern: str) -> re.Match[str]:
        """Read stdout until a line matches ``pattern``."""
        assert self.proc.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            while True:
                raw = await self.proc.stdout.readline()
                if not raw:
                    err = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise AssertionError(f"output ended before {pattern!r}; stderr: {err.decode()}")
                line = raw.decode().rstrip("\n")
                self.lines.append(line)
                if found := re.search(pattern, line):
                    return found

    async def finish(self) -> Result:
        async with asyncio.timeout(TIMEOUT * 3):
            out, err = await self.proc.communicate()
        self.lines.extend(out.decode().splitlines())
        assert self.proc.returncode is not None
        return Result(self.proc.returncode, "\n".join(self.lines), err.decode())

    async def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


@contextlib.asynccontextmanager
async def running(*args: str, env: dict[str, str]) -> AsyncIterator[Running]:
    proc = await Running.start(*args, env=env)
    try:
        yield proc
    finally:
        await proc.kill()


def qr_art(code: str) -> str:
    """How ``zapgate pair`` draws ``code`` (to find it in the output)."""
    out = io.StringIO()
    segno.make_qr(code, error="l").terminal(out=out, compact=True)
    return out.getvalue()


# -- pair ---------------------------------------------------------------------------------------------------


async def test_new_user_journey_serve_token_pair_rotating_qr_scan(tmp_path: Path) -> None:
    """Everything through the CLI: create a token, serve a simulator, pair while the QR rotates, scan."""
    data = str(tmp_path / "data")
    created = await cli("token", "create", "--tenant", "acme", "--data-dir", data, env=cli_env())
    assert created.code == 0, created.err
    token = created.out.strip()
    server_env = cli_env(
        ZAPGATE_DATA_DIR=data, ZAPGATE_SIM_QR_SCHEDULE="0.5,30,30", ZAPGATE_SIM_LATENCY_S="0.01", ZAPGATE_PORT="0"
    )
    server = await Running.start("serve", "--engine", "simulator", env=server_env)
    try:
        assert server.proc.stderr is not None
        listening = re.compile(rb"running on http://127\.0\.0\.1:(\d+)")
        async with asyncio.timeout(TIMEOUT):
            while not (port := listening.search(await server.proc.stderr.readline())):
                pass
        env = cli_env(f"ws://127.0.0.1:{int(port[1])}/v1/ws", token)

        async with running("pair", "main", env=env) as pairing:
            await pairing.expect(r"^code 1 of 3, expires in \d+ s$")
            second = await pairing.expect(r"^code 2 of 3, expires in \d+ s$")
            assert int(re.findall(r"\d+", second[0])[-1]) > 1
            scan_hint = await pairing.expect(r"^simulator: zapgate sim scan '(2@[^']+)' --phone NUMBER$")
            codes = re.findall(r"sim scan '(2@[^']+)'", "\n".join(pairing.lines))
            assert len(codes) == 2 and codes[1] == scan_hint[1] and codes[0] != codes[1]
            output = "\n".join(pairing.lines) + "\n"
            assert qr_art(codes[0]) in output and qr_art(codes[1]) in output  # each code drawn as it came

            expired = await cli("sim", "scan", codes[0], "--phone", "+55 11 99999-0000", env=env)
            assert expired.code == 1 and "qr_expired" in expired.err
            scanned = await cli("sim", "scan", codes[1], "--phone", "+55 11 99999-0000", env=env)
            assert scanned.code == 0, scanned.err
            assert "linked +5511999990000" in scanned.out

            done = await pairing.finish()
            assert done.code == 0, done.err
            assert done.out.endswith("session main connected as +5511999990000")
            assert "qr.png" in done.err  # where to get the same code as an image

        listed = await cli("sessions", env=env)
        assert listed.code == 0 and re.search(r"^main\s+connected\s+\+5511999990000", listed.out, re.M)
    finally:
        server.proc.terminate()
        async with asyncio.timeout(TIMEOUT):
            await server.proc.wait()


async def test_pair_exits_4_when_no_phone_scans(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data", sim_qr_schedule=(0.2, 0.2))) as gateway:
        env = cli_env(gateway.url, await gateway.token())
        timed_out = await cli("pair", "main", env=env)
        assert timed_out.code == 4
        assert timed_out.out.count("expires in") == 2
        assert "no phone linked session main before the last code expired" in timed_out.err


async def test_pair_gives_up_after_its_timeout(gateway: RunningGateway) -> None:
    env = cli_env(gateway.url, await gateway.token())
    gave_up = await cli("pair", "main", "--timeout", "0.3", env=env)
    assert gave_up.code == 4 and "gave up after 0.3 s" in gave_up.err


async def test_pair_by_phone_number_prints_the_pairing_code(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path / "data", sim_qr_schedule=(30.0,))) as gateway:
        token = await gateway.token()
        env = cli_env(gateway.url, token)
        async with running("pair", "main", "--phone", "+55 11 98888-0000", env=env) as pairing:
            code = (await pairing.expect(r"^pairing code: ([A-Z0-9]{4}-[A-Z0-9]{4})$"))[1]
            async with connect(gateway.url, token) as client:
                shown = await client.fetch_events(0, limit=100)
                assert [e.data.code for e in shown.events if isinstance(e, SessionPairCode)] == [code]
                await client.sim_scan(code, "+55 11 98888-0000")
            done = await pairing.finish()
        assert done.code == 0, done.err
        assert "2@" not in done.out  # no QR drawn: the code replaces it
        assert done.out.endswith("session main connected as +5511988880000")

        again = await cli("pair", "main", env=env)
        assert again.code == 0 and "already connected as +5511988880000" in again.out


async def test_pair_on_a_terminal_prints_the_image_hint_under_the_code_it_clears_the_screen_for(
    gateway: RunningGateway,
) -> None:
    env = cli_env(gateway.url, await gateway.token(), TERM="xterm")
    controller, terminal = pty.openpty()
    proc = await asyncio.create_subprocess_exec(ZAPGATE, "pair", "main", env=env, stdout=terminal, stderr=terminal)
    os.close(terminal)
    screen = b""
    try:
        async with asyncio.timeout(TIMEOUT):
            while b"qr.png" not in screen.rpartition(CLEAR)[2]:
                chunk = await asyncio.to_thread(os.read, controller, 65536)
                assert chunk, screen.decode(errors="replace")
                screen += chunk
    finally:
        proc.kill()
        await proc.wait()
        os.close(controller)
    shown = screen.rpartition(CLEAR)[2].decode()  # what stays on the screen
    assert "code 1 of 3" in shown and "/v1/sessions/main/qr.png" in shown
    assert shown.index("code 1 of 3") < shown.index("qr.png")
    assert b"qr.png" not in screen.rpartition(CLEAR)[0]  # never printed only to be wiped


CLEAR = b"\x1b[2J"


async def test_pair_shows_the_code_already_on_screen(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with connect(gateway.url, token) as client:
        await client.start_session("main")  # someone else started the pairing
        current = await next_event(client, SessionQr)
    async with running("pair", "main", env=cli_env(gateway.url, token)) as pairing:
        await pairing.expect(r"^code 1 of 3")
        assert qr_art(current.data.qr) in "\n".join(pairing.lines) + "\n"


# -- send, sessions, logout, stop -----------------------------------------------------------------------------


async def test_send_sessions_stop_and_logout(gateway: RunningGateway) -> None:
    token = await gateway.token()
    env = cli_env(gateway.url, token)
    async with connect(gateway.url, token) as client:
        await pair(client, "main", "+55 11 97777-0000")

        sent = await cli("send", "main", ECHO, "olá do terminal", "--wait", "read", env=env)
        assert sent.code == 0, sent.err
        message_id = sent.out.strip()
        assert re.fullmatch(r"[0-9A-F]{10,}", message_id)
        assert f"read: message {message_id} to 15550000000@s.whatsapp.net" in sent.err
        echo = await next_event(client, MessageReceived, lambda e: e.data.reply_to == message_id)
        assert echo.data.text == "olá do terminal"

        keyed = ["send", "main", ECHO, "once", "--idempotency-key", "k-1", "--json"]
        first, second = await cli(*keyed, env=env), await cli(*keyed, env=env)
        assert json.loads(first.out)["message_id"] == json.loads(second.out)["message_id"]
        assert json.loads(first.out)["status"] == "sent"

    table = await cli("sessions", env=env)
    assert table.code == 0
    assert table.out.splitlines()[0].split() == ["SESSION", "STATUS", "PHONE", "QUEUED", "REASON"]
    assert table.out.splitlines()[1].split() == ["main", "connected", "+5511977770000", "0"]

    stopped = await cli("stop", "main", env=env)
    assert stopped.code == 0 and "its link is kept" in stopped.out
    logged_out = await cli("logout", "main", env=env)
    assert logged_out.code == 0 and "zapgate pair main" in logged_out.out
    listing = json.loads((await cli("sessions", "--json", env=env)).out)
    assert [(s["session"], s["status"], s["paired"]) for s in listing] == [("main", "logged_out", False)]


async def test_the_documented_location_and_reaction_command_lines_work_as_typed(gateway: RunningGateway) -> None:
    """docs/cli.md's examples: a southern latitude after --location, and the emoji after --react MESSAGE_ID."""
    token = await gateway.token()
    env = cli_env(gateway.url, token)
    async with connect(gateway.url, token) as client:
        await pair(client, "main", "+55 11 97777-0001")
        pin = await cli("send", "main", ECHO, "--location", "-23.5613,-46.6565", "--name", "MASP", env=env)
        assert pin.code == 0, pin.err
        hello = await cli("send", "main", ECHO, "olá", "--wait", "sent", env=env)
        reacted = await cli("send", "main", ECHO, "--react", hello.out.strip(), "👍", "--json", env=env)
        assert reacted.code == 0, reacted.err
        assert json.loads(reacted.out)["message_id"]


def test_parse_takes_negative_coordinates_and_text_after_the_options() -> None:
    args = parse(["send", "main", ECHO, "--location", "-23.5613,-46.6565", "--name", "MASP"])
    assert (args.location, args.name, args.text) == ("-23.5613,-46.6565", "MASP", None)
    args = parse(["send", "main", ECHO, "--react", "3EB0A1", "👍"])
    assert (args.react, args.text) == ("3EB0A1", "👍")
    assert parse(["send", "main", ECHO, "--react", "3EB0A1", ""]).text == ""
    assert parse(["send", "main", ECHO, "hi", "--wait", "read"]).text == "hi"
    with pytest.raises(SystemExit) as refused:  # a second TEXT, or a stray word elsewhere, is still an error
        parse(["send", "main", ECHO, "one", "--react", "3EB0A1", "two"])
    assert refused.value.code == 2
    with pytest.raises(SystemExit):
        parse(["sessions", "extra"])


async def test_sim_commands(gateway: RunningGateway) -> None:
    token = await gateway.token()
    env = cli_env(gateway.url, token)
    async with connect(gateway.url, token) as client:
        await pair(client, "main", "+55 11 96666-0000")
        received = await cli("sim", "receive", "main", "bom dia", "--from", "+55 21 95555-0000", env=env)
        assert received.code == 0, received.err
        event = await next_event(client, MessageReceived)
        assert event.data.message_id == received.out.strip() and event.data.text == "bom dia"
        resolved = await cli("contact", "resolve", "main", event.data.from_lid or "", env=env)
        assert resolved.code == 0, resolved.err
        assert json.loads(resolved.out) == {
            "jid": "5521955550000@s.whatsapp.net",
            "lid": event.data.from_lid,
            "phone": "5521955550000",
        }

        assert (await cli("sim", "network", "main", "off", env=env)).code == 0
        assert (await client.session("main")).status == "disconnected"
        assert (await cli("sim", "network", "main", "on", env=env)).code == 0
        assert (await cli("sim", "unlink", "main", env=env)).code == 0
        not_paired = await cli("sim", "unlink", "main", env=env)
        assert not_paired.code == 1 and "session_not_paired" in not_paired.err


async def test_delete_and_sim_restrict(gateway: RunningGateway) -> None:
    token = await gateway.token()
    env = cli_env(gateway.url, token)
    async with connect(gateway.url, token) as client:
        await pair(client, "main", "+55 11 93000-0001")
        restricted = await cli("sim", "restrict", "main", "60", "--reason", "rate_limit", env=env)
        assert restricted.code == 0, restricted.err
        assert re.fullmatch(r"session main: sending restricted until \d\d:\d\d:\d\d\n", restricted.out)
        event = await next_event(client, SessionRestricted)
        assert event.data.reason == "rate_limit" and event.data.until > time.time() + 50

        deleted = await cli("delete", "main", env=env)
        assert deleted.code == 0 and deleted.out == "session main deleted\n", deleted.err
        await next_event(client, SessionDeleted, lambda e: e.session == "main")
        assert await client.sessions() == []
    again = await cli("delete", "main", env=env)
    assert again.code == 1 and "no session named 'main' (session_not_found)" in again.err


# -- events ---------------------------------------------------------------------------------------------------


async def test_events_follow_live_across_a_dropped_connection(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with TcpRelay(gateway.port) as relay, connect(gateway.url, token) as client:
        await pair(client, "main", "+55 11 95555-0000")
        start = client.last_seq
        assert start is not None
        env = cli_env(relay.url, token)
        follow = ["events", "--from", str(start), "--session", "main", "--event", "message.*", "--limit", "20"]
        async with running(*follow, env=env) as follower:
            for n in range(10):
                await client.sim_receive("main", "+55 21 94444-0000", f"before {n}")
            await follower.expect(r'"text":"before 0"')
            relay.cut()
            for n in range(10):
                await client.sim_receive("main", "+55 21 94444-0000", f"after {n}")
            done = await follower.finish()
        assert done.code == 0, done.err
        assert relay.accepted >= 2 and "zapgate: reconnected to" in done.err, done.err
        printed = [json.loads(line) for line in done.out.splitlines()]
        texts = [e["data"]["text"] for e in printed if e["event"] == "message.received"]
        assert texts == [f"before {n}" for n in range(10)] + [f"after {n}" for n in range(10)]
        log = await client.fetch_events(start, limit=1000)
        assert [e["seq"] for e in printed] == [e.seq for e in log.events if e.event.startswith("message.")][:20]
        assert {e["event"] for e in printed} == {"message.received"}
        typo = await cli("events", "--event", "message.recieved", env=env)
        assert typo.code == 1 and "unknown event type 'message.recieved'" in typo.err, typo.err


async def test_events_from_a_seq_prints_the_wire_frames(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with connect(gateway.url, token) as client:
        await pair(client, "main", "+55 11 94444-0000")
        log = await client.fetch_events(0, limit=1000)
    dumped = await cli("events", "--from", "0", "--limit", "3", env=cli_env(gateway.url, token))
    assert dumped.code == 0, dumped.err
    frames = [json.loads(line) for line in dumped.out.splitlines()]
    assert [f["seq"] for f in frames] == [e.seq for e in log.events[:3]]
    assert frames[0] == {
        "type": "event",
        "event": "session.status",
        "seq": log.events[0].seq,
        "session": "main",
        "data": {"status": "starting"},
        "ts": log.events[0].ts,
    }

    # Once the gateway has dropped old events, asking for them prints a gap line, then what it kept.
    await gateway.gateway.storage.prune(time.time() + 1, event_max_age=0, event_keep=2, record_max_age=1e9)
    after_gap = await cli("events", "--from", "1", "--limit", "2", env=cli_env(gateway.url, token))
    assert after_gap.code == 0, after_gap.err
    gap, *kept = [json.loads(line) for line in after_gap.out.splitlines()]
    newest = log.events[-1].seq
    assert gap == {"type": "gap", "after": 1, "last_seq": newest - 2}
    assert [e["seq"] for e in kept] == [newest - 1, newest]
    assert f"no longer has events 2 to {newest - 2}" in after_gap.err


# -- errors and exit codes ---------------------------------------------------------------------------------------


async def test_errors_have_documented_exit_codes(gateway: RunningGateway) -> None:
    token = await gateway.token()
    env = cli_env(gateway.url, token)

    bad_token = await cli("sessions", env=cli_env(gateway.url, "zgt_wrong"))
    assert bad_token.code == 1 and "refused the token" in bad_token.err and bad_token.out == ""
    no_token = await cli("sessions", env=cli_env(gateway.url))
    assert no_token.code == 2 and "ZAPGATE_TOKEN" in no_token.err

    unknown = await cli("logout", "nope", env=env)
    assert unknown.code == 1 and "no session named 'nope' (session_not_found)" in unknown.err
    unknown_send = await cli("send", "nope", ECHO, "hi", env=env)
    assert unknown_send.code == 1 and "session_not_found" in unknown_send.err

    async with connect(gateway.url, token) as client:
        await client.start_session("fresh")
    not_paired = await cli("send", "fresh", ECHO, "hi", env=env)
    assert not_paired.code == 1 and "pair it first" in not_paired.err

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    unreachable = await cli("sessions", "--url", f"ws://127.0.0.1:{closed}/v1/ws", env=env)
    assert unreachable.code == 3 and "cannot reach the gateway" in unreachable.err
    bad_url = await cli("sessions", "--url", "http://127.0.0.1:8787", env=env)
    assert bad_url.code == 2 and "not a WebSocket URL" in bad_url.err
    usage = await cli("send", "main", env=env)
    assert usage.code == 2 and "required" in usage.err


COMMANDS = [
    ["pair"],
    ["send"],
    ["sessions"],
    ["events"],
    ["logout"],
    ["stop"],
    ["delete"],
    ["sim"],
    ["sim", "scan"],
    ["sim", "unlink"],
    ["sim", "network"],
    ["sim", "receive"],
    ["sim", "restrict"],
    ["contact"],
    ["contact", "resolve"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_client_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: zapgate {' '.join(command)}" in text
    assert "exit codes: 0 ok" in text
    if command[0] not in ("sim", "contact", "group") or len(command) > 1:
        assert "--url" in text and "ZAPGATE_TOKEN" in text
