"""``group.*``."""

from __future__ import annotations

from ...auth import Caller
from ...engines.base import GroupChanges, MediaFile, SendError
from ...errors import InvalidRequest, MediaNotFound
from ...gateway import Gateway
from ...protocol import (
    Empty,
    GroupCreate,
    GroupCreated,
    GroupInfo,
    GroupInfoGet,
    GroupInvite,
    GroupInviteLink,
    GroupJoin,
    GroupLeave,
    GroupList,
    GroupListResult,
    GroupParticipants,
    GroupParticipantsResult,
    GroupUpdate,
)
from ...protocol.content import Image, Media
from .registry import handles

__all__: list[str] = []

PICTURE_TYPES = ("image/jpeg", "image/png")


@handles(GroupCreate)
async def group_create(gw: Gateway, caller: Caller, cmd: GroupCreate) -> GroupCreated:
    return await gw.sessions.groups.create(caller.tenant, cmd.session, cmd.subject, cmd.participants)


@handles(GroupList)
async def group_list(gw: Gateway, caller: Caller, cmd: GroupList) -> GroupListResult:
    return GroupListResult(groups=await gw.sessions.groups.joined(caller.tenant, cmd.session))


@handles(GroupInfoGet)
async def group_info(gw: Gateway, caller: Caller, cmd: GroupInfoGet) -> GroupInfo:
    return await gw.sessions.groups.info(caller.tenant, cmd.session, cmd.group)


@handles(GroupParticipants)
async def group_participants(gw: Gateway, caller: Caller, cmd: GroupParticipants) -> GroupParticipantsResult:
    results = await gw.sessions.groups.participants(caller.tenant, cmd.session, cmd.group, cmd.action, cmd.participants)
    return GroupParticipantsResult(participants=results)


@handles(GroupInvite)
async def group_invite_link(gw: Gateway, caller: Caller, cmd: GroupInvite) -> GroupInviteLink:
    return GroupInviteLink(link=await gw.sessions.groups.invite_link(caller.tenant, cmd.session, cmd.group, cmd.reset))


@handles(GroupJoin)
async def group_join(gw: Gateway, caller: Caller, cmd: GroupJoin) -> GroupInfo:
    return await gw.sessions.groups.join(caller.tenant, cmd.session, cmd.link)


@handles(GroupLeave)
async def group_leave(gw: Gateway, caller: Caller, cmd: GroupLeave) -> Empty:
    await gw.sessions.groups.leave(caller.tenant, cmd.session, cmd.group)
    return Empty()


@handles(GroupUpdate)
async def group_update(gw: Gateway, caller: Caller, cmd: GroupUpdate) -> GroupInfo:
    changes = GroupChanges(
        subject=cmd.subject,
        description=cmd.description,
        announce=cmd.announce,
        locked=cmd.locked,
        ephemeral=cmd.ephemeral,
    )
    picture = await _picture(gw, caller, cmd.picture) if cmd.picture is not None else None
    if changes == GroupChanges() and picture is None:
        raise InvalidRequest(
            "group.update changes nothing: give subject, description, picture, announce, locked or ephemeral"
        )
    return await gw.sessions.groups.update(caller.tenant, cmd.session, cmd.group, changes, picture)


async def _picture(gw: Gateway, caller: Caller, media: Media) -> MediaFile:
    """The picture as a stored file of the tenant (an upload, a URL or inline data), a JPEG or PNG image."""
    content, _ = await gw.media.for_sending(caller.tenant, Image(media=media))
    try:
        picture = await gw.media.file_for(content)
    except SendError as exc:
        raise MediaNotFound(exc.message) from None
    if picture is None:
        raise InvalidRequest("picture: give an image by id, url or data")
    if picture.mimetype not in PICTURE_TYPES:
        raise InvalidRequest(f"picture: a group picture is a JPEG or PNG image, not {picture.mimetype}")
    return picture
