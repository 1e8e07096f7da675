"""The bus over Redis pub/sub (``redis://`` or ``rediss://``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from .base import RECONNECT_DELAY_S, Bus, Handler, dispatch

__all__ = ["RedisBus"]

log = logging.getLogger("zapgate.bus")



class RedisBus(Bus):
    name = "redis"

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self._prefix = prefix
        self._client: Any = None
        self._pubsub: Any = None
        self._reader: asyncio.Task[None] | None = None
        self._handlers: Mapping[str, Handler] = {}
        self._connected = False

    def _full(self, channel: str) -> str:
        return f"{self._prefix}.{channel}"

    async def start(self, handlers: Mapping[str, Handler]) -> None:
        import redis.asyncio as redis

        self._handlers = dict(handlers)
        self._client = redis.Redis.from_url(self._url, health_check_interval=10)
        await self._subscribe()
        self._reader = asyncio.create_task(self._read(), name="bus-redis")

    async def _subscribe(self) -> None:
        self._pubsub = self._client.pubsub(ignore_subscribe_messages=True)
        await self._pubsub.subscribe(*(self._full(c) for c in self._handlers))
        self._connected = True

    async def _read(self) -> None:
        cut = len(self._prefix) + 1
        while True:
            try:
                message = await self._pubsub.get_message(timeout=None)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._connected = False
                log.warning("redis bus: connection lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
                with contextlib.suppress(Exception):
                    await self._subscribe()
                continue
            if message is None or message.get("type") != "message":
                continue
            dispatch(self._handlers, message["channel"].decode()[cut:], message["data"])

    async def publish(self, channel: str, payload: bytes) -> None:
        await self._client.publish(self._full(channel), payload)

    @property
    def connected(self) -> bool:
        return self._connected

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()
        if self._client is not None:
            await self._client.aclose()
