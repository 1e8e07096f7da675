"""The lease keeper: which sessions this node runs, renewed every few seconds (``docs/scaling.md``).

Every round (``lease_renew_s``) renews all of this node's leases in one statement and reads the cluster's state;
sessions whose lease another node took meanwhile are **lost** (stopped here at once, without a write), free
ones are **claimed** up to an even share, and a node holding more than its share **hands some over**.

A node uses a lease only until its *self-fence deadline* (:func:`~.placement.self_fence_deadline`): if renewals
fail (the database is unreachable, the process was paused), it stops its sessions before the database could let
another node take them. The keeper calls back into the session manager; it never touches an engine itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from ..storage import Fence, LeaseStore, NodeInfo
from .placement import plan, self_fence_deadline

__all__ = ["LeaseKeeper"]

log = logging.getLogger("zapgate.cluster")

Acquired = Callable[[dict[str, int]], Awaitable[None]]
"""Start running these sessions (session id → epoch)."""
Lost = Callable[[list[str], str], Awaitable[None]]
"""Stop running these sessions at once, writing nothing (they belong to another node now); the reason."""
HandOver = Callable[[list[str]], Awaitable[list[str]]]
"""Stop these sessions cleanly so that another node can take them; return those actually stopped."""
Movable = Callable[[list[str]], list[str]]
"""Of these sessions, those that may move now, best candidates first (not in the middle of a pairing)."""


@dataclass(slots=True)
class _Held:
    epoch: int
    valid_until: float


@dataclass(slots=True)
class LeaseStats:
    """What ``/healthz`` and ``/metrics`` show about leases."""

    rounds: int = 0
    failed_rounds: int = 0
    claimed: int = 0
    lost: int = 0
    handed_over: int = 0
    self_fenced: int = 0
    last_round_at: float = 0.0
    nodes: list[NodeInfo] = field(default_factory=list)
    sessions: int = 0
    free: int = 0


class LeaseKeeper:
    def __init__(
        self,
        leases: LeaseStore,
        *,
        node: str,
        name: str,
        ttl: float,
        renew: float,
        cap: int,
        on_acquired: Acquired,
        on_lost: Lost,
        on_hand_over: HandOver,
        movable: Movable = lambda sessions: sessions,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._leases = leases
        self.node = node
        self.name = name
        self.ttl = ttl
        self.renew = renew
        self.cap = cap
        self._on_acquired = on_acquired
        self._on_lost = on_lost
        self._on_hand_over = on_hand_over
        self._movable = movable
        self._clock = clock
        self._held: dict[str, _Held] = {}
        self._started_at = time.time()
        self._draining = False
        self._wake = asyncio.Event()
        self._round_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = LeaseStats()

    # -- what the rest of the node asks

    def fence(self, session_id: str) -> Fence | None:
        held = self._held.get(session_id)
        return Fence(session_id, self.node, held.epoch) if held is not None else None

    def valid(self, session_id: str) -> bool:
        """True while this node may act for the session (hold the lease, before its self-fence deadline)."""
        held = self._held.get(session_id)
        return held is not None and self._clock() < held.valid_until

    def held(self) -> dict[str, int]:
        return {session_id: h.epoch for session_id, h in self._held.items()}

    @property
    def draining(self) -> bool:
        return self._draining

    def created(self, fence: Fence) -> None:
        """This node created a session together with its lease (just renewed by the creation)."""
        self._held[fence.session_id] = _Held(fence.epoch, self_fence_deadline(self._clock(), self.ttl, self.renew))

    def forget(self, session_id: str) -> None:
        """The session was deleted, or a write for it was refused: this node no longer holds it."""
        self._held.pop(session_id, None)

    def poke(self) -> None:
        """Run a round soon (another node released leases, or joined)."""
        self._wake.set()

    # -- lifecycle

    async def start(self) -> None:
        await self._leases.ensure()
        await self.round()
        self._tasks = [
            asyncio.create_task(self._run(), name="lease-keeper"),
            asyncio.create_task(self._watch(), name="lease-watchdog"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def drain(self) -> int:
        """Hand every session over (graceful stop); return how many were handed over."""
        self._draining = True
        await self.close()
        async with self._round_lock:
            handed = await self._hand_over(list(self._held))
        try:
            await self._leases.keep(self.node, self.name, self._started_at, self.ttl, draining=True)
            await self._leases.leave(self.node)
        except Exception:
            log.exception("could not record that this node left the cluster")
        return handed

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.renew)
            self._wake.clear()
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats.failed_rounds += 1
                log.exception("lease round failed")

    async def _watch(self) -> None:
        """Enforce the self-fence deadlines, also while a round hangs (the database is unreachable)."""
        while True:
            await asyncio.sleep(self.renew / 4)
            try:
                await self._self_fence()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("stopping sessions whose leases expired failed")

    # -- one round

    async def round(self) -> None:
        async with self._round_lock:
            sent_at = self._clock()
            before = self.held()
            kept = await self._leases.keep(self.node, self.name, self._started_at, self.ttl, draining=self._draining)
            deadline = self_fence_deadline(sent_at, self.ttl, self.renew)
            self.stats.rounds += 1
            self.stats.last_round_at = time.time()
            self.stats.nodes, self.stats.sessions, self.stats.free = kept.nodes, kept.sessions, kept.free

            # Only leases held when the renewal was sent can have been lost by it (one created meanwhile was not
            # in the database yet when the renewal read it).
            lost = [s for s, e in before.items() if kept.held.get(s) != e and self.held().get(s) == e]
            if lost:
                for session_id in lost:
                    del self._held[session_id]
                self.stats.lost += len(lost)
                log.warning("lost %d sessions to other nodes", len(lost))
                await self._on_lost(lost, "lease_lost")
            unknown = {s: e for s, e in kept.held.items() if s not in self._held}
            for session_id, epoch in kept.held.items():
                self._held[session_id] = _Held(epoch, deadline)
            if unknown:
                # Held in the database but not running here: stopped after a missed deadline, or a claim whose
                # answer was lost. The lease is still ours, unchanged: run the session again.
                await self._on_acquired(unknown)

            alive = sum(1 for n in kept.nodes if n.alive and not n.draining)
            if not self._draining and not any(n.node == self.node for n in kept.nodes):
                alive += 1
            step = plan(
                held=len(self._held),
                sessions=kept.sessions,
                nodes=alive,
                free=kept.free,
                cap=self.cap,
                draining=self._draining,
            )
            if step.claim:
                claimed_at = self._clock()
                claimed = await self._leases.claim(self.node, self.ttl, step.claim)
                for session_id, epoch in claimed.items():
                    self._held[session_id] = _Held(epoch, self_fence_deadline(claimed_at, self.ttl, self.renew))
                if claimed:
                    self.stats.claimed += len(claimed)
                    log.info("took over %d sessions", len(claimed))
                    await self._on_acquired(claimed)
            elif step.release and not self._draining:
                await self._hand_over(self._pick_for_release(step.release))

    def _pick_for_release(self, count: int) -> list[str]:
        return self._movable(sorted(self._held))[:count]

    async def _hand_over(self, session_ids: Iterable[str]) -> int:
        chosen = [s for s in session_ids if s in self._held]
        if not chosen:
            return 0
        stopped = await self._on_hand_over(chosen)
        fences = [f for f in (self.fence(s) for s in stopped) if f is not None]
        for session_id in stopped:
            self._held.pop(session_id, None)
        released = await self._leases.release(fences)
        self.stats.handed_over += released
        log.info("handed %d sessions over to other nodes", released)
        return released

    async def _self_fence(self) -> None:
        """Stop every session whose lease could not be renewed in time (before anyone else may take it)."""
        now = self._clock()
        expired = [s for s, h in self._held.items() if now >= h.valid_until]
        if not expired:
            return
        for session_id in expired:
            del self._held[session_id]
        self.stats.self_fenced += len(expired)
        log.error("could not renew the leases of %d sessions in time: stopping them", len(expired))
        await self._on_lost(expired, "lease_expired")
