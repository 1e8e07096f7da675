"""A session's presence on WhatsApp, in an engine worker: typing and recording in a chat, online or not, and the
contacts whose presence it follows.

- **Online.** Every time the session connects it announces the presence the client chose last
  (``available`` unless ``presence.set`` said otherwise in this worker), retrying a few times: whatsmeow
  refuses until the account's push name arrived with the first app-state sync. ``available`` also makes
  senders' phones show "delivered" at once instead of when the phone itself comes online.
- **Subscriptions** end when the connection does (WhatsApp's rule), so they are renewed after every connect,
  for the :data:`SUBSCRIPTIONS_KEPT` most recent ones.
- **Typing** is WhatsApp's chat state: ``composing`` (with media ``audio`` while recording a voice note) and
  ``paused``.
- **Addresses** are resolved like a message's recipient (:meth:`.outbound.Outbound.resolve`): typing shows in
  the chat messages go to, and a subscription goes to the JID WhatsApp knows the contact by (often its
  ``@lid``). A presence that comes back from that JID is reported as the chat the client subscribed to.

Every call is made only on a connected client (Go must know it); see ``ffi.py`` for the lock around them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..base import Availability, ChatState, PresenceIn
from . import nz, policy
from .outbound import Recipient
from .policy import SendFailure

__all__ = ["ANNOUNCE_RETRIES_S", "SUBSCRIPTIONS_KEPT", "SessionPresence"]

log = logging.getLogger("zapgate.engines.whatsapp")

ANNOUNCE_RETRIES_S = (0.0, 15.0, 60.0, 300.0)
"""When to (re)try announcing presence after connecting (whatsmeow refuses until the push name is known)."""
SUBSCRIPTIONS_KEPT = 1000
"""Presence subscriptions renewed at each connect (the most recently asked for)."""


class _Session(Protocol):
    session_id: str

    def require_online(self) -> Any: ...


def _jid(text: str) -> Any:
    user, _, server = text.partition("@")
    return nz.build_jid(user, server or "s.whatsapp.net")


class SessionPresence:
    """See the module documentation."""

    def __init__(self, session: _Session, resolve: Callable[[Any, str], Awaitable[Recipient]]) -> None:
        self._session = session
        self._resolve = resolve
        self.wanted: Availability = "available"
        self._subscribed: collections.OrderedDict[str, str] = collections.OrderedDict()
        """JID subscribed to → the chat it is reported as."""

    async def chat(self, chat: str, state: ChatState) -> None:
        client = self._session.require_online()
        to = (await self._resolve(client, chat)).send_to
        composing = state != "paused"
        kind = nz.ChatPresence.CHAT_PRESENCE_COMPOSING if composing else nz.ChatPresence.CHAT_PRESENCE_PAUSED
        media = (
            nz.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_AUDIO
            if state == "recording"
            else nz.ChatPresenceMedia.CHAT_PRESENCE_MEDIA_TEXT
        )
        await self._call(client.send_chat_presence(_jid(to), kind, media))

    async def set(self, state: Availability) -> None:
        self.wanted = state
        client = self._session.require_online()
        await self._call(client.send_presence(self._presence()))

    async def subscribe(self, chat: str) -> None:
        client = self._session.require_online()
        recipient = await self._resolve(client, chat)
        self._subscribed[recipient.send_to] = recipient.chat
        self._subscribed.move_to_end(recipient.send_to)
        while len(self._subscribed) > SUBSCRIPTIONS_KEPT:
            self._subscribed.popitem(last=False)
        await self._call(client.subscribe_presence(_jid(recipient.send_to)))

    def reported(self, presence: PresenceIn) -> PresenceIn:
        """``presence`` named by the chat the client subscribed to, when it comes from a subscribed JID."""
        chat = self._subscribed.get(presence.sender)
        if chat is None or presence.chat != presence.sender:
            return presence
        return PresenceIn(chat=chat, sender=chat, state=presence.state, last_seen=presence.last_seen)

    async def announce(self, client: Any, still_current: Any) -> None:
        """After a connect: announce the wanted presence (retrying, see the module docs), then renew the
        subscriptions. ``still_current()`` says whether that connection is still the session's."""
        for delay in ANNOUNCE_RETRIES_S:
            if delay:
                await asyncio.sleep(delay)
            if not still_current():
                return
            try:
                await client.send_presence(self._presence())
            except Exception as exc:
                log.info("session %s: presence not sent yet: %s", self._session.session_id, exc)
                continue
            log.debug("session %s: presence %s", self._session.session_id, self.wanted)
            break
        for chat in list(self._subscribed):
            if not still_current():
                return
            try:
                await client.subscribe_presence(_jid(chat))
            except Exception as exc:
                log.info("session %s: presence subscription not renewed: %s", self._session.session_id, exc)

    def _presence(self) -> Any:
        return nz.Presence.AVAILABLE if self.wanted == "available" else nz.Presence.UNAVAILABLE

    @staticmethod
    async def _call(call: Any) -> None:
        try:
            await call
        except Exception as exc:
            text = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
            code, retryable = policy.presence_error(text)
            raise SendFailure(code, text, retryable=retryable) from None
