"""Chats and history for sessions: ``chat.*`` and ``message.history``, and what messages leave in the chat list.

A message a person reads in a chat (not a reaction, edit, revoke, vote or status post) is stored with its
event (:func:`inbound_entry`, :func:`outbound_entry`); :class:`Chats` answers the commands from those rows and
tells WhatsApp what changes (read receipts, archive / pin / mute as app state).

WhatsApp's history sync arrives as :class:`~zapgate.engines.base.HistoryBatch` events: each batch is stored in
one transaction with one ``history.synced`` event, and its messages are not sent as ``message.received``
(a bot must not answer last month's messages). The engine yields between batches, so live messages are not
held up behind a sync of thousands.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec

from ..engines.base import Engine, HistoryBatch, MessageIn, SendError
from ..errors import EngineUnavailable, InvalidRequest, SendFailed, SessionNotPaired
from ..jid import Jid, parse_recipient
from ..protocol import (
    ChatInfo,
    ChatListResult,
    ChatUpdatedData,
    HistoryMessage,
    HistorySyncedData,
    LastMessage,
    MessageHistoryResult,
)
from ..protocol.content import Content, Edit, content_text
from ..storage import MUTED_FOREVER, ChatRecord, ChatSettings, NewEvent, OutboxItem, Storage, StoredMessage

__all__ = [
    "NOT_IN_HISTORY",
    "READ_RECEIPTS_PER_CALL",
    "Chats",
    "history_pairs",
    "inbound_entry",
    "outbound_edit",
    "outbound_entry",
]

NOT_IN_HISTORY = frozenset({"reaction", "edit", "revoke", "vote"})
"""Content kinds that change an earlier message rather than add one to the chat."""
READ_RECEIPTS_PER_CALL = 256
"""Message ids per read-receipt call to the engine."""

_content = msgspec.json.Decoder(Content)
_encode = msgspec.json.Encoder().encode


def _kind(content: Any) -> str:
    return str(type(content).__struct_config__.tag)


def inbound_entry(message: MessageIn, *, origin: str = "live", read: bool | None = None) -> StoredMessage | None:
    """The history entry of a received (or phone-sent) message; None for what is not a chat message."""
    kind = _kind(message.content)
    if message.status or kind in NOT_IN_HISTORY:
        return None
    return StoredMessage(
        chat=message.chat,
        message_id=message.message_id,
        from_me=message.from_me,
        timestamp=message.timestamp,
        kind=kind,
        content=_encode(message.content),
        sender=message.sender,
        sender_lid=message.sender_lid,
        text=content_text(message.content),
        reply_to=message.reply_to,
        push_name=message.push_name,
        origin=origin,
        read=message.from_me if read is None else read,
    )


def outbound_entry(item: OutboxItem) -> StoredMessage | None:
    """The history entry of a message the session sent (once WhatsApp took it); None when it is not a chat
    message, or its stored content cannot be read (the send's outcome is recorded all the same)."""
    try:
        content = _content.decode(item.content)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    kind = _kind(content)
    if kind in NOT_IN_HISTORY:
        return None
    return StoredMessage(
        chat=item.chat,
        message_id=item.message_id,
        from_me=True,
        timestamp=item.wa_timestamp or int(time.time()),
        kind=kind,
        content=item.content,
        text=content_text(content),
        reply_to=item.reply_to,
    )


def history_pairs(batch: HistoryBatch) -> list[tuple[str | None, str | None]]:
    """The (phone JID, LID) pairs a history batch shows: authors, and the people of one-to-one chats."""
    pairs: list[tuple[str | None, str | None]] = []
    for m in batch.messages:
        if m.sender and m.sender_lid and not m.sender.endswith("@lid"):
            pairs.append((m.sender, m.sender_lid))
        if m.chat_lid and m.chat.endswith("@s.whatsapp.net"):
            pairs.append((m.chat, m.chat_lid))
    return list(dict.fromkeys(pairs))


def outbound_edit(item: OutboxItem) -> tuple[str, str] | None:
    """(message id, new text) when a message the session sent edits one of its earlier messages."""
    try:
        content = _content.decode(item.content)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return (content.message_id, content.text) if isinstance(content, Edit) else None


class _Session(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def tenant(self) -> str: ...

    @property
    def paired(self) -> bool: ...

    @property
    def record(self) -> Any: ...


def chat_info(record: ChatRecord, now: float | None = None) -> ChatInfo:
    now = time.time() if now is None else now
    muted = record.muted_until == MUTED_FOREVER or record.muted_until > now
    last = record.last
    return ChatInfo(
        chat=record.chat,
        name=record.name,
        unread=record.unread,
        archived=record.archived,
        pinned=record.pinned,
        muted=muted,
        muted_until=record.muted_until if muted and record.muted_until > 0 else None,
        timestamp=record.last_timestamp,
        last_message=None
        if last is None
        else LastMessage(
            message_id=last.message_id,
            from_me=last.from_me,
            from_=None if last.from_me else last.sender,
            kind=last.kind,
            text=last.text,
            timestamp=last.timestamp,
        ),
    )


def ninth_digit_variants(jid: Jid) -> list[str]:
    """The chat a Brazilian mobile number may be stored as: as typed, and without (or with) the ninth digit."""
    chats = [str(jid)]
    user = jid.user
    if jid.is_user and user.startswith("55"):
        if len(user) == 13 and user[4] == "9":
            chats.append(f"{user[:4]}{user[5:]}@{jid.server}")
        elif len(user) == 12 and user[4] in "6789":
            chats.append(f"{user[:4]}9{user[4:]}@{jid.server}")
    return chats


class Chats:
    """The chat side of the session manager (see the module documentation)."""

    def __init__(
        self,
        engine: Engine,
        storage: Storage,
        lookup: Callable[[str, str], Any],
        event: Callable[[Any, str, Any], NewEvent],
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._lookup = lookup
        self._event = event
        self._synced: dict[str, int] = {}
        """Session id → messages its history sync stored since the gateway started."""

    async def list(
        self, tenant: str, name: str, *, limit: int, before: str | None, archived: bool | None
    ) -> ChatListResult:
        session: _Session = self._lookup(tenant, name)
        cursor = await self._chat(session, before) if before is not None else None
        found = await self._storage.chats.list_chats(session.id, limit=limit + 1, before=cursor, archived=archived)
        if found is None:
            raise InvalidRequest(f"before: session {name!r} has no chat {before!r}")
        now = time.time()
        return ChatListResult(chats=[chat_info(c, now) for c in found[:limit]], more=len(found) > limit)

    async def history(
        self, tenant: str, name: str, *, chat: str, before: str | None, limit: int
    ) -> MessageHistoryResult:
        session: _Session = self._lookup(tenant, name)
        key = await self._chat(session, chat)
        found = await self._storage.chats.history(session.id, key, limit=limit + 1, before=before)
        if found is None:
            raise InvalidRequest(f"before: the chat {key} has no stored message {before!r}")
        me = _my_jid(session)
        return MessageHistoryResult(messages=[_history(m, me) for m in found[:limit]], more=len(found) > limit)

    async def mark_read(self, tenant: str, name: str, *, chat: str) -> int:
        """Send read receipts for the chat's unread messages; return how many they were."""
        session = self._paired(tenant, name)
        key = await self._chat(session, chat)
        unread = await self._storage.chats.unread(session.id, key)
        if not unread:
            return 0
        jid = Jid.parse(key)
        by_sender: dict[str | None, list[str]] = {}
        for m in unread:
            # In a group, a receipt names the author of the messages it reads.
            by_sender.setdefault(m.sender if jid.is_group else None, []).append(m.message_id)
        for sender, ids in by_sender.items():
            for start in range(0, len(ids), READ_RECEIPTS_PER_CALL):
                chunk = ids[start : start + READ_RECEIPTS_PER_CALL]
                author = Jid.parse(sender) if sender else None
                await _call(self._engine.mark_read(session.id, jid, author, chunk), "send read receipts")
        return await self._storage.chats.mark_read(session.id, key, [m.message_id for m in unread])

    async def read(self, session: _Session, chat: str, message_ids: Sequence[str]) -> None:
        """``message.read`` sent receipts for these messages: they are read in the chat list too."""
        await self._storage.chats.mark_read(session.id, chat, message_ids)

    async def change(
        self,
        tenant: str,
        name: str,
        *,
        chat: str,
        archived: bool | None = None,
        pinned: bool | None = None,
        muted_until: int | None = None,
    ) -> ChatInfo:
        """Archive, pin or mute a chat (or un-): on WhatsApp (the phone and the other linked devices), then here."""
        session = self._paired(tenant, name)
        key = await self._chat(session, chat)
        call = self._engine.set_chat(
            session.id, Jid.parse(key), archived=archived, pinned=pinned, muted_until=muted_until
        )
        await _call(call, "change the chat")
        settings = ChatSettings(chat=key, archived=archived, pinned=pinned, muted_until=muted_until)
        return await self.changed(session, settings)

    async def changed(self, session: _Session, settings: ChatSettings) -> ChatInfo:
        """Store a chat's new settings with a ``chat.updated`` event; return the chat as it is now."""
        now = time.time()

        def events(record: ChatRecord) -> list[NewEvent]:
            data = ChatUpdatedData(**msgspec.structs.asdict(chat_info(record, now)))
            return [self._event(session, "chat.updated", data)]

        return chat_info(await self._storage.chats.set_chat(session.id, settings, events), now)

    async def history_batch(self, session: _Session, batch: HistoryBatch) -> None:
        """Store one batch of WhatsApp's history sync with its ``history.synced`` event."""
        # Old messages are read; a chat's unread count from WhatsApp marks its newest received ones unread.
        entries = (inbound_entry(m, origin="history", read=True) for m in batch.messages)
        messages = [entry for entry in entries if entry is not None]
        settings = [
            ChatSettings(
                chat=c.chat,
                name=c.name,
                archived=c.archived,
                pinned=c.pinned,
                muted_until=c.muted_until,
                unread=c.unread,
            )
            for c in batch.chats
        ]
        chats = len({m.chat for m in batch.messages} | {c.chat for c in batch.chats})

        def events(stored: int) -> list[NewEvent]:
            total = self._synced.get(session.id, 0) + stored
            self._synced[session.id] = total
            data = HistorySyncedData(
                messages=stored, chats=chats, total_messages=total, final=batch.final, progress=batch.progress
            )
            return [self._event(session, "history.synced", data)]

        await self._storage.chats.apply_history(session.id, messages, settings, events)

    def forget(self, session_id: str) -> None:
        self._synced.pop(session_id, None)

    async def _chat(self, session: _Session, raw: str) -> str:
        """The stored chat a recipient names (a Brazilian number with or without its ninth digit finds the chat
        WhatsApp answered for); the canonical JID when there is none yet."""
        variants = ninth_digit_variants(parse_recipient(raw))
        if len(variants) == 1:
            return variants[0]
        return await self._storage.chats.known_chat(session.id, variants) or variants[0]

    def _paired(self, tenant: str, name: str) -> _Session:
        session: _Session = self._lookup(tenant, name)
        if not session.paired:
            raise SessionNotPaired(f"session {name!r} is not linked to a phone yet: pair it first")
        return session


def _my_jid(session: _Session) -> str | None:
    me = session.record.me
    return f"{me['phone']}@s.whatsapp.net" if me and me.get("phone") else None


def _history(m: StoredMessage, me: str | None) -> HistoryMessage:
    return HistoryMessage(
        message_id=m.message_id,
        chat=m.chat,
        from_me=m.from_me,
        timestamp=m.timestamp,
        kind=m.kind,
        content=_content.decode(m.content),
        from_=m.sender or (me if m.from_me else None),
        from_lid=m.sender_lid,
        push_name=m.push_name,
        text=m.text,
        reply_to=m.reply_to,
        history=m.origin == "history",
        unread=not m.read,
    )


async def _call(call: Any, what: str) -> None:
    try:
        await call
    except SendError as exc:
        if exc.retryable:
            raise EngineUnavailable(f"could not {what} now ({exc.message}); retry when connected") from None
        raise SendFailed(f"could not {what}: {exc.message}") from None
