"""Which HTTP parser for the edge: uvicorn's h11 protocol (``h11_max_incomplete_event_size`` caps the head) or
zapgate's subclass of uvicorn's httptools protocol (``zapgate.server.edge``). Both run the same app and the same
WebSocket protocol; the script measures WebSocket handshakes per second (upgrade, ``hello``, ``auth``,
``ready``, close) and ``GET /healthz`` per second, each server in its own process. ``docs/decisions.md`` quotes it.

    python bench/http_parsers.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import create_tokens, free_port, raise_fd_limit

CONCURRENCY = 50


def serve(kind: str, data_dir: str, port: int) -> None:
    import uvicorn

    from zapgate.config import Settings
    from zapgate.server import create_app, uvicorn_config

    settings = Settings(
        data_dir=Path(data_dir),
        port=port,
        engine="simulator",
        log_level="warning",
        max_connections_per_ip=0,
        max_unauthenticated_connections=0,
        max_connections_per_token=0,
        auth_failure_delay_s=0.001,
    )
    app = create_app(settings)
    config = uvicorn_config(app, settings)
    if kind == "h11":
        config.http = "h11"
        config.h11_max_incomplete_event_size = settings.max_header_bytes
    uvicorn.Server(config).run()


async def handshakes(url: str, token: str, count: int) -> float:
    from websockets.asyncio.client import connect

    async def one() -> None:
        async with connect(url, compression=None) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "auth", "token": token}))
            assert json.loads(await ws.recv())["type"] == "ready"

    semaphore = asyncio.Semaphore(CONCURRENCY)

    async def limited() -> None:
        async with semaphore:
            await one()

    began = time.perf_counter()
    await asyncio.gather(*(limited() for _ in range(count)))
    return count / (time.perf_counter() - began)


async def health_requests(port: int, count: int) -> float:
    request = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()

    async def worker(n: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(n):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")).split(b":")[1])
            await reader.readexactly(length)
        writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker(count // 10) for _ in range(10)))
    return count / (time.perf_counter() - began)


def measure(kind: str, count: int) -> dict[str, Any]:
    import socket

    with tempfile.TemporaryDirectory(prefix="zapgate-parsers-") as tmp:
        token = create_tokens(Path(tmp), ["acme"])[0]
        port = free_port()
        proc = multiprocessing.get_context("spawn").Process(target=serve, args=(kind, tmp, port))
        proc.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.05)
            url = f"ws://127.0.0.1:{port}/v1/ws"
            asyncio.run(handshakes(url, token, 200))  # warm-up
            result = {
                "handshakes_per_s": round(asyncio.run(handshakes(url, token, count)), 1),
                "healthz_per_s": round(asyncio.run(health_requests(port, count * 2)), 1),
            }
        finally:
            proc.terminate()
            proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    raise_fd_limit(4096)
    results: dict[str, list[dict[str, Any]]] = {"edge-httptools": [], "h11": []}
    for _ in range(args.rounds):  # alternate, so that a busy moment on the machine hurts both alike
        for kind in results:
            results[kind].append(measure("h11" if kind == "h11" else "edge", args.count))
            print(kind, results[kind][-1], flush=True)
    best = {kind: {k: max(r[k] for r in rows) for k in rows[0]} for kind, rows in results.items()}
    print(json.dumps(best, indent=2))


if __name__ == "__main__":
    main()
