"""When to try an event again, and which answers mean "never" (pure).

The schedule is a table of delays (``webhook_retry_schedule``): retry *n* waits the *n*-th delay, varied by up
to :data:`JITTER` either way so that endpoints that failed together do not all come back together. After the
last delay's attempt fails, the event becomes a dead letter. ``docs/webhooks.md`` prints the default table.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

__all__ = ["JITTER", "NEVER_RETRY", "Verdict", "retry_delay", "retry_table", "verdict"]

JITTER = 0.1
"""Each delay is multiplied by a uniform factor in [1 - JITTER, 1 + JITTER]."""

NEVER_RETRY = frozenset({400, 401, 403, 404, 410, 422})
"""Answers that mean the receiver will never take this event: it becomes a dead letter at once."""

Verdict = str
"""``delivered`` (2xx), ``never`` (:data:`NEVER_RETRY`) or ``retry`` (anything else, or no answer)."""


def verdict(status: int | None) -> Verdict:
    if status is not None and 200 <= status < 300:
        return "delivered"
    if status in NEVER_RETRY:
        return "never"
    return "retry"


def retry_delay(retry: int, schedule: Sequence[float], rng: random.Random | None = None) -> float | None:
    """Seconds to wait before retry number ``retry`` (1-based), or None when the schedule is exhausted."""
    if retry < 1:
        raise ValueError("retries are numbered from 1")
    if retry > len(schedule):
        return None
    return schedule[retry - 1] * (rng or random).uniform(1 - JITTER, 1 + JITTER)


def retry_table(schedule: Sequence[float]) -> list[tuple[int, float, float]]:
    """(attempt number, nominal delay before it, nominal time since the first attempt) for each retry."""
    rows, elapsed = [], 0.0
    for n, delay in enumerate(schedule, start=2):
        elapsed += delay
        rows.append((n, delay, elapsed))
    return rows
