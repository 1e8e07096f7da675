"""The delivery loop of one endpoint: read the log after the cursor, POST each event in order, move the cursor.

At least once: the cursor moves only after the receiver answered 2xx (or the event became a dead letter), in
the same transaction as the attempt's record, so a crash anywhere sends the event again — with the same
``webhook-id`` (``{endpoint}_{seq}``), which receivers use to drop the duplicate. One event at a time: an event
is never sent before the one before it was delivered or given up on (per-endpoint order).

The loop ends by raising :class:`Restart` when its endpoint changed under it (a command, a replay, another node)
and :class:`Stop` when it must not deliver any more (deleted, disabled, lease lost); the service starts a new
loop from the stored state after a :class:`Restart`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from ..cluster.latency import Latencies
from ..hub import event_frame
from ..protocol import WebhookDisabledData, encode
from ..storage import AttemptRecord, DeadLetterRecord, NewEvent, StoredEvent, WebhookFence, WebhookRecord, WebhookStore
from .filters import accepts
from .schedule import retry_delay, verdict
from .sender import Answer, Sender

__all__ = ["Deliverer", "DeliveryStats", "Restart", "Stop", "message_id"]

log = logging.getLogger("zapgate.webhooks")

PAGE = 100
"""Events read from the log at a time."""
RECHECK_S = 10.0
"""While idle or waiting to retry, how often the loop checks that its endpoint did not change elsewhere."""

Reader = Callable[[str, int, int], Awaitable[list[StoredEvent]]]


class Restart(Exception):
    """The endpoint changed: start again from what is stored."""


class Stop(Exception):
    """The endpoint must not be delivered to by this loop any more."""


@dataclass(slots=True)
class DeliveryStats:
    """What every deliverer of the gateway did (for ``/metrics``)."""

    outcomes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(("delivered", "retry", "dead", "ping"), 0))
    latencies: Latencies = field(default_factory=Latencies)
    disabled: int = 0
    skipped_pruned: int = 0
    """Events that were gone from the log before they could be delivered."""


def message_id(webhook_id: str, seq: int) -> str:
    """The ``webhook-id`` of an event: the same on every attempt and after every restart."""
    return f"{webhook_id}_{seq}"


class Deliverer:
    def __init__(
        self,
        record: WebhookRecord,
        *,
        store: WebhookStore,
        read: Reader,
        sender: Sender,
        schedule: tuple[float, ...],
        disable_after: float,
        stats: DeliveryStats,
        fence: WebhookFence | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.record = record
        self.id = record.id
        self.tenant = record.tenant
        self._store = store
        self._read = read
        self._sender = sender
        self._schedule = schedule
        self._disable_after = disable_after
        self._stats = stats
        self._fence = fence
        self._rng = rng or random.Random()
        self.cursor = record.cursor
        """Stored cursor: every event up to it is done."""
        self.position = record.cursor
        """Every event up to here is done or skipped by the filter (stored with the next write)."""
        self.wake = asyncio.Event()
        self.redeliveries = True
        """Dead letters may be queued for redelivery: look (at start, when told, and now and then when idle —
        a ``webhook.redeliver`` on another node does not tell this one)."""
        self._failing_since = record.failing_since

    # -- the loop

    async def run(self) -> None:
        while True:
            # Cleared before reading: an event committed from here on sets it again, so the wait below ends.
            self.wake.clear()
            if self.redeliveries:
                self.redeliveries = False
                await self._redeliver()
            page = await self._read(self.tenant, self.position, PAGE)
            if page and page[0].seq > self.position + 1:
                missing = page[0].seq - self.position - 1
                self._stats.skipped_pruned += missing
                log.warning(
                    "webhook %s: events %d-%d were pruned from the log before delivery",
                    self.id,
                    self.position + 1,
                    page[0].seq - 1,
                )
            for event in page:
                if accepts(self.record.events, self.record.sessions, event.event, event.session):
                    await self._deliver(event)
                self.position = event.seq
            if self.position > self.cursor:
                await self._advance(self.position)
            if len(page) < PAGE:
                await self._idle()

    async def _idle(self) -> None:
        try:
            await asyncio.wait_for(self.wake.wait(), RECHECK_S)
        except TimeoutError:
            self.redeliveries = True
            await self._recheck()

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds`` before a retry, checking now and then that the endpoint did not change."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, RECHECK_S))
            if left > RECHECK_S:
                await self._recheck()

    async def _recheck(self) -> None:
        stored = await self._store.get(self.id)
        if stored is None or not stored.enabled:
            raise Stop
        if stored.updated_at != self.record.updated_at or stored.cursor != self.cursor:
            raise Restart

    # -- one event

    async def _deliver(self, event: StoredEvent) -> None:
        body = event_frame(event).encode()
        msg_id = message_id(self.id, event.seq)
        attempt = 0
        while True:
            attempt += 1
            answer = await self._post(msg_id, body)
            outcome = verdict(answer.status)
            if outcome == "delivered":
                self._failing_since = None
                await self._advance(event.seq, self._attempt(event, attempt, "delivered", answer))
                return
            now = time.time()
            self._failing_since = self._failing_since or now
            delay = retry_delay(attempt, self._schedule, self._rng) if outcome == "retry" else None
            if delay is None:
                dead = DeadLetterRecord(event, attempt, now, answer.status, answer.error)
                await self._advance(event.seq, self._attempt(event, attempt, "dead", answer), dead)
                if answer.status == 410:  # Gone: the receiver says this endpoint no longer exists
                    await self._disable("gone")
                return
            self._count("retry")
            ok = await self._store.record_attempt(
                self.id, self._attempt(event, attempt, "retry", answer), failing=True, fence=self._fence
            )
            if not ok:
                raise Stop
            if self._disable_after > 0 and now - self._failing_since >= self._disable_after:
                await self._disable("failing")
            await self._pause(delay)

    async def _redeliver(self) -> None:
        """Dead letters a ``webhook.redeliver`` queued: one attempt each, before the next event of the log."""
        queued = await self._store.dead_letters(self.id, PAGE, redeliver_only=True)
        self.redeliveries = len(queued) == PAGE  # more after these: the next turn takes them
        for dead in queued:
            event = dead.event
            answer = await self._post(message_id(self.id, event.seq), event_frame(event).encode())
            attempts = dead.attempts + 1
            if verdict(answer.status) == "delivered":
                await self._store.redelivered(
                    self.id, event.seq, self._attempt(event, attempts, "delivered", answer), None
                )
            else:
                again = DeadLetterRecord(event, attempts, time.time(), answer.status, answer.error)
                await self._store.redelivered(self.id, event.seq, self._attempt(event, attempts, "dead", answer), again)

    async def _post(self, msg_id: str, body: bytes) -> Answer:
        secrets = [self.record.secret]
        previous, until = self.record.previous_secret, self.record.previous_secret_until
        if previous and until and until > time.time():
            secrets.append(previous)
        answer = await self._sender.post(self.record.url, msg_id, secrets, body)
        self._stats.latencies.add(answer.latency_ms / 1000)
        return answer

    def _attempt(self, event: StoredEvent, attempt: int, outcome: str, answer: Answer) -> AttemptRecord:
        if outcome != "retry":
            self._count(outcome)
        return AttemptRecord(
            seq=event.seq,
            event=event.event,
            attempt=attempt,
            outcome=outcome,
            latency_ms=answer.latency_ms,
            at=time.time(),
            status=answer.status,
            error=answer.error,
        )

    def _count(self, outcome: str) -> None:
        self._stats.outcomes[outcome] = self._stats.outcomes.get(outcome, 0) + 1

    async def _advance(
        self, cursor: int, attempt: AttemptRecord | None = None, dead: DeadLetterRecord | None = None
    ) -> None:
        ok = await self._store.advance(
            self.id, expected=self.cursor, cursor=cursor, attempt=attempt, dead=dead, fence=self._fence
        )
        if not ok:
            raise Restart  # replayed, deleted or moved to another node: the service looks again
        self.cursor = cursor
        self.position = max(self.position, cursor)

    async def _disable(self, reason: str) -> None:
        data = WebhookDisabledData(
            webhook=self.id,
            url=self.record.url,
            reason="gone" if reason == "gone" else "failing",
            failing_since=self._failing_since or time.time(),
        )
        event = NewEvent(self.tenant, "", "webhook.disabled", encode(data))
        await self._store.disable(self.id, reason, event, fence=self._fence)
        self._stats.disabled += 1
        log.warning("webhook %s disabled (%s)", self.id, reason)
        raise Stop
