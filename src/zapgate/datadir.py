"""The data directory: private to its owner, and used by one gateway at a time.

Everything zapgate keeps at rest lives in the data directory: the gateway's database (tokens' hashes,
message texts, QR codes, device records), the simulator's, and the real engine's device keys. So the
directory is created ``0700`` and every database file ``0600``, whatever the umask.

Two gateways on one data directory would corrupt its event log (both hand out the same ``seq``) and, with
the real engine, run two WhatsApp clients on one device. :class:`DataDirLock` prevents that: the gateway
holds an exclusive ``flock`` on ``zapgate.lock`` in the directory for as long as it runs, and writes its pid
there so that a second one can say who holds it. The lock belongs to the open file, so the kernel releases it
when the process dies, however it dies; a stale pid in the file means nothing. ``zapgate token`` commands
do not take it: they share the database with a running gateway, which SQLite's WAL mode allows.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
from pathlib import Path

__all__ = ["LOCK_FILE", "DataDirError", "DataDirInUse", "DataDirLock", "ensure_private_dir", "ensure_private_file"]

LOCK_FILE = "zapgate.lock"

DIR_MODE = 0o700
FILE_MODE = 0o600


class DataDirError(Exception):
    """The data directory cannot be used; the message names it and says why."""


class DataDirInUse(DataDirError):
    """Another process (a running gateway) holds the data directory's lock."""

    def __init__(self, path: Path, pid: int | None) -> None:
        holder = f"pid {pid}" if pid is not None else "a process whose pid is not recorded yet"
        super().__init__(f"data directory {path} is in use by another zapgate gateway ({holder})")
        self.path = path
        self.pid = pid


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) if needed; a directory created here is ``0700`` whatever the umask.

    An existing directory keeps its mode: it may have been set up on purpose (see :func:`is_private`)."""
    if path.is_dir():
        return
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)  # mkdir's mode is filtered through the umask


def ensure_private_file(path: Path) -> None:
    """Create ``path`` empty with mode ``0600`` if it does not exist, else set that mode (an older zapgate
    created database files with the umask's default, usually world-readable)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileExistsError:
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            os.chmod(path, FILE_MODE)
        return
    try:
        os.fchmod(fd, FILE_MODE)  # O_CREAT's mode is filtered through the umask too
    finally:
        os.close(fd)


def is_private(path: Path) -> bool:
    """True when neither the group nor others can read, write or enter ``path``."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


class DataDirLock:
    """An exclusive, process-lifetime lock on a data directory (see the module documentation)."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.absolute()
        self.path = self.data_dir / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Create the directory if needed, take the lock and record this process's pid in it.

        Raises :class:`DataDirInUse` when another process holds it, :class:`DataDirError` when the directory
        cannot be created or written. Taking a lock this object already holds does nothing."""
        if self._fd is not None:
            return
        try:
            ensure_private_dir(self.data_dir)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        except OSError as exc:
            raise DataDirError(f"cannot use data directory {self.data_dir}: {_why(exc)}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirInUse(self.data_dir, pid) from None
        except OSError as exc:
            os.close(fd)
            raise DataDirError(f"cannot lock data directory {self.data_dir}: {_why(exc)}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as exc:
            os.close(fd)
            raise DataDirError(f"cannot write to data directory {self.data_dir}: {_why(exc)}") from None
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (closing the file releases it); the file and its stale pid stay."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _read_pid(fd: int) -> int | None:
    with contextlib.suppress(OSError, ValueError):
        return int(os.pread(fd, 32, 0).decode().strip())
    return None


def _why(exc: OSError) -> str:
    return exc.strerror.lower() if exc.strerror else str(exc)
