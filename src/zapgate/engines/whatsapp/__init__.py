"""The ``whatsapp`` engine: real WhatsApp through whatsmeow (the PyPI package ``neonize``).

neonize runs only in engine worker processes that the gateway starts and supervises (:mod:`.supervisor`,
:mod:`.worker`); the gateway process never imports it. ``docs/engines.md`` explains how to pair a phone,
how the workers work, and what could not be verified without a phone.

=================  =====================================================================
``engine``         the :class:`~zapgate.engines.base.Engine` the gateway uses (gateway side)
``supervisor``     starts, watches and restarts worker processes; places sessions on them
``ipc``            the typed messages between gateway and workers
``ids``            gateway message ids ↔ WhatsApp message ids
``store``          per-session whatsmeow device stores under the data directory
``policy``         status mapping, retry and crash-loop policies, error classification (pure)
``worker``         the worker process (imports neonize)
``session``        one session inside a worker (imports neonize)
``translate``      neonize event protobufs → engine events (imports neonize)
``nz``             the single place that imports neonize
=================  =====================================================================
"""

from __future__ import annotations

from ...config import Settings
from .engine import WhatsAppEngine

__all__ = ["WhatsAppEngine", "from_settings"]


def from_settings(settings: Settings, *, node: str | None = None) -> WhatsAppEngine:
    return WhatsAppEngine(settings)
