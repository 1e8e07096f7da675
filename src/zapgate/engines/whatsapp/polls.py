"""Polls in an engine worker: remembering them, reading the votes they get, and voting.

WhatsApp encrypts a vote with a secret of the poll (``messageContextInfo.messageSecret``) and carries only the
SHA-256 of each chosen option's name. whatsmeow keeps the secrets in its store (of the polls it sends and
receives); it decrypts a vote (``decrypt_poll_vote``) and encrypts one (``build_poll_vote``). What it does not
keep is the option names, nor where the poll was, so the worker remembers every poll the session sends or sees
in a :class:`PollBook`: its chat and author as WhatsApp addressed them, and its options. The book lives in
``<data dir>/whatsapp/polls.db``, shared by the worker processes (a session may move to another worker), and in
memory for the most recent :data:`POLLS_KEPT`; polls are forgotten after :data:`POLL_RETENTION_S`.

A vote for a poll the book does not know (one older than the book, or sent before this version) is reported as
``unsupported`` (``pollUpdateMessage``) with a log line, never dropped.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ...protocol.content import MAX_POLL_OPTIONS, Vote
from ...storage.sqlite import SqliteDatabase
from ..base import MessageIn
from . import nz
from .content import POLL_FIELDS, unwrapped

__all__ = [
    "POLLS_KEPT",
    "POLL_RETENTION_S",
    "PollBook",
    "PollRecord",
    "chosen",
    "poll_info",
    "poll_seen",
    "read_vote",
    "vote_of",
]

log = logging.getLogger("zapgate.engines.whatsapp")

POLLS_KEPT = 10_000
"""Polls kept in memory per worker (the least recently used are read back from the database when needed)."""
POLL_RETENTION_S = 90 * 86400.0
"""How long a poll is remembered: votes for older polls arrive as ``unsupported``."""
MAX_OPTION_CHARS = 100
"""Option names in a :class:`~zapgate.protocol.content.Vote` are cut to this length, like received polls'."""

MIGRATIONS = [
    """
    CREATE TABLE polls (
        session_id TEXT NOT NULL,
        poll_id TEXT NOT NULL,
        chat TEXT NOT NULL,
        sender TEXT NOT NULL,
        from_me INTEGER NOT NULL,
        options TEXT NOT NULL,
        selectable INTEGER NOT NULL,
        created_at REAL NOT NULL,
        PRIMARY KEY (session_id, poll_id)
    ) WITHOUT ROWID;
    CREATE INDEX polls_by_age ON polls (created_at);
    """,
]


@dataclass(frozen=True, slots=True)
class PollRecord:
    """A poll as WhatsApp addressed it: its id, chat and author (wire JIDs, without device), and its options."""

    poll_id: str
    chat: str
    sender: str
    from_me: bool
    options: tuple[str, ...]
    selectable: int
    """How many options a voter may choose; 0 means any number."""


def chosen(poll: PollRecord, hashes: Sequence[bytes]) -> tuple[list[str], int]:
    """The option names a vote's SHA-256 hashes stand for, in the poll's order, and how many hashes matched none."""
    wanted = set(hashes)
    names = [name for name in poll.options if hashlib.sha256(name.encode()).digest() in wanted]
    return names, len(wanted) - len(names)


def poll_seen(event: Any, chat: str, sender: str) -> PollRecord | None:
    """The poll a received ``MessageEv`` creates (``chat`` and ``sender`` as WhatsApp addressed it), if any."""
    message = unwrapped(event.Message)
    for name in POLL_FIELDS:
        if message.HasField(name):
            poll = getattr(message, name)
            options = tuple(option.optionName for option in poll.options)
            return PollRecord(
                poll_id=event.Info.ID,
                chat=chat,
                sender=sender,
                from_me=bool(event.Info.MessageSource.IsFromMe),
                options=options,
                selectable=int(poll.selectableOptionsCount),
            )
    return None


def vote_of(event: Any) -> Any | None:
    """The ``pollUpdateMessage`` of a received ``MessageEv`` (a vote), if it is one."""
    message = unwrapped(event.Message)
    return message.pollUpdateMessage if message.HasField("pollUpdateMessage") else None


def _jid(text: str) -> Any:
    user, _, server = text.partition("@")
    return nz.build_jid(user, server)


def poll_info(poll: PollRecord) -> Any:
    """The ``MessageInfo`` whatsmeow's ``BuildPollVote`` needs: which poll, in which chat, by whom."""
    chat = _jid(poll.chat)
    source = nz.N.MessageSource(
        Chat=chat,
        Sender=_jid(poll.sender),
        IsFromMe=poll.from_me,
        IsGroup=chat.Server == "g.us",
        SenderAlt=nz.EMPTY_JID,
        RecipientAlt=nz.EMPTY_JID,
        BroadcastListOwner=nz.EMPTY_JID,
    )
    return nz.N.MessageInfo(
        MessageSource=source,
        ID=poll.poll_id,
        ServerID=0,
        Type="poll",
        Pushname="",
        Timestamp=0,
        Category="",
        Multicast=False,
        MediaType="",
        Edit="",
    )


def vote_names(names: Sequence[str]) -> list[str]:
    """Names as a :class:`~zapgate.protocol.content.Vote` carries them (cut like a received poll's options)."""
    return [name[:MAX_OPTION_CHARS] for name in names][:MAX_POLL_OPTIONS]


async def read_vote(
    book: PollBook, client: Any, session_id: str, message: MessageIn, event: Any, vote: Any
) -> MessageIn:
    """``message`` (a received ``pollUpdateMessage``, translated as ``unsupported``) with its vote: the names of
    the options chosen. Unchanged, with a log line, when the poll is unknown or the vote cannot be decrypted."""
    poll_id = str(vote.pollCreationMessageKey.ID)
    poll = await book.find(session_id, poll_id)
    if poll is None:
        log.info("session %s: a vote for poll %s, which this session does not know", session_id, poll_id)
        return message
    try:
        decrypted = await client.decrypt_poll_vote(event)
    except Exception as exc:
        log.warning("session %s: a vote for poll %s could not be decrypted: %s", session_id, poll_id, exc)
        return message
    names, unknown = chosen(poll, list(decrypted.selectedOptions))
    if unknown:
        log.warning("session %s: %d choice(s) in a vote match no option of %s", session_id, unknown, poll_id)
    return msgspec.structs.replace(message, content=Vote(message_id=poll_id, options=vote_names(names)))


class PollBook:
    """The polls of every session of a worker (see the module documentation)."""

    def __init__(self, path: Path | None) -> None:
        self._db = (
            SqliteDatabase(path, synchronous="normal", migrations=MIGRATIONS, name="zapgate-wa-polls")
            if path is not None
            else None
        )
        self._recent: collections.OrderedDict[tuple[str, str], PollRecord] = collections.OrderedDict()

    async def open(self) -> None:
        """Open the database; without it the book still works, from memory only (and says so in the log)."""
        if self._db is None:
            return
        try:
            await self._db.open()
            await self._db.write(_prune(time.time() - POLL_RETENTION_S))
        except Exception:
            log.exception("the poll database cannot be used; polls are remembered in memory only")
            self._db = None

    async def close(self) -> None:
        if self._db is not None and not self._db.closed:
            await self._db.close()

    def remember(self, session_id: str, poll: PollRecord) -> None:
        """Keep ``poll`` (in memory at once; its row is written in the background)."""
        self._keep(session_id, poll)
        if self._db is None or self._db.closed:
            return
        row = (
            session_id,
            poll.poll_id,
            poll.chat,
            poll.sender,
            int(poll.from_me),
            json.dumps(list(poll.options)),
            poll.selectable,
            time.time(),
        )

        def write(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
            conn.execute(
                "INSERT INTO polls (session_id, poll_id, chat, sender, from_me, options, selectable, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (session_id, poll_id) DO NOTHING",
                row,
            )
            return None, []

        self._db.submit(write).add_done_callback(_log_failure)

    async def find(self, session_id: str, poll_id: str) -> PollRecord | None:
        known = self._recent.get((session_id, poll_id))
        if known is not None:
            self._recent.move_to_end((session_id, poll_id))
            return known
        if self._db is None or self._db.closed:
            return None

        def read(conn: sqlite3.Connection) -> Any:
            return conn.execute(
                "SELECT chat, sender, from_me, options, selectable FROM polls WHERE session_id = ? AND poll_id = ?",
                (session_id, poll_id),
            ).fetchone()

        row = await self._db.read(read)
        if row is None:
            return None
        poll = PollRecord(
            poll_id=poll_id,
            chat=str(row[0]),
            sender=str(row[1]),
            from_me=bool(row[2]),
            options=tuple(json.loads(row[3])),
            selectable=int(row[4]),
        )
        self._keep(session_id, poll)
        return poll

    async def forget(self, session_id: str) -> None:
        """Forget every poll of a session (it logged out)."""
        for key in [key for key in self._recent if key[0] == session_id]:
            del self._recent[key]
        if self._db is not None and not self._db.closed:

            def delete(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
                conn.execute("DELETE FROM polls WHERE session_id = ?", (session_id,))
                return None, []

            await self._db.write(delete)

    def _keep(self, session_id: str, poll: PollRecord) -> None:
        self._recent[(session_id, poll.poll_id)] = poll
        self._recent.move_to_end((session_id, poll.poll_id))
        while len(self._recent) > POLLS_KEPT:
            self._recent.popitem(last=False)


def _prune(before: float) -> Any:
    def write(conn: sqlite3.Connection) -> tuple[None, list[Any]]:
        conn.execute("DELETE FROM polls WHERE created_at < ?", (before,))
        return None, []

    return write


def _log_failure(future: Any) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("a poll could not be stored: %s", future.exception())
