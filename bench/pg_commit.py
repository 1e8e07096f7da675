"""psycopg (zapgate's PostgreSQL driver) against asyncpg, on the write that matters: an event append.

One "write" is what every durable change of zapgate does on PostgreSQL: take the tenant's next sequence number
(``tenant_seq`` upsert ... RETURNING) and insert the event row, atomically. W writers each keep one write in
flight for T seconds; writes/s and latency percentiles are reported for:

- ``psycopg-group``: zapgate's own :class:`~zapgate.storage.Storage` (psycopg 3 in a writer thread, group
  commits: every write that arrives while a commit is in flight joins the next transaction, each in a savepoint);
- ``asyncpg-group``: the same group commit written with asyncpg on one connection (savepoint, upsert, insert per
  write, one COMMIT per group) — what the storage would be with asyncpg;
- ``asyncpg-pool``: asyncpg as usually used: a pool of connections, one transaction per write.

asyncpg is not a zapgate dependency: ``pip install asyncpg`` into the venv to include it (else it is skipped).

    python bench/pg_commit.py --writers 1,16,128 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import psycopg
import uvloop

from loadgen import percentile
from procs import emit

POSTGRES = os.environ.get("ZAPGATE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")
DATA = b'{"message_id":"3EB0123456789ABCDEF012","chat":"5511999990000@s.whatsapp.net","status":"sent"}'


@contextlib.contextmanager
def schema() -> Iterator[tuple[str, str]]:
    name = f"zb_{secrets.token_hex(5)}"
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    try:
        yield name, f"{POSTGRES}?options=-csearch_path%3D{name}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")


async def drive(write: Callable[[int], Awaitable[None]], writers: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    stop_at = time.perf_counter() + seconds

    async def writer(n: int) -> None:
        while time.perf_counter() < stop_at:
            began = time.perf_counter()
            await write(n)
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(writer(n) for n in range(writers)))
    ordered = sorted(v * 1000 for v in latencies)
    return {
        "writes_per_s": len(ordered) / seconds,
        "p50_ms": percentile(ordered, 0.5),
        "p99_ms": percentile(ordered, 0.99),
    }


async def psycopg_group(url: str, writers: int, seconds: float) -> dict[str, float]:
    from zapgate.storage import NewEvent, open_storage

    storage = open_storage(url)
    await storage.open()
    try:

        async def write(n: int) -> None:
            await storage.append_events([NewEvent(f"t{n % 8}", "main", "message.status", DATA)])

        return await drive(write, writers, seconds)
    finally:
        await storage.close()


UPSERT = (
    "INSERT INTO tenant_seq (tenant, seq) VALUES ($1, 1) "
    "ON CONFLICT (tenant) DO UPDATE SET seq = tenant_seq.seq + 1 RETURNING seq"
)
INSERT = "INSERT INTO events (tenant, seq, session, event, data, ts) VALUES ($1, $2, 'main', 'message.status', $3, $4)"


async def asyncpg_group(url: str, writers: int, seconds: float) -> dict[str, float]:
    import asyncpg

    conn = await asyncpg.connect(url.replace("?options=-csearch_path%3D", "?options=-c%20search_path%3D"))
    pending: list[tuple[int, asyncio.Future[None]]] = []
    flushing: asyncio.Task[None] | None = None

    async def flush() -> None:
        nonlocal pending, flushing
        try:
            while pending:
                await asyncio.sleep(0)
                group, pending = pending, []
                async with conn.transaction():
                    for n, _ in group:
                        async with conn.transaction():  # a savepoint, as zapgate's group commit has
                            seq = await conn.fetchval(UPSERT, f"t{n % 8}")
                            await conn.execute(INSERT, f"t{n % 8}", seq, DATA, time.time())
                for _, future in group:
                    future.set_result(None)
        finally:
            flushing = None

    async def write(n: int) -> None:
        nonlocal flushing
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        pending.append((n, future))
        if flushing is None:
            flushing = asyncio.create_task(flush())
        await future

    try:
        return await drive(write, writers, seconds)
    finally:
        await conn.close()


async def asyncpg_pool(url: str, writers: int, seconds: float) -> dict[str, float]:
    import asyncpg

    pool = await asyncpg.create_pool(
        url.replace("?options=-csearch_path%3D", "?options=-c%20search_path%3D"), min_size=4, max_size=16
    )

    async def write(n: int) -> None:
        async with pool.acquire() as conn, conn.transaction():
            seq = await conn.fetchval(UPSERT, f"t{n % 8}")
            await conn.execute(INSERT, f"t{n % 8}", seq, DATA, time.time())

    try:
        return await drive(write, writers, seconds)
    finally:
        await pool.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writers", default="1,16,128")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    args = parser.parse_args()
    try:
        import asyncpg  # noqa: F401

        drivers: dict[str, Any] = {"psycopg-group": psycopg_group, "asyncpg-group": asyncpg_group}
        drivers["asyncpg-pool"] = asyncpg_pool
    except ImportError:
        print("asyncpg is not installed: measuring psycopg only")
        drivers = {"psycopg-group": psycopg_group}
    rows: list[dict[str, Any]] = []
    for writers in [int(w) for w in args.writers.split(",")]:
        for repeat in range(args.repeats):
            for name, run in drivers.items():  # every driver in turn within each repeat
                with schema() as (_, url):
                    from zapgate.storage import open_storage

                    storage = open_storage(url)  # the gateway's tables, migrated
                    await storage.open()
                    await storage.close()
                    result = await run(url, writers, args.seconds)
                rows.append({"driver": name, "writers": writers, "repeat": repeat, **result})
                rate, p50 = result["writes_per_s"], result["p50_ms"]
                print(f"{name:14} W={writers:<4} {rate:9,.0f} writes/s  p50 {p50:.2f} ms")
    emit({"rows": rows}, args.out)


if __name__ == "__main__":
    uvloop.run(main())
