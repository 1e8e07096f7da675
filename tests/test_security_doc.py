"""docs/security.md lists every limit with its default and setting: the settings it names exist, every limit
setting of the edge is there, and the figures it gives are the defaults."""

from __future__ import annotations

import re
from dataclasses import fields
from pathlib import Path

import pytest

from zapgate.config import MIN_SECRET_CHARS, MIN_SECRET_DISTINCT, Settings
from zapgate.protocol.content import MAX_CAPTION_CHARS, MAX_INLINE_MEDIA_BYTES, MAX_POLL_OPTIONS, MAX_TEXT_CHARS
from zapgate.protocol.events import EVENTS_FETCH_MAX_BYTES
from zapgate.server.edge import REFUSAL_LINGER_S
from zapgate.server.guard import MAX_TRACKED_ADDRESSES

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "zapgate"
DOC = (ROOT / "docs" / "security.md").read_text()
LIMITS = DOC.split("## Limits", 1)[1].split("### Measured", 1)[0]
SETTINGS = {f.name.upper() for f in fields(Settings)}

EDGE_SETTINGS = [
    "allowed_hosts",
    "allowed_origins",
    "metrics_token",
    "metrics_port",
    "metrics_host",
    "handshake_timeout_s",
    "max_header_bytes",
    "max_headers",
    "max_connections_per_ip",
    "max_unauthenticated_connections",
    "auth_timeout_s",
    "auth_failure_delay_s",
    "auth_failure_max_delay_s",
    "max_connections_per_token",
    "max_frame_bytes",
    "send_buffer_frames",
    "send_buffer_bytes",
    "send_timeout_s",
    "close_timeout_s",
    "max_inflight_commands",
    "command_rate_per_s",
    "command_burst",
    "ping_interval_s",
    "ping_timeout_s",
    "rest_max_body_bytes",
    "rest_max_wait_s",
    "sse_heartbeat_s",
    "media_max_bytes",
    "media_fetch_timeout_s",
    "idempotency_ttl_s",
    "event_retention_s",
    "event_retention_count",
    "media_retention_s",
    "media_download_concurrency",
    "media_download_timeout_s",
    "webhook_max_per_tenant",
    "webhook_connect_timeout_s",
    "webhook_timeout_s",
    "webhook_max_response_bytes",
    "webhook_retry_schedule",
    "webhook_disable_after_s",
    "node_max_sessions",
]


def test_every_setting_the_limits_name_exists() -> None:
    named = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", LIMITS)) - {"ZAPGATE_"}
    source = "\n".join(p.read_text() for p in SRC.rglob("*.py"))
    for name in sorted(named - SETTINGS):
        if name == "PACING_":  # PACING_* : the pacing settings
            assert any(s.startswith("PACING_") for s in SETTINGS)
            continue
        # Not a setting: a fixed limit, named by its constant in the code.
        assert re.search(rf"^{name} = ", source, re.MULTILINE), f"docs/security.md names {name}: no such setting"


@pytest.mark.parametrize("name", EDGE_SETTINGS)
def test_every_limit_setting_is_in_the_table(name: str) -> None:
    assert f"`{name.upper()}`" in LIMITS, f"add {name} to the limits of docs/security.md"


def test_the_figures_are_the_defaults() -> None:
    d = Settings()
    figures = {
        f"{d.max_header_bytes // 1024} KiB, {d.max_headers} headers": "request head",
        f"whole within {d.handshake_timeout_s:g} s": "handshake",
        f"| {d.max_connections_per_ip} (an IPv6 /64": "per address",
        f"| {d.max_unauthenticated_connections} (handshakes included)": "unauthenticated",
        f"{d.auth_timeout_s:g} s after the upgrade": "auth timeout",
        f"waits {d.auth_failure_delay_s:g} s, doubling to {d.auth_failure_max_delay_s:g} s": "auth failures",
        f"| {d.max_connections_per_token}; beyond: 4409": "per token",
        f"| {d.max_frame_bytes // 1024} KiB; beyond: 1009": "frame",
        f"{d.command_rate_per_s:g}/s, {d.command_burst} at once": "commands",
        f"| {d.max_inflight_commands}; then reading pauses": "inflight",
        f"{d.send_buffer_frames} frames and {d.send_buffer_bytes // 2**20} MiB": "send buffer",
        f"4429 after {d.send_timeout_s:g} s": "send timeout",
        f"gets {d.close_timeout_s:g} s to take its close frame": "close",
        f"ping every {d.ping_interval_s:g} s, close (1011) without a pong within {d.ping_timeout_s:g} s": "keepalive",
        f"dropped for {REFUSAL_LINGER_S:g} s": "linger",
        f"the last {MAX_TRACKED_ADDRESSES:,} addresses": "tracked",
        f"| {d.rest_max_body_bytes // 2**20} MiB; beyond: 413": "REST body",
        f"| {d.rest_max_wait_s:g} s |": "long-poll",
        f"every {d.sse_heartbeat_s:g} s": "SSE",
        f"| {d.media_max_bytes // 2**20} MiB;": "media",
        f"{d.media_fetch_timeout_s:g} s in all": "fetch",
        f"newest {d.event_retention_count:,} per tenant": "retention",
        f"{d.media_retention_s / 86400:g} days unused": "media retention",
        f"{MAX_TEXT_CHARS:,} characters; captions {MAX_CAPTION_CHARS:,}; {MAX_POLL_OPTIONS} poll options": "text",
        f"| {MAX_INLINE_MEDIA_BYTES // 1024} KiB (larger": "inline",
        f"1,000 events and {EVENTS_FETCH_MAX_BYTES // 1024} KiB per page": "events.fetch",
        f"at least {MIN_SECRET_CHARS} characters, {MIN_SECRET_DISTINCT} of them different": "secrets",
        f"| {d.media_download_concurrency}, shared fairly": "downloads",
        f"one download at most {d.media_download_timeout_s:g} s": "download time",
        f"| {d.webhook_max_per_tenant} per tenant": "webhooks",
        f"{d.webhook_connect_timeout_s:g} s to connect, {d.webhook_timeout_s:g} s in all": "webhook time",
        f"{d.webhook_max_response_bytes // 1024} KiB of the receiver's response": "webhook response",
        "disabled after a day" if d.webhook_disable_after_s == 86400 else "(changed)": "webhook disable",
        f"({d.webhook_retry_schedule[0]:g} s … {max(d.webhook_retry_schedule) / 3600:g} h)": "webhook retries",
    }
    wrong = [what for figure, what in figures.items() if figure not in LIMITS]
    assert not wrong, f"docs/security.md's figures differ from the defaults for: {wrong}"
