"""Plain HTTP routes: /healthz and /metrics."""

from __future__ import annotations

import re
import time

import httpx

from zapgate.config import Settings
from zapgate.server.openapi import openapi_document

from .contract import check_rest_response
from .support import RunningGateway, eventually


async def test_healthz_reports_engine_and_sessions(gateway: RunningGateway) -> None:
    async with gateway.connect() as client, httpx.AsyncClient(base_url=gateway.http) as http:
        await client.pair("s", "+55 11 99999-0001")
        response = await http.get("/healthz")
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "ok" and body["engine"] == "simulator"
        assert body["sessions"] == {"connected": 1} and body["connections"] == 1
        # As /v1/openapi.json describes it (no token needed).
        check_rest_response("/healthz", "GET", 200, response.headers["content-type"], body)
        assert openapi_document(gateway.settings)["paths"]["/healthz"]["get"]["security"] == []


async def test_metrics_in_prometheus_format(gateway: RunningGateway) -> None:
    async with gateway.connect() as client, httpx.AsyncClient(base_url=gateway.http) as http:
        await client.pair("s", "+55 11 99999-0001")
        sent = await client.call("message.send", session="s", to="+1 555 000 0000", text="hi")
        await client.event("message.received", lambda e: e["data"]["reply_to"] == sent["message_id"])
        response = await http.get("/metrics")
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
        lines = set(response.text.splitlines())
        assert 'zapgate_sessions{status="connected"} 1.0' in lines
        assert 'zapgate_sessions{status="qr"} 0.0' in lines
        assert "zapgate_connections 1.0" in lines
        assert 'zapgate_events_total{event="message.status",status="sent"} 1.0' in lines
        assert 'zapgate_events_total{event="message.received",status=""} 1.0' in lines
        assert "acme" not in response.text and '"s"' not in response.text
        # The database writer's work: commits, the writes in them, and the time they took (COMMIT within it).
        before = _samples(response.text)
        assert before["zapgate_db_writes_total"] >= before["zapgate_db_commits_total"] >= 1
        assert before["zapgate_db_writer_busy_seconds_total"] >= before["zapgate_db_commit_seconds_total"] > 0
        await client.call("message.send", session="s", to="+1 555 000 0000", text="again")
        after = _samples((await http.get("/metrics")).text)
        assert after["zapgate_db_commits_total"] > before["zapgate_db_commits_total"]
        assert after["zapgate_db_writes_total"] > before["zapgate_db_writes_total"]
        assert after["zapgate_db_writer_busy_seconds_total"] > before["zapgate_db_writer_busy_seconds_total"]
        described = openapi_document(gateway.settings)["paths"]["/metrics"]["get"]
        assert described["security"] == [] and "text/plain" in described["responses"]["200"]["content"]


async def test_metrics_show_how_late_the_event_loop_runs(gateway: RunningGateway) -> None:
    # The gateway runs in this test's event loop: holding the loop makes the lag sampler's timer fire late.
    name = "zapgate_event_loop_lag_seconds"
    async with httpx.AsyncClient(base_url=gateway.http) as http:
        before = _samples((await http.get("/metrics")).text)
        time.sleep(0.4)  # blocking the loop is the point
        await eventually(
            lambda: _samples_now(http, f"{name}_sum", above=before[f"{name}_sum"] + 0.2), "the late timer to be noted"
        )
        text = (await http.get("/metrics")).text
    after = _samples(text)
    assert after[f"{name}_count"] > before[f"{name}_count"]
    bucket = re.search(rf'^{name}_bucket{{le="0.1"}} (\S+)$', text, re.MULTILINE)
    assert bucket is not None and float(bucket[1]) < after[f"{name}_count"], "one sample was over 0.1 s late"


async def _samples_now(http: httpx.AsyncClient, name: str, *, above: float) -> bool:
    return _samples((await http.get("/metrics")).text)[name] > above


def _samples(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text exposition, by name."""
    return {
        name: float(value)
        for name, _, value in (line.partition(" ") for line in text.splitlines())
        if name and not name.startswith("#") and "{" not in name
    }


def test_the_openapi_document_describes_metrics_as_this_port_serves_it() -> None:
    token = "m3tr1cs-" + "abcdefghijklmnopqrstuvwxyz0123"
    guarded = openapi_document(Settings().replace(metrics_token=token))
    operation = guarded["paths"]["/metrics"]["get"]
    assert operation["security"] == [{"metricsToken": []}] and "401" in operation["responses"]
    assert guarded["components"]["securitySchemes"]["metricsToken"]["scheme"] == "bearer"
    elsewhere = openapi_document(Settings().replace(metrics_port=9100))
    assert "/metrics" not in elsewhere["paths"] and "/healthz" in elsewhere["paths"]
