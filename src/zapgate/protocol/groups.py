"""Groups: creating, listing, managing members and settings, invite links, and the events that report changes.

A group is named by its JID (``120363…@g.us``). Every person in a group's data carries both forms when the
session knows them (``jid`` the phone-number JID, else the LID; ``lid`` the LID), like ``from`` and
``from_lid`` in message events. Messages to a group are sent with ``message.send`` to the group's JID.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from .base import Command, Empty, Recipient, Scope, SessionName, command, event
from .content import Media

__all__ = [
    "INVITE_PREFIX",
    "MAX_GROUP_PARTICIPANTS",
    "GroupCreate",
    "GroupCreated",
    "GroupInfo",
    "GroupInfoGet",
    "GroupInvite",
    "GroupInviteLink",
    "GroupJoin",
    "GroupJoinedData",
    "GroupLeave",
    "GroupList",
    "GroupListResult",
    "GroupMember",
    "GroupParticipants",
    "GroupParticipantsData",
    "GroupParticipantsResult",
    "GroupPerson",
    "GroupUpdate",
    "GroupUpdatedData",
    "ParticipantResult",
]

INVITE_PREFIX = "https://chat.whatsapp.com/"
"""How an invite link starts; the code follows."""
MAX_GROUP_PARTICIPANTS = 1024
"""WhatsApp's limit on a group's members; also the most people one ``group.create`` or ``group.participants``
names."""

Subject = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="1-100 characters")]
Description = Annotated[str, msgspec.Meta(max_length=2048, description="at most 2048 characters; '' removes it")]
GroupJid = Annotated[
    str,
    msgspec.Meta(pattern=r"\A[0-9]{5,20}(-[0-9]{5,15})?@g\.us\Z", description="a group JID (120363000000000000@g.us)"),
]
People = Annotated[list[Recipient], msgspec.Meta(max_length=MAX_GROUP_PARTICIPANTS)]
InviteLink = Annotated[
    str,
    msgspec.Meta(
        min_length=8,
        max_length=200,
        description="an invite link (https://chat.whatsapp.com/CODE) or its code",
    ),
]


class GroupPerson(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Someone in a group event: ``jid`` is the phone-number JID when known, else the LID."""

    jid: str
    lid: str | None = None


class GroupMember(msgspec.Struct, kw_only=True):
    """A member of a group, with their role."""

    jid: str
    """The phone-number JID when known, else the LID."""
    lid: str | None
    """The LID, when known (null otherwise)."""
    admin: bool
    """An admin (the creator, the superadmin, is an admin too)."""
    superadmin: bool


class GroupInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    group: str
    """The group's JID."""
    subject: str
    size: int
    """How many members it has."""
    description: str | None = None
    owner: str | None = None
    """Who created it (phone-number JID when known, else LID)."""
    owner_lid: str | None = None
    created: int | None = None
    """Unix seconds."""
    announce: bool = False
    """Only admins may send messages."""
    locked: bool = False
    """Only admins may change the subject, description and picture."""
    ephemeral: int = 0
    """Disappearing messages after this many seconds (0: off)."""
    participants: list[GroupMember] | None = None
    """Every member (left out by ``group.list``)."""


class ParticipantResult(msgspec.Struct, omit_defaults=True, kw_only=True):
    """What WhatsApp did for one person of a ``group.create`` or ``group.participants``."""

    jid: str
    lid: str | None = None
    status: Literal["ok", "not_authorized", "already_member", "not_member", "not_on_whatsapp", "full", "failed"]
    """``ok``, or why not: ``not_authorized`` (their privacy settings refuse adds by you: send them the invite
    link), ``already_member``, ``not_member`` (remove / promote / demote someone not in the group),
    ``not_on_whatsapp``, ``full`` (the group has 1024 members), ``failed`` (anything else; see ``code``)."""
    code: int | None = None
    """WhatsApp's own error code, when it gave one (403, 409, 404, …)."""


class GroupCreated(msgspec.Struct, kw_only=True):
    group: GroupInfo
    participants: list[ParticipantResult]
    """One result per person asked for, in order."""


class GroupListResult(msgspec.Struct, kw_only=True):
    groups: list[GroupInfo]


class GroupParticipantsResult(msgspec.Struct, kw_only=True):
    participants: list[ParticipantResult]
    """One result per person asked for, in order."""


class GroupInviteLink(msgspec.Struct, kw_only=True):
    link: str
    """``https://chat.whatsapp.com/CODE``."""


@command(reply=GroupCreated, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/groups"))
class GroupCreate(Command, tag="group.create"):
    """Create a group with ``subject`` and add ``participants`` (phone numbers, JIDs or LIDs); the session's
    account is its superadmin. People WhatsApp refuses to add are reported one by one (the group is created
    anyway). A ``group.joined`` event follows."""

    session: SessionName
    subject: Subject
    participants: People = []


@command(reply=GroupListResult, scope=Scope.READ, http=("GET", "/v1/sessions/{session}/groups"))
class GroupList(Command, tag="group.list"):
    """The groups the session's account is a member of, as WhatsApp knows them now (without their members)."""

    session: SessionName


@command(reply=GroupInfo, scope=Scope.READ, http=("GET", "/v1/sessions/{session}/groups/{group}"))
class GroupInfoGet(Command, tag="group.info"):
    """A group's settings and members, each with both id forms and admin flags."""

    session: SessionName
    group: GroupJid


@command(
    reply=GroupParticipantsResult,
    scope=Scope.TENANT,
    http=("POST", "/v1/sessions/{session}/groups/{group}/participants"),
)
class GroupParticipants(Command, tag="group.participants"):
    """Add, remove, promote (to admin) or demote ``participants``; needs an admin. One result per person."""

    session: SessionName
    group: GroupJid
    action: Literal["add", "remove", "promote", "demote"]
    participants: Annotated[list[Recipient], msgspec.Meta(min_length=1, max_length=MAX_GROUP_PARTICIPANTS)]


@command(reply=GroupInviteLink, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/groups/{group}/invite"))
class GroupInvite(Command, tag="group.invite_link"):
    """The group's invite link; ``reset`` revokes the current one and answers a new one. Needs an admin."""

    session: SessionName
    group: GroupJid
    reset: bool = False


@command(reply=GroupInfo, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/groups/join"))
class GroupJoin(Command, tag="group.join"):
    """Join a group by its invite link (or the link's code); answers the group. A ``group.joined`` event
    follows."""

    session: SessionName
    link: InviteLink


@command(reply=Empty, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/groups/{group}/leave"))
class GroupLeave(Command, tag="group.leave"):
    """Leave the group (the other members get ``group.participants`` with ``leave``)."""

    session: SessionName
    group: GroupJid


@command(reply=GroupInfo, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/groups/{group}/update"))
class GroupUpdate(Command, tag="group.update"):
    """Change the group's subject, description, picture (an image: ``{"id"}`` of an upload, ``{"url"}`` or
    ``{"data"}``), who may send (``announce``), who may edit it (``locked``) or disappearing messages
    (``ephemeral`` seconds: 0 off, 86400, 604800 or 7776000). Only what is given changes; answers the group."""

    session: SessionName
    group: GroupJid
    subject: Subject | None = None
    description: Description | None = None
    picture: Media | None = None
    announce: bool | None = None
    locked: bool | None = None
    ephemeral: Literal[0, 86400, 604800, 7776000] | None = None


class GroupJoinedData(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The session's account is in a new group: it created it, joined by link, or was added."""

    group: GroupInfo
    reason: Literal["created", "invited", "added"]
    """``invited``: joined by invite link."""
    by: str | None = None
    """Who added it (phone-number JID when known, else LID)."""
    by_lid: str | None = None


class GroupUpdatedData(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Settings of a group changed; only the changed ones are present."""

    group: str
    by: str | None = None
    by_lid: str | None = None
    subject: str | None = None
    description: str | None = None
    picture: bool | None = None
    """True: a new picture was set; false: it was removed."""
    announce: bool | None = None
    locked: bool | None = None
    ephemeral: int | None = None
    invite_reset: bool | None = None
    """The invite link was revoked (a new one replaces it)."""


class GroupParticipantsData(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Members changed: ``add`` (added by an admin), ``join`` (by invite link), ``remove`` (removed by an admin),
    ``leave``, ``promote`` (made admin), ``demote``."""

    group: str
    action: Literal["add", "join", "remove", "leave", "promote", "demote"]
    participants: list[GroupPerson]
    by: str | None = None
    by_lid: str | None = None


event("group.joined", GroupJoinedData, "the session's account is in a new group (created, joined by link, added)")
event("group.updated", GroupUpdatedData, "a group's subject, description, picture or settings changed")
event("group.participants", GroupParticipantsData, "members of a group were added, removed, promoted or demoted")
