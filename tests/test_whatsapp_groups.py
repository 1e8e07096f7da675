"""The real engine's groups, offline: neonize's own protobufs (``GroupInfo``, ``GroupParticipant``,
``JoinedGroup``, ``GroupInfoEvent``) translated to zapgate's structs with both id forms, per-person results from
WhatsApp's error codes, whatsmeow's error texts as stable codes, and the group calls going through neonize's real
client code to a fake Go library (never WhatsApp)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from zapgate.engines.base import GroupChanges, GroupJoinedIn, GroupParticipantsIn, GroupUpdatedIn, IdentityIn
from zapgate.engines.base import IdentityPair as Pair
from zapgate.engines.whatsapp import groups, nz, policy
from zapgate.engines.whatsapp.ipc import GroupRequest
from zapgate.engines.whatsapp.session import SendFailure, SessionRunner
from zapgate.engines.whatsapp.store import DeviceRef
from zapgate.protocol import GroupMember, GroupParticipantsData, GroupPerson, GroupUpdatedData, Me, ParticipantResult

from .neonize_kit import (
    FakeGo,
    RecordingHost,
    deliver_like_go,
    group_info_ev,
    group_info_pb,
    jid,
    member_pb,
    neonize_loop,  # noqa: F401 - a fixture
)

N = nz.N
GROUP = "120363000000000000@g.us"
ALICE_PN, ALICE_LID = jid("5511999990000"), jid("123456789012345", "lid")
BOB_PN, BOB_LID = jid("5521988880002"), jid("998877665544", "lid")
DEVICE = DeviceRef(engine="whatsapp", jid="5511911112222:7@s.whatsapp.net", store="whatsapp/ses_s.db")


def test_group_info_names_every_member_both_ways_with_roles() -> None:
    info = group_info_pb(
        GROUP,
        "Equipe",
        [
            member_pb(ALICE_LID, phone=ALICE_PN, admin=True, superadmin=True),  # a LID-addressed group
            member_pb(BOB_PN, lid=BOB_LID),
            member_pb(jid("555666777888", "lid")),  # hides their number
        ],
        OwnerJID=ALICE_LID,
        OwnerPN=ALICE_PN,
        GroupTopic=N.GroupTopic(
            Topic="regras", TopicID="t1", TopicSetAt=0, TopicSetBy=nz.EMPTY_JID, TopicDeleted=False
        ),
        GroupAnnounce=N.GroupAnnounce(IsAnnounce=True, AnnounceVersionID=""),
        GroupEphemeral=N.GroupEphemeral(IsEphemeral=True, DisappearingTimer=86400),
        GroupCreated=1_795_899_904,  # a float32 on the wire: this one is exact
    )
    got = groups.group_info(N.GroupInfo.FromString(info.SerializeToString()))
    assert (got.group, got.subject, got.size, got.description) == (GROUP, "Equipe", 3, "regras")
    assert (got.owner, got.owner_lid, got.created) == (
        "5511999990000@s.whatsapp.net",
        "123456789012345@lid",
        1_795_899_904,
    )
    assert (got.announce, got.locked, got.ephemeral) == (True, False, 86400)
    assert got.participants == [
        GroupMember(jid="5511999990000@s.whatsapp.net", lid="123456789012345@lid", admin=True, superadmin=True),
        GroupMember(jid="5521988880002@s.whatsapp.net", lid="998877665544@lid", admin=False, superadmin=False),
        GroupMember(jid="555666777888@lid", lid="555666777888@lid", admin=False, superadmin=False),
    ]
    assert groups.member_pairs(got) == [
        Pair(phone="5511999990000@s.whatsapp.net", lid="123456789012345@lid"),
        Pair(phone="5521988880002@s.whatsapp.net", lid="998877665544@lid"),
        Pair(phone="5511999990000@s.whatsapp.net", lid="123456789012345@lid"),
    ]


@pytest.mark.parametrize(
    ("action", "code", "status"),
    [
        ("add", 0, "ok"),
        ("add", 403, "not_authorized"),
        ("add", 409, "already_member"),
        ("add", 404, "not_on_whatsapp"),
        ("remove", 404, "not_member"),
        ("add", 500, "full"),
        ("promote", 406, "failed"),
    ],
)
def test_participant_results_follow_whatsapps_codes(action: Any, code: int, status: str) -> None:
    answered = [N.GroupParticipant(JID=BOB_PN, LID=BOB_LID, PhoneNumber=nz.EMPTY_JID, Error=code)]
    results = groups.participant_results(
        action, ["5521988880002@s.whatsapp.net", "5599999999999@s.whatsapp.net"], answered
    )
    assert results == [
        ParticipantResult(jid="5521988880002@s.whatsapp.net", lid="998877665544@lid", status=status, code=code or None),
        ParticipantResult(jid="5599999999999@s.whatsapp.net", status="failed"),  # WhatsApp said nothing of them
    ]


def test_a_group_info_event_becomes_settings_and_member_events() -> None:
    event = group_info_ev(
        GROUP,
        Sender=ALICE_PN,
        Name=N.GroupName(Name="Novo nome", NameSetAt=0, NameSetBy=ALICE_PN),
        Locked=N.GroupLocked(isLocked=True),
        NewInviteLink="https://chat.whatsapp.com/x",
        Join=[BOB_PN],
        Leave=[jid("5531977770003")],
        Promote=[BOB_LID],
    )
    got = groups.group_events(N.GroupInfoEvent.FromString(event.SerializeToString()))
    alice = "5511999990000@s.whatsapp.net"
    assert got == [
        GroupUpdatedData(group=GROUP, by=alice, subject="Novo nome", locked=True, invite_reset=True),
        GroupParticipantsData(
            group=GROUP, action="add", participants=[GroupPerson(jid="5521988880002@s.whatsapp.net")], by=alice
        ),
        GroupParticipantsData(
            group=GROUP, action="remove", participants=[GroupPerson(jid="5531977770003@s.whatsapp.net")], by=alice
        ),
        GroupParticipantsData(
            group=GROUP,
            action="promote",
            participants=[GroupPerson(jid="998877665544@lid", lid="998877665544@lid")],
            by=alice,
        ),
    ]
    left = groups.group_events(group_info_ev(GROUP, Sender=BOB_PN, Leave=[BOB_PN]))
    joined = groups.group_events(group_info_ev(GROUP, Sender=BOB_PN, Join=[BOB_PN], JoinReason="invite"))
    assert [(e.action, e.by) for e in left + joined if isinstance(e, GroupParticipantsData)] == [
        ("leave", None),
        ("join", None),
    ]


def test_joined_group_names_who_added_the_account() -> None:
    event = N.JoinedGroup(
        Reason="", Type="", CreateKey="", GroupInfo=group_info_pb(GROUP, "Equipe"), Sender=ALICE_LID, SenderPN=ALICE_PN
    )
    got = groups.joined_group(N.JoinedGroup.FromString(event.SerializeToString()))
    assert (got.reason, got.by, got.by_lid, got.group.subject) == (
        "added",
        "5511999990000@s.whatsapp.net",
        "123456789012345@lid",
        "Equipe",
    )
    invited = N.JoinedGroup(Reason="invite", Type="", CreateKey="", GroupInfo=group_info_pb(GROUP, "Equipe"))
    assert (groups.joined_group(invited).reason, groups.joined_group(invited).by) == ("invited", None)


@pytest.mark.parametrize(
    ("text", "code", "retryable"),
    [
        ("you're not participating in that group", "group_not_found", False),
        ("info query returned status 404: item-not-found", "group_not_found", False),
        ("that group invite link has been revoked", "invite_invalid", False),
        ("info query returned status 403: forbidden", "not_group_admin", False),
        ("info query timed out", "group_unavailable", True),
        ("websocket not connected", "not_connected", True),
        ("something else entirely", "group_failed", False),
    ],
)
def test_whatsmeow_group_errors_become_stable_codes(text: str, code: str, retryable: bool) -> None:
    assert policy.group_call_error(text) == (code, retryable)


def online(tmp_path: Path, go: FakeGo) -> SessionRunner:
    runner = SessionRunner(RecordingHost(tmp_path, go=go), "ses_s", DEVICE)
    runner._client()
    runner.online = True
    runner.me = Me(phone="5511911112222", jid=DEVICE.jid, lid="99887766@lid")
    return runner


def call(runner: SessionRunner, op: str, **fields: Any) -> Any:
    return runner.group(GroupRequest(id=0, session_id="ses_s", op=op, **fields))


@pytest.mark.usefixtures("neonize_loop")
async def test_group_calls_go_through_neonize(tmp_path: Path) -> None:
    go = FakeGo()
    go.add_errors = {"5531977770003@s.whatsapp.net": 403}
    runner = online(tmp_path, go)
    info, results = await call(
        runner,
        "create",
        subject="Equipe",
        participants=["5521988880002@s.whatsapp.net", "5531977770003@s.whatsapp.net"],
    )
    assert go.named("CreateGroup") == [("Equipe", ["5521988880002@s.whatsapp.net", "5531977770003@s.whatsapp.net"])]
    assert info.group == "120363000000000777@g.us" and info.subject == "Equipe"
    assert [(r.jid, r.status) for r in results] == [
        ("5521988880002@s.whatsapp.net", "ok"),
        ("5531977770003@s.whatsapp.net", "not_authorized"),
    ]
    results = await call(
        runner, "participants", group=info.group, action="promote", participants=["5521988880002@s.whatsapp.net"]
    )
    assert go.named("UpdateGroupParticipants") == [(info.group, ["5521988880002@s.whatsapp.net"], "promote")]
    assert results[0].status == "ok"
    assert await call(runner, "invite_link", group=info.group) == "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"
    assert (
        await call(runner, "invite_link", group=info.group, reset=True)
        != "https://chat.whatsapp.com/AbCdEfGhIjKlMnOpQrStUv"
    )
    with pytest.raises(SendFailure) as refused:
        await call(runner, "join", code="Unknown123")
    assert (refused.value.code, refused.value.retryable) == ("invite_invalid", False)
    go.invites["Known12345"] = info.group
    assert (await call(runner, "join", code="Known12345")).group == info.group
    await call(runner, "leave", group=info.group)
    assert go.named("LeaveGroup") == [info.group]
    with pytest.raises(SendFailure) as gone:
        await call(runner, "info", group="120363999999999999@g.us")
    assert (gone.value.code, gone.value.retryable) == ("group_not_found", False)

    runner.online = False  # offline: no call reaches neonize (several abort the process on a client Go lost)
    calls = len(go.calls)
    with pytest.raises(SendFailure) as offline:
        await call(runner, "update", group=info.group, changes=GroupChanges(subject="x"))
    assert (offline.value.code, offline.value.retryable, len(go.calls)) == ("not_connected", True, calls)


@pytest.mark.usefixtures("neonize_loop")
async def test_group_events_reach_the_gateway_with_the_pairs_they_teach(tmp_path: Path) -> None:
    runner = online(tmp_path, FakeGo())
    events = runner.host.events  # type: ignore[attr-defined]
    joined = N.JoinedGroup(
        Reason="",
        Type="",
        CreateKey="",
        GroupInfo=group_info_pb(GROUP, "Equipe", [member_pb(BOB_PN, lid=BOB_LID)]),
        Sender=ALICE_LID,
        SenderPN=ALICE_PN,
    )
    deliver_like_go(runner.client, joined)
    deliver_like_go(runner.client, group_info_ev(GROUP, Sender=ALICE_PN, Promote=[BOB_PN]))
    async with asyncio.timeout(10):
        while len(events) < 3:
            await asyncio.sleep(0.001)
    assert events[0] == IdentityIn(pairs=[Pair(phone="5521988880002@s.whatsapp.net", lid="998877665544@lid")])
    assert isinstance(events[1], GroupJoinedIn) and events[1].data.by == "5511999990000@s.whatsapp.net"
    assert isinstance(events[2], GroupParticipantsIn) and events[2].data.action == "promote"
    assert not any(isinstance(e, GroupUpdatedIn) for e in events)
    assert runner.groups.cache.get(GROUP) is None  # a change: the cached members are asked for again
