"""Groups through whatsmeow (runs in a worker): the ``group.*`` calls and the group events, as zapgate's structs.

- **Every call needs a connected client** (:meth:`require_online`): several of neonize's calls abort the whole
  process when the Go client is not registered (``docs/engines.md``; the shared neonize notes list them), and a
  group call on a registered but disconnected client only times out. Offline, a call fails at once with
  ``not_connected`` (retryable).
- **Both id forms.** WhatsApp names members by phone-number JID or by LID depending on the group's addressing
  mode; ``GroupParticipant`` carries ``JID``, ``LID`` and ``PhoneNumber``. Each person comes out as the phone
  JID when one is known, with the LID beside it, and every pair is reported to the gateway's identity map.
- **Per-person results.** ``create_group`` and ``update_group_participants`` answer each person with an error
  code (0: done): 403 their privacy refuses the add, 409 already a member, 404 not on WhatsApp (add) or not a
  member (others), 500 the group is full.
- **A cache of group members** (for mentioning ``all``) is refreshed when WhatsApp reports a change
  (``GroupInfoEv``) and after every change made here, and expires after :data:`GROUP_CACHE_S` anyway.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from ...jid import LID_SERVER, USER_SERVER
from ...protocol import (
    GroupInfo,
    GroupJoinedData,
    GroupMember,
    GroupParticipantsData,
    GroupPerson,
    GroupUpdatedData,
    ParticipantResult,
)
from ...protocol.groups import INVITE_PREFIX
from ..base import GroupAction, GroupChanges, IdentityPair
from . import nz, policy, translate
from .policy import SendFailure

__all__ = [
    "GROUP_CACHE_S",
    "GroupCache",
    "SessionGroups",
    "group_events",
    "group_info",
    "joined_group",
    "participant_results",
]

GROUP_CACHE_S = 300.0
"""Cached members of a group are asked for again after this long, even without a change event."""

_STATUS = {0: "ok", 403: "not_authorized", 409: "already_member", 500: "full"}
_JOIN_REASONS = {"invite": "invited", "create": "created"}


class _Session(Protocol):
    session_id: str

    def require_online(self) -> Any: ...

    def learned(self, pairs: list[IdentityPair]) -> None: ...


def _present(jid: Any) -> bool:
    return bool(jid is not None and jid.User and not jid.IsEmpty)


def _person(*jids: Any) -> tuple[str, str | None]:
    """(main address, LID) of a person from the JIDs WhatsApp gave (any order, any may be empty)."""
    phone = lid = ""
    for jid in jids:
        if not _present(jid):
            continue
        if jid.Server == LID_SERVER and not lid:
            lid = translate.jid_string(jid)
        elif jid.Server == USER_SERVER and not phone:
            phone = translate.jid_string(jid)
    return phone or lid, lid or None


def _pairs(people: list[tuple[str, str | None]]) -> list[IdentityPair]:
    return [IdentityPair(phone=main, lid=lid) for main, lid in people if lid and main.endswith("@" + USER_SERVER)]


def group_info(info: Any) -> GroupInfo:
    """A ``GroupInfo`` protobuf as zapgate's :class:`GroupInfo`."""
    members = []
    for participant in info.Participants:
        main, lid = _person(participant.JID, participant.PhoneNumber, participant.LID)
        if main:
            members.append(
                GroupMember(
                    jid=main,
                    lid=lid,
                    admin=bool(participant.IsAdmin or participant.IsSuperAdmin),
                    superadmin=bool(participant.IsSuperAdmin),
                )
            )
    owner, owner_lid = _person(info.OwnerJID, info.OwnerPN)
    ephemeral = info.GroupEphemeral
    created = int(info.GroupCreated)
    return GroupInfo(
        group=translate.jid_string(info.JID),
        subject=info.GroupName.Name,
        size=len(members),
        description=info.GroupTopic.Topic or None,
        owner=owner or None,
        owner_lid=owner_lid,
        created=policy.to_seconds(created) if created > 0 else None,
        announce=bool(info.GroupAnnounce.IsAnnounce),
        locked=bool(info.GroupLocked.isLocked),
        ephemeral=int(ephemeral.DisappearingTimer) if ephemeral.IsEphemeral else 0,
        participants=members,
    )


def member_pairs(info: GroupInfo) -> list[IdentityPair]:
    people = [(m.jid, m.lid) for m in info.participants or ()] + [(info.owner or "", info.owner_lid)]
    return _pairs(people)


def participant_results(action: GroupAction, asked: list[str], answered: Any) -> list[ParticipantResult]:
    """One result per person ``asked`` (JID strings), in order, from whatsmeow's per-participant answers."""
    by_address: dict[str, ParticipantResult] = {}
    for participant in answered:
        main, lid = _person(participant.JID, participant.PhoneNumber, participant.LID)
        code = int(participant.Error)
        status = _STATUS.get(code)
        if code == 404:
            status = "not_on_whatsapp" if action == "add" else "not_member"
        result = ParticipantResult(jid=main, lid=lid, status=status or "failed", code=code or None)  # type: ignore[arg-type]
        for address in (main, lid):
            if address:
                by_address[address] = result
    missing = "WhatsApp did not answer for this person"
    return [
        by_address.get(jid) or ParticipantResult(jid=jid, status="failed", code=None) if jid else _failed(missing)
        for jid in asked
    ]


def _failed(why: str) -> ParticipantResult:
    return ParticipantResult(jid=why, status="failed")


def joined_group(event: Any) -> GroupJoinedData:
    """A ``JoinedGroupEv``: the account was added to, created or joined a group."""
    by, by_lid = _person(event.Sender, event.SenderPN)
    reason = _JOIN_REASONS.get(event.Reason, "added")
    return GroupJoinedData(
        group=group_info(event.GroupInfo),
        reason=reason,  # type: ignore[arg-type]
        by=by or None if reason == "added" else None,
        by_lid=by_lid if reason == "added" else None,
    )


def group_events(event: Any) -> list[GroupUpdatedData | GroupParticipantsData]:
    """A ``GroupInfoEv`` as zapgate's events: one ``group.updated`` for settings, one ``group.participants`` per
    kind of member change."""
    group = translate.jid_string(event.JID)
    by, by_lid = _person(event.Sender)
    found: list[GroupUpdatedData | GroupParticipantsData] = []
    changes: dict[str, Any] = {}
    if event.HasField("Name"):
        changes["subject"] = event.Name.Name
    if event.HasField("Topic"):
        changes["description"] = "" if event.Topic.TopicDeleted else event.Topic.Topic
    if event.HasField("Announce"):
        changes["announce"] = bool(event.Announce.IsAnnounce)
    if event.HasField("Locked"):
        changes["locked"] = bool(event.Locked.isLocked)
    if event.HasField("Ephemeral"):
        changes["ephemeral"] = int(event.Ephemeral.DisappearingTimer) if event.Ephemeral.IsEphemeral else 0
    if event.NewInviteLink:
        changes["invite_reset"] = True
    if changes:
        found.append(GroupUpdatedData(group=group, by=by or None, by_lid=by_lid, **changes))
    for field, action in (("Join", "add"), ("Leave", "remove"), ("Promote", "promote"), ("Demote", "demote")):
        people = [GroupPerson(jid=main, lid=lid) for main, lid in (_person(j) for j in getattr(event, field)) if main]
        if not people:
            continue
        if field == "Join" and (event.JoinReason == "invite" or not by):
            action = "join"
        if field == "Leave" and (not by or [p.jid for p in people] in ([by], [by_lid])):
            action = "leave"
        found.append(
            GroupParticipantsData(
                group=group,
                action=action,  # type: ignore[arg-type]
                participants=people,
                by=None if action in ("join", "leave") else by or None,
                by_lid=None if action in ("join", "leave") else by_lid,
            )
        )
    return found


class GroupCache:
    """Members of groups, by group JID, for mentioning ``all`` (see the module documentation)."""

    def __init__(self, ttl: float = GROUP_CACHE_S) -> None:
        self._ttl = ttl
        self._known: dict[str, tuple[float, GroupInfo]] = {}

    def get(self, group: str) -> GroupInfo | None:
        found = self._known.get(group)
        if found is None or time.monotonic() - found[0] > self._ttl:
            return None
        return found[1]

    def put(self, info: GroupInfo) -> None:
        self._known[info.group] = (time.monotonic(), info)

    def forget(self, group: str) -> None:
        self._known.pop(group, None)


class SessionGroups:
    """The group calls of one session (each raises :class:`SendFailure`)."""

    def __init__(self, session: _Session) -> None:
        self._session = session
        self.cache = GroupCache()

    async def create(self, subject: str, participants: list[str]) -> tuple[GroupInfo, list[ParticipantResult]]:
        client = self._session.require_online()
        answer = await self._call(client.create_group(subject, [_jid(p) for p in participants]))
        info = self._seen(group_info(answer))
        return info, participant_results("add", participants, answer.Participants)

    async def joined(self) -> list[GroupInfo]:
        client = self._session.require_online()
        return [self._seen(group_info(info)) for info in await self._call(client.get_joined_groups())]

    async def info(self, group: str) -> GroupInfo:
        """The group as WhatsApp knows it now (also refreshes the cache)."""
        client = self._session.require_online()
        return self._seen(group_info(await self._call(client.get_group_info(_jid(group)))))

    async def members(self, group: str) -> GroupInfo:
        """The group from the cache, else from WhatsApp."""
        return self.cache.get(group) or await self.info(group)

    async def participants(self, group: str, action: GroupAction, people: list[str]) -> list[ParticipantResult]:
        client = self._session.require_online()
        change = getattr(nz.ParticipantChange, action.upper())
        answer = await self._call(client.update_group_participants(_jid(group), [_jid(p) for p in people], change))
        self.cache.forget(group)
        return participant_results(action, people, answer)

    async def invite_link(self, group: str, reset: bool) -> str:
        client = self._session.require_online()
        link = str(await self._call(client.get_group_invite_link(_jid(group), reset)))
        return link if link.startswith("https://") else INVITE_PREFIX + link

    async def join(self, code: str) -> GroupInfo:
        client = self._session.require_online()
        jid = await self._call(client.join_group_with_link(code), invite=True)
        return await self.info(translate.jid_string(jid))

    async def leave(self, group: str) -> None:
        client = self._session.require_online()
        await self._call(client.leave_group(_jid(group)))
        self.cache.forget(group)

    async def update(self, group: str, changes: GroupChanges, picture: bytes | None) -> GroupInfo:
        client = self._session.require_online()
        jid = _jid(group)
        if changes.subject is not None:
            await self._call(client.set_group_name(jid, changes.subject))
        if changes.description is not None:
            current = await self._call(client.get_group_info(jid))
            previous = current.GroupTopic.TopicID
            await self._call(client.set_group_topic(jid, previous, "", changes.description))
        if changes.announce is not None:
            await self._call(client.set_group_announce(jid, changes.announce))
        if changes.locked is not None:
            await self._call(client.set_group_locked(jid, changes.locked))
        if changes.ephemeral is not None:
            # neonize takes the timer in whatsmeow's unit (a Go duration: nanoseconds).
            await self._call(client.set_disappearing_timer(jid, changes.ephemeral * 1_000_000_000))
        if picture is not None:
            await self._call(client.set_group_photo(jid, picture))
        self.cache.forget(group)
        return await self.info(group)

    def _seen(self, info: GroupInfo) -> GroupInfo:
        self.cache.put(info)
        self._session.learned(member_pairs(info))
        return info

    async def _call(self, pending: Any, *, invite: bool = False) -> Any:
        try:
            return await pending
        except SendFailure:
            raise
        except Exception as exc:
            code, retryable = policy.group_call_error(str(exc))
            if invite and code == "group_not_found":
                code = "invite_invalid"
            raise SendFailure(code, str(exc), retryable=retryable) from None


def _jid(text: str) -> Any:
    user, _, server = text.partition("@")
    return nz.build_jid(user, server or USER_SERVER)
