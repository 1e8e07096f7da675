"""Which sessions this node may run: the one question the session manager asks (``docs/scaling.md``).

A single gateway owns every session (:class:`SoleOwner`): no lease, no fence, nothing to see. In a cluster the
lease keeper (:class:`zapgate.cluster.keeper.LeaseKeeper`) answers: a session runs here only while this node
holds its lease, and every write for it carries the lease's fence.
"""

from __future__ import annotations

from typing import Protocol

from ..errors import SessionUnavailable
from ..storage import Fence

__all__ = ["NotOwner", "Ownership", "SoleOwner"]


class NotOwner(SessionUnavailable):
    """This node does not run the session (any more) and did nothing: find its owner and try again.

    Raised when a write was refused for a stale fence, and between nodes; should it reach a client, it reads as
    ``session_unavailable``."""


class Ownership(Protocol):
    @property
    def node(self) -> str | None:
        """This node's instance id in a cluster; None for a single gateway."""

    @property
    def ttl(self) -> float:
        """Seconds a lease lasts (for a session this node creates)."""

    def fence(self, session_id: str) -> Fence | None:
        """What writes for the session must carry (None: no fencing)."""

    def valid(self, session_id: str) -> bool:
        """True while this node may act for the session (connect it, send through it)."""

    def created(self, fence: Fence) -> None:
        """This node created a session together with its lease."""

    def forget(self, session_id: str) -> None:
        """The session is gone from this node (deleted, or a write for it was refused)."""


class SoleOwner:
    """A single gateway: it owns every session, unconditionally."""

    node: str | None = None
    ttl = 0.0

    def fence(self, session_id: str) -> Fence | None:
        return None

    def valid(self, session_id: str) -> bool:
        return True

    def created(self, fence: Fence) -> None:
        pass

    def forget(self, session_id: str) -> None:
        pass
