"""Where whatsmeow keeps a session's device keys: one SQLite file per session (see docs/engines.md).

``<data_dir>/whatsapp/<session_id>.db`` holds whatsmeow's tables for exactly one device. The session
manager persists a :class:`DeviceRef` (as a dict) when a phone links the session; it names the device JID
and the store file relative to the data directory, which is all a worker needs to resume without a scan.

Only the standard library touches these files from Python, read-only except for deletion: whatsmeow owns
their content.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["STORE_DIR", "DeviceRef", "StoredDevice", "delete_store", "read_device", "store_path"]

STORE_DIR = "whatsapp"
"""Directory under the data directory that holds the device stores."""

_SESSION_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


class DeviceRef(msgspec.Struct, frozen=True, kw_only=True):
    """What the session manager stores to resume a paired session."""

    engine: str
    jid: str
    """The device JID, ``<phone>:<device>@s.whatsapp.net``."""
    store: str
    """The device store file, relative to the data directory."""

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> DeviceRef:
        """Validate a stored device dict; raises ``ValueError`` when it is not a whatsapp device."""
        try:
            ref = msgspec.convert(record, cls)
        except msgspec.ValidationError as exc:
            raise ValueError(f"not a whatsapp device record: {exc}") from None
        if ref.engine != "whatsapp":
            raise ValueError(f"the device was paired by the {ref.engine!r} engine")
        parts = Path(ref.store).parts
        if len(parts) != 2 or parts[0] != STORE_DIR or not parts[1].endswith(".db"):
            raise ValueError(f"device store {ref.store!r} is not under {STORE_DIR}/")
        return ref

    def to_record(self) -> dict[str, Any]:
        record: dict[str, Any] = msgspec.to_builtins(self)
        return record


class StoredDevice(msgspec.Struct, frozen=True):
    jid: str
    lid: str | None


def store_path(data_dir: Path, session_id: str) -> Path:
    """The store file of ``session_id`` (which must be a plain identifier)."""
    if not _SESSION_ID.fullmatch(session_id) or session_id.startswith("."):
        raise ValueError(f"unusable session id for a file name: {session_id!r}")
    return data_dir / STORE_DIR / f"{session_id}.db"


def read_device(path: Path, jid: str | None = None) -> StoredDevice | None:
    """The device row in the store at ``path`` (the one with ``jid`` if given), or None when the file or the
    row does not exist. whatsmeow aborts the whole process when asked to resume a device it cannot find, so a
    resume is only attempted after this returned a row."""
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)) as conn:
            if jid is None:
                row = conn.execute("SELECT jid, lid FROM whatsmeow_device LIMIT 1").fetchone()
            else:
                row = conn.execute("SELECT jid, lid FROM whatsmeow_device WHERE jid = ?", (jid,)).fetchone()
    except sqlite3.Error:
        return None
    if row is None:
        return None
    return StoredDevice(str(row[0]), str(row[1]) if row[1] else None)


def delete_store(path: Path) -> bool:
    """Delete a store file with its WAL and shared-memory files; True when something was deleted."""
    deleted = False
    for suffix in ("", "-wal", "-shm", "-journal"):
        candidate = path.with_name(path.name + suffix)
        with contextlib.suppress(FileNotFoundError):
            candidate.unlink()
            deleted = True
    return deleted
