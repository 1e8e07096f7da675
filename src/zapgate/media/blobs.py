"""A content-addressed store of file bytes (blobs), named by their SHA-256.

A blob is written once, to a temporary file that is hashed while it is written, flushed to disk and then
renamed to ``<root>/<aa>/<bb>/<sha256>``: a blob either exists whole or not at all, and the same bytes stored
twice take the space once. Files are private (0600, directories 0700) whatever the umask.

The store knows nothing of tenants or media ids: the database maps a tenant's media id to a blob, and checks
who may read it. :class:`LocalBlobStore` keeps blobs in a directory; several gateway nodes share it by
mounting the same directory. An S3-compatible store would implement :class:`BlobStore` too.

Deleting a blob that several database rows may share races with a new row for the same bytes. Two rules make
that safe, across processes too: whoever records a new reference keeps its own copy of the bytes until the
reference is committed, and puts the blob back if it has gone meanwhile (:meth:`LocalBlobStore.stage`); the
collector touches only a blob no row names, moves it aside first, checks the database again *after* the move,
and puts it back if a reference appeared (:meth:`LocalBlobStore.collect`). Whatever the interleaving, a
committed reference ends with its blob in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

__all__ = ["Blob", "BlobStore", "BlobTooLarge", "HashMismatch", "LocalBlobStore", "file_chunks"]

READ_CHUNK = 256 * 1024
WRITE_BATCH = 1024 * 1024
"""Bytes gathered from the network before they are written (and hashed) in a thread."""
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

    async def scratch(self) -> Path:
        """A fresh path for a file that :meth:`stage_file` will take in (an engine downloads into it)."""
        ...

    def stage(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> contextlib.AbstractAsyncContextManager[Blob]:
        """Store the bytes; record the reference inside the block: the blob is in place when the block exits."""
        ...

    def stage_file(
        self, path: Path, *, max_bytes: int, expect_sha256: str | None = None
    ) -> contextlib.AbstractAsyncContextManager[Blob]:
        """Like :meth:`stage`, taking in the file at ``path`` (from :meth:`scratch`); it is gone afterwards."""
        ...

    async def collect(self, sha256: str, referenced: Callable[[], Awaitable[bool]]) -> bool:
        """Delete the blob unless ``referenced()`` (asked after it was moved aside) says a row names it."""
        ...


class HashMismatch(Exception):
    """The file's digest is not the one expected; nothing was stored."""

    def __init__(self, expected: str, got: str) -> None:
        super().__init__(f"the file's SHA-256 is {got}, not the announced {expected}")
        self.expected = expected
        self.got = got


class LocalBlobStore:
    """Blobs as files under ``root`` (see the module documentation)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    async def scratch(self) -> Path:
        tmp_dir = self.root / "tmp"
        await asyncio.to_thread(_private_dirs, tmp_dir)
        return tmp_dir / f"{secrets.token_hex(12)}.part"

    @contextlib.asynccontextmanager
    async def stage(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> AsyncIterator[Blob]:
        tmp = await self.scratch()
        try:
            blob = await self._receive(tmp, chunks, max_bytes)
            async with self._installed(tmp, blob):
                yield blob
        finally:
            await _discard(tmp)

    @contextlib.asynccontextmanager
    async def stage_file(self, path: Path, *, max_bytes: int, expect_sha256: str | None = None) -> AsyncIterator[Blob]:
        try:
            blob = await asyncio.to_thread(_hash_file, path, max_bytes)
            if expect_sha256 is not None and blob.sha256 != expect_sha256:
                raise HashMismatch(expect_sha256, blob.sha256)
            await asyncio.to_thread(os.chmod, path, 0o600)
            async with self._installed(path, blob):
                yield blob
        finally:
            await _discard(path)

    @contextlib.asynccontextmanager
    async def _installed(self, tmp: Path, blob: Blob) -> AsyncIterator[None]:
        """Link ``tmp`` into place for the block; afterwards, put it back if a collector took it meanwhile."""
        final = self.path(blob.sha256)
        await asyncio.to_thread(_link_in, tmp, final)
        yield
        await asyncio.to_thread(_settle, tmp, final)

    async def _receive(self, tmp: Path, chunks: AsyncIterable[bytes], max_bytes: int) -> Blob:
        # Opened in a thread (the directory may be on a network file system); the descriptor is closed even if
        # this task is cancelled while the thread opens it.
        opening = asyncio.ensure_future(asyncio.to_thread(os.open, tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        try:
            fd = await asyncio.shield(opening)
        except asyncio.CancelledError:
            opening.add_done_callback(_close_opened)
            raise
        digest = hashlib.sha256()
        size = 0
        batch: list[bytes] = []
        batched = 0
        with os.fdopen(fd, "wb") as out:
            async for chunk in chunks:
                if not chunk:
                    continue
                size += len(chunk)
                if size > max_bytes:  # checked as each piece arrives, so a too-large body stops at once
                    raise BlobTooLarge(max_bytes)
                batch.append(chunk)
                batched += len(chunk)
                if batched >= WRITE_BATCH:  # one trip to a thread per batch, not per network read
                    await asyncio.to_thread(_write_hashed, out, digest, batch)
                    batch, batched = [], 0
            if batch:
                await asyncio.to_thread(_write_hashed, out, digest, batch)
            await asyncio.to_thread(_flush, out)
        return Blob(digest.hexdigest(), size)

    async def collect(self, sha256: str, referenced: Callable[[], Awaitable[bool]]) -> bool:
        final = self.path(sha256)
        if await referenced():  # the common case for a shared blob: leave it in place, readers never miss it
            return False
        trash_dir = self.root / "trash"
        await asyncio.to_thread(_private_dirs, trash_dir)
        aside = trash_dir / f"{sha256}.{secrets.token_hex(6)}"
        try:
            await asyncio.to_thread(os.rename, final, aside)
        except FileNotFoundError:
            return False
        try:
            keep = await referenced()
        except BaseException:
            await asyncio.shield(asyncio.to_thread(os.replace, aside, final))
            raise
        if keep:
            await asyncio.to_thread(os.replace, aside, final)  # identical bytes if a stager put it back already
            return False
        await asyncio.to_thread(aside.unlink)
        return True

    async def unused_candidates(self, older_than: float) -> list[str]:
        """Digests of blobs not modified since ``older_than`` (to check against the database), after removing
        temporary and set-aside files older than that (left by a crash)."""
        return await asyncio.to_thread(_old_files, self.root, older_than)

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    async def put(self, chunks: AsyncIterable[bytes], *, max_bytes: int) -> Blob:
        async with self.stage(chunks, max_bytes=max_bytes) as blob:
            return blob

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path(sha256).is_file)

    async def size(self, sha256: str) -> int | None:
        try:
            return (await asyncio.to_thread(self.path(sha256).stat)).st_size
        except FileNotFoundError:
            return None

    def read(self, sha256: str, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return file_chunks(self.path(sha256), start, end)

    async def delete(self, sha256: str) -> bool:
        try:
            await asyncio.to_thread(self.path(sha256).unlink)
        except FileNotFoundError:
            return False
        return True


def _private_dirs(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)


def _write_hashed(out: BinaryIO, digest: hashlib._Hash, chunks: list[bytes]) -> None:
    for chunk in chunks:
        out.write(chunk)
        digest.update(chunk)


def _flush(out: BinaryIO) -> None:
    out.flush()
    os.fsync(out.fileno())


async def file_chunks(path: Path, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
    """The bytes of the file at ``path`` from ``start`` up to ``end`` (exclusive; None: to the end), in chunks.

    Each chunk is read in a thread by opening, reading and closing the file: nothing stays open between chunks,
    so a consumer that stops early (a client that disconnects, a cancelled task) leaks no file."""
    offset = start
    while end is None or offset < end:
        want = READ_CHUNK if end is None else min(READ_CHUNK, end - offset)
        chunk = await asyncio.to_thread(_read_at, path, offset, want)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def _read_at(path: Path, offset: int, size: int) -> bytes:
    with path.open("rb") as source:
        source.seek(offset)
        return source.read(size)


def _close_opened(opening: asyncio.Future[int]) -> None:
    if not opening.cancelled() and opening.exception() is None:
        os.close(opening.result())


async def _discard(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        await asyncio.shield(asyncio.to_thread(path.unlink))


def _hash_file(path: Path, max_bytes: int) -> Blob:
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as source:
        while chunk := source.read(READ_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise BlobTooLarge(max_bytes)
            digest.update(chunk)
    return Blob(digest.hexdigest(), size)


def _link_in(tmp: Path, final: Path) -> None:
    """Make ``final`` name the bytes of ``tmp`` (which stays), unless the same bytes are there already."""
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        os.link(tmp, final)
    except FileExistsError:
        return
    except OSError:  # a file system without hard links: install a copy
        copy = tmp.with_name(tmp.name + ".copy")
        shutil.copyfile(tmp, copy)
        os.chmod(copy, 0o600)
        os.replace(copy, final)


def _settle(tmp: Path, final: Path) -> None:
    """After the reference was recorded: the blob must exist; ``tmp`` is not needed any more."""
    if final.exists():
        tmp.unlink(missing_ok=True)
        return
    final.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.replace(tmp, final)


def _old_files(root: Path, older_than: float) -> list[str]:
    for scratch in ("tmp", "trash"):
        folder = root / scratch
        if folder.is_dir():
            for path in folder.iterdir():
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < older_than:
                        path.unlink()
    found = []
    for first in root.glob("[0-9a-f][0-9a-f]"):
        for path in first.glob("[0-9a-f][0-9a-f]/*"):
            with contextlib.suppress(FileNotFoundError):
                if _SHA256.fullmatch(path.name) and path.stat().st_mtime < older_than:
                    found.append(path.name)
    return found
