"""A real HTTP webhook receiver for the tests: Starlette under uvicorn on 127.0.0.1.

It records every request (headers and body) and answers what its ``answer`` function says: a status, or
``HANG`` to never answer. Signatures are verified with the official ``standardwebhooks`` library.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from standardwebhooks import Webhook
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .support import serve_asgi

HANG = -1


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def id(self) -> str:
        return self.headers["webhook-id"]

    @property
    def frame(self) -> dict[str, Any]:
        return json.loads(self.body)  # type: ignore[no-any-return]

    def verify(self, secret: str) -> dict[str, Any]:
        return Webhook(secret).verify(self.body, self.headers)  # type: ignore[no-any-return]


@dataclass
class Receiver:
    port: int = 0
    answer: Callable[[dict[str, Any]], int] = lambda frame: 200
    requests: list[Received] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the receiver stops: hanging requests end then."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    @property
    def accepted(self) -> list[Received]:
        return [r for r in self.requests if 200 <= r.status < 300]

    def accepted_seqs(self) -> list[int]:
        return [r.frame["seq"] for r in self.accepted]

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        frame = json.loads(body)
        status = self.answer(frame)
        self.requests.append(Received(dict(request.headers), body, status))
        if status == HANG:
            await self.release.wait()
        return Response(b"", status_code=status)


@contextlib.asynccontextmanager
async def receiver(answer: Callable[[dict[str, Any]], int] = lambda frame: 200) -> AsyncIterator[Receiver]:
    found = Receiver(answer=answer)
    app = Starlette(routes=[Route("/hook", found._endpoint, methods=["POST"])])
    async with serve_asgi(app) as port:
        found.port = port
        try:
            yield found
        finally:
            found.release.set()
