"""The per-session sender: drains a session's outbox to the engine, in order per chat, with pacing.

Every message here is already durable (the outbox row was committed before ``message.send`` was
answered). The sender hands one message at a time to the engine; when WhatsApp takes it, the ``sent``
status and its event are committed (pipelined: the next send does not wait for that commit). A message the
engine cannot take now (the session is offline, the worker restarts) stays at the head of its chat and is
retried when the session is back; one that WhatsApp refuses ends ``failed`` with the reason. After a crash
the outbox is reloaded and anything not recorded as sent is handed to the engine again with the **same**
message id. The engine makes that safe where it can: the simulator (like WhatsApp with a client-chosen id)
drops the repeat; the ``whatsapp`` engine remembers which ids WhatsApp already confirmed. The window that is
left is described in ``docs/delivery.md``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..engines.base import Engine, Outgoing, SendError
from ..jid import Jid
from ..protocol import MessageStatusData, encode
from ..storage import NewEvent, OutboxItem, QueuedMessage, Storage
from .outgoing import decode_outgoing
from .pacing import Pacer

__all__ = ["Sender"]

log = logging.getLogger("zapgate.sessions")

RETRY_AFTER_ERROR_S = 1.0


class Sender:
    def __init__(
        self,
        *,
        session_id: str,
        tenant: str,
        session_name: Callable[[], str],
        engine: Engine,
        storage: Storage,
        pacer: Pacer,
        known_chats: set[str],
        online: Callable[[], bool],
    ) -> None:
        self._session_id = session_id
        self._tenant = tenant
        self._session_name = session_name
        self._engine = engine
        self._storage = storage
        self.pacer = pacer
        self.known_chats = known_chats
        self._online = online
        self._chats: dict[str, collections.deque[QueuedMessage]] = {}
        self._waiters: dict[str, asyncio.Future[OutboxItem]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._queued = 0

    @property
    def queued(self) -> int:
        return self._queued

    def start(self, pending: Sequence[QueuedMessage]) -> None:
        for item in pending:
            self._enqueue(item)
        self._task = asyncio.create_task(self._run(), name=f"sender-{self._session_id}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        for future in self._waiters.values():
            future.cancel()
        self._waiters.clear()

    def submit(self, item: OutboxItem) -> asyncio.Future[OutboxItem]:
        """Queue a stored message; the future resolves with it once it is durably ``sent`` or ``failed``.

        Only its id, chat and position stay in memory: the content is read back from the database when it is
        sent, so a long queue costs little memory."""
        future = self._waiters.get(item.message_id)
        if future is None:
            future = self._waiters[item.message_id] = asyncio.get_running_loop().create_future()
            self._enqueue(QueuedMessage(item.message_id, item.chat, item.position))
        return future

    def waiter(self, message_id: str) -> asyncio.Future[OutboxItem] | None:
        return self._waiters.get(message_id)

    def wake(self) -> None:
        """Look at the queue again (the session came online, a pause ended, a message arrived)."""
        self._wake.set()

    def forget_all(self) -> list[QueuedMessage]:
        """Drop everything queued in memory (the caller fails it in storage); return what was dropped."""
        dropped = [item for chat in self._chats.values() for item in chat]
        self._chats.clear()
        self._queued = 0
        return dropped

    def _enqueue(self, item: QueuedMessage) -> None:
        self._chats.setdefault(item.chat, collections.deque()).append(item)
        self._queued += 1
        self._wake.set()

    def _next(self, now: float) -> tuple[float, QueuedMessage] | None:
        best: tuple[float, int, QueuedMessage] | None = None
        for chat, queue in self._chats.items():
            head = queue[0]
            ready = self.pacer.ready_at(chat, new_contact=chat not in self.known_chats, now=now)
            if best is None or (ready, head.position) < best[:2]:
                best = (ready, head.position, head)
        return None if best is None else (best[0], best[2])

    async def _sleep(self, seconds: float | None) -> None:
        """Wait until woken, or at most ``seconds``."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _run(self) -> None:
        while True:
            if not self._chats or not self._online():
                await self._sleep(None)
                continue
            now = time.time()
            chosen = self._next(now)
            assert chosen is not None
            ready_at, queued = chosen
            if ready_at > now:
                await self._sleep(ready_at - now)
                continue
            try:
                item = await self._storage.outbox_item(queued.message_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("session %s: could not read message %s; retrying", self._session_id, queued.message_id)
                await self._sleep(RETRY_AFTER_ERROR_S)
                continue
            if item is None or item.status != "queued":  # failed or removed meanwhile (logout, delete)
                self._drop(queued)
                continue
            try:
                content, extra = decode_outgoing(item)
                sent = await self._engine.send(
                    self._session_id, item.message_id, Jid.parse(item.chat), content, await self._resolve(extra)
                )
            except SendError as exc:
                if exc.retryable:
                    log.info("session %s: send deferred (%s)", self._session_id, exc.code)
                    await self._sleep(RETRY_AFTER_ERROR_S)
                    continue
                item.status, item.reason = "failed", exc.code
                self._finish(item, new_contact=False)
                continue
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("session %s: engine failed to send; retrying", self._session_id)
                await self._sleep(RETRY_AFTER_ERROR_S)
                continue
            new_contact = item.chat not in self.known_chats
            self.pacer.record_send(item.chat, new_contact=new_contact, now=time.time())
            self.known_chats.add(item.chat)
            item.status, item.wa_timestamp = "sent", sent.timestamp
            self._finish(item, new_contact=new_contact, chat=sent.chat)

    async def _resolve(self, extra: Outgoing) -> Outgoing:
        """``extra`` with what only exists at send time (the local file of a media message)."""
        return extra

    def _drop(self, queued: QueuedMessage) -> None:
        """Take ``queued`` off the head of its chat's queue (if it is still there)."""
        queue = self._chats.get(queued.chat)
        if queue and queue[0].message_id == queued.message_id:
            queue.popleft()
            self._queued -= 1
            if not queue:
                del self._chats[queued.chat]

    def _finish(self, item: OutboxItem, *, new_contact: bool, chat: str | None = None) -> None:
        self._drop(QueuedMessage(item.message_id, item.chat, item.position))
        if chat is not None and chat != item.chat:
            # WhatsApp knows the recipient by another JID (see Sent.chat): report and store that one from now on.
            self.known_chats.add(chat)
            item.chat = chat
        data = MessageStatusData(
            message_id=item.message_id,
            chat=item.chat,
            status="sent" if item.status == "sent" else "failed",
            timestamp=item.wa_timestamp or int(time.time()),
            reason=item.reason,
        )
        event = NewEvent(self._tenant, self._session_name(), "message.status", encode(data))
        done = self._storage.finish_message(item, [event], new_contact_at=time.time() if new_contact else None)
        waiter = self._waiters.pop(item.message_id, None)

        def resolve(f: asyncio.Future[Any]) -> None:
            error = None if f.cancelled() else f.exception()
            if error is not None:
                log.error(
                    "session %s: could not record the outcome of %s: %s", self._session_id, item.message_id, error
                )
            if waiter is None or waiter.done():
                return
            if f.cancelled():
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(item)

        done.add_done_callback(resolve)
