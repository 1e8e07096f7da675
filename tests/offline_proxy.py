"""Keeping the real engine's tests off the internet: every connection whatsmeow makes in a test goes to a proxy
on 127.0.0.1 that refuses it, or to a local port where nothing listens.

A machine with internet access must behave exactly like one without: no test relies on DNS failing, and what
the proxy saw shows that whatsmeow really tried (and only tried) to reach WhatsApp through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

from .support import TIMEOUT_SCALE

__all__ = ["CONNECT_WHATSAPP", "RefusingProxy", "dead_port"]

CONNECT_WHATSAPP = "CONNECT web.whatsapp.com:443 HTTP/1.1"
"""The request line of whatsmeow's websocket dial through an HTTP proxy."""


class RefusingProxy:
    """An HTTP proxy on 127.0.0.1 that records each request line and answers ``403 Forbidden``."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._server: asyncio.Server | None = None
        self._arrived = asyncio.Condition()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> RefusingProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = (await reader.readline()).decode("latin-1").strip()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            async with self._arrived:
                self.requests.append(line)
                self._arrived.notify_all()
            writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def saw(self, count: int, line: str = CONNECT_WHATSAPP, timeout: float = 30.0) -> list[str]:
        """Wait until ``count`` requests arrived, all equal to ``line``; return every request seen."""
        async with asyncio.timeout(timeout * TIMEOUT_SCALE), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        assert set(self.requests) == {line}, self.requests
        return list(self.requests)


@contextlib.contextmanager
def dead_port() -> Iterator[int]:
    """A port on 127.0.0.1 that refuses connections: bound (so nobody else takes it) but not listening."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()
