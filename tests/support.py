"""Test support: run a real gateway in-process on 127.0.0.1, and a minimal raw WebSocket client.

The client here is deliberately not the SDK: the protocol tests speak raw JSON frames over a plain
``websockets`` connection, exactly as a user without the SDK would. It checks every frame it sends and receives
against the published AsyncAPI contract (``tests/contract.py``), so the whole end-to-end suite checks the
contract too; a test that sends an invalid frame on purpose passes ``validate=False``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import uvicorn
import websockets
from websockets.asyncio.client import ClientConnection

from zapgate.config import Settings
from zapgate.gateway import Gateway
from zapgate.server import GatewayServer, create_app, uvicorn_config
from zapgate.server.guard import EdgeGuard

from .contract import check_client_frame, check_rest_response, check_server_frame

TIMEOUT_SCALE = float(os.environ.get("ZAPGATE_TEST_TIMEOUT_SCALE", "1") or 1)
"""Multiplies every timeout in the tests (``ZAPGATE_TEST_TIMEOUT_SCALE``): raise it on a slow machine."""
TIMEOUT = 10.0 * TIMEOUT_SCALE


async def eventually(check: Callable[[], Any], what: str) -> None:
    """Wait until ``check()`` (sync or async) is truthy; fails with ``what`` after the test timeout."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


@dataclass
class RunningGateway:
    settings: Settings
    gateway: Gateway
    port: int
    edge: EdgeGuard | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/ws"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def token(self, tenant: str = "acme") -> str:
        _, token = await self.gateway.tokens.create(tenant)
        return token

    async def rest(self, tenant: str = "acme") -> RestClient:
        """A REST client with a new token of ``tenant`` (close it)."""
        return RestClient(self.http, await self.token(tenant))

    async def client(self, tenant: str = "acme", **kwargs: Any) -> RawClient:
        """A connected, authenticated raw client for ``tenant`` (close it, or use ``connect``)."""
        client = await RawClient.open(self.url, **kwargs)
        await client.authenticate(await self.token(tenant))
        return client

    @contextlib.asynccontextmanager
    async def connect(self, tenant: str = "acme") -> AsyncIterator[RawClient]:
        client = await self.client(tenant)
        try:
            yield client
        finally:
            await client.close()


@contextlib.asynccontextmanager
async def serve_gateway(settings: Settings) -> AsyncIterator[RunningGateway]:
    """Run the real ASGI app under uvicorn on 127.0.0.1 (port 0 → a free one) for the block's duration."""
    app = create_app(settings.replace(host="127.0.0.1"))
    server = GatewayServer(uvicorn_config(app, settings.replace(host="127.0.0.1")))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped while starting")
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield RunningGateway(settings, app.state.gateway, port, app.state.edge)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


@contextlib.asynccontextmanager
async def serve_asgi(app: Any) -> AsyncIterator[int]:
    """Run any ASGI app (a test's HTTP receiver, say) under uvicorn on 127.0.0.1; yield its port."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_config=None, access_log=False)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("server stopped while starting")
            await asyncio.sleep(0.01)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)


class RawClient:
    """JSON frames over a plain websockets connection, with a little bookkeeping for tests."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.hello: dict[str, Any] | None = None
        self.ready: dict[str, Any] | None = None
        self.events: list[dict[str, Any]] = []  # every event frame received, in order
        self._replies: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)
        self._commands: dict[str, str] = {}  # id → type of the commands sent, to check their replies

    @classmethod
    async def open(cls, url: str, **kwargs: Any) -> RawClient:
        ws = await websockets.connect(url, open_timeout=TIMEOUT, compression=None, **kwargs)
        client = cls(ws)
        client.hello = await client.recv()
        return client

    async def authenticate(self, token: str, resume_from: int | None = None, validate: bool = True) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "auth", "token": token}
        if resume_from is not None:
            frame["resume_from"] = resume_from
        await self.send(frame, validate=validate)
        self.ready = await self.recv()
        assert self.ready["type"] == "ready", self.ready
        return self.ready

    async def close(self) -> None:
        """Close while reading (and dropping) what the server still sends: a client that stopped reading
        would not see the server's close frame queued behind events and would wait out its close timeout."""

        async def drain() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for _ in self.ws:
                    pass

        reader = asyncio.create_task(drain())
        await self.ws.close()
        await reader

    async def send(self, frame: dict[str, Any] | str, validate: bool = True) -> None:
        """Send a frame; unless ``validate`` is False it must be one the AsyncAPI contract allows."""
        decoded: Any = frame
        if isinstance(frame, str):
            with contextlib.suppress(ValueError, RecursionError):
                decoded = json.loads(frame)
        if validate:
            check_client_frame(decoded)
        if isinstance(decoded, dict) and isinstance(decoded.get("id"), str):
            self._commands[decoded["id"]] = str(decoded.get("type"))
        await self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    async def recv(self, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The next frame, checked against the AsyncAPI contract."""
        message = await asyncio.wait_for(self.ws.recv(), timeout)
        frame: dict[str, Any] = json.loads(message)
        command = self._commands.pop(frame["id"], None) if frame.get("type") == "reply" else None
        check_server_frame(frame, command)
        if frame.get("type") == "event":
            self.events.append(frame)
        return frame

    async def _pump_until(self, done: Callable[[], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            frame = await self.recv(max(0.01, deadline - loop.time()))
            if frame.get("type") == "reply":
                self._replies[frame["id"]] = frame

    async def request(
        self, type_: str, timeout: float = TIMEOUT, validate: bool = True, **fields: Any
    ) -> dict[str, Any]:
        """Send a command and return its whole reply frame (ok or not); ``validate=False`` sends an invalid one."""
        request_id = f"r{next(self._ids)}"
        await self.send({"type": type_, "id": request_id, **fields}, validate=validate)
        await self._pump_until(lambda: request_id in self._replies, timeout)
        return self._replies.pop(request_id)

    async def reply(self, request_id: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        """The reply to a command sent with ``send`` under ``request_id``."""
        await self._pump_until(lambda: request_id in self._replies, timeout)
        return self._replies.pop(request_id)

    async def call(self, type_: str, **fields: Any) -> Any:
        """Send a command and return its ``data``; fail the test on an error reply."""
        reply = await self.request(type_, **fields)
        assert reply["ok"], reply
        return reply["data"]

    async def event(
        self, name: str, where: Callable[[dict[str, Any]], bool] = lambda _: True, timeout: float = TIMEOUT
    ) -> dict[str, Any]:
        """The first event named ``name`` matching ``where`` received from now on (or already seen)."""
        seen = len(self.events)
        for frame in self.events[:seen]:
            if frame["event"] == name and where(frame) and not frame.get("_taken"):
                frame["_taken"] = True
                return frame
        found: list[dict[str, Any]] = []

        def done() -> bool:
            for frame in self.events[seen:]:
                if frame["event"] == name and where(frame) and not frame.get("_taken"):
                    frame["_taken"] = True
                    found.append(frame)
                    return True
            return False

        await self._pump_until(done, timeout)
        return found[0]

    async def status(self, session: str, status: str, timeout: float = TIMEOUT) -> dict[str, Any]:
        return await self.event(
            "session.status", lambda e: e["session"] == session and e["data"]["status"] == status, timeout
        )

    async def pair(self, session: str, phone: str) -> dict[str, Any]:
        """Start ``session`` and scan its first QR with a simulated phone; return the connected event."""
        await self.call("session.start", session=session)
        qr = await self.event("session.qr", lambda e: e["session"] == session)
        await self.call("sim.scan", qr=qr["data"]["qr"], phone=phone)
        return await self.status(session, "connected")


@dataclass
class RestAnswer:
    status: int
    body: Any
    headers: httpx.Headers


class RestClient:
    """HTTP calls to the REST API with a token; every JSON answer is checked against the OpenAPI contract."""

    def __init__(self, base: str, token: str | None) -> None:
        self.http = httpx.AsyncClient(base_url=base, timeout=TIMEOUT)
        self.token = token

    async def close(self) -> None:
        await self.http.aclose()

    async def call(
        self,
        method: str,
        template: str,
        *,
        params: Any = None,
        json_body: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
        **path: str,
    ) -> RestAnswer:
        """``template`` is the route as the OpenAPI document names it (``/v1/sessions/{session}``)."""
        sent = dict(headers or {})
        if self.token is not None:
            sent.setdefault("Authorization", f"Bearer {self.token}")
        url = template.format(**{k: quote(v, safe="") for k, v in path.items()})
        response = await self.http.request(method, url, params=params, json=json_body, content=content, headers=sent)
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else None
        check_rest_response(template, method, response.status_code, response.headers.get("content-type", ""), body)
        return RestAnswer(response.status_code, body, response.headers)

    async def ok(self, method: str, template: str, **kwargs: Any) -> Any:
        answer = await self.call(method, template, **kwargs)
        assert answer.status == 200, (answer.status, answer.body)
        return answer.body
