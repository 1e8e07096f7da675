"""The session state machine (pure, no I/O).

A session's ``status`` changes only through :meth:`SessionState.transition`, which checks the move
against :data:`TRANSITIONS` and returns what the clients must be told. ``docs/protocol.md`` draws the
same graph.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ..protocol.sessions import Status as WireStatus

__all__ = ["TRANSITIONS", "InvalidTransition", "SessionState", "Status"]


class Status(enum.StrEnum):
    STARTING = "starting"
    """Connecting to WhatsApp (with stored keys) or asking it for a pairing QR."""
    QR = "qr"
    """Waiting for a phone to scan the current QR code (or enter the pairing code)."""
    CONNECTED = "connected"
    """Linked and online: messages flow."""
    DISCONNECTED = "disconnected"
    """Linked but offline; the engine is reconnecting by itself."""
    LOGGED_OUT = "logged_out"
    """The phone unlinked the device (or WhatsApp did); a new pairing is needed."""
    FAILED = "failed"
    """Gave up (QR timeout, replaced stream, too many failures); ``session.start`` tries again."""
    STOPPED = "stopped"
    """Not running by request; the pairing is kept."""

    @property
    def wire(self) -> WireStatus:
        """The status as the protocol spells it (the same string, typed for the wire structs)."""
        return self.value


S = Status
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.STOPPED: frozenset({S.STARTING, S.LOGGED_OUT}),
    S.STARTING: frozenset({S.STARTING, S.QR, S.CONNECTED, S.DISCONNECTED, S.LOGGED_OUT, S.FAILED, S.STOPPED}),
    S.QR: frozenset({S.STARTING, S.CONNECTED, S.DISCONNECTED, S.FAILED, S.STOPPED}),
    S.CONNECTED: frozenset({S.DISCONNECTED, S.LOGGED_OUT, S.FAILED, S.STOPPED}),
    S.DISCONNECTED: frozenset({S.DISCONNECTED, S.STARTING, S.CONNECTED, S.LOGGED_OUT, S.FAILED, S.STOPPED}),
    S.LOGGED_OUT: frozenset({S.STARTING, S.STOPPED}),
    S.FAILED: frozenset({S.STARTING, S.STOPPED, S.LOGGED_OUT}),
}

#: Statuses in which the engine is (or should be) working on the session.
RUNNING = frozenset({S.STARTING, S.QR, S.CONNECTED, S.DISCONNECTED})


class InvalidTransition(Exception):
    """A status change the state machine does not allow: a bug in the caller, never a user error."""


@dataclass(slots=True)
class SessionState:
    """Status of one session plus the reason for it."""

    status: Status = Status.STOPPED
    reason: str | None = None

    def can(self, new: Status) -> bool:
        return new in TRANSITIONS[self.status]

    def transition(self, new: Status, reason: str | None = None) -> bool:
        """Move to ``new``; return False (and change nothing) when nothing observable changes.

        Raises :class:`InvalidTransition` for a move the graph does not allow.
        """
        if new == self.status and reason == self.reason:
            return False
        if new not in TRANSITIONS[self.status]:
            raise InvalidTransition(f"{self.status} -> {new} is not allowed")
        self.status = new
        self.reason = reason
        return True

    @property
    def running(self) -> bool:
        return self.status in RUNNING
