"""``session.*``: create, start, stop, log out, delete and describe sessions."""

from __future__ import annotations

from ...auth import Caller
from ...gateway import Gateway
from ...protocol import (
    SessionDelete,
    SessionDeleteResult,
    SessionGet,
    SessionInfo,
    SessionList,
    SessionListResult,
    SessionLogout,
    SessionStart,
    SessionStop,
)
from .registry import handles

__all__: list[str] = []


@handles(SessionStart)
async def session_start(gw: Gateway, caller: Caller, cmd: SessionStart) -> SessionInfo:
    session = await gw.sessions.start_session(caller.tenant, cmd.session, pair_phone=cmd.pair_phone)
    return gw.sessions.info(session)


@handles(SessionList)
async def session_list(gw: Gateway, caller: Caller, cmd: SessionList) -> SessionListResult:
    return SessionListResult(sessions=[gw.sessions.info(s) for s in gw.sessions.for_tenant(caller.tenant)])


@handles(SessionGet)
async def session_get(gw: Gateway, caller: Caller, cmd: SessionGet) -> SessionInfo:
    return gw.sessions.info(gw.sessions.get(caller.tenant, cmd.session))


@handles(SessionStop)
async def session_stop(gw: Gateway, caller: Caller, cmd: SessionStop) -> SessionInfo:
    return gw.sessions.info(await gw.sessions.stop_session(caller.tenant, cmd.session))


@handles(SessionLogout)
async def session_logout(gw: Gateway, caller: Caller, cmd: SessionLogout) -> SessionInfo:
    return gw.sessions.info(await gw.sessions.logout_session(caller.tenant, cmd.session))


@handles(SessionDelete)
async def session_delete(gw: Gateway, caller: Caller, cmd: SessionDelete) -> SessionDeleteResult:
    await gw.sessions.delete_session(caller.tenant, cmd.session)
    return SessionDeleteResult(session=cmd.session, deleted=True)
