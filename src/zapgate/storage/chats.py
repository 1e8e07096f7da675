"""Chats and message history: the ``messages`` and ``chats`` tables (docs/contacts.md).

``messages`` keeps every message a session sent or received that a person reads in a chat (not reactions,
edits, revokes, votes or status posts), live or from WhatsApp's history sync; ``chats`` one row per chat: its
last message, how many received messages are unread, and the archived, pinned and muted settings.

Live messages are written by :func:`note_messages` inside the same transaction as their event
(``Storage.submit_inbound``, ``Storage.finish_message``); a history batch is one transaction of its own
(:meth:`ChatStore.apply_history`). A message already stored (the same session, chat and id) is never stored
twice, so a history sync that repeats live messages changes nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .base import NewEvent, StoredEvent
from .database import Conn, Database, padded_chunks

AppendEvents = Callable[[Conn, Sequence[NewEvent], float], list[StoredEvent]]

__all__ = [
    "MUTED_FOREVER",
    "ChatRecord",
    "ChatSettings",
    "ChatStore",
    "StoredMessage",
    "note_edit",
    "note_messages",
]

MUTED_FOREVER = -1
"""``muted_until`` of a chat muted until unmuted."""

_IN_CHUNK = 500
"""Ids per ``IN (…)`` list."""

_INSERT_CHUNK = 500
"""Messages per multi-row insert (14 parameters each: 7,000, below SQLite's and PostgreSQL's limits)."""

_MESSAGE_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"

_CHATS_CHUNK = 256
"""Chats per look-up of their numbers (two parameters each)."""


@dataclass(slots=True)
class StoredMessage:
    chat: str
    message_id: str
    from_me: bool
    timestamp: int
    """Unix seconds (WhatsApp's)."""
    kind: str
    content: bytes
    """The content as JSON."""
    sender: str | None = None
    sender_lid: str | None = None
    text: str | None = None
    reply_to: str | None = None
    push_name: str | None = None
    origin: str = "live"
    """``live`` or ``history`` (WhatsApp's history sync)."""
    read: bool = True
    """False for a received message not read yet (counted in the chat's ``unread``)."""
    stored_at: float = 0.0
    """When the gateway stored it (orders the messages of one second); set when stored."""


@dataclass(slots=True)
class ChatRecord:
    chat: str
    name: str | None
    last_timestamp: int
    unread: int
    archived: bool
    pinned: bool
    muted_until: int
    """0: not muted; :data:`MUTED_FOREVER`; else unix seconds."""
    last: StoredMessage | None


@dataclass(frozen=True, slots=True)
class ChatSettings:
    """What WhatsApp says about a chat (history sync or app state); None leaves a field as it is."""

    chat: str
    name: str | None = None
    archived: bool | None = None
    pinned: bool | None = None
    muted_until: int | None = None
    unread: int | None = None
    """From a history sync: how many of the newest received messages are unread."""


_MESSAGE_COLUMNS = (
    "message_id, from_me, timestamp, kind, content, sender, sender_lid, text, reply_to, push_name, origin, is_read, "
    "stored_at"
)
"""A ``messages`` row's columns besides ``chat_id``, in :func:`_message`'s order after the chat."""


_UNREAD = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE chat_id = ? AND is_read = 0"  # noqa: S608
"""A chat's unread messages, in no order: with an ``ORDER BY`` SQLite reads them through ``messages_chat_time``,
every message of the chat, rather than through ``messages_unread`` (30 ms against 0.02 for 5 unread of 200,000),
so they are sorted after."""


def _message(row: Sequence[Any]) -> StoredMessage:
    """A message from its chat's address followed by :data:`_MESSAGE_COLUMNS`."""
    return StoredMessage(
        chat=row[0],
        message_id=row[1],
        from_me=bool(row[2]),
        timestamp=int(row[3]),
        kind=row[4],
        content=bytes(row[5]),
        sender=row[6],
        sender_lid=row[7],
        text=row[8],
        reply_to=row[9],
        push_name=row[10],
        origin=row[11],
        read=bool(row[12]),
        stored_at=float(row[13]),
    )


def _chat_id(conn: Conn, session_id: str, chat: str) -> int | None:
    """The number of the session's chat (its ``chats`` row), None when the session has no such chat."""
    row = conn.execute("SELECT id FROM chats WHERE session_id = ? AND chat = ?", (session_id, chat)).fetchone()
    return None if row is None else int(row[0])


def _chat_ids(conn: Conn, chats: Sequence[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """Inside a write: the numbers of the distinct (session id, chat) pairs, each chat's row made when it has
    none. They are looked up together, :data:`_CHATS_CHUNK` pairs per statement (:func:`~.database.padded_chunks`)."""
    ids: dict[tuple[str, str], int] = {}
    for chunk in padded_chunks(chats, _CHATS_CHUNK):
        pairs = ", ".join(["(CAST(? AS TEXT), CAST(? AS TEXT))"] * len(chunk))
        rows = conn.execute(
            f"SELECT c.id, c.session_id, c.chat FROM (VALUES {pairs}) AS wanted "  # noqa: S608
            "JOIN chats c ON c.session_id = wanted.column1 AND c.chat = wanted.column2",
            [value for pair in chunk for value in pair],
        ).fetchall()
        ids.update(((str(session_id), str(chat)), int(number)) for number, session_id, chat in rows)
    for session_id, chat in chats:
        if (session_id, chat) not in ids:
            row = conn.execute(
                "INSERT INTO chats (session_id, chat) VALUES (?, ?) "
                "ON CONFLICT (session_id, chat) DO UPDATE SET chat = excluded.chat RETURNING id",
                (session_id, chat),
            ).fetchone()
            ids[session_id, chat] = int(row[0])
    return ids


def note_messages(conn: Conn, entries: Sequence[tuple[str, StoredMessage]]) -> list[StoredMessage]:
    """Inside a write: store the (session id, message) entries not stored yet and bring their chats up to date;
    return the messages stored.

    Each chat's number is looked up once (its row made if the chat is new); then the rows of every session go in
    together, with one multi-row ``INSERT … ON CONFLICT DO NOTHING RETURNING`` per :data:`_INSERT_CHUNK` messages
    (its answer names the messages that were new, with no look-up before it), and each chat they touched is
    updated once: a burst over many sessions costs a few statements per chat, not a few per message."""
    fresh: dict[tuple[str, str, str], StoredMessage] = {}
    for session_id, m in entries:
        fresh.setdefault((session_id, m.chat, m.message_id), m)
    if not fresh:
        return []
    ids = _chat_ids(conn, list(dict.fromkeys((session_id, chat) for session_id, chat, _ in fresh)))
    now = time.time()
    pending = list(fresh.items())
    inserted: set[tuple[int, str]] = set()
    for start in range(0, len(pending), _INSERT_CHUNK):
        chunk = pending[start : start + _INSERT_CHUNK]
        values = ", ".join([_MESSAGE_ROW] * len(chunk))
        params: list[Any] = []
        for (session_id, chat, _), m in chunk:
            params += (
                ids[session_id, chat],
                m.message_id,
                int(m.from_me),
                m.timestamp,
                m.kind,
                m.content,
                m.sender,
                m.sender_lid,
                m.text,
                m.reply_to,
                m.push_name,
                m.origin,
                int(m.read),
                now,
            )
        rows = conn.execute(
            f"INSERT INTO messages (chat_id, {_MESSAGE_COLUMNS}) VALUES {values} "  # noqa: S608
            "ON CONFLICT DO NOTHING RETURNING chat_id, message_id",
            params,
        ).fetchall()
        inserted.update((int(number), str(message_id)) for number, message_id in rows)
    new: list[tuple[int, str, StoredMessage]] = []  # (chat number, chat, message) of each message stored now
    for (session_id, chat, message_id), m in fresh.items():
        number = ids[session_id, chat]
        if (number, message_id) in inserted:
            new.append((number, chat, m))
    if not new:
        return []
    chats: dict[int, tuple[StoredMessage, int, str | None]] = {}
    for number, chat, m in new:
        m.stored_at = now
        newest, unread, name = chats.get(number, (m, 0, None))
        if (m.timestamp, m.message_id) >= (newest.timestamp, newest.message_id):
            newest = m
        if not m.from_me and m.push_name and not chat.endswith("@g.us"):
            name = m.push_name
        chats[number] = (newest, unread + (0 if m.read or m.from_me else 1), name)
    conn.executemany(
        "UPDATE chats SET name = coalesce(?, name), "
        "last_message_id = CASE WHEN ? >= last_timestamp THEN ? ELSE last_message_id END, "
        "last_stored_at = CASE WHEN ? >= last_timestamp THEN ? ELSE last_stored_at END, "
        "last_timestamp = CASE WHEN ? >= last_timestamp THEN ? ELSE last_timestamp END, "
        "unread = unread + ? WHERE id = ?",
        [
            (name, m.timestamp, m.message_id, m.timestamp, m.stored_at, m.timestamp, m.timestamp, unread, number)
            for number, (m, unread, name) in chats.items()
        ],
    )
    return [m for _, _, m in new]


def note_edit(conn: Conn, session_id: str, chat: str, message_id: str, text: str) -> bool:
    """Inside a write: the stored message was edited to ``text`` (a text's text, a media message's caption);
    False when it is not stored (or has no text to edit)."""
    number = _chat_id(conn, session_id, chat)
    row = (
        None
        if number is None
        else conn.execute(
            "SELECT content FROM messages WHERE chat_id = ? AND message_id = ?", (number, message_id)
        ).fetchone()
    )
    if row is None:
        return False
    content = json.loads(bytes(row[0]))
    field = "text" if content.get("kind") == "text" else "caption" if "media" in content else None
    if field is None:
        return False
    content[field] = text
    conn.execute(
        "UPDATE messages SET content = ?, text = ? WHERE chat_id = ? AND message_id = ?",
        (json.dumps(content, ensure_ascii=False, separators=(",", ":")).encode(), text, number, message_id),
    )
    return True


def _apply_settings(conn: Conn, session_id: str, settings: ChatSettings) -> None:
    conn.execute(
        "INSERT INTO chats (session_id, chat) VALUES (?, ?) ON CONFLICT (session_id, chat) DO NOTHING",
        (session_id, settings.chat),
    )
    changes: list[str] = []
    values: list[Any] = []
    if settings.name is not None:
        changes.append("name = ?")
        values.append(settings.name)
    if settings.archived is not None:
        changes.append("archived = ?")
        values.append(int(settings.archived))
    if settings.pinned is not None:
        # Pinned chats remember when they were pinned (WhatsApp orders them by it).
        changes.append("pinned = ?")
        values.append(int(time.time()) if settings.pinned else 0)
    if settings.muted_until is not None:
        changes.append("muted_until = ?")
        values.append(settings.muted_until)
    if changes:
        conn.execute(
            f"UPDATE chats SET {', '.join(changes)} WHERE session_id = ? AND chat = ?",  # noqa: S608
            (*values, session_id, settings.chat),
        )
    if settings.unread is not None:
        _set_unread(conn, session_id, settings.chat, settings.unread)


def _set_unread(conn: Conn, session_id: str, chat: str, unread: int) -> None:
    """The newest ``unread`` received messages of the chat (which has a row) are unread, the others read."""
    number = _chat_id(conn, session_id, chat)
    conn.execute("UPDATE messages SET is_read = 1 WHERE chat_id = ? AND is_read = 0", (number,))
    if unread > 0:
        rows = conn.execute(
            "SELECT message_id FROM messages WHERE chat_id = ? AND from_me = 0 "
            "ORDER BY timestamp DESC, stored_at DESC, message_id DESC LIMIT ?",
            (number, unread),
        ).fetchall()
        conn.executemany(
            "UPDATE messages SET is_read = 0 WHERE chat_id = ? AND message_id = ?", [(number, r[0]) for r in rows]
        )
    conn.execute("UPDATE chats SET unread = ? WHERE id = ?", (unread, number))


class ChatStore:
    """Reads and writes of the ``chats`` and ``messages`` tables (see the module documentation)."""

    def __init__(self, db: Database, append_events: AppendEvents) -> None:
        self._db = db
        self._append = append_events

    async def apply_history(
        self,
        session_id: str,
        messages: Sequence[StoredMessage],
        chats: Sequence[ChatSettings],
        make_events: Callable[[int], Sequence[NewEvent]],
    ) -> tuple[int, list[StoredEvent]]:
        """One history-sync batch in one transaction: store the new messages, then the chats' settings, and the
        events ``make_events(stored_count)`` returns (a list of :class:`NewEvent`). Returns (stored, events)."""

        def op(conn: Conn) -> tuple[tuple[int, list[StoredEvent]], list[StoredEvent]]:
            stored = note_messages(conn, [(session_id, m) for m in messages])
            for settings in chats:
                _apply_settings(conn, session_id, settings)
            appended = self._append(conn, make_events(len(stored)), time.time())
            return (len(stored), appended), appended

        return await self._db.write(op)

    async def set_chat(
        self, session_id: str, settings: ChatSettings, make_events: Callable[[ChatRecord], Sequence[NewEvent]]
    ) -> ChatRecord:
        """Change a chat's settings (creating its row if needed) with the events ``make_events`` makes from the
        chat as it is then; return that chat."""

        def op(conn: Conn) -> tuple[ChatRecord, list[StoredEvent]]:
            _apply_settings(conn, session_id, settings)
            record = _chats(conn, session_id, chat=settings.chat, limit=1)[0]
            stored = self._append(conn, make_events(record), time.time())
            return record, stored

        return await self._db.write(op)

    async def chat(self, session_id: str, chat: str) -> ChatRecord | None:
        def op(conn: Conn) -> ChatRecord | None:
            found = _chats(conn, session_id, chat=chat, limit=1)
            return found[0] if found else None

        return await self._db.read(op)

    async def known_chat(self, session_id: str, candidates: Sequence[str]) -> str | None:
        """The first of ``candidates`` the session has a chat with."""

        def op(conn: Conn) -> str | None:
            for chat in candidates:
                row = conn.execute(
                    "SELECT chat FROM chats WHERE session_id = ? AND chat = ?", (session_id, chat)
                ).fetchone()
                if row:
                    return str(row[0])
            return None

        return await self._db.read(op)

    async def list_chats(
        self, session_id: str, *, limit: int, before: str | None = None, archived: bool | None = None
    ) -> list[ChatRecord] | None:
        """The session's chats, most recent first; ``before`` a chat: only those listed after it (None when the
        session has no chat ``before``)."""

        def op(conn: Conn) -> list[ChatRecord] | None:
            cursor = None
            if before is not None:
                row = conn.execute(
                    "SELECT last_timestamp, last_stored_at FROM chats WHERE session_id = ? AND chat = ?",
                    (session_id, before),
                ).fetchone()
                if row is None:
                    return None
                cursor = (int(row[0]), float(row[1]), before)
            return _chats(conn, session_id, limit=limit, cursor=cursor, archived=archived)

        return await self._db.read(op)

    async def history(
        self, session_id: str, chat: str, *, limit: int, before: str | None = None
    ) -> list[StoredMessage] | None:
        """The chat's messages, newest first; ``before`` a message id: only older ones (None when the chat has no
        message ``before``)."""

        def op(conn: Conn) -> list[StoredMessage] | None:
            number = _chat_id(conn, session_id, chat)
            if number is None:
                return None if before is not None else []
            sql = f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE chat_id = ?"  # noqa: S608
            args: list[Any] = [number]
            if before is not None:
                row = conn.execute(
                    "SELECT timestamp, stored_at FROM messages WHERE chat_id = ? AND message_id = ?", (number, before)
                ).fetchone()
                if row is None:
                    return None
                sql += " AND (timestamp, stored_at, message_id) < (?, ?, ?)"
                args += [int(row[0]), float(row[1]), before]
            rows = conn.execute(
                sql + " ORDER BY timestamp DESC, stored_at DESC, message_id DESC LIMIT ?", (*args, limit)
            )
            return [_message((chat, *r)) for r in rows]

        return await self._db.read(op)

    async def unread(self, session_id: str, chat: str) -> list[StoredMessage]:
        """The chat's received messages not read yet, oldest first."""

        def op(conn: Conn) -> list[StoredMessage]:
            number = _chat_id(conn, session_id, chat)
            if number is None:
                return []
            found = [_message((chat, *r)) for r in conn.execute(_UNREAD, (number,))]
            return sorted(found, key=lambda m: (m.timestamp, m.stored_at, m.message_id))

        return await self._db.read(op)

    async def mark_read(self, session_id: str, chat: str, message_ids: Sequence[str]) -> int:
        """Mark received messages of the chat read; return how many were unread."""
        ids = list(message_ids)

        def op(conn: Conn) -> tuple[int, list[StoredEvent]]:
            number = _chat_id(conn, session_id, chat)
            if number is None:
                return 0, []
            changed = 0
            for start in range(0, len(ids), _IN_CHUNK):
                chunk = ids[start : start + _IN_CHUNK]
                marks = ",".join("?" * len(chunk))
                cur = conn.execute(
                    f"UPDATE messages SET is_read = 1 WHERE chat_id = ? AND is_read = 0 "  # noqa: S608
                    f"AND message_id IN ({marks})",
                    (number, *chunk),
                )
                changed += cur.rowcount
            if changed:
                conn.execute(
                    "UPDATE chats SET unread = CASE WHEN unread > ? THEN unread - ? ELSE 0 END WHERE id = ?",
                    (changed, changed, number),
                )
            return changed, []

        return await self._db.write(op) if ids else 0


def _chats(
    conn: Conn,
    session_id: str,
    *,
    limit: int,
    chat: str | None = None,
    cursor: tuple[int, float, str] | None = None,
    archived: bool | None = None,
) -> list[ChatRecord]:
    sql = (
        f"SELECT c.chat, c.name, c.last_timestamp, c.unread, c.archived, c.pinned, c.muted_until, "  # noqa: S608
        f"{', '.join('m.' + c.strip() for c in _MESSAGE_COLUMNS.split(','))} "
        "FROM chats c LEFT JOIN messages m ON m.chat_id = c.id AND m.message_id = c.last_message_id "
        "WHERE c.session_id = ?"
    )
    args: list[Any] = [session_id]
    if chat is not None:
        sql += " AND c.chat = ?"
        args.append(chat)
    if cursor is not None:
        sql += " AND (c.last_timestamp, c.last_stored_at, c.chat) < (?, ?, ?)"
        args += list(cursor)
    if archived is not None:
        sql += " AND c.archived = ?"
        args.append(int(archived))
    rows = conn.execute(
        sql + " ORDER BY c.last_timestamp DESC, c.last_stored_at DESC, c.chat DESC LIMIT ?", (*args, limit)
    ).fetchall()
    return [
        ChatRecord(
            chat=r[0],
            name=r[1],
            last_timestamp=int(r[2]),
            unread=int(r[3]),
            archived=bool(r[4]),
            pinned=bool(r[5]),
            muted_until=int(r[6]),
            last=_message((r[0], *r[7:])) if r[7] is not None else None,
        )
        for r in rows
    ]
