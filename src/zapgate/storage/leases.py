"""Leases: which gateway node runs each session, proven by a fencing token (``docs/scaling.md``).

Every session has one row in ``leases``. The node instance named in it, while ``expires_at`` (on the
**database's** clock) is in the future, is the only one allowed to run the session. ``epoch`` grows by one at
every change of holder: it is the fencing token. Every write a node makes for a session carries a
:class:`Fence` (session, node, epoch) and :func:`check_fence` refuses it, inside the same transaction, unless
the lease row still names that node and epoch; the check locks the lease row, so a takeover (which updates the
same row) is ordered strictly before or after the write. A paused or cut-off node therefore cannot change a
session it lost, whatever it believes.

A lease is taken only when it is free (released, or expired by the database's clock), so two nodes never hold
one at the same time. Holders renew all their leases in one statement every few seconds.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from .database import Conn, Database

__all__ = ["Fence", "KeepResult", "Lease", "LeaseLost", "LeaseStore", "Located", "NodeInfo", "check_fence"]

NODE_FORGET_AFTER_S = 3600.0
"""A node that stopped renewing is listed as dead for this long, then forgotten."""


@dataclass(frozen=True, slots=True)
class Fence:
    """A node's proof that it holds a session's lease; every write for the session carries it."""

    session_id: str
    node: str
    epoch: int


class LeaseLost(Exception):
    """A write carried a :class:`Fence` that is no longer current: the session moved to another node (or was
    released). Nothing of the write happened."""

    def __init__(self, session_id: str) -> None:
        super().__init__(f"session {session_id}: this node no longer holds its lease")
        self.session_id = session_id


def check_fence(conn: Conn, fence: Fence | None) -> None:
    """Raise :class:`LeaseLost` unless ``fence`` is current (inside the caller's transaction).

    The no-op ``UPDATE`` locks the lease row until the transaction ends (a plain ``SELECT`` would not): a node
    taking the session over waits for this transaction, or this one waits for the takeover and then fails."""
    if fence is None:
        return
    cur = conn.execute(
        "UPDATE leases SET epoch = epoch WHERE session_id = ? AND node = ? AND epoch = ?",
        (fence.session_id, fence.node, fence.epoch),
    )
    if cur.rowcount != 1:
        raise LeaseLost(fence.session_id)


@dataclass(frozen=True, slots=True)
class Lease:
    session_id: str
    node: str | None
    """The holder, or None when the lease was released."""
    epoch: int
    expires_in: float
    """Seconds until it expires, by the database's clock (negative: expired)."""

    @property
    def held(self) -> bool:
        return self.node is not None and self.expires_in > 0


@dataclass(frozen=True, slots=True)
class Located:
    """Where a session runs: its id, tenant and name, and its lease."""

    session_id: str
    tenant: str
    name: str
    lease: Lease


@dataclass(frozen=True, slots=True)
class NodeInfo:
    node: str
    """The instance id (a new one every time a gateway process starts)."""
    name: str
    started_at: float
    expires_in: float
    draining: bool

    @property
    def alive(self) -> bool:
        return self.expires_in > 0


@dataclass(frozen=True, slots=True)
class KeepResult:
    """What one renewal round learned."""

    held: dict[str, int]
    """The leases this node still holds (session id → epoch), now renewed."""
    nodes: list[NodeInfo]
    """Every node known (alive or recently dead)."""
    sessions: int
    """Sessions in the cluster (one lease each)."""
    free: int
    """Leases nobody holds now (released, or expired)."""


def _lease(row: Sequence[Any]) -> Lease:
    return Lease(session_id=row[0], node=row[1], epoch=int(row[2]), expires_in=float(row[3]))


def _located(row: Sequence[Any]) -> Located:
    return Located(row[0], row[1], row[2], _lease((row[0], row[3], row[4], row[5])))


class LeaseStore:
    """The lease and node tables (see the module docs). Times are the database's clock."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._now = db.now_sql

    async def cluster_id(self) -> str:
        """The cluster's id (made by the first node that asks): it names the cluster's channels on the bus."""
        candidate = secrets.token_hex(6)

        def op(conn: Conn) -> tuple[str, list[Any]]:
            # One row, whoever writes first (nodes that start together race to it).
            conn.execute("INSERT INTO cluster (one, id) VALUES (1, ?) ON CONFLICT (one) DO NOTHING", (candidate,))
            (found,) = conn.execute("SELECT id FROM cluster WHERE one = 1").fetchone()
            return str(found), []

        return await self.db.write(op)

    async def ensure(self) -> int:
        """Give every session without one a free lease (sessions stored before leases existed); return how many."""

        def op(conn: Conn) -> tuple[int, list[Any]]:
            cur = conn.execute(
                "INSERT INTO leases (session_id, node, epoch, expires_at) SELECT id, NULL, 0, 0 FROM sessions "
                "WHERE NOT EXISTS (SELECT 1 FROM leases WHERE leases.session_id = sessions.id) "
                "ON CONFLICT (session_id) DO NOTHING"
            )
            return max(cur.rowcount, 0), []

        return await self.db.write(op)

    async def keep(self, node: str, name: str, started_at: float, ttl: float, *, draining: bool) -> KeepResult:
        """One renewal round: say this node is alive (or draining), renew every lease it holds, and read the
        state of the cluster, in one transaction."""
        now = self._now

        def op(conn: Conn) -> tuple[KeepResult, list[Any]]:
            conn.execute(
                f"INSERT INTO nodes (node, name, started_at, expires_at, draining) VALUES (?, ?, ?, {now} + ?, ?) "  # noqa: S608
                "ON CONFLICT (node) DO UPDATE SET expires_at = excluded.expires_at, draining = excluded.draining",
                (node, name, started_at, ttl, int(draining)),
            )
            held = conn.execute(
                f"UPDATE leases SET expires_at = {now} + ? WHERE node = ? RETURNING session_id, epoch", (ttl, node)  # noqa: S608
            ).fetchall()
            conn.execute(f"DELETE FROM nodes WHERE expires_at < {now} - ?", (NODE_FORGET_AFTER_S,))  # noqa: S608
            nodes = conn.execute(
                f"SELECT node, name, started_at, expires_at - {now}, draining FROM nodes ORDER BY started_at, node"  # noqa: S608
            ).fetchall()
            total, free = conn.execute(
                f"SELECT count(*), coalesce(sum(CASE WHEN node IS NULL OR expires_at < {now} THEN 1 ELSE 0 END), 0) "  # noqa: S608
                "FROM leases"
            ).fetchone()
            result = KeepResult(
                held={str(r[0]): int(r[1]) for r in held},
                nodes=[NodeInfo(r[0], r[1], float(r[2]), float(r[3]), bool(r[4])) for r in nodes],
                sessions=int(total),
                free=int(free),
            )
            return result, []

        return await self.db.write(op)

    async def claim(self, node: str, ttl: float, limit: int) -> dict[str, int]:
        """Take up to ``limit`` free leases (sessions that want to run first); return session id → new epoch."""
        now = self._now

        def op(conn: Conn) -> tuple[dict[str, int], list[Any]]:
            rows = conn.execute(
                f"UPDATE leases SET node = ?, epoch = epoch + 1, expires_at = {now} + ? "  # noqa: S608
                "WHERE session_id IN ("
                "  SELECT l.session_id FROM leases l JOIN sessions s ON s.id = l.session_id "
                f"  WHERE l.node IS NULL OR l.expires_at < {now} "
                "  ORDER BY s.want_running DESC, l.expires_at, l.session_id LIMIT ?"
                f") AND (node IS NULL OR expires_at < {now}) RETURNING session_id, epoch",
                (node, ttl, limit),
            ).fetchall()
            return {str(r[0]): int(r[1]) for r in rows}, []

        return await self.db.write(op) if limit > 0 else {}

    async def release(self, fences: Iterable[Fence]) -> int:
        """Give leases up (graceful hand-over): others may take them at once. Returns how many were released."""
        rows = [(f.session_id, f.node, f.epoch) for f in fences]

        def op(conn: Conn) -> tuple[int, list[Any]]:
            released = 0
            for row in rows:
                cur = conn.execute(
                    "UPDATE leases SET node = NULL, expires_at = 0 WHERE session_id = ? AND node = ? AND epoch = ?",
                    row,
                )
                released += cur.rowcount
            return released, []

        return await self.db.write(op) if rows else 0

    async def leave(self, node: str) -> None:
        """Forget this node (it stopped cleanly)."""

        def op(conn: Conn) -> tuple[None, list[Any]]:
            conn.execute("DELETE FROM nodes WHERE node = ?", (node,))
            return None, []

        await self.db.write(op)

    async def locate(self, tenant: str, name: str) -> Located | None:
        """The session named ``name`` of ``tenant`` and its lease, or None when there is no such session."""
        return await self._locate("s.tenant = ? AND s.name = ?", (tenant, name))

    async def locate_id(self, session_id: str) -> Located | None:
        return await self._locate("s.id = ?", (session_id,))

    async def sessions_of(self, tenant: str) -> list[Located]:
        """Every session of ``tenant`` with its lease, by name."""

        def op(conn: Conn) -> list[Located]:
            return [_located(r) for r in conn.execute(self._located_sql("s.tenant = ? ORDER BY s.name"), (tenant,))]

        return await self.db.read(op)

    def _located_sql(self, where: str) -> str:
        return (
            "SELECT s.id, s.tenant, s.name, l.node, coalesce(l.epoch, 0), "  # noqa: S608
            f"coalesce(l.expires_at, 0) - {self._now} FROM sessions s LEFT JOIN leases l ON l.session_id = s.id "
            f"WHERE {where}"
        )

    async def _locate(self, where: str, params: tuple[str, ...]) -> Located | None:
        sql = self._located_sql(where)

        def op(conn: Conn) -> Located | None:
            row = conn.execute(sql, params).fetchone()
            return _located(row) if row is not None else None

        return await self.db.read(op)

    async def leases(self) -> list[Lease]:
        """Every lease (for ``/healthz`` and tests)."""
        now = self._now

        def op(conn: Conn) -> list[Lease]:
            rows = conn.execute(
                f"SELECT session_id, node, epoch, expires_at - {now} FROM leases ORDER BY session_id"  # noqa: S608
            )
            return [_lease(r) for r in rows]

        return await self.db.read(op)
