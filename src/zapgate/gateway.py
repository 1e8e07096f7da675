"""The gateway: the one object that owns storage, engine, sessions and event fan-out.

:func:`zapgate.server.create_app` builds it and its lifespan starts and closes it; nothing in zapgate is a
module global.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from .auth import TokenIssuer
from .config import Settings
from .engines import create_engine
from .engines.base import Engine, Sandbox
from .hub import EventHub
from .sessions.manager import SessionManager
from .storage import Storage, open_storage

__all__ = ["Gateway"]

log = logging.getLogger("zapgate.server")

PRUNE_INTERVAL_S = 600.0
TOKEN_CHECK_INTERVAL_S = 30.0
"""How often live connections are checked against revoked tokens."""


class LiveConnection(Protocol):
    token_id: str | None

    def revoke(self) -> None:
        """Close the connection because its token was revoked."""


class Gateway:
    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.storage: Storage = open_storage(settings.storage_url, synchronous=settings.sqlite_synchronous)
        self.hub = EventHub()
        self.engine: Engine = engine or create_engine(settings)
        self.tokens = TokenIssuer(self.storage)
        self.sessions = SessionManager(self.storage, self.engine, settings)
        self.started_at = time.time()
        self.connections: set[LiveConnection] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def sandbox(self) -> Sandbox | None:
        """The engine's simulator controls (``sim.*``), when the engine is a simulator."""
        return self.engine if isinstance(self.engine, Sandbox) else None

    async def start(self) -> None:
        await self.storage.open()
        self.storage.set_event_listener(self.hub.publish)
        await self.engine.start(self.sessions.on_engine_event)
        await self.sessions.start()
        self._tasks = [
            asyncio.create_task(self._every(PRUNE_INTERVAL_S, self.prune), name="zapgate-prune"),
            asyncio.create_task(self._every(TOKEN_CHECK_INTERVAL_S, self.check_tokens), name="zapgate-tokens"),
        ]
        log.info("gateway ready (engine %s, data %s)", self.engine.name, self.settings.data_dir)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
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

    async def check_tokens(self) -> int:
        """Close every live connection whose token was revoked; return how many."""
        by_token: dict[str, list[LiveConnection]] = {}
        for connection in self.connections:
            if connection.token_id is not None:
                by_token.setdefault(connection.token_id, []).append(connection)
        if not by_token:
            return 0
        live = await self.storage.live_tokens(list(by_token))
        revoked = [c for token_id, conns in by_token.items() if token_id not in live for c in conns]
        for connection in revoked:
            connection.revoke()
        return len(revoked)

    async def _every(self, seconds: float, job: Callable[[], Awaitable[int]]) -> None:
        """Run ``job`` now and then every ``seconds``."""
        while True:
            try:
                done = await job()
                if done:
                    log.info("%s: %d", job.__name__, done)
            except Exception:
                log.exception("%s failed", job.__name__)
            await asyncio.sleep(seconds)
