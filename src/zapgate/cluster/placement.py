"""How many sessions a node should run, and when it should give some up (pure policy, no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["Plan", "fair_share", "plan", "self_fence_deadline"]

RELEASE_PER_ROUND = 0.25
"""At most this share of a node's excess is handed over per round, so a joining node fills up over a few rounds
instead of every session moving at once."""


def fair_share(sessions: int, nodes: int, cap: int = 0) -> int:
    """Sessions each of ``nodes`` alive, non-draining nodes should run: an even share, rounded up, at most ``cap``
    (0: no cap)."""
    share = math.ceil(sessions / max(1, nodes))
    return min(share, cap) if cap > 0 else share


@dataclass(frozen=True, slots=True)
class Plan:
    claim: int
    """Free leases to take now."""
    release: int
    """Held leases to hand over now (to a node that has fewer)."""


def plan(*, held: int, sessions: int, nodes: int, free: int, cap: int = 0, draining: bool = False) -> Plan:
    """What a node does in one round, given what it holds and what the cluster looks like."""
    if draining:
        return Plan(claim=0, release=held)
    target = fair_share(sessions, nodes, cap)
    if held < target:
        return Plan(claim=min(target - held, free), release=0)
    excess = held - target
    if excess > 0 and nodes > 1:
        return Plan(claim=0, release=max(1, math.floor(excess * RELEASE_PER_ROUND)))
    if cap and held > cap:
        return Plan(claim=0, release=held - cap)
    return Plan(claim=0, release=0)


def self_fence_deadline(sent_at: float, ttl: float, renew: float) -> float:
    """Until when (on the node's monotonic clock) a lease renewed by a request sent at ``sent_at`` may be used.

    The database set the lease's expiry to its own clock at the renewal plus ``ttl``, which is no earlier than
    ``sent_at + ttl``; the node stops using it ``renew`` seconds before that, which leaves it that long to
    disconnect the session before any other node may take it. Only the rate of the clocks matters, not their
    agreement."""
    return sent_at + ttl - renew
