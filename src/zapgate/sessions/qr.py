"""The QR code schedule of a WhatsApp pairing (pure).

WhatsApp hands a linking device six references per pairing attempt: the first QR code is valid for
60 s and each next one for 20 s, about 160 s in all; then the attempt times out.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["WHATSAPP_QR_SCHEDULE", "QrSchedule", "QrSlot"]

WHATSAPP_QR_SCHEDULE: tuple[float, ...] = (60.0, 20.0, 20.0, 20.0, 20.0, 20.0)


@dataclass(frozen=True, slots=True)
class QrSlot:
    attempt: int
    """1-based number of the code."""
    max_attempts: int
    issued_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class QrSchedule:
    """When each code of a pairing attempt that began at ``started_at`` is shown and expires."""

    started_at: float
    lifetimes: Sequence[float] = WHATSAPP_QR_SCHEDULE

    @property
    def max_attempts(self) -> int:
        return len(self.lifetimes)

    def slot(self, attempt: int) -> QrSlot:
        """The window of code number ``attempt`` (1-based)."""
        if not 1 <= attempt <= self.max_attempts:
            raise ValueError(f"attempt must be between 1 and {self.max_attempts}")
        issued = self.started_at + sum(self.lifetimes[: attempt - 1])
        return QrSlot(attempt, self.max_attempts, issued, issued + self.lifetimes[attempt - 1])

    def current(self, now: float) -> QrSlot | None:
        """The code valid at ``now``, or None before the start and after the last code expired."""
        if now < self.started_at:
            return None
        issued = self.started_at
        for index, lifetime in enumerate(self.lifetimes, start=1):
            if now < issued + lifetime:
                return QrSlot(index, self.max_attempts, issued, issued + lifetime)
            issued += lifetime
        return None

    @property
    def ends_at(self) -> float:
        return self.started_at + sum(self.lifetimes)
