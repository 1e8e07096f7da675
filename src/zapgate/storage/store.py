"""The gateway's durable state, one implementation over any :class:`~.database.Database` (SQLite or PostgreSQL).

Every operation is atomic. Events are appended inside the same transaction as the change they report (a
session status, a sent message, an inbound message) with per-tenant sequence numbers taken from the
``tenant_seq`` row of the tenant in that transaction, and handed to the event listener only after the commit,
in ``seq`` order: a client never sees an event that a crash could take back, and two nodes writing for one
tenant get strictly increasing numbers without gaps (the row lock orders their commits).

Writes for one session take an optional :class:`~.leases.Fence`: with several nodes, the write is refused with
:class:`~.leases.LeaseLost` (and changes nothing) unless the writing node still holds the session's lease.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import QuotaExceeded
from .base import (
    EventListener,
    InboundRecord,
    NewEvent,
    OutboxItem,
    QueuedMessage,
    SessionRecord,
    StoredEvent,
    TenantQuotas,
)
from .chats import ChatStore, StoredMessage, note_edit, note_messages
from .database import Conn, Database
from .identities import IdentityStore
from .leases import Fence, LeaseLost, LeaseStore, check_fence
from .media import MediaRecord, MediaStore, insert_media
from .tenants import (
    QUEUED_SIZE,
    TenantStore,
    check_session_quota,
    release_queued,
    release_tenant_queued,
    reserve_queued,
)
from .webhooks import WebhookStore

__all__ = ["InboundRequest", "MessageIdTaken", "SessionExists", "Storage"]


class SessionExists(Exception):
    """Another node created a session with this tenant and name at the same moment."""


class MessageIdTaken(Exception):
    """A message to send was given an id that a stored message has already (two ids drawn in the same millisecond
    met: :meth:`~zapgate.engines.base.Engine.new_message_id`); nothing was stored, and the sender draws another."""

    def __init__(self, message_id: str) -> None:
        super().__init__(f"message id {message_id} is taken")
        self.message_id = message_id


def _session_values(record: SessionRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.tenant,
        record.name,
        record.status,
        record.reason,
        json.dumps(record.me) if record.me else None,
        json.dumps(record.device) if record.device else None,
        int(record.want_running),
        record.created_at,
        record.updated_at,
    )


def _session(row: Sequence[Any]) -> SessionRecord:
    return SessionRecord(
        id=row[0],
        tenant=row[1],
        name=row[2],
        status=row[3],
        reason=row[4],
        me=json.loads(row[5]) if row[5] else None,
        device=json.loads(row[6]) if row[6] else None,
        want_running=bool(row[7]),
        created_at=row[8],
        updated_at=row[9],
    )


_OUTBOX_COLUMNS = (
    "message_id, session_id, chat, content, created_at, reply_to, idempotency_key, fingerprint, status, reason, "
    "wa_timestamp, position, extra, text"
)


def _outbox(row: Sequence[Any]) -> OutboxItem:
    *fields, extra, text = row
    if fields[3] is None:  # a text accepted by zapgate 0.1, before contents had kinds
        fields[3] = json.dumps({"kind": "text", "text": text}).encode()
    return OutboxItem(*fields, extra=bytes(extra) if extra is not None else None)  # type: ignore[misc]


ROWS_PER_STATEMENT = 64
"""Most outbox rows one multi-row statement inserts or updates."""

_OUTBOX_ROW = "(?, ?, ?, '', ?, ?, ?, ?, ?, 'queued', ?, ?)"
_OUTCOME_ROW = "(CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS TEXT))"


@functools.cache
def _enqueue_sql(rows: int) -> str:
    """Insert ``rows`` queued messages; the answer names those inserted (a taken message id is not)."""
    return (
        "INSERT INTO outbox (message_id, session_id, chat, text, content, extra, reply_to, idempotency_key, "  # noqa: S608
        f"fingerprint, status, created_at, media_id) VALUES {', '.join([_OUTBOX_ROW] * rows)} "
        "ON CONFLICT (message_id) DO NOTHING RETURNING message_id, position"
    )


@functools.cache
def _finish_sql(rows: int) -> str:
    """Record ``rows`` outcomes of queued messages (``finished_at``, then per row: message id, status, reason,
    WhatsApp's timestamp, chat); the answer names the messages that were queued, with the size they counted for."""
    return (
        "UPDATE outbox SET status = v.column2, reason = v.column3, wa_timestamp = v.column4, finished_at = ?, "  # noqa: S608
        f"chat = v.column5 FROM (VALUES {', '.join([_OUTCOME_ROW] * rows)}) AS v "
        f"WHERE outbox.message_id = v.column1 AND outbox.status = 'queued' RETURNING outbox.message_id, {QUEUED_SIZE}"
    )


def _chunks(count: int) -> list[tuple[int, int]]:
    """``(start, size)`` of the statements that take ``count`` rows, in order: sizes are powers of two up to
    :data:`ROWS_PER_STATEMENT`, so that a few statement texts serve every batch (each text is prepared once and
    kept in the connection's statement cache)."""
    chunks = []
    start = 0
    while start < count:
        size = min(ROWS_PER_STATEMENT, 1 << ((count - start).bit_length() - 1))
        chunks.append((start, size))
        start += size
    return chunks


def append_events(
    conn: Conn, events: Sequence[NewEvent], now: float, released: dict[str, list[int]] | None = None
) -> list[StoredEvent]:
    """Append ``events`` with the next sequence numbers of their tenants (inside the caller's transaction).

    The tenants' ``tenant_seq`` rows are taken in sorted tenant order. ``released``: tenant → [count, size] of
    queued messages that left the queue, counted off each tenant's ``tenants`` row right after its
    ``tenant_seq`` row is taken (the order :func:`~.tenants.release_queued` keeps)."""
    counts: dict[str, int] = {}
    for e in events:
        counts[e.tenant] = counts.get(e.tenant, 0) + 1
    next_seq: dict[str, int] = {}
    for tenant in sorted(counts.keys() | (released or {}).keys()):
        count = counts.get(tenant, 0)
        if count:
            (last,) = conn.execute(
                "INSERT INTO tenant_seq (tenant, seq) VALUES (?, ?) "
                "ON CONFLICT (tenant) DO UPDATE SET seq = tenant_seq.seq + excluded.seq RETURNING seq",
                (tenant, count),
            ).fetchone()
            next_seq[tenant] = int(last) - count + 1
        if released and tenant in released:
            release_tenant_queued(conn, tenant, *released[tenant], locked=bool(count))
    if not events:
        return []
    stored = []
    for e in events:
        seq = next_seq[e.tenant]
        next_seq[e.tenant] = seq + 1
        stored.append(StoredEvent(e.tenant, seq, e.session, e.event, e.data, now))
    conn.executemany(
        "INSERT INTO events (tenant, seq, session, event, data, ts) VALUES (?, ?, ?, ?, ?, ?)",
        [(s.tenant, s.seq, s.session, s.event, s.data, s.ts) for s in stored],
    )
    return stored


@dataclass(slots=True)
class InboundRequest:
    """A received message to remember, with its events (:meth:`Storage.submit_inbound`)."""

    session_id: str
    message_id: str
    chat: str
    events: tuple[NewEvent, ...]
    now: float
    sender: str | None
    kind: str | None
    media: MediaRecord | None
    fence: Fence | None
    message: StoredMessage | None
    edit: tuple[str, str] | None = None


class _Fenced(Protocol):
    @property
    def fence(self) -> Fence | None: ...


def _stale_fences(conn: Conn, requests: Sequence[_Fenced]) -> dict[Fence, Exception]:
    """Check each distinct fence of a batch once, in session order (lease rows are locked sorted); the refusal of
    each fence that no longer holds."""
    refused: dict[Fence, Exception] = {}
    for fence in sorted({r.fence for r in requests if r.fence is not None}, key=lambda f: f.session_id):
        try:
            check_fence(conn, fence)
        except LeaseLost as exc:
            refused[fence] = exc
    return refused


def _add_contacts(conn: Conn, rows: list[tuple[str, str, float]], *, we_wrote_first: bool) -> None:
    """Remember (session, chat, first seen at) contacts not known yet; ``we_wrote_first``: the session wrote first."""
    if rows:
        conn.executemany(
            "INSERT INTO contacts (session_id, chat, first_seen_at, we_wrote_first) VALUES (?, ?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            [(*row, int(we_wrote_first)) for row in rows],
        )


def _note_history(conn: Conn, entries: list[tuple[str, StoredMessage | None]]) -> None:
    """Add the (session, message) entries that have a message to the sessions' chat history, all at once."""
    note_messages(conn, [(session_id, message) for session_id, message in entries if message is not None])


def _record_inbound_batch(
    conn: Conn, requests: list[InboundRequest]
) -> tuple[list[tuple[bool, Any]], list[StoredEvent]]:
    """Store received messages with ``executemany`` (see :meth:`Storage.submit_inbound`): one fence check per
    session, one look-up of the ids already received, then the new rows and their events."""
    outcomes: list[tuple[bool, Any]] = [(True, None)] * len(requests)
    refused: dict[Fence, Exception] = {}
    for fence in {r.fence for r in requests if r.fence is not None}:
        try:
            check_fence(conn, fence)
        except LeaseLost as exc:
            refused[fence] = exc
    ids_by_session: dict[str, list[str]] = {}
    for r in requests:
        if r.fence not in refused:
            ids_by_session.setdefault(r.session_id, []).append(r.message_id)
    seen: set[tuple[str, str]] = set()
    for session_id, ids in ids_by_session.items():
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT message_id FROM inbound WHERE session_id = ? AND message_id IN ({marks})",  # noqa: S608
                (session_id, *chunk),
            )
            seen.update((session_id, str(row[0])) for row in rows)
    new: list[int] = []
    for i, r in enumerate(requests):
        if r.fence is not None and r.fence in refused:
            outcomes[i] = (False, refused[r.fence])
        elif (r.session_id, r.message_id) not in seen:  # not received before, nor earlier in this batch
            seen.add((r.session_id, r.message_id))
            new.append(i)
    if not new:
        return outcomes, []
    fresh = [requests[i] for i in new]
    conn.executemany(
        "INSERT INTO inbound (session_id, message_id, received_at, chat, sender, kind) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT DO NOTHING",
        [(r.session_id, r.message_id, r.now, r.chat, r.sender, r.kind) for r in fresh],
    )
    contacts: dict[tuple[str, str], tuple[str, str, float]] = {}
    for r in fresh:
        contacts.setdefault((r.session_id, r.chat), (r.session_id, r.chat, r.now))
    _add_contacts(conn, list(contacts.values()), we_wrote_first=False)
    for r in fresh:
        if r.media is not None:
            insert_media(conn, r.media)
    _note_history(conn, [(r.session_id, r.message) for r in fresh])
    for r in fresh:
        if r.edit is not None:
            note_edit(conn, r.session_id, r.chat, *r.edit)
    stored = append_events(conn, [e for r in fresh for e in r.events], time.time())
    at = 0
    for i, r in zip(new, fresh, strict=True):
        outcomes[i] = (True, stored[at : at + len(r.events)])
        at += len(r.events)
    return outcomes, stored


@dataclass(slots=True)
class _Enqueue:
    item: OutboxItem
    fence: Fence | None
    quota: tuple[str, TenantQuotas] | None


def _enqueue_batch(conn: Conn, requests: list[_Enqueue]) -> tuple[list[tuple[bool, Any]], list[StoredEvent]]:
    """Store messages to send (see :meth:`Storage.enqueue_message`) together: one fence check per session, the
    idempotency keys looked up, one quota update per tenant (request by request only when the tenant's sum
    would pass a limit), then the outbox rows, up to :data:`ROWS_PER_STATEMENT` a statement (see :func:`_chunks`).
    Rows are locked in the order of :func:`_finish_batch`: lease rows (sorted), then the tenants' rows in sorted
    tenant order, then the messages' own rows."""
    outcomes: list[tuple[bool, Any]] = [(True, None)] * len(requests)
    refused = _stale_fences(conn, requests)
    todo: list[int] = []
    first_of_key: dict[tuple[str, str], int] = {}
    repeats: dict[int, int] = {}  # request → the earlier request of this batch with its idempotency key
    for i, r in enumerate(requests):
        item = r.item
        if r.fence is not None and r.fence in refused:
            outcomes[i] = (False, refused[r.fence])
            continue
        if item.idempotency_key is not None:
            key = (item.session_id, item.idempotency_key)
            if key in first_of_key:
                repeats[i] = first_of_key[key]
                continue
            row = conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE session_id = ? AND idempotency_key = ?",  # noqa: S608
                key,
            ).fetchone()
            if row:
                outcomes[i] = (True, (_outbox(row), False))
                continue
            first_of_key[key] = i
        todo.append(i)
    by_tenant: dict[str, list[int]] = {}
    for i in todo:
        quota = requests[i].quota
        if quota is not None:
            by_tenant.setdefault(quota[0], []).append(i)
    for tenant in sorted(by_tenant):
        members = by_tenant[tenant]
        defaults = requests[members[0]].quota[1]  # type: ignore[index]
        sizes = [requests[i].item.queued_size for i in members]
        if len(members) > 1 and reserve_queued(conn, tenant, defaults, sum(sizes), len(members)) is None:
            continue
        for i, size in zip(members, sizes, strict=True):
            refusal = reserve_queued(conn, tenant, defaults, size)
            if refusal is not None:
                outcomes[i] = (True, refusal)
                todo.remove(i)
    positions: dict[str, int] = {}  # message id → the position of the row inserted now
    for start, size in _chunks(len(todo)):
        params: list[Any] = []
        for i in todo[start : start + size]:
            item = requests[i].item
            params += (
                item.message_id,
                item.session_id,
                item.chat,
                item.content,
                item.extra,
                item.reply_to,
                item.idempotency_key,
                item.fingerprint,
                item.created_at,
                item.media_id,
            )
        rows = conn.execute(_enqueue_sql(size), params).fetchall()
        positions.update((str(message_id), int(position)) for message_id, position in rows)
    for i in todo:
        item = requests[i].item
        position = positions.pop(item.message_id, None)  # the first request with an id has its row, if any
        if position is None:  # another message has this id: nothing is stored, nor counted in the tenant's queue
            quota = requests[i].quota  # (every request still to insert with a quota was counted above)
            if quota is not None:
                release_tenant_queued(conn, quota[0], 1, item.queued_size, locked=True)
            outcomes[i] = (False, MessageIdTaken(item.message_id))
            continue
        item.position = position
        if item.media_id is not None:  # retention counts from the file's last use
            conn.execute("UPDATE media SET used_at = ? WHERE id = ?", (item.created_at, item.media_id))
        outcomes[i] = (True, (item, True))
    for i, earlier in repeats.items():
        ok, value = outcomes[earlier]
        if ok and isinstance(value, tuple):
            outcomes[i] = (True, (value[0], False))
        else:  # the first of the key was refused: so is this one, which asked for the same
            outcomes[i] = (ok, value)
    return outcomes, []


@dataclass(slots=True)
class _Finish:
    session_id: str
    message_id: str
    status: str
    reason: str | None
    wa_timestamp: int | None
    chat: str
    events: tuple[NewEvent, ...]
    new_contact_at: float | None
    fence: Fence | None
    message: StoredMessage | None
    edit: tuple[str, str] | None


@dataclass(slots=True)
class _MessageEvents:
    """Events about sent messages (receipts), written in the batch of the sends' outcomes (see
    :meth:`Storage.append_message_events`)."""

    events: tuple[NewEvent, ...]
    fence: Fence | None


def _finish_batch(
    conn: Conn, requests: list[_Finish | _MessageEvents]
) -> tuple[list[tuple[bool, Any]], list[StoredEvent]]:
    """Store the outcomes of sends (see :meth:`Storage.finish_message`) and the receipts that follow them
    together: one fence check per session, the outbox rows (up to :data:`ROWS_PER_STATEMENT` a statement; a second
    outcome of a message in the same batch alone, after its first), then the contacts, the chats' history, one quota
    update and one ``tenant_seq`` update per tenant, and every event with one ``executemany``, in the order
    they were asked for.

    Rows are locked in one order whatever the batch holds, so that two nodes writing at once wait for each
    other instead of deadlocking: the sessions' lease rows first (sorted), then the messages' own rows, and the
    tenants' rows last, in sorted tenant order (each tenant's ``tenant_seq`` row before its ``tenants`` row, as
    :func:`~.tenants.release_queued` takes them)."""
    outcomes: list[tuple[bool, Any]] = [(True, [])] * len(requests)
    refused = _stale_fences(conn, requests)
    now = time.time()
    kept: list[int] = []
    released: dict[str, list[int]] = {}  # tenant → [count, size]
    unknown_tenant: dict[str, list[int]] = {}  # session id → [count, size], when no event names its tenant
    finishing: list[_Finish] = []
    for i, r in enumerate(requests):
        if r.fence is not None and r.fence in refused:
            outcomes[i] = (False, refused[r.fence])
            continue
        kept.append(i)
        if isinstance(r, _Finish):
            finishing.append(r)
    # Each message's first outcome of the batch leaves the queue in a multi-row statement (its answer names the
    # rows that were queued, with their size); a second outcome of the same message follows, in order, alone.
    first: dict[str, _Finish] = {}
    for r in finishing:
        first.setdefault(r.message_id, r)
    firsts = list(first.values())
    sizes: dict[str, int] = {}  # message id → the size it counted for in the queue it left now
    for start, size in _chunks(len(firsts)):
        params: list[Any] = [now]
        for r in firsts[start : start + size]:
            params += (r.message_id, r.status, r.reason, r.wa_timestamp, r.chat)
        rows = conn.execute(_finish_sql(size), params).fetchall()
        sizes.update((str(message_id), int(queued)) for message_id, queued in rows)
    for r in finishing:
        if first.get(r.message_id) is r:
            queued_size = sizes.get(r.message_id)
        else:
            row = conn.execute(
                "UPDATE outbox SET status = ?, reason = ?, wa_timestamp = ?, finished_at = ?, chat = ? "  # noqa: S608
                f"WHERE message_id = ? AND status = 'queued' RETURNING {QUEUED_SIZE}",
                (r.status, r.reason, r.wa_timestamp, now, r.chat, r.message_id),
            ).fetchone()
            queued_size = None if row is None else int(row[0])
        if queued_size is None:  # an outcome of a message that had left the queue already
            conn.execute(
                "UPDATE outbox SET status = ?, reason = ?, wa_timestamp = ?, finished_at = ?, chat = ? "
                "WHERE message_id = ?",
                (r.status, r.reason, r.wa_timestamp, now, r.chat, r.message_id),
            )
        elif r.status != "queued":
            # The outbox row existed, so its session did too (deleting a session deletes its outbox rows).
            if r.events:
                counts = released.setdefault(r.events[0].tenant, [0, 0])
            else:
                counts = unknown_tenant.setdefault(r.session_id, [0, 0])
            counts[0] += 1
            counts[1] += queued_size
    if not kept:
        return outcomes, []
    fresh = [requests[i] for i in kept]
    outcomes_of = [r for r in fresh if isinstance(r, _Finish)]
    contacts = {
        (r.session_id, r.chat): (r.session_id, r.chat, r.new_contact_at)
        for r in outcomes_of
        if r.new_contact_at is not None
    }
    _add_contacts(conn, list(contacts.values()), we_wrote_first=True)
    _note_history(conn, [(r.session_id, r.message) for r in outcomes_of])
    for r in outcomes_of:
        if r.edit is not None:
            note_edit(conn, r.session_id, r.chat, *r.edit)
    for session_id, (count, size) in unknown_tenant.items():
        row = conn.execute("SELECT tenant FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is not None:
            counts = released.setdefault(str(row[0]), [0, 0])
            counts[0] += count
            counts[1] += size
    events = [e for r in fresh for e in r.events]
    stored = append_events(conn, events, now, released)
    at = 0
    for i, r in zip(kept, fresh, strict=True):
        outcomes[i] = (True, stored[at : at + len(r.events)])
        at += len(r.events)
    return outcomes, stored


class Storage:
    """Durable state of one gateway (or, with a shared PostgreSQL database, of a cluster)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._read = db.read
        self._write = db.write
        self.media = MediaStore(db)
        self.leases = LeaseStore(db)
        self.chats = ChatStore(db, append_events)
        self.identities = IdentityStore(db)
        self.tenants = TenantStore(db)
        self.webhooks = WebhookStore(db, append_events)

    @property
    def dialect(self) -> str:
        return self.db.dialect

    async def open(self) -> None:
        await self.db.open()

    async def close(self) -> None:
        await self.db.close()

    def set_event_listener(self, listener: EventListener) -> None:
        """Call ``listener`` with every batch of committed events, in ``seq`` order, on the event loop."""
        self.db.on_commit = listener

    # -- sessions

    async def list_sessions(self) -> list[SessionRecord]:
        def op(conn: Conn) -> list[SessionRecord]:
            rows = conn.execute(
                "SELECT id, tenant, name, status, reason, me, device, want_running, created_at, updated_at "
                "FROM sessions ORDER BY tenant, name"
            )
            return [_session(r) for r in rows]

        return await self._read(op)

    async def add_session(self, record: SessionRecord, *, quotas: TenantQuotas | None = None) -> None:
        """Store a new session; a session with the same id, or the same tenant and name, is an error. With
        ``quotas`` (the gateway's defaults), :class:`~zapgate.errors.QuotaExceeded` when the tenant has as many
        sessions as it may."""
        values = _session_values(record)

        def op(conn: Conn) -> tuple[QuotaExceeded | None, list[StoredEvent]]:
            refusal = check_session_quota(conn, record.tenant, record.name, quotas) if quotas is not None else None
            if refusal is not None:
                return refusal, []
            conn.execute(
                "INSERT INTO sessions (id, tenant, name, status, reason, me, device, want_running, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return None, []

        refusal = await self._write(op)
        if refusal is not None:
            raise refusal

    async def save_session(
        self, record: SessionRecord, events: Sequence[NewEvent] = (), *, fence: Fence | None = None
    ) -> list[StoredEvent]:
        """Update the stored session and append ``events``, atomically. A session that was deleted stays
        deleted: nothing is written and no event is appended (the result is empty)."""
        values = (
            record.status,
            record.reason,
            json.dumps(record.me) if record.me else None,
            json.dumps(record.device) if record.device else None,
            int(record.want_running),
            record.updated_at,
            record.id,
        )

        def op(conn: Conn) -> tuple[list[StoredEvent], list[StoredEvent]]:
            check_fence(conn, fence)
            cur = conn.execute(
                "UPDATE sessions SET status = ?, reason = ?, me = ?, device = ?, want_running = ?, updated_at = ? "
                "WHERE id = ?",
                values,
            )
            if cur.rowcount == 0:  # deleted meanwhile: it must not come back, nor speak again
                return [], []
            stored = append_events(conn, events, time.time())
            return stored, stored

        return await self._write(op)

    async def create_session(
        self,
        record: SessionRecord,
        events: Sequence[NewEvent] = (),
        *,
        owner: tuple[str, float] | None = None,
        quotas: TenantQuotas | None = None,
    ) -> Fence | None:
        """Store a new session; with ``owner`` (node, lease seconds) also its lease, held by that node, and
        return the node's fence. Raises :class:`SessionExists` when the tenant already has a session of that
        name (created by another node meanwhile), and with ``quotas`` :class:`~zapgate.errors.QuotaExceeded`
        like :meth:`add_session`."""
        values = _session_values(record)
        now_sql = self.db.now_sql

        def op(conn: Conn) -> tuple[Fence | QuotaExceeded | None, list[StoredEvent]]:
            refusal = check_session_quota(conn, record.tenant, record.name, quotas) if quotas is not None else None
            if refusal is not None:
                return refusal, []
            row = conn.execute(
                "INSERT INTO sessions (id, tenant, name, status, reason, me, device, want_running, created_at, "
                "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (tenant, name) DO NOTHING RETURNING id",
                values,
            ).fetchone()
            if row is None:
                raise SessionExists(f"{record.tenant}/{record.name}")
            fence = None
            if owner is not None:
                node, ttl = owner
                conn.execute(
                    f"INSERT INTO leases (session_id, node, epoch, expires_at) VALUES (?, ?, 1, {now_sql} + ?)",  # noqa: S608
                    (record.id, node, ttl),
                )
                fence = Fence(record.id, node, 1)
            stored = append_events(conn, events, time.time())
            return fence, stored

        result = await self._write(op)
        if isinstance(result, QuotaExceeded):
            raise result
        return result

    async def load_session(self, session_id: str) -> SessionRecord | None:
        def op(conn: Conn) -> SessionRecord | None:
            row = conn.execute(
                "SELECT id, tenant, name, status, reason, me, device, want_running, created_at, updated_at "
                "FROM sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            return _session(row) if row else None

        return await self._read(op)

    async def delete_session(
        self, record: SessionRecord, events: Sequence[NewEvent] = (), *, fence: Fence | None = None
    ) -> list[StoredEvent]:
        def op(conn: Conn) -> tuple[list[StoredEvent], list[StoredEvent]]:
            check_fence(conn, fence)
            count, size = conn.execute(
                f"SELECT count(*), coalesce(sum({QUEUED_SIZE}), 0) FROM outbox "  # noqa: S608
                "WHERE session_id = ? AND status = 'queued'",
                (record.id,),
            ).fetchone()
            release_queued(conn, record.id, int(count), int(size))  # before the session's row goes
            # messages name their chat by its number: they go before the chats that hold it
            conn.execute(
                "DELETE FROM messages WHERE chat_id IN (SELECT id FROM chats WHERE session_id = ?)", (record.id,)
            )
            for table, column in (
                ("sessions", "id"),
                ("outbox", "session_id"),
                ("inbound", "session_id"),
                ("contacts", "session_id"),
                ("chats", "session_id"),
                ("identities", "session_id"),
                ("media", "session_id"),
                ("leases", "session_id"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (record.id,))  # noqa: S608
            stored = append_events(conn, events, time.time())
            return stored, stored

        return await self._write(op)

    # -- events

    async def append_events(self, events: Sequence[NewEvent], *, fence: Fence | None = None) -> list[StoredEvent]:
        def op(conn: Conn) -> tuple[list[StoredEvent], list[StoredEvent]]:
            check_fence(conn, fence)
            stored = append_events(conn, events, time.time())
            return stored, stored

        return await self._write(op)

    async def append_message_events(
        self, events: Sequence[NewEvent], *, fence: Fence | None = None
    ) -> list[StoredEvent]:
        """Append events about sent messages (their receipts) like :meth:`append_events`, in the batch that
        stores the sends' outcomes (:meth:`finish_message`): written together with them, and never before the
        outcome of a message asked for earlier."""
        result: list[StoredEvent] = await self.db.submit_batched(
            "finish", _MessageEvents(tuple(events), fence), _finish_batch, inline=True
        )
        return result

    async def read_events(
        self,
        tenant: str,
        after: int,
        limit: int,
        *,
        sessions: Collection[str] | None = None,
        events: Collection[str] | None = None,
    ) -> list[StoredEvent]:
        """Up to ``limit`` events of ``tenant`` with ``seq > after``, oldest first; only those of ``sessions`` and
        named in ``events`` when they are given (None: any)."""
        where = "tenant = ? AND seq > ?"
        params: list[object] = [tenant, after]
        for column, wanted in (("session", sessions), ("event", events)):
            if wanted is not None:
                values = sorted(wanted)
                where += f" AND {column} IN ({','.join('?' * len(values))})" if values else " AND 1 = 0"
                params += values
        params.append(limit)

        def op(conn: Conn) -> list[StoredEvent]:
            rows = conn.execute(
                f"SELECT tenant, seq, session, event, data, ts FROM events WHERE {where} ORDER BY seq LIMIT ?",  # noqa: S608
                params,
            )
            return [StoredEvent(*r) for r in rows]

        return await self._read(op)

    async def tenant_seqs(self, tenants: Sequence[str] | None = None) -> dict[str, int]:
        """The newest ``seq`` handed out to each tenant (of ``tenants``, or all), pruned events included."""
        names = list(tenants) if tenants is not None else None

        def op(conn: Conn) -> dict[str, int]:
            if names is None:
                return {t: int(s) for t, s in conn.execute("SELECT tenant, seq FROM tenant_seq")}
            found: dict[str, int] = {}
            for start in range(0, len(names), 500):
                chunk = names[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(f"SELECT tenant, seq FROM tenant_seq WHERE tenant IN ({marks})", chunk)  # noqa: S608
                found.update({t: int(s) for t, s in rows})
            return found

        return await self._read(op)

    async def newest_event(self, tenant: str, session: str, event: str) -> bytes | None:
        """The ``data`` of the newest ``event`` of ``session`` still in the log, if any."""

        def op(conn: Conn) -> bytes | None:
            row = conn.execute(
                "SELECT data FROM events WHERE tenant = ? AND session = ? AND event = ? ORDER BY seq DESC LIMIT 1",
                (tenant, session, event),
            ).fetchone()
            return bytes(row[0]) if row else None

        return await self._read(op)

    async def event_bounds(self, tenant: str) -> tuple[int, int]:
        def op(conn: Conn) -> tuple[int, int]:
            row = conn.execute("SELECT min(seq), max(seq) FROM events WHERE tenant = ?", (tenant,)).fetchone()
            return (row[0] or 0, row[1] or 0)

        return await self._read(op)

    async def prune(self, now: float, *, event_max_age: float, event_keep: int, record_max_age: float) -> int:
        def op(conn: Conn) -> tuple[int, list[StoredEvent]]:
            removed = 0
            for tenant, newest in conn.execute("SELECT tenant, seq FROM tenant_seq").fetchall():
                # An enabled webhook endpoint keeps the events it has not delivered yet (docs/webhooks.md).
                (undelivered,) = conn.execute(
                    "SELECT min(cursor_seq) FROM webhooks WHERE tenant = ? AND enabled = 1", (tenant,)
                ).fetchone()
                keep_after = newest - event_keep if undelivered is None else min(newest - event_keep, undelivered)
                cur = conn.execute(
                    "DELETE FROM events WHERE tenant = ? AND seq <= ? AND ts < ?",
                    (tenant, keep_after, now - event_max_age),
                )
                removed += cur.rowcount
            conn.execute("DELETE FROM outbox WHERE status != 'queued' AND created_at < ?", (now - record_max_age,))
            conn.execute("DELETE FROM inbound WHERE received_at < ?", (now - record_max_age,))
            return removed, []

        return await self._write(op)

    # -- outgoing messages

    async def enqueue_message(
        self, item: OutboxItem, *, fence: Fence | None = None, quota: tuple[str, TenantQuotas] | None = None
    ) -> tuple[OutboxItem, bool]:
        """Store a message to send, unless one with its idempotency key is stored (then that one, and False).
        With ``quota`` (the tenant and the gateway's defaults), :class:`~zapgate.errors.QuotaExceeded` when one
        more queued message would pass the tenant's limits (nothing is stored then). :class:`MessageIdTaken` when
        a stored message has the item's id (nothing is stored, nor counted, then).

        Messages accepted together (many connections sending at once) are stored together: every one asked for
        before the next group commit starts is stored by one :func:`_enqueue_batch`."""
        result: tuple[OutboxItem, bool] | QuotaExceeded = await self.db.submit_batched(
            "enqueue", _Enqueue(item, fence, quota), _enqueue_batch, inline=True
        )
        if isinstance(result, QuotaExceeded):
            raise result
        return result

    async def find_message(self, session_id: str, idempotency_key: str) -> OutboxItem | None:
        def op(conn: Conn) -> OutboxItem | None:
            row = conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE session_id = ? AND idempotency_key = ?",  # noqa: S608
                (session_id, idempotency_key),
            ).fetchone()
            return _outbox(row) if row else None

        return await self._read(op)

    async def pending_messages(self, session_id: str) -> list[QueuedMessage]:
        """The session's queued messages in acceptance order, without their contents."""

        def op(conn: Conn) -> list[QueuedMessage]:
            rows = conn.execute(
                "SELECT message_id, chat, position FROM outbox WHERE session_id = ? AND status = 'queued' "
                "ORDER BY position",
                (session_id,),
            )
            return [QueuedMessage(str(r[0]), str(r[1]), int(r[2])) for r in rows]

        return await self._read(op)

    async def outbox_item(self, message_id: str) -> OutboxItem | None:
        """The whole stored message (content included), by id."""

        def op(conn: Conn) -> OutboxItem | None:
            row = conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE message_id = ?",  # noqa: S608
                (message_id,),
            ).fetchone()
            return _outbox(row) if row else None

        return await self._read(op)

    async def sent_by(self, session_id: str, message_ids: Sequence[str]) -> set[str]:
        """Which of ``message_ids`` the session itself sent (they are in its outbox)."""
        ids = list(message_ids)

        def op(conn: Conn) -> set[str]:
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT message_id FROM outbox WHERE session_id = ? AND message_id IN ({marks})",  # noqa: S608
                (session_id, *ids),
            )
            return {str(r[0]) for r in rows}

        return await self._read(op) if ids else set()

    def finish_message(
        self,
        item: OutboxItem,
        events: Sequence[NewEvent],
        *,
        new_contact_at: float | None,
        fence: Fence | None = None,
        message: StoredMessage | None = None,
        edit: tuple[str, str] | None = None,
    ) -> asyncio.Future[list[StoredEvent]]:
        """Store a send's outcome with its ``events``; ``message``: the sent message, for the chat's history;
        ``edit``: (message id, new text) when the sent message edits a stored one.

        Outcomes arriving together (many sessions sending at once) are written together: every one asked for
        before the next group commit starts is stored by one :func:`_finish_batch`."""
        # Read the mutable item now, not in the writer thread.
        request = _Finish(
            item.session_id,
            item.message_id,
            item.status,
            item.reason,
            item.wa_timestamp,
            item.chat,
            tuple(events),
            new_contact_at,
            fence,
            message,
            edit,
        )
        return self.db.submit_batched("finish", request, _finish_batch, inline=True)

    async def fail_pending(
        self,
        session_id: str,
        reason: str,
        make_event: Callable[[OutboxItem], NewEvent],
        *,
        keep: Collection[str] = (),
        fence: Fence | None = None,
    ) -> list[OutboxItem]:
        """Mark every queued message of the session but those in ``keep`` (message ids) failed with ``reason``,
        with the event ``make_event`` makes for each; return them, as failed."""

        def op(conn: Conn) -> tuple[list[OutboxItem], list[StoredEvent]]:
            check_fence(conn, fence)
            rows = conn.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE session_id = ? AND status = 'queued' "  # noqa: S608
                "ORDER BY position",
                (session_id,),
            ).fetchall()
            items = [it for it in map(_outbox, rows) if it.message_id not in keep]
            now = time.time()
            conn.executemany(
                "UPDATE outbox SET status = 'failed', reason = ?, finished_at = ? WHERE message_id = ?",
                [(reason, now, it.message_id) for it in items],
            )
            release_queued(conn, session_id, len(items), sum(it.queued_size for it in items))
            for it in items:
                it.status, it.reason = "failed", reason
            stored = append_events(conn, [make_event(it) for it in items], now)
            return items, stored

        return await self._write(op)

    # -- incoming messages and contacts

    def submit_inbound(
        self,
        session_id: str,
        message_id: str,
        chat: str,
        events: Sequence[NewEvent],
        now: float,
        *,
        sender: str | None = None,
        kind: str | None = None,
        media: MediaRecord | None = None,
        fence: Fence | None = None,
        message: StoredMessage | None = None,
        edit: tuple[str, str] | None = None,
    ) -> asyncio.Future[list[StoredEvent] | None]:
        """Queue a received message to be remembered with its events; the future resolves once they are durable
        (and published) with the stored events, or None when the message was received before. The row of its
        file, ``media``, is written in the same transaction, so the events may already name it; so is
        ``message``, its entry in the chat's history, and an ``edit`` (message id, new text) of a stored one.

        Messages arriving together (a burst, many sessions at once) are written together: every one queued
        before the next group commit starts is stored by one :func:`_record_inbound_batch`, in the order queued.
        Queuing needs no coroutine, so a caller may queue many and then wait for them all."""
        request = InboundRequest(
            session_id, message_id, chat, tuple(events), now, sender, kind, media, fence, message, edit
        )
        return self.db.submit_batched("inbound", request, _record_inbound_batch)

    def submit_inbound_many(
        self, requests: Sequence[InboundRequest]
    ) -> asyncio.Future[list[tuple[bool, list[StoredEvent] | Exception | None]]]:
        """Queue several received messages as :meth:`submit_inbound` queues one, in order, with one future for them
        all: it resolves with each one's outcome, ``(True, stored events or None)`` or ``(False, exception)``
        (an engine's batch of received messages costs one future, not one each)."""
        return self.db.submit_batched_many("inbound", requests, _record_inbound_batch)

    async def inbound_records(self, session_id: str, message_ids: Sequence[str]) -> dict[str, InboundRecord]:
        """What the session remembers of the given received messages, by id."""
        ids = list(message_ids)

        def op(conn: Conn) -> dict[str, InboundRecord]:
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT message_id, chat, sender, kind FROM inbound WHERE session_id = ? AND message_id IN ({marks})",  # noqa: S608
                (session_id, *ids),
            )
            return {str(r[0]): InboundRecord(str(r[0]), r[1], r[2], r[3]) for r in rows}

        return await self._read(op) if ids else {}

    async def known_inbound(self, session_id: str, message_ids: Sequence[str]) -> set[str]:
        ids = list(message_ids)

        def op(conn: Conn) -> set[str]:
            marks = ",".join("?" * len(ids))
            rows = conn.execute(
                f"SELECT message_id FROM inbound WHERE session_id = ? AND message_id IN ({marks})",  # noqa: S608
                (session_id, *ids),
            )
            return {r[0] for r in rows}

        return await self._read(op) if ids else set()

    async def load_contacts(self, session_id: str, since: float) -> tuple[set[str], list[float]]:
        def op(conn: Conn) -> tuple[set[str], list[float]]:
            rows = conn.execute(
                "SELECT chat, first_seen_at, we_wrote_first FROM contacts WHERE session_id = ?", (session_id,)
            ).fetchall()
            return {r[0] for r in rows}, sorted(r[1] for r in rows if r[2] and r[1] >= since)

        return await self._read(op)
