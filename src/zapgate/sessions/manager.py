"""The session manager: one engine session per (tenant, name), its state, its outbox and its events.

Commands from clients (``start``, ``stop``, ``send_text``, ...) and events from the engine both land here.
Every status change goes through :meth:`SessionManager._set_status`, which checks it against the state
machine, stores it with its ``session.status`` event in one transaction, and logs it. Every lookup takes the
tenant: a session of another tenant is reported exactly like a missing one.

Commands that change a session's life (start, stop, logout, delete) run one at a time per session, under
its lock, and each checks that the session still exists once it holds the lock: a command that waited for
a ``session.delete`` finds no session, and nothing a late command or engine event stores can bring a deleted
session back (storage ignores updates of a deleted session).

Which sessions run here is the :class:`~.ownership.Ownership`'s answer: all of them for a single gateway; in a
cluster, those whose lease this node holds (:mod:`.moves`). Every write for a session carries its fence; a
refused one means the session moved to another node, and it is stopped here at once
(:class:`~.ownership.NotOwner`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, cast

import msgspec

from ..background import BackgroundTasks
from ..config import Settings
from ..engines.base import (
    SINK_BATCH,
    ChatSettingIn,
    Connected,
    Disconnected,
    Engine,
    EngineEvent,
    Failed,
    GroupJoinedIn,
    GroupParticipantsIn,
    GroupUpdatedIn,
    HistoryBatch,
    IdentityIn,
    LoggedOut,
    MessageIn,
    PairCode,
    Paired,
    PresenceIn,
    QrCode,
    ReceiptIn,
    SendError,
    SendRestricted,
)
from ..errors import (
    EngineUnavailable,
    InvalidRecipient,
    SendFailed,
    SessionNotFound,
    SessionNotPaired,
)
from ..jid import parse_phone, parse_recipient
from ..media.downloader import Downloader
from ..media.library import MediaLibrary
from ..protocol import (
    MessageStatusData,
    OutboxState,
    QrState,
    SessionDeletedData,
    SessionInfo,
    SessionPairCodeData,
    SessionQrData,
    SessionRestrictedData,
    SessionStatusData,
    encode,
)
from ..protocol.content import Edit
from ..storage import (
    ChatSettings,
    InboundRequest,
    LeaseLost,
    MediaRecord,
    NewEvent,
    SessionExists,
    SessionRecord,
    Storage,
    StoredEvent,
)
from ..storage.database import MAX_BATCH
from .chats import Chats, history_pairs, inbound_entry
from .contacts import Contacts
from .groups import Groups
from .identities import Identities
from .inbound import describe_inbound
from .intake import TurnBudget
from .moves import SessionMoves
from .ownership import NotOwner, Ownership, SoleOwner
from .pacing import DAY, Pacer, PacingPolicy
from .presence import Presence
from .sender import Sender
from .sending import MessageSending
from .session import Session
from .state import Status

__all__ = ["Session", "SessionManager"]

log = logging.getLogger("zapgate.sessions")


RESTORE_CONCURRENCY = 64
"""Sessions prepared and reopened at the same time when the gateway starts."""

INTAKE_PER_TURN = SINK_BATCH
"""Received messages the batch sink names and queues per turn of the event loop (:mod:`.intake`): one engine
batch."""


class SessionManager(SessionMoves, MessageSending):
    def __init__(
        self,
        storage: Storage,
        engine: Engine,
        settings: Settings,
        media: MediaLibrary,
        *,
        ownership: Ownership | None = None,
    ) -> None:
        self._storage = storage
        self._engine = engine
        self._settings = settings
        self._media = media
        self._ownership = ownership or SoleOwner()
        self.fenced_writes = 0
        """Writes refused because this node no longer held the session's lease."""
        self.downloads = Downloader(media, engine, settings, names=self._owner)
        self._by_name: dict[tuple[str, str], Session] = {}
        self._by_id: dict[str, Session] = {}
        self._policy = PacingPolicy(
            enabled=settings.pacing,
            interval=settings.pacing_interval_s,
            jitter=settings.pacing_jitter_s,
            recipient_interval=settings.pacing_recipient_interval_s,
            new_contacts_per_day=settings.pacing_new_contacts_per_day,
        )
        self._tasks = BackgroundTasks(log)
        self._intake = TurnBudget(INTAKE_PER_TURN)
        self.presence = Presence(engine, storage, self.get, self._event)
        """``chat.presence``, ``presence.set``, ``presence.subscribe`` and the ``presence`` events."""
        self.chats = Chats(engine, storage, self.get, self._event)
        """``chat.*``, ``message.history``, and the history sync."""
        self.identities = Identities(storage.identities)
        """Each session's phone ↔ LID map (:mod:`.identity`)."""
        self.contacts = Contacts(engine, media, storage, self.identities, self.get)
        """``contact.*``."""
        self.groups = Groups(engine, storage, self.identities, self.get, self._event)
        """``group.*`` and the group events."""

    # -- lifecycle

    async def start(self) -> None:
        """A single gateway: load every stored session and resume those that were running. In a cluster,
        sessions arrive through :meth:`adopt` as this node takes their leases."""
        if not self.clustered:
            records = await self._storage.list_sessions()
            await self._restore([Session(record) for record in records])
            log.info("loaded %d sessions, resumed %d", len(records), sum(1 for r in records if r.want_running))
        await self.downloads.start()

    async def _resume_downloads(self, session_ids: set[str]) -> None:
        await self.downloads.resume(session_ids)

    async def _restore(self, sessions: Sequence[Session]) -> None:
        """Prepare sessions and reopen those that want to run, many at a time, so that their reads and status
        commits share group commits instead of queueing one behind the other."""
        for session in sessions:
            self._add(session)
        limit = asyncio.Semaphore(RESTORE_CONCURRENCY)

        async def restore(session: Session) -> None:
            async with limit:
                try:
                    await self._start_sender(session)
                    if session.record.want_running and self._ownership.valid(session.id):
                        async with session.lock:
                            await self._open(session, pair_phone=None)
                except NotOwner:
                    pass  # taken by another node meanwhile (and stopped here already)

        await asyncio.gather(*(restore(s) for s in sessions))

    async def close(self) -> None:
        """Stop the senders, pending restarts and downloads; the engine itself is closed by the gateway. Stored
        state is left as is."""
        await self.downloads.close()
        await self._tasks.close()
        for session in self._by_id.values():
            session.restart = None
            if session.sender is not None:
                await session.sender.close()

    def _add(self, session: Session) -> None:
        self._by_name[(session.tenant, session.name)] = session
        self._by_id[session.id] = session

    async def _start_sender(self, session: Session) -> None:
        known, recent_new = await self._storage.load_contacts(session.id, time.time() - DAY)
        pending = await self._storage.pending_messages(session.id)
        session.sender = Sender(
            session_id=session.id,
            tenant=session.tenant,
            session_name=lambda: session.name,
            engine=self._engine,
            storage=self._storage,
            pacer=Pacer(self._policy, new_contact_times=recent_new),
            known_chats=known,
            online=lambda: session.state.status is Status.CONNECTED and self._ownership.valid(session.id),
            media_files=self._media.file_for,
            fence=lambda: session.fence,
            on_fenced=lambda: self.lost(session),
            concurrency=self._settings.send_concurrency,
        )
        session.sender.start(pending)

    # -- lookups

    def get(self, tenant: str, name: str) -> Session:
        session = self._by_name.get((tenant, name))
        if session is None:
            raise SessionNotFound(f"no session named {name!r}")
        return session

    def by_id(self, session_id: str) -> Session | None:
        return self._by_id.get(session_id)

    def _owner(self, session_id: str) -> tuple[str, str] | None:
        session = self._by_id.get(session_id)
        return (session.tenant, session.name) if session is not None else None

    def for_tenant(self, tenant: str) -> list[Session]:
        return sorted((s for (t, _), s in self._by_name.items() if t == tenant), key=lambda s: s.name)

    def all(self) -> list[Session]:
        return list(self._by_id.values())

    def info(self, session: Session) -> SessionInfo:
        sender = session.sender
        pacing = sender.pacing_state(time.time()) if sender is not None else None
        return SessionInfo(
            session=session.name,
            status=session.state.status.wire,
            reason=session.state.reason,
            detail=session.detail,
            paired=session.paired,
            me=session.me,
            qr=session.qr if session.state.status is Status.QR else None,
            created_at=session.record.created_at,
            since=session.since,
            outbox=OutboxState(queued=sender.queued if sender else 0),
            pacing=pacing,
        )

    # -- commands

    async def start_session(self, tenant: str, name: str, *, pair_phone: str | None = None) -> Session:
        """Create the session if needed and start it (pairing if it is not paired). Idempotent."""
        if pair_phone is not None:
            try:
                pair_phone = parse_phone(pair_phone)
            except InvalidRecipient as exc:
                raise InvalidRecipient(f"pair_phone: {exc.message}") from None
        while True:
            session = self._by_name.get((tenant, name)) or await self._create(tenant, name)
            async with session.lock:
                if not self._exists(session):
                    continue  # deleted while we waited: this start creates it anew
                if not session.state.running:
                    await self._open(session, pair_phone=pair_phone)
                return session

    async def _create(self, tenant: str, name: str) -> Session:
        now = time.time()
        record = SessionRecord(
            id="ses_" + secrets.token_hex(8),
            tenant=tenant,
            name=name,
            status=Status.STOPPED.value,
            created_at=now,
            updated_at=now,
        )
        session = Session(record)
        self._add(session)  # at once: a concurrent start of the same name finds it
        try:
            async with session.lock:
                if self.clustered:
                    # With its lease, held by this node: the session runs here from the start.
                    owner = (self._ownership.node or "", self._ownership.ttl)
                    try:
                        session.fence = await self._storage.create_session(
                            record, owner=owner, quotas=self._settings.tenant_quotas
                        )
                    except SessionExists:
                        raise NotOwner(f"session {name!r} was just created on another node") from None
                    assert session.fence is not None
                    self._ownership.created(session.fence)
                else:
                    await self._storage.add_session(record, quotas=self._settings.tenant_quotas)
                await self._start_sender(session)
        except BaseException:
            self._remove(session)
            raise
        log.info("%s created", session.label)
        return session

    def _exists(self, session: Session) -> bool:
        return self._by_id.get(session.id) is session

    def _remove(self, session: Session) -> None:
        if self._by_name.get((session.tenant, session.name)) is session:
            del self._by_name[(session.tenant, session.name)]
        if self._by_id.get(session.id) is session:
            del self._by_id[session.id]
        self.chats.forget(session.id)
        self.identities.forget(session.id)
        self.contacts.forget(session.id)

    @contextlib.asynccontextmanager
    async def _lifecycle(self, tenant: str, name: str) -> AsyncIterator[Session]:
        """The session, locked against other lifecycle commands; :class:`SessionNotFound` if it is gone."""
        session = self.get(tenant, name)
        async with session.lock:
            if not self._exists(session):
                raise SessionNotFound(f"no session named {name!r}")
            yield session

    async def _open(self, session: Session, *, pair_phone: str | None) -> None:
        session.cancel_restart()
        session.record.want_running = True
        await self._set_status(session, Status.STARTING, None)
        if not self._ownership.valid(session.id):
            raise self.lost(session)  # (a node may connect a device only while its lease is valid)
        epoch = session.fence.epoch if session.fence is not None else 0
        await self._engine.open(session.id, session.record.device, pair_phone=pair_phone, epoch=epoch)

    async def stop_session(self, tenant: str, name: str) -> Session:
        """Stop the session and keep its pairing. Idempotent."""
        async with self._lifecycle(tenant, name) as session:
            session.cancel_restart()
            await self._engine.stop(session.id)
            session.record.want_running = False
            session.qr = None
            if session.state.status is not Status.STOPPED:
                await self._set_status(session, Status.STOPPED, "stop_requested")
            else:
                await self._save(session)
        return session

    async def logout_session(self, tenant: str, name: str) -> Session:
        """Unlink the session from its phone and forget its keys; it needs a new pairing to run again."""
        async with self._lifecycle(tenant, name) as session:
            session.cancel_restart()
            await self._engine.logout(session.id, session.record.device)
            await self._forget_pairing(session, "logout_requested")
        return session

    async def delete_session(self, tenant: str, name: str) -> None:
        """Log out, then remove the session and everything stored for it."""
        async with self._lifecycle(tenant, name) as session:
            session.cancel_restart()
            await self._engine.logout(session.id, session.record.device)
            self._remove(session)  # from now on, commands and engine events find no session
            if session.sender is not None:
                await session.sender.close(fail_reason="session_deleted")
            event = self._event(session, "session.deleted", SessionDeletedData())
            try:
                await self._storage.delete_session(session.record, [event], fence=session.fence)
            except LeaseLost:
                raise self.lost(session) from None
            self._ownership.forget(session.id)
        log.info("%s deleted", session.label)

    async def mark_read(self, tenant: str, name: str, *, chat: str, message_ids: Sequence[str]) -> int:
        """Send read receipts for the given messages the session received; return how many those were
        (ids it never received, or no longer remembers, are ignored)."""
        session = self.get(tenant, name)
        if not session.paired:
            raise SessionNotPaired(f"session {name!r} is not linked to a phone yet: pair it first")
        jid = await self.identities.address(session.id, parse_recipient(chat))
        known = await self._storage.known_inbound(session.id, message_ids)
        ids = [mid for mid in dict.fromkeys(message_ids) if mid in known]
        if not ids:
            return 0
        try:
            await self._engine.mark_read(session.id, jid, None, ids)
        except SendError as exc:
            if exc.retryable:
                raise EngineUnavailable(f"could not send read receipts now ({exc.message}); retry") from None
            raise SendFailed(f"could not send read receipts: {exc.message}") from None
        await self.chats.read(session, str(jid), ids)
        return len(ids)

    # -- engine events

    async def on_engine_event(self, session_id: str, event: EngineEvent) -> None:
        """The engine sink. Returns once whatever the event changed is stored."""
        session = self._by_id.get(session_id)
        if session is None:
            if self.clustered and isinstance(event, MessageIn | ReceiptIn):
                # Not acknowledged: the node that runs the session now gets it from WhatsApp again.
                raise NotOwner(f"session {session_id} does not run here")
            log.debug("event %s for unknown session %s dropped", type(event).__name__, session_id)
            return
        try:
            await self._on_event(session, event)
        except LeaseLost:
            raise self.lost(session) from None

    async def admit_publishing(self, events: int) -> None:
        """While received messages are being queued (the intake's turn budget is in use), wait for a share of it
        before ``events`` just committed are published: a full batch (:data:`~zapgate.storage.database.MAX_BATCH`
        events) takes a whole turn's, so that one turn of a burst does not both queue received messages and publish
        a batch (``bench/findings.md``, round 10). Without received messages, publishing does not wait."""
        if self._intake.busy:
            await self._intake.admit(max(1, events * INTAKE_PER_TURN // MAX_BATCH))

    async def on_engine_events(self, session_id: str, events: Sequence[EngineEvent]) -> list[BaseException | None]:
        """The engine's batch sink: several events of one session, handled as if each went to
        :meth:`on_engine_event` in turn. Received messages are stored together: each is queued for the same
        batched write, then all are awaited at once, so a burst costs one chain of coroutines per batch instead
        of one per message. Returns once every event is settled: for each, None once stored, else its error."""
        if session_id not in self._by_id or not all(isinstance(event, MessageIn) for event in events):
            return [await _outcome(self.on_engine_event(session_id, event)) for event in events]
        messages = cast(Sequence[MessageIn], events)
        try:
            identities = await self.identities.map(session_id)  # read from storage once per session
        except Exception as exc:
            return [exc] * len(events)
        # A burst resumes many sessions' batches in the same turn of the loop: each waits for its share of a
        # turn, and from there to the end of queuing nothing waits, so the batch's work stays in that turn.
        await self._intake.admit(len(messages))
        session = self._by_id.get(session_id)
        if session is None:  # stopped meanwhile
            return [await _outcome(self.on_engine_event(session_id, event)) for event in events]
        try:
            named, learned = self.identities.name_messages(session.id, identities, messages)
            if learned is not None:
                # Queued before the messages, so committed with them or before them. The map in memory has it
                # either way; a failure is logged, not the messages' (offering them again would not write it).
                learned.add_done_callback(functools.partial(_log_identities_unsaved, session.label))
            requests = [self._inbound_request(session, event) for event in named]
            stored = self._storage.submit_inbound_many([request for request, _ in requests])
        except LeaseLost:
            return [self.lost(session)] * len(events)
        except Exception as exc:
            return [exc] * len(events)
        outcomes: list[BaseException | None] = []
        lost: NotOwner | None = None
        for event, (_, media), (ok, result) in zip(named, requests, await stored, strict=True):
            if isinstance(result, LeaseLost):
                lost = lost or self.lost(session)
                outcomes.append(lost)
            elif not ok:
                outcomes.append(cast(Exception, result))
            else:
                self._message_stored(session, event, media, cast(list[StoredEvent] | None, result))
                outcomes.append(None)
        return outcomes

    async def _on_event(self, session: Session, event: EngineEvent) -> None:
        match event:
            case MessageIn():
                await self._on_message(session, await self.identities.message(session.id, event))
            case PresenceIn():
                await self.presence.received(session, await self.identities.presence(session.id, event))
            case HistoryBatch():
                # What the history teaches about who is who feeds the session's phone ↔ LID map.
                await self.identities.learn(session.id, history_pairs(event))
                await self.chats.history_batch(session, event)
            case ChatSettingIn():
                settings = ChatSettings(
                    chat=event.chat, archived=event.archived, pinned=event.pinned, muted_until=event.muted_until
                )
                await self.chats.changed(session, settings)
            case IdentityIn():
                await self.identities.learn_pairs(session.id, event.pairs)
            case GroupJoinedIn() | GroupUpdatedIn() | GroupParticipantsIn():
                await self.groups.received(session, event)
            case ReceiptIn():
                event = await self.identities.receipt(session.id, event)
                events = [
                    self._event(
                        session,
                        "message.status",
                        MessageStatusData(
                            message_id=mid,
                            chat=event.chat,
                            status=event.status,
                            timestamp=event.timestamp,
                            chat_lid=event.chat_lid,
                        ),
                    )
                    for mid in event.message_ids
                ]
                await self._storage.append_message_events(events, fence=session.fence)
            case QrCode():
                if session.state.status not in (Status.STARTING, Status.QR):
                    return
                session.qr = QrState(
                    attempt=event.attempt, max_attempts=event.max_attempts, expires_at=event.expires_at
                )
                session.qr_code = event.code
                data = SessionQrData(
                    qr=event.code, attempt=event.attempt, max_attempts=event.max_attempts, expires_at=event.expires_at
                )
                await self._set_status(session, Status.QR, None, extra=[self._event(session, "session.qr", data)])
            case PairCode():
                data_pc = SessionPairCodeData(code=event.code, expires_at=event.expires_at)
                await self._storage.append_events(
                    [self._event(session, "session.pair_code", data_pc)], fence=session.fence
                )
            case Paired():
                session.record.device = dict(event.device)
                session.record.me = msgspec.to_builtins(event.me)
                session.qr = session.qr_code = None
                await self._save(session)
                log.info("%s paired", session.label)
            case Connected():
                session.record.me = msgspec.to_builtins(event.me)
                session.qr = session.qr_code = None
                if await self._set_status(session, Status.CONNECTED, None) and session.sender is not None:
                    session.sender.wake()
            case Disconnected():
                await self._set_status(
                    session, Status.DISCONNECTED, event.reason, retry_at=event.retry_at, detail=event.detail
                )
            case LoggedOut():
                await self._forget_pairing(session, event.reason)
            case Failed():
                await self._on_failed(session, event)
            case SendRestricted():
                if session.sender is not None:
                    session.sender.pause(event.until, event.reason)
                data_sr = SessionRestrictedData(reason=event.reason, until=event.until)
                await self._storage.append_events(
                    [self._event(session, "session.restricted", data_sr)], fence=session.fence
                )

    async def _on_message(self, session: Session, event: MessageIn) -> None:
        request, media = self._inbound_request(session, event)
        ((ok, result),) = await self._storage.submit_inbound_many([request])
        if not ok:
            raise cast(Exception, result)
        self._message_stored(session, event, media, cast(list[StoredEvent] | None, result))

    def _inbound_request(self, session: Session, event: MessageIn) -> tuple[InboundRequest, MediaRecord | None]:
        """A received message (already named by :attr:`identities`) and its event, as stored; and the row of its
        file, if it has one."""
        # A file gets its media id in the same transaction as the event that names it; then it is downloaded.
        event, media = self._media.receiving(session.tenant, session.id, event)
        name, data = describe_inbound(event)
        content = event.content
        request = InboundRequest(
            session.id,
            event.message_id,
            event.chat,
            (self._event(session, name, data),),
            time.time(),
            event.sender,
            str(type(content).__struct_config__.tag),
            media,
            session.fence,
            inbound_entry(event),
            (content.message_id, content.text) if isinstance(content, Edit) else None,
        )
        return request, media

    def _message_stored(
        self, session: Session, event: MessageIn, media: MediaRecord | None, stored: list[StoredEvent] | None
    ) -> None:
        """What follows once a received message is stored (``stored`` None: it had been received before)."""
        if stored is not None and media is not None:
            self.downloads.schedule(session.tenant, media.id)
        if stored is not None and session.sender is not None and not event.status:
            session.sender.chat_seen(event.chat)

    async def _on_failed(self, session: Session, event: Failed) -> None:
        if not session.state.can(Status.FAILED):
            return  # a late report about a session that was stopped meanwhile
        session.qr = session.qr_code = None
        session.record.want_running = event.retry_at is not None
        if not await self._set_status(
            session, Status.FAILED, event.reason, retry_at=event.retry_at, detail=event.detail
        ):
            return
        if event.retry_at is not None and not self._tasks.closed:
            session.cancel_restart()
            delay = max(0.0, event.retry_at - time.time())
            session.restart = self._tasks.later(delay, self._restart, session, name=f"restart-{session.id}")

    async def _restart(self, session: Session) -> None:
        session.restart = None
        async with session.lock:
            if self._exists(session) and not session.state.running and session.record.want_running:
                log.info("%s: retrying after %s", session.label, session.state.reason)
                await self._open(session, pair_phone=None)

    async def _forget_pairing(self, session: Session, reason: str) -> None:
        session.record.device = None
        session.record.me = None
        session.record.want_running = False
        session.qr = session.qr_code = None
        if session.state.can(Status.LOGGED_OUT):
            await self._set_status(session, Status.LOGGED_OUT, reason)
        else:
            await self._save(session)
        if session.sender is not None:
            try:
                await session.sender.fail_queued("logged_out")
            except LeaseLost:
                raise self.lost(session) from None

    # -- the one place a status changes

    async def _set_status(
        self,
        session: Session,
        status: Status,
        reason: str | None,
        *,
        retry_at: float | None = None,
        detail: str | None = None,
        extra: Sequence[NewEvent] = (),
    ) -> bool:
        """Move the session to ``status`` and store it with its event; False when the move is not allowed
        from the current status (a late engine event) or changes nothing.

        The log line names the session by id, tenant and name: engines (and their worker processes) know
        sessions only by id, so these lines are how an operator maps an engine's log to a session."""
        old = session.state.status
        if not session.state.can(status) and status != old:
            log.debug("%s: ignoring %s while %s", session.label, status, old)
            return False
        changed = session.state.transition(status, reason)
        session.detail = detail
        if status is not old:
            session.since = time.time()
        events = list(extra)
        if changed:
            log.info(
                "%s: %s -> %s%s%s",
                session.label,
                old,
                status,
                f" ({reason})" if reason else "",
                f": {detail}" if detail else "",
            )
            data = SessionStatusData(
                status=status.wire,
                reason=reason,
                me=session.me if status is Status.CONNECTED else None,
                retry_at=retry_at,
                detail=detail,
            )
            events.insert(0, self._event(session, "session.status", data))
        if changed or events:
            await self._save(session, events)
        return changed

    async def _save(self, session: Session, events: Sequence[NewEvent] = ()) -> None:
        record = session.record
        record.status = session.state.status.value
        record.reason = session.state.reason
        record.updated_at = time.time()
        try:
            await self._storage.save_session(record, events, fence=session.fence)
        except LeaseLost:
            raise self.lost(session) from None

    def _event(self, session: Session, name: str, data: Any) -> NewEvent:
        return NewEvent(session.tenant, session.name, name, encode(data))


def _log_identities_unsaved(label: str, saved: asyncio.Future[None]) -> None:
    """Done callback of the write of what a batch of received messages taught about who is who."""
    if not saved.cancelled() and (error := saved.exception()) is not None:
        log.error(
            "%s: storing who is who from received messages failed",
            label,
            exc_info=(type(error), error, error.__traceback__),
        )


async def _outcome(handled: Awaitable[None]) -> BaseException | None:
    """None once ``handled`` finished, else what it raised (an engine's batch sink reports errors per event)."""
    try:
        await handled
    except Exception as exc:
        return exc
    return None
