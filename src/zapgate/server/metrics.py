"""``GET /metrics``: Prometheus text format, built from the gateway's live state at scrape time.

Labels never carry tenant or session names (no unbounded cardinality, nothing identifying): per-tenant
detail belongs to the WebSocket API.

With ``metrics_token`` set, a scrape must send ``Authorization: Bearer <metrics_token>`` (compared in constant
time) or gets 401. With ``metrics_port`` set, ``/metrics`` is served by :func:`metrics_app` on a listener of its
own (``metrics_host``, 127.0.0.1 by default) and the API's port answers it 404.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ..gateway import Gateway
from ..sessions.state import Status

__all__ = ["GatewayCollector", "metrics", "metrics_app"]

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
        yield from _writer_metrics(gw)
        yield HistogramMetricFamily(
            "zapgate_event_loop_lag_seconds",
            "How late the event loop ran a timer, sampled every 0.1 s: what a command, reply or event waited then.",
            buckets=gw.loop_lag.cumulative(),
            sum_value=gw.loop_lag.total,
        )
        yield from _webhook_metrics(gw)
        if gw.cluster is not None:
            yield from _cluster_metrics(gw)


def _writer_metrics(gw: Gateway) -> Iterator[Metric]:
    """The gateway database's writer thread: group commits and how busy it is (docs/delivery.md)."""
    stats = gw.storage.db.stats
    yield CounterMetricFamily("zapgate_db_commits", "Group commits of the gateway's database.", value=stats.groups)
    yield CounterMetricFamily(
        "zapgate_db_writes", "Writes in those commits (each request of a batched write counts).", value=stats.writes
    )
    yield CounterMetricFamily(
        "zapgate_db_writer_busy_seconds",
        "Seconds the database's writer spent applying and committing groups; its rate near 1 means writes queue.",
        value=stats.busy_s,
    )
    yield CounterMetricFamily(
        "zapgate_db_commit_seconds", "Of those, seconds spent in COMMIT (with its fsync).", value=stats.commit_s
    )


def _webhook_metrics(gw: Gateway) -> Iterator[Metric]:
    """Deliveries of this node's webhook endpoints (docs/webhooks.md)."""
    service = gw.webhooks
    stats = service.stats
    attempts = CounterMetricFamily(
        "zapgate_webhook_attempts", "Webhook delivery attempts, by outcome.", labels=["outcome"]
    )
    for outcome, count in sorted(stats.outcomes.items()):
        attempts.add_metric([outcome], count)
    yield attempts
    yield HistogramMetricFamily(
        "zapgate_webhook_latency_seconds",
        "Latency of webhook delivery attempts, from connecting to the response.",
        buckets=stats.latencies.cumulative(),
        sum_value=stats.latencies.total,
    )
    yield GaugeMetricFamily(
        "zapgate_webhook_pending_events",
        "Events after the cursors of the endpoints this node delivers to.",
        value=service.pending(),
    )
    yield GaugeMetricFamily(
        "zapgate_webhook_endpoints_active", "Webhook endpoints this node delivers to now.", value=service.active()
    )
    yield CounterMetricFamily("zapgate_webhook_disabled", "Webhook endpoints this node disabled.", value=stats.disabled)
    yield CounterMetricFamily(
        "zapgate_webhook_events_pruned",
        "Events gone from the log before a webhook endpoint got them.",
        value=stats.skipped_pruned,
    )


def _cluster_metrics(gw: Gateway) -> Iterator[Metric]:
    """This node's leases, forwarding and bus (docs/scaling.md)."""
    node = gw.cluster
    assert node is not None
    stats = node.keeper.stats
    yield GaugeMetricFamily("zapgate_leases_held", "Session leases this node holds.", value=len(node.keeper.held()))
    changes = CounterMetricFamily(
        "zapgate_lease_changes", "Leases this node took, lost, stopped using in time or handed over.", labels=["change"]
    )
    for change, count in (
        ("claimed", stats.claimed),
        ("lost", stats.lost),
        ("self_fenced", stats.self_fenced),
        ("handed_over", stats.handed_over),
    ):
        changes.add_metric([change], count)
    yield changes
    rounds = CounterMetricFamily("zapgate_lease_rounds", "Lease renewal rounds, by outcome.", labels=["outcome"])
    rounds.add_metric(["ok"], stats.rounds)
    rounds.add_metric(["failed"], stats.failed_rounds)
    yield rounds
    age = time.time() - stats.last_round_at if stats.last_round_at else float("inf")
    yield GaugeMetricFamily("zapgate_lease_renewal_age_seconds", "Seconds since the last lease renewal.", value=age)
    nodes = GaugeMetricFamily("zapgate_cluster_nodes", "Nodes of the cluster, by state.", labels=["state"])
    for state in ("alive", "draining", "dead"):
        count = sum(
            1
            for n in stats.nodes
            if (state == "dead" and not n.alive) or (n.alive and (state == "draining") == n.draining)
        )
        nodes.add_metric([state], count)
    yield nodes
    yield GaugeMetricFamily(
        "zapgate_cluster_sessions_without_node", "Sessions no node holds a lease for right now.", value=stats.free
    )
    yield CounterMetricFamily(
        "zapgate_fenced_writes", "Writes refused because the session had moved to another node.",
        value=gw.sessions.fenced_writes,
    )
    fwd = node.forwarder
    forwarded = CounterMetricFamily(
        "zapgate_forwarded_commands", "Commands forwarded to (out) or run for (in) other nodes.", labels=["direction"]
    )
    forwarded.add_metric(["out"], fwd.forwarded)
    forwarded.add_metric(["in"], fwd.served)
    yield forwarded
    yield CounterMetricFamily(
        "zapgate_forward_timeouts", "Forwarded commands whose node did not answer in time.", value=fwd.timeouts
    )
    yield HistogramMetricFamily(
        "zapgate_forward_latency_seconds",
        "Round trip of a forwarded command, as the forwarding node saw it.",
        buckets=fwd.latencies.cumulative(),
        sum_value=fwd.latencies.total,
    )
    yield GaugeMetricFamily(
        "zapgate_bus_connected", "1 while the bus is connected.", value=int(bool(node.bus and node.bus.connected))
    )
    yield CounterMetricFamily(
        "zapgate_events_read_back", "Events read from the log to fill a gap (committed by other nodes).",
        value=gw.hub.caught_up,
    )


async def metrics(request: Request) -> Response:
    token: str = request.app.state.metrics_token
    if token and not _bearer_matches(request.headers.get("authorization", ""), token):
        body = {"code": "unauthorized", "message": "GET /metrics needs 'Authorization: Bearer <ZAPGATE_METRICS_TOKEN>'"}
        return JSONResponse(body, status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE)


def _bearer_matches(header: str, token: str) -> bool:
    scheme, _, given = header.partition(" ")
    # compare_digest on bytes: its time does not depend on where the first difference is.
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def metrics_app(registry: CollectorRegistry, token: str) -> Starlette:
    """The application of the separate ``/metrics`` listener (``metrics_port``): ``/metrics`` and nothing else."""
    app = Starlette(routes=[Route("/metrics", metrics)])
    app.state.metrics = registry
    app.state.metrics_token = token
    return app
