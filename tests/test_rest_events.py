"""``GET /v1/events`` over a real socket: pages, long-polls, and Server-Sent Events with replay, resume and limits."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import fast_settings
from .contract import check_server_frame
from .support import TIMEOUT, RestClient, RunningGateway, serve_gateway

ALICE = "+55 11 99999-0001"
CONTACT = "+55 31 97777-0003"


@pytest.fixture
async def rest(gateway: RunningGateway) -> AsyncIterator[RestClient]:
    client = await gateway.rest()
    yield client
    await client.close()


class SSE:
    """A minimal Server-Sent Events reader over httpx: (id, event, data) messages and comments."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.comments: list[str] = []

    async def next(self) -> dict[str, Any] | None:
        """The next message, or None at the end of the stream."""
        message: dict[str, Any] = {}
        async for line in self.lines:
            if line == "":
                if message:
                    if "data" in message:
                        message["data"] = json.loads(message["data"])
                    return message
                continue
            if line.startswith(":"):
                self.comments.append(line[1:].strip())
                continue
            key, _, value = line.partition(": ")
            message[key] = value
        return None

    async def take(self, count: int) -> list[dict[str, Any]]:
        found = []
        for _ in range(count):
            message = await asyncio.wait_for(self.next(), TIMEOUT)
            assert message is not None, f"stream ended after {found}"
            found.append(message)
        return found


def events_of(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    frames = []
    for message in messages:
        if message["event"] == "ready":
            check_server_frame(message["data"])
            continue
        frame = message["data"]
        check_server_frame(frame)
        assert message["id"] == str(frame["seq"]) and message["event"] == frame["event"], message
        frames.append(frame)
    return frames


async def test_a_long_poll_answers_as_soon_as_an_event_exists(rest: RestClient) -> None:
    await rest.ok("POST", "/v1/sessions/{session}/start", session="s")
    last = (await rest.ok("GET", "/v1/events", params={"after": 0}))["last_seq"]
    quick = await rest.ok("GET", "/v1/events", params={"after": last, "wait": 0.05})
    assert quick["events"] == [] and quick["gap"] is False  # waited, nothing came
    poll = asyncio.create_task(rest.ok("GET", "/v1/events", params={"after": last, "wait": 30}))
    await asyncio.sleep(0.2)
    assert not poll.done()  # nothing newer yet: it is waiting
    await rest.ok("POST", "/v1/sessions/{session}/stop", session="s")
    page = await asyncio.wait_for(poll, TIMEOUT)
    assert page["events"] and page["events"][0]["seq"] == last + 1
    gap = await rest.ok("GET", "/v1/events", params={"after": last + 1000, "wait": 30})
    assert gap["gap"] is True  # a gap answers at once


async def test_sse_replays_then_goes_live_without_gap_or_duplicate(gateway: RunningGateway, rest: RestClient) -> None:
    for name in ("a", "b", "c"):
        await rest.ok("POST", "/v1/sessions/{session}/start", session=name)
    before = (await rest.ok("GET", "/v1/events", params={"after": 0}))["last_seq"]
    headers = {"Authorization": f"Bearer {rest.token}", "Accept": "text/event-stream"}
    async with rest.http.stream("GET", "/v1/events", params={"after": 1, "limit": 2}, headers=headers) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = SSE(response)
        ready = (await stream.take(1))[0]
        assert ready["event"] == "ready" and "id" not in ready
        assert ready["data"]["resume"] == "ok" and ready["data"]["replayed"] == before - 1
        replayed = events_of(await stream.take(before - 1))  # paged 2 at a time
        # Live events while the stream is open, from another client.
        for name in ("a", "b"):
            await rest.ok("POST", "/v1/sessions/{session}/stop", session=name)
        live = []
        while not any(
            f["event"] == "session.status" and f["data"]["status"] == "stopped" and f["session"] == "b" for f in live
        ):
            live += events_of(await stream.take(1))
    seqs = [f["seq"] for f in replayed + live]
    assert seqs == list(range(2, seqs[-1] + 1))
    # Resume with Last-Event-ID: the rest, and nothing twice.
    resume = headers | {"Last-Event-ID": str(seqs[3])}
    async with rest.http.stream("GET", "/v1/events", params={"after": 0}, headers=resume) as response:
        stream = SSE(response)
        ready = (await stream.take(1))[0]
        assert ready["data"]["replayed"] == seqs[-1] - seqs[3]
        again = events_of(await stream.take(seqs[-1] - seqs[3]))
    assert [f["seq"] for f in again] == seqs[4:]


async def test_sse_errors_before_the_stream_are_json(gateway: RunningGateway, rest: RestClient) -> None:
    headers = {"Accept": "text/event-stream"}
    async with httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT) as http:
        anonymous = await http.get("/v1/events", params={"after": 0}, headers=headers)
        assert anonymous.status_code == 401 and anonymous.json()["code"] == "unauthorized"
        auth = headers | {"Authorization": f"Bearer {rest.token}"}
        bad = await http.get("/v1/events", params={"after": 0}, headers=auth | {"Last-Event-ID": "x"})
        assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["message"]
        missing = await http.get("/v1/events", headers=auth)
        assert missing.status_code == 400 and "after" in missing.json()["message"]


async def test_sse_after_a_gap_says_so_and_moves_the_cursor(rest: RestClient) -> None:
    await rest.ok("POST", "/v1/sessions/{session}/start", session="s")
    deadline = time.monotonic() + TIMEOUT
    while (await rest.ok("GET", "/v1/sessions/{session}", session="s"))["status"] != "qr":  # its events are stored
        assert time.monotonic() < deadline, "the session never showed a QR code"
        await asyncio.sleep(0.02)
    last = (await rest.ok("GET", "/v1/events", params={"after": 0}))["last_seq"]
    headers = {"Authorization": f"Bearer {rest.token}", "Accept": "text/event-stream"}
    async with rest.http.stream("GET", "/v1/events", params={"after": last + 50}, headers=headers) as response:
        ready = (await SSE(response).take(1))[0]
    assert ready["data"]["resume"] == "gap" and ready["id"] == str(last)


async def test_a_server_shutdown_ends_the_stream_at_once(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path)) as gateway:
        token = await gateway.token()
        http = httpx.AsyncClient(base_url=gateway.http, timeout=TIMEOUT)
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        response = await http.send(
            http.build_request("GET", "/v1/events", params={"after": 0}, headers=headers), stream=True
        )
        stream = SSE(response)
        assert (await stream.take(1))[0]["event"] == "ready"
    # The server has stopped (its shutdown waited for nothing): the stream ended with a last comment.
    assert await asyncio.wait_for(stream.next(), TIMEOUT) is None
    assert any("shutting down" in comment for comment in stream.comments), stream.comments
    await response.aclose()
    await http.aclose()


@pytest.mark.parametrize(
    ("limit", "size"),
    # 60 events that wait: more than 5 of them, or more than 64 KiB of them.
    [({"send_buffer_frames": 5}, 60000), ({"send_buffer_bytes": 65536}, 30000)],
    ids=["events", "bytes"],
)
async def test_a_stream_that_is_not_read_is_cut_and_resumes_without_loss(
    tmp_path: Path, limit: dict[str, int], size: int
) -> None:
    settings = fast_settings(tmp_path, **limit)
    async with serve_gateway(settings) as gateway, gateway.connect() as ws:
        await ws.pair("alice", ALICE)
        token = await gateway.token()
        start = (await ws.call("events.fetch", after=0))["last_seq"]
        # A client with a tiny receive window that reads nothing.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gateway.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
        writer.write(
            f"GET /v1/events?after={start} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
            f"Authorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        text = "x" * size
        sent = 60
        for i in range(sent):
            await ws.call("sim.receive", session="alice", **{"from": CONTACT}, text=f"{i} {text}")
        newest = (await ws.call("events.fetch", after=0))["last_seq"]
        # Now read: the stream was cut (it ends before the newest event), and resuming gets the rest.
        raw = await asyncio.wait_for(reader.read(-1), TIMEOUT)
        writer.close()
        got = [int(line.split(b": ")[1]) for line in raw.split(b"\n") if line.startswith(b"id: ")]
        assert got and got[-1] < newest, (len(got), newest)
        assert got == list(range(start + 1, got[-1] + 1))
        rest = RestClient(gateway.http, token)
        try:
            headers = {"Accept": "text/event-stream", "Last-Event-ID": str(got[-1])}
            async with rest.http.stream(
                "GET", "/v1/events", params={"after": 0}, headers=headers | {"Authorization": f"Bearer {token}"}
            ) as response:
                stream = SSE(response)
                await stream.take(1)
                rest_of = events_of(await stream.take(newest - got[-1]))
        finally:
            await rest.close()
        assert [f["seq"] for f in rest_of] == list(range(got[-1] + 1, newest + 1))


async def test_an_idle_stream_gets_keep_alive_comments(tmp_path: Path) -> None:
    async with serve_gateway(fast_settings(tmp_path, sse_heartbeat_s=0.05)) as gateway:
        rest = await gateway.rest()
        try:
            headers = {"Authorization": f"Bearer {rest.token}", "Accept": "text/event-stream"}
            async with rest.http.stream("GET", "/v1/events", params={"after": 0}, headers=headers) as response:
                stream = SSE(response)
                await stream.take(1)
                line = ""
                while line != ": keep-alive":  # nothing happens on the tenant: only comments come
                    line = await asyncio.wait_for(anext(stream.lines), TIMEOUT)
                    assert line in ("", ": keep-alive"), line
        finally:
            await rest.close()
