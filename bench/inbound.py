"""Scenario 5, an inbound burst: many received messages stored durably and pushed to a subscribed client.

One tenant runs S paired simulator sessions. Their network is dropped (``sim.network``), and simulated contacts
write N messages to them (``sim.receive``, N/S each), which WhatsApp's side (the simulator) keeps as mail, as
WhatsApp keeps a phone's messages while it is offline. Then every session's network comes back at once: the
mail arrives as a burst, as after a history sync or in a busy group. Each message is stored (the ``inbound``
row, its contact and its ``message.received`` event, committed) before it is pushed; a client subscribed to
the tenant counts the ``message.received`` events (the connection that set the sessions up follows only their
``session.*`` events by then: one client receives the burst). The figure is N divided by the time from the network's
return to the last event at the client.

Meanwhile another tenant's connection (in its own process) sends ``ping`` at a fixed rate; its p99 during the
burst is set against its p99 over the same time just before (the baseline of the same run): a burst of one
tenant should not slow the others.

    python bench/inbound.py --sessions 100 --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import uvloop
from websockets.asyncio.client import ClientConnection

from loadgen import _open_one, percentile
from procs import Client, Server, cpu_seconds, create_tokens, emit, phone, start_gateway, thread_cpu_seconds

CONTACT = "5511977776666"


class _Frame(msgspec.Struct):
    type: str = ""
    event: str | None = None
    id: str | None = None


_decode = msgspec.json.Decoder(_Frame).decode


async def _count_events(ws: ClientConnection, wanted: int, done: asyncio.Future[float]) -> None:
    seen = 0
    async for raw in ws:
        frame = _decode(raw)
        if frame.type == "event" and frame.event == "message.received":
            seen += 1
            if seen == wanted:
                done.set_result(time.perf_counter())
                return


async def _pings(url: str, token: str, rate: float, seconds: float) -> list[tuple[float, float]]:
    """``ping`` at a fixed rate for ``seconds``: (scheduled wall-clock time, latency from it) of every reply.
    Runs in its own process (``--pinger``), so that the burst's client does not delay it."""
    ws = await _open_one(url, token, 30)
    pending: dict[str, float] = {}
    marks: list[tuple[float, float]] = []

    async def read() -> None:
        async for raw in ws:
            frame = _decode(raw)
            if frame.type == "reply" and frame.id in pending:
                at = pending.pop(frame.id)
                marks.append((at, time.time() - at))

    reader = asyncio.create_task(read())
    interval = 1.0 / rate
    start = time.time()
    k = 0
    try:
        while (at := start + k * interval) < start + seconds:
            delay = at - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            pending[f"p{k}"] = at
            await ws.send(f'{{"type":"ping","id":"p{k}"}}')
            k += 1
        await asyncio.sleep(0.5)
    finally:
        reader.cancel()
        await ws.close()
    return marks


def _where_the_time_went(
    loop: float,
    cpu: float,
    metrics_before: dict[str, float],
    metrics_after: dict[str, float],
    events: int,
    seconds: float,
) -> dict[str, float]:
    """Where the burst's time went: CPU per event of the event loop (``loop`` seconds, the gateway's first thread)
    and of its other threads (database writers and readers: the rest of the process's ``cpu``), how busy the loop
    and the ``zapgate.db`` writer were over the burst, and the writer's group commits (``/metrics``)."""

    def grew(name: str) -> float:
        return metrics_after.get(name, 0.0) - metrics_before.get(name, 0.0)

    return {
        "loop_us_per_event": 1e6 * loop / events,
        "threads_us_per_event": 1e6 * (cpu - loop) / events,
        "loop_busy": loop / seconds,
        "writer_busy": grew("zapgate_db_writer_busy_seconds_total") / seconds,
        "commits": grew("zapgate_db_commits_total"),
    }


def _p99(marks: list[Any], start: float, stop: float) -> float:
    values = sorted(1000.0 * lat for at, lat in marks if start <= at < stop)
    return percentile(values, 0.99)


async def burst(
    server: Server,
    token: str,
    other: str,
    args: argparse.Namespace,
    workdir: Path,
    on_burst: Callable[[bool], None] | None = None,
) -> dict[str, Any]:
    """``on_burst``: called with True just before the mail is handed over, and with False once the last event
    arrived (``bench/statements.py`` measures that window)."""
    url, pid = server.url, server.pid
    sessions = [f"s{i:04d}" for i in range(args.sessions)]
    per_session = args.messages // args.sessions
    total = per_session * args.sessions
    setup = await Client.open(url, token)
    try:
        limit = asyncio.Semaphore(32)

        async def pair(i: int, name: str) -> None:
            async with limit:
                await setup.pair(name, phone(i))

        began = time.perf_counter()
        await asyncio.gather(*(pair(i, s) for i, s in enumerate(sessions)))
        print(f"  paired {len(sessions)} sessions in {time.perf_counter() - began:.1f} s", flush=True)
        await asyncio.gather(*(setup.call("sim.network", session=s, online=False) for s in sessions))
        began = time.perf_counter()
        sends = asyncio.Semaphore(64)

        async def receive(session: str, k: int) -> None:
            async with sends:
                await setup.call("sim.receive", session=session, text=f"burst message {k}", **{"from": f"+{CONTACT}"})

        await asyncio.gather(*(receive(s, k) for k in range(per_session) for s in sessions))
        print(f"  {total} messages waiting as mail after {time.perf_counter() - began:.1f} s", flush=True)

        # The set-up connection follows only the sessions' own events from here: the burst is pushed to one
        # client, the watcher (before round 21 it went to this connection too, twice the frames to write).
        await setup.call("subscribe", events=["session.*"])
        watcher = await _open_one(url, token, 30)
        done: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        counter = asyncio.create_task(_count_events(watcher, total, done))
        marks_file = workdir / "pings.json"
        pinger = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--pinger",
            url,
            other,
            str(args.ping_rate),
            str(args.quiet + args.ping_seconds),
            str(marks_file),
        )
        await asyncio.sleep(args.quiet)  # the others' baseline, before the burst
        cpu_before, threads_before, metrics_before = cpu_seconds(pid), thread_cpu_seconds(pid), server.metrics()
        if on_burst is not None:
            on_burst(True)
        start, wall_start = time.perf_counter(), time.time()
        await asyncio.gather(*(setup.call("sim.network", session=s, online=True) for s in sessions))
        end = await asyncio.wait_for(done, args.timeout)
        if on_burst is not None:
            on_burst(False)
        wall_end = wall_start + (end - start)
        # The kernel scales a thread's CPU time and the process's separately (each by its own run time), so the
        # loop's share can come out a fraction of a clock tick above the process's: it is counted as all of it.
        loop = thread_cpu_seconds(pid).get(pid, 0.0) - threads_before.get(pid, 0.0)
        cpu = cpu_seconds(pid) - cpu_before
        loop = min(loop, cpu)
        metrics = server.metrics()
        if await pinger.wait() != 0:
            raise RuntimeError(f"the other tenant's pinger failed (exit code {pinger.returncode}); see above")
        marks = [tuple(m) for m in json.loads(marks_file.read_text())]
        counter.cancel()
        await watcher.close()
        took = end - start
        result = {
            "sessions": args.sessions,
            "messages": total,
            "seconds": took,
            "events_per_s": total / took,
            "cpu_us_per_event": 1e6 * cpu / total,
            "others_ping_p99_ms_before": _p99(marks, wall_start - args.quiet, wall_start),
            "others_ping_p99_ms_during": _p99(marks, wall_start, wall_end),
            **_where_the_time_went(loop, cpu, metrics_before, metrics, total, took),
        }
        print(
            f"  {total} events in {took:.2f} s: {result['events_per_s']:,.0f} events/s, "
            f"{result['cpu_us_per_event']:.0f} us CPU/event; other tenant's ping p99 "
            f"{result['others_ping_p99_ms_before']:.2f} ms before, {result['others_ping_p99_ms_during']:.2f} ms during",
            flush=True,
        )
        print(
            f"  event loop {result['loop_us_per_event']:.0f} us/event (busy {result['loop_busy']:.0%}), other threads "
            f"{result['threads_us_per_event']:.0f} us/event; the database writer busy {result['writer_busy']:.0%} "
            f"in {result['commits']:.0f} group commits",
            flush=True,
        )
        return result
    finally:
        await setup.close()


def main() -> None:
    if sys.argv[1:2] == ["--pinger"]:  # the other tenant, in its own process
        # Its marks go to a file, not to stdout, which anything the process prints would corrupt.
        url, token, rate, seconds, marks_path = sys.argv[2:7]
        Path(marks_path).write_text(json.dumps(uvloop.run(_pings(url, token, float(rate), float(seconds)))))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--ping-rate", type=float, default=200.0, help="the other tenant's pings per second")
    parser.add_argument("--quiet", type=float, default=2.0, help="seconds of the others' baseline before the burst")
    parser.add_argument("--ping-seconds", type=float, default=40.0, help="how long the other tenant pings")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--sync", default="full", help="sqlite_synchronous of the gateway")
    parser.add_argument("--source", help="run the gateway from this src directory (a before/after comparison)")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        data_dir = Path(tmp) / "gateway"
        source = Path(args.source).resolve() if args.source else None
        token, other = create_tokens(data_dir, ["burst", "other"], source)
        server = start_gateway(data_dir, source=source, sqlite_synchronous=args.sync, max_inflight_commands=128)
        try:
            result = uvloop.run(burst(server, token, other, args, Path(tmp)))
        finally:
            server.stop()
    emit({"scenario": "inbound", "settings": vars(args), **result}, args.out)


if __name__ == "__main__":
    main()
