"""Forwarding latency, kept for ``/metrics`` (a histogram) and ``/healthz`` (recent percentiles)."""

from __future__ import annotations

import bisect
import collections

__all__ = ["BUCKETS", "Latencies"]

BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
"""Upper bounds in seconds of the histogram's buckets (Prometheus adds ``+Inf``)."""
RECENT = 2048


class Latencies:
    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.total = 0.0
        self.count = 0
        self._recent: collections.deque[float] = collections.deque(maxlen=RECENT)

    def add(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds
        self.count += 1
        self._recent.append(seconds)

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or below it), as Prometheus histograms count."""
        out, running = [], 0
        for bound, n in zip([*(f"{b:g}" for b in BUCKETS), "+Inf"], self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out

    def percentile(self, p: float) -> float | None:
        """The ``p``-th percentile (0-100) of the last :data:`RECENT` observations, or None without any."""
        if not self._recent:
            return None
        ordered = sorted(self._recent)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]
