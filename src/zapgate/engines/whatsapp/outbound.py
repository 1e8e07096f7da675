"""What one session sends through its whatsmeow client: texts, and read receipts (runs in a worker).

- **Recipients are resolved first.** A phone-number recipient is looked up with ``is_on_whatsapp`` once per
  session (cached, :data:`RECIPIENTS_KEPT`), and the message goes to the JID WhatsApp answered, not to the
  number as typed: the two differ for Brazilian mobile numbers registered before the ninth digit
  (``+55 11 9xxxx-xxxx`` typed, ``5511xxxxxxxx@s.whatsapp.net`` on WhatsApp), and whatsmeow's own answer may be
  the hidden-user ``@lid`` form. The send then reports the canonical chat, by phone number when whatsmeow's
  store maps the LID to one. A failed look-up sent nothing, so it is always retryable.
- **Read receipts go to the form the message came from.** A message in a chat addressed by ``@lid`` is reported
  by phone number; its read receipt must still go to the ``@lid`` chat (and, in a group, name its author). The
  addresses of the last :data:`INBOUND_KEPT` messages received per session are remembered for that.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Any, Protocol

from ...jid import LID_SERVER, USER_SERVER
from . import nz, policy, translate
from .ipc import QuoteRef

__all__ = ["INBOUND_KEPT", "RECIPIENTS_KEPT", "Outbound", "SendFailure"]

log = logging.getLogger("zapgate.engines.whatsapp")

RECIPIENTS_KEPT = 10_000
"""Phone numbers whose WhatsApp JID a session remembers (least recently used forgotten first)."""
INBOUND_KEPT = 2_000
"""Received messages per session whose addresses are remembered for read receipts; older ones get theirs
at the chat given to ``message.read``."""


class SendFailure(Exception):
    """A send or read receipt that did not go out; carries the :class:`~zapgate.engines.base.SendError` fields."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class _Session(Protocol):
    session_id: str

    def require_online(self) -> Any:
        """The connected client, or raise :class:`SendFailure` (``not_connected``, retryable)."""
        ...


@dataclass(frozen=True, slots=True)
class Recipient:
    send_to: str
    """The JID the message goes to: WhatsApp's answer (phone number or ``@lid``)."""
    chat: str
    """The chat it is reported as: by phone number whenever one is known."""


@dataclass(frozen=True, slots=True)
class _Inbound:
    reported_chat: str
    chat: str
    sender: str


class _Lru(collections.OrderedDict[str, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key: str, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


def _jid(text: str) -> Any:
    user, _, server = text.partition("@")
    return nz.build_jid(user, server or USER_SERVER)


class Outbound:
    """The outgoing side of one session (see the module documentation)."""

    def __init__(self, session: _Session) -> None:
        self._session = session
        self._recipients = _Lru(RECIPIENTS_KEPT)
        self._inbound = _Lru(INBOUND_KEPT)

    def received(self, message_id: str, reported_chat: str, event: Any) -> None:
        """Remember how a received message was addressed (``event`` is its ``MessageEv``)."""
        chat, sender = translate.wire_addresses(event)
        self._inbound.put(message_id, _Inbound(reported_chat, chat, sender))

    async def send_text(self, to: str, text: str, quote: QuoteRef | None) -> tuple[str, int, str | None]:
        """Send a text (quoting ``quote``); returns WhatsApp's message id, its timestamp in seconds, and the chat
        it went to when that is not ``to``."""
        client = self._session.require_online()
        recipient = await self._resolve(client, to)
        if quote is None:
            message = nz.WAMessage(conversation=text)
        else:
            context = nz.ContextInfo(
                stanzaID=quote.message_id,
                participant=quote.participant,
                quotedMessage=nz.WAMessage(conversation=quote.text or ""),
            )
            message = nz.WAMessage(extendedTextMessage=nz.ExtendedTextMessage(text=text, contextInfo=context))
        try:
            response = await client.send_message(_jid(recipient.send_to), message)
        except Exception as exc:
            code, retryable = policy.send_error(str(exc))
            raise SendFailure(code, str(exc), retryable=retryable) from None
        chat = recipient.chat if recipient.chat != to else None
        return str(response.ID), policy.to_seconds(int(response.Timestamp)), chat

    async def _resolve(self, client: Any, to: str) -> Recipient:
        user, _, server = to.partition("@")
        if server != USER_SERVER:
            return Recipient(to, to)
        known: Recipient | None = self._recipients.get(user)
        if known is not None:
            self._recipients.move_to_end(user)
            return known
        try:
            answers = await client.is_on_whatsapp("+" + user)
        except Exception as exc:
            if "returned nothing" in str(exc).lower():
                # WhatsApp said nothing about the number: send as typed, whatsmeow looks it up again itself.
                return Recipient(to, to)
            code, retryable = policy.lookup_error(str(exc))
            raise SendFailure(code, f"could not look {user} up on WhatsApp: {exc}", retryable=retryable) from None
        found = next((answer for answer in answers if answer.IsIn), None)
        if found is None:
            raise SendFailure("not_on_whatsapp", f"{user} is not on WhatsApp", retryable=False)
        recipient = Recipient(to, to)
        answered = translate.jid_string(found.JID)
        if answered:
            recipient = Recipient(answered, await self._phone_chat(client, found.JID, answered))
            if recipient.send_to != to:
                log.info("session %s: WhatsApp knows %s as %s", self._session.session_id, to, recipient.send_to)
        self._recipients.put(user, recipient)
        return recipient

    async def _phone_chat(self, client: Any, jid: Any, answered: str) -> str:
        """The chat to report for WhatsApp's answer ``jid``: itself, or the phone number its LID maps to."""
        if jid.Server != LID_SERVER:
            return answered
        try:
            phone = await client.get_pn_from_lid(jid)  # whatsmeow stored the mapping with its answer
        except Exception as exc:
            log.debug("session %s: no phone number for %s: %s", self._session.session_id, answered, exc)
            return answered
        return translate.jid_string(phone) if getattr(phone, "Server", "") == USER_SERVER else answered

    async def mark_read(self, chat: str, sender: str | None, message_ids: list[str]) -> None:
        """Read receipts for ``message_ids`` received in ``chat``, each sent to the chat and author its message came
        from when it is remembered (else to ``chat`` and ``sender``)."""
        client = self._session.require_online()
        groups: dict[tuple[str, str], list[str]] = {}
        for message_id in message_ids:
            seen: _Inbound | None = self._inbound.get(message_id)
            if seen is not None and seen.reported_chat == chat:
                key = (seen.chat, seen.sender)
            else:
                key = (chat, sender or chat)
            groups.setdefault(key, []).append(message_id)
        for (wire_chat, wire_sender), ids in groups.items():
            try:
                await client.mark_read(
                    *ids, chat=_jid(wire_chat), sender=_jid(wire_sender), receipt=nz.ReceiptType.READ
                )
            except Exception as exc:
                code, retryable = policy.send_error(str(exc))
                raise SendFailure(code, str(exc), retryable=retryable) from None
