"""The gateway: the one object that owns storage, engine, sessions and event fan-out.

:func:`zapgate.server.create_app` builds it and its lifespan starts and closes it; nothing in zapgate is a
module global.
"""

from __future__ import annotations

import asyncio
import logging
import time

from .auth import TokenIssuer
from .config import Settings
from .engines import create_engine
from .engines.base import Engine
from .hub import EventHub
from .sessions.manager import SessionManager
from .storage import Storage, open_storage

__all__ = ["Gateway"]

log = logging.getLogger("zapgate.server")

PRUNE_INTERVAL_S = 600.0


class Gateway:
    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.storage: Storage = open_storage(settings.database_path, synchronous=settings.sqlite_synchronous)
        self.hub = EventHub()
        self.engine: Engine = engine or create_engine(settings)
        self.tokens = TokenIssuer(self.storage)
        self.sessions = SessionManager(self.storage, self.engine, settings)
        self.started_at = time.time()
        self._pruner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.storage.open()
        self.storage.set_event_listener(self.hub.publish)
        await self.engine.start(self.sessions.on_engine_event)
        await self.sessions.start()
        self._pruner = asyncio.create_task(self._prune_forever(), name="zapgate-prune")
        log.info("gateway ready (engine %s, data %s)", self.engine.name, self.settings.data_dir)

    async def close(self) -> None:
        if self._pruner is not None:
            self._pruner.cancel()
            await asyncio.gather(self._pruner, return_exceptions=True)
        await self.sessions.close()
        await self.engine.close()
        await self.storage.close()
        log.info("gateway closed")

    async def prune(self) -> int:
        s = self.settings
        return await self.storage.prune(
            time.time(),
            event_max_age=s.event_retention_s,
            event_keep=s.event_retention_count,
            record_max_age=max(s.idempotency_ttl_s, s.event_retention_s),
        )

    async def _prune_forever(self) -> None:
        while True:
            try:
                removed = await self.prune()
                if removed:
                    log.info("pruned %d old events", removed)
            except Exception:
                log.exception("pruning failed")
            await asyncio.sleep(PRUNE_INTERVAL_S)
