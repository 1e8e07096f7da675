"""Media for the tests: small real files of each kind, and HTTP helpers for ``/v1/media`` (a raw ``httpx``
client: these tests speak HTTP as any user would, not through the SDK)."""

from __future__ import annotations

import hashlib
import io
import os
import struct
from typing import Any

import httpx
from PIL import Image

from .support import TIMEOUT


def png(width: int = 64, height: int = 48, colour: str = "red") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def webp() -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (512, 512), (0, 128, 0, 255)).save(out, "WEBP")
    return out.getvalue()


def mp4(size: int = 50_000) -> bytes:
    """An ISO media file header (``ftyp mp42``) with random bytes after it: libmagic calls it video/mp4."""
    return b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + os.urandom(size)


def ogg_opus(size: int = 20_000) -> bytes:
    """An Ogg page holding an Opus header, then noise: audio/ogg, as a voice note is."""
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    page = b"OggS" + bytes([0, 2]) + struct.pack("<qIII", 0, 1, 0, 0) + bytes([1, len(head)]) + head
    return page + os.urandom(size)


def mp3(frames: int = 40) -> bytes:
    return (b"\xff\xfb\x90\x64" + b"\x00" * 413) * frames


def pdf(size: int = 30_000) -> bytes:
    return b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n" + os.urandom(size) + b"\n%%EOF\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def http(base: str, token: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=TIMEOUT)


async def upload(
    client: httpx.AsyncClient, data: bytes, *, filename: str | None = None, mimetype: str = "", multipart: bool = False
) -> dict[str, Any]:
    """POST /v1/media; returns the answer's JSON (asserting 201)."""
    if multipart:
        answer = await client.post("/v1/media", files={"file": (filename or "file", data, mimetype or None)})
    else:
        params = {"filename": filename} if filename else {}
        headers = {"Content-Type": mimetype} if mimetype else {}
        answer = await client.post("/v1/media", content=data, params=params, headers=headers)
    assert answer.status_code == 201, answer.text
    info: dict[str, Any] = answer.json()
    assert answer.headers["location"] == f"/v1/media/{info['media_id']}"
    return info
