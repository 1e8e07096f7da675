"""``sim.*``: what a phone or WhatsApp itself would do, on the simulator engine only."""

from __future__ import annotations

from ...auth import Caller
from ...engines.base import Sandbox
from ...errors import CommandUnavailable, InvalidRequest
from ...gateway import Gateway
from ...jid import parse_phone
from ...protocol import (
    Empty,
    SimContact,
    SimContactResult,
    SimMediaFail,
    SimMediaFailResult,
    SimNetwork,
    SimProfile,
    SimReceive,
    SimReceiveResult,
    SimRestrict,
    SimRestrictResult,
    SimScan,
    SimScanResult,
    SimUnlink,
)
from ...protocol.content import check_sendable, media_of
from .messages import content_of
from .registry import handles

__all__: list[str] = []


def _sandbox(gw: Gateway) -> Sandbox:
    if gw.sandbox is None:
        raise CommandUnavailable("sim.* commands exist only when the gateway runs with --engine simulator")
    return gw.sandbox


@handles(SimScan)
async def sim_scan(gw: Gateway, caller: Caller, cmd: SimScan) -> SimScanResult:
    def owned(session_id: str) -> bool:
        session = gw.sessions.by_id(session_id)
        return session is not None and session.tenant == caller.tenant and caller.may_use(session.name)

    return SimScanResult(me=await _sandbox(gw).scan(cmd.qr, cmd.phone, owned=owned, tenant=caller.tenant))


@handles(SimUnlink)
async def sim_unlink(gw: Gateway, caller: Caller, cmd: SimUnlink) -> Empty:
    await _sandbox(gw).unlink(gw.sessions.get(caller.tenant, cmd.session).id)
    return Empty()


@handles(SimNetwork)
async def sim_network(gw: Gateway, caller: Caller, cmd: SimNetwork) -> Empty:
    await _sandbox(gw).set_network(gw.sessions.get(caller.tenant, cmd.session).id, cmd.online)
    return Empty()


@handles(SimReceive)
async def sim_receive(gw: Gateway, caller: Caller, cmd: SimReceive) -> SimReceiveResult:
    session = gw.sessions.get(caller.tenant, cmd.session)
    content = content_of(cmd.content, cmd.text)
    problem = check_sendable(content)
    if problem is not None:
        raise InvalidRequest(problem)
    sandbox = _sandbox(gw)
    media = None
    if media_of(content) is not None:  # the contact's file: an upload of the tenant, a URL or inline data
        content, _ = await gw.media.for_sending(caller.tenant, content)
        media = await gw.media.file_for(content)
    message_id = await sandbox.receive(session.id, cmd.from_, content, cmd.reply_to, media)
    return SimReceiveResult(message_id=message_id)


@handles(SimRestrict)
async def sim_restrict(gw: Gateway, caller: Caller, cmd: SimRestrict) -> SimRestrictResult:
    until = await _sandbox(gw).restrict(gw.sessions.get(caller.tenant, cmd.session).id, cmd.seconds, cmd.reason)
    return SimRestrictResult(until=until)


@handles(SimMediaFail)
async def sim_media_fail(gw: Gateway, caller: Caller, cmd: SimMediaFail) -> SimMediaFailResult:
    session = gw.sessions.get(caller.tenant, cmd.session)
    return SimMediaFailResult(failing=await _sandbox(gw).fail_downloads(session.id, cmd.times, cmd.reason))


@handles(SimContact)
async def sim_contact(gw: Gateway, caller: Caller, cmd: SimContact) -> SimContactResult:
    sandbox = _sandbox(gw)
    return await sandbox.contact(
        cmd.phone, hide_phone=cmd.hide_phone, refuse_group_adds=cmd.refuse_group_adds, tenant=caller.tenant
    )


@handles(SimProfile)
async def sim_profile(gw: Gateway, caller: Caller, cmd: SimProfile) -> Empty:
    await _sandbox(gw).set_profile(
        parse_phone(cmd.phone),
        tenant=caller.tenant,
        about=cmd.about,
        business_name=cmd.business_name,
        picture=cmd.picture,
        hide_profile=cmd.hide_profile,
    )
    return Empty()
