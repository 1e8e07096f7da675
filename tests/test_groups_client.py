"""Groups and contacts through the Python SDK (typed methods and events) and the ``zapgate group`` / ``zapgate
contact`` commands, against a simulator gateway on a real socket."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zapgate.cli import build_parser
from zapgate.client import GroupJoined, GroupParticipantsChanged, GroupUpdated, connect
from zapgate.errors import NotGroupAdmin

from .media_kit import png
from .support import RunningGateway
from .test_cli import cli, cli_env
from .test_client import next_event, pair

ALICE, BOB, CAROL = "+55 11 99999-0001", "+55 21 98888-0002", "+55 31 97777-0003"
BOB_JID = "5521988880002@s.whatsapp.net"
CAROL_JID = "5531977770003@s.whatsapp.net"


async def test_the_sdk_manages_a_group_with_typed_results_and_events(gateway: RunningGateway) -> None:
    token = await gateway.token()
    async with connect(gateway.url, token) as client:
        for session, phone in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
            await pair(client, session, phone)
        created = await client.create_group("alice", "SDK", [BOB])
        group = created.group.group
        assert [(r.jid, r.status) for r in created.participants] == [(BOB_JID, "ok")]
        joined = await next_event(client, GroupJoined, lambda e: e.session == "bob")
        assert joined.data.reason == "added" and joined.data.group.group == group
        assert [g.group for g in await client.groups("bob")] == [group]
        info = await client.group_info("bob", group)
        assert {m.jid: m.superadmin for m in info.participants or []}[BOB_JID] is False

        results = await client.group_participants("alice", group, "add", [CAROL])
        assert results[0].status == "ok"
        changed = await next_event(client, GroupParticipantsChanged, lambda e: e.session == "bob")
        assert changed.data.action == "add" and changed.data.participants[0].jid == CAROL_JID
        with pytest.raises(NotGroupAdmin):
            await client.group_participants("carol", group, "remove", [BOB])

        link = await client.group_invite_link("alice", group)
        await client.leave_group("carol", group)
        assert (await client.join_group("carol", link)).group == group
        updated = await client.update_group("alice", group, subject="SDK 2", announce=True)
        assert updated.subject == "SDK 2" and updated.announce
        seen = await next_event(client, GroupUpdated, lambda e: e.session == "bob")
        assert seen.data.subject == "SDK 2"

        identity = await client.resolve_contact("alice", BOB)
        assert identity.jid == BOB_JID and identity.lid is not None


async def test_the_group_commands_of_the_cli(gateway: RunningGateway, tmp_path: Path) -> None:
    token = await gateway.token()
    env = cli_env(gateway.url, token)
    async with connect(gateway.url, token) as client:
        for session, phone in (("alice", ALICE), ("bob", BOB), ("carol", CAROL)):
            await pair(client, session, phone)
    created = await cli("group", "create", "alice", "CLI", BOB, env=env)
    assert created.code == 0, created.err
    group = json.loads(created.out)["group"]["group"]
    listed = await cli("group", "list", "bob", env=env)
    assert listed.code == 0 and listed.out.split() == [group, "2", "CLI"]
    info = json.loads((await cli("group", "info", "bob", group, env=env)).out)
    assert info["size"] == 2
    added = await cli("group", "add", "alice", group, CAROL, BOB, env=env)
    assert added.code == 1  # Bob was already a member
    assert [r["status"] for r in json.loads(added.out)] == ["ok", "already_member"]
    assert (await cli("group", "promote", "alice", group, BOB, env=env)).code == 0
    assert (await cli("group", "demote", "alice", group, BOB, env=env)).code == 0
    assert (await cli("group", "remove", "alice", group, CAROL, env=env)).code == 0
    link = (await cli("group", "invite", "alice", group, "--reset", env=env)).out.strip()
    assert link.startswith("https://chat.whatsapp.com/")
    joined = await cli("group", "join", "carol", link, env=env)
    assert joined.code == 0 and json.loads(joined.out)["size"] == 3
    picture = tmp_path / "picture.png"
    picture.write_bytes(png())
    updated = await cli(
        "group", "update", "alice", group, "--subject", "CLI 2", "--picture", str(picture), "--locked", "on", env=env
    )
    assert updated.code == 0, updated.err
    assert json.loads(updated.out)["subject"] == "CLI 2" and json.loads(updated.out)["locked"] is True
    refused = await cli("group", "update", "carol", group, "--subject", "mine", env=env)
    assert refused.code == 1 and "not_group_admin" in refused.err
    left = await cli("group", "leave", "carol", group, env=env)
    assert left.code == 0 and left.out.strip() == f"left {group}"


@pytest.mark.parametrize(
    "command",
    [
        ["group"],
        *([["group", a] for a in ("create", "list", "info", "add", "remove", "promote", "demote")]),
        *([["group", a] for a in ("invite", "join", "leave", "update")]),
        ["contact", "resolve"],
    ],
    ids=" ".join,
)
def test_every_group_command_has_help(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args([*command, "--help"])
    assert exited.value.code == 0
    text = capsys.readouterr().out
    assert f"usage: zapgate {' '.join(command)}" in text
    if len(command) > 1:
        assert "--url" in text and "ZAPGATE_TOKEN" in text
