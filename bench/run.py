"""Run every benchmark and write ``docs/performance.md``.

    python3 tasks.py bench            # the full run, a few minutes
    python3 tasks.py bench --quick    # smaller sizes and single repeats, about a minute
    .venv/bin/python bench/run.py --only send_path --output /tmp/perf.md

Each scenario is its own script (and process); their JSON results go to ``bench/results/`` and the report is
rendered from them. Every figure in the report is set against a baseline measured in the same run: the bare
``websockets`` ceiling server for throughput, latency and connection memory, an empty gateway for start-up.
The hand-written analysis (profiles, fixes, what the targets need) lives in ``bench/findings.md`` and is
copied into the report unchanged.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from procs import BENCH, ROOT, machine

RESULTS = BENCH / "results"
REPORT = ROOT / "docs" / "performance.md"

FULL: dict[str, list[str]] = {
    "send_path": [
        *("--connections", "1,16,256", "--in-flight", "1,8", "--seconds", "2", "--repeats", "3"),
        *("--rate-curve", "250,500,750"),
    ],
    "idle_clients": ["--counts", "1000,10000"],
    "sessions": ["--counts", "100,1000", "--restores", "3"],
    "engine_worker": ["--sessions", "1,50"],
    "tenant_fanout": ["--connections", "16", "--in-flight", "8", "--seconds", "3", "--repeats", "5"],
    "inbound": ["--sessions", "100", "--messages", "50000"],
    "inbound_storage": ["--messages", "20000", "--batch", "200", "--sessions", "100"],
}
QUICK: dict[str, list[str]] = {
    "send_path": ["--connections", "1,16,256", "--in-flight", "1,8", "--seconds", "1", "--repeats", "1"],
    "idle_clients": ["--counts", "1000"],
    "sessions": ["--counts", "100", "--restores", "1"],
    "engine_worker": ["--sessions", "1,10", "--settle", "2"],
    "tenant_fanout": ["--connections", "16", "--in-flight", "8", "--seconds", "1", "--repeats", "1"],
    "inbound": ["--sessions", "100", "--messages", "10000"],
    "inbound_storage": ["--messages", "5000", "--batch", "200", "--sessions", "100"],
}

TINY: dict[str, list[str]] = {
    "send_path": [
        *("--connections", "1", "--in-flight", "2", "--seconds", "0.3", "--repeats", "1"),
        *("--rate", "50", "--rate-connections", "1", "--rate-curve", "20", "--sync", "normal"),
    ],
    "idle_clients": ["--counts", "20", "--settle", "0.2"],
    "sessions": ["--counts", "12", "--restores", "1", "--settle", "0.2"],
    "engine_worker": ["--sessions", "1,2", "--settle", "0.2"],
    "tenant_fanout": ["--connections", "2", "--in-flight", "2", "--seconds", "0.3", "--repeats", "1"],
    "inbound": [
        *("--sessions", "2", "--messages", "20", "--sync", "normal"),
        *("--ping-rate", "20", "--quiet", "0.3", "--ping-seconds", "2"),
    ],
    "inbound_storage": ["--messages", "300", "--batch", "50", "--sessions", "7"],
}
"""Smallest sizes, for the test suite's smoke test: proves every script still runs, measures nothing."""


def run_scenarios(plan: dict[str, list[str]], only: set[str] | None, results_dir: Path) -> dict[str, Any]:
    results_dir.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {}
    for name, args in plan.items():
        if only and name not in only:
            continue
        out = results_dir / f"{name}.json"
        print(f"== {name} {' '.join(args)}", flush=True)
        began = time.perf_counter()
        code = subprocess.call([sys.executable, str(BENCH / f"{name}.py"), *args, "--out", str(out)], cwd=ROOT)
        if code != 0:
            raise SystemExit(f"{name} failed (exit {code})")
        result = json.loads(out.read_text())
        result["command"] = f"bench/{name}.py {' '.join(args)}"
        result["took_s"] = time.perf_counter() - began
        result["measured_at"] = f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
        out.write_text(json.dumps(result, indent=2))
        results[name] = result
    return results


# -- rendering ----------------------------------------------------------------------------------------------


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _ms(value: float) -> str:
    return f"{value:.2f}"


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _split(row: dict[str, Any]) -> str:
    """Where a message's CPU went: the event loop (the gateway's first thread) and its other threads."""
    if "loop_us_per_msg" not in row:  # results written before this was measured lack it
        return ""
    return f": event loop {row['loop_us_per_msg']:.0f}, other threads {row['threads_us_per_msg']:.0f}"


def render_send(r: dict[str, Any], verdicts: list[tuple[str, str, str]]) -> list[str]:
    closed = r["closed_loop"]
    names = [n for n in ("gateway-full", "gateway-normal", "gateway-ping") if n in closed]
    lines = [
        "## Scenario 1: send path (`message.send` round trips) vs the ceiling",
        "",
        f"Command: `{r['command']}`. Closed loop: C connections, W requests in flight on each, "
        f"{r['settings']['seconds']:g} s per point after 0.5 s of warm-up, median of {r['settings']['repeats']} "
        "runs, every target measured in turn within each run, each once the run's processes are quiet again (a "
        "gateway works on for about a second after a load). Each connection is its own tenant with its own "
        "session, and rotates its sends over 8 silent contacts. CPU µs/msg is the server process's user + system "
        "time over the whole run divided by the replies it sent. `full` and `normal` are the gateway with "
        "`ZAPGATE_SQLITE_SYNCHRONOUS=full` (the default) and `normal`; `ping` is the gateway answering `ping` "
        "(authenticated connection, decode, routing and reply, no storage and no engine).",
        "",
        "| C | W | ceiling msgs/s | "
        + " | ".join(f"{n.removeprefix('gateway-')} msgs/s (ratio)" for n in names)
        + " | "
        "ceiling p50 / p99 ms | " + " | ".join(f"{n.removeprefix('gateway-')} p50 / p99 ms" for n in names) + " | "
        "CPU µs/msg: ceiling / " + " / ".join(n.removeprefix("gateway-") for n in names) + " |",
        "|---:|---:|---:|" + "---:|" * len(names) + "---:|" + "---:|" * len(names) + "---:|",
    ]
    for key, ceiling in closed["ceiling"].items():
        c, w = key.split("x")
        cells = [c, w, _n(ceiling["msgs_per_s"])]
        for n in names:
            g = closed[n][key]
            cells.append(f"{_n(g['msgs_per_s'])} ({_pct(g['msgs_per_s'] / ceiling['msgs_per_s'])})")
        cells.append(f"{_ms(ceiling['p50_ms'])} / {_ms(ceiling['p99_ms'])}")
        cells += [f"{_ms(closed[n][key]['p50_ms'])} / {_ms(closed[n][key]['p99_ms'])}" for n in names]
        cpus = [ceiling.get("cpu_us_per_msg"), *(closed[n][key].get("cpu_us_per_msg") for n in names)]
        cells.append(" / ".join("?" if c is None else f"{c:.0f}" for c in cpus))
        lines.append("| " + " | ".join(cells) + " |")
    errors = sum(row["errors"] for by in closed.values() for row in by.values())
    lines += ["", f"Error replies during the runs: {errors}.", ""]
    if "16x8" in closed["ceiling"] and "gateway-full" in closed:
        full, ceiling16 = closed["gateway-full"]["16x8"], closed["ceiling"]["16x8"]
        ratio = full["msgs_per_s"] / ceiling16["msgs_per_s"]
        verdicts.append(("send path at C=16, W=8 >= 30 % of the ceiling", _pct(ratio), _verdict(ratio >= 0.3)))
        if "cpu_us_per_msg" in full:
            cpu, base_cpu = full["cpu_us_per_msg"], ceiling16["cpu_us_per_msg"]
            verdicts.append(
                (
                    "gateway CPU per `message.send` at C=16, W=8 <= 50 µs",
                    f"{cpu:.0f} µs ({cpu / base_cpu:.0f}x the ceiling's {base_cpu:.0f} µs)" + _split(full),
                    _verdict(cpu <= 50),
                )
            )
        if "gateway-ping" in closed:
            ping = closed["gateway-ping"]["16x8"]["msgs_per_s"] / ceiling16["msgs_per_s"]
            verdicts.append(("(for reference) `ping` at C=16, W=8 vs the ceiling", _pct(ping), ""))
    fixed = r.get("fixed_rate") or {}
    if fixed:
        rate = r["settings"]["rate"]
        base = fixed["ceiling"]
        lines += [
            f"Fixed rate: {rate:,.0f} requests/s spread over {r['settings']['rate_connections']} connections, "
            "latency from each request's *scheduled* send time (no coordinated omission), median of the runs. "
            "Added = gateway minus ceiling at the same percentile.",
            "",
            "| target | p50 ms | p99 ms | p99.9 ms | max ms | added p50 ms | added p99 ms | added p99.9 ms "
            "| CPU µs/msg |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in fixed.items():
            added = [row[k] - base[k] for k in ("p50_ms", "p99_ms", "p999_ms")]
            cells = [name, _ms(row["p50_ms"]), _ms(row["p99_ms"]), _ms(row["p999_ms"]), _ms(row["max_ms"])]
            cells += ["" if name == "ceiling" else _ms(a) for a in added]
            cells.append(_cpu(row))
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines += render_curve(r, rate, fixed)
        if "gateway-full" in fixed:
            added_p99 = fixed["gateway-full"]["p99_ms"] - base["p99_ms"]
            verdicts.append(
                (
                    f"gateway-added p99 <= 3 ms at {rate:,.0f} msgs/s (send path)",
                    f"{added_p99:.2f} ms",
                    _verdict(added_p99 <= 3),
                )
            )
        if "gateway-accept" in fixed:
            added_accept = fixed["gateway-accept"]["p99_ms"] - base["p99_ms"]
            verdicts.append(
                (
                    f"(for reference) added p99 at {rate:,.0f}/s when replying at the durable accept "
                    "(`ZAPGATE_SEND_WAIT_S=0`)",
                    f"{added_accept:.2f} ms",
                    "",
                )
            )
        if "gateway-ping" in fixed:
            added_ping = fixed["gateway-ping"]["p99_ms"] - base["p99_ms"]
            verdicts.append((f"(for reference) added p99 of `ping` at {rate:,.0f}/s", f"{added_ping:.2f} ms", ""))
    return lines


def _cpu(row: dict[str, Any]) -> str:
    cpu = row.get("cpu_us_per_msg")
    return "?" if cpu is None else f"{cpu:,.0f}"


def render_curve(r: dict[str, Any], rate: float, fixed: dict[str, Any]) -> list[str]:
    """The durable send path at several fixed rates: latency and CPU per message against the offered load."""
    curve: dict[str, dict[str, Any]] = dict(r.get("rate_curve") or {})
    if not curve:
        return []
    curve[f"{rate:g}"] = fixed
    names = [n for n in ("gateway-full", "gateway-normal", "gateway-accept") if all(n in by for by in curve.values())]
    if "ceiling" not in next(iter(curve.values())) or not names:
        return []
    lines = [
        f"The same at other fixed rates (`--rate-curve`, over {r['settings']['rate_connections']} connections, median "
        "of the runs): the gateway's latency and CPU per message against the offered load. `full` and `normal` as "
        "above; `accept` is the send path replying at the durable accept (`ZAPGATE_SEND_WAIT_S=0`). CPU % is the "
        "gateway process's CPU time per second of the run, in one core's time.",
        "",
        "| msgs/s offered | ceiling p99 ms | "
        + " | ".join(
            f"{n.removeprefix('gateway-')} {col}" for n in names for col in ("p50 / p99 ms", "CPU µs/msg", "CPU %")
        )
        + " |",
        "|---:|---:|" + "---:|" * (3 * len(names)),
    ]
    for key in sorted(curve, key=float):
        by = curve[key]
        cells = [_n(float(key)), _ms(by["ceiling"]["p99_ms"])]
        for n in names:
            row = by[n]
            cpu = row.get("cpu_us_per_msg")
            cells += [f"{_ms(row['p50_ms'])} / {_ms(row['p99_ms'])}", _cpu(row)]
            cells.append("?" if cpu is None else f"{cpu * float(key) / 1e4:.0f} %")
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def render_idle(r: dict[str, Any], verdicts: list[tuple[str, str, str]]) -> list[str]:
    lines = [
        "## Scenario 2: idle authenticated connections",
        "",
        f"Command: `{r['command']}` (open-file limit raised to {r['fd_limit']:,} by the script). RSS growth of "
        "the server process per connection, after warm-up; gateway connections are spread over 100 tenants and "
        "all counted as subscribed by `/healthz`.",
        "",
        "| connections | ceiling RSS MiB | ceiling KiB / conn | uvicorn floor KiB / conn | gateway RSS MiB "
        "| gateway KiB / conn | gateway / ceiling | gateway / uvicorn floor |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    floor_rows = r["uvicorn"]["rows"] if "uvicorn" in r else [None] * len(r["gateway"]["rows"])
    for c, u, g in zip(r["ceiling"]["rows"], floor_rows, r["gateway"]["rows"], strict=True):
        floor = f"{u['per_connection_kib']:.1f}" if u else ""
        vs_floor = f"{g['per_connection_kib'] / u['per_connection_kib']:.2f}x" if u else ""
        lines.append(
            f"| {c['connections']:,} | {c['rss_kib'] / 1024:.1f} | {c['per_connection_kib']:.1f} | {floor} | "
            f"{g['rss_kib'] / 1024:.1f} | {g['per_connection_kib']:.1f} | "
            f"{g['per_connection_kib'] / c['per_connection_kib']:.2f}x | {vs_floor} |"
        )
    last, bare = r["gateway"]["rows"][-1], r["ceiling"]["rows"][-1]
    verdicts.append(
        (
            f"<= 16 KiB per idle authenticated client (at {last['connections']:,})",
            f"{last['per_connection_kib']:.1f} KiB ({last['per_connection_kib'] / bare['per_connection_kib']:.2f}x "
            f"the bare websockets server's {bare['per_connection_kib']:.1f} KiB)",
            _verdict(last["per_connection_kib"] <= 16),
        )
    )
    return [*lines, ""]


def render_sessions(r: dict[str, Any], verdicts: list[tuple[str, str, str]], idle: dict[str, Any] | None) -> list[str]:
    bare = idle["ceiling"]["rows"][-1]["per_connection_kib"] if idle else None
    lines = [
        "## Scenario 3: connected simulator sessions",
        "",
        f"Command: `{r['command']}`. One tenant, sessions paired through `sim.scan`, simulator latency 0. "
        "RSS growth of the gateway per connected session after 10 warm-up sessions (it includes the simulator's "
        "own per-device state, so it is an upper bound for the gateway's share); then one `message.send` "
        "through every session, each answered `sent`."
        + (" The ratio column compares with one idle connection to the ceiling server in this run." if bare else ""),
        "",
        "| sessions | gateway RSS MiB | KiB / session | ratio to a bare idle connection | paired / s "
        "| one send through each |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for row in r["rows"]:
        ratio = f"{row['per_session_kib'] / bare:.1f}x" if bare else "n/a"
        lines.append(
            f"| {row['sessions']:,} | {row['rss_kib'] / 1024:.1f} | {row['per_session_kib']:.1f} | {ratio} | "
            f"{row['paired_per_s']:,.0f} | {row['send_to_all_s']:.2f} s |"
        )
    restore = r["restore"]
    runs = sorted(restore["runs"], key=lambda x: x["all_connected_s"])
    mid = runs[len(runs) // 2]
    empty = sorted(e["listening_s"] for e in restore["empty_runs"])[len(restore["empty_runs"]) // 2]
    lines += [
        "",
        f"Restore: gateway restarted on the data directory holding {restore['sessions']:,} paired sessions, "
        f"median of {len(runs)}: accepting connections after **{mid['listening_s']:.2f} s**, every session connected "
        f"after **{mid['all_connected_s']:.2f} s**; an empty gateway accepts connections after {empty:.2f} s in the "
        f"same run (ratio {mid['all_connected_s'] / empty:.1f}x). Stopping it with SIGTERM took {r['stop_s']:.2f} s.",
        "",
    ]
    last = r["rows"][-1]
    verdicts.append(
        (
            "<= 100 KiB per simulator session",
            f"{last['per_session_kib']:.1f} KiB",
            _verdict(last["per_session_kib"] <= 100),
        )
    )
    if last["sessions"] >= 1000:  # a smaller run says nothing about this target
        verdicts.append((">= 1,000 sessions per process", f"{last['sessions']:,} connected, all sending", "met"))
    if restore["sessions"] >= 1000:
        verdicts.append(
            (
                "restore of 1,000 sessions <= 5 s",
                f"{mid['all_connected_s']:.2f} s",
                _verdict(mid["all_connected_s"] <= 5),
            )
        )
    return lines


def render_engine(r: dict[str, Any], sessions: dict[str, Any] | None) -> list[str]:
    sim = sessions["rows"][-1]["per_session_kib"] if sessions else None
    rows = r["rows"]
    lines = [
        "## Scenario 4: the real engine's worker (neonize), offline",
        "",
        f"Command: `{r['command']}`. The whatsapp engine's worker process (`python -m "
        "zapgate.engines.whatsapp.worker`, as the supervisor starts it), driven over its socket channel. Each "
        "session is a new pairing whose whatsmeow client is created and tries to connect, through a proxy address "
        "on 127.0.0.1 where nothing listens, so a connect fails on any machine (events below). Connects run one at "
        "a time in the worker, so the later sessions may still wait for their first connect when RSS is read.",
        "",
        "| sessions | worker RSS MiB | threads | fds | events received |",
        "|---:|---:|---:|---:|---|",
        f"| 0 (neonize loaded) | {r['base_rss_kib'] / 1024:.1f} | | | |",
    ]
    for row in rows:
        events = ", ".join(f"{k} x{v}" for k, v in row["events"].items())
        lines.append(
            f"| {row['sessions']} | {row['rss_kib'] / 1024:.1f} | {row['threads']} | {row['fds']} | {events} |"
        )
    lines += [
        "",
        f"Per additional session: **{r['per_session_kib']:.0f} KiB** (the first one costs "
        f"{r['first_session_kib']:.0f} KiB, and the worker with neonize loaded {r['base_rss_kib'] / 1024:.1f} MiB)"
        + (f"; that is {r['per_session_kib'] / sim:.0f}x a connected simulator session of scenario 3." if sim else ".")
        + " A paired, connected session holds more (Signal sessions, app state, caches) and cannot be measured "
        "offline.",
        "",
    ]
    return lines


def render_fanout(r: dict[str, Any]) -> list[str]:
    c, w = r["settings"]["connections"], r["settings"]["in_flight"]
    lines = [
        "## Scenario 5: many connections of one tenant, with and without subscriptions",
        "",
        f"Command: `{r['command']}`. {c} connections send `message.send` in a closed loop ({w} in flight each), "
        "each on a session of its own; every send pushes two `message.status` events. Baseline: "
        f"{c} tenants with one connection each. `one-tenant`: one tenant, {c} connections that receive every "
        "session's events; `one-tenant-subscribed`: the same, each connection subscribed to its own session in "
        "its `auth` frame. The three are measured in turn, each once the gateway is quiet again. Gateway CPU is the "
        "process's user + system time per message.",
        "",
        "| target | msgs/s | vs baseline | p50 ms | p99 ms | gateway CPU µs/msg | vs baseline |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in r["targets"].items():
        lines.append(
            f"| {name} | {_n(row['msgs_per_s'])} | {row['ratio_to_tenants']:.2f}x | {_ms(row['p50_ms'])} | "
            f"{_ms(row['p99_ms'])} | {_n(row['cpu_us_per_msg'])} | {row['cpu_ratio_to_tenants']:.2f}x |"
        )
    return [*lines, ""]


def render_inbound(r: dict[str, Any], verdicts: list[tuple[str, str, str]]) -> list[str]:
    lines = [
        "## Scenario 6: an inbound burst",
        "",
        f"Command: `{r['command']}`. One tenant with {r['sessions']} paired sessions; their network is dropped, "
        f"{r['messages']:,} messages are written to them by a simulated contact (kept by the simulator as mail, as "
        "WhatsApp keeps a phone's messages while it is offline), then every session comes back online at once. "
        "Each message is stored (its row, its contact and its `message.received` event, committed) before it is "
        "pushed; the figure is the messages divided by the time from the network's return to the last event at a "
        "client subscribed to the tenant. Another tenant pings the gateway at "
        f"{r['settings']['ping_rate']:.0f}/s from its own process; its p99 during the burst is set against its p99 "
        f"in the {r['settings']['quiet']:g} s before.",
        "",
        "| messages | sessions | seconds | events/s | gateway CPU µs/event | other tenant's ping p99 before / during |",
        "|---:|---:|---:|---:|---:|---:|",
        f"| {r['messages']:,} | {r['sessions']} | {r['seconds']:.2f} | {_n(r['events_per_s'])} | "
        f"{r['cpu_us_per_event']:.0f} | {_ms(r['others_ping_p99_ms_before'])} / "
        f"{_ms(r['others_ping_p99_ms_during'])} ms |",
        "",
    ]
    if "loop_us_per_event" in r:  # results written before these were measured lack them
        loop, writer, others = 100 * r["loop_busy"], 100 * r["writer_busy"], r["threads_us_per_event"]
        lines += [
            "Where the burst's time went: the event loop (the gateway's first thread) used "
            f"{r['loop_us_per_event']:.0f} µs of CPU per event and was busy {loop:.0f} % of the burst; its other "
            f"threads (the writers and readers of `zapgate.db` and `simulator.db`) used {others:.0f} "
            f"µs per event; the `zapgate.db` writer was busy {writer:.0f} % of the burst "
            f"(`zapgate_db_writer_busy_seconds_total`), in {r['commits']:.0f} group commits. The loop and that writer "
            f"were busy {loop + writer:.0f} % of the burst between them.",
            "",
        ]
    verdicts.append(
        (
            f"inbound burst of {r['messages']:,} over {r['sessions']} sessions >= 20,000 events/s",
            f"{_n(r['events_per_s'])} events/s ({r['cpu_us_per_event']:.0f} µs CPU/event)",
            _verdict(r["events_per_s"] >= 20000),
        )
    )
    before, during = r["others_ping_p99_ms_before"], r["others_ping_p99_ms_during"]
    verdicts.append(
        (
            "other tenants' p99 unaffected by the burst (at most 3 ms added)",
            f"{_ms(before)} ms before, {_ms(during)} ms during",
            _verdict(during - before <= 3),
        )
    )
    return lines


def render_inbound_storage(r: dict[str, Any]) -> list[str]:
    full, bare = r["variants"]["full"], r["variants"]["no-history"]
    rows = [
        f"| {name} | {v['cpu_us']:.1f} | {v['wall_us']:.1f} | {v['statements_us']:.1f} | {v['commit_us']:.1f} | "
        f"{_n(v['wal_bytes'])} |"
        for name, v in (("as stored", full), ("without the chat-history entry", bare))
    ]
    return [
        "## Scenario 7: a received message's storage, alone",
        "",
        f"Command: `{r['command']}`. What the writer thread of scenario 6 does, without the rest of the gateway: "
        f"{r['messages']:,} received messages over {r['sessions']} sessions written in transactions of "
        f"{r['batch']} (the batch function of `Storage.submit_inbound`, then `COMMIT`) on one SQLite connection "
        f"with the gateway's schema, `synchronous={r['sync'].upper()}`, in a temporary directory (on the benchmark "
        "machine, the same disk as the gateway's data). Once as the gateway stores a message (its `inbound` row, "
        "its contact, its chat-history entry and its event), once without the chat-history entry. WAL bytes are "
        "what each message adds to the write-ahead log: SQLite writes every page a transaction changed, whole, so "
        "they count the B-tree pages a message dirties.",
        "",
        "| variant | CPU µs/message | wall µs/message | statements µs | commit µs | WAL bytes/message |",
        "|---|---:|---:|---:|---:|---:|",
        *rows,
        "",
        f"The chat-history entry is {100 * (1 - bare['cpu_us'] / full['cpu_us']):.0f} % of the CPU and "
        f"{100 * (1 - bare['wal_bytes'] / full['wal_bytes']):.0f} % of the WAL bytes of a received message's storage.",
        "",
    ]


def render(results: dict[str, Any], reduced: str | None) -> str:
    m = machine()
    verdicts: list[tuple[str, str, str]] = []
    body: list[str] = []
    if "send_path" in results:
        body += render_send(results["send_path"], verdicts)
    if "idle_clients" in results:
        body += render_idle(results["idle_clients"], verdicts)
    if "sessions" in results:
        body += render_sessions(results["sessions"], verdicts, results.get("idle_clients"))
    if "engine_worker" in results:
        body += render_engine(results["engine_worker"], results.get("sessions"))
    if "tenant_fanout" in results:
        body += render_fanout(results["tenant_fanout"])
    if "inbound" in results:
        body += render_inbound(results["inbound"], verdicts)
    if "inbound_storage" in results:
        body += render_inbound_storage(results["inbound_storage"])
    packages = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    head = [
        "# Performance",
        "",
        "<!-- Generated by `python3 tasks.py bench` (bench/run.py); the analysis comes from bench/findings.md. -->",
        "",
        f"Report written {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC"
        + (f" with `--{reduced}` (reduced sizes, single runs)" if reduced else "")
        + f" on {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}, Python {m['python']} "
        f"({packages}). The machine is shared with other work, so absolute figures drift between runs; each "
        "figure is set against a baseline measured in the same run, and throughput points are medians.",
        "",
        "Scenarios measured at: "
        + ", ".join(f"{name} {r.get('measured_at', 'unknown')}" for name, r in results.items())
        + " (a scenario re-run alone with `--only` keeps the others' last results).",
        "",
        "The gateway runs as a user runs it, `zapgate serve --engine simulator` in its own process, with "
        "`ZAPGATE_PACING=false`, `ZAPGATE_SIM_LATENCY_S=0` and nine silent contacts in `ZAPGATE_SIM_CONTACTS`; "
        "the load generator (`bench/loadgen.py`: asyncio, uvloop, a raw `websockets` client) is a third "
        "process. The ceiling (`bench/ceiling.py`) is a bare `websockets` server on uvloop, compression off, that "
        "parses each JSON frame and answers with a reply shaped like the gateway's.",
        "",
        "## Targets",
        "",
        "| target | this run | verdict |",
        "|---|---|---|",
        *[f"| {t} | {v} | {ok} |" for t, v, ok in verdicts],
        "",
    ]
    findings = (BENCH / "findings.md").read_text() if (BENCH / "findings.md").exists() else ""
    reproduce = [
        "## How to reproduce",
        "",
        "```sh",
        "python3 tasks.py bench            # everything, a few minutes; rewrites this file",
        "python3 tasks.py bench --quick    # smaller sizes, single runs, about a minute",
        "```",
        "",
        "Each scenario also runs alone and prints JSON, e.g. `.venv/bin/python bench/send_path.py --help`; "
        "raw results of the last run are in `bench/results/` (not committed). Linux only (RSS comes from "
        "`/proc`). Scenario 2 needs an open-file hard limit above 10,300 (`ulimit -Hn`).",
        "",
    ]
    return "\n".join([*head, *body, findings.rstrip(), "", *reproduce])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="smaller sizes and single runs (about a minute)")
    sizes.add_argument("--tiny", action="store_true", help="smallest sizes: checks the scripts run (for tests)")
    parser.add_argument("--only", help="comma-separated scenarios to run (default: all)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON results go")
    parser.add_argument("--output", type=Path, default=REPORT, help="the report to write")
    parser.add_argument("--render-only", action="store_true", help="re-render the report from existing results")
    args = parser.parse_args()
    plan = TINY if args.tiny else QUICK if args.quick else FULL
    if args.render_only:
        found = {n: args.results / f"{n}.json" for n in plan}
        results = {n: json.loads(path.read_text()) for n, path in found.items() if path.exists()}
    else:
        results = run_scenarios(plan, set(args.only.split(",")) if args.only else None, args.results)
        for name in plan:  # with --only, the report keeps the other scenarios' last results
            if name not in results and (args.results / f"{name}.json").exists():
                results[name] = json.loads((args.results / f"{name}.json").read_text())
    args.output.write_text(render(results, "tiny" if args.tiny else "quick" if args.quick else None))
    print(f"wrote {args.output}", flush=True)


if __name__ == "__main__":
    main()
