"""Media with the real ``zapgate serve`` in a subprocess: a 50 MiB upload costs the server far less than 50 MiB
of memory, and media sends queued when the gateway is killed with SIGKILL go out exactly once after the
restart, with their files intact."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from . import media_kit as kit
from .test_durability import DRAIN_TIMEOUT, PHONE, GatewayProcess, authenticated, deliveries, outbox, wait_drained

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
RECIPIENT = "5521977770000"


def memory_kib(pid: int) -> dict[str, int]:
    """The process's current and peak resident memory (``VmRSS``, ``VmHWM``), in KiB, from /proc."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


async def random_chunks(total: int, size: int = MiB) -> AsyncIterator[bytes]:
    block = os.urandom(size)
    sent = 0
    while sent < total:
        piece = block[: min(size, total - sent)]
        sent += len(piece)
        yield piece


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the server's memory from /proc")
async def test_a_50_mib_upload_is_streamed_to_disk(tmp_path: Path) -> None:
    gateway = GatewayProcess(tmp_path / "data", media_max_bytes=str(200 * MiB))
    token = gateway.token("t")
    try:
        await gateway.start()
        assert gateway.proc is not None
        base = f"http://127.0.0.1:{gateway.port}"
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=DRAIN_TIMEOUT) as http:
            # Warm up every code path (imports, libmagic, thread pools) with a small upload and download.
            small = await kit.upload(http, os.urandom(2 * MiB))
            assert (await http.get(f"/v1/media/{small['media_id']}")).status_code == 200
            before = memory_kib(gateway.proc.pid)

            size = 50 * MiB
            started = time.perf_counter()
            answer = await http.post("/v1/media", content=random_chunks(size), headers={"Content-Length": str(size)})
            upload_s = time.perf_counter() - started
            assert answer.status_code == 201, answer.text
            info = answer.json()
            after = memory_kib(gateway.proc.pid)

            started = time.perf_counter()
            received = 0
            async with http.stream("GET", f"/v1/media/{info['media_id']}") as whole:
                async for chunk in whole.aiter_raw():
                    received += len(chunk)
            download_s = time.perf_counter() - started
            started = time.perf_counter()
            part = await http.get(
                f"/v1/media/{info['media_id']}", headers={"Range": f"bytes={10 * MiB}-{30 * MiB - 1}"}
            )
            range_s = time.perf_counter() - started
        assert info["size"] == size and received == size
        assert part.status_code == 206 and len(part.content) == 20 * MiB
        peak_growth = (after["VmHWM"] - before["VmHWM"]) / 1024
        rss_growth = (after["VmRSS"] - before["VmRSS"]) / 1024
        print(
            f"\n50 MiB upload: {size / MiB / upload_s:.0f} MiB/s, server peak RSS +{peak_growth:.1f} MiB "
            f"(RSS +{rss_growth:.1f} MiB; before {before['VmRSS'] / 1024:.0f} MiB); download "
            f"{size / MiB / download_s:.0f} MiB/s; 20 MiB range {20 / range_s:.0f} MiB/s"
        )
        assert peak_growth < 8, f"the server's peak memory grew by {peak_growth:.1f} MiB for a 50 MiB upload"
    finally:
        gateway.stop()


N = 12
"""Media sends in the burst; pacing spreads them over a few seconds so that the kill finds most still queued."""


@pytest.mark.timeout(240)
async def test_kill_9_while_media_sends_are_queued_sends_each_once_after_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    gateway = GatewayProcess(
        data,
        send_wait_s="0",
        pacing="true",
        pacing_interval_s="0.25",
        pacing_jitter_s="0",
        pacing_recipient_interval_s="0",
        pacing_new_contacts_per_day="1000",
    )
    token = gateway.token("t")
    files = [kit.png(32, 32, "red"), kit.pdf(), kit.mp4(80_000)]
    kinds = ["image", "document", "video"]
    try:
        await gateway.start()
        async with authenticated(gateway.url, token) as client:
            await client.pair("s", PHONE)
            await client.pair("r", RECIPIENT)
            async with kit.http(f"http://127.0.0.1:{gateway.port}", token) as http:
                uploads = [await kit.upload(http, f, filename=f"f{i}") for i, f in enumerate(files)]
            accepted: dict[str, dict[str, Any]] = {}
            for i in range(N):
                which = i % len(files)
                content = {"kind": kinds[which], "media": {"id": uploads[which]["media_id"]}, "caption": f"n{i}"}
                if kinds[which] == "document":
                    content["filename"] = f"doc{i}.pdf"
                sent = await client.call(
                    "message.send", session="s", to=RECIPIENT, content=content, idempotency_key=f"k{i}"
                )
                accepted[sent["message_id"]] = {"sha": kit.sha(files[which]), "caption": f"n{i}"}
            await client.event("message.status", lambda e: e["data"]["status"] == "sent", timeout=DRAIN_TIMEOUT)
            gateway.kill()
        queued_at_kill = [row for row in outbox(data) if row["status"] == "queued"]
        assert queued_at_kill, "the kill must find media sends not yet handed to WhatsApp"

        await gateway.start()
        async with authenticated(gateway.url, token, resume_from=0) as client:
            await wait_drained(client, "s")
            readies: dict[str, str] = {}
            received: dict[str, list[dict[str, Any]]] = {}
            deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT
            # Every accepted send reaches the recipient once, and its file is downloaded there.
            while len(readies) < N:
                assert asyncio.get_running_loop().time() < deadline, (len(received), len(readies))
                page = await client.call("events.fetch", after=0, limit=1000)
                received, readies = {}, {}
                for event in page["events"]:
                    data_ = event["data"]
                    if event["event"] == "message.received" and event["session"] == "r":
                        received.setdefault(data_["message_id"], []).append(data_)
                    if event["event"] == "media.ready" and event["session"] == "r":
                        readies[data_["message_id"]] = data_["sha256"]
                await asyncio.sleep(0.1)
    finally:
        gateway.stop()

    assert set(received) == set(accepted) and all(len(copies) == 1 for copies in received.values())
    for message_id, expected in accepted.items():
        (copy,) = received[message_id]
        assert copy["content"]["caption"] == expected["caption"]
        assert copy["content"]["media"]["sha256"] == expected["sha"] == readies[message_id]
    delivered = deliveries(data)
    assert sorted(d["message_id"] for d in delivered) == sorted(accepted)
    stored = outbox(data)
    assert len(stored) == N and all(row["status"] == "sent" for row in stored)
    print(
        f"\n{N} media sends: queued at the kill {len(queued_at_kill)}; after restart each delivered once "
        f"(max attempts {max(d['attempts'] for d in delivered)}), files equal by SHA-256"
    )
