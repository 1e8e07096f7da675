"""The rules of media, as pure functions: ids, which file each kind of message accepts, when a failed download is
tried again, and which bytes a ``Range`` header asks for."""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import dataclass

from ..protocol.content import Audio, Content, Document, Image, Sticker, Video

__all__ = [
    "RETRY_CAP_S",
    "ByteRange",
    "RangeNotSatisfiable",
    "clean_filename",
    "kind_refusal",
    "new_media_id",
    "next_attempt_delay",
    "parse_range",
]

RETRY_CAP_S = 900.0
"""Longest wait between two automatic download attempts."""


def new_media_id() -> str:
    """A media id: ``med_`` and 144 random bits (unguessable, although every read also checks the tenant)."""
    return "med_" + secrets.token_urlsafe(18)


def kind_refusal(content: Content, mimetype: str) -> str | None:
    """Why a file of type ``mimetype`` cannot be sent as ``content``'s kind (a message for ``invalid_request``),
    or None when it can. WhatsApp shows a file according to what it is: a PDF sent as an image arrives broken."""
    major = mimetype.partition("/")[0]
    match content:
        case Sticker():
            if mimetype != "image/webp":
                return f"a sticker must be a WebP image, not {mimetype}"
        case Image():
            if major != "image":
                return f"an image must be a picture, not {mimetype}; send it as a document"
        case Video():
            if major != "video":
                return f"a video must be a video file, not {mimetype}; send it as a document"
        case Audio():
            if content.voice and mimetype != "audio/ogg":
                return f"a voice note must be OGG/Opus audio (audio/ogg), not {mimetype}; send it as audio"
            if major != "audio":
                return f"an audio must be a sound file, not {mimetype}; send it as a document"
        case Document():
            return None
    return None


def next_attempt_delay(
    attempts: int, *, max_attempts: int, base: float, cap: float = RETRY_CAP_S, rng: random.Random | None = None
) -> float | None:
    """Seconds until the next automatic attempt after ``attempts`` failed ones, or None to give up.

    Capped exponential backoff with "equal jitter": half the step is fixed, half random, so retries of many
    files spread out yet never come back at once."""
    if attempts >= max_attempts:
        return None
    step = min(cap, base * 2 ** min(attempts - 1, 62)) if attempts >= 1 else base
    return step / 2 + (rng or random).uniform(0, step / 2)


@dataclass(frozen=True, slots=True)
class ByteRange:
    start: int
    end: int
    """Exclusive."""

    @property
    def length(self) -> int:
        return self.end - self.start

    def content_range(self, size: int) -> str:
        return f"bytes {self.start}-{self.end - 1}/{size}"


class RangeNotSatisfiable(Exception):
    """The range starts past the end of the file (HTTP 416)."""


_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks of a file of ``size`` bytes; None for the whole file.

    A header that is malformed, of another unit, or asks for several ranges is ignored, as RFC 9110 allows (the
    whole file is served). Raises :class:`RangeNotSatisfiable` when the range lies past the end."""
    if not header:
        return None
    match = _RANGE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return ByteRange(max(0, size - suffix), size)
    start = int(first)
    end = int(last) + 1 if last else size
    if last and end <= start:
        return None  # invalid: ignored
    if start >= size:
        raise RangeNotSatisfiable
    return ByteRange(start, min(end, size))


_UNSAFE_IN_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def clean_filename(name: str | None) -> str | None:
    """A file name as a client or a server gave it, reduced to a plain name: no directories, no control
    characters, at most 255 characters; None when nothing is left."""
    if not name:
        return None
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE_IN_NAME.sub("", name).strip().lstrip(".")
    return name[:255] or None
