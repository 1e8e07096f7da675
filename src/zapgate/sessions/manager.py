"""The session manager: one engine session per (tenant, name), its state, its outbox and its events.

Commands from clients (``start``, ``stop``, ``send_text``, ...) and events from the engine both land here.
Every status change goes through :meth:`SessionManager._set_status`, which checks it against the state
machine, stores it with its ``session.status`` event in one transaction, and logs it. Every lookup takes the
tenant: a session of another tenant is reported exactly like a missing one.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import msgspec

from ..config import Settings
from ..engines.base import (
    Connected,
    Disconnected,
    Engine,
    EngineEvent,
    Failed,
    LoggedOut,
    MessageIn,
    PairCode,
    Paired,
    QrCode,
    ReceiptIn,
    SendError,
    SendRestricted,
)
from ..errors import (
    EngineUnavailable,
    IdempotencyConflict,
    InvalidRecipient,
    InvalidRequest,
    NotOnWhatsApp,
    SendFailed,
    SessionNotFound,
    SessionNotPaired,
)
from ..jid import Jid, parse_phone, parse_recipient
from ..protocol import (
    Me,
    MessageStatusData,
    OutboxState,
    PacingState,
    QrState,
    SendResult,
    SessionDeletedData,
    SessionInfo,
    SessionPairCodeData,
    SessionQrData,
    SessionRestrictedData,
    SessionStatusData,
    encode,
)
from ..protocol.content import (
    Content,
    check_sendable,
    content_fingerprint,
    media_of,
)
from ..storage import NewEvent, OutboxItem, SessionRecord, Storage
from .inbound import describe_inbound
from .outgoing import encode_content, encode_outgoing, mentions_for, refers_to
from .pacing import DAY, Pacer, PacingPolicy
from .sender import Sender
from .state import SessionState, Status

__all__ = ["Session", "SessionManager"]

log = logging.getLogger("zapgate.sessions")


RESTORE_CONCURRENCY = 64
"""Sessions prepared and reopened at the same time when the gateway starts."""


class Session:
    """A session's runtime: its stored record, state machine, current QR and sender."""

    def __init__(self, record: SessionRecord) -> None:
        self.record = record
        # Nothing runs when the process starts: a session stored as running starts from "stopped" and is
        # reopened; a stopped, failed or logged-out one keeps its status and reason.
        stored = Status(record.status)
        resting = stored in (Status.STOPPED, Status.FAILED, Status.LOGGED_OUT)
        self.state = SessionState(stored, record.reason) if resting else SessionState(Status.STOPPED, None)
        self.since = record.updated_at
        """When ``state.status`` last changed (epoch seconds)."""
        self.qr: QrState | None = None
        self.qr_code: str | None = None
        self.detail: str | None = None
        """The engine's words for the current status, if any (kept in memory only)."""
        self.lock = asyncio.Lock()
        self.sender: Sender | None = None
        self.restart: asyncio.TimerHandle | None = None

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def tenant(self) -> str:
        return self.record.tenant

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def paired(self) -> bool:
        return self.record.device is not None

    @property
    def me(self) -> Me | None:
        return msgspec.convert(self.record.me, Me) if self.record.me else None


class SessionManager:
    def __init__(self, storage: Storage, engine: Engine, settings: Settings) -> None:
        self._storage = storage
        self._engine = engine
        self._settings = settings
        self._by_name: dict[tuple[str, str], Session] = {}
        self._by_id: dict[str, Session] = {}
        self._policy = PacingPolicy(
            enabled=settings.pacing,
            interval=settings.pacing_interval_s,
            jitter=settings.pacing_jitter_s,
            recipient_interval=settings.pacing_recipient_interval_s,
            new_contacts_per_day=settings.pacing_new_contacts_per_day,
        )

    # -- lifecycle

    async def start(self) -> None:
        """Load every stored session and resume those that were running.

        Sessions are prepared and reopened many at a time, so that their reads and status commits share
        group commits instead of queueing one behind the other."""
        records = await self._storage.list_sessions()
        sessions = [Session(record) for record in records]
        for session in sessions:
            self._add(session)
        limit = asyncio.Semaphore(RESTORE_CONCURRENCY)

        async def restore(session: Session) -> None:
            async with limit:
                await self._start_sender(session)
                if session.record.want_running:
                    async with session.lock:
                        await self._open(session, pair_phone=None)

        await asyncio.gather(*(restore(s) for s in sessions))
        resumed = sum(1 for s in sessions if s.record.want_running)
        log.info("loaded %d sessions, resumed %d", len(records), resumed)

    async def close(self) -> None:
        """Stop the senders; the engine itself is closed by the gateway. Stored state is left as is."""
        for session in self._by_id.values():
            if session.restart is not None:
                session.restart.cancel()
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
            online=lambda: session.state.status is Status.CONNECTED,
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

    def for_tenant(self, tenant: str) -> list[Session]:
        return sorted((s for (t, _), s in self._by_name.items() if t == tenant), key=lambda s: s.name)

    def all(self) -> list[Session]:
        return list(self._by_id.values())

    def info(self, session: Session) -> SessionInfo:
        sender = session.sender
        pacing = None
        if sender is not None:
            pacer = sender.pacer
            now = time.time()
            paused = pacer.paused_until if pacer.paused_until and pacer.paused_until > now else None
            pacing = PacingState(
                enabled=pacer.policy.enabled,
                new_contacts_today=pacer.new_contacts_in_window(now),
                new_contacts_per_day=pacer.policy.new_contacts_per_day,
                paused_until=paused,
                paused_reason=pacer.paused_reason if paused else None,
            )
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
        session = self._by_name.get((tenant, name))
        if session is None:
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
            self._add(session)
            await self._storage.save_session(record)
            await self._start_sender(session)
            log.info("session %s created: tenant %s, name %r", session.id, tenant, name)
        async with session.lock:
            if session.state.running:
                return session
            await self._open(session, pair_phone=pair_phone)
        return session

    async def _open(self, session: Session, *, pair_phone: str | None) -> None:
        if session.restart is not None:
            session.restart.cancel()
            session.restart = None
        session.record.want_running = True
        await self._set_status(session, Status.STARTING, None)
        await self._engine.open(session.id, session.record.device, pair_phone=pair_phone)

    async def stop_session(self, tenant: str, name: str) -> Session:
        """Stop the session and keep its pairing. Idempotent."""
        session = self.get(tenant, name)
        async with session.lock:
            if session.restart is not None:
                session.restart.cancel()
                session.restart = None
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
        session = self.get(tenant, name)
        async with session.lock:
            await self._engine.logout(session.id, session.record.device)
            await self._forget_pairing(session, "logout_requested")
        return session

    async def delete_session(self, tenant: str, name: str) -> None:
        """Log out, then remove the session and everything stored for it."""
        session = self.get(tenant, name)
        async with session.lock:
            await self._engine.logout(session.id, session.record.device)
            if session.restart is not None:
                session.restart.cancel()
            if session.sender is not None:
                await session.sender.close()
                await self._fail_pending(session, "session_deleted")
            del self._by_name[(session.tenant, session.name)]
            del self._by_id[session.id]
            event = self._event(session, "session.deleted", SessionDeletedData())
            await self._storage.delete_session(session.record, [event])
        log.info("session %s deleted", session.id)

    async def send(
        self,
        tenant: str,
        name: str,
        *,
        to: str,
        content: Content,
        reply_to: str | None = None,
        mentions: Sequence[str] = (),
        forwarded: bool = False,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Accept a message for sending: store it durably, queue it, and answer what is known within
        ``send_wait_s`` (see :meth:`_result`)."""
        session = self.get(tenant, name)
        chat = parse_recipient(to)
        problem = check_sendable(content)
        if problem is not None:
            raise InvalidRequest(problem)
        mentioned = mentions_for(chat, content, mentions)
        fingerprint = content_fingerprint(str(chat), content, reply_to, mentioned, forwarded)
        if idempotency_key is not None:
            earlier = await self._storage.find_message(session.id, idempotency_key)
            if earlier is not None:
                return await self._replay(session, earlier, fingerprint)
        if not session.paired:
            raise SessionNotPaired(f"session {name!r} is not linked to a phone yet: pair it first")
        if media_of(content) is not None:
            raise InvalidRequest(f"sending {type(content).__name__.lower()} messages is not supported yet")
        extra = await refers_to(
            self._storage, session.id, session.me.jid if session.me else None, chat, content, reply_to
        )
        extra = msgspec.structs.replace(extra, mentions=mentioned, forwarded=forwarded)
        item = OutboxItem(
            message_id=self._engine.new_message_id(),
            session_id=session.id,
            chat=str(chat),
            content=encode_content(content),
            extra=encode_outgoing(extra),
            created_at=time.time(),
            reply_to=reply_to,
            idempotency_key=idempotency_key,
            fingerprint=fingerprint,
        )
        stored, created = await self._storage.enqueue_message(item)
        if self._by_id.get(session.id) is not session:  # deleted while the message was being stored
            raise SessionNotFound(f"no session named {name!r}")
        if not created:  # the same key arrived twice at the same time: the other one stored it
            return await self._replay(session, stored, fingerprint)
        assert session.sender is not None
        session.sender.submit(stored)
        return await self._result(session, stored)

    async def _replay(self, session: Session, earlier: OutboxItem, fingerprint: str) -> SendResult:
        if earlier.fingerprint != fingerprint:
            raise IdempotencyConflict(
                f"idempotency key {earlier.idempotency_key!r} was already used for another message "
                f"({earlier.message_id}); use a new key for new content"
            )
        return await self._result(session, earlier)

    async def _result(self, session: Session, item: OutboxItem) -> SendResult:
        """What ``message.send`` answers: the final outcome if known within ``send_wait_s``, else queued."""
        assert session.sender is not None
        waiter = session.sender.waiter(item.message_id) if item.status == "queued" else None
        if waiter is not None and session.state.status is Status.CONNECTED:
            try:
                item = await asyncio.wait_for(asyncio.shield(waiter), self._settings.send_wait_s)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if not waiter.cancelled():
                    raise  # this command itself was cancelled (its connection closed)
                # The session was deleted or logged out while we waited: its events say what became of it.
        if item.status == "failed":
            if item.reason == "not_on_whatsapp":
                raise NotOnWhatsApp(f"{Jid.parse(item.chat).user} is not on WhatsApp (message {item.message_id})")
            raise SendFailed(f"WhatsApp refused message {item.message_id}: {item.reason}")
        if item.status == "sent":
            return SendResult(message_id=item.message_id, chat=item.chat, status="sent", timestamp=item.wa_timestamp)
        return SendResult(message_id=item.message_id, chat=item.chat, status="queued")

    async def mark_read(self, tenant: str, name: str, *, chat: str, message_ids: Sequence[str]) -> int:
        """Send read receipts for the given messages the session received; return how many those were
        (ids it never received, or no longer remembers, are ignored)."""
        session = self.get(tenant, name)
        if not session.paired:
            raise SessionNotPaired(f"session {name!r} is not linked to a phone yet: pair it first")
        jid = parse_recipient(chat)
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
        return len(ids)

    # -- engine events

    async def on_engine_event(self, session_id: str, event: EngineEvent) -> None:
        """The engine sink. Returns once whatever the event changed is stored."""
        session = self._by_id.get(session_id)
        if session is None:
            log.debug("event %s for unknown session %s dropped", type(event).__name__, session_id)
            return
        match event:
            case MessageIn():
                await self._on_message(session, event)
            case ReceiptIn():
                events = [
                    self._event(
                        session,
                        "message.status",
                        MessageStatusData(
                            message_id=mid, chat=event.chat, status=event.status, timestamp=event.timestamp
                        ),
                    )
                    for mid in event.message_ids
                ]
                await self._storage.append_events(events)
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
                await self._storage.append_events([self._event(session, "session.pair_code", data_pc)])
            case Paired():
                session.record.device = dict(event.device)
                session.record.me = msgspec.to_builtins(event.me)
                session.qr = session.qr_code = None
                await self._save(session)
                log.info("session %s paired", session.id)
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
                    session.sender.pacer.pause(event.until, event.reason)
                    session.sender.wake()
                data_sr = SessionRestrictedData(reason=event.reason, until=event.until)
                await self._storage.append_events([self._event(session, "session.restricted", data_sr)])

    async def _on_message(self, session: Session, event: MessageIn) -> None:
        name, data = describe_inbound(event)
        stored = await self._storage.record_inbound(
            session.id,
            event.message_id,
            event.chat,
            [self._event(session, name, data)],
            time.time(),
            sender=event.sender,
            kind=str(type(event.content).__struct_config__.tag),
        )
        if stored is not None and session.sender is not None and not event.status:
            session.sender.known_chats.add(event.chat)

    async def _on_failed(self, session: Session, event: Failed) -> None:
        if not session.state.can(Status.FAILED):
            return  # a late report about a session that was stopped meanwhile
        session.qr = session.qr_code = None
        session.record.want_running = event.retry_at is not None
        if not await self._set_status(
            session, Status.FAILED, event.reason, retry_at=event.retry_at, detail=event.detail
        ):
            return
        if event.retry_at is not None:
            loop = asyncio.get_running_loop()
            delay = max(0.0, event.retry_at - time.time())
            session.restart = loop.call_later(delay, lambda: asyncio.ensure_future(self._restart(session)))

    async def _restart(self, session: Session) -> None:
        session.restart = None
        async with session.lock:
            if session.id in self._by_id and not session.state.running and session.record.want_running:
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
        await self._fail_pending(session, "logged_out")

    async def _fail_pending(self, session: Session, reason: str) -> None:
        if session.sender is not None:
            session.sender.forget_all()

        def failed_event(item: OutboxItem) -> NewEvent:
            data = MessageStatusData(
                message_id=item.message_id, chat=item.chat, status="failed", timestamp=int(time.time()), reason=reason
            )
            return self._event(session, "message.status", data)

        await self._storage.fail_pending(session.id, reason, failed_event)

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
            log.debug("session %s: ignoring %s while %s", session.id, status, old)
            return False
        changed = session.state.transition(status, reason)
        session.detail = detail
        if status is not old:
            session.since = time.time()
        events = list(extra)
        if changed:
            log.info(
                "session %s (tenant %s, name %r): %s -> %s%s%s",
                session.id,
                session.tenant,
                session.name,
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
        await self._storage.save_session(record, events)

    def _event(self, session: Session, name: str, data: Any) -> NewEvent:
        return NewEvent(session.tenant, session.name, name, encode(data))
