"""One session's runtime in the gateway: its stored record, state machine, current QR code and sender."""

from __future__ import annotations

import asyncio

import msgspec

from ..protocol import Me, QrState
from ..storage import Fence, SessionRecord
from .sender import Sender
from .state import SessionState, Status

__all__ = ["Session"]


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
        self.restart: asyncio.Task[None] | None = None
        """The pending automatic restart after a passing failure (cancelled by any lifecycle command)."""
        self.fence: Fence | None = None
        """What this node's writes for the session carry, in a cluster (``docs/scaling.md``)."""
        self.leaving = False
        """Being handed over to another node: new commands go there."""

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
    def label(self) -> str:
        """How logs name the session: ``session acme/main (ses_…)``, so that engine logs by id can be mapped."""
        return f"session {self.record.tenant}/{self.record.name} ({self.record.id})"

    def cancel_restart(self) -> None:
        if self.restart is not None:
            self.restart.cancel()
            self.restart = None

    @property
    def paired(self) -> bool:
        return self.record.device is not None

    @property
    def me(self) -> Me | None:
        return msgspec.convert(self.record.me, Me) if self.record.me else None
