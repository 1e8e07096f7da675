"""The load generator: C WebSocket connections, W requests in flight on each, for T seconds.

It speaks the gateway's handshake (``hello``, then ``auth`` → ``ready``) and sends request frames made by the
caller; it counts ``reply`` frames by ``id`` and ignores everything else (events). Both the gateway and the
ceiling server are driven by exactly this code, so the client's own cost is the same on both sides of a ratio.

Two modes:

- **closed loop** (``rate=None``): each connection keeps ``in_flight`` requests outstanding; throughput is
  what the server sustains.
- **fixed rate** (``rate=R``): requests leave on a fixed schedule of ``R`` per second over all connections,
  whatever the replies do; latency is measured from the *scheduled* send time, so a stalled server is
  charged for the requests it delayed (no coordinated omission).

Latencies are kept whole (one float per reply) and percentiles are exact.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection, connect

__all__ = ["LoadResult", "close_all", "open_connections", "percentile", "run_load"]

MakeRequest = Callable[[int, str], str]
"""(connection index, request id) → the request frame's JSON text."""


class _Incoming(msgspec.Struct):
    type: str = ""
    id: str | None = None
    ok: bool | None = None
    error: Any = None


_decode = msgspec.json.Decoder(_Incoming).decode


@dataclass
class LoadResult:
    connections: int
    in_flight: int
    seconds: float
    rate: float | None
    completed: int
    errors: int
    msgs_per_s: float
    p50_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    first_error: str | None = None
    replies: int = 0
    """Every reply received, warm-up and drain included (what the server's CPU time over the run paid for)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of already sorted values, nearest rank."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


async def _open_one(url: str, token: str, timeout: float, auth: dict[str, Any] | None = None) -> ClientConnection:
    ws = await connect(url, compression=None, open_timeout=timeout, ping_interval=None, max_queue=None)
    hello = _decode(await asyncio.wait_for(ws.recv(), timeout))
    if hello.type != "hello":
        raise RuntimeError(f"expected hello, got {hello.type!r}")
    await ws.send(msgspec.json.encode({"type": "auth", "token": token, **(auth or {})}).decode())
    while True:
        frame = _decode(await asyncio.wait_for(ws.recv(), timeout))
        if frame.type == "ready":
            return ws
        if frame.type == "error":
            raise RuntimeError(f"authentication refused: {frame}")


async def open_connections(
    url: str,
    tokens: Sequence[str],
    count: int,
    *,
    concurrency: int = 100,
    timeout: float = 30.0,
    auth: Callable[[int], dict[str, Any]] | None = None,
) -> list[ClientConnection]:
    """Open ``count`` authenticated connections, token ``i % len(tokens)`` for connection ``i``; ``auth(i)``
    gives more fields for connection ``i``'s ``auth`` frame (a subscription)."""
    limit = asyncio.Semaphore(concurrency)

    async def one(i: int) -> ClientConnection:
        async with limit:
            return await _open_one(url, tokens[i % len(tokens)], timeout, auth(i) if auth else None)

    return list(await asyncio.gather(*(one(i) for i in range(count))))


class _Conn:
    """One connection's bookkeeping: send times by request id, and (receive time, latency) of each reply."""

    def __init__(self, index: int, ws: ClientConnection, make: MakeRequest) -> None:
        self.index = index
        self.ws = ws
        self.make = make
        self.sent_at: dict[str, float] = {}
        self.done: list[tuple[float, float]] = []
        self.errors = 0
        self.first_error: str | None = None
        self._ids = itertools.count()

    async def send(self, at: float) -> None:
        request_id = f"c{self.index}-{next(self._ids)}"
        self.sent_at[request_id] = at
        await self.ws.send(self.make(self.index, request_id))

    def on_frame(self, raw: str | bytes, now: float) -> bool:
        """Record a reply; True when the frame was a reply to one of our requests."""
        frame = _decode(raw)
        if frame.type != "reply" or frame.id is None:
            return False
        sent = self.sent_at.pop(frame.id, None)
        if sent is None:
            return False
        if not frame.ok:
            self.errors += 1
            if self.first_error is None:
                self.first_error = str(frame.error)
        self.done.append((now, now - sent))
        return True


async def _closed_loop(conn: _Conn, in_flight: int, stop_at: float) -> None:
    clock = time.perf_counter
    for _ in range(in_flight):
        await conn.send(clock())
    while conn.sent_at:
        raw = await conn.ws.recv()
        now = clock()
        if conn.on_frame(raw, now) and now < stop_at:
            await conn.send(clock())


async def _fixed_rate(conn: _Conn, per_conn_rate: float, start: float, stop_at: float, offset: float) -> None:
    clock = time.perf_counter
    interval = 1.0 / per_conn_rate
    sending_done = asyncio.Event()

    async def sender() -> None:
        k = 0
        while True:
            at = start + (k + offset) * interval
            if at >= stop_at:
                break
            delay = at - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            await conn.send(at)
            k += 1
        sending_done.set()

    task = asyncio.create_task(sender())
    try:
        while not (sending_done.is_set() and not conn.sent_at):
            try:
                # Never an unbounded wait: at a low rate the last reply can come before the last send is due, and
                # the frame awaited then may never come (cancelling websockets' recv loses no frame).
                raw = await asyncio.wait_for(conn.ws.recv(), 0.05 if sending_done.is_set() else 0.5)
            except TimeoutError:
                continue
            conn.on_frame(raw, clock())
    finally:
        task.cancel()


async def run_load(
    connections: Sequence[ClientConnection],
    make_request: MakeRequest,
    *,
    in_flight: int = 1,
    seconds: float = 3.0,
    warmup: float = 0.5,
    rate: float | None = None,
    drain_timeout: float = 30.0,
) -> LoadResult:
    """Drive already opened connections; count replies received in the ``seconds`` after ``warmup``."""
    conns = [_Conn(i, ws, make_request) for i, ws in enumerate(connections)]
    clock = time.perf_counter
    start = clock()
    measure_from = start + warmup
    stop_at = measure_from + seconds
    if rate is None:
        runs = [_closed_loop(c, in_flight, stop_at) for c in conns]
    else:
        per_conn = rate / len(conns)
        runs = [_fixed_rate(c, per_conn, start, stop_at, i / len(conns)) for i, c in enumerate(conns)]
    await asyncio.wait_for(asyncio.gather(*runs), warmup + seconds + drain_timeout)
    latencies = sorted(lat for c in conns for (t, lat) in c.done if measure_from <= t < stop_at)
    errors = sum(c.errors for c in conns)
    first_error = next((c.first_error for c in conns if c.first_error), None)
    ms = [v * 1000.0 for v in latencies]
    return LoadResult(
        connections=len(conns),
        in_flight=in_flight,
        seconds=seconds,
        rate=rate,
        completed=len(latencies),
        errors=errors,
        msgs_per_s=len(latencies) / seconds,
        p50_ms=percentile(ms, 0.50),
        p99_ms=percentile(ms, 0.99),
        p999_ms=percentile(ms, 0.999),
        max_ms=ms[-1] if ms else float("nan"),
        first_error=first_error,
        replies=sum(len(c.done) for c in conns),
    )


async def close_all(connections: Sequence[ClientConnection]) -> None:
    await asyncio.gather(*(ws.close() for ws in connections), return_exceptions=True)
