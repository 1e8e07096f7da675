"""The bus interface: short messages between the nodes of a cluster (``docs/scaling.md``).

A bus carries two kinds of traffic: broadcast notices ("tenant T has events up to seq N", "leases were released")
that every node hears, and messages addressed to one node (a forwarded command and its reply). Delivery is
at most once and fast, never durable: nothing in zapgate depends on a message arriving. A missed event notice
only delays delivery until the next notice or the hub's periodic check (the events are in the log); a missed
command or reply ends as ``session_unavailable`` after the forwarding timeout, which is safe to retry.

Channels are plain names (``events``, ``leases``, ``node.<id>``); each implementation adds the cluster's prefix,
so several clusters can share one Redis or one PostgreSQL server.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Mapping

__all__ = ["RECONNECT_DELAY_S", "Bus", "Handler", "dispatch"]

log = logging.getLogger("zapgate.bus")

RECONNECT_DELAY_S = 1.0
"""Pause before a bus connection that was lost is made again."""

Handler = Callable[[bytes], None]
"""Takes one message; must return at once (start a task for anything slow)."""


class Bus(abc.ABC):
    name: str

    @abc.abstractmethod
    async def start(self, handlers: Mapping[str, Handler]) -> None:
        """Connect and listen on the channels of ``handlers``; returns once listening (messages published after
        this returns reach the handlers)."""

    @abc.abstractmethod
    async def publish(self, channel: str, payload: bytes) -> None:
        """Send ``payload`` to every node listening on ``channel`` (no error if none is)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @property
    def connected(self) -> bool:
        """False while the bus is reconnecting (for ``/healthz``)."""
        return True


def dispatch(handlers: Mapping[str, Handler], channel: str, payload: bytes) -> None:
    """Call the handler of ``channel``, logging (never raising) its failure."""
    handler = handlers.get(channel)
    if handler is None:
        return
    try:
        handler(payload)
    except Exception:
        log.exception("bus handler for %s failed", channel)
