"""The bus over PostgreSQL ``LISTEN``/``NOTIFY`` (no service besides the database).

A notification's payload is text of at most 8000 bytes: payloads are sent as base64, and a larger one (a long
forwarded command) as several notifications in one transaction, which PostgreSQL delivers together and in order;
the receiver puts them back together. One connection listens, another publishes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import secrets
from collections.abc import Mapping
from typing import Any

from .base import RECONNECT_DELAY_S, Bus, Handler, dispatch

__all__ = ["PostgresBus"]

log = logging.getLogger("zapgate.bus")

CHUNK_BYTES = 5000
"""Payload bytes per notification (base64 makes 6,668 characters of the 7,999 allowed)."""
MAX_PARTIAL = 256
"""Incomplete multi-part messages kept at once (parts of a message always arrive together; this only bounds
what a publisher that died mid-transaction could leave, which PostgreSQL never delivers anyway)."""


class PostgresBus(Bus):
    name = "postgresql"

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix.replace(".", "_")
        self._handlers: Mapping[str, Handler] = {}
        self._listener: Any = None
        self._publisher: Any = None
        self._publish_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None
        self._partial: dict[str, list[bytes]] = {}
        self._ids = itertools.count(1)
        self._me = secrets.token_hex(4)
        self._connected = False

    def _full(self, channel: str) -> str:
        name = f"{self._prefix}_{channel.replace('.', '_')}"
        if len(name) > 63:
            raise ValueError(f"bus channel name too long for PostgreSQL: {name}")
        return name

    async def start(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)
        self._by_full = {self._full(c): c for c in handlers}
        await self._listen()
        self._reader = asyncio.create_task(self._read(), name="bus-postgres")

    async def _connect(self) -> Any:
        import psycopg

        return await psycopg.AsyncConnection.connect(self._url, autocommit=True, application_name="zapgate-bus")

    async def _listen(self) -> None:
        self._listener = await self._connect()
        for full in self._by_full:
            await self._listener.execute(f'LISTEN "{full}"')
        self._connected = True

    async def _read(self) -> None:
        while True:
            try:
                async for note in self._listener.notifies():
                    channel = self._by_full.get(note.channel)
                    if channel is not None:
                        self._receive(channel, note.payload)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected = False
                log.warning("postgresql bus: connection lost (%s); reconnecting", exc)
            await asyncio.sleep(RECONNECT_DELAY_S)
            with contextlib.suppress(Exception):
                await self._listener.close()
            with contextlib.suppress(Exception):
                await self._listen()

    def _receive(self, channel: str, text: str) -> None:
        head, _, body = text.partition(" ")
        if head == "1":
            dispatch(self._handlers, channel, base64.b64decode(body))
            return
        # "<message id> <part>/<parts> <base64>"
        key = f"{channel} {head}"
        counter, _, chunk = body.partition(" ")
        part, _, parts = counter.partition("/")
        pieces = self._partial.setdefault(key, [])
        pieces.append(base64.b64decode(chunk))
        if part == parts:
            del self._partial[key]
            dispatch(self._handlers, channel, b"".join(pieces))
        while len(self._partial) > MAX_PARTIAL:
            del self._partial[next(iter(self._partial))]

    async def publish(self, channel: str, payload: bytes) -> None:
        full = self._full(channel)
        if len(payload) <= CHUNK_BYTES:
            notes = [f"1 {base64.b64encode(payload).decode()}"]
        else:
            message_id = f"{self._me}.{next(self._ids)}"
            chunks = [payload[i : i + CHUNK_BYTES] for i in range(0, len(payload), CHUNK_BYTES)]
            notes = [
                f"{message_id} {n}/{len(chunks)} {base64.b64encode(chunk).decode()}"
                for n, chunk in enumerate(chunks, start=1)
            ]
        async with self._publish_lock:
            for attempt in (1, 2):
                try:
                    if self._publisher is None or self._publisher.closed:
                        self._publisher = await self._connect()
                    if len(notes) == 1:
                        await self._publisher.execute("SELECT pg_notify(%s, %s)", (full, notes[0]))
                    else:
                        async with self._publisher.transaction():
                            for note in notes:
                                await self._publisher.execute("SELECT pg_notify(%s, %s)", (full, note))
                    return
                except Exception:
                    with contextlib.suppress(Exception):
                        await self._publisher.close()
                    self._publisher = None
                    if attempt == 2:
                        raise

    @property
    def connected(self) -> bool:
        return self._connected

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        for conn in (self._listener, self._publisher):
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
