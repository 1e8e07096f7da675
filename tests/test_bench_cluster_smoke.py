"""The cluster benchmarks still run (``bench/cluster.py``, ``bench/pg_commit.py``), once each, at the smallest sizes.

This measures nothing; it keeps the scripts behind ``docs/scaling.md``'s figures from rotting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .services import require
from .support import TIMEOUT_SCALE

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(script: str, out: Path, *args: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG" and not k.startswith("ZAPGATE_")}
    done = subprocess.run(
        [sys.executable, script, *args, "--out", str(out)],
        cwd=ROOT / "bench",
        env=env,
        capture_output=True,
        text=True,
        timeout=240 * TIMEOUT_SCALE,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, object] = json.loads(out.read_text())
    return result


def test_forwarding_latency_runs_over_both_buses(tmp_path: Path) -> None:
    require("postgres")
    require("redis")
    result = run("cluster.py", tmp_path / "cluster.json", "--figures", "latency", "--connections", "1",
                 "--in-flight", "1", "--seconds", "0.3", "--repeats", "1")
    latency = result["latency"]
    assert isinstance(latency, list) and [r["bus"] for r in latency] == ["redis", "postgresql"]
    for per_bus in latency:
        for command in ("get", "send"):
            assert per_bus[command]["forwarded"]["errors"] == 0 and per_bus[command]["forwarded"]["msgs_per_s"] > 0


def test_the_group_commit_comparison_runs(tmp_path: Path) -> None:
    require("postgres")
    result = run("pg_commit.py", tmp_path / "pg.json", "--writers", "2", "--seconds", "0.3", "--repeats", "1")
    rows = result["rows"]
    assert isinstance(rows, list) and rows[0]["driver"] == "psycopg-group" and rows[0]["writes_per_s"] > 0
