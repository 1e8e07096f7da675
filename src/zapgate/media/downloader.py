"""The downloader of received files: one owned task that hands files to the engine, a few at a time.

A received message's file gets a ``pending`` media row in the same transaction as its ``message.received`` event;
the session manager then :meth:`~Downloader.schedule`\\ s it. Downloads run at most ``media_download_concurrency``
at once, taken from the tenants in turn, so one tenant receiving a flood of files does not hold up the others.
Each outcome is committed with its event: ``media.ready``, or ``media.failed`` with the reason and, when the
failure may pass (the engine says it is retryable), ``retry_at``: the file is tried again after a capped,
jittered exponential delay (:func:`~zapgate.media.policy.next_attempt_delay`) until ``media_download_attempts``
attempts failed; ``media.retry`` starts over. Unfinished downloads are found in the database at start, so they
survive a restart.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import random
import time
from collections.abc import Callable
from pathlib import Path

from ..background import BackgroundTasks
from ..config import Settings
from ..engines.base import DownloadError, Engine
from ..protocol import encode
from ..protocol.media import MediaFailedData, MediaReadyData
from ..storage import MediaRecord, NewEvent
from .blobs import BlobTooLarge, HashMismatch
from .library import MediaLibrary
from .policy import next_attempt_delay
from .sniff import sniff

__all__ = ["Downloader", "SessionNames"]

log = logging.getLogger("zapgate.media")

SessionNames = Callable[[str], tuple[str, str] | None]
"""A session id → (tenant, session name), or None when the session no longer exists."""


class Downloader:
    def __init__(
        self,
        library: MediaLibrary,
        engine: Engine,
        settings: Settings,
        *,
        names: SessionNames,
        rng: random.Random | None = None,
    ) -> None:
        self._library = library
        self._store = library.store
        self._blobs = library.blobs
        self._engine = engine
        self._settings = settings
        self._names = names
        self._rng = rng or random.Random()
        self._later: list[tuple[float, str, str]] = []  # heap of (due, tenant, media id)
        self._due: dict[str, float] = {}  # media id -> when it is due (the heap may hold stale entries)
        self._ready: collections.OrderedDict[str, collections.deque[str]] = collections.OrderedDict()
        self._running: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._tasks = BackgroundTasks(log)

    @property
    def backlog(self) -> int:
        """Files waiting for a download (scheduled or due), not counting those being downloaded."""
        return len(self._due)

    async def start(self) -> None:
        """Resume every unfinished download of the sessions this gateway runs, and start downloading."""
        await self.resume()
        self._tasks.spawn(self._dispatch(), name="zapgate-media-downloads")

    async def resume(self, session_ids: set[str] | None = None) -> None:
        """Schedule the unfinished downloads of the sessions this gateway runs (of ``session_ids`` only: with
        several nodes, sessions that just came to this node)."""
        now = time.time()
        resumed = 0
        for record in await self._store.unfinished():
            if session_ids is not None and record.session_id not in session_ids:
                continue
            if record.session_id is not None and self._names(record.session_id) is not None:
                self.schedule(record.tenant, record.id, record.next_attempt_at or now)
                resumed += 1
        if resumed:
            log.info("resuming %d media downloads", resumed)

    async def close(self) -> None:
        await self._tasks.close()
        self._running.clear()

    def schedule(self, tenant: str, media_id: str, at: float | None = None) -> None:
        """Download ``media_id`` at ``at`` (now when None); an earlier schedule of it is replaced."""
        due = time.time() if at is None else at
        self._due[media_id] = due
        heapq.heappush(self._later, (due, tenant, media_id))
        self._wake.set()

    # -- the dispatcher

    async def _dispatch(self) -> None:
        limit = self._settings.media_download_concurrency
        while True:
            now = time.time()
            while self._later and self._later[0][0] <= now:
                due, tenant, media_id = heapq.heappop(self._later)
                if self._due.get(media_id) != due:
                    continue  # rescheduled meanwhile: a later entry stands for it
                del self._due[media_id]
                self._ready.setdefault(tenant, collections.deque()).append(media_id)
            while self._ready and len(self._running) < limit:
                tenant, queue = next(iter(self._ready.items()))
                media_id = queue.popleft()
                if queue:
                    self._ready.move_to_end(tenant)  # the next file comes from the next tenant
                else:
                    del self._ready[tenant]
                if media_id not in self._running:
                    self._start(media_id)
            wait = max(0.0, self._later[0][0] - now) if self._later else None
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    def _start(self, media_id: str) -> None:
        task = self._tasks.spawn(self._download(media_id), name=f"zapgate-media-{media_id}")
        self._running[media_id] = task

        def done(finished: asyncio.Task[None]) -> None:  # a failure is logged by the task's owner
            if self._running.get(media_id) is finished:
                del self._running[media_id]
            self._wake.set()

        task.add_done_callback(done)

    # -- one download

    async def _download(self, media_id: str) -> None:
        record = await self._store.get(media_id)
        if record is None or record.status == "ready" or record.session_id is None:
            return
        owner = self._names(record.session_id)
        if owner is None:
            return  # the session was deleted (and its media with it)
        scratch = await self._blobs.scratch()
        try:
            await self._fetch(record, owner, scratch)
        except DownloadError as exc:
            await self._failed(record, owner, exc.code, exc.message, retryable=exc.retryable)
        except BlobTooLarge as exc:
            detail = f"the file is larger than media_max_bytes ({exc.limit} bytes)"
            await self._failed(record, owner, "too_large", detail, retryable=False)
        except HashMismatch as exc:
            await self._failed(record, owner, "hash_mismatch", str(exc), retryable=True)
        except TimeoutError:
            limit = self._settings.media_download_timeout_s
            detail = f"the download took longer than media_download_timeout_s ({limit:g} s)"
            await self._failed(record, owner, "timeout", detail, retryable=True)
        except Exception:
            log.exception("media %s: download failed", media_id)
            await self._failed(record, owner, "internal", "the gateway failed (see its log)", retryable=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.shield(asyncio.to_thread(scratch.unlink))

    async def _fetch(self, record: MediaRecord, owner: tuple[str, str], into: Path) -> None:
        assert record.session_id is not None
        async with asyncio.timeout(self._settings.media_download_timeout_s):
            await self._engine.download(record.session_id, record.media_ref or {}, into)
        async with self._blobs.stage_file(
            into, max_bytes=self._library.max_bytes, expect_sha256=record.claimed_sha256
        ) as blob:
            facts = await asyncio.to_thread(sniff, self._blobs.path(blob.sha256), record.mimetype)
            tenant, session = owner
            data = MediaReadyData(
                media_id=record.id,
                message_id=record.message_id or "",
                chat=record.chat or "",
                mimetype=facts.mimetype,
                size=blob.size,
                sha256=blob.sha256,
                filename=record.filename,
                width=facts.width,
                height=facts.height,
            )
            await self._store.mark_ready(
                record.id,
                sha256=blob.sha256,
                size=blob.size,
                mimetype=facts.mimetype,
                width=facts.width,
                height=facts.height,
                events=[NewEvent(tenant, session, "media.ready", encode(data))],
                now=time.time(),
            )
        log.debug("media %s: downloaded (%d bytes)", record.id, blob.size)

    async def _failed(
        self, record: MediaRecord, owner: tuple[str, str], reason: str, detail: str, *, retryable: bool
    ) -> None:
        attempts = record.attempts + 1
        now = time.time()
        delay = (
            next_attempt_delay(
                attempts,
                max_attempts=self._settings.media_download_attempts,
                base=self._settings.media_retry_base_s,
                rng=self._rng,
            )
            if retryable
            else None
        )
        retry_at = None if delay is None else now + delay
        tenant, session = owner
        data = MediaFailedData(
            media_id=record.id,
            message_id=record.message_id or "",
            chat=record.chat or "",
            reason=reason,
            attempts=attempts,
            detail=detail,
            retry_at=retry_at,
        )
        log.info(
            "media %s (session %s): download attempt %d failed: %s%s",
            record.id,
            record.session_id,
            attempts,
            reason,
            f"; retrying in {delay:.1f} s" if delay is not None else "",
        )
        changed = await self._store.mark_failed(
            record.id,
            reason=reason,
            detail=detail,
            attempts=attempts,
            next_attempt_at=retry_at,
            events=[NewEvent(tenant, session, "media.failed", encode(data))],
            now=now,
        )
        if changed and retry_at is not None:
            self.schedule(tenant, record.id, retry_at)
