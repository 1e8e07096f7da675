"""``chat.presence``, ``presence.set`` and ``presence.subscribe``."""

from __future__ import annotations

from ...auth import Caller
from ...gateway import Gateway
from ...protocol import ChatPresence, Empty, PresenceSet, PresenceSubscribe
from .registry import handles

__all__: list[str] = []


@handles(ChatPresence)
async def chat_presence(gw: Gateway, caller: Caller, cmd: ChatPresence) -> Empty:
    await gw.sessions.presence.chat(caller.tenant, cmd.session, chat=cmd.chat, state=cmd.state)
    return Empty()


@handles(PresenceSet)
async def presence_set(gw: Gateway, caller: Caller, cmd: PresenceSet) -> Empty:
    await gw.sessions.presence.set(caller.tenant, cmd.session, state=cmd.state)
    return Empty()


@handles(PresenceSubscribe)
async def presence_subscribe(gw: Gateway, caller: Caller, cmd: PresenceSubscribe) -> Empty:
    await gw.sessions.presence.subscribe(caller.tenant, cmd.session, chat=cmd.chat)
    return Empty()
