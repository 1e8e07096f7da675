"""The bus between the nodes of a cluster, chosen by URL (``docs/scaling.md``); a single node has none.

==================  ==============================================================================
``redis://…``       Redis pub/sub (the recommended bus: measured in ``docs/scaling.md``)
``postgresql://…``  PostgreSQL ``LISTEN``/``NOTIFY`` on the gateway's own database (no other service)
==================  ==============================================================================

Each implementation is imported only when chosen.
"""

from __future__ import annotations

from .base import Bus, Handler

__all__ = ["Bus", "Handler", "open_bus"]


def open_bus(url: str, prefix: str) -> Bus:
    """A bus for ``url``; its channel names start with ``prefix`` (the cluster's id). Not started yet."""
    scheme = url.partition("://")[0]
    if scheme in ("redis", "rediss"):
        from .redis import RedisBus

        return RedisBus(url, prefix)
    if scheme in ("postgresql", "postgres"):
        from .postgres import PostgresBus

        return PostgresBus(url, prefix)
    raise ValueError(f"unsupported bus URL scheme {scheme!r}: use redis:// or postgresql://")
