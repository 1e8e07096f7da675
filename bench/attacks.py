"""The network-edge attacks of the December 2026 review (§5), run against a real ``zapgate serve`` process.

Each attack runs against a fresh gateway (simulator engine, default limits unless ``--env`` says otherwise) on
127.0.0.1 and reports the gateway's resident memory before, at its peak (``VmHWM``) and after, and whether and
when the gateway closed the attacking connections. The figures in ``docs/security.md`` come from this script.

    python bench/attacks.py                       # every attack
    python bench/attacks.py --only headers,pings   # some of them

Attacks: ``headers`` (endless request headers), ``slowloris`` (many unfinished handshakes), ``pings`` (masked
pings before auth, never reading), ``fetch`` (``events.fetch`` without reading, 4 connections), ``per-token``
(connections with one token), ``bearer`` (bad ``Authorization: Bearer`` headers for 20 s: answers, log lines).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import socket
import struct
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from procs import Client, Server, create_tokens, emit, phone, raise_fd_limit, start_gateway
from zapgate.config import Settings

MiB = 1024 * 1024
EDGE_DEFAULTS = {
    name: Settings.__dataclass_fields__[name].default
    for name in (
        "max_connections_per_ip",
        "max_connections_per_token",
        "max_unauthenticated_connections",
        "command_rate_per_s",
    )
}


def vm(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in KiB (``VmRSS``, ``VmHWM``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


# -- raw WebSocket pieces --------------------------------------------------------------------------------------


def masked_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One client frame (FIN set, masked with a random key)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = (mask * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    return head + mask + masked


def upgrade_request(port: int, extra: str = "", path: str = "/v1/ws") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


async def raw_socket(port: int, rcvbuf: int | None = None) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def read_head(sock: socket.socket) -> bytes:
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            break
        data += chunk
    return data


async def send_until_closed(sock: socket.socket, blob: bytes, seconds: float, limit: int) -> tuple[int, float | None]:
    """Send ``blob`` over and over for ``seconds`` (or ``limit`` bytes); return bytes sent and when it failed."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    sent = 0
    while loop.time() - began < seconds and sent < limit:
        try:
            await asyncio.wait_for(loop.sock_sendall(sock, blob), max(0.05, seconds - (loop.time() - began)))
        except TimeoutError:
            continue  # the gateway stopped reading: keep the socket, keep trying until the time is up
        except OSError:
            return sent, loop.time() - began
        sent += len(blob)
    return sent, None


async def closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Drain what the gateway sent until it closes the socket; return when, or None if still open."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    try:
        while loop.time() - began < seconds:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), seconds - (loop.time() - began))
            if not chunk:
                return loop.time() - began
    except TimeoutError:
        return None
    except OSError:
        return loop.time() - began
    return None


class Sampler:
    """Samples the gateway's RSS every 0.2 s while an attack runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.base = vm(pid, "VmRSS")
        self.peak = self.base
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.peak = max(self.peak, vm(self.pid, "VmRSS"))
            await asyncio.sleep(0.2)

    def __enter__(self) -> Sampler:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def report(self) -> dict[str, Any]:
        now = vm(self.pid, "VmRSS")
        return {"rss_before_mib": mib(self.base), "rss_peak_mib": mib(self.peak), "rss_after_mib": mib(now)}


# -- the attacks ------------------------------------------------------------------------------------------------


async def attack_headers(server: Server, tokens: list[str]) -> dict[str, Any]:
    """One connection sends an endless stream of request headers on GET /v1/ws (up to 300 MB)."""
    sock = await raw_socket(server.port)
    line = b"X-Filler: " + b"a" * 4000 + b"\r\n"
    with Sampler(server.pid) as sampler:
        await asyncio.get_running_loop().sock_sendall(sock, b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        sent, failed_after = await send_until_closed(sock, line * 64, 30.0, 300 * MiB)
        answer = await closed_within(sock, 2.0)
    sock.close()
    return {
        **sampler.report(),
        "sent_mib": round(sent / MiB, 1),
        "refused_after_s": failed_after,
        "closed": failed_after is not None or answer is not None,
    }


async def attack_slowloris(server: Server, tokens: list[str], count: int = 1000) -> dict[str, Any]:
    """``count`` connections each send an unfinished upgrade request, one more header line every 2 s, for 30 s."""
    socks = [await raw_socket(server.port) for _ in range(count)]
    loop = asyncio.get_running_loop()
    head = b"GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    open_ = set(range(count))
    began = loop.time()
    with Sampler(server.pid) as sampler:
        for sock in socks:
            await loop.sock_sendall(sock, head)
        while loop.time() - began < 30:
            await asyncio.sleep(2)
            for i in list(open_):
                try:
                    socks[i].send(b"X-a: b\r\n")
                    if socks[i].recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b"":
                        open_.discard(i)
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(i)
    for sock in socks:
        sock.close()
    return {**sampler.report(), "connections": count, "still_open_after_30s": len(open_)}


async def attack_pings(server: Server, tokens: list[str]) -> dict[str, Any]:
    """Connect, never authenticate, never read, and flood masked pings for 40 s (auth timeout is 10 s)."""
    sock = await raw_socket(server.port, rcvbuf=4096)
    await asyncio.get_running_loop().sock_sendall(sock, upgrade_request(server.port))
    await read_head(sock)  # the 101 (a client may send frames only after it)
    pings = masked_frame(0x9, b"p" * 125) * 2000
    with Sampler(server.pid) as sampler:
        sent, failed_after = await send_until_closed(sock, pings, 40.0, 10**12)
    sock.close()
    return {**sampler.report(), "pings_sent": sent // 131, "closed_after_s": failed_after}


async def events_for_fetch(server: Server, token: str) -> int:
    """Pair a session and make 200 inbound messages of 4 KB: an events.fetch of them fills its 512 KiB."""
    client = await Client.open(server.url, token)
    try:
        await client.pair("s", phone(1))
        for i in range(200):
            await client.call("sim.receive", session="s", **{"from": phone(2)}, text=f"{i} " + "x" * 4000)
        while True:  # the inbound messages are stored a moment after sim.receive answers
            data = await client.call("events.fetch", after=0, limit=1000)
            if len(json.dumps(data)) > 500 * 1024:
                return len(json.dumps(data))
            await asyncio.sleep(0.1)
    finally:
        await client.close()


async def attack_fetch(server: Server, tokens: list[str], connections: int = 4) -> dict[str, Any]:
    """4 connections each send 1,100 events.fetch (limit 1000, ~512 KiB replies) and never read."""
    reply_bytes = await events_for_fetch(server, tokens[0])
    loop = asyncio.get_running_loop()
    socks = []
    for _ in range(connections):
        sock = await raw_socket(server.port, rcvbuf=4096)
        await loop.sock_sendall(sock, upgrade_request(server.port, f"Authorization: Bearer {tokens[0]}\r\n"))
        await read_head(sock)
        socks.append(sock)
    fetches = b"".join(
        masked_frame(0x1, json.dumps({"type": "events.fetch", "id": str(i), "after": 0, "limit": 1000}).encode())
        for i in range(1100)
    )
    with Sampler(server.pid) as sampler:
        results = await asyncio.gather(*(send_until_closed(s, fetches, 20.0, len(fetches)) for s in socks))
        await asyncio.sleep(max(0.0, 20.0 - 1))
        closes = await asyncio.gather(*(closed_within(s, 30.0) for s in socks))
    for sock in socks:
        sock.close()
    return {
        **sampler.report(),
        "reply_bytes": reply_bytes,
        "fetches_sent": [r[0] // (len(fetches) // 1100) for r in results],
        "closed": [c is not None for c in closes],
    }


async def attack_per_token(server: Server, tokens: list[str], count: int = 500) -> dict[str, Any]:
    """Open ``count`` authenticated connections with one token; count those that get ``ready``."""
    from websockets.asyncio.client import connect

    accepted = []
    refused = 0
    with Sampler(server.pid) as sampler:
        for _ in range(count):
            try:
                headers = {"Authorization": f"Bearer {tokens[0]}"}
                ws = await connect(server.url, compression=None, additional_headers=headers)
                await ws.recv()
                frame = json.loads(await ws.recv())
                if frame.get("type") == "ready":
                    accepted.append(ws)
                else:
                    refused += 1
                    await ws.close()
            except Exception:
                refused += 1
    for ws in accepted:
        await ws.close()
    return {**sampler.report(), "tried": count, "accepted": len(accepted), "refused": refused}


async def attack_bearer(server: Server, tokens: list[str], seconds: float = 20.0, workers: int = 20) -> dict[str, Any]:
    """Wrong Bearer tokens from 20 parallel workers for 20 s: attempts answered, and lines in the gateway's log."""
    assert server.log is not None
    before = server.log.read_text(errors="replace")
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    statuses: dict[str, int] = {}

    async def worker(w: int) -> None:
        i = 0
        while loop.time() < stop_at:
            sock = await raw_socket(server.port)
            guess = f"Authorization: Bearer zgt_{w:04x}{i:08x}_nope\r\n"
            await loop.sock_sendall(sock, upgrade_request(server.port, guess))
            try:
                head = await asyncio.wait_for(read_head(sock), max(0.1, stop_at - loop.time()))
                status = head.split(b" ", 2)[1].decode() if head else "closed"
            except TimeoutError:
                status = "still waiting at the end"
            statuses[status] = statuses.get(status, 0) + 1
            sock.close()
            i += 1

    with Sampler(server.pid) as sampler:
        await asyncio.gather(*(worker(w) for w in range(workers)))
    log = server.log.read_text(errors="replace")[len(before) :]
    return {
        **sampler.report(),
        "seconds": seconds,
        "answered": sum(n for status, n in statuses.items() if status.isdigit()),
        "statuses": statuses,
        "error_lines": sum(" ERROR " in line for line in log.splitlines()),
        "warning_lines": sum(" WARNING " in line for line in log.splitlines()),
        "log_lines": len(log.splitlines()),
    }


ATTACKS: dict[str, Callable[[Server, list[str]], Awaitable[dict[str, Any]]]] = {
    "headers": attack_headers,
    "slowloris": attack_slowloris,
    "pings": attack_pings,
    "fetch": attack_fetch,
    "per-token": attack_per_token,
    "bearer": attack_bearer,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", help="comma-separated attacks (default: all)")
    parser.add_argument("--env", action="append", default=[], help="extra ZAPGATE_X=value for the gateway")
    parser.add_argument("--out", help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    raise_fd_limit(8192)
    chosen = args.only.split(",") if args.only else list(ATTACKS)
    extra = dict(item.split("=", 1) for item in args.env)
    results: dict[str, Any] = {}
    for name in chosen:
        with tempfile.TemporaryDirectory(prefix="zapgate-attack-") as tmp:
            data_dir = Path(tmp) / "gateway"
            tokens = create_tokens(data_dir, ["acme"])
            settings = {
                "log_level": "info",
                **EDGE_DEFAULTS,  # procs.gateway_env lifts the edge limits for benchmarks: attack the shipped ones
                **{k.removeprefix("ZAPGATE_").lower(): v for k, v in extra.items()},
            }
            server = start_gateway(data_dir, **settings)
            try:
                began = time.perf_counter()
                results[name] = asyncio.run(ATTACKS[name](server, tokens))
                results[name]["attack_s"] = round(time.perf_counter() - began, 1)
            finally:
                server.stop()
            print(f"{name}: {results[name]}", flush=True)
    emit(results, args.out)


if __name__ == "__main__":
    main()
