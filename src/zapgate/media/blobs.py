"""A content-addressed store of file bytes (blobs), named by their SHA-256.

A blob is written once, to a temporary file that is hashed while it is written, flushed to disk and then
renamed to ``<root>/<aa>/<bb>/<sha256>``: a blob either exists whole or not at all, and the same bytes stored
twice take the space once. Files are private (0600, directories 0700) whatever the umask.

The store knows nothing of tenants or media ids: the database maps a tenant's media id to a blob, and checks
who may read it. :class:`LocalBlobStore` keeps blobs in a directory; several gateway nodes share it by
mounting the same directory. An S3-compatible store would implement :class:`BlobStore` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["Blob", "BlobStore", "BlobTooLarge", "LocalBlobStore"]

READ_CHUNK = 256 * 1024
_SHA256 = re.compile(r"[0-9a-f]{64}")


class BlobTooLarge(Exception):
    """More bytes arrived than the caller allowed; nothing was stored."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the file is larger than {limit} bytes")
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Blob:
    sha256: str
    size: int


class BlobStore(Protocol):
    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> Blob:
        """Store the bytes (streamed, never all in memory); raises :class:`BlobTooLarge` past ``max_bytes``."""
        ...

    def path(self, sha256: str) -> Path:
        """Where the blob's file is (engines hand files to WhatsApp by path)."""
        ...

    async def exists(self, sha256: str) -> bool: ...

    async def size(self, sha256: str) -> int | None: ...

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The bytes from ``start`` up to ``end`` (exclusive; None: to the end), in chunks."""
        ...

    async def delete(self, sha256: str) -> bool: ...


class LocalBlobStore:
    """Blobs as files under ``root`` (see the module documentation)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> Blob:
        tmp_dir = self.root / "tmp"
        await asyncio.to_thread(_private_dirs, tmp_dir)
        tmp = tmp_dir / f"{secrets.token_hex(12)}.part"
        fd = await asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        digest = hashlib.sha256()
        size = 0
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    if not chunk:
                        continue
                    size += len(chunk)
                    if size > max_bytes:
                        raise BlobTooLarge(max_bytes)
                    await asyncio.to_thread(_write_hashed, out, digest, chunk)
                await asyncio.to_thread(_flush, out)
            sha = digest.hexdigest()
            final = self.path(sha)
            await asyncio.to_thread(_install, tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.shield(asyncio.to_thread(tmp.unlink))
            raise
        return Blob(sha, size)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path(sha256).is_file)

    async def size(self, sha256: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.path(sha256).stat)).st_size
        except FileNotFoundError:
            return None

    async def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        handle = await asyncio.to_thread(open, self.path(sha256), "rb")
        try:
            await asyncio.to_thread(handle.seek, start)
            left = None if end is None else max(0, end - start)
            while left is None or left > 0:
                want = READ_CHUNK if left is None else min(READ_CHUNK, left)
                chunk = await asyncio.to_thread(handle.read, want)
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(handle.close)

    async def delete(self, sha256: str) -> bool:
        try:
            await asyncio.to_thread(self.path(sha256).unlink)
        except FileNotFoundError:
            return False
        return True


def _private_dirs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def _write_hashed(out: BinaryIO, digest: hashlib._Hash, chunk: bytes) -> None:
    out.write(chunk)
    digest.update(chunk)


def _flush(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


def _install(tmp: Path, final: Path) -> None:
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if final.exists():  # the same bytes are stored already
        tmp.unlink()
        return
    os.replace(tmp, final)
