"""Sessions coming to and leaving this node (several nodes, ``docs/scaling.md``): the session manager's part
that the lease keeper drives.

A single gateway never calls these: it owns every session from start to close. In a cluster a session arrives
with :meth:`SessionMoves.adopt` (this node took its lease) and leaves with :meth:`SessionMoves.relinquish` (it
lost the lease, or hands the session over); a write refused for a stale fence makes it leave at once
(:meth:`SessionMoves.lost`).
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Sequence

import msgspec

from ..background import BackgroundTasks
from ..engines.base import Engine
from ..protocol import Me, OutboxState, SessionInfo
from ..storage import SessionRecord, Storage
from .identities import Identities
from .ownership import NotOwner, Ownership
from .session import Session
from .state import Status

__all__ = ["SessionMoves"]

log = logging.getLogger("zapgate.sessions")


class SessionMoves(abc.ABC):
    """Mixed into :class:`~.manager.SessionManager`, which provides the state below."""

    _storage: Storage
    _engine: Engine
    _ownership: Ownership
    _by_name: dict[tuple[str, str], Session]
    _by_id: dict[str, Session]
    _tasks: BackgroundTasks
    fenced_writes: int
    identities: Identities

    @abc.abstractmethod
    async def _restore(self, sessions: Sequence[Session]) -> None:
        """Prepare the sessions and reopen those that want to run."""

    @abc.abstractmethod
    async def _resume_downloads(self, session_ids: set[str]) -> None:
        """Take up the unfinished downloads of received files of these sessions."""

    @property
    def clustered(self) -> bool:
        return self._ownership.node is not None

    def runs(self, tenant: str, name: str) -> Session | None:
        """The session if it runs here and may take commands now (ready, not being handed over, lease valid)."""
        session = self._by_name.get((tenant, name))
        if session is None or session.sender is None or session.leaving or not self._ownership.valid(session.id):
            return None
        return session

    async def adopt(self, claimed: dict[str, int]) -> None:
        """Run these sessions here: this node just took their leases (session id → epoch)."""
        records = await asyncio.gather(*(self._storage.load_session(session_id) for session_id in claimed))
        sessions = []
        for session_id, record in zip(claimed, records, strict=True):
            if record is None:  # deleted meanwhile
                self._ownership.forget(session_id)
                continue
            if session_id in self._by_id:
                await self.relinquish([session_id], "reacquired")
            session = Session(record)
            session.fence = self._ownership.fence(session_id)
            sessions.append(session)
        await self._restore(sessions)
        await self._resume_downloads({s.id for s in sessions})
        if sessions:
            log.info("now running %d more sessions (%d here)", len(sessions), len(self._by_id))

    async def relinquish(self, session_ids: Sequence[str], reason: str) -> None:
        """Stop these sessions here at once, writing nothing: they belong to another node now (or will)."""
        gone = []
        for session_id in session_ids:
            session = self._by_id.pop(session_id, None)
            if session is None:
                continue
            self._by_name.pop((session.tenant, session.name), None)
            self.identities.forget(session_id)  # the next holder reads what was learned from storage
            session.cancel_restart()
            gone.append(session)

        async def stop(session: Session) -> None:
            try:
                await self._engine.stop(session.id)
            except Exception:
                log.exception("%s: stopping it in the engine failed", session.label)
            if session.sender is not None:
                await session.sender.close()

        await asyncio.gather(*(stop(s) for s in gone))
        if gone:
            log.info("stopped %d sessions here (%s)", len(gone), reason)

    def lost(self, session: Session) -> NotOwner:
        """A write for ``session`` was refused: another node holds it. Stop it here; the error to raise."""
        self.fenced_writes += 1
        log.warning("%s: a write was refused, another node runs it now; stopping it here", session.label)
        self._ownership.forget(session.id)
        if self._by_id.get(session.id) is session and not self._tasks.closed:
            self._tasks.spawn(self.relinquish([session.id], "lease_lost"), name=f"relinquish-{session.id}")
        return NotOwner(f"session {session.name!r} moved to another node")

    @staticmethod
    def stored_info(record: SessionRecord) -> SessionInfo:
        """What is known of a session no node runs right now: what was last stored."""
        return SessionInfo(
            session=record.name,
            status=Status(record.status).wire,
            reason=record.reason,
            paired=record.device is not None,
            me=msgspec.convert(record.me, Me) if record.me else None,
            qr=None,
            created_at=record.created_at,
            since=record.updated_at,
            outbox=OutboxState(queued=0),
            pacing=None,
        )
