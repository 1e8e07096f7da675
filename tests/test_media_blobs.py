"""The blob store on a real directory: streamed, hashed, deduplicated, private, bounded, ranges."""

from __future__ import annotations

import hashlib
import io
import os
import random
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
    opaque.write_bytes(random.Random(7).randbytes(200))  # fixed: random bytes can start with "MZ" (dosexec)
    assert sniff(opaque, declared="audio/ogg").mimetype == "audio/ogg"


# -- staging and collecting: a committed reference always ends with its blob in place -------------------------


async def test_stage_keeps_the_bytes_until_the_reference_is_recorded(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(10_000)
    async with store.stage(chunks(data), max_bytes=20_000) as blob:
        assert store.path(blob.sha256).read_bytes() == data
    assert await store.exists(blob.sha256)
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


async def test_a_blob_collected_while_its_new_reference_is_being_recorded_comes_back(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(10_000)
    old = await store.put(chunks(data), max_bytes=20_000)  # an earlier row named it; that row was deleted
    async with store.stage(chunks(data), max_bytes=20_000) as blob:
        assert blob == old
        # The collector ran between the stager's put and its commit: the database said "unreferenced".
        assert await store.collect(blob.sha256, _never) is True
        assert not await store.exists(blob.sha256)
    # The stager committed its row and put the blob back from its own copy.
    assert store.path(blob.sha256).read_bytes() == data
    assert list((tmp_path / "blobs" / "tmp").iterdir()) == []


async def test_a_referenced_blob_is_not_even_moved(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    blob = await store.put(chunks(b"shared"), max_bytes=100)
    assert await store.collect(blob.sha256, _always) is False
    assert not (tmp_path / "blobs" / "trash").exists()


async def test_a_collector_that_sees_a_new_reference_after_the_move_puts_the_blob_back(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(10_000)
    blob = await store.put(chunks(data), max_bytes=20_000)
    answers = iter([False, True])  # unreferenced when first asked; a row appeared before the second question

    async def referenced() -> bool:
        return next(answers)

    assert await store.collect(blob.sha256, referenced) is False
    assert store.path(blob.sha256).read_bytes() == data
    assert list((tmp_path / "blobs" / "trash").iterdir()) == []


async def test_a_reference_appearing_while_the_blob_is_set_aside_keeps_it(tmp_path: Path) -> None:
    """The stager finds the blob set aside (missing) after its commit and reinstalls it; the collector's own
    check then sees the row and puts its copy back too: both copies are the same bytes."""
    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(10_000)
    blob = await store.put(chunks(data), max_bytes=20_000)
    staged: list[bool] = []

    async def referenced() -> bool:
        if not staged:  # the collector's first look: no row names it
            staged.append(False)
            return False
        async with store.stage(chunks(data), max_bytes=20_000):
            pass  # the row is committed here, while the collector holds the blob aside
        staged.append(True)
        return True

    assert await store.collect(blob.sha256, referenced) is False
    assert staged == [False, True] and store.path(blob.sha256).read_bytes() == data


async def test_collecting_a_missing_blob_is_a_no_op(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    assert await store.collect("0" * 64, _never) is False


async def test_stage_file_takes_a_downloaded_file_in_and_checks_its_digest(tmp_path: Path) -> None:
    from zapgate.media import HashMismatch

    store = LocalBlobStore(tmp_path / "blobs")
    data = os.urandom(5000)
    path = await store.scratch()
    path.write_bytes(data)
    with pytest.raises(HashMismatch):
        async with store.stage_file(path, max_bytes=10_000, expect_sha256="0" * 64):
            pass
    assert not path.exists() and not await store.exists(hashlib.sha256(data).hexdigest())
    path = await store.scratch()
    path.write_bytes(data)
    with pytest.raises(BlobTooLarge):
        async with store.stage_file(path, max_bytes=4999):
            pass
    path = await store.scratch()
    path.write_bytes(data)
    async with store.stage_file(path, max_bytes=10_000, expect_sha256=hashlib.sha256(data).hexdigest()) as blob:
        pass
    assert store.path(blob.sha256).read_bytes() == data and not path.exists()
    assert stat.S_IMODE(store.path(blob.sha256).stat().st_mode) == 0o600


async def test_old_leftovers_are_cleaned_and_old_blobs_listed(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    blob = await store.put(chunks(b"old"), max_bytes=100)
    leftover = await store.scratch()
    leftover.write_bytes(b"half a file")
    past = 1_000_000.0
    os.utime(store.path(blob.sha256), (past, past))
    os.utime(leftover, (past, past))
    fresh = await store.put(chunks(b"fresh"), max_bytes=100)
    assert await store.unused_candidates(older_than=past + 1) == [blob.sha256]
    assert not leftover.exists()
    assert await store.exists(fresh.sha256)


async def _never() -> bool:
    return False


async def _always() -> bool:
    return True
