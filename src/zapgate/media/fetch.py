"""Fetching a media file from a URL a client gave, safely: only ``http``/``https``, only to addresses the
outbound policy permits (checked after DNS and for every redirect, see :mod:`zapgate.netguard`), no compressed
answers (a small answer must not inflate to gigabytes), and within the size and time caps."""

from __future__ import annotations

import contextlib
import email.message
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

import httpx

from .. import __version__
from ..netguard import AddressPolicy, guarded_client

__all__ = ["FetchError", "FetchTooLarge", "Fetching", "open_url"]

MAX_REDIRECTS = 5


class FetchError(Exception):
    """The URL could not be fetched; the message says why, for the client."""


class FetchTooLarge(FetchError):
    """The answer announces more bytes than allowed."""


@dataclass
class Fetching:
    """An answer being read: its bytes, and what it says about them."""

    chunks: AsyncIterator[bytes]
    mimetype: str | None
    """The ``Content-Type`` the server declared (a hint: the bytes decide)."""
    filename: str | None
    """From ``Content-Disposition``, or the last segment of the URL's path."""


@contextlib.asynccontextmanager
async def open_url(url: str, *, policy: AddressPolicy, step_timeout: float, max_bytes: int) -> AsyncIterator[Fetching]:
    """GET ``url`` and yield its body as it arrives; any failure, inside the block too, is a :class:`FetchError`.

    ``step_timeout`` bounds each network step; the caller bounds the whole transfer."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise FetchError("media.url must be an http:// or https:// URL with a host")
    host = parts.hostname
    headers = [("User-Agent", f"zapgate/{__version__}"), ("Accept-Encoding", "identity")]
    async with guarded_client(policy, timeout=step_timeout, max_redirects=MAX_REDIRECTS, headers=headers) as client:
        try:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise FetchError(f"{host} answered HTTP {response.status_code} for media.url")
                encoding = response.headers.get("content-encoding", "identity").strip().lower()
                if encoding not in ("", "identity"):
                    raise FetchError(f"{host} sent the file compressed ({encoding}); serve it uncompressed")
                length = response.headers.get("content-length")
                if length is not None and length.isdigit() and int(length) > max_bytes:
                    raise FetchTooLarge(f"media.url announces {int(length)} bytes; the limit is {max_bytes}")
                yield Fetching(
                    chunks=response.aiter_raw(),
                    mimetype=_mimetype(response.headers.get("content-type")),
                    filename=_filename(response.headers.get("content-disposition"), response.url.path),
                )
        except httpx.TooManyRedirects:
            raise FetchError(f"media.url redirects more than {MAX_REDIRECTS} times") from None
        except httpx.TimeoutException:
            raise FetchError(f"{host} did not answer in time (media.url)") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"could not fetch media.url: {exc}") from None


def _mimetype(header: str | None) -> str | None:
    if not header:
        return None
    value = header.partition(";")[0].strip().lower()
    return value if "/" in value else None


def _filename(disposition: str | None, path: str) -> str | None:
    if disposition:
        message = email.message.Message()
        message["content-disposition"] = disposition
        name = message.get_filename()
        if name:
            return PurePosixPath(name.replace("\\", "/")).name[:255] or None
    name = PurePosixPath(unquote(path)).name
    return name[:255] or None
