"""Where a gateway's SQL goes: the CPU of each statement per message, by thread, next to each thread's whole CPU.

The gateway runs with ``bench/statement_probe`` first on its ``PYTHONPATH``: a ``sitecustomize`` that times every
``execute`` and ``executemany`` of Python's ``sqlite3`` with the calling thread's CPU clock, only while the
measured load runs. Two loads:

- ``send``: C connections, each its own tenant and session, W ``message.send`` in flight each, for a few seconds
  (``bench/send_path.py``'s closed loop, durable, simulator latency 0); with ``--rate``, at that fixed rate over
  the C connections instead (no bound on the requests in flight then, as in send_path's fixed-rate run);
- ``burst``: ``bench/inbound.py``'s burst (S sessions receive N messages kept as mail, handed over at once).

The probe's own cost (a Python call and two clock reads per statement, about 1 to 2 µs) is inside the figures, and
the run is slower than the benchmark's: the table shows where the SQL time goes, not the gateway's speed.

It also says which pages the commits wrote, by the table or index each belongs to: each database's WAL is read
every 0.1 s while the load runs (``PageSampling``, ``WalSampler``; commits whose frames a checkpoint let the next
ones overwrite between two reads are missed, so it is a sample). A commit writes every page it changed, whole:
this is what makes a commit of a few messages cost what it does.

    python bench/statements.py send --connections 16 --in-flight 8 --seconds 5
    python bench/statements.py send --connections 16 --in-flight 1 --rate 1000 --seconds 5
    python bench/statements.py burst --sessions 100 --messages 50000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sqlite3
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import uvloop

import inbound
import send_path
from loadgen import close_all, open_connections, run_load
from procs import BENCH, Server, cpu_seconds, create_tokens, emit, start_gateway, thread_cpu_seconds

PROBE = BENCH / "statement_probe"
TOP = 25
"""Statements listed (the most costly first); the totals count them all."""
DATABASES = ("zapgate.db", "simulator.db")
"""The gateway's databases whose commits' pages are counted."""
_WAL_HEADER = struct.Struct(">IIIIIIII")  # magic, version, page size, checkpoint, salt-1, salt-2, checksum x2
_FRAME_HEADER = struct.Struct(">IIII")  # page number, database size after a commit (else 0), salt-1, salt-2
_FRAME_HEADER_SIZE = 24  # and a checksum of two words (https://sqlite.org/fileformat2.html#walformat)


def _gateway(data_dir: Path, out: Path, **settings: Any) -> Server:
    """A gateway with the probe loaded (only it: the variables go to its environment, not to this process's)."""
    paths = (str(PROBE), os.environ.get("PYTHONPATH", ""))
    probe_env = {"PYTHONPATH": os.pathsep.join(p for p in paths if p), "BENCH_STATEMENTS_OUT": str(out)}
    return start_gateway(data_dir, extra_env=probe_env, **settings)


class _Window:
    """The measured window: the probe counts between two ``SIGUSR2``; the threads' CPU is read at both ends."""

    def __init__(self, server: Server, out: Path) -> None:
        self.server, self.out = server, out
        self.threads: dict[int, float] = {}  # CPU seconds by thread id: at the start, then over the window
        self.cpu = 0.0  # the process's CPU seconds: at the start, then over the window

    def __call__(self, starting: bool) -> None:
        pid = self.server.pid
        if starting:
            self.threads = thread_cpu_seconds(pid)
            self.cpu = cpu_seconds(pid)
            os.kill(pid, signal.SIGUSR2)
            return
        os.kill(pid, signal.SIGUSR2)
        after = thread_cpu_seconds(pid)
        self.threads = {tid: after[tid] - self.threads.get(tid, 0.0) for tid in after}
        self.cpu = cpu_seconds(pid) - self.cpu
        for _ in range(100):  # the probe writes its file from the gateway's main thread, at its next turn
            if self.out.exists():
                return
            time.sleep(0.05)
        raise RuntimeError("the gateway's statement probe wrote nothing (was it loaded?)")


def _report(window: _Window, units: int, unit: str) -> dict[str, Any]:
    probe = msgspec.json.decode(window.out.read_bytes())
    per = 1e6 / units
    threads: dict[str, dict[str, Any]] = {}
    for name, tid in probe["threads"].items():
        threads[name] = {"cpu_us": window.threads.get(tid, 0.0) * per, "sql_us": 0.0}
    if window.server.pid not in probe["threads"].values():  # the event loop ran no statement in the window
        threads["MainThread"] = {"cpu_us": window.threads.get(window.server.pid, 0.0) * per, "sql_us": 0.0}
    statements = []
    for thread, sql, calls, rows, spent in probe["statements"]:
        threads[thread]["sql_us"] += spent * per
        statements.append({"thread": thread, "sql": sql, "calls": calls, "rows": rows, "cpu_us": spent * per})
    statements.sort(key=lambda s: -s["cpu_us"])
    sql_us = sum(t["sql_us"] for t in threads.values())
    print(f"  {units} {unit}s: gateway CPU {window.cpu * per:.0f} us/{unit}, of it in SQLite calls {sql_us:.0f}")
    for name, t in sorted(threads.items()):
        print(f"    {name:<20} thread CPU {t['cpu_us']:6.1f} us/{unit}, SQL {t['sql_us']:6.1f}")
    for s in statements[:TOP]:
        where = f"{s['calls']:7d} calls {s['rows']:7d} rows  {s['thread']:<18}"
        print(f"    {s['cpu_us']:6.2f} us  {where} {s['sql'][:90]}")
    return {
        unit + "s": units,
        f"cpu_us_per_{unit}": window.cpu * per,
        f"sql_us_per_{unit}": sql_us,
        "threads": threads,
        "statements": statements,
    }


def wal_frames(wal: Path) -> tuple[tuple[int, int], list[tuple[int, int]]] | None:
    """The WAL's current frames: ``(its salts, [(page number, database size after a commit, else 0), ...])``, those
    written since its last reset (later frames are left from before it: their salts differ); None if it has no
    header yet."""
    try:
        data = wal.read_bytes()
    except FileNotFoundError:
        return None
    if len(data) < _WAL_HEADER.size:
        return None
    _magic, _version, page_size, _checkpoint, salt1, salt2, _c1, _c2 = _WAL_HEADER.unpack_from(data)
    frames = []
    offset = _WAL_HEADER.size
    while offset + _FRAME_HEADER_SIZE + page_size <= len(data):
        page, size_after, s1, s2 = _FRAME_HEADER.unpack_from(data, offset)
        if (s1, s2) != (salt1, salt2):
            break
        frames.append((page, size_after))
        offset += _FRAME_HEADER_SIZE + page_size
    return (salt1, salt2), frames


class WalSampler:
    """The pages written by a database's commits over a window, by the table or index they belong to.

    The WAL is read again and again (:class:`PageSampling`): a checkpoint lets the next commit start it from its
    first frame (with new salts), so frames are kept by ``(salts, index)`` and each read adds those not seen;
    commits whose frames were overwritten between two reads are missed, so this is a sample of the window's
    commits. The pages are then named from a copy of the database and its WAL (SQLite's ``dbstat``): the
    gateway's files are only read."""

    def __init__(self, database: Path) -> None:
        self.database = database
        self.wal = database.with_name(database.name + "-wal")
        self.generations: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self.before: tuple[tuple[int, int], int] | None = None  # the frames already there at the first read
        self.last = False  # the last read was made: later ones (still running in a thread) count for nothing
        self._lock = threading.Lock()

    def read(self, *, last: bool = False) -> None:
        current = wal_frames(self.wal)
        with self._lock:
            if self.last:
                return
            self.last = last
            if current is not None:
                salts, frames = current
                if self.before is None:
                    self.before = (salts, len(frames))
                if len(frames) > len(self.generations.get(salts, [])):
                    self.generations[salts] = frames

    def report(self) -> dict[str, Any] | None:
        """``{"commits", "frames", "per_commit": {table or index: pages per commit}}``; None without a commit."""
        pages: list[int] = []
        commits = 0
        for salts, frames in self.generations.items():
            if self.before is not None and self.before[0] == salts:
                frames = frames[self.before[1] :]  # written before the window
            last = max((i for i, (_, size_after) in enumerate(frames) if size_after), default=-1)
            pages.extend(page for page, _ in frames[: last + 1])  # frames after the last commit frame: unfinished
            commits += sum(1 for _, size_after in frames if size_after)
        if not commits:
            return None
        owner = self._owners()
        counts: dict[str, int] = {}
        for page in pages:
            name = owner.get(page, "(free at the end)")
            counts[name] = counts.get(name, 0) + 1
        per_commit = {name: n / commits for name, n in sorted(counts.items(), key=lambda kv: -kv[1])}
        return {"commits": commits, "frames": len(pages), "per_commit": per_commit}

    def _owners(self) -> dict[int, str]:
        """Each page's table or index, from a copy (made again if SQLite finds it torn: a checkpoint ran)."""
        for attempt in range(5):
            with tempfile.TemporaryDirectory(prefix="zapgate-pages-") as scratch:
                copy = Path(scratch) / self.database.name
                if self.wal.exists():  # the WAL first: the database copied after it lacks none of its pages
                    shutil.copyfile(self.wal, copy.with_name(self.wal.name))
                shutil.copyfile(self.database, copy)
                try:
                    with contextlib.closing(sqlite3.connect(copy)) as conn:  # it reads the copied WAL too
                        return dict(conn.execute("SELECT pageno, name FROM dbstat"))
                except sqlite3.DatabaseError:
                    if attempt == 4:
                        raise
        raise AssertionError("unreachable")


class PageSampling:
    """:class:`WalSampler` of each of the gateway's databases, from :meth:`start` to :meth:`stop`."""

    def __init__(self, data_dir: Path, every: float = 0.1) -> None:
        self.samplers = [WalSampler(data_dir / name) for name in DATABASES]
        self.every = every
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        for sampler in self.samplers:  # the frames already there are not the window's
            sampler.read()
        self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            for sampler in self.samplers:
                await asyncio.to_thread(sampler.read)

    def stop(self) -> None:
        """The last read, made now: the commits counted are those made before the first call (later calls read
        nothing more)."""
        for sampler in self.samplers:
            sampler.read(last=True)
        if self._task is not None:
            self._task.cancel()

    async def report(self) -> dict[str, Any]:
        """By database: :meth:`WalSampler.report`, for those whose commits were read."""
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        reports = {s.database.name: await asyncio.to_thread(s.report) for s in self.samplers}
        return {name: report for name, report in reports.items() if report is not None}


async def _burst(
    args: argparse.Namespace, server: Server, tokens: list[str], window: _Window, tmp: Path, pages: dict[str, Any]
) -> dict[str, Any]:
    token, other = tokens
    burst_args = argparse.Namespace(
        sessions=args.sessions, messages=args.messages, ping_rate=50.0, quiet=0.5, ping_seconds=1.0, timeout=600.0
    )
    assert server.data_dir is not None
    sampling = PageSampling(server.data_dir)

    def on_burst(starting: bool) -> None:
        window(starting)
        if starting:
            sampling.start()
        else:
            sampling.stop()  # before the burst's own figures are read, so its commits include every one counted

    try:
        outcome = await inbound.burst(server, token, other, burst_args, tmp, on_burst=on_burst)
    finally:
        sampling.stop()  # a second time once the burst ended: nothing more is read
    pages.update(await sampling.report())
    return outcome


def _print_pages(report: dict[str, Any]) -> None:
    for name, pages in report.items():
        each = pages["frames"] / pages["commits"]
        print(f"  {name}: {pages['commits']} of its commits read, {each:.1f} pages each, of:")
        for owner, n in pages["per_commit"].items():
            print(f"    {n:6.2f}  {owner}")


async def _send(
    args: argparse.Namespace, server: Server, tokens: list[str], window: _Window, pages: dict[str, Any]
) -> int:
    await send_path.pair_all(server, tokens)
    conns = await open_connections(server.url, tokens, args.connections)
    try:
        rate = args.rate or None
        await run_load(conns, send_path.make_request, in_flight=args.in_flight, seconds=1.0, rate=rate)  # warm up
        assert server.data_dir is not None
        sampling = PageSampling(server.data_dir)
        window(True)
        sampling.start()
        try:
            result = await run_load(
                conns, send_path.make_request, in_flight=args.in_flight, seconds=args.seconds, rate=rate
            )
        finally:
            sampling.stop()
        window(False)
        pages.update(await sampling.report())
        if result.errors:
            raise RuntimeError(f"{result.errors} sends failed: {result.first_error}")
        return result.replies
    finally:
        await close_all(conns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("load", choices=["send", "burst"])
    parser.add_argument("--connections", type=int, default=16, help="send: connections (tenants)")
    parser.add_argument("--in-flight", type=int, default=8, help="send: requests in flight per connection")
    parser.add_argument("--seconds", type=float, default=5.0, help="send: how long the measured load runs")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="send: a fixed rate in msgs/s over all connections (0: closed loop)"
    )
    parser.add_argument("--sessions", type=int, default=100, help="burst: sessions")
    parser.add_argument("--messages", type=int, default=50_000, help="burst: messages")
    parser.add_argument("--sync", default="full", help="sqlite_synchronous of the gateway")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="zapgate-bench-") as tmp:
        data_dir, out = Path(tmp) / "gateway", Path(tmp) / "statements.json"
        measure: Callable[[Server, _Window], Any]
        pages: dict[str, Any] = {}  # by database, read while the load runs
        if args.load == "send":
            tokens = create_tokens(data_dir, [f"t{i:04d}" for i in range(args.connections)])
            server = _gateway(data_dir, out, sqlite_synchronous=args.sync)
            measure = lambda server, window: _send(args, server, tokens, window, pages)  # noqa: E731
            unit = "message"
        else:
            tokens = create_tokens(data_dir, ["burst", "other"])
            server = _gateway(data_dir, out, sqlite_synchronous=args.sync, max_inflight_commands=128)
            measure = lambda server, window: _burst(args, server, tokens, window, Path(tmp), pages)  # noqa: E731
            unit = "event"
        try:
            window = _Window(server, out)
            outcome = uvloop.run(measure(server, window))
            units = outcome if isinstance(outcome, int) else int(outcome["messages"])
            result = _report(window, units, unit)
            if isinstance(outcome, dict):  # the burst's own figures: the database's group commits within it
                result["group_commits"] = outcome["commits"]
            result["pages"] = pages
            _print_pages(pages)
        finally:
            server.stop()
    emit({"scenario": "statements", "settings": vars(args), **result}, args.out)


if __name__ == "__main__":
    main()
