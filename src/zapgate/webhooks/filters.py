"""Which events an endpoint receives (pure)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["accepts"]


def accepts(events: Sequence[str], sessions: Sequence[str], event: str, session: str) -> bool:
    """True when an endpoint filtering on ``events`` and ``sessions`` (empty: all) receives ``event`` of
    ``session``. An endpoint limited to some sessions receives no tenant-wide event (``session`` empty)."""
    if events and event not in events:
        return False
    return not sessions or session in sessions
