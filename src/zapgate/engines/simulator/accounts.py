"""What the simulated WhatsApp knows about accounts, and what a linked device asks of it: which numbers are on
WhatsApp, profiles (push name, about, business name, a generated picture) under their owners' privacy, block
lists, chat settings (app state), and the history sync a new device gets after pairing.

Mixed into :class:`~.engine.SimulatorEngine`, which provides the state below.

- **Numbers.** A number is on WhatsApp when it has an account (paired phones, the echo contact, ``sim_contacts``,
  contacts that wrote). A Brazilian mobile number registered before the ninth digit is answered as its account
  (``55 11 9xxxx-xxxx`` → ``551 1xxxx-xxxx@s.whatsapp.net``), as WhatsApp does.
- **Profiles.** Every account has the about text WhatsApp gives new accounts and a picture generated from its
  number; the echo contact is a verified business. ``sim.profile`` changes them, and can hide an account's about
  and picture from everyone (privacy "nobody"). An account that blocked the session's account hides them from it.
- **Blocking.** A blocked account's messages are accepted by the server and never delivered.
- **History sync.** After pairing, the device gets the account's prior conversations: every message the account
  sent or received through the simulator before the device came online (newest :data:`HISTORY_MAX_MESSAGES`;
  later ones reach it as live mail), and ``sim_history_messages``
  made-up earlier messages with the echo contact and the ``sim_contacts``, in batches of
  :data:`HISTORY_BATCH_MESSAGES`, with each chat's settings and unread count in the last batch. Batches are
  delivered after any live event waiting, so a sync of thousands does not hold up a live message.
"""

from __future__ import annotations

import abc
import asyncio
import hashlib
import struct
import time
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import PhoneTaken
from ...jid import Jid
from ...protocol.content import Text
from ...storage.database import Conn
from ..base import ChatSettingIn, ContactProfile, HistoryBatch, HistoryChat, MessageIn, PhoneCheck, SendError
from .devices import Device, Mail, user_jid
from .parts import EngineParts
from .records import encode_event, insert_mail, linked_devices
from .rules import decode_content

__all__ = [
    "DEFAULT_ABOUT",
    "HISTORY_BATCH_MESSAGES",
    "HISTORY_MAX_MESSAGES",
    "SimulatedAccounts",
    "picture_png",
]

DEFAULT_ABOUT = "Hey there! I am using WhatsApp."
HISTORY_MAX_MESSAGES = 10_000
"""The newest messages of the account's real record a new device gets."""
HISTORY_BATCH_MESSAGES = 500
"""Messages per history-sync batch."""


class SimulatedAccounts(EngineParts):
    _devices: dict[str, Device]
    _history_messages: int
    _extra_contacts: list[str]

    @abc.abstractmethod
    async def _account_of(self, phone: str) -> str: ...

    # -- numbers and profiles

    async def check_contacts(self, session_id: str, phones: list[str]) -> list[PhoneCheck]:
        self._sending_device(session_id)
        accounts = [await self._account_of(phone) for phone in phones]
        known = [a for a in accounts if a in self._accounts]
        businesses = dict(await self._db.read(lambda conn: _business_names(conn, known)))
        answers = []
        for phone, account in zip(phones, accounts, strict=True):
            if account not in self._accounts:
                answers.append(PhoneCheck(phone=phone, on_whatsapp=False))
                continue
            business_name = businesses.get(account)
            answers.append(
                PhoneCheck(
                    phone=phone,
                    on_whatsapp=True,
                    jid=user_jid(account),
                    lid=f"{self._accounts[account][1]}@lid",
                    business=business_name is not None,
                    business_name=business_name,
                )
            )
        return answers

    async def contact_info(self, session_id: str, jid: Jid) -> ContactProfile:
        viewer = self._sending_device(session_id).phone or ""
        phone = await self._account_named(jid)

        def read(conn: Conn) -> tuple[Any, bool]:
            row = conn.execute(
                "SELECT about, business_name, picture, hide_profile FROM accounts WHERE phone = ?", (phone,)
            ).fetchone()
            blocked = conn.execute("SELECT 1 FROM blocks WHERE phone = ? AND blocked = ?", (phone, viewer)).fetchone()
            return row, blocked is not None

        (about, business_name, picture, hidden), blocked_viewer = await self._db.read(read)
        visible = not hidden and not blocked_viewer
        return ContactProfile(
            jid=self._shown_as(phone),  # an account that hides its number is known by its LID alone
            lid=f"{self._accounts[phone][1]}@lid",
            push_name=self._name(phone),
            business=business_name is not None,
            business_name=business_name,
            about=(about or DEFAULT_ABOUT) if visible else None,
            picture_id=str(picture) if visible and picture else None,
        )

    async def profile_picture(self, session_id: str, jid: Jid, into: Path) -> str | None:
        profile = await self.contact_info(session_id, jid)
        if profile.picture_id is None:
            return None
        png = picture_png(profile.jid, int(profile.picture_id))
        await asyncio.to_thread(into.write_bytes, png)
        return profile.picture_id

    async def set_profile(
        self,
        phone: str,
        *,
        tenant: str,
        about: str | None = None,
        business_name: str | None = None,
        picture: bool | None = None,
        hide_profile: bool | None = None,
    ) -> None:
        """``sim.profile``: change an account's profile as its owner would ("" clears the business name). A phone
        of another tenant, and the echo contact, are not ``tenant``'s to change (``phone_taken``)."""
        if await self._server.account(phone) is None:
            await self._server.add_account(phone, "contact")

        def read(conn: Conn) -> Any:
            return conn.execute("SELECT kind, owner FROM accounts WHERE phone = ?", (phone,)).fetchone()

        kind, owner = await self._db.read(read)
        if kind == "echo":
            raise PhoneTaken(f"+{phone} is the simulator's echo contact: its profile is fixed")
        if owner is not None and owner != tenant:
            raise PhoneTaken(f"+{phone} is another tenant's simulated phone")

        def store(conn: Conn) -> tuple[None, list[Any]]:
            if about is not None:
                conn.execute("UPDATE accounts SET about = ? WHERE phone = ?", (about, phone))
            if business_name is not None:
                conn.execute("UPDATE accounts SET business_name = ? WHERE phone = ?", (business_name or None, phone))
            if picture is not None:
                # A new picture gets a new id, as on WhatsApp; none is 0.
                change = "picture = picture + 1" if picture else "picture = 0"
                conn.execute(f"UPDATE accounts SET {change} WHERE phone = ?", (phone,))  # noqa: S608
            if hide_profile is not None:
                conn.execute("UPDATE accounts SET hide_profile = ? WHERE phone = ?", (int(hide_profile), phone))
            return None, []

        await self._db.write(store)

    # -- blocking

    async def set_blocked(self, session_id: str, jid: Jid, blocked: bool) -> list[str]:
        phone = self._sending_device(session_id).phone or ""
        other = await self._account_named(jid)

        def store(conn: Conn) -> tuple[list[str], list[Any]]:
            if blocked:
                conn.execute(
                    "INSERT INTO blocks (phone, blocked) VALUES (?, ?) ON CONFLICT (phone, blocked) DO NOTHING",
                    (phone, other),
                )
            else:
                conn.execute("DELETE FROM blocks WHERE phone = ? AND blocked = ?", (phone, other))
            return _blocklist(conn, phone), []

        return await self._db.write(store)

    async def blocklist(self, session_id: str) -> list[str]:
        phone = self._sending_device(session_id).phone or ""
        return await self._db.read(lambda conn: _blocklist(conn, phone))

    # -- chat settings (app state)

    async def set_chat(
        self,
        session_id: str,
        chat: Jid,
        *,
        archived: bool | None = None,
        pinned: bool | None = None,
        muted_until: int | None = None,
    ) -> None:
        device = self._sending_device(session_id)
        phone, changes = device.phone or "", {"archived": archived, "pinned": pinned, "muted_until": muted_until}
        given = {name: int(value) for name, value in changes.items() if value is not None}

        def store(conn: Conn) -> tuple[Mail, list[Any]]:
            conn.execute(
                "INSERT INTO chat_settings (phone, chat) VALUES (?, ?) ON CONFLICT (phone, chat) DO NOTHING",
                (phone, str(chat)),
            )
            for name, value in given.items():
                conn.execute(
                    f"UPDATE chat_settings SET {name} = ? WHERE phone = ? AND chat = ?",  # noqa: S608
                    (value, phone, str(chat)),
                )
            # App state reaches the account's other devices (not the one that changed it).
            event = ChatSettingIn(chat=str(chat), archived=archived, pinned=pinned, muted_until=muted_until)
            others = [s for s in linked_devices(conn, phone) if s != session_id]
            row_ids = insert_mail(conn, [(s, encode_event(event)) for s in others])
            self._server.announce(conn, "mail", others)
            return [(s, event, r) for s, r in zip(others, row_ids, strict=True)], []

        self._post(await self._db.write(store))

    # -- history sync

    async def _history_for(self, phone: str, *, upto: int) -> list[HistoryBatch]:
        """The history sync a new device of ``phone`` gets (see the module documentation): the messages accepted up
        to acceptance number ``upto`` (when the device came online)."""

        def read(conn: Conn) -> tuple[list[Any], list[Any]]:
            rows = conn.execute(
                "SELECT sender, recipient, message_id, content, text, reply_to, timestamp FROM deliveries "
                "WHERE (sender = ? OR recipient = ?) AND (accepted IS NULL OR accepted <= ?) "
                "ORDER BY accepted DESC LIMIT ?",
                (phone, phone, upto, HISTORY_MAX_MESSAGES),
            ).fetchall()
            settings = conn.execute(
                "SELECT chat, archived, pinned, muted_until FROM chat_settings WHERE phone = ?", (phone,)
            ).fetchall()
            return rows, settings

        rows, settings = await self._db.read(read)
        messages = self._made_up_history(phone) + [self._history_message(phone, row) for row in reversed(rows)]
        messages.sort(key=lambda m: m.timestamp)
        if not messages and not settings:
            return []
        chats: dict[str, HistoryChat] = {}
        for m in messages:  # oldest first: a message from me reads the chat; the ones after it are unread
            before = chats[m.chat].unread or 0 if m.chat in chats else 0
            unread = 0 if m.from_me else before + 1
            name = None if m.chat.endswith("@g.us") else m.push_name or chats.get(m.chat, HistoryChat(chat="")).name
            chats[m.chat] = HistoryChat(chat=m.chat, name=name, unread=unread)
        for chat, archived, pinned, muted_until in settings:
            known = chats.get(chat, HistoryChat(chat=chat))
            chats[chat] = HistoryChat(
                chat=chat,
                name=known.name,
                unread=known.unread,
                archived=bool(archived),
                pinned=bool(pinned),
                muted_until=int(muted_until),
            )
        batches = [
            HistoryBatch(messages=messages[start : start + HISTORY_BATCH_MESSAGES])
            for start in range(0, max(len(messages), 1), HISTORY_BATCH_MESSAGES)
        ]
        total = len(batches)
        for n, batch in enumerate(batches, start=1):
            batch.progress = 100 * n // total
        batches[-1].chats = list(chats.values())
        batches[-1].final = True
        return batches

    def _history_message(self, phone: str, row: Sequence[Any]) -> MessageIn:
        sender, recipient, message_id, raw, text, reply_to, timestamp = row
        from_me = sender == phone
        other = recipient if from_me else sender
        return MessageIn(
            message_id=message_id,
            chat=self._shown_as(other),  # like live messages: by LID alone when the other hides its number
            chat_lid=self._lid_jid(other),
            sender="" if from_me else self._shown_as(sender),
            sender_lid=None if from_me else self._lid_jid(sender),
            content=decode_content(bytes(raw)) if raw else Text(text=text),
            timestamp=int(timestamp),
            from_me=from_me,
            push_name=None if from_me else self._name(sender),
            reply_to=reply_to,
        )

    def _made_up_history(self, phone: str) -> list[MessageIn]:
        """``sim_history_messages`` earlier messages with the echo contact and the ``sim_contacts``, one a minute,
        the same ids for the same account every time (a second device gets the same history)."""
        echo = [p for p, (kind, _) in self._accounts.items() if kind == "echo"]
        peers = [p for p in [*echo, *self._extra_contacts] if p != phone]
        count = self._history_messages if peers else 0
        now = int(time.time())
        made = []
        for i in range(count):
            peer = peers[i % len(peers)]
            from_me = (i // len(peers)) % 3 == 0  # a third of each chat is the account's own
            digest = hashlib.sha256(f"{phone}:{i}".encode()).hexdigest()[:18].upper()
            made.append(
                MessageIn(
                    message_id=f"3A{digest}",
                    chat=self._shown_as(peer),
                    chat_lid=self._lid_jid(peer),
                    sender="" if from_me else self._shown_as(peer),
                    sender_lid=None if from_me else self._lid_jid(peer),
                    content=Text(text=f"Earlier message {i + 1}"),
                    timestamp=now - 86_400 - (count - i) * 60,
                    from_me=from_me,
                    push_name=None if from_me else self._name(peer),
                )
            )
        return made

    async def _account_named(self, jid: Jid) -> str:
        """The account ``jid`` names (a phone JID, possibly without its ninth digit, or a LID)."""
        phone = await self._phone_of(jid)
        if phone is None or await self._server.account(phone) is None:
            raise SendError("not_on_whatsapp", f"{jid} is not on WhatsApp", retryable=False)
        return phone


def _business_names(conn: Conn, phones: Sequence[str]) -> list[tuple[str, str]]:
    if not phones:
        return []
    marks = ",".join("?" * len(phones))
    rows = conn.execute(
        f"SELECT phone, business_name FROM accounts WHERE business_name IS NOT NULL AND phone IN ({marks})",  # noqa: S608
        list(phones),
    )
    return [(str(r[0]), str(r[1])) for r in rows]


def _blocklist(conn: Conn, phone: str) -> list[str]:
    rows = conn.execute("SELECT blocked FROM blocks WHERE phone = ? ORDER BY blocked", (phone,))
    return [user_jid(r[0]) for r in rows]


def picture_png(seed: str, version: int, size: int = 96) -> bytes:
    """A profile picture generated from ``seed`` (the account's number) and its ``version``: a PNG of two colours."""
    digest = hashlib.sha256(f"{seed}:{version}".encode()).digest()
    outer, inner = digest[:3], digest[3:6]
    rows = []
    for y in range(size):
        line = bytearray(b"\x00")  # filter type 0 for each scanline
        for x in range(size):
            centre = size // 4 <= x < 3 * size // 4 and size // 4 <= y < 3 * size // 4
            line += inner if centre else outer
        rows.append(bytes(line))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows)))
        + chunk(b"IEND", b"")
    )
