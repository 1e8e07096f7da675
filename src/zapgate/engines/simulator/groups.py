"""Groups as the simulated WhatsApp server keeps them: members (simulated accounts and sessions' phones), roles,
settings, invite links, and messages fanned out to every member's linked devices.

State lives in the simulator's database (tables ``groups`` and ``group_members``), so it survives restarts and is
shared by the nodes of a cluster like the rest of the simulation. Every change is one transaction that also
mails the resulting events to the members' devices: the member that was added gets ``group_joined``, the others
``group_participants``; settings changes reach everyone as ``group_updated``. Like WhatsApp:

- only admins add, remove, promote and demote, get or reset the invite link, and change ``announce`` or
  ``locked``; while ``locked``, only admins change the subject, description or picture; while ``announce``,
  only admins send messages;
- an account whose privacy refuses group adds (``sim.contact refuse_group_adds``) is refused with 403
  (``not_authorized``), an existing member with 409 (``already_member``), a number not on WhatsApp with 404;
  the creator (superadmin) cannot be removed or demoted;
- a group holds at most 1024 members.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from ...jid import Jid
from ...protocol import (
    GroupInfo,
    GroupJoinedData,
    GroupMember,
    GroupParticipantsData,
    GroupPerson,
    GroupUpdatedData,
    ParticipantResult,
)
from ...protocol.content import Content, Vote, media_of
from ...protocol.groups import INVITE_PREFIX
from ...storage.database import Conn
from ..base import (
    PLAIN,
    EngineEvent,
    GroupAction,
    GroupChanges,
    GroupJoinedIn,
    GroupParticipantsIn,
    GroupUpdatedIn,
    MediaFile,
    MessageIn,
    Outgoing,
    ReceiptIn,
    SendError,
    Sent,
)
from .cdn import SimulatedCdn
from .devices import Device, Mail
from .parts import EngineParts
from .records import encode_event, find_delivery, insert_delivery, insert_mail
from .rules import refusal, target_of

__all__ = ["GROUP_LIMIT", "SimulatedGroups"]

GROUP_LIMIT = 1024
_CODE_ALPHABET = string.ascii_letters + string.digits

_Row = tuple[Any, ...]


class SimulatedGroups(EngineParts):
    _cdn: SimulatedCdn
    _latency: float

    # -- commands

    async def group_create(
        self, session_id: str, subject: str, participants: list[Jid]
    ) -> tuple[GroupInfo, list[ParticipantResult]]:
        owner = self._phone(session_id)
        phones = await self._phones(participants)
        jid = f"1203630{secrets.randbelow(10**11):011d}@g.us"
        now = int(time.time())

        def create(conn: Conn) -> tuple[tuple[GroupInfo, list[ParticipantResult], Mail], list[Any]]:
            conn.execute(
                "INSERT INTO groups (jid, subject, owner, created, invite) VALUES (?, ?, ?, ?, ?)",
                (jid, subject, owner, now, _new_code()),
            )
            conn.execute("INSERT INTO group_members (group_jid, phone, role) VALUES (?, ?, 'superadmin')", (jid, owner))
            results, added = self._add(conn, jid, phones)
            info = self._info(conn, jid)
            mail = self._mail_phones(conn, [owner], GroupJoinedIn(data=GroupJoinedData(group=info, reason="created")))
            by = self._shown_as(owner)
            joined = GroupJoinedIn(data=GroupJoinedData(group=info, reason="added", by=by, by_lid=self._lid_jid(owner)))
            mail += self._mail_phones(conn, added, joined)
            return (info, results, mail), []

        info, results, mail = await self._db.write(create)
        self._post(mail)
        return info, results

    async def groups(self, session_id: str) -> list[GroupInfo]:
        phone = self._phone(session_id)

        def read(conn: Conn) -> list[GroupInfo]:
            rows = conn.execute(
                "SELECT group_jid FROM group_members WHERE phone = ? ORDER BY group_jid", (phone,)
            ).fetchall()
            return [self._info(conn, str(row[0]), members=False) for row in rows]

        return await self._db.read(read)

    async def group_info(self, session_id: str, group: Jid) -> GroupInfo:
        phone = self._phone(session_id)

        def read(conn: Conn) -> GroupInfo:
            _role(conn, str(group), phone)
            return self._info(conn, str(group))

        return await self._db.read(read)

    async def group_participants(
        self, session_id: str, group: Jid, action: GroupAction, participants: list[Jid]
    ) -> list[ParticipantResult]:
        actor = self._phone(session_id)
        phones = await self._phones(participants)
        jid = str(group)

        def change(conn: Conn) -> tuple[tuple[list[ParticipantResult], Mail], list[Any]]:
            _admin(conn, jid, actor)
            mail: Mail = []
            if action == "add":
                results, done = self._add(conn, jid, phones)
                if done:
                    info = self._info(conn, jid)
                    joined = GroupJoinedData(
                        group=info, reason="added", by=self._shown_as(actor), by_lid=self._lid_jid(actor)
                    )
                    mail += self._mail_phones(conn, done, GroupJoinedIn(data=joined))
            else:
                results, done = self._change(conn, jid, action, phones)
            if done:
                data = GroupParticipantsData(
                    group=jid,
                    action=action,
                    participants=[self._person(p) for p in done],
                    by=self._shown_as(actor),
                    by_lid=self._lid_jid(actor),
                )
                others = [p for p in _members(conn, jid) if action != "add" or p not in done]
                mail += self._mail_phones(
                    conn, others + (done if action == "remove" else []), GroupParticipantsIn(data=data)
                )
            return (results, mail), []

        results, mail = await self._db.write(change)
        self._post(mail)
        return results

    async def group_invite_link(self, session_id: str, group: Jid, reset: bool) -> str:
        actor = self._phone(session_id)
        jid = str(group)

        def link(conn: Conn) -> tuple[tuple[str, Mail], list[Any]]:
            _admin(conn, jid, actor)
            mail: Mail = []
            if reset:
                conn.execute("UPDATE groups SET invite = ? WHERE jid = ?", (_new_code(), jid))
                data = GroupUpdatedData(
                    group=jid, by=self._shown_as(actor), by_lid=self._lid_jid(actor), invite_reset=True
                )
                mail = self._mail_phones(conn, _members(conn, jid), GroupUpdatedIn(data=data))
            (code,) = conn.execute("SELECT invite FROM groups WHERE jid = ?", (jid,)).fetchone()
            return (INVITE_PREFIX + str(code), mail), []

        found, mail = await self._db.write(link)
        self._post(mail)
        return found

    async def group_join(self, session_id: str, code: str) -> GroupInfo:
        phone = self._phone(session_id)

        def join(conn: Conn) -> tuple[tuple[GroupInfo, Mail], list[Any]]:
            row = conn.execute("SELECT jid FROM groups WHERE invite = ?", (code,)).fetchone()
            if row is None:
                raise SendError("invite_invalid", "the invite link is unknown or was reset", retryable=False)
            jid = str(row[0])
            mail: Mail = []
            if _role_or_none(conn, jid, phone) is None:
                if len(_members(conn, jid)) >= GROUP_LIMIT:
                    raise SendError("group_full", "the group has 1024 members", retryable=False)
                others = _members(conn, jid)
                conn.execute("INSERT INTO group_members (group_jid, phone, role) VALUES (?, ?, 'member')", (jid, phone))
                data = GroupParticipantsData(group=jid, action="join", participants=[self._person(phone)])
                mail = self._mail_phones(conn, others, GroupParticipantsIn(data=data))
                info = self._info(conn, jid)
                mail += self._mail_phones(
                    conn, [phone], GroupJoinedIn(data=GroupJoinedData(group=info, reason="invited"))
                )
            return (self._info(conn, jid), mail), []

        info, mail = await self._db.write(join)
        self._post(mail)
        return info

    async def group_leave(self, session_id: str, group: Jid) -> None:
        phone = self._phone(session_id)
        jid = str(group)

        def leave(conn: Conn) -> tuple[Mail, list[Any]]:
            _role(conn, jid, phone)
            everyone = _members(conn, jid)
            conn.execute("DELETE FROM group_members WHERE group_jid = ? AND phone = ?", (jid, phone))
            data = GroupParticipantsData(group=jid, action="leave", participants=[self._person(phone)])
            return self._mail_phones(conn, everyone, GroupParticipantsIn(data=data)), []

        self._post(await self._db.write(leave))

    async def group_update(
        self, session_id: str, group: Jid, changes: GroupChanges, picture: MediaFile | None
    ) -> GroupInfo:
        actor = self._phone(session_id)
        jid = str(group)
        picture_ref = None
        if picture is not None:  # the picture goes to WhatsApp's media servers like any file
            picture_ref = picture.sha256

        def update(conn: Conn) -> tuple[tuple[GroupInfo, Mail], list[Any]]:
            role = _role(conn, jid, actor)
            (locked,) = conn.execute("SELECT locked FROM groups WHERE jid = ?", (jid,)).fetchone()
            admin_only = changes.announce is not None or changes.locked is not None
            edits = changes.subject is not None or changes.description is not None or picture_ref is not None
            if role == "member" and (admin_only or (edits and locked)):
                raise SendError("not_group_admin", "only the group's admins may change that", retryable=False)
            columns = {
                "subject": changes.subject,
                "description": changes.description,
                "announce": None if changes.announce is None else int(changes.announce),
                "locked": None if changes.locked is None else int(changes.locked),
                "ephemeral": changes.ephemeral,
                "picture": picture_ref,
            }
            for column, value in columns.items():
                if value is not None:
                    conn.execute(f"UPDATE groups SET {column} = ? WHERE jid = ?", (value, jid))  # noqa: S608
            data = GroupUpdatedData(
                group=jid,
                by=self._shown_as(actor),
                by_lid=self._lid_jid(actor),
                subject=changes.subject,
                description=changes.description,
                picture=True if picture_ref is not None else None,
                announce=changes.announce,
                locked=changes.locked,
                ephemeral=changes.ephemeral,
            )
            mail = self._mail_phones(conn, _members(conn, jid), GroupUpdatedIn(data=data))
            return (self._info(conn, jid), mail), []

        info, mail = await self._db.write(update)
        self._post(mail)
        return info

    # -- messages to a group

    async def _send_to_group(
        self, device: Device, message_id: str, group: Jid, content: Content, extra: Outgoing = PLAIN
    ) -> Sent:
        """Like WhatsApp: the server fans the message out to every member's devices (the sender's other devices
        excepted here) and acknowledges it; each message carries the group as ``chat`` and its author."""
        sender = device.phone or ""
        jid = str(group)
        media_ref = None
        if media_of(content) is not None:
            content, media_ref = await self._cdn.publish(content, extra.media)
        now = int(time.time())
        reply_to = extra.quote.message_id if extra.quote else None
        target_id = target_of(content)

        def record(conn: Conn) -> tuple[tuple[int, Mail | None, str | None], list[Any]]:
            role = _role(conn, jid, sender)
            announce = conn.execute("SELECT announce FROM groups WHERE jid = ?", (jid,)).fetchone()[0]
            if announce and role == "member":
                raise SendError("not_group_admin", "only admins may send messages to this group", retryable=False)
            row = conn.execute(
                "SELECT timestamp FROM deliveries WHERE sender = ? AND message_id = ?", (sender, message_id)
            ).fetchone()
            if row:  # a repeated id: WhatsApp drops it
                return (int(row[0]), None, None), []
            target = find_delivery(conn, target_id) if target_id is not None else None
            if isinstance(content, Vote) and target is not None and target.recipient == jid:
                target = replace(target, recipient=sender)  # a group poll: any member may vote
            refused = refusal(content, sender, jid, target, now)
            if refused is not None:
                return (now, None, refused), []
            insert_delivery(conn, sender, jid, message_id, content, reply_to, now)
            members = _members(conn, jid)
            mentions = list(extra.mentions)
            if "all" in mentions:
                mentions = [m for m in mentions if m != "all"]
                mentions += [self._shown_as(p) for p in members if p != sender and self._shown_as(p) not in mentions]
            message = MessageIn(
                message_id=message_id,
                chat=jid,
                sender=self._shown_as(sender),
                sender_lid=self._lid_jid(sender),
                content=content,
                timestamp=now,
                reply_to=reply_to,
                push_name=self._name(sender),
                mentions=mentions,
                forwarded=extra.forwarded,
                media_ref=media_ref,
            )
            delivered = ReceiptIn(message_ids=[message_id], chat=jid, status="delivered", timestamp=now)
            mail = self._mail_phones(conn, [p for p in members if p != sender], message)
            mail += self._mail_phones(conn, [sender], delivered)
            return (now, mail, None), []

        timestamp, mail, refused = await self._db.write(record)
        if refused is not None:
            raise SendError(refused, f"WhatsApp refused the {type(content).__name__.lower()}", retryable=False)
        if mail:
            self._post(mail)
        if self._latency:
            await asyncio.sleep(self._latency)
        return Sent(timestamp)

    # -- internals

    def _phone(self, session_id: str) -> str:
        return self._sending_device(session_id).phone or ""

    async def _phones(self, people: Sequence[Jid]) -> list[tuple[Jid, str | None]]:
        return [(jid, await self._phone_of(jid)) for jid in people]

    def _person(self, phone: str) -> GroupPerson:
        return GroupPerson(jid=self._shown_as(phone), lid=self._lid_jid(phone))

    def _result(self, jid: Jid, phone: str | None, status: Any, code: int | None) -> ParticipantResult:
        if phone is None:
            return ParticipantResult(jid=str(jid), status=status, code=code)
        return ParticipantResult(jid=self._shown_as(phone), lid=self._lid_jid(phone), status=status, code=code)

    def _add(
        self, conn: Conn, jid: str, people: list[tuple[Jid, str | None]]
    ) -> tuple[list[ParticipantResult], list[str]]:
        """Add people (inside a write); one result each, and the phones added."""
        results: list[ParticipantResult] = []
        added: list[str] = []
        size = len(_members(conn, jid))
        for asked, phone in people:
            if phone is None or phone not in self._accounts:
                results.append(self._result(asked, None, "not_on_whatsapp", 404))
            elif _role_or_none(conn, jid, phone) is not None:
                results.append(self._result(asked, phone, "already_member", 409))
            elif self._server.refuses_group_adds(phone):
                results.append(self._result(asked, phone, "not_authorized", 403))
            elif size >= GROUP_LIMIT:
                results.append(self._result(asked, phone, "full", 500))
            else:
                conn.execute("INSERT INTO group_members (group_jid, phone, role) VALUES (?, ?, 'member')", (jid, phone))
                size += 1
                added.append(phone)
                results.append(self._result(asked, phone, "ok", None))
        return results, added

    def _change(
        self, conn: Conn, jid: str, action: GroupAction, people: list[tuple[Jid, str | None]]
    ) -> tuple[list[ParticipantResult], list[str]]:
        results: list[ParticipantResult] = []
        done: list[str] = []
        for asked, phone in people:
            role = _role_or_none(conn, jid, phone) if phone is not None else None
            if phone is None or role is None:
                results.append(self._result(asked, phone, "not_member", 404))
                continue
            if role == "superadmin":  # the creator stays, and stays an admin
                results.append(self._result(asked, phone, "not_authorized", 403))
                continue
            if action == "remove":
                conn.execute("DELETE FROM group_members WHERE group_jid = ? AND phone = ?", (jid, phone))
            else:
                new_role = "admin" if action == "promote" else "member"
                conn.execute(
                    "UPDATE group_members SET role = ? WHERE group_jid = ? AND phone = ?", (new_role, jid, phone)
                )
            done.append(phone)
            results.append(self._result(asked, phone, "ok", None))
        return results, done

    def _info(self, conn: Conn, jid: str, *, members: bool = True) -> GroupInfo:
        row = conn.execute(
            "SELECT subject, description, owner, created, announce, locked, ephemeral FROM groups WHERE jid = ?", (jid,)
        ).fetchone()
        if row is None:
            raise SendError("group_not_found", f"no group {jid}", retryable=False)
        subject, description, owner, created, announce, locked, ephemeral = row
        roles = conn.execute(
            "SELECT phone, role FROM group_members WHERE group_jid = ? ORDER BY phone", (jid,)
        ).fetchall()
        participants = None
        if members:
            participants = [
                GroupMember(
                    jid=self._shown_as(str(phone)),
                    lid=self._lid_jid(str(phone)),
                    admin=role != "member",
                    superadmin=role == "superadmin",
                )
                for phone, role in roles
            ]
        return GroupInfo(
            group=jid,
            subject=str(subject),
            size=len(roles),
            description=description or None,
            owner=self._shown_as(str(owner)),
            owner_lid=self._lid_jid(str(owner)),
            created=int(created),
            announce=bool(announce),
            locked=bool(locked),
            ephemeral=int(ephemeral),
            participants=participants,
        )

    def _mail_phones(self, conn: Conn, phones: Sequence[str], event: EngineEvent) -> Mail:
        """Inside a write: mail ``event`` to every device linked to these phones (one query for all of them)."""
        if not phones:
            return []
        wanted = set(phones)
        sessions = [
            str(session_id)
            for session_id, phone in conn.execute("SELECT session_id, phone FROM devices ORDER BY session_id")
            if phone in wanted
        ]
        if not sessions:
            return []
        raw = encode_event(event)
        row_ids = insert_mail(conn, [(session_id, raw) for session_id in sessions])
        self._server.announce(conn, "mail", sorted(set(sessions)))
        return [(session_id, event, row_id) for session_id, row_id in zip(sessions, row_ids, strict=True)]


def _new_code() -> str:
    return "".join(secrets.choice(_CODE_ALPHABET) for _ in range(22))


def _members(conn: Conn, jid: str) -> list[str]:
    return [str(r[0]) for r in conn.execute("SELECT phone FROM group_members WHERE group_jid = ?", (jid,)).fetchall()]


def _role_or_none(conn: Conn, jid: str, phone: str) -> str | None:
    row = conn.execute("SELECT role FROM group_members WHERE group_jid = ? AND phone = ?", (jid, phone)).fetchone()
    return None if row is None else str(row[0])


def _role(conn: Conn, jid: str, phone: str) -> str:
    """The member's role; ``group_not_found`` when the group does not exist or ``phone`` is not in it (WhatsApp
    tells non-members nothing about a group)."""
    role = _role_or_none(conn, jid, phone)
    if role is None:
        raise SendError("group_not_found", f"no group {jid} with this account in it", retryable=False)
    return role


def _admin(conn: Conn, jid: str, phone: str) -> None:
    if _role(conn, jid, phone) == "member":
        raise SendError("not_group_admin", "only the group's admins may do that", retryable=False)
