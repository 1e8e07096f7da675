"""WhatsApp engines, chosen by name; each is imported only when chosen.

=============  ===================================================================
``whatsapp``   the real WhatsApp, through whatsmeow (neonize) in worker processes
``simulator``  an offline WhatsApp for sandboxes and tests
=============  ===================================================================
"""

from __future__ import annotations

import importlib

from ..config import Settings
from .base import Engine

__all__ = ["ENGINE_FACTORIES", "create_engine"]

#: Engine name → ``"module:function"`` building it from settings.
ENGINE_FACTORIES: dict[str, str] = {
    "simulator": "zapgate.engines.simulator:from_settings",
    "whatsapp": "zapgate.engines.whatsapp:from_settings",
}


def create_engine(settings: Settings, *, node: str | None = None) -> Engine:
    """The engine ``settings`` name; ``node`` is this gateway's instance id in a cluster."""
    module_name, _, attr = ENGINE_FACTORIES[settings.engine].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    engine: Engine = factory(settings, node=node)
    return engine
