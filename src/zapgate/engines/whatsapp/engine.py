"""The ``whatsapp`` engine as the gateway sees it: the :class:`~zapgate.engines.base.Engine` interface over
supervised worker processes that run whatsmeow through neonize.

This module runs in the gateway process and never imports neonize. It hands commands to the
:class:`~.supervisor.WorkerPool`, delivers the workers' events to the sink one session at a time and in order,
and translates between the message ids the gateway hands out and the ones WhatsApp assigns (:mod:`.ids`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from ...config import Settings
from ...jid import Jid
from ...protocol import GroupInfo, ParticipantResult
from ...protocol.content import Content, Media, content_text, media_of, target_of
from ..base import (
    PLAIN,
    SINK_BATCH,
    Availability,
    ChatState,
    Connected,
    ContactProfile,
    Disconnected,
    DownloadError,
    Engine,
    EngineBatchSink,
    EngineEvent,
    EngineIssue,
    EngineSink,
    Failed,
    GroupAction,
    GroupChanges,
    HistoryBatch,
    LoggedOut,
    MediaFile,
    MessageIn,
    Outgoing,
    Paired,
    PhoneCheck,
    Quote,
    ReceiptIn,
    SendError,
    Sent,
    Target,
)
from . import ipc
from .ids import RETENTION_S, MessageIds
from .policy import ENGINE_MISMATCH, WHATSAPP_UNREACHABLE
from .store import STORE_DIR, DeviceRef, DeviceStores
from .supervisor import WorkerInfo, WorkerPool, WorkerUnavailable

__all__ = ["WhatsAppEngine"]

log = logging.getLogger("zapgate.engines.whatsapp")

SEND_TIMEOUT_S = 90.0
"""Longer than whatsmeow's own 75 s wait for WhatsApp's acknowledgement of a message."""
MEDIA_SEND_TIMEOUT_S = SEND_TIMEOUT_S + 330.0
"""A media message: the worker's upload (at most 300 s, then retryable) comes first."""
DOWNLOAD_REPLY_TIMEOUT_S = 330.0
"""Longer than the worker's own 300 s limit on a download."""
PRESENCE_TIMEOUT_S = 30.0
READ_TIMEOUT_S = 30.0
CONTACTS_TIMEOUT_S = 60.0
"""Number checks, profiles (with the picture download), blocklist changes and group calls (creating a group of
1,000 asks WhatsApp about every member)."""
LOGOUT_TIMEOUT_S = 30.0
SINK_ATTEMPTS = 3
"""Tries to store an event (a second apart) before it is dropped and logged."""
PRUNE_EVERY_SENDS = 10000
"""Links older than :data:`~.ids.RETENTION_S` are pruned at start and after this many sends."""
RECENT_MESSAGES = 20000
"""Messages remembered (sender and text) so that a reply can quote them; older quotes go out without text."""


@dataclass(frozen=True, slots=True)
class _Recent:
    participant: str
    text: str


class WhatsAppEngine(Engine):
    """Real WhatsApp through whatsmeow (neonize) in engine worker processes; see ``docs/engines.md``."""

    name = "whatsapp"

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._pool = WorkerPool(settings, self._from_worker)
        # One gateway: beside the device files. Several nodes: in the cluster's database, like the device keys, so
        # that the node a session moves to knows which of its messages WhatsApp already took.
        ids_at = settings.database_url if settings.clustered else settings.data_dir / STORE_DIR / "messages.db"
        self._ids = MessageIds(
            ids_at, synchronous=settings.sqlite_synchronous, lock_hold_limit_s=settings.lock_hold_limit_s
        )
        self._devices = DeviceStores(settings.data_dir, settings.database_url if settings.clustered else None)
        self._sink: EngineSink | None = None
        self._batch_sink: EngineBatchSink | None = None
        self._queues: dict[str, asyncio.Queue[EngineEvent]] = {}
        self._history: dict[str, collections.deque[EngineEvent]] = {}
        """History-sync batches per session, stored after any live event waiting (history is older anyway)."""
        self._consumers: dict[str, asyncio.Task[None]] = {}
        self._me: dict[str, str] = {}
        self._unreachable: dict[str, str | None] = {}
        """Sessions whose latest connection attempt could not reach WhatsApp, with the detail (for health)."""
        self._sends = 0
        self._recent: collections.OrderedDict[tuple[str, str], _Recent] = collections.OrderedDict()

    # -- engine interface

    async def start(self, sink: EngineSink, batch_sink: EngineBatchSink | None = None) -> None:
        self._sink = sink
        self._batch_sink = batch_sink
        await self._ids.open()

    async def close(self) -> None:
        await self._pool.close()
        consumers = list(self._consumers.values())
        for task in consumers:
            task.cancel()
        await asyncio.gather(*consumers, return_exceptions=True)
        self._consumers.clear()
        await self._ids.close()

    async def open(
        self, session_id: str, device: dict[str, Any] | None, *, pair_phone: str | None = None, epoch: int = 0
    ) -> None:
        self._unreachable.pop(session_id, None)
        paired_by = _paired_by(device)
        if paired_by is not None and paired_by != self.name:
            # The data directory was used with another engine: keep the pairing for it, delete nothing.
            log.error(
                "session %s was paired by the %r engine, not by %r; its pairing is kept. Run the gateway with "
                "--engine %s (ZAPGATE_ENGINE=%s) to use it, or log the session out to pair it again with this engine",
                session_id,
                paired_by,
                self.name,
                paired_by,
                paired_by,
            )
            detail = f"paired by the {paired_by!r} engine; run the gateway with --engine {paired_by}"
            self._from_worker(session_id, Failed(reason=ENGINE_MISMATCH, detail=detail))
            return
        try:
            await self._pool.open(session_id, device, pair_phone)
        except WorkerUnavailable as exc:
            log.warning("session %s not opened: %s", session_id, exc)

    async def stop(self, session_id: str) -> None:
        self._unreachable.pop(session_id, None)
        await self._pool.stop(session_id)

    async def logout(self, session_id: str, device: dict[str, Any] | None) -> None:
        # A worker unlinks the device on WhatsApp's side too, connecting first if the session is not open.
        remote = self._pool.hosts(session_id) or await asyncio.to_thread(self._has_keys, device)
        if remote and not await self._pool.logout(session_id, device, LOGOUT_TIMEOUT_S):
            log.warning("session %s: no engine worker could log it out; deleting its keys here", session_id)
        # The worker deleted the keys already; this covers a worker that could not be reached.
        await asyncio.to_thread(self._delete_stores, session_id, device)
        self._me.pop(session_id, None)
        self._unreachable.pop(session_id, None)
        await self._ids.forget(session_id)

    def _delete_stores(self, session_id: str, device: dict[str, Any] | None) -> None:
        """Delete the session's device keys (blocking I/O: run off the event loop)."""
        with contextlib.suppress(ValueError):
            self._devices.leftovers(session_id).delete()
        if device is not None:
            with contextlib.suppress(ValueError):
                ref = DeviceRef.from_record(device)
                self._devices.of(ref).delete(ref.jid)

    def _has_keys(self, device: dict[str, Any] | None) -> bool:
        if device is None:
            return False
        try:
            ref = DeviceRef.from_record(device)
            return self._devices.of(ref).read(ref.jid) is not None
        except ValueError:
            return False

    async def send(
        self, session_id: str, message_id: str, to: Jid, content: Content, extra: Outgoing = PLAIN
    ) -> Sent:
        earlier = await self._ids.sent(session_id, message_id)
        if earlier is not None:
            return Sent(earlier[1], earlier[2])  # WhatsApp has it already: sending again would show it twice
        media = media_of(content)
        if media is not None:
            if extra.media is None:
                raise SendError("media_missing", "the file of this media message was not given", retryable=False)
            # The worker reads the stored file (extra.media.path); inline data never crosses the channel.
            content = msgspec.structs.replace(content, media=Media())
        quote_ref = await self._quote(session_id, extra.quote) if extra.quote is not None else None
        target_ref = await self._target(session_id, extra.target) if extra.target is not None else None
        if not await self._ids.begin(session_id, message_id):
            log.warning(
                "session %s: %s was in flight when a worker or the gateway died; sending it again",
                session_id,
                message_id,
            )

        def request(i: int) -> ipc.Send:
            return ipc.Send(
                id=i,
                session_id=session_id,
                to=str(to),
                content=content,
                quote=quote_ref,
                target=target_ref,
                mentions=list(extra.mentions),
                forwarded=extra.forwarded,
                media=extra.media,
            )

        try:
            reply = await self._pool.request(
                session_id, request, MEDIA_SEND_TIMEOUT_S if media is not None else SEND_TIMEOUT_S
            )
        except WorkerUnavailable as exc:
            if not exc.in_flight:  # it never reached a worker: certainly not sent
                await self._ids.abandon(session_id, message_id)
            raise SendError(exc.code, f"cannot send now: {exc}", retryable=True) from None
        except TimeoutError:
            raise SendError(
                "send_unconfirmed",
                "WhatsApp did not confirm the message in time; it may have been delivered",
                retryable=False,
            ) from None
        if not reply.ok:
            if reply.retryable:
                await self._ids.abandon(session_id, message_id)
            raise SendError(
                reply.error_code or "engine_error", reply.error_message or "send failed", retryable=reply.retryable
            )
        assert reply.wa_id is not None and reply.timestamp is not None
        await self._ids.complete(session_id, message_id, reply.wa_id, reply.timestamp, reply.chat)
        self._sends += 1
        if self._sends % PRUNE_EVERY_SENDS == 0:
            await self._ids.prune(time.time() - RETENTION_S)
        self._remember(session_id, reply.wa_id, self._me.get(session_id, ""), content_text(content) or "")
        return Sent(reply.timestamp, reply.chat)

    async def mark_read(self, session_id: str, chat: Jid, sender: Jid | None, message_ids: list[str]) -> None:
        try:
            reply = await self._pool.request(
                session_id,
                lambda i: ipc.MarkRead(
                    id=i,
                    session_id=session_id,
                    chat=str(chat),
                    sender=str(sender) if sender else None,
                    message_ids=message_ids,
                ),
                READ_TIMEOUT_S,
            )
        except WorkerUnavailable as exc:
            raise SendError(exc.code, f"cannot send read receipts now: {exc}", retryable=True) from None
        except TimeoutError:
            raise SendError("timeout", "the engine worker did not answer", retryable=True) from None
        if not reply.ok:
            raise SendError(
                reply.error_code or "engine_error", reply.error_message or "failed", retryable=reply.retryable
            )

    async def download(self, session_id: str, media_ref: dict[str, Any], into: Path) -> None:
        try:
            reply = await self._pool.request(
                session_id,
                lambda i: ipc.Download(id=i, session_id=session_id, media_ref=media_ref, into=str(into)),
                DOWNLOAD_REPLY_TIMEOUT_S,
            )
        except WorkerUnavailable as exc:
            raise DownloadError(exc.code, f"cannot download now: {exc}", retryable=True) from None
        except TimeoutError:
            late = "the engine worker did not finish the download in time"
            raise DownloadError("timeout", late, retryable=True) from None
        if not reply.ok:
            raise DownloadError(
                reply.error_code or "engine_error", reply.error_message or "download failed", retryable=reply.retryable
            )

    async def chat_presence(self, session_id: str, chat: Jid, state: ChatState) -> None:
        await self._presence(
            session_id, lambda i: ipc.ChatPresence(id=i, session_id=session_id, chat=str(chat), state=state)
        )

    async def set_presence(self, session_id: str, state: Availability) -> None:
        await self._presence(session_id, lambda i: ipc.SetPresence(id=i, session_id=session_id, state=state))

    async def subscribe_presence(self, session_id: str, jid: Jid) -> None:
        await self._presence(
            session_id, lambda i: ipc.SubscribePresence(id=i, session_id=session_id, chat=str(jid))
        )

    async def _presence(self, session_id: str, make: Callable[[int], ipc.Request]) -> None:
        try:
            reply = await self._pool.request(session_id, make, PRESENCE_TIMEOUT_S)
        except WorkerUnavailable as exc:
            raise SendError(exc.code, f"cannot send presence now: {exc}", retryable=True) from None
        except TimeoutError:
            raise SendError("timeout", "the engine worker did not answer", retryable=True) from None
        if not reply.ok:
            raise SendError(
                reply.error_code or "engine_error", reply.error_message or "failed", retryable=reply.retryable
            )

    # -- contacts (see .accounts)

    async def check_contacts(self, session_id: str, phones: list[str]) -> list[PhoneCheck]:
        reply = await self._ask(session_id, lambda i: ipc.CheckPhones(id=i, session_id=session_id, phones=phones))
        return msgspec.convert(reply.data, list[PhoneCheck])

    async def contact_info(self, session_id: str, jid: Jid) -> ContactProfile:
        reply = await self._ask(session_id, lambda i: ipc.ContactInfo(id=i, session_id=session_id, jid=str(jid)))
        return msgspec.convert(reply.data, ContactProfile)

    async def profile_picture(self, session_id: str, jid: Jid, into: Path) -> str | None:
        def make(i: int) -> ipc.Request:
            return ipc.ProfilePicture(id=i, session_id=session_id, jid=str(jid), into=str(into))

        reply = await self._ask(session_id, make)
        return None if reply.data is None else str(reply.data)

    async def set_blocked(self, session_id: str, jid: Jid, blocked: bool) -> list[str]:
        def make(i: int) -> ipc.Request:
            return ipc.SetBlocked(id=i, session_id=session_id, jid=str(jid), blocked=blocked)

        return [str(j) for j in (await self._ask(session_id, make)).data or []]

    async def blocklist(self, session_id: str) -> list[str]:
        reply = await self._ask(session_id, lambda i: ipc.Blocklist(id=i, session_id=session_id))
        return [str(j) for j in reply.data or []]

    async def set_chat(
        self,
        session_id: str,
        chat: Jid,
        *,
        archived: bool | None = None,
        pinned: bool | None = None,
        muted_until: int | None = None,
    ) -> None:
        raise SendError(
            "unsupported",
            "the whatsapp engine cannot archive, pin or mute chats: neonize 0.5.2's SendAppState binding loses the "
            "app-state patch type (docs/engines.md)",
            retryable=False,
        )

    async def _ask(self, session_id: str, make: Callable[[int], ipc.Request]) -> ipc.Reply:
        try:
            reply = await self._pool.request(session_id, make, CONTACTS_TIMEOUT_S)
        except WorkerUnavailable as exc:
            raise SendError(exc.code, f"cannot ask WhatsApp now: {exc}", retryable=True) from None
        except TimeoutError:
            raise SendError("timeout", "the engine worker did not answer", retryable=True) from None
        if not reply.ok:
            raise SendError(
                reply.error_code or "engine_error", reply.error_message or "failed", retryable=reply.retryable
            )
        return reply

    # -- groups (see .groups, in the worker)

    async def group_create(
        self, session_id: str, subject: str, participants: list[Jid]
    ) -> tuple[GroupInfo, list[ParticipantResult]]:
        people = [str(p) for p in participants]
        found = await self._group(session_id, "create", subject=subject, participants=people)
        info, results = msgspec.convert(found, tuple[GroupInfo, list[ParticipantResult]])
        return info, results

    async def groups(self, session_id: str) -> list[GroupInfo]:
        return msgspec.convert(await self._group(session_id, "list"), list[GroupInfo])

    async def group_info(self, session_id: str, group: Jid) -> GroupInfo:
        return msgspec.convert(await self._group(session_id, "info", group=str(group)), GroupInfo)

    async def group_participants(
        self, session_id: str, group: Jid, action: GroupAction, participants: list[Jid]
    ) -> list[ParticipantResult]:
        people = [str(p) for p in participants]
        found = await self._group(session_id, "participants", group=str(group), action=action, participants=people)
        return msgspec.convert(found, list[ParticipantResult])

    async def group_invite_link(self, session_id: str, group: Jid, reset: bool) -> str:
        return str(await self._group(session_id, "invite_link", group=str(group), reset=reset))

    async def group_join(self, session_id: str, code: str) -> GroupInfo:
        return msgspec.convert(await self._group(session_id, "join", code=code), GroupInfo)

    async def group_leave(self, session_id: str, group: Jid) -> None:
        await self._group(session_id, "leave", group=str(group))

    async def group_update(
        self, session_id: str, group: Jid, changes: GroupChanges, picture: MediaFile | None
    ) -> GroupInfo:
        found = await self._group(session_id, "update", group=str(group), changes=changes, picture=picture)
        return msgspec.convert(found, GroupInfo)

    async def _group(self, session_id: str, op: str, **fields: Any) -> Any:
        reply = await self._ask(session_id, lambda i: ipc.GroupRequest(id=i, session_id=session_id, op=op, **fields))
        return reply.data

    # -- introspection

    def health(self) -> list[EngineIssue]:
        """``whatsapp_unreachable`` while the latest connection attempt of some session could not reach WhatsApp
        (until that session connects, is stopped or logged out, or starts again)."""
        if not self._unreachable:
            return []
        details = [d for d in self._unreachable.values() if d]
        detail = max(set(details), key=details.count) if details else None  # the most common cause
        return [EngineIssue(reason=WHATSAPP_UNREACHABLE, detail=detail, sessions=len(self._unreachable))]

    def workers(self) -> list[WorkerInfo]:
        """The engine worker slots, their processes and sessions."""
        return self._pool.workers()

    # -- events

    def _from_worker(self, session_id: str, event: EngineEvent) -> None:
        """Called by the pool, in order; each session's events reach the sink one after the other."""
        self._track_reachability(session_id, event)
        queue = self._queues.get(session_id)
        if queue is None:
            queue = self._queues[session_id] = asyncio.Queue()
        if isinstance(event, HistoryBatch):
            self._history.setdefault(session_id, collections.deque()).append(event)
        else:
            queue.put_nowait(event)
        consumer = self._consumers.get(session_id)
        if consumer is None or consumer.done():
            self._consumers[session_id] = asyncio.create_task(
                self._deliver(session_id, queue), name=f"wa-events-{session_id}"
            )

    async def _deliver(self, session_id: str, queue: asyncio.Queue[EngineEvent]) -> None:
        """Hand the session's events to the sink in order. Received messages already waiting together (a burst
        after a reconnect, a busy group) go to the batch sink together, up to :data:`SINK_BATCH`; one the batch
        could not store is tried again on its own."""
        history = self._history.setdefault(session_id, collections.deque())
        ahead: EngineEvent | None = None  # translated already: taken from the queue while filling a batch
        while ahead is not None or not queue.empty() or history:
            if ahead is not None:
                event, ahead = ahead, None
            else:
                event = await self._translated_or_not(
                    session_id, queue.get_nowait() if not queue.empty() else history.popleft()
                )
            if isinstance(event, MessageIn) and self._batch_sink is not None and not queue.empty():
                batch = [event]
                while len(batch) < SINK_BATCH and not queue.empty():
                    following = await self._translated_or_not(session_id, queue.get_nowait())
                    if not isinstance(following, MessageIn):
                        ahead = following
                        break
                    batch.append(following)
                await self._store_batch(session_id, batch)
                continue
            await self._store(session_id, event, first_attempt=1)
        if self._queues.get(session_id) is queue and queue.empty() and not history:
            del self._queues[session_id]
            self._history.pop(session_id, None)
            self._consumers.pop(session_id, None)

    async def _translated_or_not(self, session_id: str, event: EngineEvent) -> EngineEvent:
        try:
            return await self._translated(session_id, event)
        except Exception:
            log.exception("session %s: could not map the message ids of %s", session_id, type(event).__name__)
            return event

    async def _store_batch(self, session_id: str, batch: Sequence[MessageIn]) -> None:
        assert self._batch_sink is not None
        try:
            outcomes: list[BaseException | None] = await self._batch_sink(session_id, batch)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            outcomes = [exc] * len(batch)
        for event, error in zip(batch, outcomes, strict=True):
            if error is not None:
                log.error(
                    "session %s: storing %s failed (attempt 1 of %d)",
                    session_id,
                    type(event).__name__,
                    SINK_ATTEMPTS,
                    exc_info=(type(error), error, error.__traceback__),
                )
                await asyncio.sleep(1.0)
                await self._store(session_id, event, first_attempt=2)

    async def _store(self, session_id: str, event: EngineEvent, *, first_attempt: int) -> None:
        assert self._sink is not None
        for attempt in range(first_attempt, SINK_ATTEMPTS + 1):
            try:
                await self._sink(session_id, event)
                return
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "session %s: storing %s failed (attempt %d of %d)",
                    session_id,
                    type(event).__name__,
                    attempt,
                    SINK_ATTEMPTS,
                )
                if attempt < SINK_ATTEMPTS:
                    await asyncio.sleep(1.0)

    async def _translated(self, session_id: str, event: EngineEvent) -> EngineEvent:
        """Replace WhatsApp ids of messages the gateway sent by the gateway's ids; remember who is who."""
        match event:
            case ReceiptIn():
                known = await self._ids.to_gateway(session_id, event.message_ids)
                if known:
                    ids = [known.get(wa_id, wa_id) for wa_id in event.message_ids]
                    return msgspec.structs.replace(event, message_ids=ids)
            case MessageIn():
                self._remember(session_id, event.message_id, event.sender, content_text(event.content) or "")
                content = event.content
                target = target_of(content)
                wanted = [mid for mid in (event.reply_to, target) if mid is not None]
                known = await self._ids.to_gateway(session_id, wanted) if wanted else {}
                if known:
                    if target in known:
                        content = msgspec.structs.replace(content, message_id=known[target])
                    reply_to = known.get(event.reply_to, event.reply_to) if event.reply_to else None
                    return msgspec.structs.replace(event, content=content, reply_to=reply_to)
            case Paired() | Connected():
                self._me[session_id] = str(Jid.parse(event.me.jid))
        return event

    def _track_reachability(self, session_id: str, event: EngineEvent) -> None:
        match event:
            case Disconnected() | Failed() if event.reason == WHATSAPP_UNREACHABLE:
                self._unreachable[session_id] = event.detail
            case Connected() | Paired() | LoggedOut() | Disconnected() | Failed():
                self._unreachable.pop(session_id, None)

    def _remember(self, session_id: str, wa_id: str, participant: str, text: str) -> None:
        self._recent[(session_id, wa_id)] = _Recent(participant, text)
        while len(self._recent) > RECENT_MESSAGES:
            self._recent.popitem(last=False)

    async def _target(self, session_id: str, target: Target) -> ipc.TargetRef:
        """WhatsApp's id of the message a reaction, edit, revoke or vote is about, and its author."""
        ours = await self._ids.sent(session_id, target.message_id)
        wa_id = ours[0] if ours else target.message_id
        return ipc.TargetRef(message_id=wa_id, from_me=target.from_me, participant=target.sender)

    async def _quote(self, session_id: str, quote: Quote) -> ipc.QuoteRef:
        """WhatsApp's id, author and text of the quoted message (which may be one the gateway sent)."""
        ours = await self._ids.sent(session_id, quote.message_id)
        wa_id = ours[0] if ours else quote.message_id
        recent = self._recent.get((session_id, wa_id))
        participant: str = quote.sender
        text: str | None = quote.text
        if recent is not None and recent.participant:
            participant, text = recent.participant, recent.text
        elif ours is not None:
            participant, text = self._me.get(session_id, quote.sender), quote.text
        return ipc.QuoteRef(message_id=wa_id, participant=participant, text=text)


def _paired_by(device: dict[str, Any] | None) -> str | None:
    """The engine that made a device record; records without ``engine`` are the simulator's (it added the key
    later). None for no record."""
    if device is None:
        return None
    return str(device.get("engine") or "simulator")
