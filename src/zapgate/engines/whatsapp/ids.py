"""zapgate message ids ↔ WhatsApp message ids, for messages the gateway sent (gateway side).

neonize 0.5.2 cannot send with a chosen message id: its ``SendMessage`` passes no ``SendRequestExtra`` to
whatsmeow, which then generates one. So the id the gateway gave the client at ``message.send`` and the id
WhatsApp knows differ. This table links them, so that receipts and replies (which carry WhatsApp's id) are
reported with the gateway's id, and so that a message recorded as sent is not sent again after a crash.

A row is written *before* the send (``wa_id`` NULL: outcome unknown) and completed after it. A retry finds
the completed row and returns its timestamp without sending. A row left incomplete means the gateway or the
worker died while the message was in flight; it is sent again, which can duplicate it (docs/engines.md).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...storage.by_url import database_for
from ...storage.database import Conn

__all__ = ["RETENTION_S", "MessageIds"]

RETENTION_S = 30 * 86400.0
"""How long the link of a sent message is kept: receipts and replies older than this keep WhatsApp's id."""

MIGRATIONS = [
    """
    CREATE TABLE sent (
        session_id TEXT NOT NULL,
        message_id TEXT NOT NULL,
        wa_id TEXT,
        timestamp {BIGINT},
        created_at {REAL} NOT NULL,
        PRIMARY KEY (session_id, message_id)
    ) {WITHOUT_ROWID};
    CREATE INDEX sent_by_wa_id ON sent (session_id, wa_id) WHERE wa_id IS NOT NULL;
    CREATE INDEX sent_by_age ON sent (created_at);
    """,
    # The chat the message went to, when WhatsApp knows the recipient by another JID than the one asked for.
    "ALTER TABLE sent ADD COLUMN chat TEXT;",
]


class MessageIds:
    """The links, in ``whatsapp/messages.db`` of one gateway or in the cluster's PostgreSQL database (``at`` is a
    path or a URL; PostgreSQL versions this table in ``zapgate_wa_schema``)."""

    def __init__(self, at: str | Path, *, synchronous: str, lock_hold_limit_s: float | None = None) -> None:
        self._db = database_for(
            at,
            migrations=MIGRATIONS,
            name="zapgate-wa-ids",
            synchronous=synchronous,
            version_table="zapgate_wa_schema",
            lock_hold_limit_s=lock_hold_limit_s,
        )

    async def open(self) -> None:
        await self._db.open()
        await self.prune(time.time() - RETENTION_S)

    async def close(self) -> None:
        await self._db.close()

    async def sent(self, session_id: str, message_id: str) -> tuple[str, int, str | None] | None:
        """(WhatsApp id, timestamp, chat it went to if not the one asked for) of a message WhatsApp took, or None
        if it was never recorded as sent."""

        def read(conn: Conn) -> tuple[str, int, str | None] | None:
            row = conn.execute(
                "SELECT wa_id, timestamp, chat FROM sent WHERE session_id = ? AND message_id = ? AND wa_id IS NOT NULL",
                (session_id, message_id),
            ).fetchone()
            return (str(row[0]), int(row[1]), str(row[2]) if row[2] else None) if row else None

        return await self._db.read(read)

    async def begin(self, session_id: str, message_id: str) -> bool:
        """Record that the message is about to be sent; False when an earlier attempt's outcome is unknown."""

        def write(conn: Conn) -> tuple[bool, list[Any]]:
            cursor = conn.execute(
                "INSERT INTO sent (session_id, message_id, created_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                (session_id, message_id, time.time()),
            )
            return cursor.rowcount == 1, []

        return await self._db.write(write)

    async def complete(
        self, session_id: str, message_id: str, wa_id: str, timestamp: int, chat: str | None = None
    ) -> None:
        def write(conn: Conn) -> tuple[None, list[Any]]:
            conn.execute(
                "UPDATE sent SET wa_id = ?, timestamp = ?, chat = ? WHERE session_id = ? AND message_id = ?",
                (wa_id, timestamp, chat, session_id, message_id),
            )
            return None, []

        await self._db.write(write)

    async def abandon(self, session_id: str, message_id: str) -> None:
        """The message certainly did not leave: forget the attempt."""

        def write(conn: Conn) -> tuple[None, list[Any]]:
            conn.execute(
                "DELETE FROM sent WHERE session_id = ? AND message_id = ? AND wa_id IS NULL", (session_id, message_id)
            )
            return None, []

        await self._db.write(write)

    async def to_gateway(self, session_id: str, wa_ids: Sequence[str]) -> dict[str, str]:
        """WhatsApp id → gateway id for those of ``wa_ids`` the gateway sent."""
        if not wa_ids:
            return {}

        def read(conn: Conn) -> dict[str, str]:
            marks = ",".join("?" * len(wa_ids))
            rows = conn.execute(
                f"SELECT wa_id, message_id FROM sent WHERE session_id = ? AND wa_id IN ({marks})",  # noqa: S608
                (session_id, *wa_ids),
            )
            return {str(wa): str(mid) for wa, mid in rows}

        return await self._db.read(read)

    async def forget(self, session_id: str) -> None:
        def write(conn: Conn) -> tuple[None, list[Any]]:
            conn.execute("DELETE FROM sent WHERE session_id = ?", (session_id,))
            return None, []

        await self._db.write(write)

    async def prune(self, before: float) -> None:
        def write(conn: Conn) -> tuple[None, list[Any]]:
            conn.execute("DELETE FROM sent WHERE created_at < ?", (before,))
            return None, []

        await self._db.write(write)
