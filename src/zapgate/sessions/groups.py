"""Groups: the ``group.*`` commands and the group events, between clients and the engine.

Commands go to the engine, which asks WhatsApp (nothing about groups is kept by the gateway: WhatsApp is the
source of truth, and whatsmeow caches group metadata itself). What comes back, answers and events alike, goes
through the session's identity map (:mod:`.identities`): every person is named by phone number when known with
the LID beside it, and every (phone, LID) pair WhatsApp tells about members is learned.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import msgspec

from ..engines.base import (
    Engine,
    GroupAction,
    GroupChanges,
    GroupJoinedIn,
    GroupParticipantsIn,
    GroupUpdatedIn,
    MediaFile,
    SendError,
)
from ..errors import (
    CommandUnavailable,
    EngineUnavailable,
    GroupNotFound,
    InvalidRecipient,
    InvalidRequest,
    InviteInvalid,
    NotGroupAdmin,
    NotOnWhatsApp,
    SendFailed,
    SessionNotPaired,
    ZapgateError,
)
from ..jid import Jid, parse_recipient
from ..protocol import (
    GroupCreated,
    GroupInfo,
    GroupMember,
    GroupPerson,
    ParticipantResult,
)
from ..protocol.groups import INVITE_PREFIX
from ..storage import NewEvent, Storage
from .identities import Identities
from .identity import IdentityMap

__all__ = ["Groups", "invite_code"]

_INVITE_CODE = re.compile(r"[A-Za-z0-9]{6,64}")

_ERRORS: dict[str, type[ZapgateError]] = {
    "group_not_found": GroupNotFound,
    "not_group_admin": NotGroupAdmin,
    "invite_invalid": InviteInvalid,
    "not_on_whatsapp": NotOnWhatsApp,
    "unsupported": CommandUnavailable,
}

T = TypeVar("T")


class _Session(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def tenant(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def paired(self) -> bool: ...


def invite_code(link: str) -> str:
    """The code of an invite link (``https://chat.whatsapp.com/CODE``, or the code itself)."""
    code = link.strip().removeprefix(INVITE_PREFIX).removeprefix("chat.whatsapp.com/").strip("/")
    if not _INVITE_CODE.fullmatch(code):
        raise InvalidRequest(f"{link!r} is not a WhatsApp invite link (https://chat.whatsapp.com/CODE) or code")
    return code


class Groups:
    def __init__(
        self,
        engine: Engine,
        storage: Storage,
        identities: Identities,
        lookup: Callable[[str, str], Any],
        event: Callable[[Any, str, Any], NewEvent],
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._identities = identities
        self._lookup = lookup
        self._event = event

    # -- commands

    async def create(self, tenant: str, name: str, subject: str, participants: Sequence[str]) -> GroupCreated:
        session = self._paired(tenant, name)
        people = await self._people(session, participants)
        info, results = await self._call(self._engine.group_create(session.id, subject, people))
        identities = await self._learn_info(session, info)
        return GroupCreated(group=_named_info(info, identities), participants=await self._results(session, results))

    async def joined(self, tenant: str, name: str) -> list[GroupInfo]:
        session = self._paired(tenant, name)
        found = await self._call(self._engine.groups(session.id))
        identities = await self._identities.map(session.id)
        return [msgspec.structs.replace(_named_info(info, identities), participants=None) for info in found]

    async def info(self, tenant: str, name: str, group: str) -> GroupInfo:
        session = self._paired(tenant, name)
        info = await self._call(self._engine.group_info(session.id, _group(group)))
        return _named_info(info, await self._learn_info(session, info))

    async def participants(
        self, tenant: str, name: str, group: str, action: GroupAction, participants: Sequence[str]
    ) -> list[ParticipantResult]:
        session = self._paired(tenant, name)
        people = await self._people(session, participants)
        results = await self._call(self._engine.group_participants(session.id, _group(group), action, people))
        return await self._results(session, results)

    async def invite_link(self, tenant: str, name: str, group: str, reset: bool) -> str:
        session = self._paired(tenant, name)
        return await self._call(self._engine.group_invite_link(session.id, _group(group), reset))

    async def join(self, tenant: str, name: str, link: str) -> GroupInfo:
        session = self._paired(tenant, name)
        info = await self._call(self._engine.group_join(session.id, invite_code(link)))
        return _named_info(info, await self._learn_info(session, info))

    async def leave(self, tenant: str, name: str, group: str) -> None:
        session = self._paired(tenant, name)
        await self._call(self._engine.group_leave(session.id, _group(group)))

    async def update(
        self, tenant: str, name: str, group: str, changes: GroupChanges, picture: MediaFile | None
    ) -> GroupInfo:
        session = self._paired(tenant, name)
        info = await self._call(self._engine.group_update(session.id, _group(group), changes, picture))
        return _named_info(info, await self._learn_info(session, info))

    # -- events from the engine

    async def received(self, session: _Session, event: GroupJoinedIn | GroupUpdatedIn | GroupParticipantsIn) -> None:
        """Store the event for clients, every person named both ways."""
        name: str
        data: msgspec.Struct
        match event:
            case GroupJoinedIn():
                identities = await self._learn_info(session, event.data.group)
                by, by_lid = _both(identities, event.data.by, event.data.by_lid)
                name, data = (
                    "group.joined",
                    msgspec.structs.replace(
                        event.data, group=_named_info(event.data.group, identities), by=by, by_lid=by_lid
                    ),
                )
            case GroupUpdatedIn():
                identities = await self._identities.learn(session.id, [(event.data.by, event.data.by_lid)])
                by, by_lid = _both(identities, event.data.by, event.data.by_lid)
                name, data = "group.updated", msgspec.structs.replace(event.data, by=by, by_lid=by_lid)
            case GroupParticipantsIn():
                pairs = [(p.jid, p.lid) for p in event.data.participants] + [(event.data.by, event.data.by_lid)]
                identities = await self._identities.learn(session.id, pairs)
                by, by_lid = _both(identities, event.data.by, event.data.by_lid)
                people = [GroupPerson(**_person(identities, p.jid, p.lid)) for p in event.data.participants]
                name, data = (
                    "group.participants",
                    msgspec.structs.replace(event.data, participants=people, by=by, by_lid=by_lid),
                )
        await self._storage.append_events([self._event(session, name, data)])

    # -- helpers

    def _paired(self, tenant: str, name: str) -> _Session:
        session: _Session = self._lookup(tenant, name)
        if not session.paired:
            raise SessionNotPaired(f"session {name!r} is not linked to a phone yet: pair it first")
        return session

    async def _people(self, session: _Session, raw: Sequence[str]) -> list[Jid]:
        people: dict[Jid, None] = {}
        for text in raw:
            jid = parse_recipient(text)
            if not jid.is_user and jid.server != "lid":
                raise InvalidRecipient(f"{text!r} is not a person: give phone numbers, JIDs or LIDs")
            people[await self._identities.address(session.id, jid)] = None
        return list(people)

    async def _call(self, pending: Awaitable[T]) -> T:
        try:
            return await pending
        except SendError as exc:
            if exc.retryable:
                raise EngineUnavailable(f"{exc.message}; retry once the session is connected") from None
            raise _ERRORS.get(exc.code, SendFailed)(exc.message) from None

    async def _learn_info(self, session: _Session, info: GroupInfo) -> IdentityMap:
        pairs = [(m.jid, m.lid) for m in info.participants or ()] + [(info.owner, info.owner_lid)]
        return await self._identities.learn(session.id, pairs)

    async def _results(self, session: _Session, results: list[ParticipantResult]) -> list[ParticipantResult]:
        identities = await self._identities.learn(session.id, [(r.jid, r.lid) for r in results])
        return [msgspec.structs.replace(r, **_person(identities, r.jid, r.lid)) for r in results]


def _group(raw: str) -> Jid:
    jid = parse_recipient(raw)
    if not jid.is_group:
        raise InvalidRecipient(f"{raw!r} is not a group JID (…@g.us)")
    return jid


def _person(identities: IdentityMap, jid: str, lid: str | None) -> dict[str, Any]:
    both = identities.both(lid or jid)
    return {"jid": both.preferred or jid, "lid": both.lid or lid}


def _both(identities: IdentityMap, jid: str | None, lid: str | None) -> tuple[str | None, str | None]:
    if not jid and not lid:
        return None, None
    person = _person(identities, jid or lid or "", lid)
    return person["jid"], person["lid"]


def _named_info(info: GroupInfo, identities: IdentityMap) -> GroupInfo:
    owner, owner_lid = _both(identities, info.owner, info.owner_lid)
    members = None
    if info.participants is not None:
        members = [
            GroupMember(admin=m.admin, superadmin=m.superadmin, **_person(identities, m.jid, m.lid))
            for m in info.participants
        ]
    return msgspec.structs.replace(info, owner=owner, owner_lid=owner_lid, participants=members)
