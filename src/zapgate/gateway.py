"""The gateway: the one object that owns storage, engine, sessions and event fan-out.

:func:`zapgate.server.create_app` builds it and its lifespan starts and closes it; nothing in zapgate is a
module global. While it runs it holds its data directory's lock (:mod:`zapgate.datadir`): a second gateway
on the same directory does not start. With a PostgreSQL database it is one node of a cluster
(:attr:`Gateway.cluster`, ``docs/scaling.md``): it runs the sessions it holds leases for and forwards commands
for the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from .auth import ADMIN_TOKEN_ID, TokenIssuer, load_admin_token
from .background import BackgroundTasks
from .cluster.latency import Latencies
from .cluster.node import ClusterNode
from .config import Settings
from .datadir import DataDirLock, is_private
from .engines import create_engine
from .engines.base import Engine, Sandbox
from .hub import EventHub
from .media import LocalBlobStore
from .media.library import MediaLibrary
from .sessions.manager import SessionManager
from .storage import Storage, StoredEvent, open_storage
from .webhooks import WebhookService

__all__ = ["Gateway"]

log = logging.getLogger("zapgate.server")

PRUNE_INTERVAL_S = 600.0
TOKEN_CHECK_INTERVAL_S = 30.0
"""How often live connections are checked against revoked and expired tokens and disabled tenants (changes made
through the admin API take effect at once; this covers the CLI, other nodes and expiry)."""
LOOP_LAG_INTERVAL_S = 0.1
"""How often the event loop's lag is sampled (``zapgate_event_loop_lag_seconds``): a timer set for this long, and
how late it fired."""


_REFUSALS = {
    "revoked": "the token of this connection was revoked",
    "expired": "the token of this connection expired",
    "tenant_disabled": "tenant {tenant!r} was disabled",
}


class LiveConnection(Protocol):
    token_id: str | None
    tenant: str | None

    def revoke(self, why: str = ...) -> None:
        """Close the connection because its token may no longer be used (``why`` says why)."""


class Gateway:
    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.storage: Storage = open_storage(
            settings.storage_url, synchronous=settings.sqlite_synchronous, lock_hold_limit_s=settings.lock_hold_limit_s
        )
        self.hub = EventHub()
        self.cluster = ClusterNode(settings, self.storage, self.hub) if settings.clustered else None
        self.engine: Engine = engine or create_engine(settings, node=self.cluster.node if self.cluster else None)
        # Checked once: ``isinstance`` against a runtime-checkable protocol inspects every member on every call
        # (about 17 µs on the benchmark machine), and each ``sim.*`` command asks.
        self._sandbox = self.engine if isinstance(self.engine, Sandbox) else None
        self.tokens = TokenIssuer(self.storage, load_admin_token(settings))
        self.media = MediaLibrary(self.storage.media, LocalBlobStore(settings.media_path), settings)
        self.sessions = SessionManager(
            self.storage,
            self.engine,
            settings,
            self.media,
            ownership=self.cluster.keeper if self.cluster else None,
        )
        if self.cluster is not None:
            sandbox = self.sandbox
            self.cluster.attach(self.sessions, sandbox.locate if sandbox is not None else None)
        self.webhooks = WebhookService(
            settings, self.storage, self.hub, node=self.cluster.node if self.cluster is not None else None
        )
        self.started_at = time.time()
        self.connections: set[LiveConnection] = set()
        self.data_lock = DataDirLock(settings.data_dir)
        self._tasks = BackgroundTasks(log)
        self.loop_lag = Latencies()
        """How late the event loop runs a timer: what a command, reply or event arriving then waits (``/metrics``)."""

    async def lock_data_dir(self) -> None:
        """Take the data directory's lock (creating the directory, private, if needed); :meth:`start` does it
        too. Raises :class:`~zapgate.datadir.DataDirInUse` while another gateway runs on it, or
        :class:`~zapgate.datadir.DataDirError` when the directory cannot be created or written."""
        await asyncio.to_thread(self.data_lock.acquire)

    @property
    def sandbox(self) -> Sandbox | None:
        """The engine's simulator controls (``sim.*``), when the engine is a simulator."""
        return self._sandbox

    async def start(self) -> None:
        await self.lock_data_dir()
        try:
            await self._start()
        except BaseException:
            self.data_lock.release()
            raise

    async def _start(self) -> None:
        data_dir = self.data_lock.data_dir
        if not await asyncio.to_thread(is_private, data_dir):
            log.warning(
                "data directory %s is open to other users; it holds message texts and device keys: run 'chmod 700 %s'",
                data_dir,
                data_dir,
            )
        await self.storage.open()
        self.storage.set_event_listener(self._committed)
        await self.engine.start(self.sessions.on_engine_event, self.sessions.on_engine_events)
        await self.sessions.start()
        self.storage.db.pace_publishing = self.sessions.admit_publishing
        if self.cluster is not None:
            await self.cluster.start()
        await self.webhooks.start()
        self._tasks.spawn(self._every(PRUNE_INTERVAL_S, self.prune), name="zapgate-prune")
        self._tasks.spawn(self._every(TOKEN_CHECK_INTERVAL_S, self.check_tokens), name="zapgate-tokens")
        self._tasks.spawn(self._watch_loop_lag(), name="zapgate-loop-lag")
        log.info(
            "gateway ready (engine %s, data %s, database %s)",
            self.engine.name,
            data_dir,
            self.storage.db.describe(),
        )

    async def close(self) -> None:
        await self._tasks.close()
        await self.webhooks.close()
        if self.cluster is not None:
            await self.cluster.drain()
        await self.sessions.close()
        await self.engine.close()
        if self.cluster is not None:
            await self.cluster.close()
        await self.storage.close()
        self.data_lock.release()
        log.info("gateway closed")

    def _committed(self, events: Sequence[StoredEvent]) -> None:
        self.hub.publish(events)
        if self.cluster is not None:
            self.cluster.committed(events)

    async def prune(self) -> int:
        s = self.settings
        now = time.time()
        removed = await self.storage.prune(
            now,
            event_max_age=s.event_retention_s,
            event_keep=s.event_retention_count,
            record_max_age=max(s.idempotency_ttl_s, s.event_retention_s),
        )
        removed += await self.storage.tenants.prune_audit(now - s.audit_retention_s)
        return removed + await self.media.prune(now) + await self.storage.webhooks.prune()

    async def check_tokens(self) -> int:
        """Close every live connection whose token was revoked or expired, or whose tenant was disabled, and stop
        the sessions this node runs for disabled tenants; return how many connections and sessions that was."""
        by_token: dict[str, list[LiveConnection]] = {}
        for connection in self.connections:
            if connection.token_id is not None and connection.token_id != ADMIN_TOKEN_ID:
                by_token.setdefault(connection.token_id, []).append(connection)
        closed = 0
        if by_token:
            refused = await self.storage.tenants.refused_tokens(list(by_token), time.time())
            for token_id, why in refused.items():
                for connection in by_token[token_id]:
                    connection.revoke(_REFUSALS.get(why, _REFUSALS["revoked"]).format(tenant=connection.tenant))
                    closed += 1
        stopped = 0
        for tenant in await self.storage.tenants.disabled_tenants():
            stopped += await self.stop_tenant_sessions(tenant)
        return closed + stopped

    def close_connections(self, *, token_id: str | None = None, tenant: str | None = None, why: str) -> int:
        """Close at once the live connections of a token, or of a tenant; return how many."""
        ended = [
            c
            for c in self.connections
            if (token_id is not None and c.token_id == token_id) or (tenant is not None and c.tenant == tenant)
        ]
        for connection in ended:
            connection.revoke(why)
        return len(ended)

    async def stop_tenant_sessions(self, tenant: str) -> int:
        """Stop every session of ``tenant`` that runs on this node; return how many were running."""
        stopped = 0
        for session in self.sessions.for_tenant(tenant):
            if self.sessions.runs(tenant, session.name) is None:
                continue  # another node's (it stops it itself), or moving
            if not session.record.want_running and not session.state.running:
                continue
            try:
                await self.sessions.stop_session(tenant, session.name)
                stopped += 1
            except Exception:
                log.exception("stopping session %s of disabled tenant %s failed", session.name, tenant)
        return stopped

    async def _watch_loop_lag(self) -> None:
        """Sample the event loop's lag: sleep :data:`LOOP_LAG_INTERVAL_S` and note how much later than that the
        loop came back. Long turns of the loop (a burst's work, a blocking call) show here before clients see
        them in their replies."""
        loop = asyncio.get_running_loop()
        while True:
            began = loop.time()
            await asyncio.sleep(LOOP_LAG_INTERVAL_S)
            self.loop_lag.add(max(0.0, loop.time() - began - LOOP_LAG_INTERVAL_S))

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
