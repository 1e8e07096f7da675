"""WhatsApp's media servers, simulated: the real bytes of every file a simulated account sends.

When a session (or a simulated contact) sends a file, the simulator uploads its bytes here, keyed by their
SHA-256, and mails the recipients a message that describes the file (type, size, digest, name; ``pending``) with
a ``media_ref`` pointing here. :meth:`SimulatedCdn.download` copies the bytes out again, so an end-to-end test
can check a file by its digest from one account to another. The files live in ``simulator-media/`` in the data
directory and survive restarts, like messages waiting on the "server".

Failures are modelled too: :meth:`SimulatedCdn.fail_next` makes a session's next downloads fail, with
``cdn_timeout`` (a passing failure: retryable) or ``media_expired`` (the file is gone from the servers, as
WhatsApp's are after a while: not retryable).
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import msgspec

from ...media.blobs import LocalBlobStore, file_chunks
from ...protocol.content import Content, Document, Media, media_of
from ..base import DownloadError, MediaFile, SendError

__all__ = ["SimulatedCdn"]

MAX_FILE_BYTES = 2 * 1024**3
"""WhatsApp's own limit for a document."""
_RETRYABLE = {"cdn_timeout": True, "media_expired": False}


class SimulatedCdn:
    def __init__(self, root: Path) -> None:
        self._blobs = LocalBlobStore(root)
        self._failures: dict[str, list[str]] = {}

    async def publish(self, content: Content, file: MediaFile | None) -> tuple[Content, dict[str, Any]]:
        """Upload the file of a media message: ``content`` as its recipients receive it, and its ``media_ref``."""
        if file is None:
            raise SendError("media_missing", "the message names a file the engine was not given", retryable=False)
        blob = await self._blobs.put(file_chunks(Path(file.path)), max_bytes=MAX_FILE_BYTES)
        described = Media(
            mimetype=file.mimetype,
            size=blob.size,
            sha256=blob.sha256,
            filename=file.filename if isinstance(content, Document) else None,  # only documents carry a name
            status="pending",
        )
        assert media_of(content) is not None
        delivered: Content = msgspec.structs.replace(content, media=described)
        return delivered, {"cdn": blob.sha256, "size": blob.size}

    def fail_next(self, session_id: str, times: int, reason: str) -> int:
        """Make the session's next ``times`` downloads fail with ``reason`` (0 clears); returns ``times``."""
        if reason not in _RETRYABLE:
            raise ValueError(f"unknown download failure {reason!r}")
        if times:
            self._failures[session_id] = [reason] * times
        else:
            self._failures.pop(session_id, None)
        return times

    async def download(self, session_id: str, media_ref: dict[str, Any], into: Path) -> None:
        failures = self._failures.get(session_id)
        if failures:
            reason = failures.pop()
            if not failures:
                del self._failures[session_id]
            message = "WhatsApp's media server timed out" if reason == "cdn_timeout" else "the file expired"
            raise DownloadError(reason, message, retryable=_RETRYABLE[reason])
        digest = media_ref.get("cdn")
        try:
            stored = isinstance(digest, str) and await self._blobs.exists(digest)
        except ValueError:  # not a digest
            stored = False
        if not stored:
            raise DownloadError("media_expired", "the file is not on the media server", retryable=False)
        assert isinstance(digest, str)
        await asyncio.to_thread(shutil.copyfile, self._blobs.path(digest), into)
