"""Command handlers: one small function per command, taking the authenticated tenant.

Every handler that names a session resolves it through :meth:`SessionManager.get` with the caller's
tenant, so another tenant's session is indistinguishable from a missing one.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from ..engines.simulator import SimulatorEngine
from ..errors import CommandUnavailable, InvalidRequest
from ..gateway import Gateway
from ..hub import event_frame
from ..protocol import (
    Command,
    EventsFetch,
    MessageRead,
    MessageSend,
    Ping,
    SessionDelete,
    SessionGet,
    SessionList,
    SessionLogout,
    SessionStart,
    SessionStop,
    SimNetwork,
    SimReceive,
    SimRestrict,
    SimScan,
    SimUnlink,
)

__all__ = ["run_command"]

Handler = Callable[[Gateway, str, Any], Awaitable[Any]]

EVENTS_FETCH_MAX_BYTES = 512 * 1024
"""An ``events.fetch`` reply stops adding events past this size (but always carries at least one), so that it
fits the 1 MiB default message limit of common WebSocket clients."""


async def session_start(gw: Gateway, tenant: str, cmd: SessionStart) -> Any:
    session = await gw.sessions.start_session(tenant, cmd.session, pair_phone=cmd.pair_phone)
    return gw.sessions.info(session)


async def session_list(gw: Gateway, tenant: str, cmd: SessionList) -> Any:
    return {"sessions": [gw.sessions.info(s) for s in gw.sessions.for_tenant(tenant)]}


async def session_get(gw: Gateway, tenant: str, cmd: SessionGet) -> Any:
    return gw.sessions.info(gw.sessions.get(tenant, cmd.session))


async def session_stop(gw: Gateway, tenant: str, cmd: SessionStop) -> Any:
    return gw.sessions.info(await gw.sessions.stop_session(tenant, cmd.session))


async def session_logout(gw: Gateway, tenant: str, cmd: SessionLogout) -> Any:
    return gw.sessions.info(await gw.sessions.logout_session(tenant, cmd.session))


async def session_delete(gw: Gateway, tenant: str, cmd: SessionDelete) -> Any:
    await gw.sessions.delete_session(tenant, cmd.session)
    return {"session": cmd.session, "deleted": True}


async def message_send(gw: Gateway, tenant: str, cmd: MessageSend) -> Any:
    return await gw.sessions.send_text(
        tenant, cmd.session, to=cmd.to, text=cmd.text, reply_to=cmd.reply_to, idempotency_key=cmd.idempotency_key
    )


async def message_read(gw: Gateway, tenant: str, cmd: MessageRead) -> Any:
    await gw.sessions.mark_read(tenant, cmd.session, chat=cmd.chat, message_ids=cmd.message_ids)
    return {"read": len(cmd.message_ids)}


async def events_fetch(gw: Gateway, tenant: str, cmd: EventsFetch) -> Any:
    oldest, newest = await gw.storage.event_bounds(tenant)
    gap = cmd.after > newest or (oldest > 0 and cmd.after < oldest - 1)
    frames: list[msgspec.Raw] = []
    size = 0
    for event in [] if gap else await gw.storage.read_events(tenant, cmd.after, cmd.limit):
        frame = event_frame(event).encode()
        if frames and size + len(frame) > EVENTS_FETCH_MAX_BYTES:
            break  # the client pages on with after = the last seq it got
        frames.append(msgspec.Raw(frame))
        size += len(frame)
    return {
        "events": frames,
        "oldest_seq": oldest,
        "last_seq": newest,
        "gap": gap,
    }


async def ping(gw: Gateway, tenant: str, cmd: Ping) -> Any:
    return {"time": time.time()}


def _simulator(gw: Gateway) -> SimulatorEngine:
    if not isinstance(gw.engine, SimulatorEngine):
        raise CommandUnavailable("sim.* commands exist only when the gateway runs with --engine simulator")
    return gw.engine


async def sim_scan(gw: Gateway, tenant: str, cmd: SimScan) -> Any:
    engine = _simulator(gw)

    def owned(session_id: str) -> bool:
        session = gw.sessions.by_id(session_id)
        return session is not None and session.tenant == tenant

    me = await engine.scan(cmd.qr, cmd.phone, owned=owned)
    return {"me": me}


async def sim_unlink(gw: Gateway, tenant: str, cmd: SimUnlink) -> Any:
    engine = _simulator(gw)
    await engine.unlink(gw.sessions.get(tenant, cmd.session).id)
    return {}


async def sim_network(gw: Gateway, tenant: str, cmd: SimNetwork) -> Any:
    engine = _simulator(gw)
    await engine.set_network(gw.sessions.get(tenant, cmd.session).id, cmd.online)
    return {}


async def sim_receive(gw: Gateway, tenant: str, cmd: SimReceive) -> Any:
    engine = _simulator(gw)
    session = gw.sessions.get(tenant, cmd.session)
    message_id = await engine.receive(session.id, cmd.from_, cmd.text, cmd.reply_to)
    return {"message_id": message_id}


async def sim_restrict(gw: Gateway, tenant: str, cmd: SimRestrict) -> Any:
    engine = _simulator(gw)
    until = await engine.restrict(gw.sessions.get(tenant, cmd.session).id, cmd.seconds, cmd.reason)
    return {"until": until}


HANDLERS: dict[type[Any], Handler] = {
    SessionStart: session_start,
    SessionList: session_list,
    SessionGet: session_get,
    SessionStop: session_stop,
    SessionLogout: session_logout,
    SessionDelete: session_delete,
    MessageSend: message_send,
    MessageRead: message_read,
    EventsFetch: events_fetch,
    Ping: ping,
    SimScan: sim_scan,
    SimUnlink: sim_unlink,
    SimNetwork: sim_network,
    SimReceive: sim_receive,
    SimRestrict: sim_restrict,
}


async def run_command(gw: Gateway, tenant: str, cmd: Command) -> Any:
    """Run one command for ``tenant`` and return its reply data; errors are raised."""
    handler = HANDLERS.get(type(cmd))
    if handler is None:  # every command type has a handler; a test checks it
        raise InvalidRequest(f"no handler for {type(cmd).__name__}")
    return await handler(gw, tenant, cmd)
