"""The webhook tables: endpoints with their cursors and leases, delivery attempts, dead letters.

An endpoint's cursor (``cursor_seq``) only moves by compare-and-set (:meth:`WebhookStore.advance`): the writer
names the cursor it started from, so a ``webhook.replay`` that moved it meanwhile wins and the deliverer starts
again from there. With several nodes the same write also checks the endpoint's lease (node and epoch, the
fencing token): a node that lost the endpoint cannot move its cursor any more.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import NewEvent, StoredEvent
from .chats import AppendEvents
from .database import Conn, Database

__all__ = ["AttemptRecord", "DeadLetterRecord", "WebhookFence", "WebhookRecord", "WebhookStore"]

ATTEMPTS_KEPT = 1000
"""Newest attempts kept per endpoint."""


@dataclass(slots=True)
class WebhookRecord:
    id: str
    tenant: str
    url: str
    secret: str
    created_at: float
    updated_at: float
    events: list[str] = field(default_factory=list)
    sessions: list[str] = field(default_factory=list)
    previous_secret: str | None = None
    previous_secret_until: float | None = None
    description: str = ""
    enabled: bool = True
    disabled_reason: str | None = None
    cursor: int = 0
    failing_since: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_attempt_at: float | None = None
    pending: int = 0
    """Events of the tenant after the cursor (read only)."""
    node: str | None = None
    """Several nodes: the node that holds the endpoint's lease (read only)."""
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    seq: int
    event: str
    attempt: int
    outcome: str
    """``delivered``, ``retry``, ``dead`` or ``ping``."""
    latency_ms: float
    at: float
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetterRecord:
    event: StoredEvent
    attempts: int
    dead_at: float
    status: int | None = None
    error: str | None = None
    redeliver: bool = False


@dataclass(frozen=True, slots=True)
class WebhookFence:
    """A node's proof that it delivers to an endpoint (several nodes only)."""

    node: str
    epoch: int


_WEBHOOK_COLUMNS = (
    "w.id, w.tenant, w.url, w.secret, w.created_at, w.updated_at, w.events, w.sessions, w.previous_secret, "
    "w.previous_secret_until, w.description, w.enabled, w.disabled_reason, w.cursor_seq, w.failing_since, "
    "w.last_status, w.last_error, w.last_attempt_at, "
    "coalesce((SELECT t.seq FROM tenant_seq t WHERE t.tenant = w.tenant), 0) - w.cursor_seq, w.node, w.epoch"
)


_DEAD_LETTERS = (
    "SELECT w.tenant, d.seq, d.session, d.event, d.data, d.ts, d.attempts, d.dead_at, d.status, d.error, "
    "d.redeliver FROM webhook_dead_letters d JOIN webhooks w ON w.id = d.webhook_id WHERE d.webhook_id = ?"
)


def _record(row: Sequence[Any]) -> WebhookRecord:
    v = list(row)
    return WebhookRecord(
        id=v[0],
        tenant=v[1],
        url=v[2],
        secret=v[3],
        created_at=float(v[4]),
        updated_at=float(v[5]),
        events=json.loads(v[6]),
        sessions=json.loads(v[7]),
        previous_secret=v[8],
        previous_secret_until=v[9],
        description=v[10],
        enabled=bool(v[11]),
        disabled_reason=v[12],
        cursor=int(v[13]),
        failing_since=v[14],
        last_status=v[15],
        last_error=v[16],
        last_attempt_at=v[17],
        pending=max(0, int(v[18])),
        node=v[19],
        epoch=int(v[20]),
    )


def _insert_attempt(conn: Conn, webhook_id: str, a: AttemptRecord) -> None:
    conn.execute(
        "INSERT INTO webhook_attempts (webhook_id, seq, event, attempt, outcome, status, latency_ms, error, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (webhook_id, a.seq, a.event, a.attempt, a.outcome, a.status, a.latency_ms, a.error, a.at),
    )


def _fence_sql(fence: WebhookFence | None) -> tuple[str, tuple[Any, ...]]:
    return (" AND node = ? AND epoch = ?", (fence.node, fence.epoch)) if fence is not None else ("", ())


class WebhookStore:
    def __init__(self, db: Database, append_events: AppendEvents) -> None:
        self.db = db
        self._append = append_events
        """The store's :func:`~.store.append_events` (passed in: the store imports this module)."""

    # -- endpoints (commands)

    async def add(self, record: WebhookRecord, *, limit: int, from_seq: int | None) -> WebhookRecord | None:
        """Store a new endpoint whose cursor is the tenant's newest ``seq`` (or ``from_seq - 1``); None when the
        tenant has ``limit`` endpoints already."""

        def op(conn: Conn) -> tuple[WebhookRecord | None, list[StoredEvent]]:
            (count,) = conn.execute("SELECT count(*) FROM webhooks WHERE tenant = ?", (record.tenant,)).fetchone()
            if int(count) >= limit:
                return None, []
            row = conn.execute("SELECT seq FROM tenant_seq WHERE tenant = ?", (record.tenant,)).fetchone()
            newest = int(row[0]) if row else 0
            record.cursor = newest if from_seq is None else min(newest, max(0, from_seq - 1))
            record.pending = newest - record.cursor
            conn.execute(
                "INSERT INTO webhooks (id, tenant, url, events, sessions, secret, description, enabled, cursor_seq, "
                "created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)",
                (
                    record.id,
                    record.tenant,
                    record.url,
                    json.dumps(record.events),
                    json.dumps(record.sessions),
                    record.secret,
                    record.description,
                    record.cursor,
                    record.created_at,
                    record.updated_at,
                ),
            )
            return record, []

        return await self.db.write(op)

    async def of_tenant(self, tenant: str) -> list[WebhookRecord]:
        def op(conn: Conn) -> list[WebhookRecord]:
            rows = conn.execute(
                f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks w WHERE w.tenant = ? ORDER BY w.created_at, w.id",  # noqa: S608
                (tenant,),
            )
            return [_record(r) for r in rows]

        return await self.db.read(op)

    async def get(self, webhook_id: str, tenant: str | None = None) -> WebhookRecord | None:
        """The endpoint (of ``tenant``, when given: another tenant's is None)."""

        def op(conn: Conn) -> WebhookRecord | None:
            row = conn.execute(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks w WHERE w.id = ?", (webhook_id,)).fetchone()  # noqa: S608
            found = _record(row) if row else None
            return found if found is not None and (tenant is None or found.tenant == tenant) else None

        return await self.db.read(op)

    async def update(self, tenant: str, webhook_id: str, changes: dict[str, Any]) -> WebhookRecord | None:
        """Apply ``changes`` (column → value; lists are stored as JSON) to the tenant's endpoint; None when it has
        no such endpoint. Re-enabling clears ``disabled_reason`` and ``failing_since``."""
        values = {k: json.dumps(v) if isinstance(v, list) else v for k, v in changes.items()}
        if values.get("enabled"):
            values.update(disabled_reason=None, failing_since=None)
        values["updated_at"] = time.time()
        sets = ", ".join(f"{column} = ?" for column in values)

        def op(conn: Conn) -> tuple[WebhookRecord | None, list[StoredEvent]]:
            cur = conn.execute(
                f"UPDATE webhooks SET {sets} WHERE id = ? AND tenant = ?",  # noqa: S608
                (*values.values(), webhook_id, tenant),
            )
            if cur.rowcount == 0:
                return None, []
            row = conn.execute(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks w WHERE w.id = ?", (webhook_id,)).fetchone()  # noqa: S608
            return _record(row), []

        return await self.db.write(op)

    async def delete(self, tenant: str, webhook_id: str) -> bool:
        def op(conn: Conn) -> tuple[bool, list[StoredEvent]]:
            cur = conn.execute("DELETE FROM webhooks WHERE id = ? AND tenant = ?", (webhook_id, tenant))
            if cur.rowcount == 0:
                return False, []
            conn.execute("DELETE FROM webhook_attempts WHERE webhook_id = ?", (webhook_id,))
            conn.execute("DELETE FROM webhook_dead_letters WHERE webhook_id = ?", (webhook_id,))
            return True, []

        return await self.db.write(op)

    async def attempts(self, webhook_id: str, limit: int) -> list[AttemptRecord]:
        def op(conn: Conn) -> list[AttemptRecord]:
            rows = conn.execute(
                "SELECT seq, event, attempt, outcome, latency_ms, at, status, error FROM webhook_attempts "
                "WHERE webhook_id = ? ORDER BY position DESC LIMIT ?",
                (webhook_id, limit),
            )
            return [AttemptRecord(int(r[0]), r[1], int(r[2]), r[3], float(r[4]), float(r[5]), r[6], r[7]) for r in rows]

        return await self.db.read(op)

    async def dead_letters(
        self, webhook_id: str, limit: int, *, redeliver_only: bool = False
    ) -> list[DeadLetterRecord]:
        sql = _DEAD_LETTERS + (" AND d.redeliver = 1" if redeliver_only else "") + " ORDER BY d.seq LIMIT ?"

        def op(conn: Conn) -> list[DeadLetterRecord]:
            rows = conn.execute(sql, (webhook_id, limit))
            return [
                DeadLetterRecord(
                    StoredEvent(r[0], int(r[1]), r[2], r[3], bytes(r[4]), float(r[5])),
                    int(r[6]),
                    float(r[7]),
                    r[8],
                    r[9],
                    bool(r[10]),
                )
                for r in rows
            ]

        return await self.db.read(op)

    async def queue_redelivery(self, webhook_id: str, seq: int | None) -> int:
        """Mark the dead letter of ``seq`` (or every one) to be sent again; return how many."""
        where, params = (" AND seq = ?", (webhook_id, seq)) if seq is not None else ("", (webhook_id,))

        def op(conn: Conn) -> tuple[int, list[StoredEvent]]:
            cur = conn.execute(f"UPDATE webhook_dead_letters SET redeliver = 1 WHERE webhook_id = ?{where}", params)  # noqa: S608
            return cur.rowcount, []

        return await self.db.write(op)

    # -- delivery

    async def record_attempt(
        self, webhook_id: str, attempt: AttemptRecord, *, failing: bool, fence: WebhookFence | None = None
    ) -> bool:
        """An attempt that did not move the cursor (a failure to retry, or a ping); False when the endpoint is
        gone (or, with ``fence``, no longer this node's)."""
        check, params = _fence_sql(fence)
        failing_sql = "coalesce(failing_since, ?)" if failing else "failing_since"
        failing_params: tuple[Any, ...] = (attempt.at,) if failing else ()

        def op(conn: Conn) -> tuple[bool, list[StoredEvent]]:
            cur = conn.execute(
                f"UPDATE webhooks SET failing_since = {failing_sql}, last_status = ?, last_error = ?, "  # noqa: S608
                f"last_attempt_at = ? WHERE id = ?{check}",
                (*failing_params, attempt.status, attempt.error, attempt.at, webhook_id, *params),
            )
            if cur.rowcount == 0:
                return False, []
            _insert_attempt(conn, webhook_id, attempt)
            return True, []

        return await self.db.write(op)

    async def advance(
        self,
        webhook_id: str,
        *,
        expected: int,
        cursor: int,
        attempt: AttemptRecord | None = None,
        dead: DeadLetterRecord | None = None,
        fence: WebhookFence | None = None,
    ) -> bool:
        """Move the cursor from ``expected`` to ``cursor``, recording the attempt that delivered (or gave up on)
        the event and its dead letter; False (nothing written) when the cursor is no longer ``expected`` (a
        replay moved it), the endpoint is gone, or ``fence`` is no longer current."""
        check, params = _fence_sql(fence)

        def op(conn: Conn) -> tuple[bool, list[StoredEvent]]:
            if attempt is None:
                cur = conn.execute(
                    f"UPDATE webhooks SET cursor_seq = ? WHERE id = ? AND cursor_seq = ?{check}",  # noqa: S608
                    (cursor, webhook_id, expected, *params),
                )
            else:
                failing = "NULL" if attempt.outcome == "delivered" else "failing_since"
                cur = conn.execute(
                    f"UPDATE webhooks SET cursor_seq = ?, failing_since = {failing}, last_status = ?, "  # noqa: S608
                    f"last_error = ?, last_attempt_at = ? WHERE id = ? AND cursor_seq = ?{check}",
                    (cursor, attempt.status, attempt.error, attempt.at, webhook_id, expected, *params),
                )
            if cur.rowcount == 0:
                return False, []
            if attempt is not None:
                _insert_attempt(conn, webhook_id, attempt)
            if dead is not None:
                _insert_dead_letter(conn, webhook_id, dead)
            return True, []

        return await self.db.write(op)

    async def redelivered(
        self, webhook_id: str, seq: int, attempt: AttemptRecord, dead: DeadLetterRecord | None
    ) -> None:
        """The outcome of sending a dead letter again: gone from the dead letters when delivered, back (not
        queued any more) with ``dead``'s figures otherwise."""

        def op(conn: Conn) -> tuple[None, list[StoredEvent]]:
            conn.execute("DELETE FROM webhook_dead_letters WHERE webhook_id = ? AND seq = ?", (webhook_id, seq))
            if dead is not None:
                _insert_dead_letter(conn, webhook_id, dead)
            conn.execute(
                "UPDATE webhooks SET last_status = ?, last_error = ?, last_attempt_at = ? WHERE id = ?",
                (attempt.status, attempt.error, attempt.at, webhook_id),
            )
            _insert_attempt(conn, webhook_id, attempt)
            return None, []

        await self.db.write(op)

    async def disable(
        self, webhook_id: str, reason: str, event: NewEvent, *, fence: WebhookFence | None = None
    ) -> list[StoredEvent]:
        """Disable the endpoint and append ``event`` (``webhook.disabled``), atomically."""
        check, params = _fence_sql(fence)

        def op(conn: Conn) -> tuple[list[StoredEvent], list[StoredEvent]]:
            cur = conn.execute(
                "UPDATE webhooks SET enabled = 0, disabled_reason = ?, updated_at = ? "  # noqa: S608
                f"WHERE id = ? AND enabled = 1{check}",
                (reason, time.time(), webhook_id, *params),
            )
            if cur.rowcount == 0:
                return [], []
            stored = self._append(conn, [event], time.time())
            return stored, stored

        return await self.db.write(op)

    async def enabled(self) -> list[WebhookRecord]:
        """Every enabled endpoint (single node: this node delivers to all of them)."""

        def op(conn: Conn) -> list[WebhookRecord]:
            rows = conn.execute(f"SELECT {_WEBHOOK_COLUMNS} FROM webhooks w WHERE w.enabled = 1 ORDER BY w.id")  # noqa: S608
            return [_record(r) for r in rows]

        return await self.db.read(op)

    async def prune(self) -> int:
        """Forget attempts beyond the newest :data:`ATTEMPTS_KEPT` of each endpoint."""

        def op(conn: Conn) -> tuple[int, list[StoredEvent]]:
            removed = 0
            for (webhook_id,) in conn.execute("SELECT id FROM webhooks").fetchall():
                cur = conn.execute(
                    "DELETE FROM webhook_attempts WHERE webhook_id = ? AND position <= (SELECT position FROM "
                    "webhook_attempts WHERE webhook_id = ? ORDER BY position DESC LIMIT 1 OFFSET ?)",
                    (webhook_id, webhook_id, ATTEMPTS_KEPT),
                )
                removed += max(cur.rowcount, 0)
            conn.execute("DELETE FROM webhook_attempts WHERE webhook_id NOT IN (SELECT id FROM webhooks)")
            return removed, []

        return await self.db.write(op)

    # -- several nodes

    async def keep_leases(self, node: str, ttl: float) -> dict[str, int]:
        """Renew the endpoint leases ``node`` holds and take free ones up to its fair share (enabled endpoints
        divided by the nodes alive, rounded up), or let go of those beyond it (a node joined: it takes them);
        return endpoint id → epoch of every lease it holds now."""
        now = self.db.now_sql

        def op(conn: Conn) -> tuple[dict[str, int], list[StoredEvent]]:
            held = conn.execute(
                f"UPDATE webhooks SET expires_at = {now} + ? WHERE node = ? AND enabled = 1 RETURNING id, epoch",  # noqa: S608
                (ttl, node),
            ).fetchall()
            conn.execute("UPDATE webhooks SET node = NULL, expires_at = 0 WHERE node = ? AND enabled = 0", (node,))
            (enabled,) = conn.execute("SELECT count(*) FROM webhooks WHERE enabled = 1").fetchone()
            (alive,) = conn.execute(f"SELECT count(*) FROM nodes WHERE expires_at > {now}").fetchone()  # noqa: S608
            share = -(-int(enabled) // max(1, int(alive)))
            if len(held) > share:
                extra = sorted(str(r[0]) for r in held)[share:]
                conn.executemany(
                    "UPDATE webhooks SET node = NULL, expires_at = 0 WHERE id = ? AND node = ?",
                    [(webhook_id, node) for webhook_id in extra],
                )
                held = [r for r in held if str(r[0]) not in extra]
            claimed = conn.execute(
                f"UPDATE webhooks SET node = ?, epoch = epoch + 1, expires_at = {now} + ? WHERE id IN ("  # noqa: S608
                f"  SELECT id FROM webhooks WHERE enabled = 1 AND (node IS NULL OR expires_at < {now}) "
                "  ORDER BY id LIMIT ?"
                f") AND enabled = 1 AND (node IS NULL OR expires_at < {now}) RETURNING id, epoch",
                (node, ttl, max(0, share - len(held))),
            ).fetchall()
            return {str(r[0]): int(r[1]) for r in [*held, *claimed]}, []

        return await self.db.write(op)

    async def release_leases(self, node: str) -> None:
        def op(conn: Conn) -> tuple[None, list[StoredEvent]]:
            conn.execute("UPDATE webhooks SET node = NULL, expires_at = 0 WHERE node = ?", (node,))
            return None, []

        await self.db.write(op)


def _insert_dead_letter(conn: Conn, webhook_id: str, dead: DeadLetterRecord) -> None:
    e = dead.event
    conn.execute(
        "INSERT INTO webhook_dead_letters (webhook_id, seq, session, event, data, ts, attempts, status, error, "
        "dead_at, redeliver) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0) ON CONFLICT (webhook_id, seq) DO UPDATE SET "
        "attempts = excluded.attempts, status = excluded.status, error = excluded.error, dead_at = excluded.dead_at, "
        "redeliver = 0",
        (webhook_id, e.seq, e.session, e.event, e.data, e.ts, dead.attempts, dead.status, dead.error, dead.dead_at),
    )
