"""The simulator engine itself: devices, pairing, the network of accounts and delivery (see the package docs)."""

from __future__ import annotations

import asyncio
import collections
import logging
import secrets
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...background import BackgroundTasks
from ...errors import InvalidRequest, QRAlreadyUsed, QRExpired, QRUnknown, SessionNotPaired
from ...jid import Jid, parse_phone
from ...protocol import Me
from ...protocol.content import Content, Poll, Text, Vote, media_of
from ...sessions.qr import QrSchedule
from ...storage.sqlite import SqliteDatabase
from ..base import (
    PLAIN,
    Availability,
    ChatState,
    Connected,
    Disconnected,
    Engine,
    EngineEvent,
    EngineSink,
    Failed,
    LoggedOut,
    MediaFile,
    MessageIn,
    Outgoing,
    PairCode,
    Paired,
    QrCode,
    ReceiptIn,
    SendError,
    SendRestricted,
    Sent,
)
from .cdn import SimulatedCdn
from .presence import SimPresence
from .records import (
    MIGRATIONS,
    decode_event,
    encode_event,
    find_delivery,
    insert_delivery,
    insert_mail,
    make_pair_code,
    make_qr_code,
)
from .rules import decode_content, echo_answer, refusal, target_of

__all__ = ["ECHO_PHONE", "SimulatorEngine"]

log = logging.getLogger("zapgate.engines.simulator")

ENGINE_NAME = "simulator"
"""Also the ``engine`` of the device records it hands out (records without one are the simulator's too)."""

ECHO_PHONE = "15550000000"
MAX_REMEMBERED_CODES = 10000
"""Codes of ended pairings remembered to answer ``qr_used`` rather than ``qr_unknown``."""


def _user_jid(phone: str) -> str:
    return f"{phone}@s.whatsapp.net"


@dataclass
class _Pairing:
    schedule: QrSchedule
    codes: list[str]
    pair_phone: str | None
    pair_code: str | None = None
    timer: asyncio.TimerHandle | None = None


@dataclass
class _Device:
    """One session as WhatsApp's server sees it: a (possibly not yet linked) companion device."""

    session_id: str
    opened: bool = False
    online: bool = False
    network_up: bool = True
    jid: str | None = None
    phone: str | None = None
    pairing: _Pairing | None = None
    restricted_until: float = 0.0
    control: collections.deque[EngineEvent] = field(default_factory=collections.deque)
    mail: collections.deque[tuple[int, EngineEvent]] = field(default_factory=collections.deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    pump: asyncio.Task[None] | None = None


class SimulatorEngine(Engine):
    """An in-process simulated WhatsApp network (see the module documentation)."""

    name = ENGINE_NAME

    def __init__(
        self,
        data_dir: Path,
        *,
        qr_schedule: Sequence[float] = (60.0, 20.0, 20.0, 20.0, 20.0, 20.0),
        latency: float = 0.2,
        contacts: Sequence[str] = (),
    ) -> None:
        self._db = SqliteDatabase(
            data_dir / "simulator.db", synchronous="normal", migrations=MIGRATIONS, name="zapgate-sim"
        )
        self._qr_schedule = tuple(qr_schedule)
        self._latency = latency
        self._extra_contacts = [parse_phone(c) for c in contacts]
        self._sink: EngineSink | None = None
        self._devices: dict[str, _Device] = {}
        self._accounts: dict[str, tuple[str, str]] = {}  # phone -> (kind, lid)
        self._linked: dict[str, list[str]] = collections.defaultdict(list)  # phone -> session ids
        self._qr_index: dict[str, tuple[str, int]] = {}  # code -> (session id, attempt)
        self._used_codes: dict[str, str] = {}  # code of an ended pairing -> session id
        self._tasks = BackgroundTasks(log)
        """Every task of the simulation: device pumps and delayed deliveries, logged if they fail."""
        self._acknowledged: list[int] = []  # mailbox rows the gateway stored, not yet deleted
        self._presence = SimPresence(
            devices_of=lambda phone: [self._devices[s] for s in self._linked.get(phone, ()) if s in self._devices],
            device=self._devices.get,
            emit=lambda device, event: self._emit(self._devices[device.session_id], event),
            always_online=lambda phone: self._accounts.get(phone, ("", ""))[0] == "echo",
        )
        self._cdn = SimulatedCdn(data_dir / "simulator-media")

    # -- engine interface

    async def start(self, sink: EngineSink) -> None:
        self._sink = sink
        await self._db.open()

        def load(conn: sqlite3.Connection) -> tuple[list[Any], list[Any], list[Any]]:
            return (
                conn.execute("SELECT phone, kind, lid FROM accounts").fetchall(),
                conn.execute("SELECT session_id, jid, phone FROM devices").fetchall(),
                conn.execute("SELECT id, session_id, event FROM mailbox ORDER BY id").fetchall(),
            )

        accounts, devices, mail = await self._db.read(load)
        self._accounts = {phone: (kind, lid) for phone, kind, lid in accounts}
        for session_id, jid, phone in devices:
            device = self._device(session_id)
            device.jid, device.phone = jid, phone
            self._linked[phone].append(session_id)
        for row_id, session_id, raw in mail:
            self._device(session_id).mail.append((row_id, decode_event(raw)))
        for phone in [ECHO_PHONE, *self._extra_contacts]:
            kind = "echo" if phone == ECHO_PHONE else "contact"
            if phone not in self._accounts:
                await self._add_account(phone, kind)

    async def close(self) -> None:
        for device in self._devices.values():
            self._cancel_pairing(device)
        await self._tasks.close()
        self._forget_acknowledged()
        await self._db.close()

    async def open(
        self, session_id: str, device_record: dict[str, Any] | None, *, pair_phone: str | None = None
    ) -> None:
        device = self._device(session_id)
        if device.opened:
            return
        device.opened = True
        if device.pump is None or device.pump.done():
            device.pump = self._tasks.spawn(self._pump(device), name=f"sim-pump-{session_id}")
        if device_record is None:
            self._begin_pairing(device, parse_phone(pair_phone) if pair_phone else None)
            return
        paired_by = device_record.get("engine", ENGINE_NAME)
        if paired_by != ENGINE_NAME:
            # Another engine's device (the data directory was used with --engine whatsapp): keep it for that engine.
            device.opened = False
            log.error(
                "session %s was paired by the %r engine, not the simulator; its pairing is kept. Run the gateway "
                "with --engine %s to use it, or log the session out to pair it again here",
                session_id,
                paired_by,
                paired_by,
            )
            self._emit(
                device,
                Failed(
                    reason="engine_mismatch",
                    detail=f"paired by the {paired_by!r} engine; run the gateway with --engine {paired_by}",
                ),
            )
            return
        if device.jid is None or device.jid != device_record.get("jid"):
            device.opened = False
            self._emit(device, LoggedOut(reason="device_removed"))
            return
        self._later(self._come_online, device)

    async def stop(self, session_id: str) -> None:
        device = self._devices.get(session_id)
        if device is None:
            return
        self._cancel_pairing(device)
        device.opened = device.online = False

    async def logout(self, session_id: str, device_record: dict[str, Any] | None) -> None:
        device = self._devices.get(session_id)
        if device is None:
            return
        self._cancel_pairing(device)
        device.opened = device.online = False
        await self._unlink(device)
        self._presence.forget(session_id)
        # Nothing is left to deliver to this device: forget it (a later open starts afresh).
        if device.pump is not None:
            device.pump.cancel()
        del self._devices[session_id]

    async def send(self, session_id: str, message_id: str, to: Jid, content: Content, extra: Outgoing = PLAIN) -> Sent:
        device = self._devices.get(session_id)
        if device is None or not device.online or device.phone is None:
            raise SendError("not_connected", "the session is not connected to WhatsApp", retryable=True)
        if device.restricted_until > time.time():
            raise SendError("send_restricted", "WhatsApp restricts this account's sending", retryable=True)
        if not to.is_user:
            raise SendError("unsupported_recipient", "the simulator only delivers to phone numbers", retryable=False)
        asked = to
        to = Jid(self._account_of(to.user))
        if to.user not in self._accounts:
            raise SendError("not_on_whatsapp", f"{to.user} is not on WhatsApp", retryable=False)
        media_ref = None
        if media_of(content) is not None:  # the file goes to WhatsApp's media servers; the message points there
            content, media_ref = await self._cdn.publish(content, extra.media)
        sender = device.phone
        now = int(time.time())
        reply_to = extra.quote.message_id if extra.quote else None
        message = self._message(sender, message_id, content, reply_to, now, extra, media_ref)
        # The recipient's phone is always online in the simulation: it confirms delivery at once.
        delivered = ReceiptIn(message_ids=[message_id], chat=_user_jid(to.user), status="delivered", timestamp=now)
        mail = self._address([(to.user, message), (sender, delivered)])
        target_id = target_of(content)

        def record(conn: sqlite3.Connection) -> tuple[tuple[int, list[int] | None, str | None], list[Any]]:
            row = conn.execute(
                "SELECT timestamp FROM deliveries WHERE sender = ? AND message_id = ?", (sender, message_id)
            ).fetchone()
            if row:  # a repeated id: WhatsApp drops it
                conn.execute(
                    "UPDATE deliveries SET attempts = attempts + 1 WHERE sender = ? AND message_id = ?",
                    (sender, message_id),
                )
                return (int(row[0]), None, None), []
            target = find_delivery(conn, target_id) if target_id is not None else None
            refused = refusal(content, sender, to.user, target, now)
            if refused is not None:
                return (now, None, refused), []
            insert_delivery(conn, sender, to.user, message_id, content, reply_to, now)
            return (now, _store_mail(conn, mail), None), []

        timestamp, row_ids, refused = await self._db.write(record)
        if refused is not None:
            raise SendError(refused, f"WhatsApp refused the {type(content).__name__.lower()}", retryable=False)
        if row_ids is not None:
            self._later(self._post, mail, row_ids)
            if self._accounts[to.user][0] == "echo":
                self._later(self._echo, sender, to.user, message_id, content, media_ref)
        # Like whatsmeow's SendMessage, the send returns when the server's acknowledgement is back.
        if self._latency:
            await asyncio.sleep(self._latency)
        return Sent(timestamp, str(to) if to != asked else None)

    def _account_of(self, phone: str) -> str:
        """The account a typed number reaches: itself, or, like WhatsApp, a Brazilian mobile number registered
        before the ninth digit (typed ``55 11 9xxxx-xxxx``, known as ``55 11 xxxx-xxxx``)."""
        if phone not in self._accounts and len(phone) == 13 and phone.startswith("55") and phone[4] == "9":
            older = phone[:4] + phone[5:]
            if older in self._accounts:
                return older
        return phone

    async def mark_read(self, session_id: str, chat: Jid, sender: Jid | None, message_ids: list[str]) -> None:
        device = self._devices.get(session_id)
        if device is None or device.phone is None:
            return
        author = (sender or chat).user
        reader = device.phone

        def find(conn: sqlite3.Connection) -> list[str]:
            marks = ",".join("?" * len(message_ids))
            rows = conn.execute(
                f"SELECT message_id FROM deliveries WHERE sender = ? AND recipient = ? AND message_id IN ({marks})",  # noqa: S608
                (author, reader, *message_ids),
            )
            return [r[0] for r in rows]

        known = await self._db.read(find)
        if known:
            receipt = ReceiptIn(message_ids=known, chat=_user_jid(reader), status="read", timestamp=int(time.time()))
            await self._mail_account(author, receipt)

    async def chat_presence(self, session_id: str, chat: Jid, state: ChatState) -> None:
        device = self._sending_device(session_id)
        if not chat.is_user:
            raise SendError("unsupported_recipient", "the simulator only has one-to-one chats", retryable=False)
        self._presence.chat_state(device.phone or "", self._account_of(chat.user), state)

    async def set_presence(self, session_id: str, state: Availability) -> None:
        self._presence.set(self._sending_device(session_id).phone or "", state)

    async def subscribe_presence(self, session_id: str, jid: Jid) -> None:
        device = self._sending_device(session_id)
        if not jid.is_user:
            raise SendError("unsupported_recipient", "presence is only known for contacts", retryable=False)
        self._presence.subscribe(device, self._account_of(jid.user))

    def _sending_device(self, session_id: str) -> _Device:
        device = self._devices.get(session_id)
        if device is None or not device.online or device.phone is None:
            raise SendError("not_connected", "the session is not connected to WhatsApp", retryable=True)
        return device

    # -- phone-side actions (the sim.* commands)

    async def scan(self, code: str, phone: str, *, owned: Callable[[str], bool] = lambda _: True) -> Me:
        """A phone with number ``phone`` scans a QR code or types a pairing code; returns the linked identity.

        ``owned(session_id)`` limits which sessions' codes count (the caller's tenant's); any other code is
        reported as unknown.
        """
        phone = parse_phone(phone)
        session_id = self._find_code(code.strip(), phone, owned)
        device = self._devices[session_id]
        self._cancel_pairing(device)
        if phone not in self._accounts:
            await self._add_account(phone, "phone")
        me, record = await self._link(device, phone)
        self._emit(device, Paired(me=me, device=record))
        # WhatsApp asks a freshly paired device to reconnect (stream error 515) before it is online.
        self._later(self._come_online, device)
        return me

    async def unlink(self, session_id: str) -> None:
        """The phone removes the session from its linked devices."""
        device = self._devices.get(session_id)
        if device is None or device.jid is None:
            raise SessionNotPaired("the session is not linked to a phone")
        was_open = device.opened
        device.opened = device.online = False
        await self._unlink(device)
        if was_open:
            self._emit(device, LoggedOut(reason="unlinked_from_phone"))

    async def set_network(self, session_id: str, online: bool) -> None:
        device = self._device(session_id)
        if device.network_up == online:
            return
        device.network_up = online
        if not online and device.online:
            device.online = False
            self._emit(device, Disconnected(reason="network"))
        elif online and device.opened and device.jid is not None:
            self._later(self._come_online, device)

    async def restrict(self, session_id: str, seconds: float, reason: str) -> float:
        """WhatsApp restricts the session's sending for ``seconds``; sends are refused until then."""
        device = self._devices.get(session_id)
        if device is None or device.phone is None:
            raise SessionNotPaired("the session is not linked to a phone")
        device.restricted_until = time.time() + seconds
        self._emit(device, SendRestricted(reason=reason, until=device.restricted_until))
        return device.restricted_until

    async def receive(
        self,
        session_id: str,
        from_phone: str,
        content: Content,
        reply_to: str | None = None,
        media: MediaFile | None = None,
    ) -> str:
        """A simulated contact writes to the session's number (a media message with the file ``media``); returns
        the new message's id."""
        device = self._devices.get(session_id)
        if device is None or device.phone is None:
            raise SessionNotPaired("the session is not linked to a phone")
        media_ref = None
        if media_of(content) is not None:
            content, media_ref = await self._cdn.publish(content, media)
        sender = parse_phone(from_phone)
        if sender not in self._accounts:
            await self._add_account(sender, "contact")
        message_id = "3A" + secrets.token_hex(9).upper()
        refused = await self._accept(sender, device.phone, message_id, content, reply_to, media_ref)
        if refused is not None:
            raise InvalidRequest(f"WhatsApp would refuse this from {sender}: {refused}")
        return message_id

    async def download(self, session_id: str, media_ref: dict[str, Any], into: Path) -> None:
        await self._cdn.download(session_id, media_ref, into)

    async def fail_downloads(self, session_id: str, times: int, reason: str) -> int:
        """The session's next ``times`` downloads of received files fail with ``reason`` (see :mod:`.cdn`)."""
        if session_id not in self._devices:
            raise SessionNotPaired("the session is not linked to a phone")
        return self._cdn.fail_next(session_id, times, reason)

    async def deliveries(self) -> list[dict[str, Any]]:
        """Every message WhatsApp's side accepted, with how many times it was sent (for tests and demos)."""

        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT sender, message_id, recipient, text, timestamp, attempts, content FROM deliveries "
                "ORDER BY accepted"
            )
            keys = ("sender", "message_id", "recipient", "text", "timestamp", "attempts")
            return [
                dict(zip(keys, r[:6], strict=True), content=decode_content(r[6]) if r[6] else Text(text=r[3]))
                for r in rows
            ]

        return await self._db.read(read)

    # -- internals: pairing

    def _device(self, session_id: str) -> _Device:
        device = self._devices.get(session_id)
        if device is None:
            device = self._devices[session_id] = _Device(session_id)
        return device

    def _begin_pairing(self, device: _Device, pair_phone: str | None) -> None:
        self._cancel_pairing(device)
        schedule = QrSchedule(time.time(), self._qr_schedule)
        pairing = _Pairing(schedule, [make_qr_code() for _ in self._qr_schedule], pair_phone)
        device.pairing = pairing
        for attempt, code in enumerate(pairing.codes, start=1):
            self._qr_index[code] = (device.session_id, attempt)
        self._show_qr(device, 1)
        if pair_phone is not None:
            # whatsmeow can only ask for a pairing code once the first QR proved the socket is up.
            pairing.pair_code = make_pair_code()
            self._qr_index[pairing.pair_code] = (device.session_id, 0)
            self._emit(device, PairCode(code=pairing.pair_code, expires_at=schedule.ends_at))

    def _show_qr(self, device: _Device, attempt: int) -> None:
        pairing = device.pairing
        if pairing is None:
            return
        loop = asyncio.get_running_loop()
        if attempt > pairing.schedule.max_attempts:
            self._cancel_pairing(device)
            device.opened = False
            self._emit(device, Failed(reason="qr_timeout"))
            return
        slot = pairing.schedule.slot(attempt)
        self._emit(
            device,
            QrCode(
                code=pairing.codes[attempt - 1],
                attempt=attempt,
                max_attempts=slot.max_attempts,
                expires_at=slot.expires_at,
            ),
        )
        pairing.timer = loop.call_at(
            loop.time() + max(0.0, slot.expires_at - time.time()), self._show_qr, device, attempt + 1
        )

    def _cancel_pairing(self, device: _Device) -> None:
        pairing, device.pairing = device.pairing, None
        if pairing is None:
            return
        if pairing.timer is not None:
            pairing.timer.cancel()
        for code in [*pairing.codes, pairing.pair_code]:
            if code is not None:
                self._qr_index.pop(code, None)
                self._used_codes[code] = device.session_id
        while len(self._used_codes) > MAX_REMEMBERED_CODES:
            del self._used_codes[next(iter(self._used_codes))]

    def _find_code(self, code: str, phone: str, owned: Callable[[str], bool]) -> str:
        found = self._qr_index.get(code)
        if found is None or not owned(found[0]):
            used_by = self._used_codes.get(code)
            if used_by is not None and owned(used_by):
                raise QRAlreadyUsed("this code was already used or its pairing ended; start the session again")
            raise QRUnknown("no session is showing this code")
        session_id, attempt = found
        pairing = self._devices[session_id].pairing
        assert pairing is not None
        if attempt == 0:
            if phone != pairing.pair_phone:
                raise QRUnknown("this pairing code was issued for another phone number")
            return session_id
        current = pairing.schedule.current(time.time())
        if current is None or current.attempt != attempt:
            raise QRExpired(f"QR code {attempt} of {pairing.schedule.max_attempts} has expired; scan the current one")
        return session_id

    async def _link(self, device: _Device, phone: str) -> tuple[Me, dict[str, Any]]:
        def link(conn: sqlite3.Connection) -> tuple[int, list[Any]]:
            row = conn.execute("SELECT coalesce(max(device_no), 0) FROM devices WHERE phone = ?", (phone,)).fetchone()
            number = int(row[0]) + 1
            conn.execute("DELETE FROM devices WHERE session_id = ?", (device.session_id,))
            conn.execute(
                "INSERT INTO devices (jid, phone, device_no, session_id, linked_at) VALUES (?, ?, ?, ?, ?)",
                (f"{phone}:{number}@s.whatsapp.net", phone, number, device.session_id, time.time()),
            )
            return number, []

        number = await self._db.write(link)
        device.jid, device.phone = f"{phone}:{number}@s.whatsapp.net", phone
        self._linked[phone].append(device.session_id)
        me = self._me(device)
        return me, {"engine": ENGINE_NAME, "jid": device.jid, "phone": phone, "lid": me.lid}

    async def _unlink(self, device: _Device) -> None:
        session_id = device.session_id

        def unlink(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
            conn.execute("DELETE FROM devices WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM mailbox WHERE session_id = ?", (session_id,))
            return None, []

        await self._db.write(unlink)
        if device.phone is not None and session_id in self._linked[device.phone]:
            self._linked[device.phone].remove(session_id)
        device.jid = device.phone = None
        device.mail.clear()

    def _me(self, device: _Device) -> Me:
        assert device.jid is not None and device.phone is not None
        _, lid = self._accounts[device.phone]
        # Like the real engine: ``jid`` names the linked device, ``lid`` the account (no device part).
        return Me(phone=device.phone, jid=device.jid, lid=f"{lid}@lid")

    def _come_online(self, device: _Device) -> None:
        if not device.opened or device.jid is None or device.online:
            return
        if not device.network_up:
            self._emit(device, Disconnected(reason="network"))
            return
        device.online = True
        self._emit(device, Connected(me=self._me(device)))

    # -- internals: the network

    async def _add_account(self, phone: str, kind: str) -> None:
        lid = str(10**13 + secrets.randbelow(9 * 10**13))
        name = "Echo" if kind == "echo" else f"Contact {phone[-4:]}" if kind == "contact" else f"Phone {phone[-4:]}"

        def add(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
            conn.execute(
                "INSERT OR IGNORE INTO accounts (phone, lid, kind, name) VALUES (?, ?, ?, ?)", (phone, lid, kind, name)
            )
            return None, []

        await self._db.write(add)
        self._accounts.setdefault(phone, (kind, lid))

    def _message(
        self,
        sender: str,
        message_id: str,
        content: Content,
        reply_to: str | None,
        now: int,
        extra: Outgoing = PLAIN,
        media_ref: dict[str, Any] | None = None,
    ) -> MessageIn:
        """A 1:1 message from ``sender`` as the recipient's devices receive it."""
        chat = _user_jid(sender)
        _, lid = self._accounts.get(sender, ("contact", ""))
        return MessageIn(
            message_id=message_id,
            chat=chat,
            sender=chat,
            sender_lid=f"{lid}@lid" if lid else None,
            content=content,
            timestamp=now,
            reply_to=reply_to,
            push_name=self._name(sender),
            mentions=[m for m in extra.mentions if m != "all"],
            forwarded=extra.forwarded,
            media_ref=media_ref,
        )

    def _name(self, phone: str) -> str:
        kind, _ = self._accounts.get(phone, ("contact", ""))
        return "Echo" if kind == "echo" else f"+{phone}"

    async def _accept(
        self,
        sender: str,
        recipient: str,
        message_id: str,
        content: Content,
        reply_to: str | None,
        media_ref: dict[str, Any] | None = None,
    ) -> str | None:
        """WhatsApp's server accepts a message from a simulated phone and mails it to the recipient's devices;
        returns why it refused it instead, if it did."""
        now = int(time.time())
        message = self._message(sender, message_id, content, reply_to, now, media_ref=media_ref)
        mail = self._address([(recipient, message)])
        target_id = target_of(content)

        def store(conn: sqlite3.Connection) -> tuple[list[int] | str, list[Any]]:
            target = find_delivery(conn, target_id) if target_id is not None else None
            refused = refusal(content, sender, recipient, target, now)
            if refused is not None:
                return refused, []
            insert_delivery(conn, sender, recipient, message_id, content, reply_to, now)
            return _store_mail(conn, mail), []

        stored = await self._db.write(store)
        if isinstance(stored, str):
            return stored
        self._post(mail, stored)
        return None

    async def _echo(
        self, sender: str, echo: str, message_id: str, content: Content, media_ref: dict[str, Any] | None
    ) -> None:
        """The echo contact reads the message, then answers it: the same content as a reply, or a vote for the
        first option of a poll."""
        await asyncio.sleep(self._latency)
        await self._mail_account(
            sender, ReceiptIn(message_ids=[message_id], chat=_user_jid(echo), status="read", timestamp=int(time.time()))
        )
        answer: Content | None = echo_answer(content)
        reply_to: str | None = message_id
        if isinstance(content, Poll):
            answer, reply_to = Vote(message_id=message_id, options=[content.options[0]]), None
        if answer is None:
            return
        self._presence.chat_state(echo, sender, "typing")
        await asyncio.sleep(self._latency)
        await self._accept(echo, sender, "3A" + secrets.token_hex(9).upper(), answer, reply_to, media_ref)

    async def _mail_account(self, phone: str, event: EngineEvent) -> None:
        """Queue ``event`` durably for every device linked to ``phone`` and wake them."""
        mail = self._address([(phone, event)])
        if mail:
            self._post(mail, await self._db.write(lambda conn: (_store_mail(conn, mail), [])))

    def _address(self, items: Sequence[tuple[str, EngineEvent]]) -> list[tuple[_Device, EngineEvent, bytes]]:
        """Mail for every device linked to each phone: (device, event, encoded event)."""
        mail = []
        for phone, event in items:
            raw = encode_event(event)
            mail += [(self._devices[s], event, raw) for s in self._linked.get(phone, ()) if s in self._devices]
        return mail

    def _post(self, mail: Sequence[tuple[_Device, EngineEvent, bytes]], row_ids: Sequence[int]) -> None:
        """Hand stored mail to the devices' pumps."""
        for (device, event, _), row_id in zip(mail, row_ids, strict=True):
            device.mail.append((row_id, event))
            device.wake.set()

    def _delivered(self, row_id: int) -> None:
        """Forget mail the gateway stored. Deletions are batched: one write for all acknowledged so far."""
        self._acknowledged.append(row_id)
        if len(self._acknowledged) == 1:
            asyncio.get_running_loop().call_soon(self._forget_acknowledged)

    def _forget_acknowledged(self) -> None:
        ids, self._acknowledged = self._acknowledged, []
        if not ids or self._db.closed:
            return

        def delete(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
            conn.executemany("DELETE FROM mailbox WHERE id = ?", [(i,) for i in ids])
            return None, []

        # Losing this write in a crash only means the mail is offered again after the restart, which the
        # gateway handles (messages are deduplicated by id); so nobody waits for it.
        self._db.submit(delete).add_done_callback(_log_failure)

    def _emit(self, device: _Device, event: EngineEvent) -> None:
        device.control.append(event)
        device.wake.set()

    def _later(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` after the simulated network latency, in an owned task."""
        self._tasks.later(self._latency, fn, *args, name=f"sim-{getattr(fn, '__name__', 'later')}")

    async def _pump(self, device: _Device) -> None:
        """Deliver a device's events to the sink in order: link events first, mail while online.

        Mail leaves the mailbox only after the sink returned, that is after the gateway stored it; if the
        sink fails the same item is offered again a second later.
        """
        while True:
            if device.control:
                await self._call_sink(device, device.control.popleft())
                continue
            if device.online and device.mail:
                row_id, event = device.mail[0]
                if not await self._call_sink(device, event):
                    await asyncio.sleep(1.0)
                    continue
                if device.mail and device.mail[0][0] == row_id:
                    device.mail.popleft()
                self._delivered(row_id)
                continue
            device.wake.clear()
            await device.wake.wait()

    async def _call_sink(self, device: _Device, event: EngineEvent) -> bool:
        assert self._sink is not None
        try:
            await self._sink(device.session_id, event)
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: handling %s failed", device.session_id, type(event).__name__)
            return False


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("simulator: could not clear delivered mail: %s", future.exception())


def _store_mail(conn: sqlite3.Connection, mail: Sequence[tuple[_Device, EngineEvent, bytes]]) -> list[int]:
    return insert_mail(conn, [(device.session_id, raw) for device, _, raw in mail])
