"""The gateway's webhooks: one owned deliverer task per endpoint, woken by the event hub.

One node delivers to every enabled endpoint. With several nodes each endpoint has a lease in its row (node,
epoch, expiry on the database's clock): a node delivers only to the endpoints it holds, takes free ones up to
its fair share every ``lease_renew_s``, and every cursor write carries its fence, so two nodes never move one
endpoint's cursor (a node that stalls past its lease just has its writes refused and stops).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from ..background import BackgroundTasks
from ..config import Settings
from ..hub import EventHub
from ..protocol import WebhookPingData, encode
from ..storage import AttemptRecord, Storage, StoredEvent, WebhookFence, WebhookRecord
from .deliverer import Deliverer, DeliveryStats, Restart, Stop, message_id
from .sender import Answer, Sender

__all__ = ["WebhookService"]

log = logging.getLogger("zapgate.webhooks")

FAILURE_PAUSE_S = 1.0
"""After a deliverer failed unexpectedly (the database is unreachable…), wait this long before starting again."""


@dataclass(slots=True)
class _Running:
    task: asyncio.Task[None]
    fence: WebhookFence | None
    deliverer: Deliverer | None = None


class WebhookService:
    def __init__(self, settings: Settings, storage: Storage, hub: EventHub, *, node: str | None) -> None:
        self.settings = settings
        self.store = storage.webhooks
        self._storage = storage
        self._read = storage.read_events
        self._node = node
        self._tasks = BackgroundTasks(log)
        self._running: dict[str, _Running] = {}
        self._of_tenant: dict[str, set[str]] = {}
        """Endpoint ids being delivered here, by tenant (who to wake)."""
        self._newest: dict[str, int] = {}
        self.stats = DeliveryStats()
        self._lease_now = asyncio.Event()
        hub.add_waker(self._wake)

    # -- lifecycle

    async def start(self) -> None:
        self._newest.update(await self._storage.tenant_seqs())  # how far behind each endpoint starts
        if self._node is None:
            for record in await self.store.enabled():
                self._start(record.id, None)
        else:
            self._tasks.spawn(self._keep_leases(), name="webhook-leases")

    async def close(self) -> None:
        await self._tasks.close()
        self._running.clear()
        if self._node is not None:
            try:
                await self.store.release_leases(self._node)
            except Exception:
                log.warning("could not release the webhook leases; other nodes take them when they expire")

    # -- what commands tell it

    async def changed(self, webhook_id: str) -> None:
        """An endpoint was created, changed, replayed or deleted here: its deliverer starts again from what is
        stored (other nodes notice within a few seconds by themselves)."""
        running = self._running.pop(webhook_id, None)
        if running is not None:
            running.task.cancel()
            await asyncio.gather(running.task, return_exceptions=True)
        if self._node is None:
            record = await self.store.get(webhook_id)
            if record is not None and record.enabled:
                self._start(webhook_id, None)
        elif running is not None and running.fence is not None:
            self._start(webhook_id, running.fence)
        else:
            self._lease_now.set()

    def redeliver(self, webhook_id: str) -> None:
        running = self._running.get(webhook_id)
        if running is not None and running.deliverer is not None:
            running.deliverer.redeliveries = True
            running.deliverer.wake.set()

    async def ping(self, record: WebhookRecord) -> Answer:
        """Send one signed ``webhook.ping`` (outside the log) and record it as an attempt."""
        now = time.time()
        event = StoredEvent(record.tenant, 0, "", "webhook.ping", encode(WebhookPingData(webhook=record.id)), now)
        from ..hub import event_frame

        sender = self._sender()
        try:
            secrets = [record.secret]
            if record.previous_secret and (record.previous_secret_until or 0) > now:
                secrets.append(record.previous_secret)
            answer = await sender.post(
                record.url, message_id(record.id, 0) + f"_{int(now * 1000)}", secrets, event_frame(event).encode()
            )
        finally:
            await sender.close()
        self.stats.outcomes["ping"] += 1
        attempt = AttemptRecord(
            0, "webhook.ping", 1, "ping", answer.latency_ms, time.time(), answer.status, answer.error
        )
        await self.store.record_attempt(record.id, attempt, failing=False)
        return answer

    def pending(self) -> int:
        """Events after the cursors of the endpoints delivered here (filtered ones included)."""
        total = 0
        for running in self._running.values():
            d = running.deliverer
            if d is not None:
                total += max(0, self._newest.get(d.tenant, d.cursor) - d.cursor)
        return total

    def active(self) -> int:
        return len(self.delivering())

    def delivering(self) -> set[str]:
        """The endpoints this node delivers to now."""
        return {webhook_id for webhook_id, r in self._running.items() if r.deliverer is not None}

    # -- inside

    def _sender(self) -> Sender:
        s = self.settings
        return Sender(
            s.outbound_policy,
            timeout=s.webhook_timeout_s,
            connect_timeout=s.webhook_connect_timeout_s,
            max_response_bytes=s.webhook_max_response_bytes,
        )

    def _wake(self, tenant: str, seq: int) -> None:
        if seq > self._newest.get(tenant, 0):
            self._newest[tenant] = seq
        for webhook_id in self._of_tenant.get(tenant, ()):
            running = self._running.get(webhook_id)
            if running is not None and running.deliverer is not None:
                running.deliverer.wake.set()

    def _start(self, webhook_id: str, fence: WebhookFence | None) -> None:
        if self._tasks.closed:
            return
        task = self._tasks.spawn(self._supervise(webhook_id, fence), name=f"webhook-{webhook_id}")
        self._running[webhook_id] = _Running(task, fence)

    async def _supervise(self, webhook_id: str, fence: WebhookFence | None) -> None:
        """Run the endpoint's delivery loop, starting it again from the stored state whenever it asks to."""
        try:
            while True:
                record = await self.store.get(webhook_id)
                if record is None or not record.enabled:
                    return
                if fence is not None and (record.node, record.epoch) != (fence.node, fence.epoch):
                    return  # another node took it over
                sender = self._sender()
                deliverer = Deliverer(
                    record,
                    store=self.store,
                    read=self._read,
                    sender=sender,
                    schedule=self.settings.webhook_retry_schedule,
                    disable_after=self.settings.webhook_disable_after_s,
                    stats=self.stats,
                    fence=fence,
                )
                running = self._running.get(webhook_id)
                if running is not None:
                    running.deliverer = deliverer
                    self._of_tenant.setdefault(record.tenant, set()).add(webhook_id)
                try:
                    await deliverer.run()
                except Restart:
                    continue
                except Stop:
                    return
                except Exception:
                    log.exception("webhook %s: delivery failed; starting again", webhook_id)
                    await asyncio.sleep(FAILURE_PAUSE_S)
                finally:
                    await sender.close()
        finally:
            current = self._running.get(webhook_id)
            if current is not None and current.task is asyncio.current_task():
                del self._running[webhook_id]
            if webhook_id not in self._running:
                for tenant, ids in list(self._of_tenant.items()):
                    ids.discard(webhook_id)
                    if not ids:
                        del self._of_tenant[tenant]

    async def _keep_leases(self) -> None:
        assert self._node is not None
        s = self.settings
        while True:
            try:
                held = await self.store.keep_leases(self._node, s.lease_ttl_s)
            except Exception:
                log.exception("renewing the webhook leases failed")
                held = None
            if held is not None:
                for webhook_id, running in list(self._running.items()):
                    epoch = held.get(webhook_id)
                    if running.fence is None or epoch != running.fence.epoch:
                        running.task.cancel()
                        self._running.pop(webhook_id, None)
                for webhook_id, epoch in held.items():
                    if webhook_id not in self._running:
                        self._start(webhook_id, WebhookFence(self._node, epoch))
            self._lease_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lease_now.wait(), s.lease_renew_s)
