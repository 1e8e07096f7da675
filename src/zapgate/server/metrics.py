"""``GET /metrics``: Prometheus text format, built from the gateway's live state at scrape time.

Labels never carry tenant or session names (no unbounded cardinality, nothing identifying): per-tenant
detail belongs to the WebSocket API.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response

from ..gateway import Gateway
from ..sessions.state import Status

__all__ = ["GatewayCollector", "metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class GatewayCollector(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gw = self.gateway
        sessions = GaugeMetricFamily("zapgate_sessions", "Sessions by status.", labels=["status"])
        by_status = dict.fromkeys((s.value for s in Status), 0)
        queued = 0
        for session in gw.sessions.all():
            by_status[session.state.status.value] += 1
            queued += session.sender.queued if session.sender else 0
        for status, count in by_status.items():
            sessions.add_metric([status], count)
        yield sessions
        yield GaugeMetricFamily("zapgate_outbox_queued", "Accepted messages not yet sent.", value=queued)
        yield GaugeMetricFamily(
            "zapgate_connections", "Authenticated WebSocket connections.", value=len(gw.connections)
        )
        events = CounterMetricFamily(
            "zapgate_events", "Events published, by event and status.", labels=["event", "status"]
        )
        for (name, status), count in sorted(gw.hub.counts.items()):
            events.add_metric([name, status], count)
        yield events
        yield GaugeMetricFamily(
            "zapgate_uptime_seconds", "Seconds since the gateway started.", value=time.time() - gw.started_at
        )


async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)
