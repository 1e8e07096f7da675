"""Tenants, their tokens and quotas, and the audit log, over any :class:`~.database.Database`.

Quotas are checked inside the transaction that would go past them (:func:`check_session_quota`,
:func:`check_queue_quota`): the check first updates the tenant's row, which locks it until the commit, so two
nodes (or two writes of one group commit) never both take the last place.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from ..errors import QuotaExceeded, TenantExists
from .base import AuditEntry, StoredEvent, TenantQuotas, TenantRecord, TokenRecord
from .database import Conn, Database

__all__ = [
    "QUEUED_SIZE",
    "QUOTA_FIELDS",
    "TenantStore",
    "check_session_quota",
    "counted_queued",
    "effective_quotas",
    "queued_usage",
    "release_queued",
    "reserve_queued",
]

QUOTA_FIELDS = ("max_sessions", "max_queued_messages", "max_queued_bytes")

_TOKEN_COLUMNS = "t.id, t.tenant, t.label, t.created_at, t.revoked_at, t.scopes, t.sessions, t.expires_at"
_TENANT_COLUMNS = "name, created_at, disabled_at, max_sessions, max_queued_messages, max_queued_bytes"
_INSERT_TENANT = (
    "INSERT INTO tenants (name, created_at, max_sessions, max_queued_messages, max_queued_bytes) "
    "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO NOTHING RETURNING " + _TENANT_COLUMNS
)
_AUDIT_COLUMNS = "id, ts, token_id, tenant, session, command, outcome, detail"


def _token(row: Sequence[Any]) -> TokenRecord:
    sessions = json.loads(row[6]) if row[6] is not None else None
    return TokenRecord(
        id=row[0],
        tenant=row[1],
        label=row[2],
        created_at=row[3],
        revoked_at=row[4],
        scopes=tuple(s for s in str(row[5]).split(",") if s),
        sessions=tuple(sessions) if sessions is not None else None,
        expires_at=row[7],
    )


def _tenant(row: Sequence[Any]) -> TenantRecord:
    return TenantRecord(
        name=row[0],
        created_at=row[1],
        disabled_at=row[2],
        quotas=TenantQuotas(max_sessions=row[3], max_queued_messages=row[4], max_queued_bytes=row[5]),
    )


def _audit(row: Sequence[Any]) -> AuditEntry:
    return AuditEntry(*row)


def _ensure_tenant(conn: Conn, name: str, now: float) -> None:
    conn.execute("INSERT INTO tenants (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", (name, now))


def effective_quotas(own: TenantQuotas, defaults: TenantQuotas) -> TenantQuotas:
    """The limits that apply to a tenant: its own where set, else the gateway's defaults (0: no limit)."""
    return TenantQuotas(
        *(getattr(own, f) if getattr(own, f) is not None else getattr(defaults, f) for f in QUOTA_FIELDS)
    )


_LOCK_TENANT = (
    "INSERT INTO tenant_seq (tenant, seq) VALUES (?, 0) ON CONFLICT (tenant) DO UPDATE SET seq = tenant_seq.seq"
)


def _lock_tenant(conn: Conn, tenant: str) -> None:
    """Lock the tenant's event counter row (``tenant_seq``) until the transaction ends.

    It is the lock every write that appends a tenant's events takes anyway. Writes that also change the tenant's
    row (quota checks and counts) take it first, so two transactions on two nodes that touch both rows wait for
    each other in one order and cannot deadlock (taking the ``tenants`` row first did: one transaction held the
    counter and waited for the tenant row, the other the reverse). A no-op update takes the lock on PostgreSQL;
    SQLite has one writer anyway."""
    conn.execute(_LOCK_TENANT, (tenant,))


def _lock_limits(conn: Conn, tenant: str, defaults: TenantQuotas) -> TenantQuotas:
    """The tenant's limits, read under :func:`_lock_tenant`."""
    _lock_tenant(conn, tenant)
    row = conn.execute(
        "SELECT max_sessions, max_queued_messages, max_queued_bytes FROM tenants WHERE name = ?", (tenant,)
    ).fetchone()
    own = TenantQuotas(*row) if row else TenantQuotas()
    return effective_quotas(own, defaults)


def check_session_quota(conn: Conn, tenant: str, name: str, defaults: TenantQuotas) -> QuotaExceeded | None:
    """The refusal when the tenant cannot have one more session, ``name`` (inside its transaction; a session of
    that name that exists already is not counted: creating it again is another error), else None.

    The checks return refusals rather than raise them: a write that raises makes the database run its whole group
    commit again, write by write, and a tenant at its quota must not slow down everyone else's writes."""
    limit = _lock_limits(conn, tenant, defaults).max_sessions
    if not limit:
        return None
    (count,) = conn.execute("SELECT count(*) FROM sessions WHERE tenant = ? AND name != ?", (tenant, name)).fetchone()
    if int(count) < limit:
        return None
    return QuotaExceeded(
        f"tenant {tenant!r} has {count} sessions, its limit (max_sessions); delete one first", "max_sessions", limit
    )


QUEUED_SIZE = "length(content) + coalesce(length(extra), 0)"
"""The size a queued message counts for (its stored content and send options; a media file counts by its
reference, not its bytes), in SQL over an ``outbox`` row."""


def queued_usage(conn: Conn, tenant: str) -> tuple[int, int]:
    """(messages, bytes) the tenant has queued, not yet sent: its counters, which every change of a queued
    message keeps in the same transaction (:func:`reserve_queued`, :func:`release_queued`)."""
    row = conn.execute("SELECT queued_messages, queued_bytes FROM tenants WHERE name = ?", (tenant,)).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def counted_queued(conn: Conn, tenant: str) -> tuple[int, int]:
    """(messages, bytes) queued, counted from the outbox itself (what the counters must always equal)."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(length(o.content) + coalesce(length(o.extra), 0)), 0) "
        "FROM outbox o JOIN sessions s ON s.id = o.session_id WHERE s.tenant = ? AND o.status = 'queued'",
        (tenant,),
    ).fetchone()
    return int(row[0]), int(row[1])


def reserve_queued(conn: Conn, tenant: str, defaults: TenantQuotas, size: int, count: int = 1) -> QuotaExceeded | None:
    """Count ``count`` more queued messages of ``size`` bytes in all for the tenant, unless that would pass one
    of its limits: then the refusal (and nothing is counted). One conditional update in the common case, which
    also locks the tenant's row until the commit, so concurrent sends (on several nodes too) cannot pass a limit
    together."""
    params = (
        count,
        size,
        tenant,
        defaults.max_queued_messages or 0,
        count,
        defaults.max_queued_messages or 0,
        defaults.max_queued_bytes or 0,
        size,
        defaults.max_queued_bytes or 0,
    )
    _lock_tenant(conn, tenant)
    for _ in range(2):
        row = conn.execute(
            "UPDATE tenants SET queued_messages = queued_messages + ?, queued_bytes = queued_bytes + ? "
            "WHERE name = ? "
            "AND (coalesce(max_queued_messages, ?) = 0 OR queued_messages + ? <= coalesce(max_queued_messages, ?)) "
            "AND (coalesce(max_queued_bytes, ?) = 0 OR queued_bytes + ? <= coalesce(max_queued_bytes, ?)) "
            "RETURNING 1",
            params,
        ).fetchone()
        if row is not None:
            return None
        limits = conn.execute(
            "SELECT max_queued_messages, max_queued_bytes, queued_messages, queued_bytes FROM tenants WHERE name = ?",
            (tenant,),
        ).fetchone()
        if limits is not None:
            return _queue_refusal(tenant, defaults, limits, size)
        _ensure_tenant(conn, tenant, time.time())  # a tenant known only by its sessions (made before tenants were)
    raise AssertionError("unreachable: the tenant's row exists now")


def _queue_refusal(tenant: str, defaults: TenantQuotas, row: Sequence[Any], size: int) -> QuotaExceeded:
    own = TenantQuotas(max_queued_messages=row[0], max_queued_bytes=row[1])
    limits = effective_quotas(own, defaults)
    count, used = int(row[2]), int(row[3])
    if limits.max_queued_messages and count >= limits.max_queued_messages:
        return QuotaExceeded(
            f"tenant {tenant!r} has {count} messages waiting to be sent, its limit (max_queued_messages); "
            "retry once some are sent",
            "max_queued_messages",
            limits.max_queued_messages,
        )
    limit = limits.max_queued_bytes or 0
    return QuotaExceeded(
        f"tenant {tenant!r} has {used} bytes of messages waiting to be sent; this one ({size} bytes) would pass "
        f"its limit of {limit} (max_queued_bytes); retry once some are sent",
        "max_queued_bytes",
        limit,
    )


def release_queued(conn: Conn, session_id: str, count: int, size: int) -> None:
    """``count`` messages of ``size`` bytes in all, of the session, are no longer queued (sent, failed, deleted)."""
    if count:
        (tenant,) = conn.execute("SELECT tenant FROM sessions WHERE id = ?", (session_id,)).fetchone() or (None,)
        if tenant is None:
            return
        release_tenant_queued(conn, tenant, count, size)


def release_tenant_queued(conn: Conn, tenant: str, count: int, size: int, *, locked: bool = False) -> None:
    """``count`` messages of ``size`` bytes in all, of the tenant, are no longer queued. ``locked``: the
    transaction holds the tenant's ``tenant_seq`` row already (:func:`_lock_tenant`)."""
    if count:
        if not locked:
            _lock_tenant(conn, tenant)
        conn.execute(
            "UPDATE tenants SET queued_messages = queued_messages - ?, queued_bytes = queued_bytes - ? WHERE name = ?",
            (count, size, tenant),
        )


class TenantStore:
    """Tenants, tokens and the audit log (the gateway's :attr:`Storage.tenants`)."""

    def __init__(self, db: Database) -> None:
        self._read = db.read
        self._write = db.write

    # -- tenants

    async def create_tenant(self, name: str, now: float, quotas: TenantQuotas | None = None) -> TenantRecord:
        """Create a tenant, with its own ``quotas`` if given; :class:`TenantExists` if there is one of that name."""
        quotas = quotas or TenantQuotas()
        values = (name, now, quotas.max_sessions, quotas.max_queued_messages, quotas.max_queued_bytes)

        def op(conn: Conn) -> tuple[TenantRecord, list[StoredEvent]]:
            row = conn.execute(_INSERT_TENANT, values).fetchone()
            if row is None:
                raise TenantExists(f"tenant {name!r} exists already")
            return _tenant(row), []

        return await self._write(op)

    async def get_tenant(self, name: str) -> TenantRecord | None:
        def op(conn: Conn) -> TenantRecord | None:
            row = conn.execute(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name = ?", (name,)).fetchone()  # noqa: S608
            return _tenant(row) if row else None

        return await self._read(op)

    async def list_tenants(self) -> list[TenantRecord]:
        def op(conn: Conn) -> list[TenantRecord]:
            return [_tenant(r) for r in conn.execute(f"SELECT {_TENANT_COLUMNS} FROM tenants ORDER BY name")]  # noqa: S608

        return await self._read(op)

    async def update_tenant(
        self, name: str, *, disabled_at: float | bool | None = False, quotas: dict[str, int | None] | None = None
    ) -> TenantRecord | None:
        """Change a tenant: ``disabled_at`` (a time, or None to enable; False leaves it) and the quotas named in
        ``quotas`` (None: back to the default). The tenant as it is now, or None if there is no such tenant."""
        changes: list[tuple[str, Any]] = []
        if disabled_at is not False:
            changes.append(("disabled_at", disabled_at))
        for field, value in (quotas or {}).items():
            if field not in QUOTA_FIELDS:
                raise ValueError(f"not a quota: {field}")
            changes.append((field, value))

        def op(conn: Conn) -> tuple[TenantRecord | None, list[StoredEvent]]:
            if changes:
                assignments = ", ".join(f"{column} = ?" for column, _ in changes)
                conn.execute(
                    f"UPDATE tenants SET {assignments} WHERE name = ?",  # noqa: S608
                    (*(value for _, value in changes), name),
                )
            row = conn.execute(f"SELECT {_TENANT_COLUMNS} FROM tenants WHERE name = ?", (name,)).fetchone()  # noqa: S608
            return (_tenant(row) if row else None), []

        return await self._write(op)

    async def disabled_tenants(self) -> set[str]:
        def op(conn: Conn) -> set[str]:
            return {str(r[0]) for r in conn.execute("SELECT name FROM tenants WHERE disabled_at IS NOT NULL")}

        return await self._read(op)

    async def usage(self, tenant: str) -> tuple[int, int, int]:
        """(sessions, queued messages, queued bytes) of the tenant now."""

        def op(conn: Conn) -> tuple[int, int, int]:
            (sessions,) = conn.execute("SELECT count(*) FROM sessions WHERE tenant = ?", (tenant,)).fetchone()
            return (int(sessions), *queued_usage(conn, tenant))

        return await self._read(op)

    # -- tokens

    async def add_token(self, record: TokenRecord, token_hash: bytes) -> None:
        """Store a token (its tenant is created if it does not exist yet)."""
        sessions = json.dumps(list(record.sessions)) if record.sessions is not None else None

        def op(conn: Conn) -> tuple[None, list[StoredEvent]]:
            _ensure_tenant(conn, record.tenant, record.created_at)
            conn.execute(
                "INSERT INTO tokens (id, tenant, hash, label, created_at, scopes, sessions, expires_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.tenant,
                    token_hash,
                    record.label,
                    record.created_at,
                    ",".join(record.scopes),
                    sessions,
                    record.expires_at,
                ),
            )
            return None, []

        await self._write(op)

    async def find_token(self, token_id: str) -> tuple[TokenRecord, bytes, bool] | None:
        """A token by id, revoked or not, with its hash and whether its tenant is disabled."""

        def op(conn: Conn) -> tuple[TokenRecord, bytes, bool] | None:
            row = conn.execute(
                f"SELECT {_TOKEN_COLUMNS}, t.hash, n.disabled_at FROM tokens t "  # noqa: S608
                "LEFT JOIN tenants n ON n.name = t.tenant WHERE t.id = ?",
                (token_id,),
            ).fetchone()
            return (_token(row), bytes(row[8]), row[9] is not None) if row else None

        return await self._read(op)

    async def list_tokens(self, tenant: str | None = None) -> list[TokenRecord]:
        def op(conn: Conn) -> list[TokenRecord]:
            sql = f"SELECT {_TOKEN_COLUMNS} FROM tokens t"  # noqa: S608
            rows = (
                conn.execute(sql + " WHERE t.tenant = ? ORDER BY t.created_at, t.id", (tenant,))
                if tenant
                else conn.execute(sql + " ORDER BY t.tenant, t.created_at, t.id")
            )
            return [_token(r) for r in rows]

        return await self._read(op)

    async def revoke_token(self, token_id: str, now: float) -> TokenRecord | None:
        """Revoke a live token; its record (revoked), or None when there is no such token or it was revoked."""

        def op(conn: Conn) -> tuple[TokenRecord | None, list[StoredEvent]]:
            cur = conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL", (now, token_id))
            if cur.rowcount == 0:
                return None, []
            row = conn.execute(f"SELECT {_TOKEN_COLUMNS} FROM tokens t WHERE t.id = ?", (token_id,)).fetchone()  # noqa: S608
            return _token(row), []

        return await self._write(op)

    async def refused_tokens(self, token_ids: Sequence[str], now: float) -> dict[str, str]:
        """Which of ``token_ids`` may no longer be used, and why: ``revoked``, ``expired``, ``tenant_disabled`` (or
        ``unknown`` for an id not in the database)."""
        ids = list(token_ids)

        def op(conn: Conn) -> dict[str, str]:
            refused = dict.fromkeys(ids, "unknown")
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    f"SELECT t.id, t.revoked_at, t.expires_at, n.disabled_at FROM tokens t "  # noqa: S608
                    f"LEFT JOIN tenants n ON n.name = t.tenant WHERE t.id IN ({marks})",
                    chunk,
                )
                for token_id, revoked_at, expires_at, disabled_at in rows:
                    if revoked_at is not None:
                        refused[token_id] = "revoked"
                    elif expires_at is not None and expires_at <= now:
                        refused[token_id] = "expired"
                    elif disabled_at is not None:
                        refused[token_id] = "tenant_disabled"
                    else:
                        del refused[token_id]
            return refused

        return await self._read(op)

    # -- audit log

    async def audit(
        self,
        *,
        ts: float,
        token_id: str | None,
        tenant: str | None,
        session: str | None,
        command: str,
        outcome: str,
        detail: str | None = None,
    ) -> None:
        def op(conn: Conn) -> tuple[None, list[StoredEvent]]:
            conn.execute(
                "INSERT INTO audit (ts, token_id, tenant, session, command, outcome, detail) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (ts, token_id, tenant, session, command, outcome, detail),
            )
            return None, []

        await self._write(op)

    async def list_audit(
        self, *, tenant: str | None, after: int | None, limit: int, before: int | None = None
    ) -> list[AuditEntry]:
        """Audit entries, oldest first: those with ``id > after`` (the oldest ``limit``), or without ``after`` the
        newest ``limit``; ``before`` keeps only those with ``id < before`` (paging back)."""

        def op(conn: Conn) -> list[AuditEntry]:
            conditions: list[str] = []
            params: list[object] = []
            for sql, value in (("tenant = ?", tenant), ("id > ?", after), ("id < ?", before)):
                if value is not None:
                    conditions.append(sql)
                    params.append(value)
            where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
            if after is not None:
                sql = f"SELECT {_AUDIT_COLUMNS} FROM audit {where} ORDER BY id LIMIT ?"  # noqa: S608
                return [_audit(r) for r in conn.execute(sql, (*params, limit))]
            sql = f"SELECT {_AUDIT_COLUMNS} FROM audit {where} ORDER BY id DESC LIMIT ?"  # noqa: S608
            return [_audit(r) for r in reversed(conn.execute(sql, (*params, limit)).fetchall())]

        return await self._read(op)

    async def prune_audit(self, before: float) -> int:
        def op(conn: Conn) -> tuple[int, list[StoredEvent]]:
            return conn.execute("DELETE FROM audit WHERE ts < ?", (before,)).rowcount, []

        return await self._write(op)
