"""The per-session sender: drains a session's outbox to the engine, in order per chat, with pacing.

Every message here is already durable (the outbox row was committed before ``message.send`` was
answered). The sender hands the engine the head of each chat's queue: a chat has at most one message with the
engine at a time, so a chat's messages go out in acceptance order, while up to ``concurrency`` chats of the
session are sent to at once (a bot answering many customers is not held up by one slow chat, and the
engine's durable work for them is shared). When WhatsApp takes a message, the ``sent`` status and its event
are committed (pipelined: the next send does not wait for that commit). A message the engine cannot take now
(the session is offline, the worker restarts) stays at the head of its chat and is retried when the session
is back, after :data:`RETRY_AFTER_ERROR_S`; one that WhatsApp refuses ends ``failed`` with the reason. After a crash
the outbox is reloaded and anything not recorded as sent is handed to the engine again with the **same**
message id. The engine makes that safe where it can: the simulator (like WhatsApp with a client-chosen id)
drops the repeat; the ``whatsapp`` engine remembers which ids WhatsApp already confirmed. The window that is
left is described in ``docs/delivery.md``.

When the session is logged out, unlinked or deleted, :meth:`Sender.fail_queued` fails what is queued, in
storage and in memory, and answers whoever waits for those messages. Messages that are with the engine at
that moment are not touched: their own outcome decides them (``sent`` if WhatsApp took them; ``failed`` with
the same reason if the engine could not send them).

Pacing still holds with several chats in flight: a send is accounted for when it starts, so the interval
between two sends of the session is kept, and a message to a new contact waits while another one to a new
contact is with the engine (when pacing is on), so the daily count of new contacts is never overshot.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import msgspec

from ..engines.base import Engine, MediaFile, Outgoing, SendError
from ..jid import Jid
from ..protocol import MessageStatusData, PacingState, encode
from ..protocol.content import Content
from ..storage import Fence, LeaseLost, NewEvent, OutboxItem, QueuedMessage, Storage
from .chats import outbound_edit, outbound_entry
from .outgoing import decode_outgoing
from .pacing import Pacer

__all__ = ["Sender"]

log = logging.getLogger("zapgate.sessions")

RETRY_AFTER_ERROR_S = 1.0

FRESH_KEPT = 256
"""Messages submitted live whose stored row the sender keeps in memory, so that sending them needs no read
back from the database; the rest of a longer queue is read back when its turn comes."""
FRESH_KEPT_BYTES = 256 * 1024
"""...and at most this many bytes of their contents, so that a queue of large messages (a session offline while
its tenant sends) is held in the database, not in memory (``docs/security.md``, "Quotas")."""

MediaFiles = Callable[[Content], Awaitable[MediaFile | None]]
"""The local file of a stored message's media, looked up at send time (None: the message has none)."""


class Sender:
    """Sends one session's outbox (see the module documentation). Only the session manager drives it."""

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
        media_files: MediaFiles | None = None,
        fence: Callable[[], Fence | None] = lambda: None,
        on_fenced: Callable[[], object] = lambda: None,
        concurrency: int = 1,
    ) -> None:
        self._session_id = session_id
        self._tenant = tenant
        self._session_name = session_name
        self._engine = engine
        self._storage = storage
        self._pacer = pacer
        self._known_chats = known_chats
        self._online = online
        self._media_files = media_files
        self._fence = fence
        self._on_fenced = on_fenced
        self._chats: dict[str, collections.deque[QueuedMessage]] = {}
        self._waiters: dict[str, asyncio.Future[OutboxItem]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._queued = 0
        self._concurrency = max(1, concurrency)
        self._in_flight: dict[str, OutboxItem] = {}
        """Messages with the engine, by chat (at most one per chat)."""
        self._sends: set[asyncio.Task[None]] = set()
        self._new_contact_in_flight = False
        self._retry_at = 0.0
        """After a send the engine could not do now: nothing new goes to the engine before this time."""
        self._orphans: dict[str, str] = {}
        """Message id → reason, for a message that was with the engine when the queue was failed."""
        self._failing = False
        self._fresh: dict[str, OutboxItem] = {}
        self._fresh_bytes = 0
        """Stored rows of messages submitted live (at most :data:`FRESH_KEPT`), by id."""

    @property
    def queued(self) -> int:
        """Messages accepted and not yet handed to WhatsApp (the one with the engine included)."""
        return self._queued

    @property
    def _label(self) -> str:
        return f"session {self._tenant}/{self._session_name()} ({self._session_id})"

    def start(self, pending: Sequence[QueuedMessage]) -> None:
        for item in pending:
            self._enqueue(item)
        self._task = asyncio.create_task(self._run(), name=f"sender-{self._session_id}")
        self._task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: the sender stopped", self._label, exc_info=task.exception())

    def _send_ended(self, task: asyncio.Task[None]) -> None:
        self._sends.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: a send ended with an error", self._label, exc_info=task.exception())

    async def close(self, fail_reason: str | None = None) -> None:
        """Stop sending. With ``fail_reason``, everything queued fails with it (and whoever waits for a message
        is answered); without, it stays queued in storage for the next start and waiters are cancelled."""
        tasks = [*self._sends, *([self._task] if self._task is not None else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None
        self._sends.clear()
        if fail_reason is not None:
            await self.fail_queued(fail_reason)
        for future in self._waiters.values():
            future.cancel()
        self._waiters.clear()
        self._fresh.clear()
        self._fresh_bytes = 0

    def submit(self, item: OutboxItem) -> asyncio.Future[OutboxItem]:
        """Queue a stored message; the future resolves with it once it is durably ``sent`` or ``failed``.

        Only its id, chat and position stay in memory, and the stored row itself for the first
        :data:`FRESH_KEPT` queued messages: the content of the others is read back from the database when it is
        sent, so a long queue costs little memory."""
        future = self._waiters.get(item.message_id)
        if future is None:
            future = self._waiters[item.message_id] = asyncio.get_running_loop().create_future()
            size = item.queued_size
            room = len(self._fresh) < FRESH_KEPT and self._fresh_bytes + size <= FRESH_KEPT_BYTES
            if room and item.status == "queued":
                self._fresh[item.message_id] = item
                self._fresh_bytes += size
            self._enqueue(QueuedMessage(item.message_id, item.chat, item.position))
        return future

    def _forget_fresh(self, message_id: str) -> OutboxItem | None:
        item = self._fresh.pop(message_id, None)
        if item is not None:
            self._fresh_bytes -= item.queued_size
        return item

    def waiter(self, message_id: str) -> asyncio.Future[OutboxItem] | None:
        return self._waiters.get(message_id)

    def wake(self) -> None:
        """Look at the queue again (the session came online, a pause ended, a message arrived)."""
        self._wake.set()

    def chat_seen(self, chat: str) -> None:
        """``chat`` wrote to the session: it is no longer a new contact for pacing."""
        self._known_chats.add(chat)

    def pause(self, until: float, reason: str) -> None:
        """WhatsApp restricts sending until ``until``: hold every send until then."""
        self._pacer.pause(until, reason)
        self._wake.set()

    def pacing_state(self, now: float) -> PacingState:
        pacer = self._pacer
        paused = pacer.paused_until if pacer.paused_until and pacer.paused_until > now else None
        return PacingState(
            enabled=pacer.policy.enabled,
            new_contacts_today=pacer.new_contacts_in_window(now),
            new_contacts_per_day=pacer.policy.new_contacts_per_day,
            paused_until=paused,
            paused_reason=pacer.paused_reason if paused else None,
        )

    async def fail_queued(self, reason: str) -> None:
        """Fail every queued message with ``reason`` (stored with its ``message.status`` event) and answer its
        waiter. The message with the engine, if any, is settled by its own outcome (module documentation)."""
        keep = {item.message_id for item in self._in_flight.values()}
        for message_id in keep:
            self._orphans[message_id] = reason
        self._failing = True  # nothing new goes to the engine while the queue is being failed
        try:
            failed = await self._storage.fail_pending(
                self._session_id, reason, self._failed_event, keep=keep, fence=self._fence()
            )
        finally:
            self._failing = False
            self._wake.set()
        # Taken out of memory only now: a message stored while the write was on its way is in ``failed``
        # (and leaves) if the write saw it, else it stays queued in storage and here alike.
        gone = {item.message_id for item in failed}
        for message_id in gone:
            self._forget_fresh(message_id)
        for chat in list(self._chats):
            queue = self._chats[chat]
            kept = collections.deque(q for q in queue if q.message_id not in gone)
            self._queued -= len(queue) - len(kept)
            if kept:
                self._chats[chat] = kept
            else:
                del self._chats[chat]
        for item in failed:
            waiter = self._waiters.pop(item.message_id, None)
            if waiter is not None and not waiter.done():
                waiter.set_result(item)
        if failed:
            log.info("%s: %d queued message(s) failed (%s)", self._label, len(failed), reason)

    def _failed_event(self, item: OutboxItem) -> NewEvent:
        data = MessageStatusData(
            message_id=item.message_id,
            chat=item.chat,
            status="failed",
            timestamp=int(time.time()),
            reason=item.reason,
        )
        return NewEvent(self._tenant, self._session_name(), "message.status", encode(data))

    def _enqueue(self, item: QueuedMessage) -> None:
        self._chats.setdefault(item.chat, collections.deque()).append(item)
        self._queued += 1
        self._wake.set()

    def _next(self, now: float) -> tuple[float, QueuedMessage] | None:
        """The chat head to send next and when it may go; None when every queued chat has a message with the
        engine already (or only new contacts are left while one new contact's send is on its way)."""
        best: tuple[float, int, QueuedMessage] | None = None
        for chat, queue in self._chats.items():
            if chat in self._in_flight:
                continue
            new_contact = chat not in self._known_chats
            if new_contact and self._new_contact_in_flight and self._pacer.policy.enabled:
                continue
            head = queue[0]
            ready = self._pacer.ready_at(chat, new_contact=new_contact, now=now)
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
            if not self._chats or self._failing or not self._online() or len(self._in_flight) >= self._concurrency:
                await self._sleep(None)
                continue
            now = time.time()
            if self._retry_at > now:
                await self._sleep(self._retry_at - now)
                continue
            chosen = self._next(now)
            if chosen is None:  # every queued chat is busy: wait for a send to end
                await self._sleep(None)
                continue
            ready_at, queued = chosen
            if ready_at > now:
                await self._sleep(ready_at - now)
                continue
            try:
                item = self._forget_fresh(queued.message_id) or await self._storage.outbox_item(queued.message_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: could not read message %s; retrying", self._label, queued.message_id)
                await self._sleep(RETRY_AFTER_ERROR_S)
                continue
            if item is None or item.status != "queued":  # failed or removed meanwhile (logout, delete)
                self._drop(queued)
                continue
            head = self._chats.get(queued.chat)
            if self._failing or not head or head[0].message_id != queued.message_id or queued.chat in self._in_flight:
                continue  # the queue changed while the row was read back: decide again
            self._start(queued.chat, item)

    def _start(self, chat: str, item: OutboxItem) -> None:
        """Hand ``item`` (the head of ``chat``) to the engine in a task of its own."""
        new_contact = chat not in self._known_chats
        self._in_flight[chat] = item
        if new_contact:
            self._new_contact_in_flight = True
        # Accounted for when it starts, so that the next send of the session keeps the interval.
        self._pacer.started(chat, now=time.time())
        task = asyncio.create_task(self._send_one(chat, item, new_contact), name=f"send-{item.message_id}")
        self._sends.add(task)
        task.add_done_callback(self._send_ended)

    async def _send_one(self, chat: str, item: OutboxItem, new_contact: bool) -> None:
        try:
            await self._send(item, new_contact)
        finally:
            if self._in_flight.get(chat) is item:
                del self._in_flight[chat]
            if new_contact:
                self._new_contact_in_flight = False
            self._orphans.pop(item.message_id, None)
            self._wake.set()

    def _defer(self) -> None:
        self._retry_at = max(self._retry_at, time.time() + RETRY_AFTER_ERROR_S)

    async def _send(self, item: OutboxItem, new_contact: bool) -> None:
        try:
            content, extra = decode_outgoing(item)
            extra = await self._resolve(content, extra)
            if not self._online():  # it went offline meanwhile, or this node may no longer act for it
                return
            sent = await self._engine.send(self._session_id, item.message_id, Jid.parse(item.chat), content, extra)
        except SendError as exc:
            orphaned = self._orphans.get(item.message_id)
            if exc.retryable and orphaned is None:
                log.info("%s: send deferred (%s)", self._label, exc.code)
                self._defer()
                return
            # Refused; or it could not go now and its queue was failed meanwhile: it fails like the rest.
            item.status, item.reason = "failed", exc.code if orphaned is None else orphaned
            self._finish(item, new_contact=False)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s: engine failed to send; retrying", self._label)
            self._defer()
            return
        if new_contact:
            self._pacer.new_contact_taken(time.time())
        self._known_chats.add(item.chat)
        item.status, item.wa_timestamp = "sent", sent.timestamp
        self._finish(item, new_contact=new_contact, chat=sent.chat)

    async def _resolve(self, content: Content, extra: Outgoing) -> Outgoing:
        """``extra`` with what only exists at send time: the local file of a media message (raises a
        non-retryable :class:`SendError` when it is no longer stored)."""
        if self._media_files is None:
            return extra
        media = await self._media_files(content)
        return extra if media is None else msgspec.structs.replace(extra, media=media)

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
            self._known_chats.add(chat)
            item.chat = chat
        data = MessageStatusData(
            message_id=item.message_id,
            chat=item.chat,
            status="sent" if item.status == "sent" else "failed",
            timestamp=item.wa_timestamp or int(time.time()),
            reason=item.reason,
        )
        event = NewEvent(self._tenant, self._session_name(), "message.status", encode(data))
        done = self._storage.finish_message(
            item,
            [event],
            new_contact_at=time.time() if new_contact else None,
            fence=self._fence(),
            message=outbound_entry(item) if item.status == "sent" else None,
            edit=outbound_edit(item) if item.status == "sent" else None,
        )
        waiter = self._waiters.pop(item.message_id, None)
        label = self._label

        def resolve(f: asyncio.Future[Any]) -> None:
            error = None if f.cancelled() else f.exception()
            if isinstance(error, LeaseLost):
                # Another node runs the session now; it reloads the outbox and records the outcome itself.
                self._on_fenced()
            elif error is not None:
                log.error("%s: could not record the outcome of %s: %s", label, item.message_id, error)
            if waiter is None or waiter.done():
                return
            if f.cancelled():
                waiter.cancel()
            elif error is not None:
                waiter.set_exception(error)
            else:
                waiter.set_result(item)

        done.add_done_callback(resolve)
