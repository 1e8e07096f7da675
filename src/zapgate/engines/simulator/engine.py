"""The simulator engine itself: devices, pairing, the network of accounts and delivery (see the package docs)."""

from __future__ import annotations

import asyncio
import collections
import heapq
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...background import BackgroundTasks
from ...jid import LID_SERVER, Jid, parse_phone
from ...protocol import Me
from ...protocol.content import Content, media_of
from ...storage.database import Conn, padded_chunks
from ..base import (
    PLAIN,
    SINK_BATCH,
    Availability,
    ChatState,
    Connected,
    Disconnected,
    Engine,
    EngineBatchSink,
    EngineEvent,
    EngineSink,
    Failed,
    IdentityIn,
    IdentityPair,
    LoggedOut,
    MessageIn,
    Outgoing,
    ReceiptIn,
    SendError,
    Sent,
)
from .accounts import SimulatedAccounts
from .cdn import SimulatedCdn
from .devices import Device, Mail, user_jid
from .groups import SimulatedGroups
from .pairing import Pairings
from .phones import SimulatedPhones
from .presence import SimPresence
from .records import accepted_so_far, decode_event, encode_event, record_connect
from .sends import Replaced, SendRequest, mail_each, record_sends
from .server import SimServer

__all__ = ["ECHO_PHONE", "SimulatorEngine"]

log = logging.getLogger("zapgate.engines.simulator")

ENGINE_NAME = "simulator"
"""Also the ``engine`` of the device records it hands out (records without one are the simulator's too)."""

ECHO_PHONE = "15550000000"
LOCAL_NODE = "local"
"""The node name of a single gateway's connections."""

LIGHT_DELETE = 4
"""A deletion of acknowledged mail of at most this many rows is light enough to run on the event loop's thread
(``inline``, storage/database.py); a burst's, of dozens, runs in the writer thread."""


DELETE_CHUNK = 64
"""Most mailbox ids one ``DELETE … IN (…)`` names."""


def _delete_mail(conn: Conn, deletions: list[list[int]]) -> tuple[list[tuple[bool, Any]], list[Any]]:
    """Delete acknowledged mail: each request is a list of mailbox ids (a batched write). The ids go by
    :data:`DELETE_CHUNK` into one statement each (:func:`~zapgate.storage.database.padded_chunks`: an id named twice
    is deleted once): about a fifth less CPU a row than a ``DELETE`` per id (``bench/findings.md``, round 22)."""
    for chunk in padded_chunks([i for ids in deletions for i in ids], DELETE_CHUNK):
        conn.execute(f"DELETE FROM mailbox WHERE id IN ({', '.join(['?'] * len(chunk))})", chunk)  # noqa: S608
    return [(True, None)] * len(deletions), []


class SimulatorEngine(SimulatedPhones, SimulatedAccounts, SimulatedGroups, Engine):
    """A simulated WhatsApp network (see the module documentation).

    ``database_url`` (PostgreSQL) shares the simulated WhatsApp with the other nodes of a cluster; ``node`` is
    this gateway's instance id there, and ``cdn_dir`` the directory every node mounts for media files."""

    name = ENGINE_NAME

    def __init__(
        self,
        data_dir: Path,
        *,
        qr_schedule: Sequence[float] = (60.0, 20.0, 20.0, 20.0, 20.0, 20.0),
        latency: float = 0.2,
        contacts: Sequence[str] = (),
        history_messages: int = 0,
        database_url: str | None = None,
        node: str | None = None,
        lock_hold_limit_s: float | None = None,
        cdn_dir: Path | None = None,
    ) -> None:
        self._server = SimServer(
            data_dir, database_url=database_url, node=node or LOCAL_NODE, lock_hold_limit_s=lock_hold_limit_s
        )
        self._server.on_mail = self._heard_mail
        self._server.on_replaced = self._heard_replaced
        self._db = self._server.db
        self._accounts = self._server.accounts  # phone -> (kind, lid); kept up to date by the server
        self._latency = latency
        self._extra_contacts = [parse_phone(c) for c in contacts]
        self._history_messages = history_messages
        self._sink: EngineSink | None = None
        self._batch_sink: EngineBatchSink | None = None
        self._devices: dict[str, Device] = {}
        self._linked: dict[str, list[str]] = collections.defaultdict(list)
        """phone → session ids of the linked devices known on this node (for presence)."""
        self._pairings = Pairings(self._db, qr_schedule, self._emit)
        self._tasks = BackgroundTasks(log)
        """Every task of the simulation: device pumps and delayed deliveries, logged if they fail."""
        self._acknowledged: list[int] = []  # mailbox rows the gateway stored, to delete
        self._deleting: set[int] = set()  # ... and not deleted yet: never offered again
        self._posting: Mail = []  # mail of sends answered in this turn of the loop (see _post_later)
        self._presence = SimPresence(
            devices_of=lambda phone: [self._devices[s] for s in self._linked.get(phone, ()) if s in self._devices],
            device=self._devices.get,
            emit=lambda device, event: self._emit(self._devices[device.session_id], event),
            always_online=lambda phone: self._accounts.get(phone, ("", ""))[0] == "echo",
        )
        self._cdn = SimulatedCdn(cdn_dir or data_dir / "simulator-media")

    # -- engine interface

    async def start(self, sink: EngineSink, batch_sink: EngineBatchSink | None = None) -> None:
        self._sink = sink
        self._batch_sink = batch_sink
        await self._server.open()
        for phone in [ECHO_PHONE, *self._extra_contacts]:
            kind = "echo" if phone == ECHO_PHONE else "contact"
            if await self._server.account(phone) is None:
                await self._server.add_account(phone, kind)

    async def close(self) -> None:
        for device in self._devices.values():
            self._pairings.cancel(device)
        await self._tasks.close()
        self._forget_acknowledged()
        await self._server.close()

    async def open(
        self, session_id: str, device_record: dict[str, Any] | None, *, pair_phone: str | None = None, epoch: int = 0
    ) -> None:
        device = self._device(session_id)
        if device.opened:
            return
        device.opened, device.epoch = True, epoch
        await self._refresh(device, with_mail=True)  # (another node may have run it since)
        if not device.opened or device.epoch != epoch:
            return  # stopped meanwhile
        if device.pump is None or device.pump.done():
            device.pump = self._tasks.spawn(self._pump(device), name=f"sim-pump-{session_id}")
        if device_record is None:
            await self._pairings.begin(device, parse_phone(pair_phone) if pair_phone else None)
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
        self._pairings.cancel(device)
        device.opened = device.online = False
        await self._disconnect(device)

    async def logout(self, session_id: str, device_record: dict[str, Any] | None) -> None:
        device = self._devices.get(session_id) or await self._known_device(session_id)
        self._pairings.cancel(device)
        device.opened = device.online = False
        await self._disconnect(device)
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
        if to.is_group:
            return await self._send_to_group(device, message_id, to, content, extra)
        if not to.is_user and to.server != LID_SERVER:
            raise SendError("unsupported_recipient", "the simulator delivers to people and groups", retryable=False)
        asked = to
        phone = await self._phone_of(to)
        if phone is None or phone not in self._accounts:
            raise SendError("not_on_whatsapp", f"{to} is not on WhatsApp", retryable=False)
        to = Jid(phone)
        media_ref = None
        if media_of(content) is not None:  # the file goes to WhatsApp's media servers; the message points there
            content, media_ref = await self._cdn.publish(content, extra.media)
        sender = device.phone
        now = int(time.time())
        reply_to = extra.quote.message_id if extra.quote else None
        message = self._message(sender, message_id, content, reply_to, now, extra, media_ref)
        # The recipient's phone is always online in the simulation: it confirms delivery at once.
        delivered = self._receipt(to.user, [message_id], "delivered", now)
        request = SendRequest(
            device.session_id,
            (self._server.node, device.epoch),
            sender,
            to.user,
            message_id,
            content,
            reply_to,
            now,
            message,
            delivered,
        )
        try:
            # Every send asked for before the simulator's next group commit is recorded by one write.
            timestamp, mail, refused = await self._db.submit_batched(
                "send", request, self._record_sends, inline=True
            )
        except Replaced:
            raise SendError(
                "stream_replaced", "another connection replaced this device's; not sent", retryable=True
            ) from None
        if refused is not None:
            raise SendError(refused, f"WhatsApp refused the {type(content).__name__.lower()}", retryable=False)
        if mail is not None:
            self._post_later(mail)
            if self._accounts[to.user][0] == "echo":
                self._post_collected()  # the receipt's post goes before the echo's answer
                self._later(self._echo, sender, to.user, message_id, content, media_ref)
        # Like whatsmeow's SendMessage, the send returns when the server's acknowledgement is back.
        if asked.is_user and to.user not in device.lids_told:
            # Writing to a number the first time, the sender's device learns its LID (whatsmeow's usync look-up,
            # whose answer whatsmeow keeps: later sends to that number ask nothing).
            device.lids_told.add(to.user)
            self._emit(device, IdentityIn(pairs=[IdentityPair(phone=user_jid(to.user), lid=self._lid_jid(to.user))]))
        if self._latency:
            await asyncio.sleep(self._latency)
        return Sent(timestamp, str(to) if asked.is_user and to != asked else None)

    def _record_sends(self, conn: Conn, sends: list[SendRequest]) -> tuple[list[tuple[bool, Any]], list[Any]]:
        return record_sends(conn, sends, self._server.announce)

    async def _account_of(self, phone: str) -> str:
        """The account a typed number reaches: itself, or, like WhatsApp, a Brazilian mobile number registered
        before the ninth digit (typed ``55 11 9xxxx-xxxx``, known as ``55 11 xxxx-xxxx``)."""
        ninth_digit = len(phone) == 13 and phone.startswith("55") and phone[4] == "9"
        if ninth_digit and await self._server.account(phone) is None:
            older = phone[:4] + phone[5:]
            if await self._server.account(older) is not None:
                return older
        return phone

    async def _phone_of(self, jid: Jid) -> str | None:
        """The number of the account a person's JID reaches: a typed number (see :meth:`_account_of`) or a LID."""
        if jid.server == LID_SERVER:
            return await self._server.phone_of_lid(jid.user)
        if jid.is_user:
            return await self._account_of(jid.user)
        return None

    def _lid_jid(self, phone: str) -> str:
        return f"{self._accounts[phone][1]}@{LID_SERVER}"

    def _shown_as(self, phone: str) -> str:
        """How others see an account: by its LID alone when it hides its number, else by its number."""
        return self._lid_jid(phone) if self._server.hides_phone(phone) else user_jid(phone)

    def _receipt(self, phone: str, message_ids: list[str], status: Any, now: int) -> ReceiptIn:
        """A receipt from the account ``phone`` for messages sent to it."""
        return ReceiptIn(
            message_ids=message_ids,
            chat=self._shown_as(phone),
            chat_lid=self._lid_jid(phone),
            status=status,
            timestamp=now,
        )

    async def mark_read(self, session_id: str, chat: Jid, sender: Jid | None, message_ids: list[str]) -> None:
        device = self._devices.get(session_id)
        if device is None or device.phone is None:
            return
        reader = device.phone
        marks = ",".join("?" * len(message_ids))
        if chat.is_group:
            group = str(chat)

            def in_group(conn: Conn) -> list[tuple[str, str]]:
                rows = conn.execute(
                    f"SELECT sender, message_id FROM deliveries WHERE recipient = ? AND message_id IN ({marks})",  # noqa: S608
                    (group, *message_ids),
                )
                return [(str(r[0]), str(r[1])) for r in rows]

            by_author: dict[str, list[str]] = {}
            for author_phone, message_id in await self._db.read(in_group):
                if author_phone != reader:
                    by_author.setdefault(author_phone, []).append(message_id)
            now = int(time.time())
            for author_phone, ids in by_author.items():
                await self._mail_account(
                    author_phone, ReceiptIn(message_ids=ids, chat=group, status="read", timestamp=now)
                )
            return
        author = await self._phone_of(sender or chat)
        if author is None:
            return

        def find(conn: Conn) -> list[str]:
            rows = conn.execute(
                f"SELECT message_id FROM deliveries WHERE sender = ? AND recipient = ? AND message_id IN ({marks})",  # noqa: S608
                (author, reader, *message_ids),
            )
            return [r[0] for r in rows]

        known = await self._db.read(find)
        if known:
            await self._mail_account(author, self._receipt(reader, known, "read", int(time.time())))

    async def chat_presence(self, session_id: str, chat: Jid, state: ChatState) -> None:
        device = self._sending_device(session_id)
        phone = await self._phone_of(chat)
        if phone is None:
            raise SendError(
                "unsupported_recipient", "the simulator models typing in one-to-one chats only", retryable=False
            )
        self._presence.chat_state(device.phone or "", phone, state)

    async def set_presence(self, session_id: str, state: Availability) -> None:
        self._presence.set(self._sending_device(session_id).phone or "", state)

    async def subscribe_presence(self, session_id: str, jid: Jid) -> None:
        device = self._sending_device(session_id)
        phone = await self._phone_of(jid)
        if phone is None:
            raise SendError("unsupported_recipient", "presence is only known for contacts", retryable=False)
        self._presence.subscribe(device, phone)

    def _sending_device(self, session_id: str) -> Device:
        device = self._devices.get(session_id)
        if device is None or not device.online or device.phone is None:
            raise SendError("not_connected", "the session is not connected to WhatsApp", retryable=True)
        return device

    # -- internals: devices and pairing

    def _device(self, session_id: str) -> Device:
        device = self._devices.get(session_id)
        if device is None:
            device = self._devices[session_id] = Device(session_id)
        return device

    async def _known_device(self, session_id: str) -> Device:
        """The device with its link as the server has it (read it if this node has not yet)."""
        device = self._device(session_id)
        if device.jid is None:
            await self._refresh(device, with_mail=False)
        return device

    async def _refresh(self, device: Device, *, with_mail: bool) -> None:
        """Read the device's link (another node may have changed it) and, ``with_mail``, its waiting mail."""

        def read(conn: Conn) -> tuple[Any, list[Any]]:
            row = conn.execute("SELECT jid, phone FROM devices WHERE session_id = ?", (device.session_id,)).fetchone()
            mail = (
                conn.execute(
                    "SELECT id, event FROM mailbox WHERE session_id = ? ORDER BY id", (device.session_id,)
                ).fetchall()
                if with_mail
                else []
            )
            return row, mail

        row, mail = await self._db.read(read)
        if device.phone is not None and device.session_id in self._linked[device.phone]:
            self._linked[device.phone].remove(device.session_id)
        device.jid, device.phone = (str(row[0]), str(row[1])) if row else (None, None)
        if device.phone is not None:
            await self._server.account(device.phone)
            self._linked[device.phone].append(device.session_id)
        if with_mail:
            self._queue(device, [(int(i), bytes(raw)) for i, raw in mail])

    def _queue(self, device: Device, mail: Sequence[tuple[int, EngineEvent | bytes]]) -> None:
        new = [item for item in mail if item[0] not in device.queued and item[0] not in self._deleting]
        if len(new) == 1:
            heapq.heappush(device.mail, new[0])
        elif new:  # a mailbox read back: one heapify instead of a push each (it comes in order, heapify is quick)
            device.mail.extend(new)
            heapq.heapify(device.mail)
        device.queued.update(row_id for row_id, _ in new)
        if mail:
            device.wake.set()

    def _heard_replaced(self, session_id: str, node: str, epoch: int) -> None:
        """Another node's connection replaced ours (stream error ``conflict/replaced``): whatsmeow stops."""
        device = self._devices.get(session_id)
        if node != self._server.node or device is None or device.epoch != epoch or not device.opened:
            return
        device.opened = device.online = False
        self._emit(device, Failed(reason="stream_replaced"))

    def _heard_mail(self, session_ids: list[str]) -> None:
        for session_id in session_ids:
            device = self._devices.get(session_id)
            if device is not None and device.opened:
                device.reload = True
                device.wake.set()

    async def _link(self, device: Device, phone: str) -> tuple[Me, dict[str, Any]]:
        def link(conn: Conn) -> tuple[int, list[Any]]:
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

    async def _unlink(self, device: Device) -> None:
        session_id = device.session_id

        def unlink(conn: Conn) -> tuple[None, list[Any]]:
            conn.execute("DELETE FROM devices WHERE session_id = ?", (session_id,))
            conn.execute("DELETE FROM mailbox WHERE session_id = ?", (session_id,))
            return None, []

        await self._db.write(unlink)
        if device.phone is not None and session_id in self._linked[device.phone]:
            self._linked[device.phone].remove(session_id)
        device.jid = device.phone = None
        device.mail.clear()
        device.queued.clear()

    def _me(self, device: Device) -> Me:
        assert device.jid is not None and device.phone is not None
        _, lid = self._accounts[device.phone]
        # Like the real engine: ``jid`` names the linked device, ``lid`` the account (no device part).
        return Me(phone=device.phone, jid=device.jid, lid=f"{lid}@lid")

    async def _come_online(self, device: Device) -> None:
        if not device.opened or device.jid is None or device.online:
            return
        if not device.network_up:
            self._emit(device, Disconnected(reason="network"))
            return
        session_id, node, epoch = device.session_id, self._server.node, device.epoch

        def connect(conn: Conn) -> tuple[Any, list[Any]]:
            result = record_connect(conn, session_id, node, epoch, time.time())
            if result.outcome == "replaced":
                self._server.announce(conn, "replaced", [session_id, str(result.other_node), str(result.other_epoch)])
            return (result, accepted_so_far(conn)), []

        result, accepted = await self._db.write(connect)
        if not device.opened or device.epoch != epoch or device.online:
            return
        if result.outcome == "refused":
            log.error("session %s: a newer connection (epoch %s) holds this device", session_id, result.other_epoch)
            device.opened = False
            self._emit(device, Failed(reason="stream_replaced"))
            return
        device.online = True
        self._emit(device, Connected(me=self._me(device)))
        if device.history_due and device.phone is not None:
            # WhatsApp sends a new device the account's history once it is online (after the live backlog): the
            # conversations as they stood when it came online; what is accepted later reaches it as live mail.
            device.history_due = False
            device.history.extend(await self._history_for(device.phone, upto=accepted))
            device.wake.set()

    async def _disconnect(self, device: Device) -> None:
        """The device's connection from this node closes (a later connect from another node replaces nothing)."""
        session_id, node, epoch = device.session_id, self._server.node, device.epoch

        def close(conn: Conn) -> tuple[None, list[Any]]:
            conn.execute(
                "DELETE FROM connections WHERE session_id = ? AND node = ? AND epoch = ?", (session_id, node, epoch)
            )
            return None, []

        await self._db.write(close)

    # -- internals: the network

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
        """A 1:1 message from ``sender`` as the recipient's devices receive it: by LID alone when the sender hides
        its number (WhatsApp's LID addressing mode), else by number with the LID beside it (``SenderAlt``)."""
        chat = self._shown_as(sender)
        lid = self._lid_jid(sender)
        return MessageIn(
            message_id=message_id,
            chat=chat,
            sender=chat,
            sender_lid=lid,
            chat_lid=lid,
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

    async def _mail_account(self, phone: str, event: EngineEvent) -> None:
        """Queue ``event`` durably for every device linked to ``phone`` and wake them."""
        self._post(await self._db.write(lambda conn: (self._store_mail(conn, [(phone, event)]), [])))

    def _store_mail(self, conn: Conn, items: Sequence[tuple[str, EngineEvent]]) -> Mail:
        """Inside a write: mail each event to every device linked to its phone, and tell the other nodes."""
        return [m for mail in mail_each(conn, items, self._server.announce) for m in mail]

    def _post(self, mail: Mail) -> None:
        """Hand stored mail to the devices open here (a device opened later reads its mailbox)."""
        for session_id, event, row_id in mail:
            device = self._devices.get(session_id)
            if device is not None and device.opened:
                # Mail for a device that is offline may wait by the thousand: kept encoded, it is a few bytes and
                # nothing for the garbage collector to walk (decoded, each item was three objects it walked).
                self._queue(device, [(row_id, event if device.online else encode_event(event))])

    def _post_later(self, mail: Mail) -> None:
        """``_post(mail)`` after the simulated network latency. The mail of every send answered in this turn of
        the event loop (the sends of one batched write) is posted by one task."""
        if not mail:
            return
        if not self._posting:
            asyncio.get_running_loop().call_soon(self._post_collected)
        self._posting += mail

    def _post_collected(self) -> None:
        mail, self._posting = self._posting, []
        if mail and not self._tasks.closed:
            self._later(self._post, mail)

    def _delivered(self, row_id: int) -> None:
        """Forget mail the gateway stored. Deletions are batched: one write for all acknowledged so far."""
        self._acknowledged.append(row_id)
        self._deleting.add(row_id)
        if len(self._acknowledged) == 1:
            asyncio.get_running_loop().call_soon(self._forget_acknowledged)

    def _forget_acknowledged(self) -> None:
        ids, self._acknowledged = self._acknowledged, []
        if not ids or self._db.closed:
            return

        def done(future: asyncio.Future[Any]) -> None:
            self._deleting.difference_update(ids)
            if not future.cancelled() and future.exception() is not None:
                log.error("simulator: could not clear delivered mail: %s", future.exception())

        # Losing this write in a crash only means the mail is offered again after the restart, which the
        # gateway handles (messages are deduplicated by id); so nobody waits for it.
        light = len(ids) <= LIGHT_DELETE  # a few rows: may run on the event loop's thread (storage/database.py)
        self._db.submit_batched("forget", ids, _delete_mail, inline=light).add_done_callback(done)

    def _emit(self, device: Device, event: EngineEvent) -> None:
        device.control.append(event)
        device.wake.set()

    def _later(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` after the simulated network latency, in an owned task."""
        self._tasks.later(self._latency, fn, *args, name=f"sim-{getattr(fn, '__name__', 'later')}")

    async def _pump(self, device: Device) -> None:
        """Deliver a device's events to the sink in order: link events first, mail while online.

        Mail leaves the mailbox only after the sink returned, that is after the gateway stored it; if the
        sink fails the same item is offered again a second later. Waiting mail is handed over up to
        :data:`SINK_BATCH` items at a time, in order, to the batch sink (which stores them together).
        """
        while True:
            if device.control:
                await self._call_sink(device, device.control.popleft())
                continue
            if device.online and device.reload:
                device.reload = False
                await self._refresh(device, with_mail=True)
                continue
            if device.online and device.mail:
                # Up to SINK_BATCH items at once, handed to the sink in order: the gateway stores them in
                # the same group commits (a burst is written in batches, not one commit per message).
                # The batch leaves the heap while it is handed over (taking it out afterwards by filtering the
                # whole heap cost time in the square of a device's waiting mail); what fails goes back.
                batch = [
                    (row_id, decode_event(event) if isinstance(event, bytes) else event)
                    for row_id, event in (
                        heapq.heappop(device.mail) for _ in range(min(SINK_BATCH, len(device.mail)))
                    )
                ]
                outcomes = await self._call_sinks(device, [event for _, event in batch])
                for (row_id, event), ok in zip(batch, outcomes, strict=True):
                    if row_id not in device.queued:
                        continue  # the device was unlinked meanwhile: its mail is gone
                    if ok:
                        device.queued.discard(row_id)
                        self._delivered(row_id)
                    else:
                        heapq.heappush(device.mail, (row_id, event))
                if not all(outcomes):
                    # What failed stays in the mailbox and is offered again.
                    await asyncio.sleep(1.0)
                continue
            if device.online and device.history:
                # Lowest priority: live mail that came meanwhile goes first.
                if not await self._call_sink(device, device.history[0]):
                    await asyncio.sleep(1.0)
                    continue
                device.history.popleft()
                continue
            device.wake.clear()
            await device.wake.wait()

    async def _call_sinks(self, device: Device, events: list[EngineEvent]) -> list[bool]:
        """Hand ``events`` to the gateway together (its batch sink, else the sink for each in turn: the sink's
        contract is order per session); whether each was stored."""
        if self._batch_sink is None or len(events) == 1:
            return [await self._call_sink(device, event) for event in events]
        try:
            outcomes = await self._batch_sink(device.session_id, events)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: handling %d events failed", device.session_id, len(events))
            return [False] * len(events)
        for event, error in zip(events, outcomes, strict=True):
            if error is not None:
                log.error(
                    "session %s: handling %s failed",
                    device.session_id,
                    type(event).__name__,
                    exc_info=(type(error), error, error.__traceback__),
                )
        return [error is None for error in outcomes]

    async def _call_sink(self, device: Device, event: EngineEvent) -> bool:
        assert self._sink is not None
        try:
            await self._sink(device.session_id, event)
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("session %s: handling %s failed", device.session_id, type(event).__name__)
            return False
