"""What the gateway logs lets an operator follow a session: sessions by tenant, name and id; each database
migration once, naming the file."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from .conftest import fast_settings
from .support import serve_gateway


async def test_logs_name_sessions_by_tenant_and_name_and_migrations_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="zapgate")
    data = tmp_path / "data"
    async with serve_gateway(fast_settings(data)) as gateway, gateway.connect("acme") as client:
        await client.pair("main", "+55 11 94000-0001")
        session_id = gateway.gateway.sessions.get("acme", "main").id
        await client.call("session.stop", session="main")

    lines = [r.getMessage() for r in caplog.records if r.name == "zapgate.sessions"]
    label = f"session acme/main ({session_id})"
    assert f"{label} created" in lines
    assert f"{label}: stopped -> starting" in lines and f"{label}: connected -> stopped (stop_requested)" in lines
    about_sessions = [line for line in lines if session_id in line]
    assert about_sessions and all(label in line for line in about_sessions), about_sessions

    migrations = [r.getMessage() for r in caplog.records if "applying database migration" in r.getMessage()]
    assert len(migrations) == len(set(migrations)), migrations
    assert {m.partition(":")[0] for m in migrations} == {"zapgate.db", "simulator.db"}, migrations
