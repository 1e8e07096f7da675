"""Attacks after authentication, against a live gateway on 127.0.0.1: output bounded in bytes, connections per
token, the command rate, and bursts the gateway makes itself (docs/security.md, review §5.3 and §5.12)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .conftest import fast_settings
from .edge_support import (
    PING,
    TEXT,
    MiB,
    masked_frame,
    raw_socket,
    read_head,
    read_to_end,
    served_gateway,
    upgrade_request,
)
from .support import TIMEOUT, RawClient, RunningGateway, serve_gateway

PHONE = "+55 11 99999-0001"
CONTACT = "+55 31 90000-0001"


async def test_events_fetch_without_reading_is_closed_4429_and_memory_stays_bounded(tmp_path: Path) -> None:
    # Unbounded, 4 connections sending 1,100 events.fetch each without reading took the gateway to 2.1 GB: the
    # replies (up to 512 KiB each) were bounded in frames, not bytes, and held until the client went away.
    async with served_gateway(tmp_path, command_rate_per_s=0, close_timeout_s=1) as gateway:
        token = gateway.token()
        setup = await RawClient.open(gateway.url)
        await setup.authenticate(token)
        await setup.pair("s", PHONE)
        paired = (await setup.call("events.fetch", after=0, limit=1))["last_seq"]
        for i in range(150):
            await setup.call("sim.receive", session="s", **{"from": CONTACT}, text=f"{i} " + "x" * 4000)
        while (await setup.call("events.fetch", after=0, limit=1))["last_seq"] < paired + 150:
            await asyncio.sleep(0.05)  # inbound messages are stored a moment after sim.receive answers
        assert len(json.dumps(await setup.call("events.fetch", after=0, limit=1000))) > 500 * 1024
        await setup.close()

        loop = asyncio.get_running_loop()
        fetches = b"".join(
            masked_frame(TEXT, json.dumps({"type": "events.fetch", "id": str(i), "after": 0, "limit": 1000}).encode())
            for i in range(1100)
        )
        socks = []
        for _ in range(4):
            sock = await raw_socket(gateway.port, rcvbuf=4096)
            await loop.sock_sendall(sock, upgrade_request(gateway.port, f"Authorization: Bearer {token}\r\n"))
            assert (await read_head(sock)).startswith(b"HTTP/1.1 101")
            socks.append(sock)
        before = peak = gateway.rss_mib()
        for sock in socks:
            with contextlib.suppress(OSError):
                await asyncio.wait_for(loop.sock_sendall(sock, fetches), 1.0)  # the gateway may stop reading first
        # Each connection is closed (its close frame cannot be sent, so it is cut): a ping then fails.
        deadline = loop.time() + 3 * TIMEOUT
        open_ = set(range(len(socks)))
        while open_:
            assert loop.time() < deadline, f"{len(open_)} connections still open"
            peak = max(peak, gateway.rss_mib())
            for i in list(open_):
                try:
                    socks[i].send(masked_frame(PING))
                except BlockingIOError:
                    pass
                except OSError:
                    open_.discard(i)
            await asyncio.sleep(0.1)
        for sock in socks:
            sock.close()
        assert peak - before < 100, f"RSS grew by {peak - before:.0f} MB"
        assert gateway.log_text().count("slow consumer") == 4


async def test_replies_are_bounded_in_bytes_not_only_in_frames(tmp_path: Path) -> None:
    """The same attack in process, looking at the connection itself: its queue never holds more than the
    buffer's bytes (plus the one reply that overflowed), and it is closed with 4429."""
    settings = fast_settings(tmp_path / "data", send_buffer_bytes=512 * 1024, close_timeout_s=TIMEOUT)
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        async with gateway.connect() as setup:
            await setup.pair("s", PHONE)
            for i in range(40):
                await setup.call("sim.receive", session="s", **{"from": CONTACT}, text=f"{i} " + "x" * 4000)
        sock = await raw_socket(gateway.port, rcvbuf=4096)
        loop = asyncio.get_running_loop()
        await loop.sock_sendall(sock, upgrade_request(gateway.port, f"Authorization: Bearer {token}\r\n"))
        assert (await read_head(sock)).startswith(b"HTTP/1.1 101")
        fetch = [json.dumps({"type": "events.fetch", "id": str(i), "after": 0, "limit": 40}) for i in range(200)]
        await loop.sock_sendall(sock, b"".join(masked_frame(TEXT, f.encode()) for f in fetch))
        # The client reads again: what was queued, then the close code.
        received = await read_to_end(sock, 3 * TIMEOUT)
        sock.close()
        assert struct.pack("!H", 4429) + b"slow_consumer" in received  # the close frame, after what was queued
        assert len(received) < 4 * MiB  # the buffer, the socket buffers and one reply; not 200 replies (32 MB)


async def test_a_burst_the_gateway_makes_does_not_close_a_client_that_reads(tmp_path: Path) -> None:
    # Review §5.12: deleting a session with 3,000 queued messages emits 3,000 message.status events at once; a
    # promptly reading client was closed with 4429 and lost the delete's reply. Events that do not fit are now
    # read from the event log as the client takes them.
    settings = fast_settings(tmp_path / "data", send_buffer_frames=40, send_wait_s=0.0)
    async with serve_gateway(settings) as gateway, gateway.connect() as client:
        await client.pair("s", PHONE)
        await client.call("sim.network", session="s", online=False)
        await client.status("s", "disconnected")
        queued = 300
        for i in range(queued):
            sent = await client.call("message.send", session="s", to=CONTACT, text=f"m{i}")
            assert sent["status"] == "queued"
        first = client.events[-1]["seq"] if client.events else 0
        deleted = await client.request("session.delete", session="s")
        assert deleted["ok"] and deleted["data"] == {"session": "s", "deleted": True}
        await client.event("session.deleted")
        failed = [
            e for e in client.events if e["event"] == "message.status" and e["data"].get("reason") == "session_deleted"
        ]
        assert len(failed) == queued
        seqs = [e["seq"] for e in client.events if e["seq"] > first]
        assert seqs == list(range(first + 1, first + 1 + len(seqs)))  # in order, none missing, none twice
        assert (await client.call("ping"))["time"] > 0
        assert client.ws.close_code is None


async def test_connections_per_token_are_capped(tmp_path: Path) -> None:
    settings = fast_settings(tmp_path / "data", max_connections_per_token=2)
    async with serve_gateway(settings) as gateway:
        token = await gateway.token()
        held = [await RawClient.open(gateway.url) for _ in range(2)]
        for client in held:
            await client.authenticate(token)
        third = await RawClient.open(gateway.url)
        await third.send({"type": "auth", "token": token})
        error = await third.recv()
        assert error["type"] == "error" and error["code"] == "too_many_connections"
        with pytest.raises(ConnectionClosed):
            await third.recv()
        assert third.ws.close_code == 4409
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(gateway.url, additional_headers={"Authorization": f"Bearer {token}"})
        assert refused.value.response.status_code == 429
        async with gateway.connect("acme"):  # another token of the same tenant is not affected
            pass
        await held.pop().close()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TIMEOUT
        while True:  # the slot is free once the gateway has seen the close
            again = await RawClient.open(gateway.url)
            await again.send({"type": "auth", "token": token})
            if (await again.recv())["type"] == "ready":
                break
            await again.close()
            assert loop.time() < deadline
            await asyncio.sleep(0.05)
        for client in [*held, again]:
            await client.close()


async def test_commands_beyond_the_rate_are_answered_rate_limited_and_the_connection_stays_usable(
    gateway_with_rate: RunningGateway,
) -> None:
    async with gateway_with_rate.connect() as client:
        for i in range(30):
            await client.send({"type": "ping", "id": f"p{i}"})
        replies = [await client.reply(f"p{i}") for i in range(30)]
        limited = [r for r in replies if not r["ok"]]
        assert 20 <= len(replies) - len(limited) <= 23  # the burst, plus what refilled meanwhile
        assert limited and all(r["error"]["code"] == "rate_limited" for r in limited)
        retry_after = max(r["error"]["retry_after"] for r in limited)
        assert 0 < retry_after <= 0.1  # 10 per second: one more token in 0.1 s
        await asyncio.sleep(retry_after)
        assert (await client.call("ping"))["time"] > 0  # the connection is still usable


@pytest.fixture
async def gateway_with_rate(tmp_path: Path) -> AsyncIterator[RunningGateway]:
    settings = fast_settings(tmp_path / "data", command_rate_per_s=10.0, command_burst=20)
    async with serve_gateway(settings) as running:
        yield running
