"""The SDK's file transfers: uploads and downloads over HTTP to the same gateway (files never travel through
the WebSocket).

The HTTP base comes from the WebSocket URL (``ws://host:port/v1/ws`` → ``http://host:port``; ``wss`` →
``https``), the token goes in the ``Authorization`` header as on the socket. ``httpx`` is imported only when a
file is first transferred, so ``import zapgate.client`` stays light.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from ..errors import ZapgateError, error_from_wire
from ..protocol.media import MediaInfo
from .connection import GatewayUnreachable, RequestTimeout

if TYPE_CHECKING:
    import httpx

__all__ = ["FileSource", "MediaTransfer", "http_base"]

FileSource = str | os.PathLike[str] | bytes
"""A file to send: a path, or its bytes."""
CHUNK = 256 * 1024


def http_base(ws_url: str) -> str:
    """The gateway's HTTP base for its WebSocket URL: the same host and port, ``http``/``https``, without
    ``/v1/ws`` (and without a query)."""
    scheme, sep, rest = ws_url.partition("://")
    if not sep or scheme not in ("ws", "wss"):
        raise ValueError(f"{ws_url!r} is not a ws:// or wss:// URL")
    rest = rest.split("?", 1)[0].split("#", 1)[0].rstrip("/")
    rest = rest.removesuffix("/v1/ws")
    return f"{'https' if scheme == 'wss' else 'http'}://{rest}"


class MediaTransfer:
    """One HTTP client for a gateway's ``/v1/media`` routes (made on first use, closed with the SDK client)."""

    def __init__(self, ws_url: str, token: str, *, timeout: float | None) -> None:
        self.base = http_base(ws_url)
        self._token = token
        self._timeout = timeout
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                base_url=self.base,
                headers={"Authorization": f"Bearer {self._token}"},
                timeout=httpx.Timeout(self._timeout),
                trust_env=False,
            )
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def upload(
        self, source: FileSource, *, mimetype: str | None = None, filename: str | None = None
    ) -> MediaInfo:
        """``POST /v1/media`` with the file streamed from disk (or the given bytes)."""
        headers = {"Content-Type": mimetype or "application/octet-stream"}
        body: bytes | AsyncIterator[bytes]
        if isinstance(source, bytes):
            body = source
        else:
            path = Path(source)
            filename = filename or path.name
            size = (await asyncio.to_thread(path.stat)).st_size
            headers["Content-Length"] = str(size)
            body = _read(path)
        params = {"filename": filename} if filename else {}
        answer = await self._send("POST", "/v1/media", content=body, headers=headers, params=params)
        return msgspec.json.decode(answer, type=MediaInfo)

    async def download(self, media_id: str) -> bytes:
        return await self._send("GET", f"/v1/media/{media_id}")

    async def download_to(self, media_id: str, path: str | os.PathLike[str]) -> int:
        """Stream the file to ``path`` (written to ``path.part`` first, renamed once whole); returns its size."""
        import httpx

        target = Path(path)
        partial = target.with_name(target.name + ".part")
        written = 0
        try:
            async with self._client().stream("GET", f"/v1/media/{media_id}") as response:
                if response.status_code != 200:
                    await response.aread()
                    raise _error(response.status_code, response.content, response.headers.get("retry-after"))
                await asyncio.to_thread(partial.write_bytes, b"")
                async for chunk in response.aiter_bytes(CHUNK):
                    await asyncio.to_thread(_append, partial, chunk)
                    written += len(chunk)
            await asyncio.to_thread(os.replace, partial, target)
        except httpx.TimeoutException:
            raise RequestTimeout(f"downloading {media_id} took longer than {self._timeout} s") from None
        except httpx.TransportError as exc:
            raise GatewayUnreachable(f"could not reach {self.base}: {exc}") from None
        finally:
            partial.unlink(missing_ok=True)
        return written

    async def _send(self, method: str, path: str, **kwargs: Any) -> bytes:
        import httpx

        try:
            response = await self._client().request(method, path, **kwargs)
        except httpx.TimeoutException:
            raise RequestTimeout(f"{method} {path} took longer than {self._timeout} s") from None
        except httpx.TransportError as exc:
            raise GatewayUnreachable(f"could not reach {self.base}: {exc}") from None
        if response.status_code >= 300:
            raise _error(response.status_code, response.content, response.headers.get("retry-after"))
        return response.content


def _error(status: int, body: bytes, retry_after: str | None = None) -> ZapgateError:
    """The error of an HTTP answer; ``retry_after``: its ``Retry-After`` header (a 429 ``rate_limited``)."""
    try:
        wire = msgspec.json.decode(body, type=dict[str, str])
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        return error_from_wire(wire["code"], wire["message"], wait)
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError):
        return error_from_wire("internal", f"the gateway answered HTTP {status}")


async def _read(path: Path) -> AsyncIterator[bytes]:
    """The file in chunks, each read in a thread with the file opened and closed around it: a transfer abandoned
    half-way (a timeout, a cancelled task) leaves no file open."""
    offset = 0
    while chunk := await asyncio.to_thread(_read_at, path, offset):
        offset += len(chunk)
        yield chunk


def _read_at(path: Path, offset: int) -> bytes:
    with path.open("rb") as source:
        source.seek(offset)
        return source.read(CHUNK)


def _append(path: Path, chunk: bytes) -> None:
    with path.open("ab") as out:
        out.write(chunk)
