"""The ``identities`` table: each session's phone ↔ LID pairs (see :mod:`zapgate.sessions.identity`).

Only the node that runs a session learns its identities, but with a shared PostgreSQL database the node that
runs it next reads what the previous one learned. Pairs are user parts (digits) without servers. Saving a pair
removes whatever either side was paired with before, in the same transaction, so that a number that changed
hands (or an account that got a new LID) never maps two ways.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from .base import StoredEvent
from .database import Conn, Database

__all__ = ["IdentityStore"]


class IdentityStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def load(self, session_id: str) -> list[tuple[str, str]]:
        """Every (phone, lid) pair the session learned."""

        def op(conn: Conn) -> list[tuple[str, str]]:
            rows = conn.execute("SELECT phone, lid FROM identities WHERE session_id = ?", (session_id,))
            return [(str(phone), str(lid)) for phone, lid in rows]

        return await self._db.read(op)

    async def save(self, session_id: str, pairs: Sequence[tuple[str, str]], now: float) -> None:
        """Record (phone, lid) pairs, replacing any earlier pairing of either side."""
        if pairs:
            await self.submit_save(session_id, pairs, now)

    def submit_save(self, session_id: str, pairs: Sequence[tuple[str, str]], now: float) -> asyncio.Future[None]:
        """:meth:`save`, queued for the next group commit now (writes queued after it commit with or after it);
        the future resolves once the pairs are stored."""
        pairs = list(pairs)

        def op(conn: Conn) -> tuple[None, list[StoredEvent]]:
            for phone, lid in pairs:
                conn.execute(
                    "DELETE FROM identities WHERE session_id = ? AND (phone = ? OR lid = ?)", (session_id, phone, lid)
                )
                conn.execute(
                    "INSERT INTO identities (session_id, lid, phone, learned_at) VALUES (?, ?, ?, ?)",
                    (session_id, lid, phone, now),
                )
            return None, []

        return self._db.submit(op)

    async def count(self, session_id: str) -> int:
        def op(conn: Conn) -> Any:
            return conn.execute("SELECT count(*) FROM identities WHERE session_id = ?", (session_id,)).fetchone()

        row = await self._db.read(op)
        return int(row[0])
