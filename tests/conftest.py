"""Shared fixtures: settings for a fast simulator, a real gateway on 127.0.0.1 with an ephemeral port, and the
per-test time limit.

Every wait in the tests is a multiple of :data:`~tests.support.TIMEOUT_SCALE` (``ZAPGATE_TEST_TIMEOUT_SCALE``,
default 1): on a slow or loaded machine, raise it instead of editing timeouts. pytest-timeout ends any test
that runs longer than :data:`TEST_LIMIT_S` (or :data:`SLOW_TEST_LIMIT_S` for ``slow`` ones) times that scale,
so a hang fails one test instead of stalling the run.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from zapgate.config import Settings
from zapgate.storage import Storage, open_storage

from .services import postgres_schema
from .support import TIMEOUT_SCALE, RunningGateway, serve_gateway

os.environ.setdefault("PYTHONASYNCIODEBUG", "1")

TEST_LIMIT_S = 60.0
SLOW_TEST_LIMIT_S = 240.0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("timeout") is None:
            limit = SLOW_TEST_LIMIT_S if item.get_closest_marker("slow") else TEST_LIMIT_S
            item.add_marker(pytest.mark.timeout(limit * TIMEOUT_SCALE))


def fast_settings(data_dir: Path, **overrides: object) -> Settings:
    """Simulator settings for tests: ephemeral port, no pacing, no command rate limit, tiny latencies.

    QR codes live 30 s each, so that a test that scans never races the schedule on a loaded machine; tests of
    QR rotation and expiry pass a short ``sim_qr_schedule`` of their own."""
    values: dict[str, object] = {
        "data_dir": data_dir,
        "port": 0,
        "engine": "simulator",
        "sim_qr_schedule": (30.0, 30.0, 30.0),
        "sim_latency_s": 0.01,
        "pacing": False,
        "command_rate_per_s": 0.0,  # tests drive connections far faster than a client should; test_edge tests the limit
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


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for each storage backend: a SQLite file, and a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'zapgate.db'}"
    else:
        yield from postgres_schema()


@pytest.fixture
async def storage(storage_url: str) -> AsyncIterator[Storage]:
    """An opened :class:`Storage` on each backend (the storage contract runs every test body on both)."""
    store = open_storage(storage_url, synchronous="normal")
    await store.open()
    try:
        yield store
    finally:
        await store.close()
