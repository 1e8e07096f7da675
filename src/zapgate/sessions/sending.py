"""``message.send``: a message accepted durably, queued, and answered with what is known within
``send_wait_s``. Mixed into :class:`~.manager.SessionManager`, which provides the state below."""

from __future__ import annotations

import abc
import asyncio
import logging
import time
from collections.abc import Sequence

import msgspec

from ..config import Settings
from ..engines.base import Engine
from ..errors import IdempotencyConflict, InvalidRequest, NotOnWhatsApp, SendFailed, SessionNotFound, SessionNotPaired
from ..jid import Jid, parse_recipient
from ..media.library import MediaLibrary
from ..protocol import SendResult
from ..protocol.content import Content, check_sendable, content_fingerprint, media_of
from ..storage import LeaseLost, MessageIdTaken, OutboxItem, Storage
from .identities import Identities
from .outgoing import encode_content, encode_outgoing, mentions_for, refers_to
from .ownership import NotOwner
from .session import Session
from .state import Status

__all__ = ["NOT_SENT", "MessageSending"]

log = logging.getLogger("zapgate.sessions")

ID_DRAWS = 3
"""Ids drawn for one message before its acceptance fails: another is drawn only when a stored message has the one
drawn (:class:`~zapgate.storage.MessageIdTaken`; two ids drawn in the same millisecond meet once in 2**32)."""

NOT_SENT = {"logged_out": "the session was logged out", "session_deleted": "the session was deleted"}
"""Reasons a queued message fails without WhatsApp having refused it, as ``message.send`` explains them."""


class MessageSending(abc.ABC):
    _storage: Storage
    _engine: Engine
    _settings: Settings
    _media: MediaLibrary
    identities: Identities

    @abc.abstractmethod
    def get(self, tenant: str, name: str) -> Session: ...

    @abc.abstractmethod
    def _exists(self, session: Session) -> bool: ...

    @abc.abstractmethod
    def lost(self, session: Session) -> NotOwner: ...

    async def send(
        self,
        tenant: str,
        name: str,
        *,
        to: str,
        content: Content,
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
        forwarded: bool = False,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Accept a message for sending: store it durably, queue it, and answer what is known within
        ``send_wait_s`` (see :meth:`_result`)."""
        session = self.get(tenant, name)
        chat = await self.identities.address(session.id, parse_recipient(to))
        problem = check_sendable(content)
        if problem is not None:
            raise InvalidRequest(problem)
        mentioned = mentions_for(chat, content, mentions)
        fingerprint = content_fingerprint(str(chat), content, reply_to, mentioned, forwarded)
        if idempotency_key is not None:
            earlier = await self._storage.find_message(session.id, idempotency_key)
            if earlier is not None:
                return await self._replay(session, earlier, fingerprint)
        if not session.paired:
            raise SessionNotPaired(f"session {name!r} is not linked to a phone yet: pair it first")
        media_id = None
        if media_of(content) is not None:  # stored by id from now on (fetched or decoded now, if need be)
            content, media_id = await self._media.for_sending(tenant, content)
        extra = await refers_to(
            self._storage, session.id, session.me.jid if session.me else None, chat, content, reply_to
        )
        extra = msgspec.structs.replace(extra, mentions=mentioned, forwarded=forwarded)
        item = OutboxItem(
            message_id=self._engine.new_message_id(),
            session_id=session.id,
            chat=str(chat),
            content=encode_content(content),
            extra=encode_outgoing(extra),
            created_at=time.time(),
            reply_to=reply_to,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
            media_id=media_id,
        )
        for attempt in range(1, ID_DRAWS + 1):
            try:
                stored, created = await self._storage.enqueue_message(
                    item, fence=session.fence, quota=(tenant, self._settings.tenant_quotas)
                )
                break
            except LeaseLost:
                raise self.lost(session) from None
            except MessageIdTaken:
                if attempt == ID_DRAWS:
                    raise
                log.info("message id %s was taken already; drawing another", item.message_id)
                item.message_id = self._engine.new_message_id()
        if not self._exists(session):  # deleted while the message was being stored
            raise SessionNotFound(f"no session named {name!r}")
        if not created:  # the same key arrived twice at the same time: the other one stored it
            return await self._replay(session, stored, fingerprint)
        assert session.sender is not None
        session.sender.submit(stored)
        return await self._result(session, stored)

    async def _replay(self, session: Session, earlier: OutboxItem, fingerprint: str) -> SendResult:
        if earlier.fingerprint != fingerprint:
            raise IdempotencyConflict(
                f"idempotency key {earlier.idempotency_key!r} was already used for another message "
                f"({earlier.message_id}); use a new key for new content"
            )
        return await self._result(session, earlier)

    async def _result(self, session: Session, item: OutboxItem) -> SendResult:
        """What ``message.send`` answers: the final outcome if known within ``send_wait_s``, else queued."""
        assert session.sender is not None
        waiter = session.sender.waiter(item.message_id) if item.status == "queued" else None
        if waiter is not None and session.state.status is Status.CONNECTED:
            try:
                item = await _within(waiter, self._settings.send_wait_s) or item
            except asyncio.CancelledError:
                if not waiter.cancelled():
                    raise  # this command itself was cancelled (its connection closed)
                # The gateway is closing, or the session moved to another node: the message stays queued for
                # whoever runs the session next.
            except LeaseLost:
                pass  # WhatsApp took it, but the session moved before that was recorded: the new node records it
        if item.status == "failed":
            if item.reason == "not_on_whatsapp":
                raise NotOnWhatsApp(f"{Jid.parse(item.chat).user} is not on WhatsApp (message {item.message_id})")
            if item.reason in NOT_SENT:
                raise SendFailed(f"message {item.message_id} was not sent: {NOT_SENT[item.reason]} ({item.reason})")
            raise SendFailed(f"WhatsApp refused message {item.message_id}: {item.reason}")
        if item.status == "sent":
            return SendResult(message_id=item.message_id, chat=item.chat, status="sent", timestamp=item.wa_timestamp)
        return SendResult(message_id=item.message_id, chat=item.chat, status="queued")


async def _within(waiter: asyncio.Future[OutboxItem], seconds: float) -> OutboxItem | None:
    """``waiter``'s result if it resolves within ``seconds``, else None. Like ``wait_for(shield(waiter))``,
    cancelling the caller never cancels ``waiter``; it costs one future and one timer instead of the futures and
    callbacks of both (this runs once per ``message.send``)."""
    if not waiter.done():
        loop = asyncio.get_running_loop()
        woken: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not woken.done():
                woken.set_result(None)

        timer = loop.call_later(seconds, wake)
        waiter.add_done_callback(wake)
        try:
            await woken
        finally:
            timer.cancel()
            waiter.remove_done_callback(wake)
        if not waiter.done():
            return None
    return waiter.result()
