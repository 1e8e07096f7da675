"""Webhooks: the tenant's events POSTed to its HTTP endpoints, signed, from the durable event log.

==============  ======================================================================
``signing``     Standard Webhooks secrets and signatures (pure)
``schedule``    the retry schedule and what an answer means (pure)
``filters``     which events an endpoint receives (pure)
``sender``      one signed POST with timeouts, a response cap and the SSRF guard
``deliverer``   the per-endpoint delivery loop: cursor, retries, dead letters
``service``     the gateway's webhooks: deliverers, wake-ups, leases, figures
==============  ======================================================================

``docs/webhooks.md`` is the user's reference.
"""

from __future__ import annotations

from .schedule import NEVER_RETRY, retry_delay, retry_table
from .service import WebhookService
from .signing import generate_secret, sign

__all__ = ["NEVER_RETRY", "WebhookService", "generate_secret", "retry_delay", "retry_table", "sign"]
