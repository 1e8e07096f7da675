"""Shared fixtures: settings for a fast simulator, and a real gateway on 127.0.0.1 with an ephemeral port."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zapgate.config import Settings

from .support import RunningGateway, serve_gateway

os.environ.setdefault("PYTHONASYNCIODEBUG", "1")

# Services this machine kind provides; tests that need them skip elsewhere, but never under CI=true.
IN_CI = os.environ.get("CI", "").lower() == "true"


def fast_settings(data_dir: Path, **overrides: object) -> Settings:
    """Simulator settings for tests: ephemeral port, short QR schedule, no pacing, tiny latencies."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "port": 0,
        "engine": "simulator",
        "sim_qr_schedule": (1.0, 0.5, 0.5),
        "sim_latency_s": 0.01,
        "pacing": False,
        "sqlite_synchronous": "normal",
        "auth_timeout_s": 5.0,
        "ping_interval_s": 0.0,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return fast_settings(tmp_path / "data")


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    async with serve_gateway(settings) as running:
        yield running
