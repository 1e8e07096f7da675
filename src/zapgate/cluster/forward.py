"""Commands forwarded to the node that runs their session, over the bus (``docs/scaling.md``).

The asking node sends the command as the client wrote it (its JSON), with who asked (tenant, token id, scopes),
to the owner's channel ``node.<id>``; the owner runs it through the same command table as a local client's
command and answers with the reply's ``data`` as JSON, or the error's code and message. The asking node hands
that on unchanged, so the client cannot tell a forwarded command from a local one.

The owner answers ``not_owner`` (and does nothing) when it does not run the session (any more); the asking
node then finds the new owner and tries again. When the owner does not answer in time, the asking node cannot
know whether the command ran, and answers ``session_unavailable``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ..auth import Caller
from ..errors import QuotaExceeded, RateLimited, SessionUnavailable, ZapgateError, error_from_wire
from ..protocol import Command, Scope, decode_client_frame, encode
from ..sessions.ownership import NotOwner
from .latency import Latencies

__all__ = ["Forwarder", "NotOwner"]

log = logging.getLogger("zapgate.cluster")

NOT_OWNER = "not_owner"
WATCH_S = 0.5
"""How often a node waiting for a forwarded command's answer checks that the other node still runs the session."""


class _Request(msgspec.Struct, tag="request"):
    id: int
    reply_to: str
    tenant: str
    token_id: str | None
    scopes: list[str]
    command: msgspec.Raw
    local_only: bool = False
    sessions: list[str] | None = None
    """The only sessions the caller's token may use (None: all)."""


class _Response(msgspec.Struct, tag="response"):
    id: int
    ok: bool
    data: msgspec.Raw = msgspec.field(default_factory=lambda: msgspec.Raw(b"null"))
    code: str | None = None
    message: str | None = None
    retry_after: float | None = None
    quota: str | None = None
    limit: int | None = None


_decode = msgspec.json.Decoder(_Request | _Response).decode
_encode = msgspec.json.Encoder().encode

Publish = Callable[[str, bytes], Awaitable[None]]
Runner = Callable[[Caller, Command, bool], Awaitable[Any]]
"""Run a command here: ``(caller, command, local_only)`` → reply data; raises :class:`NotOwner` when this node
does not run its session."""


class Forwarder:
    def __init__(self, node: str, publish: Publish, run_here: Runner) -> None:
        self.node = node
        self._publish = publish
        self._run_here = run_here
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[_Response]] = {}
        self._serving: set[asyncio.Task[None]] = set()
        self.latencies = Latencies()
        """How long answered forwards took, round trip (``/metrics``, ``/healthz``)."""
        self.forwarded = 0
        self.served = 0
        self.timeouts = 0

    @property
    def channel(self) -> str:
        return f"node.{self.node}"

    async def call(
        self,
        node: str,
        caller: Caller,
        command: Command,
        wait_s: float,
        *,
        local_only: bool = False,
        still_there: Callable[[], Awaitable[bool]] | None = None,
    ) -> Any:
        """Run ``command`` on ``node`` for ``caller`` and wait at most ``wait_s`` seconds for the answer; its reply
        data (already encoded, as :class:`msgspec.Raw`). While waiting, ``still_there()`` is asked every
        :data:`WATCH_S`: once it says the node no longer runs the session (it died), waiting is pointless."""
        request_id = next(self._ids)
        future: asyncio.Future[_Response] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = future
        request = _Request(
            id=request_id,
            reply_to=self.node,
            tenant=caller.tenant,
            token_id=caller.token_id,
            scopes=sorted(s.value for s in caller.scopes),
            command=msgspec.Raw(encode(command)),
            local_only=local_only,
            sessions=sorted(caller.sessions) if caller.sessions is not None else None,
        )
        began = time.perf_counter()
        self.forwarded += 1
        watcher = asyncio.create_task(self._watch(still_there)) if still_there is not None else None
        try:
            await self._publish(f"node.{node}", _encode(request))
            waits: set[asyncio.Future[Any]] = {future, *([watcher] if watcher else [])}
            await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
            if not future.done():
                self.timeouts += 1
                log.info("node %s did not answer %s in time (or lost its session)", node, type(command).__name__)
                raise SessionUnavailable(
                    "the node that runs this session did not answer in time (it may have stopped); the command may "
                    "or may not have run (retry; for message.send use the same idempotency_key)"
                )
            response = future.result()
        finally:
            self._waiting.pop(request_id, None)
            if watcher is not None:
                watcher.cancel()
        self.latencies.add(time.perf_counter() - began)
        if response.ok:
            return response.data
        if response.code == NOT_OWNER:
            raise NotOwner(response.message or "not the owner")
        raise error_from_wire(
            response.code or "internal",
            response.message or "",
            response.retry_after,
            quota=response.quota,
            limit=response.limit,
        )

    @staticmethod
    async def _watch(still_there: Callable[[], Awaitable[bool]]) -> None:
        while True:
            await asyncio.sleep(WATCH_S)
            try:
                if not await still_there():
                    return
            except Exception:
                log.debug("checking on a forwarded command's node failed", exc_info=True)

    def receive(self, payload: bytes) -> None:
        """A message on this node's channel (bus handler): a request to serve or an answer to a call."""
        message = _decode(payload)
        if isinstance(message, _Response):
            future = self._waiting.get(message.id)
            if future is not None and not future.done():
                future.set_result(message)
            return
        task = asyncio.create_task(self._serve(message), name=f"forwarded-{message.reply_to}-{message.id}")
        self._serving.add(task)
        task.add_done_callback(self._serving.discard)

    async def _serve(self, request: _Request) -> None:
        self.served += 1
        caller = Caller(
            tenant=request.tenant,
            token_id=request.token_id,
            scopes=frozenset(Scope(s) for s in request.scopes),
            sessions=frozenset(request.sessions) if request.sessions is not None else None,
        )
        try:
            command = decode_client_frame(bytes(request.command))
            if not isinstance(command, Command):
                raise TypeError("not a command")
            data = await self._run_here(caller, command, request.local_only)
            response = _Response(id=request.id, ok=True, data=msgspec.Raw(encode(data if data is not None else {})))
        except NotOwner as exc:
            response = _Response(id=request.id, ok=False, code=NOT_OWNER, message=exc.message)
        except ZapgateError as exc:
            response = _Response(
                id=request.id,
                ok=False,
                code=exc.code,
                message=exc.message,
                retry_after=exc.retry_after if isinstance(exc, RateLimited) else None,
                quota=exc.quota if isinstance(exc, QuotaExceeded) else None,
                limit=exc.limit if isinstance(exc, QuotaExceeded) else None,
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("forwarded command from node %s failed", request.reply_to)
            response = _Response(id=request.id, ok=False, code="internal", message="internal error; see server log")
        try:
            await self._publish(f"node.{request.reply_to}", _encode(response))
        except Exception:
            log.exception("could not answer node %s", request.reply_to)

    async def close(self) -> None:
        for task in list(self._serving):
            task.cancel()
        await asyncio.gather(*self._serving, return_exceptions=True)
        for future in self._waiting.values():
            if not future.done():
                future.cancel()
