"""Presence for sessions: the ``chat.presence``, ``presence.set`` and ``presence.subscribe`` commands, and the
``presence`` events the engine reports.

Presence is not durable on WhatsApp's side and an engine does not queue it: a command reaches WhatsApp now or
fails (``engine_unavailable`` while the session is offline). Events are stored like every other event, so a
client that reconnects still sees them in order; an event repeating the previous one for the same chat and
person within :data:`REPEAT_WINDOW_S` is dropped, since WhatsApp repeats ``typing`` while someone keeps typing.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..engines.base import Availability, ChatState, Engine, PresenceIn, SendError
from ..errors import EngineUnavailable, SendFailed, SessionNotPaired
from ..jid import parse_recipient
from ..protocol import PresenceData
from ..storage import NewEvent, Storage

__all__ = ["REMEMBERED", "REPEAT_WINDOW_S", "Presence"]

REPEAT_WINDOW_S = 10.0
"""An event equal to the previous one for the same (session, chat, person) within this many seconds is dropped."""
REMEMBERED = 10_000
"""(session, chat, person) entries kept to drop repeats; the least recently seen are forgotten first."""


class _Session(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def paired(self) -> bool: ...


class Presence:
    """The presence side of the session manager (see the module documentation)."""

    def __init__(
        self,
        engine: Engine,
        storage: Storage,
        lookup: Callable[[str, str], Any],
        event: Callable[[Any, str, Any], NewEvent],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._storage = storage
        self._lookup = lookup
        self._event = event
        self._clock = clock
        self._last: collections.OrderedDict[tuple[str, str, str], tuple[str, int | None, float]] = (
            collections.OrderedDict()
        )

    async def chat(self, tenant: str, name: str, *, chat: str, state: ChatState) -> None:
        session = self._paired(tenant, name)
        jid = parse_recipient(chat)
        await self._call(self._engine.chat_presence(session.id, jid, state), "send the chat presence")

    async def set(self, tenant: str, name: str, *, state: Availability) -> None:
        session = self._paired(tenant, name)
        await self._call(self._engine.set_presence(session.id, state), "set the presence")

    async def subscribe(self, tenant: str, name: str, *, chat: str) -> None:
        session = self._paired(tenant, name)
        jid = parse_recipient(chat)
        await self._call(self._engine.subscribe_presence(session.id, jid), "subscribe to the presence")

    async def received(self, session: _Session, event: PresenceIn) -> None:
        """Store a ``presence`` event for ``event`` unless it repeats the previous one (see the module docs)."""
        key = (session.id, event.chat, event.sender)
        now = self._clock()
        previous = self._last.get(key)
        self._last[key] = (event.state, event.last_seen, now)
        self._last.move_to_end(key)
        while len(self._last) > REMEMBERED:
            self._last.popitem(last=False)
        repeated = previous is not None and previous[:2] == (event.state, event.last_seen)
        if repeated and previous is not None and now - previous[2] < REPEAT_WINDOW_S:
            return
        data = PresenceData(
            chat=event.chat,
            from_=event.sender,
            state=event.state,
            last_seen=event.last_seen,
            chat_lid=event.chat_lid,
            from_lid=event.sender_lid,
        )
        await self._storage.append_events([self._event(session, "presence", data)])

    def _paired(self, tenant: str, name: str) -> _Session:
        session: _Session = self._lookup(tenant, name)
        if not session.paired:
            raise SessionNotPaired(f"session {name!r} is not linked to a phone yet: pair it first")
        return session

    @staticmethod
    async def _call(call: Awaitable[None], what: str) -> None:
        try:
            await call
        except SendError as exc:
            if exc.retryable:
                raise EngineUnavailable(f"could not {what} now ({exc.message}); retry when connected") from None
            raise SendFailed(f"could not {what}: {exc.message}") from None
