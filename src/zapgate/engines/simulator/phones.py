"""What the simulated phones do: the ``sim.*`` actions (scan, unlink, network, restriction, a contact writing)
and the echo contact. Mixed into :class:`~.engine.SimulatorEngine`, which provides the state below."""

from __future__ import annotations

import abc
import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ...errors import InvalidRequest, PhoneTaken, SessionNotPaired
from ...jid import parse_phone
from ...protocol import Me, SimContactResult
from ...protocol.content import Content, Poll, Text, Vote, media_of
from ...storage.database import Conn, Database
from ..base import (
    PLAIN,
    Disconnected,
    EngineEvent,
    LoggedOut,
    MediaFile,
    MessageIn,
    Outgoing,
    Paired,
    ReceiptIn,
    SendRestricted,
)
from .cdn import SimulatedCdn
from .devices import Device, Mail, user_jid
from .pairing import Pairing, Pairings
from .presence import SimPresence
from .records import find_delivery, insert_delivery, is_blocked
from .rules import decode_content, echo_answer, refusal, target_of
from .server import SimServer

__all__ = ["SimulatedPhones"]


class SimulatedPhones(abc.ABC):
    _devices: dict[str, Device]
    _pairings: Pairings
    _server: SimServer
    _db: Database
    _cdn: SimulatedCdn
    _latency: float
    _presence: SimPresence

    @abc.abstractmethod
    def _device(self, session_id: str) -> Device: ...

    @abc.abstractmethod
    async def _known_device(self, session_id: str) -> Device: ...

    @abc.abstractmethod
    async def _link(self, device: Device, phone: str) -> tuple[Me, dict[str, Any]]: ...

    @abc.abstractmethod
    async def _unlink(self, device: Device) -> None: ...

    @abc.abstractmethod
    async def _disconnect(self, device: Device) -> None: ...

    @abc.abstractmethod
    async def _come_online(self, device: Device) -> None: ...

    @abc.abstractmethod
    def _emit(self, device: Device, event: EngineEvent) -> None: ...

    @abc.abstractmethod
    def _later(self, fn: Any, *args: Any) -> None: ...

    @abc.abstractmethod
    def _message(
        self,
        sender: str,
        message_id: str,
        content: Content,
        reply_to: str | None,
        now: int,
        extra: Outgoing = PLAIN,
        media_ref: dict[str, Any] | None = None,
    ) -> MessageIn: ...

    @abc.abstractmethod
    def _receipt(self, phone: str, message_ids: list[str], status: Any, now: int) -> ReceiptIn: ...

    @abc.abstractmethod
    def _store_mail(self, conn: Conn, items: Sequence[tuple[str, EngineEvent]]) -> Mail: ...

    @abc.abstractmethod
    def _post(self, mail: Mail) -> None: ...

    @abc.abstractmethod
    async def _mail_account(self, phone: str, event: EngineEvent) -> None: ...

    # -- phone-side actions (the sim.* commands)

    async def scan(
        self, code: str, phone: str, *, owned: Callable[[str], bool] = lambda _: True, tenant: str | None = None
    ) -> Me:
        """A phone with number ``phone`` scans a QR code or types a pairing code; returns the linked identity.

        ``owned(session_id)`` limits which sessions' codes count (the caller's tenant's); any other code is
        reported as unknown. With ``tenant``, the number becomes that tenant's phone, and one that is the echo
        contact, a contact or another tenant's phone is refused (``phone_taken``) before the code is used.
        """
        phone = parse_phone(phone)
        session_id = await self._pairings.find(code.strip(), phone, owned, self._pairing_of)
        if tenant is not None:
            kind, owner = await self._server.claim_phone(phone, tenant)
            if kind == "echo":
                raise PhoneTaken(f"+{phone} is the simulator's echo contact, not a phone you can scan with")
            if kind != "phone":
                raise PhoneTaken(f"+{phone} is a contact of the simulated network, not a phone you can scan with")
            if owner != tenant:
                raise PhoneTaken(f"+{phone} is another tenant's simulated phone; scan with a number of your own")
        device = self._devices[session_id]
        self._pairings.cancel(device)
        if await self._server.account(phone) is None:
            await self._server.add_account(phone, "phone")
        me, record = await self._link(device, phone)
        device.history_due = True
        self._emit(device, Paired(me=me, device=record))
        # WhatsApp asks a freshly paired device to reconnect (stream error 515) before it is online.
        self._later(self._come_online, device)
        return me

    async def locate(self, code: str) -> str | None:
        return await self._pairings.locate(code)

    def _pairing_of(self, session_id: str) -> Pairing | None:
        device = self._devices.get(session_id)
        return device.pairing if device is not None else None

    async def unlink(self, session_id: str) -> None:
        """The phone removes the session from its linked devices."""
        device = await self._known_device(session_id)
        if device.jid is None:
            raise SessionNotPaired("the session is not linked to a phone")
        was_open = device.opened
        device.opened = device.online = False
        await self._disconnect(device)
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
        device = await self._known_device(session_id)
        if device.phone is None:
            raise SessionNotPaired("the session is not linked to a phone")
        device.restricted_until = time.time() + seconds
        self._emit(device, SendRestricted(reason=reason, until=device.restricted_until))
        return device.restricted_until

    async def contact(
        self,
        phone: str,
        *,
        hide_phone: bool | None = None,
        refuse_group_adds: bool | None = None,
        tenant: str | None = None,
    ) -> SimContactResult:
        """Create a contact's account if need be and set its privacy (``sim.contact``). With ``tenant``, the echo
        contact's settings and another tenant's phone's are refused (``phone_taken``)."""
        phone = parse_phone(phone)
        known = await self._server.account(phone)
        if known is None:
            await self._server.add_account(phone, "contact")
        elif tenant is not None and known[0] == "echo":
            raise PhoneTaken(f"+{phone} is the simulator's echo contact: its settings are fixed")
        elif tenant is not None and known[0] == "phone" and (await self._server.owner(phone)) not in (None, tenant):
            raise PhoneTaken(f"+{phone} is another tenant's simulated phone")
        if hide_phone is not None or refuse_group_adds is not None:
            await self._server.set_privacy(phone, hide_phone=hide_phone, refuse_group_adds=refuse_group_adds)
        _, lid = self._server.accounts[phone]
        return SimContactResult(
            phone=phone,
            jid=user_jid(phone),
            lid=f"{lid}@lid",
            hide_phone=self._server.hides_phone(phone),
            refuse_group_adds=self._server.refuses_group_adds(phone),
        )

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
        device = await self._known_device(session_id)
        if device.phone is None:
            raise SessionNotPaired("the session is not linked to a phone")
        media_ref = None
        if media_of(content) is not None:
            content, media_ref = await self._cdn.publish(content, media)
        sender = parse_phone(from_phone)
        if await self._server.account(sender) is None:
            await self._server.add_account(sender, "contact")
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

        def read(conn: Conn) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT sender, message_id, recipient, text, timestamp, attempts, node, epoch, content "
                "FROM deliveries ORDER BY accepted"
            )
            keys = ("sender", "message_id", "recipient", "text", "timestamp", "attempts", "node", "epoch")
            return [
                dict(zip(keys, r[:8], strict=True), content=decode_content(bytes(r[8])) if r[8] else Text(text=r[3]))
                for r in rows
            ]

        return await self._db.read(read)

    async def connection_log(self) -> list[dict[str, Any]]:
        """Every connect of a linked device, in order: which node and lease epoch, and what it replaced or why it
        was refused (for tests: two nodes must never fight over a device)."""

        def read(conn: Conn) -> list[dict[str, Any]]:
            rows = conn.execute(
                "SELECT session_id, node, epoch, at, outcome, other_node, other_epoch FROM connection_log ORDER BY id"
            )
            keys = ("session_id", "node", "epoch", "at", "outcome", "other_node", "other_epoch")
            return [dict(zip(keys, r, strict=True)) for r in rows]

        return await self._db.read(read)

    # -- contacts writing

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
        target_id = target_of(content)

        def store(conn: Conn) -> tuple[Mail | str, list[Any]]:
            target = find_delivery(conn, target_id) if target_id is not None else None
            refused = refusal(content, sender, recipient, target, now)
            if refused is not None:
                return refused, []
            if is_blocked(conn, sender, by=recipient):
                return [], []  # accepted, never delivered (one grey tick on the sender's phone)
            insert_delivery(conn, sender, recipient, message_id, content, reply_to, now)
            return self._store_mail(conn, [(recipient, message)]), []

        stored = await self._db.write(store)
        if isinstance(stored, str):
            return stored
        self._post(stored)
        return None

    async def _echo(
        self, sender: str, echo: str, message_id: str, content: Content, media_ref: dict[str, Any] | None
    ) -> None:
        """The echo contact reads the message, then answers it: the same content as a reply, or a vote for the
        first option of a poll."""
        await asyncio.sleep(self._latency)
        await self._mail_account(sender, self._receipt(echo, [message_id], "read", int(time.time())))
        answer: Content | None = echo_answer(content)
        reply_to: str | None = message_id
        if isinstance(content, Poll):
            answer, reply_to = Vote(message_id=message_id, options=[content.options[0]]), None
        if answer is None:
            return
        self._presence.chat_state(echo, sender, "typing")
        await asyncio.sleep(self._latency)
        await self._accept(echo, sender, "3A" + secrets.token_hex(9).upper(), answer, reply_to, media_ref)
