"""What one session sends through its whatsmeow client: messages of every kind, and read receipts (runs in a
worker).

- **Recipients are resolved first.** A phone-number recipient is looked up with ``is_on_whatsapp`` once per
  session (cached, :data:`RECIPIENTS_KEPT`), and the message goes to the JID WhatsApp answered, not to the
  number as typed: the two differ for Brazilian mobile numbers registered before the ninth digit
  (``+55 11 9xxxx-xxxx`` typed, ``5511xxxxxxxx@s.whatsapp.net`` on WhatsApp), and whatsmeow's own answer may be
  the hidden-user ``@lid`` form. The send then reports the canonical chat, by phone number when whatsmeow's
  store maps the LID to one. A failed look-up sent nothing, so it is always retryable.
- **Messages are built here** (:mod:`.compose`), media uploaded first (:mod:`.media`), votes encrypted by
  whatsmeow (:mod:`.polls`). A reaction, an edit, a revoke or a vote names its target by WhatsApp's id, in the
  chat and (in a group) with the author WhatsApp addressed it with, when the message was received recently.
- **Mentioning ``all``** in a group mentions every member: the worker asks WhatsApp for the group's members at
  send time (``get_group_info``); if WhatsApp cannot tell, the send fails with ``group_unavailable``.
- **Read receipts go to the form the message came from.** A message in a chat addressed by ``@lid`` is reported
  by phone number; its read receipt must still go to the ``@lid`` chat (and, in a group, name its author). The
  addresses of the last :data:`INBOUND_KEPT` messages received per session are remembered for that.
"""

from __future__ import annotations

import collections
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from ...jid import GROUP_SERVER, LID_SERVER, USER_SERVER
from ...protocol import Me
from ...protocol.content import (
    Audio,
    Contacts,
    Document,
    Edit,
    Image,
    Location,
    Poll,
    Reaction,
    Revoke,
    Sticker,
    Text,
    Unsupported,
    Video,
    Vote,
)
from ..base import IdentityPair
from . import compose, media, nz, policy, translate
from .groups import SessionGroups
from .ipc import Send, TargetRef
from .policy import SendFailure
from .polls import MAX_OPTION_CHARS, PollBook, PollRecord, poll_info

__all__ = ["INBOUND_KEPT", "RECIPIENTS_KEPT", "Outbound", "Recipient", "SendFailure"]

log = logging.getLogger("zapgate.engines.whatsapp")

RECIPIENTS_KEPT = 10_000
"""Phone numbers whose WhatsApp JID a session remembers (least recently used forgotten first)."""
INBOUND_KEPT = 2_000
"""Received messages per session whose addresses are remembered for read receipts and for the targets of
reactions and votes; older ones are addressed by the chat given."""
POLL_SECRET_BYTES = 32


class _Session(Protocol):
    session_id: str
    me: Me | None
    polls: PollBook

    def require_online(self) -> Any:
        """The connected client, or raise :class:`SendFailure` (``not_connected``, retryable)."""
        ...

    def learned(self, pairs: list[IdentityPair]) -> None: ...

    @property
    def groups(self) -> SessionGroups: ...


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

    async def send(self, request: Send) -> tuple[str, int, str | None]:
        """Send a message of any kind; returns WhatsApp's message id, its timestamp in seconds, and the chat it
        went to when that is not ``request.to``."""
        client = self._session.require_online()
        recipient = await self.resolve(client, request.to)
        message = await self._compose(client, recipient, request)
        try:
            response = await client.send_message(_jid(recipient.send_to), message)
        except Exception as exc:
            code, retryable = policy.send_error(str(exc))
            raise SendFailure(code, str(exc), retryable=retryable) from None
        wa_id = str(response.ID)
        content = request.content
        if isinstance(content, Poll):
            own = self._own()
            poll = PollRecord(
                poll_id=wa_id,
                chat=recipient.send_to,
                sender=own,
                from_me=True,
                options=tuple(content.options),
                selectable=content.selectable,
            )
            self._session.polls.remember(self._session.session_id, poll)
        chat = recipient.chat if recipient.chat != request.to else None
        return wa_id, policy.to_seconds(int(response.Timestamp)), chat

    async def _compose(self, client: Any, recipient: Recipient, request: Send) -> Any:
        content = request.content
        match content:
            case Reaction():
                key = self._target_key(recipient, request.to, _target(request))
                return compose.reaction_message(key, content.emoji)
            case Edit():
                target = _target(request)
                if not target.from_me:
                    raise SendFailure("edit_refused", "only the session's own messages can be edited", retryable=False)
                return compose.edit_message(_jid(recipient.send_to), target.message_id, content.text)
            case Revoke():
                return self._revoke(recipient, request.to, _target(request))
            case Vote():
                return await self._vote(client, _target(request), content)
            case Unsupported():
                raise SendFailure("unsupported_content", "kind 'unsupported' cannot be sent", retryable=False)
        mentions = await self._mentions(client, recipient, request.mentions)
        context = compose.context_info(quote=request.quote, mentions=mentions, forwarded=request.forwarded)
        match content:
            case Text():
                return compose.text_message(content.text, context)
            case Location():
                return compose.location_message(content, context)
            case Contacts():
                return compose.contacts_message(content, context)
            case Poll():
                return compose.poll_message(content, secrets.token_bytes(POLL_SECRET_BYTES), context)
            case Image() | Video() | Audio() | Document() | Sticker():
                if request.media is None:
                    raise SendFailure("media_missing", "the message's file was not given", retryable=False)
                prepared = await media.prepare(client, content, request.media)
                return compose.media_message(content, prepared, context)
        raise SendFailure("unsupported_content", f"cannot send {type(content).__name__}", retryable=False)

    def _own(self) -> str:
        me = self._session.me
        if me is None:
            raise SendFailure("not_connected", "the session's own number is not known yet", retryable=True)
        return f"{me.phone}@{USER_SERVER}"

    def _seen(self, target: TargetRef, to: str, recipient: Recipient) -> _Inbound | None:
        """How WhatsApp addressed a received target, if it arrived recently in this chat."""
        if target.from_me:
            return None
        seen: _Inbound | None = self._inbound.get(target.message_id)
        if seen is not None and seen.reported_chat in (to, recipient.chat):
            return seen
        return None

    def _target_key(self, recipient: Recipient, to: str, target: TargetRef) -> Any:
        seen = self._seen(target, to, recipient)
        chat, participant = (seen.chat, seen.sender) if seen else (recipient.send_to, target.participant)
        return compose.message_key(
            chat=chat, message_id=target.message_id, from_me=target.from_me, participant=participant
        )

    def _revoke(self, recipient: Recipient, to: str, target: TargetRef) -> Any:
        """Delete for everyone: the session's own message, or (a group admin) someone else's."""
        own = self._own()
        seen = self._seen(target, to, recipient)
        chat = seen.chat if seen else recipient.send_to
        author = own if target.from_me else (seen.sender if seen else target.participant)
        if not author:
            raise SendFailure("revoke_refused", "the author of the message is not known", retryable=False)
        return nz.build_revoke(_jid(chat), _jid(author), target.message_id, _jid(own))

    async def _vote(self, client: Any, target: TargetRef, vote: Vote) -> Any:
        poll = await self._session.polls.find(self._session.session_id, target.message_id)
        if poll is None:
            raise SendFailure(
                "poll_unknown",
                "this session has no record of the poll (sent or received before it was remembered)",
                retryable=False,
            )
        names: list[str] = []
        for given in vote.options:
            match = next((o for o in poll.options if o == given), None)
            if match is None and len(given) == MAX_OPTION_CHARS:  # a long name, cut when it was received
                match = next((o for o in poll.options if o.startswith(given)), None)
            if match is None:
                raise SendFailure("vote_refused", f"{given!r} is not an option of the poll", retryable=False)
            names.append(match)
        names = [option for option in poll.options if option in names]  # once each, in the poll's order
        if poll.selectable and len(names) > poll.selectable:
            raise SendFailure(
                "vote_refused", f"the poll allows {poll.selectable} option(s), not {len(names)}", retryable=False
            )
        try:
            return await client.build_poll_vote(poll_info(poll), names)
        except Exception as exc:
            code, retryable = policy.send_error(str(exc))
            if not retryable:
                code = "vote_failed"  # e.g. whatsmeow has no secret for the poll
            raise SendFailure(code, f"could not encrypt the vote: {exc}", retryable=retryable) from None

    async def _mentions(self, client: Any, recipient: Recipient, mentions: list[str]) -> list[str]:
        """The JIDs to mention, with ``all`` replaced by every member of the group but the session itself."""
        if "all" not in mentions:
            return list(mentions)
        chat = recipient.send_to
        if not chat.endswith("@" + GROUP_SERVER):
            raise SendFailure("invalid_mentions", "'all' mentions the members of a group", retryable=False)
        try:
            info = await self._session.groups.members(chat)  # cached, refreshed on WhatsApp's change events
        except SendFailure as exc:
            code, retryable = policy.group_error(exc.message)
            why = f"cannot list the group's members to mention all: {exc.message}"
            raise SendFailure(code, why, retryable=retryable) from None
        me = self._session.me
        own = {me.phone, (me.lid or "").partition("@")[0]} if me else set()
        found = dict.fromkeys(m for m in mentions if m != "all")
        for member in info.participants or ():
            if member.jid.partition("@")[0] not in own and (member.lid or "").partition("@")[0] not in own:
                found[member.jid] = None
        return list(found)

    async def resolve(self, client: Any, to: str) -> Recipient:
        """Where a message (or a chat state) for ``to`` goes, and the chat it is reported as (see the module
        documentation); raises :class:`SendFailure`."""
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
        if getattr(phone, "Server", "") != USER_SERVER:
            return answered
        chat = translate.jid_string(phone)
        self._session.learned([IdentityPair(phone=chat, lid=answered)])
        return chat

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


def _jid(text: str) -> Any:
    user, _, server = text.partition("@")
    return nz.build_jid(user, server or USER_SERVER)


def _target(request: Send) -> TargetRef:
    if request.target is None:
        raise SendFailure("target_unknown", "the message this one is about was not given", retryable=False)
    return request.target
