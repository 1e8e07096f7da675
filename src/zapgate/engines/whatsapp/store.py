"""Where whatsmeow keeps a session's device keys (see docs/engines.md).

One gateway: one SQLite file per session, ``<data_dir>/whatsapp/<session_id>.db``, holding whatsmeow's tables
for exactly one device. Several nodes (``docs/scaling.md``): every device in the cluster's PostgreSQL database
(whatsmeow's own ``whatsmeow_*`` tables), so that any node can resume any session without a scan. The session
manager persists a :class:`DeviceRef` (as a dict) when a phone links the session; it names the device JID and
its store (the file relative to the data directory, or :data:`SHARED_STORE`), which is all a worker needs to
resume the session.

Only zapgate's reads (and deletions) touch these stores from Python: whatsmeow owns their content.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
from pathlib import Path
from typing import Any

import msgspec

__all__ = [
    "SHARED_STORE",
    "STORE_DIR",
    "DeviceRef",
    "DeviceStore",
    "DeviceStores",
    "StoredDevice",
    "delete_store",
    "read_device",
    "store_path",
    "whatsmeow_url",
]

STORE_DIR = "whatsapp"
"""Directory under the data directory that holds the device stores."""
SHARED_STORE = "postgresql"
"""The ``store`` of a :class:`DeviceRef` whose keys are in the cluster's PostgreSQL database."""

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
        if ref.store == SHARED_STORE:
            return ref
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


def whatsmeow_url(database_url: str) -> str:
    """The cluster's database URL as whatsmeow's PostgreSQL driver (lib/pq) takes it: its default ``sslmode`` is
    ``require``, so the libpq default (``prefer``, as psycopg uses) is set when the URL names none."""
    if "sslmode=" in database_url:
        return database_url
    return f"{database_url}{'&' if '?' in database_url else '?'}sslmode=prefer"


class DeviceStore:
    """One session's device keys: a SQLite file of its own, or the cluster's shared PostgreSQL database."""

    def __init__(self, path: Path | None, database_url: str | None, data_dir: Path) -> None:
        self._path = path
        self._url = database_url
        self._data_dir = data_dir

    @property
    def name(self) -> str:
        """What ``NewAClient`` takes as its database: the file's path, or the PostgreSQL URL."""
        return whatsmeow_url(self._url) if self._url is not None else str(self._path)

    @property
    def ref(self) -> str:
        """:attr:`DeviceRef.store` for a device kept here."""
        if self._url is not None:
            return SHARED_STORE
        assert self._path is not None
        return self._path.relative_to(self._data_dir).as_posix()

    def prepare(self) -> None:
        """Make a new store usable (the directory of a file)."""
        if self._path is not None:
            self._path.parent.mkdir(parents=True, exist_ok=True)

    def read(self, jid: str | None = None) -> StoredDevice | None:
        """The device row (the one with ``jid``; in a file, the only one if ``jid`` is None), or None."""
        if self._path is not None:
            return read_device(self._path, jid)
        if jid is None:
            return None  # the shared database holds every node's devices: only a JID names one
        assert self._url is not None
        return _read_shared(self._url, jid)

    def delete(self, jid: str | None = None) -> bool:
        """Delete the keys (the file; in the shared database, the device ``jid`` and everything whatsmeow keeps
        for it, which its schema deletes along); True when something was deleted."""
        if self._path is not None:
            return delete_store(self._path)
        if jid is None:
            return False  # an unpaired device is never written to the database
        assert self._url is not None
        return _delete_shared(self._url, jid)


class DeviceStores:
    """Where the device stores of a worker's (or the gateway's) sessions are."""

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        self.data_dir = data_dir
        self.database_url = database_url
        """The cluster's PostgreSQL URL, or None (one SQLite file per session)."""

    def new(self, session_id: str) -> DeviceStore:
        """Where a new pairing of ``session_id`` keeps its device."""
        if self.database_url is not None:
            return DeviceStore(None, self.database_url, self.data_dir)
        return DeviceStore(store_path(self.data_dir, session_id), None, self.data_dir)

    def of(self, ref: DeviceRef) -> DeviceStore:
        """Where a paired device's keys are (a device paired on one gateway keeps its file after it joins a
        cluster; it runs on the node whose data directory has it)."""
        if ref.store == SHARED_STORE:
            if self.database_url is None:
                raise ValueError("the device's keys are in a cluster's PostgreSQL database (ZAPGATE_DATABASE_URL)")
            return DeviceStore(None, self.database_url, self.data_dir)
        return DeviceStore(self.data_dir / ref.store, None, self.data_dir)

    def leftovers(self, session_id: str) -> DeviceStore:
        """The per-session file an earlier pairing of ``session_id`` may have left."""
        return DeviceStore(store_path(self.data_dir, session_id), None, self.data_dir)


def _read_shared(url: str, jid: str) -> StoredDevice | None:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, application_name="zapgate-wa") as conn:
            row = conn.execute("SELECT jid, lid FROM whatsmeow_device WHERE jid = %s", (jid,)).fetchone()
    except psycopg.errors.UndefinedTable:
        return None  # whatsmeow has not created its tables yet: no device was ever paired here
    if row is None:
        return None
    return StoredDevice(str(row[0]), str(row[1]) if row[1] else None)


def _delete_shared(url: str, jid: str) -> bool:
    import psycopg

    try:
        with psycopg.connect(url, autocommit=True, application_name="zapgate-wa") as conn:
            return conn.execute("DELETE FROM whatsmeow_device WHERE jid = %s", (jid,)).rowcount > 0
    except psycopg.errors.UndefinedTable:
        return False
