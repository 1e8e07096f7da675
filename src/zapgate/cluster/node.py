"""This gateway as one node of a cluster: its leases, the bus, forwarding and event notices wired together."""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket
from collections.abc import Sequence
from typing import Any

import msgspec

from ..auth import Caller
from ..bus import Bus, open_bus
from ..config import Settings
from ..hub import EventHub
from ..protocol import Command
from ..sessions.manager import SessionManager
from ..sessions.state import Status
from ..storage import Storage, StoredEvent
from .forward import Forwarder
from .keeper import LeaseKeeper
from .router import CodeLocator, Router

__all__ = ["ClusterNode"]

log = logging.getLogger("zapgate.cluster")

RELEASED = b"released"
CLAIMED = b"claimed"
HAND_OVER_GRACE_S = 5.0
"""Beyond ``send_wait_s``: how long a hand-over waits for commands still running on a session."""

_notices = msgspec.json.Decoder(dict[str, int])
RESTING = (Status.STOPPED, Status.FAILED, Status.LOGGED_OUT)


class ClusterNode:
    """Built by the gateway when ``database_url`` is PostgreSQL. ``keeper`` is the session manager's ownership."""

    def __init__(self, settings: Settings, storage: Storage, hub: EventHub) -> None:
        self.settings = settings
        self.storage = storage
        self.hub = hub
        self.node = secrets.token_hex(6)
        self.name = settings.node_name or socket.gethostname()
        self.keeper = LeaseKeeper(
            storage.leases,
            node=self.node,
            name=self.name,
            ttl=settings.lease_ttl_s,
            renew=settings.lease_renew_s,
            cap=settings.node_max_sessions,
            on_acquired=self._acquired,
            on_lost=self._lost,
            on_hand_over=self._hand_over,
            movable=self._movable,
        )
        self.bus: Bus | None = None
        self.bus_url = settings.bus_url or settings.database_url
        self.forwarder = Forwarder(self.node, self._publish, self._serve)
        self.router: Router | None = None
        self._sessions: SessionManager | None = None
        self._pending_notices: dict[str, int] = {}
        self._announcer: asyncio.Task[None] | None = None
        self._announce = asyncio.Event()

    def attach(self, sessions: SessionManager, locate_code: CodeLocator | None) -> None:
        self._sessions = sessions
        self.router = Router(
            node=self.node,
            storage=self.storage,
            sessions=sessions,
            forwarder=self.forwarder,
            timeout=self.settings.forward_timeout_s,
            send_wait=self.settings.send_wait_s,
            locate_code=locate_code,
        )

    # -- lifecycle

    async def start(self) -> None:
        """Join: listen on the bus, then take a share of the sessions (the keeper's first round)."""
        cluster_id = await self.storage.leases.cluster_id()
        self.hub.cluster(self.storage.read_events, self.storage.tenant_seqs, await self.storage.tenant_seqs())
        self.bus = open_bus(self.bus_url, f"zg{cluster_id}")
        await self.bus.start(
            {"events": self._on_events, "leases": self._on_leases, self.forwarder.channel: self.forwarder.receive}
        )
        self._announcer = asyncio.create_task(self._announce_events(), name="event-notices")
        await self.keeper.start()
        await self._publish("leases", CLAIMED)  # others rebalance towards this node
        log.info(
            "node %s (%s) joined cluster %s over %s: running %d sessions",
            self.name,
            self.node,
            cluster_id,
            self.bus.name,
            len(self.keeper.held()),
        )

    async def drain(self) -> None:
        """Hand every session over to the other nodes (SIGTERM), within a bounded time."""
        try:
            handed = await asyncio.wait_for(self.keeper.drain(), self.settings.lease_ttl_s + self.settings.send_wait_s)
            if handed:
                await self._publish("leases", RELEASED)
            log.info("handed %d sessions over to other nodes", handed)
        except TimeoutError:
            log.error("could not hand the sessions over in time; other nodes take them when their leases expire")
        except Exception:
            log.exception("handing the sessions over failed; other nodes take them when their leases expire")

    async def close(self) -> None:
        await self.keeper.close()
        if self._announcer is not None:
            self._announcer.cancel()
            await asyncio.gather(self._announcer, return_exceptions=True)
        await self.forwarder.close()
        if self.bus is not None:
            await self.bus.close()
        await self.hub.close()

    # -- leases coming and going

    async def _acquired(self, claimed: dict[str, int]) -> None:
        assert self._sessions is not None and self.router is not None
        await self._sessions.adopt(claimed)
        self.router.changed()
        await self._publish("leases", CLAIMED)

    async def _lost(self, session_ids: list[str], reason: str) -> None:
        assert self._sessions is not None and self.router is not None
        await self._sessions.relinquish(session_ids, reason)
        self.router.changed()

    def _movable(self, session_ids: list[str]) -> list[str]:
        """Sessions that may move to another node now: resting ones first, then running ones; never one that is
        pairing (its QR code would die with the move) or running a command."""
        assert self._sessions is not None
        resting: list[str] = []
        running: list[str] = []
        for session_id in session_ids:
            session = self._sessions.by_id(session_id)
            if session is None or session.state.status in (Status.STARTING, Status.QR) or session.lock.locked():
                continue
            (resting if session.state.status in RESTING else running).append(session_id)
        return resting + running

    async def _hand_over(self, session_ids: list[str]) -> list[str]:
        """Stop sessions cleanly for another node: new commands wait for it; running ones finish first."""
        assert self._sessions is not None and self.router is not None
        keys = set()
        for session_id in session_ids:
            session = self._sessions.by_id(session_id)
            if session is not None:
                session.leaving = True
                keys.add((session.tenant, session.name))
        await self.router.wait_idle(keys, self.settings.send_wait_s + HAND_OVER_GRACE_S)
        await self._sessions.relinquish(session_ids, "handed_over")
        return session_ids

    # -- the bus

    async def _publish(self, channel: str, payload: bytes) -> None:
        if self.bus is None:
            raise RuntimeError("the bus is not started")
        await self.bus.publish(channel, payload)

    def _on_leases(self, payload: bytes) -> None:
        if payload == RELEASED:
            self.keeper.poke()
        if self.router is not None:
            self.router.changed()

    def _on_events(self, payload: bytes) -> None:
        for tenant, seq in _notices.decode(payload).items():
            self.hub.notify(tenant, seq)

    def committed(self, events: Sequence[StoredEvent]) -> None:
        """Events this node committed: tell the other nodes (coalesced: one notice per tenant per flush)."""
        for event in events:
            if event.seq > self._pending_notices.get(event.tenant, 0):
                self._pending_notices[event.tenant] = event.seq
        self._announce.set()

    async def _announce_events(self) -> None:
        while True:
            await self._announce.wait()
            self._announce.clear()
            notices, self._pending_notices = self._pending_notices, {}
            if not notices:
                continue
            try:
                await self._publish("events", msgspec.json.encode(notices))
            except Exception:
                # The others find these events at their next notice or periodic check.
                log.exception("could not publish event notices")

    async def _serve(self, caller: Caller, cmd: Command, local_only: bool) -> Any:
        assert self.router is not None
        return await self.router.serve(caller, cmd, local_only)
