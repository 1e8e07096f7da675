"""Chats, history and contacts through the Python SDK (typed results and events) and the ``zapgate`` CLI (real
subprocesses), against a real gateway on 127.0.0.1 running the simulator."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zapgate.cli import build_parser
from zapgate.client import ChatUpdated, HistorySynced, MessageReceived, connect
from zapgate.config import Settings

from .conftest import fast_settings
from .support import RunningGateway
from .test_cli import cli, cli_env
from .test_client import next_event, pair

ALICE = "+55 11 99999-0001"
BOB = "+55 21 98888-0002"
BOB_JID = "5521988880002@s.whatsapp.net"
OLD_NUMBER = "551188887777"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data", sim_contacts=(OLD_NUMBER,), sim_history_messages=30)


async def test_the_sdk(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with connect(gateway.url, token) as client:
        await pair(client, "alice", ALICE)
        synced = await next_event(client, HistorySynced, lambda e: e.session == "alice" and e.data.final)
        assert synced.data.total_messages == 30
        await pair(client, "bob", BOB)
        sent = await client.send_text("bob", ALICE, "hello")
        await next_event(
            client, MessageReceived, lambda e: e.session == "alice" and e.data.message_id == sent.message_id
        )

        page = await client.chats("alice", limit=1)
        assert page.more and page.chats[0].chat == BOB_JID and page.chats[0].unread == 1
        history = await client.history("alice", BOB)
        assert [m.message_id for m in history.messages] == [sent.message_id] and history.messages[0].unread
        assert await client.read_chat("alice", BOB) == 1
        archived = await client.archive_chat("alice", BOB)
        assert archived.archived
        updated = await next_event(client, ChatUpdated, lambda e: e.session == "alice")
        assert updated.data.chat == BOB_JID and updated.data.archived
        assert (await client.pin_chat("alice", BOB)).pinned
        assert (await client.mute_chat("alice", BOB, until=4_000_000_000)).muted_until == 4_000_000_000
        assert not (await client.unmute_chat("alice", BOB)).muted
        assert not (await client.pin_chat("alice", BOB, pinned=False)).pinned
        assert not (await client.archive_chat("alice", BOB, archived=False)).archived

        [old, bob] = await client.check_numbers("alice", ["+55 11 98888-7777", BOB])
        assert old.jid == f"{OLD_NUMBER}@s.whatsapp.net" and bob.jid == BOB_JID
        info = await client.contact_info("alice", BOB)
        assert info.picture is not None
        assert (await client.download(info.picture.media_id))[:4] == b"\x89PNG"
        assert (await client.block("alice", BOB)).blocked
        assert await client.blocklist("alice") == [BOB_JID]
        assert not (await client.block("alice", BOB, blocked=False)).blocked
        await client.sim_profile(BOB, business_name="Bob's Bakery", hide_profile=True)
        hidden = await client.contact_info("alice", BOB)
        assert hidden.business_name == "Bob's Bakery" and hidden.picture is None and hidden.about is None


async def test_the_cli(gateway: RunningGateway, tmp_path: Path) -> None:
    token = await gateway.token()
    env = cli_env(gateway.url, token)
    async with connect(gateway.url, token) as client:
        await pair(client, "alice", ALICE)
        await next_event(client, HistorySynced, lambda e: e.session == "alice" and e.data.final)
        await pair(client, "bob", BOB)
        sent = await client.send_text("bob", ALICE, "bom dia")
        await next_event(
            client, MessageReceived, lambda e: e.session == "alice" and e.data.message_id == sent.message_id
        )

    listing = await cli("chat", "list", "alice", env=env)
    assert listing.code == 0, listing.err
    first = listing.out.splitlines()[0].split("\t")
    assert first[0] == BOB_JID and first[2] == "1 unread" and first[-1] == "bom dia"
    as_json = json.loads((await cli("chat", "list", "alice", "--limit", "1", "--json", env=env)).out)
    assert as_json["more"] is True and as_json["chats"][0]["chat"] == BOB_JID
    history = await cli("history", "alice", BOB, env=env)
    assert history.code == 0 and history.out.strip().endswith(f"{sent.message_id}\t+5521988880002: bom dia")
    lines = (await cli("history", "alice", "+1 555 000 0000", "--limit", "5", "--json", env=env)).out.splitlines()
    assert len(lines) == 5 and all(json.loads(line)["history"] for line in lines)
    read = await cli("chat", "read", "alice", BOB, env=env)
    assert read.out.strip() == f"{BOB}: 1 message(s) read"
    assert (await cli("chat", "archive", "alice", BOB, env=env)).out.strip() == f"{BOB_JID}: archived"
    assert (await cli("chat", "archive", "alice", BOB, "--undo", env=env)).out.strip() == f"{BOB_JID}: not archived"
    assert (await cli("chat", "pin", "alice", BOB, env=env)).out.strip() == f"{BOB_JID}: pinned"
    assert (await cli("chat", "mute", "alice", BOB, env=env)).out.strip() == f"{BOB_JID}: muted"
    muted_for = await cli("chat", "mute", "alice", BOB, "--for", "3600", env=env)
    assert muted_for.out.startswith(f"{BOB_JID}: muted until ")
    assert (await cli("chat", "mute", "alice", BOB, "--undo", env=env)).out.strip() == f"{BOB_JID}: not muted"

    check = await cli("contact", "check", "alice", "+55 11 98888-7777", "+44 20 7946 0000", env=env)
    assert check.code == 0, check.err
    old, nobody = check.out.splitlines()
    assert old.split("\t")[:2] == ["+55 11 98888-7777", f"{OLD_NUMBER}@s.whatsapp.net"]
    assert nobody == "+44 20 7946 0000\tnot on WhatsApp"
    echo = await cli("contact", "check", "alice", "+1 555 000 0000", env=env)
    assert echo.out.strip().endswith("business: Zapgate Echo")
    picture = tmp_path / "bob.png"
    info = await cli("contact", "info", "alice", BOB, "--picture", str(picture), env=env)
    assert info.code == 0, info.err
    assert json.loads(info.out)["jid"] == BOB_JID and picture.read_bytes()[:4] == b"\x89PNG"
    assert (await cli("contact", "block", "alice", BOB, env=env)).out.strip() == f"{BOB_JID}: blocked"
    assert (await cli("contact", "blocklist", "alice", env=env)).out.strip() == BOB_JID
    assert (await cli("contact", "unblock", "alice", BOB, env=env)).out.strip() == f"{BOB_JID}: not blocked"

    too_many = await cli("contact", "check", "alice", *([BOB] * 101), env=env)
    assert too_many.code == 1 and "invalid_request" in too_many.err
    missing = await cli("chat", "list", "ghost", env=env)
    assert missing.code == 1 and "session_not_found" in missing.err


COMMANDS = [
    ["chat", "list"],
    ["chat", "read"],
    ["chat", "archive"],
    ["chat", "pin"],
    ["chat", "mute"],
    ["history"],
    ["contact", "check"],
    ["contact", "info"],
    ["contact", "block"],
    ["contact", "unblock"],
    ["contact", "blocklist"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: zapgate {' '.join(command)}" in text
    assert "exit codes: 0 ok" in text and "--url" in text and "ZAPGATE_TOKEN" in text
