"""Support for the attack tests: ``zapgate serve`` in its own process (so that its memory can be measured), and
raw sockets that speak just enough HTTP and WebSocket to misbehave the way an attacker does."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import struct
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from .support import TIMEOUT, TIMEOUT_SCALE

ZAPGATE = Path(sys.executable).with_name("zapgate")
STARTUP_TIMEOUT = 30.0 * TIMEOUT_SCALE
MiB = 1024 * 1024


@dataclass
class ServedGateway:
    """A ``zapgate serve --engine simulator`` process on 127.0.0.1."""

    proc: subprocess.Popen[bytes]
    port: int
    env: dict[str, str]
    log: Path

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    def rss_mib(self) -> float:
        """The process's resident memory now (Linux ``/proc``)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def token(self, tenant: str = "acme") -> str:
        out = subprocess.run(
            [ZAPGATE, "token", "create", "--tenant", tenant],
            env=self.env,
            capture_output=True,
            check=True,
            timeout=STARTUP_TIMEOUT,
        )
        return out.stdout.decode().strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def served_gateway(tmp_path: Path, **settings: object) -> AsyncIterator[ServedGateway]:
    """Run the gateway as a user does, configured by ``ZAPGATE_*`` variables (``settings`` on top of quiet test
    defaults); stopped with SIGTERM at the end."""
    data_dir = tmp_path / "data"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZAPGATE_") and k != "PYTHONASYNCIODEBUG"}
    values: dict[str, object] = {
        "data_dir": data_dir,
        "port": port,
        "engine": "simulator",
        "pacing": "false",
        "sim_latency_s": 0,
        "ping_interval_s": 0,
        "sqlite_synchronous": "normal",
    }
    values.update(settings)
    env.update({f"ZAPGATE_{k.upper()}": str(v) for k, v in values.items()})
    log = tmp_path / "gateway.log"
    with log.open("ab") as out:
        proc = subprocess.Popen([ZAPGATE, "serve"], env=env, stdout=out, stderr=out)
    gateway = ServedGateway(proc, port, env, log)
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT
        while True:
            assert proc.poll() is None, f"gateway exited with {proc.returncode}:\n{gateway.log_text()[-3000:]}"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                assert loop.time() < deadline, f"gateway did not start:\n{gateway.log_text()[-3000:]}"
                await asyncio.sleep(0.05)
                continue
            writer.close()
            break
        yield gateway
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STARTUP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# -- raw sockets -------------------------------------------------------------------------------------------------


def masked_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One client frame: FIN set, masked with a random key, as RFC 6455 requires of clients."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    key = (mask * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big") if n else b""
    return head + mask + body


TEXT, PING = 0x1, 0x9


def upgrade_request(port: int, extra: str = "", path: str = "/v1/ws") -> bytes:
    """A WebSocket upgrade request; ``extra`` is more header lines, each ending with CRLF."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    ).encode()


async def raw_socket(port: int, rcvbuf: int | None = None) -> socket.socket:
    """A non-blocking TCP connection to the gateway; a small ``rcvbuf`` keeps the kernel from reading for us."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    return sock


async def read_head(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """The response head (status line and headers), or what came before the connection ended."""
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(timeout):
        while b"\r\n\r\n" not in data:
            try:
                chunk = await loop.sock_recv(sock, 4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    return data


async def read_to_end(sock: socket.socket, timeout: float = TIMEOUT) -> bytes:
    """Everything the gateway sends until it closes the connection (a reset ends it too)."""
    loop = asyncio.get_running_loop()
    data = b""
    async with asyncio.timeout(timeout):
        while True:
            try:
                chunk = await loop.sock_recv(sock, 65536)
            except ConnectionResetError:
                return data
            if not chunk:
                return data
            data += chunk


async def send_until_refused(sock: socket.socket, blob: bytes, seconds: float, limit: int) -> tuple[int, bool]:
    """Send ``blob`` again and again for up to ``seconds`` or ``limit`` bytes; return the bytes sent and whether
    the gateway ended the connection meanwhile (a send failed)."""
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + seconds
    sent = 0
    while loop.time() < stop_at and sent < limit:
        try:
            async with asyncio.timeout(max(0.05, stop_at - loop.time())):
                await loop.sock_sendall(sock, blob)
        except TimeoutError:
            continue  # the gateway is not reading: the connection is held, keep trying until the time is up
        except OSError:
            return sent, True
        sent += len(blob)
    return sent, False


def server_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Split what the server sent after its 101 into (opcode, payload) frames."""
    frames = []
    i = 0
    while i + 2 <= len(data):
        opcode = data[i] & 0x0F
        n = data[i + 1] & 0x7F
        i += 2
        if n == 126:
            n = struct.unpack("!H", data[i : i + 2])[0]
            i += 2
        elif n == 127:
            n = struct.unpack("!Q", data[i : i + 8])[0]
            i += 8
        if i + n > len(data):
            break
        frames.append((opcode, data[i : i + n]))
        i += n
    return frames


def close_code(data: bytes) -> int | None:
    """The code of the close frame the server sent in ``data`` (after its 101), if any."""
    body = data.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in data else data
    for opcode, payload in server_frames(body):
        if opcode == 0x8 and len(payload) >= 2:
            return int(struct.unpack("!H", payload[:2])[0])
    return None
