"""The media table: one row per media id of a tenant, pointing at a content-addressed blob by its SHA-256.

Several rows may point at one blob (the same bytes uploaded twice, or received by two sessions): a blob may
be deleted only when no row names it any more (:meth:`MediaStore.referenced`). A received file's row is written
in the same transaction as its ``message.received`` event (:func:`insert_media`, called by
``Storage.submit_inbound``), so the event can already name ``media.id``; its download is tracked here
(``status``, ``attempts``, ``next_attempt_at``) so that it resumes after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .base import NewEvent, StoredEvent
from .database import Conn, Database

__all__ = ["MediaRecord", "MediaStore", "insert_media"]


@dataclass(slots=True)
class MediaRecord:
    id: str
    tenant: str
    origin: str
    """``upload``, ``url``, ``inline`` or ``received``."""
    status: str
    """``pending`` (a received file not downloaded yet), ``ready`` (stored), ``failed``."""
    created_at: float
    used_at: float
    """Created, or last named by an accepted message: retention counts from here."""
    sha256: str | None = None
    """The stored blob (None until a received file is downloaded)."""
    size: int | None = None
    mimetype: str | None = None
    filename: str | None = None
    width: int | None = None
    height: int | None = None
    seconds: int | None = None
    session_id: str | None = None
    message_id: str | None = None
    chat: str | None = None
    claimed_sha256: str | None = None
    """A received file: the digest WhatsApp announced (the download must match it)."""
    media_ref: dict[str, Any] | None = None
    """A received file: the engine's handle to download it again."""
    reason: str | None = None
    detail: str | None = None
    attempts: int = 0
    next_attempt_at: float | None = None


_COLUMNS = (
    "id, tenant, origin, status, created_at, used_at, sha256, size, mimetype, filename, width, height, seconds, "
    "session_id, message_id, chat, claimed_sha256, media_ref, reason, detail, attempts, next_attempt_at"
)


def _record(row: Sequence[Any]) -> MediaRecord:
    values = list(row)
    values[17] = json.loads(bytes(values[17])) if values[17] is not None else None
    return MediaRecord(*values)


def _values(record: MediaRecord) -> tuple[Any, ...]:
    ref = json.dumps(record.media_ref).encode() if record.media_ref is not None else None
    return (
        record.id,
        record.tenant,
        record.origin,
        record.status,
        record.created_at,
        record.used_at,
        record.sha256,
        record.size,
        record.mimetype,
        record.filename,
        record.width,
        record.height,
        record.seconds,
        record.session_id,
        record.message_id,
        record.chat,
        record.claimed_sha256,
        ref,
        record.reason,
        record.detail,
        record.attempts,
        record.next_attempt_at,
    )


def _append_events(conn: Conn, events: Sequence[NewEvent], now: float) -> list[StoredEvent]:
    from .store import append_events  # here: store imports this module

    return append_events(conn, events, now)


def insert_media(conn: Conn, record: MediaRecord) -> None:
    """Insert a media row inside the caller's transaction."""
    marks = ", ".join("?" * 22)
    conn.execute(f"INSERT INTO media ({_COLUMNS}) VALUES ({marks})", _values(record))  # noqa: S608


class MediaStore:
    """Media rows (see the module documentation); an attribute of :class:`~zapgate.storage.Storage`."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def add(self, record: MediaRecord) -> None:
        def op(conn: Conn) -> tuple[None, list[StoredEvent]]:
            insert_media(conn, record)
            return None, []

        await self._db.write(op)

    async def get(self, media_id: str, tenant: str | None = None) -> MediaRecord | None:
        """The row, if it exists (and, with ``tenant``, belongs to that tenant)."""

        def op(conn: Conn) -> MediaRecord | None:
            if tenant is None:
                row = conn.execute(f"SELECT {_COLUMNS} FROM media WHERE id = ?", (media_id,)).fetchone()  # noqa: S608
            else:
                row = conn.execute(
                    f"SELECT {_COLUMNS} FROM media WHERE id = ? AND tenant = ?",  # noqa: S608
                    (media_id, tenant),
                ).fetchone()
            return _record(row) if row else None

        return await self._db.read(op)

    async def find_upload(
        self, tenant: str, sha256: str, filename: str | None, mimetype: str, now: float, *, origin: str = "upload"
    ) -> MediaRecord | None:
        """The tenant's stored upload (or file of another ``origin``) of the same bytes under the same name and
        type, if any, marked as used now (so that uploading a file again returns the same media id)."""

        def op(conn: Conn) -> tuple[MediaRecord | None, list[StoredEvent]]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM media WHERE tenant = ? AND sha256 = ? AND origin = ? "  # noqa: S608
                "AND status = 'ready' AND mimetype = ? ORDER BY created_at",
                (tenant, sha256, origin, mimetype),
            )
            record = next((r for r in map(_record, rows) if r.filename == filename), None)
            if record is None:
                return None, []
            conn.execute("UPDATE media SET used_at = ? WHERE id = ?", (now, record.id))
            record.used_at = now
            return record, []

        return await self._db.write(op)

    async def unfinished(self) -> list[MediaRecord]:
        """Received files still to download: pending, or failed with an automatic retry scheduled."""

        def op(conn: Conn) -> list[MediaRecord]:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM media WHERE status != 'ready' AND origin = 'received' "  # noqa: S608
                "AND (status = 'pending' OR next_attempt_at IS NOT NULL) ORDER BY created_at"
            )
            return [_record(r) for r in rows]

        return await self._db.read(op)

    async def mark_ready(
        self,
        media_id: str,
        *,
        sha256: str,
        size: int,
        mimetype: str,
        width: int | None,
        height: int | None,
        events: Sequence[NewEvent],
        now: float,
    ) -> bool:
        """Record a downloaded file with its event; False (and no event) when the row is gone or already ready."""

        def op(conn: Conn) -> tuple[bool, list[StoredEvent]]:
            cur = conn.execute(
                "UPDATE media SET status = 'ready', sha256 = ?, size = ?, mimetype = ?, width = ?, height = ?, "
                "reason = NULL, detail = NULL, attempts = attempts + 1, next_attempt_at = NULL "
                "WHERE id = ? AND status != 'ready'",
                (sha256, size, mimetype, width, height, media_id),
            )
            if cur.rowcount == 0:
                return False, []
            stored = _append_events(conn, events, now)
            return True, stored

        return await self._db.write(op)

    async def mark_failed(
        self,
        media_id: str,
        *,
        reason: str,
        detail: str | None,
        attempts: int,
        next_attempt_at: float | None,
        events: Sequence[NewEvent],
        now: float,
    ) -> bool:
        """Record a failed download attempt with its event (``next_attempt_at``: when to try again, if ever)."""

        def op(conn: Conn) -> tuple[bool, list[StoredEvent]]:
            cur = conn.execute(
                "UPDATE media SET status = 'failed', reason = ?, detail = ?, attempts = ?, next_attempt_at = ? "
                "WHERE id = ? AND status != 'ready'",
                (reason, detail, attempts, next_attempt_at, media_id),
            )
            if cur.rowcount == 0:
                return False, []
            stored = _append_events(conn, events, now)
            return True, stored

        return await self._db.write(op)

    async def retry_now(self, tenant: str, media_id: str, now: float) -> MediaRecord | None:
        """Make a received file that is not stored ``pending`` again, due now, with its attempts reset; the row
        as it is afterwards (unchanged when it is ready or not a received file), None when the tenant has none."""

        def op(conn: Conn) -> tuple[MediaRecord | None, list[StoredEvent]]:
            conn.execute(
                "UPDATE media SET status = 'pending', reason = NULL, detail = NULL, attempts = 0, "
                "next_attempt_at = ? WHERE id = ? AND tenant = ? AND origin = 'received' AND status != 'ready'",
                (now, media_id, tenant),
            )
            row = conn.execute(
                f"SELECT {_COLUMNS} FROM media WHERE id = ? AND tenant = ?",  # noqa: S608
                (media_id, tenant),
            ).fetchone()
            return (_record(row) if row else None), []

        return await self._db.write(op)

    async def prune(self, used_before: float) -> list[str]:
        """Delete rows not used since ``used_before``, except those a queued message still needs; return the
        digests of the blobs they pointed at (each may still be named by another row)."""

        def op(conn: Conn) -> tuple[list[str], list[StoredEvent]]:
            rows = conn.execute(
                "DELETE FROM media WHERE used_at < ? AND NOT EXISTS (SELECT 1 FROM outbox "
                "WHERE outbox.media_id = media.id AND outbox.status = 'queued') RETURNING sha256",
                (used_before,),
            ).fetchall()
            return sorted({str(r[0]) for r in rows if r[0] is not None}), []

        return await self._db.write(op)

    async def referenced(self, sha256: str) -> bool:
        """True when a row names the blob ``sha256``."""

        def op(conn: Conn) -> bool:
            return conn.execute("SELECT 1 FROM media WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone() is not None

        return await self._db.read(op)

    async def known_blobs(self, digests: Sequence[str]) -> set[str]:
        """Which of ``digests`` some row names."""
        wanted = list(digests)

        def op(conn: Conn) -> set[str]:
            found: set[str] = set()
            for start in range(0, len(wanted), 500):
                chunk = wanted[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT DISTINCT sha256 FROM media WHERE sha256 IN ({marks})", chunk)  # noqa: S608
                found.update(str(r[0]) for r in rows)
            return found

        return await self._db.read(op) if wanted else set()
