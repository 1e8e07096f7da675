"""Webhook delivery throughput, as a ratio to plain sequential POSTs to the same receiver (standalone).

    .venv/bin/python bench/webhooks.py [--events N] [--endpoints K]

A gateway (simulator, SQLite) and a Starlette receiver run in this process on 127.0.0.1. The baseline is one
``httpx`` client POSTing N small bodies one after the other to the receiver; the measured run appends N events
to a tenant's log (in batches of 100, as a busy tenant would) and waits until every one of the K endpoints has
received all of them. Each endpoint delivers one event at a time (per-endpoint order), signs it, and commits its
cursor with the attempt, so the ratio for one endpoint shows the cost of those guarantees over a bare POST.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import fast_settings
from tests.support import serve_asgi, serve_gateway

from zapgate.storage import NewEvent

os.environ.pop("PYTHONASYNCIODEBUG", None)  # tests.conftest turns asyncio's debug mode on: not for a benchmark


async def main(events: int, endpoints: int) -> None:
    received = {"n": 0}

    async def hook(request: Request) -> Response:
        await request.body()
        received["n"] += 1
        return Response(b"", status_code=204)

    app = Starlette(routes=[Route("/hook/{k}", hook, methods=["POST"])])
    async with serve_asgi(app) as port:
        async with httpx.AsyncClient() as http:
            started = time.perf_counter()
            for _ in range(events):
                await http.post(f"http://127.0.0.1:{port}/hook/0", content=b'{"type":"event"}')
            baseline = events / (time.perf_counter() - started)
        received["n"] = 0
        with tempfile.TemporaryDirectory() as data:
            settings = fast_settings(Path(data), outbound_allow=("127.0.0.1/32",), log_level="warning")
            async with serve_gateway(settings) as gw, gw.connect() as client:
                for k in range(endpoints):
                    await client.call("webhook.create", url=f"http://127.0.0.1:{port}/hook/{k}")
                storage = gw.gateway.storage
                started = time.perf_counter()
                for start in range(0, events, 100):
                    batch = [NewEvent("acme", "s1", "presence", b'{"chat":"1","from":"1","state":"available"}')]
                    await storage.append_events(batch * min(100, events - start))
                while received["n"] < events * endpoints:
                    await asyncio.sleep(0.005)
                delivered = events * endpoints / (time.perf_counter() - started)
    print(f"baseline: {baseline:,.0f} sequential POSTs/s")
    print(f"webhooks: {delivered:,.0f} deliveries/s over {endpoints} endpoint(s) ({events} events each)")
    print(f"ratio: {delivered / baseline:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--endpoints", type=int, default=1)
    args = parser.parse_args()
    asyncio.run(main(args.events, args.endpoints))
