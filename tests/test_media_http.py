"""``POST /v1/media`` and ``GET /v1/media/{id}`` over a real socket: authentication, raw and multipart bodies,
the size cap answered as soon as it is passed, ranges, caching and the headers that keep a file from running in
the gateway's origin."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import httpx
import pytest

from . import media_kit as kit
from .conftest import fast_settings
from .support import TIMEOUT, RunningGateway, serve_gateway


async def test_tokens_are_required(gateway: RunningGateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.http) as anonymous:
        for answer in (
            await anonymous.post("/v1/media", content=b"x"),
            await anonymous.get("/v1/media/med_abcdefghijkl"),
            await anonymous.post("/v1/media", content=b"x", headers={"Authorization": "Bearer zgt_nope_nope"}),
            await anonymous.get("/v1/media/med_abcdefghijkl", headers={"Authorization": "Basic eDp5"}),
        ):
            assert answer.status_code == 401, answer.text
            assert answer.json()["code"] == "unauthorized" and answer.headers["www-authenticate"] == "Bearer"
    assert not (gateway.settings.media_path).exists() or not any(gateway.settings.media_path.rglob("*.part"))


async def test_raw_uploads_take_their_name_from_the_query_or_a_disposition_header(gateway: RunningGateway) -> None:
    async with kit.http(gateway.http, await gateway.token()) as http:
        by_query = await kit.upload(http, kit.pdf(100), filename="a b.pdf")
        assert by_query["filename"] == "a b.pdf" and by_query["mimetype"] == "application/pdf"
        answer = await http.post(
            "/v1/media",
            content=kit.pdf(100),
            headers={"Content-Disposition": 'attachment; filename="../../nota.pdf"'},
        )
        assert answer.status_code == 201 and answer.json()["filename"] == "nota.pdf"
        # The bytes decide the type; a declared one is used only when they say nothing more specific.
        declared = await kit.upload(http, kit.png(), mimetype="application/pdf")
        assert declared["mimetype"] == "image/png"
        opaque = await kit.upload(http, random.Random(3).randbytes(1000), mimetype="audio/ogg")
        assert opaque["mimetype"] == "audio/ogg"
        empty = await http.post("/v1/media", content=b"")
        assert empty.status_code == 400 and "empty" in empty.json()["message"]


async def test_multipart_uploads_are_read_as_they_stream(gateway: RunningGateway) -> None:
    async with kit.http(gateway.http, await gateway.token()) as http:
        data = kit.mp4(200_000)
        answer = await http.post(
            "/v1/media",
            data={"filename": "meu vídeo.mp4", "note": "ignored"},
            files={"file": ("upload.bin", data, "application/octet-stream")},
        )
        assert answer.status_code == 201, answer.text
        info = answer.json()
        assert (info["filename"], info["mimetype"], info["sha256"]) == ("meu vídeo.mp4", "video/mp4", kit.sha(data))
        got = await http.get(f"/v1/media/{info['media_id']}")
        assert got.content == data

        boundary = "zapgate-test-boundary"

        def body(*parts: tuple[str, str | None, bytes]) -> bytes:
            out = b""
            for name, filename, value in parts:
                disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
                out += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"
            return out + f"--{boundary}--\r\n".encode()

        headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
        # The fields may come after the file, too.
        after = body(("file", "x.bin", os.urandom(500)), ("mimetype", None, b"audio/ogg"), ("filename", None, b"v.ogg"))
        answer = await http.post("/v1/media", content=after, headers=headers)
        assert answer.status_code == 201 and (answer.json()["mimetype"], answer.json()["filename"]) == (
            "audio/ogg",
            "v.ogg",
        )
        for content, says in [
            (body(("file", "a", b"1"), ("file", "b", b"2")), "only one file"),
            (body(("note", None, b"hi")), "no file"),
            (body(("file", "a", b"")), "empty"),
            (body(("file", "a", b"123"))[:-10], "closing boundary"),
            (body(("filename", None, b"x" * 2000), ("file", "a", b"1")), "longer than"),
        ]:
            answer = await http.post("/v1/media", content=content, headers=headers)
            assert answer.status_code == 400 and says in answer.json()["message"], (says, answer.text)
        no_boundary = await http.post("/v1/media", content=b"x", headers={"Content-Type": "multipart/form-data"})
        assert no_boundary.status_code == 400


async def raw_request(port: int, head: str, body_parts: list[bytes]) -> tuple[int, dict[str, str], bytes]:
    """Send a request head and body parts on a plain socket, then read the answer (the body may stay unsent)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode())
        for part in body_parts:
            writer.write(part)
            await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), TIMEOUT)
        headers: dict[str, str] = {}
        while (line := await asyncio.wait_for(reader.readline(), TIMEOUT)) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        answer = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), TIMEOUT)
        return int(status_line.split()[1]), headers, answer
    finally:
        writer.close()


async def test_the_size_cap_is_answered_413_as_soon_as_it_is_passed(tmp_path: Path) -> None:
    limit = 1024 * 1024
    async with serve_gateway(fast_settings(tmp_path / "data", media_max_bytes=limit)) as gateway:
        token = await gateway.token()
        auth = f"Authorization: Bearer {token}\r\nHost: 127.0.0.1\r\n"
        # Announced too large: refused before any of the body is read.
        status, _, answer = await raw_request(
            gateway.port, f"POST /v1/media HTTP/1.1\r\n{auth}Content-Length: {limit + 1}\r\n\r\n", []
        )
        assert status == 413 and json.loads(answer)["code"] == "media_too_large"
        # Streamed without a length: refused once the cap is passed, while the client has more to send.
        chunk = os.urandom(256 * 1024)
        chunks = [f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" for _ in range(5)]  # 1.25 MiB, and no end
        status, _, answer = await raw_request(
            gateway.port, f"POST /v1/media HTTP/1.1\r\n{auth}Transfer-Encoding: chunked\r\n\r\n", chunks
        )
        assert status == 413 and "media_max_bytes" in json.loads(answer)["message"]
        # Nothing was kept, not even a partial file.
        media = gateway.settings.media_path
        assert [p for p in media.rglob("*") if p.is_file()] == []
        # Exactly at the cap is fine.
        async with kit.http(gateway.http, token) as http:
            assert (await kit.upload(http, os.urandom(limit)))["size"] == limit


async def test_ranges_caching_and_safe_headers(gateway: RunningGateway) -> None:
    async with kit.http(gateway.http, await gateway.token()) as http:
        data = os.urandom(100_000)
        info = await kit.upload(http, data, filename="relatório final.bin")
        url = f"/v1/media/{info['media_id']}"

        whole = await http.get(url)
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["accept-ranges"] == "bytes" and whole.headers["content-length"] == str(len(data))
        assert whole.headers["cache-control"].startswith("private")
        assert whole.headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in whole.headers["content-security-policy"]
        assert whole.headers["content-disposition"].startswith("attachment;")
        assert "filename*=UTF-8''relat%C3%B3rio%20final.bin" in whole.headers["content-disposition"]
        etag = whole.headers["etag"]
        assert etag == f'"{kit.sha(data)}"'

        for header, start, end in [
            ("bytes=0-99", 0, 100),
            ("bytes=99000-", 99000, 100_000),
            ("bytes=-10", 99990, 100_000),
        ]:
            part = await http.get(url, headers={"Range": header})
            assert part.status_code == 206 and part.content == data[start:end], header
            assert part.headers["content-range"] == f"bytes {start}-{end - 1}/{len(data)}"
            assert part.headers["content-length"] == str(end - start)
        beyond = await http.get(url, headers={"Range": "bytes=100000-"})
        assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{len(data)}"
        # If-Range: the range only if the file is still the one the client has.
        assert (await http.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})).status_code == 206
        stale = await http.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
        assert stale.status_code == 200 and stale.content == data
        assert (await http.get(url, headers={"If-None-Match": etag})).status_code == 304
        head = await http.head(url, headers={"Range": "bytes=10-19"})
        assert head.status_code == 206 and head.content == b"" and head.headers["content-length"] == "10"


async def test_a_received_web_page_cannot_run_in_the_gateways_origin(gateway: RunningGateway) -> None:
    page = b"<html><body><script>alert(document.cookie)</script></body></html>"
    async with kit.http(gateway.http, await gateway.token()) as http:
        info = await kit.upload(http, page, filename="x.html")
        answer = await http.get(f"/v1/media/{info['media_id']}")
        assert answer.headers["content-type"].startswith("text/html")
        assert answer.headers["content-disposition"].startswith("attachment")
        assert answer.headers["content-security-policy"] == "sandbox; default-src 'none'"


@pytest.mark.parametrize("media_id", ["med_short", "nope", "med_" + "a" * 100])
async def test_malformed_ids_are_just_missing(gateway: RunningGateway, media_id: str) -> None:
    async with kit.http(gateway.http, await gateway.token()) as http:
        answer = await http.get(f"/v1/media/{media_id}")
        assert answer.status_code == 404 and answer.json()["code"] == "media_not_found"
