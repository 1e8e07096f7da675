"""``media.*``: describe a media file, and download a received one again."""

from __future__ import annotations

import time

from ...auth import Caller
from ...errors import MediaNotFound
from ...gateway import Gateway
from ...media.library import media_info
from ...protocol import MediaGet, MediaInfo, MediaRetry
from ...storage import MediaRecord
from .registry import handles

__all__ = ["may_see_media"]


async def may_see_media(gw: Gateway, caller: Caller, record: MediaRecord) -> bool:
    """A token limited to some sessions sees the files those sessions received or sent, and uploads."""
    if caller.sessions is None or record.session_id is None:
        return True
    session = gw.sessions.by_id(record.session_id)
    stored = session.record if session is not None else await gw.storage.load_session(record.session_id)
    return stored is not None and caller.may_use(stored.name)


def _info(gw: Gateway, record: MediaRecord) -> MediaInfo:
    session = gw.sessions.by_id(record.session_id) if record.session_id else None
    return media_info(record, session.name if session is not None else None)


@handles(MediaGet)
async def media_get(gw: Gateway, caller: Caller, cmd: MediaGet) -> MediaInfo:
    record = await gw.media.store.get(cmd.media_id, caller.tenant)
    if record is None or not await may_see_media(gw, caller, record):
        raise MediaNotFound(f"no media {cmd.media_id}")
    return _info(gw, record)


@handles(MediaRetry)
async def media_retry(gw: Gateway, caller: Caller, cmd: MediaRetry) -> MediaInfo:
    seen = await gw.media.store.get(cmd.media_id, caller.tenant)
    if seen is None or not await may_see_media(gw, caller, seen):
        raise MediaNotFound(f"no media {cmd.media_id}")
    record = await gw.media.store.retry_now(caller.tenant, cmd.media_id, time.time())
    if record is None:
        raise MediaNotFound(f"no media {cmd.media_id}")
    if record.status == "pending" and record.origin == "received":
        gw.sessions.downloads.schedule(caller.tenant, record.id)
    return _info(gw, record)
