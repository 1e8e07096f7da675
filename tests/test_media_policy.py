"""The pure rules of media: byte ranges, retry delays, which file each kind accepts, file names, ids."""

from __future__ import annotations

import random

import pytest

from zapgate.media.policy import (
    RETRY_CAP_S,
    ByteRange,
    RangeNotSatisfiable,
    clean_filename,
    kind_refusal,
    new_media_id,
    next_attempt_delay,
    parse_range,
)
from zapgate.protocol.content import Audio, Document, Image, Media, Sticker, Video
from zapgate.server.media import content_disposition

M = Media(id="med_abcdefgh")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("bytes=0-9", ByteRange(0, 10)),
        ("bytes=10-", ByteRange(10, 100)),
        ("bytes=-10", ByteRange(90, 100)),
        ("bytes=-1000", ByteRange(0, 100)),
        ("bytes=90-1000", ByteRange(90, 100)),
        ("bytes = 5 - 5", ByteRange(5, 6)),
        ("bytes=99-99", ByteRange(99, 100)),
        # ignored (the whole file is served): other units, several ranges, nonsense, backwards
        ("items=0-9", None),
        ("bytes=0-1,5-6", None),
        ("bytes=abc", None),
        ("bytes=9-0", None),
        ("bytes=-", None),
    ],
)
def test_ranges(header: str | None, expected: ByteRange | None) -> None:
    assert parse_range(header, 100) == expected


@pytest.mark.parametrize("header", ["bytes=100-", "bytes=100-200", "bytes=-0", "bytes=500-"])
def test_ranges_past_the_end_are_not_satisfiable(header: str) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, 100)


def test_content_range() -> None:
    assert ByteRange(90, 100).content_range(100) == "bytes 90-99/100"
    assert ByteRange(0, 1).length == 1


def test_retry_delays_grow_with_jitter_up_to_the_cap_then_stop() -> None:
    rng = random.Random(7)
    for attempts, step in [(1, 5.0), (2, 10.0), (3, 20.0), (9, min(RETRY_CAP_S, 5.0 * 2**8))]:
        delays = [next_attempt_delay(attempts, max_attempts=20, base=5.0, rng=rng) for _ in range(200)]
        assert all(d is not None and step / 2 <= d <= step for d in delays), (attempts, delays[:3])
        assert len({round(d or 0, 6) for d in delays}) > 100  # jittered, not a fixed schedule
    assert next_attempt_delay(30, max_attempts=40, base=5.0, rng=rng) <= RETRY_CAP_S  # type: ignore[operator]
    assert next_attempt_delay(6, max_attempts=6, base=5.0) is None
    assert next_attempt_delay(7, max_attempts=6, base=5.0) is None


@pytest.mark.parametrize(
    ("content", "mimetype", "says"),
    [
        (Image(media=M), "image/jpeg", None),
        (Image(media=M), "application/pdf", "send it as a document"),
        (Video(media=M), "video/mp4", None),
        (Video(media=M), "image/png", "a video must be"),
        (Audio(media=M), "audio/mpeg", None),
        (Audio(media=M, voice=True), "audio/ogg", None),
        (Audio(media=M, voice=True), "audio/mpeg", "OGG/Opus"),
        (Audio(media=M), "text/plain", "an audio must be"),
        (Sticker(media=M), "image/webp", None),
        (Sticker(media=M), "image/png", "WebP"),
        (Document(media=M), "application/x-msdownload", None),
        (Document(media=M), "image/png", None),
    ],
)
def test_each_kind_accepts_its_files(content: object, mimetype: str, says: str | None) -> None:
    problem = kind_refusal(content, mimetype)  # type: ignore[arg-type]
    assert problem is None if says is None else says in (problem or "")


@pytest.mark.parametrize(
    ("given", "clean"),
    [
        ("nota.pdf", "nota.pdf"),
        ("../../etc/passwd", "passwd"),
        ("C:\\Users\\ana\\foto.jpg", "foto.jpg"),
        ("..", None),
        ("", None),
        (None, None),
        ("a\x00b\nc.txt", "abc.txt"),
        (".env", "env"),
        ("x" * 300, "x" * 255),
        ("relatório ção.pdf", "relatório ção.pdf"),
    ],
)
def test_file_names_are_reduced_to_a_plain_name(given: str | None, clean: str | None) -> None:
    assert clean_filename(given) == clean


def test_content_disposition_keeps_the_name_safely() -> None:
    assert content_disposition("nota.pdf") == 'attachment; filename="nota.pdf"'
    header = content_disposition('relatório "final".pdf')
    assert header.startswith("attachment; filename=\"relat_rio _final_.pdf\"; filename*=UTF-8''")
    assert "relat%C3%B3rio%20%22final%22.pdf" in header


def test_media_ids_are_unguessable_and_fit_the_wire_pattern() -> None:
    import re

    ids = {new_media_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch(r"med_[A-Za-z0-9_-]{8,64}", i) for i in ids)
