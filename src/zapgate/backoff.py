"""Retry delays: capped exponential backoff with full jitter (pure; the caller sleeps).

Full jitter (a uniform draw between 0 and the capped exponential) spreads reconnecting clients and
sessions apart, so a restart of the gateway or of WhatsApp does not turn into a thundering herd.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

__all__ = ["backoff_delays", "full_jitter"]


def full_jitter(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempt`` (1-based): uniform in [0, min(cap, base * 2**(attempt-1))]."""
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    ceiling = min(cap, base * 2 ** min(attempt - 1, 62))
    return (rng or random).uniform(0, ceiling)


def backoff_delays(
    *, base: float = 1.0, cap: float = 60.0, attempts: int | None = None, rng: random.Random | None = None
) -> Iterator[float]:
    """Yield the delay before each retry; stops after ``attempts`` delays when given."""
    attempt = 1
    while attempts is None or attempt <= attempts:
        yield full_jitter(attempt, base=base, cap=cap, rng=rng)
        attempt += 1
