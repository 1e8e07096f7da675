"""The sessions' identity maps, kept in storage (see :mod:`.identity` for what they hold and why).

The map of a session is read from storage the first time the session needs it, then kept in memory on the node
that runs the session; every pair learned is written through. Everything the engine reports that names a person
goes through here on its way to clients: what it teaches is learned, and each address comes out in both forms
when both are known (the phone-number JID as the main one, the LID beside it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence

import msgspec

from ..engines.base import IdentityPair, MessageIn, PresenceIn, ReceiptIn
from ..jid import Jid
from ..storage.identities import IdentityStore
from .identity import Both, IdentityMap, user_part

__all__ = ["Identities"]


class Identities:
    def __init__(self, store: IdentityStore) -> None:
        self._store = store
        self._maps: dict[str, IdentityMap] = {}
        self._loading: dict[str, asyncio.Lock] = {}

    async def map(self, session_id: str) -> IdentityMap:
        known = self._maps.get(session_id)
        if known is not None:
            return known
        lock = self._loading.setdefault(session_id, asyncio.Lock())
        async with lock:
            known = self._maps.get(session_id)
            if known is None:
                known = self._maps[session_id] = IdentityMap(await self._store.load(session_id))
        self._loading.pop(session_id, None)
        return known

    def forget(self, session_id: str) -> None:
        """Drop the in-memory map (the session was deleted, or runs on another node now)."""
        self._maps.pop(session_id, None)

    async def learn(self, session_id: str, pairs: Iterable[tuple[str | None, str | None]]) -> IdentityMap:
        """Learn (phone JID, LID) pairs, either side possibly unknown; store the new ones."""
        identities = await self.map(session_id)
        new = [pair for phone, lid in pairs if (pair := identities.learn_jids(phone, lid)) is not None]
        if new:
            await self._store.save(session_id, new, time.time())
        return identities

    async def learn_pairs(self, session_id: str, pairs: Iterable[IdentityPair]) -> None:
        await self.learn(session_id, ((pair.phone, pair.lid) for pair in pairs))

    async def both(self, session_id: str, jid: str) -> Both:
        return (await self.map(session_id)).both(jid)

    async def address(self, session_id: str, jid: Jid) -> Jid:
        """Where to send for a recipient the client named: a LID whose phone number is known becomes that number
        (see :attr:`Both.preferred`); anything else as given."""
        if jid.server != "lid":
            return jid
        phone = (await self.map(session_id)).phone_of(jid.user)
        return Jid(phone) if phone else jid

    async def message(self, session_id: str, event: MessageIn) -> MessageIn:
        """Learn from a received message, and name its author and one-to-one chat both ways."""
        return (await self.messages(session_id, [event]))[0]

    async def messages(self, session_id: str, events: Sequence[MessageIn]) -> list[MessageIn]:
        """:meth:`message` for several messages of a session, in order: each is named with what it and those before
        it taught, and everything new is stored at once."""
        named, saved = self.name_messages(session_id, await self.map(session_id), events)
        if saved is not None:
            await saved
        return named

    def name_messages(
        self, session_id: str, identities: IdentityMap, events: Sequence[MessageIn]
    ) -> tuple[list[MessageIn], asyncio.Future[None] | None]:
        """:meth:`messages` without waiting, given the session's map (:meth:`map`): the named messages, and the
        write of what they taught, queued now (None if nothing was new). Writes queued after it commit with it
        or after it."""
        new: list[tuple[str, str]] = []
        named: list[MessageIn] = []
        # A batch mostly repeats a few (author, chat) addresses: each is named once, again only after the map
        # learned something (what it names depends on the map and those four addresses alone).
        changes_of: dict[tuple[str, str | None, str, str | None], dict[str, str | None]] = {}
        for event in events:
            key = (event.sender, event.sender_lid, event.chat, event.chat_lid)
            changes = changes_of.get(key)
            if changes is None:
                one_to_one = _is_person(event.chat)
                learned = identities.learn_jids(event.sender, event.sender_lid)
                if learned is not None:
                    new.append(learned)
                if one_to_one and (pair := identities.learn_jids(event.chat, event.chat_lid)) is not None:
                    new.append(pair)
                    learned = pair
                if learned is not None:
                    changes_of.clear()
                changes = changes_of[key] = _changes(identities, event, one_to_one)
            named.append(msgspec.structs.replace(event, **changes) if changes else event)
        return named, self._store.submit_save(session_id, new, time.time()) if new else None

    async def receipt(self, session_id: str, event: ReceiptIn) -> ReceiptIn:
        if not _is_person(event.chat):
            return event
        identities = await self.learn(session_id, [(event.chat, event.chat_lid)])
        chat = identities.both(event.chat_lid or event.chat)
        if chat.preferred == event.chat and chat.lid == event.chat_lid:
            return event
        return msgspec.structs.replace(event, chat=chat.preferred or event.chat, chat_lid=chat.lid)

    async def presence(self, session_id: str, event: PresenceIn) -> PresenceIn:
        identities = await self.learn(session_id, [(event.sender, event.sender_lid)])
        sender = identities.both(event.sender_lid or event.sender)
        chat = identities.both(event.chat) if _is_person(event.chat) else Both(event.chat, None)
        return msgspec.structs.replace(
            event,
            sender=sender.preferred or event.sender,
            sender_lid=sender.lid,
            chat=chat.preferred or event.chat,
            chat_lid=chat.lid,
        )


def _changes(identities: IdentityMap, event: MessageIn, one_to_one: bool) -> dict[str, str | None]:
    """The fields of ``event`` to change so that its author and (``one_to_one``) its chat are named both ways, as
    far as ``identities`` knows."""
    sender = identities.both(event.sender_lid or event.sender)
    changes: dict[str, str | None] = {}
    if sender.preferred and sender.preferred != event.sender:
        changes["sender"] = sender.preferred
    if sender.lid and sender.lid != event.sender_lid:
        changes["sender_lid"] = sender.lid
    if one_to_one:
        chat = identities.both(event.chat_lid or event.chat)
        if chat.preferred and chat.preferred != event.chat:
            changes["chat"] = chat.preferred
        if chat.lid and chat.lid != event.chat_lid:
            changes["chat_lid"] = chat.lid
    return changes


def _is_person(jid: str) -> bool:
    return jid.endswith(("@s.whatsapp.net", "@lid")) and bool(user_part(jid))
