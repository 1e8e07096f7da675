"""Media files: what the gateway stores, the commands about them and the events of received files (pure).

The files themselves never travel inside frames: ``POST /v1/media`` uploads one (answering a
:class:`MediaInfo`), ``GET /v1/media/{media_id}`` serves it, and ``message.send`` refers to it by ``media.id``
(see :mod:`.content`). A received file is downloaded by the gateway after ``message.received`` (whose
``content.media`` already names its ``id`` with ``status: "pending"``); ``media.ready`` or ``media.failed``
follows.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from .base import Command, Scope, command, event
from .content import MediaId

__all__ = ["MediaFailedData", "MediaGet", "MediaInfo", "MediaReadyData", "MediaRetry"]

MediaStatus = Literal["pending", "ready", "failed"]
MediaOrigin = Literal["upload", "url", "inline", "received", "picture"]


class MediaInfo(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A media file of the tenant, as the gateway keeps it."""

    media_id: str
    status: MediaStatus
    """``ready`` when the file is stored; a received file is ``pending`` until downloaded, or ``failed``."""
    origin: MediaOrigin
    """``upload`` (``POST /v1/media``), ``url`` or ``inline`` (given in a ``message.send``), ``received``, or
    ``picture`` (a contact's profile picture, from ``contact.info``)."""
    created_at: float
    mimetype: str | None = None
    """The type read from the file's bytes (for a received file not yet downloaded: what WhatsApp announced)."""
    size: int | None = None
    sha256: str | None = None
    """Hex SHA-256 of the file."""
    filename: str | None = None
    width: int | None = None
    """Pictures: width and height in pixels, read from the file."""
    height: int | None = None
    session: str | None = None
    """A received file: the session that received it."""
    message_id: str | None = None
    """A received file: the message it came with."""
    chat: str | None = None
    reason: str | None = None
    """``failed``: why the last download failed (a stable code, see docs/media.md)."""
    attempts: int = 0
    """A received file: download attempts so far."""
    retry_at: float | None = None
    """``failed``: when the gateway tries again by itself (absent: it gave up; ``media.retry`` tries again)."""


@command(reply=MediaInfo, scope=Scope.READ, http=("GET", "/v1/media/{media_id}/info"))
class MediaGet(Command, tag="media.get"):
    """Describe one of the tenant's media files: status, type, size, digest. Another tenant's id is
    ``media_not_found``, exactly like a missing one."""

    media_id: MediaId


@command(reply=MediaInfo, scope=Scope.SEND, http=("POST", "/v1/media/{media_id}/retry"))
class MediaRetry(Command, tag="media.retry"):
    """Download a received file again now (after ``media.failed``), whatever its retry schedule; a file that is
    already stored answers its info and does nothing. ``media.ready`` or ``media.failed`` follows."""

    media_id: MediaId


class MediaReadyData(msgspec.Struct, omit_defaults=True, kw_only=True):
    media_id: str
    message_id: str
    """The received message the file belongs to."""
    chat: str
    mimetype: str
    size: int
    sha256: str
    filename: str | None = None
    width: int | None = None
    height: int | None = None


class MediaFailedData(msgspec.Struct, omit_defaults=True, kw_only=True):
    media_id: str
    message_id: str
    chat: str
    reason: str
    """A stable code: ``cdn_timeout``, ``media_expired``, ``too_large``, ``hash_mismatch``, … (docs/media.md)."""
    attempts: int
    detail: str | None = None
    """What went wrong, in words (for people; do not parse it)."""
    retry_at: float | None = None
    """When the gateway tries again by itself; absent when it gave up (``media.retry`` tries again)."""


event("media.ready", MediaReadyData, "a received file was downloaded and is stored: GET /v1/media/{media_id}")
event("media.failed", MediaFailedData, "a received file could not be downloaded (retry_at: it will try again)")
