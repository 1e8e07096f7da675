"""The media library: tenants' media ids over the blob store and the media table.

Every way a file enters goes through here — an upload (``POST /v1/media``), a URL or inline data in a
``message.send``, a received message's file (downloaded by :class:`~zapgate.media.downloader.Downloader`) — and
so does every way it leaves: the file of a message being sent, ``GET /v1/media/{id}``. Every lookup a client
causes takes its tenant, so another tenant's media id is exactly as unknown as a missing one.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import re
import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ..config import Settings
from ..engines.base import MediaFile, MessageIn, SendError
from ..errors import InvalidRequest, MediaFetchFailed, MediaNotFound, MediaNotReady, MediaTooLarge
from ..protocol.content import MAX_INLINE_MEDIA_BYTES, Content, Document, Media, media_of
from ..protocol.media import MediaInfo
from ..storage import MediaRecord, MediaStore
from .blobs import BlobTooLarge, LocalBlobStore
from .fetch import FetchError, FetchTooLarge, open_url
from .policy import clean_filename, kind_refusal, new_media_id
from .sniff import sniff

__all__ = ["Declared", "MediaLibrary", "media_info"]

log = logging.getLogger("zapgate.media")

ORPHAN_GRACE_S = 3600.0
"""A blob no row names is deleted by the sweep only once it is this old (a stager may be about to name it)."""
SWEEP_INTERVAL_S = 86400.0
"""How often the whole blob directory is checked for blobs no row names (left by a crash)."""
_DATA_URL = re.compile(r"\Adata:([a-zA-Z0-9.+-]+/[a-zA-Z0-9.+-]+)?(?:;[^,]*)?;base64,")


@dataclass
class Declared:
    """What a client says of a file it sends: its type (a hint: the bytes decide, see :func:`sniff`) and its
    name. Read once the bytes are in, so a streamed upload may fill it while it is read."""

    mimetype: str | None = None
    filename: str | None = None


def media_info(record: MediaRecord, session: str | None = None) -> MediaInfo:
    """What clients see of a media row (``session``: the name of the session that received it)."""
    return MediaInfo(
        media_id=record.id,
        status=record.status,  # type: ignore[arg-type]
        origin=record.origin,  # type: ignore[arg-type]
        created_at=record.created_at,
        mimetype=record.mimetype,
        size=record.size,
        sha256=record.sha256 or record.claimed_sha256,
        filename=record.filename,
        width=record.width,
        height=record.height,
        session=session,
        message_id=record.message_id,
        chat=record.chat,
        reason=record.reason,
        attempts=record.attempts,
        retry_at=record.next_attempt_at if record.status == "failed" else None,
    )


class MediaLibrary:
    def __init__(self, store: MediaStore, blobs: LocalBlobStore, settings: Settings) -> None:
        self.store = store
        self.blobs = blobs
        self.settings = settings
        self.max_bytes = settings.media_max_bytes
        self._swept_at = 0.0

    # -- files coming in

    async def upload(
        self,
        tenant: str,
        chunks: AsyncIterable[bytes],
        declared: Declared | None = None,
        *,
        origin: str = "upload",
    ) -> MediaRecord:
        """Store a file streamed in ``chunks`` as a new media id of ``tenant``. Uploading the same bytes again
        under the same name and type returns the earlier media id. Raises :class:`MediaTooLarge` past
        ``media_max_bytes`` (as soon as it is exceeded) and ``invalid_request`` for an empty file."""
        now = time.time()
        declared = declared or Declared()
        try:
            async with self.blobs.stage(chunks, max_bytes=self.max_bytes) as blob:
                if blob.size == 0:
                    raise InvalidRequest("the file is empty")
                filename = clean_filename(declared.filename)
                facts = await asyncio.to_thread(sniff, self.blobs.path(blob.sha256), declared.mimetype)
                if origin in ("upload", "picture"):  # the same file again: the same media id
                    same = await self.store.find_upload(
                        tenant, blob.sha256, filename, facts.mimetype, now, origin=origin
                    )
                    if same is not None:
                        return same
                record = MediaRecord(
                    id=new_media_id(),
                    tenant=tenant,
                    origin=origin,
                    status="ready",
                    created_at=now,
                    used_at=now,
                    sha256=blob.sha256,
                    size=blob.size,
                    mimetype=facts.mimetype,
                    filename=filename,
                    width=facts.width,
                    height=facts.height,
                )
                await self.store.add(record)
        except BlobTooLarge as exc:
            raise MediaTooLarge(f"the file is larger than media_max_bytes ({exc.limit} bytes)") from None
        log.debug("tenant %s: stored %s (%s, %d bytes, %s)", tenant, record.id, record.mimetype, blob.size, origin)
        return record

    async def store_file(self, tenant: str, path: Path, *, origin: str) -> MediaRecord:
        """Store a small local file an engine wrote (a profile picture) as a media id of ``tenant`` (the same bytes
        again: the same id); the file is deleted."""
        try:
            data = await asyncio.to_thread(path.read_bytes)
        finally:
            await asyncio.to_thread(path.unlink, missing_ok=True)
        return await self.upload(tenant, _one(data), Declared(), origin=origin)

    async def fetch(self, tenant: str, url: str, *, mimetype: str | None, filename: str | None) -> MediaRecord:
        """Fetch ``url`` (SSRF-guarded, capped in size and time) and store it as a media id of ``tenant``."""
        timeout = self.settings.media_fetch_timeout_s
        try:
            async with asyncio.timeout(timeout):
                policy = self.settings.outbound_policy
                async with open_url(url, policy=policy, step_timeout=timeout, max_bytes=self.max_bytes) as answer:
                    declared = Declared(mimetype or answer.mimetype, filename or answer.filename)
                    return await self.upload(tenant, answer.chunks, declared, origin="url")
        except (FetchTooLarge, MediaTooLarge):
            raise MediaTooLarge(f"media.url is larger than media_max_bytes ({self.max_bytes} bytes)") from None
        except FetchError as exc:
            raise MediaFetchFailed(str(exc)) from None
        except TimeoutError:
            raise MediaFetchFailed(f"media.url took longer than media_fetch_timeout_s ({timeout:g} s)") from None

    async def inline(self, tenant: str, data: str, *, mimetype: str | None, filename: str | None) -> MediaRecord:
        """Store base64 ``data`` (optionally a ``data:`` URL) as a media id of ``tenant``."""
        declared = _DATA_URL.match(data)
        if declared is not None:
            mimetype = mimetype or declared.group(1)
            data = data[declared.end() :]
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise InvalidRequest("media.data is not valid base64") from None
        if len(raw) > MAX_INLINE_MEDIA_BYTES:
            raise InvalidRequest(
                f"media.data holds {len(raw)} bytes; at most {MAX_INLINE_MEDIA_BYTES} travel inline: upload bigger "
                "files with POST /v1/media and send their media id"
            )
        return await self.upload(tenant, _one(raw), Declared(mimetype, filename), origin="inline")

    async def resolve(self, tenant: str, media: Media) -> MediaRecord:
        """The stored file a client's :class:`Media` names: its upload (``id``, which must be ready), or the file
        fetched from ``url`` or decoded from ``data``, stored now."""
        if media.id is not None:
            record = await self.store.get(media.id, tenant)
            if record is None:
                raise MediaNotFound(f"no media {media.id} (uploads are kept media_retention_s after their last use)")
            if record.status != "ready":
                raise MediaNotReady(f"media {media.id} is {record.status}: its file is not stored")
            return record
        if media.url is not None:
            return await self.fetch(tenant, media.url, mimetype=media.mimetype, filename=media.filename)
        if media.data is not None:
            return await self.inline(tenant, media.data, mimetype=media.mimetype, filename=media.filename)
        raise InvalidRequest("media needs exactly one of id (an upload), url or data (base64)")

    async def for_sending(self, tenant: str, content: Content) -> tuple[Content, str]:
        """``content`` with its media naming a stored file by id (the outbox never holds bytes), and that id.
        Refuses a file that does not fit the kind (``invalid_request``)."""
        media = media_of(content)
        assert media is not None
        record = await self.resolve(tenant, media)
        problem = kind_refusal(content, media.mimetype or record.mimetype or "application/octet-stream")
        if problem is not None:
            raise InvalidRequest(problem)
        stored = Media(id=record.id, mimetype=media.mimetype, filename=media.filename)
        return msgspec.structs.replace(content, media=stored), record.id

    def receiving(self, tenant: str, session_id: str, message: MessageIn) -> tuple[MessageIn, MediaRecord | None]:
        """A received message whose file gets a media id (``pending``), and the row to store with it; the message
        unchanged when it has no file. A file the engine gave no way to download is ``failed`` at once."""
        media = media_of(message.content)
        if media is None:
            return message, None
        if message.media_ref is None:
            failed = msgspec.structs.replace(media, status="failed")
            content: Any = msgspec.structs.replace(message.content, media=failed)
            return msgspec.structs.replace(message, content=content), None
        now = time.time()
        filename = media.filename or (message.content.filename if isinstance(message.content, Document) else None)
        record = MediaRecord(
            id=new_media_id(),
            tenant=tenant,
            origin="received",
            status="pending",
            created_at=now,
            used_at=now,
            size=media.size,
            mimetype=media.mimetype,
            filename=filename,
            session_id=session_id,
            message_id=message.message_id,
            chat=message.chat,
            claimed_sha256=media.sha256,
            media_ref=dict(message.media_ref),
            next_attempt_at=now,
        )
        described = Media(
            id=record.id,
            mimetype=media.mimetype,
            size=media.size,
            sha256=media.sha256,
            filename=media.filename,
            status="pending",
        )
        content = msgspec.structs.replace(message.content, media=described)
        return msgspec.structs.replace(message, content=content), record

    # -- files going out

    async def file_for(self, content: Content) -> MediaFile | None:
        """The local file of a stored message's media (the sender's hook, at send time); None without media.
        Raises a non-retryable :class:`SendError` ``media_gone`` when the file is no longer stored."""
        media = media_of(content)
        if media is None or media.id is None:
            return None
        record = await self.store.get(media.id)
        if record is None or record.status != "ready" or record.sha256 is None:
            raise SendError("media_gone", f"media {media.id} is no longer stored", retryable=False)
        path = self.blobs.path(record.sha256)
        if not await self.blobs.exists(record.sha256):
            raise SendError(
                "media_gone", f"the file of media {media.id} is missing from the media directory", retryable=False
            )
        own_name = content.filename if isinstance(content, Document) else None
        return MediaFile(
            path=str(path),
            mimetype=media.mimetype or record.mimetype or "application/octet-stream",
            size=record.size or 0,
            sha256=record.sha256,
            filename=media.filename or own_name or record.filename,
        )

    async def readable(self, tenant: str, media_id: str) -> MediaRecord:
        """The tenant's stored file to serve; :class:`MediaNotFound` (also for another tenant's id) or
        :class:`MediaNotReady`."""
        record = await self.store.get(media_id, tenant)
        if record is None:
            raise MediaNotFound(f"no media {media_id}")
        if record.status != "ready" or record.sha256 is None:
            raise MediaNotReady(f"media {media_id} is {record.status}: its file is not stored (yet)")
        if not await self.blobs.exists(record.sha256):
            log.error("media %s: its file %s is missing from the media directory", media_id, record.sha256)
            raise MediaNotFound(f"the file of media {media_id} is missing from the media directory")
        return record

    def read(self, record: MediaRecord, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        assert record.sha256 is not None
        return self.blobs.read(record.sha256, start, end)

    # -- retention

    async def prune(self, now: float) -> int:
        """Delete media unused for ``media_retention_s`` (except files queued messages need) and the blobs no row
        names any more; once a day, also blobs a crash left without a row. Returns how many blobs went."""
        removed = 0
        if self.settings.media_retention_s > 0:
            for sha in await self.store.prune(now - self.settings.media_retention_s):
                removed += await self._collect(sha)
        if now - self._swept_at >= SWEEP_INTERVAL_S:
            removed += await self.sweep(now)
        return removed

    async def sweep(self, now: float) -> int:
        """Delete blobs no row names that are older than :data:`ORPHAN_GRACE_S` (a crash between storing a file
        and recording it leaves one), and stale temporary files; returns how many blobs went."""
        self._swept_at = now
        removed = 0
        candidates = await self.blobs.unused_candidates(now - ORPHAN_GRACE_S)
        named = await self.store.known_blobs(candidates)
        for sha in candidates:
            if sha not in named:
                removed += await self._collect(sha)
        return removed

    async def _collect(self, sha: str) -> bool:
        return await self.blobs.collect(sha, lambda: self.store.referenced(sha))


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data
