"""The benchmarks still run: every bench script once, at the smallest sizes, through ``bench/run.py --tiny``.

This measures nothing (figures at these sizes mean nothing); it keeps ``bench/`` from rotting as the code it
drives changes. The real runs are ``python3 tasks.py bench`` (see docs/performance.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG" and not k.startswith("ZAPGATE_")}
    done = subprocess.run(
        [sys.executable, "bench/run.py", "--tiny", "--results", str(out), "--output", str(out / "performance.md")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    results = {p.stem: json.loads(p.read_text()) for p in out.glob("*.json")}
    return results, (out / "performance.md").read_text()


def test_send_path_round_trips_through_gateway_and_ceiling(bench_run: tuple[dict[str, Any], str]) -> None:
    result = bench_run[0]["send_path"]
    for target in ("ceiling", "gateway-normal", "gateway-ping"):
        point = result["closed_loop"][target]["1x2"]
        assert point["msgs_per_s"] > 0 and point["errors"] == 0, (target, point)
        assert result["fixed_rate"][target]["p99_ms"] > 0
        # Where the CPU went: the first thread (the event loop) and the others add up to the process's CPU.
        assert point["loop_us_per_msg"] > 0 and point["threads_us_per_msg"] >= 0, (target, point)
        assert point["loop_us_per_msg"] + point["threads_us_per_msg"] == pytest.approx(point["cpu_us_per_msg"])
    for target in ("ceiling", "gateway-normal"):
        point = result["rate_curve"]["20"][target]
        assert point["p99_ms"] > 0 and point["errors"] == 0, (target, point)
    assert "msgs/s offered" in bench_run[1]  # the curve's table is rendered


def test_idle_clients_are_all_authenticated(bench_run: tuple[dict[str, Any], str]) -> None:
    result = bench_run[0]["idle_clients"]
    assert result["gateway"]["rows"][-1]["subscribed"] == 20
    assert result["ceiling"]["rows"][-1]["rss_kib"] > 0


def test_sessions_pair_send_and_restore(bench_run: tuple[dict[str, Any], str]) -> None:
    result = bench_run[0]["sessions"]
    assert result["rows"][-1]["sessions"] == 12
    (restore,) = result["restore"]["runs"]
    assert 0 < restore["listening_s"] <= restore["all_connected_s"]


def test_engine_worker_holds_neonize_sessions(bench_run: tuple[dict[str, Any], str]) -> None:
    result = bench_run[0]["engine_worker"]
    assert [row["sessions"] for row in result["rows"]] == [1, 2]
    assert result["rows"][-1]["rss_kib"] > result["base_rss_kib"]


def test_report_has_every_section(bench_run: tuple[dict[str, Any], str]) -> None:
    report = bench_run[1]
    for heading in ("## Targets", "## Scenario 1", "## Scenario 2", "## Scenario 3", "## Scenario 4", "## How to"):
        assert heading in report


def test_tenant_fanout_runs_its_three_targets(bench_run: tuple[dict[str, Any], str]) -> None:
    targets = bench_run[0]["tenant_fanout"]["targets"]
    assert set(targets) == {"tenants", "one-tenant", "one-tenant-subscribed"}
    for name, row in targets.items():
        assert row["msgs_per_s"] > 0 and row["errors"] == 0 and row["cpu_us_per_msg"] > 0, (name, row)
    assert "many connections of one tenant" in bench_run[1]


def test_an_inbound_burst_is_stored_and_pushed(bench_run: tuple[dict[str, Any], str]) -> None:
    result = bench_run[0]["inbound"]
    assert result["messages"] == 20 and result["events_per_s"] > 0
    assert "Scenario 6: an inbound burst" in bench_run[1]
    # Where the time went: the loop's and the other threads' CPU (in clock ticks: 20 messages may take none), the
    # writer's busy share and its group commits (20 messages stored make at least one).
    assert result["loop_us_per_event"] >= 0 and result["threads_us_per_event"] >= 0
    assert result["loop_busy"] >= 0 and result["writer_busy"] > 0 and result["commits"] >= 1
    assert "Where the burst's time went" in bench_run[1]


def run_script(script: str, *args: str, out: Path, timeout: float = 60) -> dict[str, Any]:
    """Run one bench script alone (outside ``run.py``) with ``--out``; its JSON result."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONASYNCIODEBUG" and not k.startswith("ZAPGATE_")}
    done = subprocess.run(
        [sys.executable, f"bench/{script}", *args, "--out", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def test_the_groups_bench_sends_to_a_group(tmp_path: Path) -> None:
    result = run_script(
        "groups.py", "--sizes", "5", "--repeats", "2", "--mention-all", out=tmp_path / "groups.json", timeout=120
    )
    (row,) = result["rows"]
    assert row["members"] == 5 and row["delivered_ms_median"] > 0


def test_inbound_storage_measures_a_received_message_with_and_without_its_history_entry(
    bench_run: tuple[dict[str, Any], str],
) -> None:
    result = bench_run[0]["inbound_storage"]
    full, bare = result["variants"]["full"], result["variants"]["no-history"]
    assert result["messages"] == 300
    assert all(row["cpu_us"] > 0 and row["commit_us"] > 0 for row in (full, bare))
    # The history entry (a row and three index entries) dirties pages of its own: more WAL per message.
    assert full["wal_bytes"] > bare["wal_bytes"] > 0
    assert "Scenario 7: a received message's storage, alone" in bench_run[1]


def test_inbound_storage_leaves_no_database_behind(tmp_path: Path) -> None:
    out = tmp_path / "inbound_storage.json"
    run_script(
        "inbound_storage.py", "--messages", "20", "--batch", "10", "--sessions", "2", "--dir", str(tmp_path), out=out
    )
    assert list(tmp_path.iterdir()) == [out]


def test_thread_hop_measures_both_round_trips_and_the_disk(tmp_path: Path) -> None:
    result = run_script(
        *("thread_hop.py", "--hops", "50", "--syncs", "20", "--sync-rate", "1000", "--dir", str(tmp_path)),
        out=tmp_path / "thread_hop.json",
    )
    assert set(result["hops"]) == {"run_in_executor", "ConnectionThread"}
    assert all(row["cpu_us"] > 0 for row in result["hops"].values())
    assert 0 < result["fdatasync"]["p50_ms"] <= result["fdatasync"]["max_ms"]
    assert not list(tmp_path.glob("fsync-probe-*"))  # the probe file is removed


def test_statements_counts_each_statement_of_a_send_by_thread(tmp_path: Path) -> None:
    result = run_script(
        *("statements.py", "send", "--connections", "2", "--in-flight", "2", "--seconds", "0.5"),
        out=tmp_path / "statements.json",
    )
    assert result["messages"] > 0 and result["cpu_us_per_message"] > 0
    by_sql = {s["sql"].split(" (")[0]: s for s in result["statements"]}
    assert by_sql["INSERT INTO outbox"]["calls"] > 0  # a message's acceptance, counted where it ran
    assert "zapgate-db-write" in result["threads"] and result["threads"]["zapgate-db-write"]["cpu_us"] > 0
    assert sum(s["cpu_us"] for s in result["statements"]) == pytest.approx(result["sql_us_per_message"])
    # The pages its commits wrote, named by table or index: a send writes its outbox row and the simulator's record
    pages = result["pages"]["zapgate.db"]
    assert pages["commits"] > 0 and pages["frames"] >= pages["commits"]
    assert pages["per_commit"]["outbox"] > 0 and pages["per_commit"]["events"] > 0
    assert result["pages"]["simulator.db"]["per_commit"]["deliveries"] > 0


def test_statements_runs_a_send_at_a_fixed_rate(tmp_path: Path) -> None:
    result = run_script(
        *("statements.py", "send", "--connections", "2", "--rate", "100", "--seconds", "0.5"),
        out=tmp_path / "statements.json",
    )
    # 100 a second for a second (the load's half-second warm-up, then the half-second measured), not as fast as
    # it can: a closed loop of 2 connections sends several hundred
    assert 80 <= result["messages"] <= 120
    assert result["settings"]["rate"] == 100


def test_statements_counts_the_rows_of_a_burst(tmp_path: Path) -> None:
    result = run_script(
        *("statements.py", "burst", "--sessions", "2", "--messages", "20"),
        out=tmp_path / "statements.json",
    )
    assert result["events"] == 20
    inbound = [s for s in result["statements"] if s["sql"].startswith("INSERT INTO inbound ")]
    assert sum(s["rows"] for s in inbound) == 20  # every received message's row, written inside the window
    assert all(s["thread"] == "zapgate-db-write" for s in inbound)  # a burst's groups run in the writer thread
    assert "MainThread" in result["threads"]  # the event loop is listed even when it ran no statement
    pages = result["pages"]["zapgate.db"]  # the burst's commits only, not the pairing's before it
    assert pages["per_commit"]["inbound"] > 0 and 0 < pages["commits"] <= result["group_commits"]
