"""The blob store on a real directory: streamed, hashed, deduplicated, private, bounded, ranges."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from zapgate.media import BlobTooLarge, LocalBlobStore, sniff


async def chunks(data: bytes, size: int = 1000) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_put_hashes_deduplicates_and_reads_ranges(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(50_000)
    old_umask = os.umask(0o022)
    try:
        blob = await store.put(chunks(data), max_bytes=100_000)
        again = await store.put(chunks(data, 7000), max_bytes=100_000)
    finally:
        os.umask(old_umask)
    assert blob == again and blob.sha256 == hashlib.sha256(data).hexdigest() and blob.size == len(data)
    path = store.path(blob.sha256)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert b"".join([c async for c in store.read(blob.sha256)]) == data
    assert b"".join([c async for c in store.read(blob.sha256, 100, 40_100)]) == data[100:40_100]
    assert await store.size(blob.sha256) == len(data)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


async def test_too_large_stores_nothing(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    with pytest.raises(BlobTooLarge):
        await store.put(chunks(os.urandom(5000)), max_bytes=4999)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []
    assert not await store.exists(hashlib.sha256(b"").hexdigest())


def test_paths_only_for_digests(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        LocalBlobStore(tmp_path).path("../../etc/passwd")


def test_sniff_trusts_the_bytes(tmp_path: Path) -> None:
    picture = io.BytesIO()
    Image.new("RGB", (64, 48), "red").save(picture, "PNG")
    path = tmp_path / "x.bin"
    path.write_bytes(picture.getvalue())
    facts = sniff(path, declared="application/pdf")
    assert (facts.mimetype, facts.width, facts.height) == ("image/png", 64, 48)
    opaque = tmp_path / "y.bin"
    opaque.write_bytes(os.urandom(200))
    assert sniff(opaque, declared="audio/ogg").mimetype == "audio/ogg"
