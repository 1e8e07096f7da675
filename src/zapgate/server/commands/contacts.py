"""``contact.*``: ``contact.resolve`` (the phone ↔ LID map), and the ones that ask WhatsApp."""

from __future__ import annotations

from ...auth import Caller
from ...errors import InvalidRecipient
from ...gateway import Gateway
from ...jid import parse_recipient
from ...protocol import (
    Blocklist,
    BlockResult,
    ContactBlock,
    ContactBlocklist,
    ContactCheck,
    ContactCheckResult,
    ContactIdentity,
    ContactInfo,
    ContactInfoResult,
    ContactResolve,
    ContactUnblock,
)
from ...sessions.identity import user_part
from .registry import handles

__all__: list[str] = []


@handles(ContactResolve)
async def contact_resolve(gw: Gateway, caller: Caller, cmd: ContactResolve) -> ContactIdentity:
    session = gw.sessions.get(caller.tenant, cmd.session)
    jid = parse_recipient(cmd.contact)
    if jid.is_group:
        raise InvalidRecipient(f"{cmd.contact!r} is a group; contact.resolve takes a phone number, a JID or a LID")
    both = await gw.sessions.identities.both(session.id, str(jid))
    return ContactIdentity(jid=both.phone, lid=both.lid, phone=user_part(both.phone) if both.phone else None)


@handles(ContactCheck)
async def contact_check(gw: Gateway, caller: Caller, cmd: ContactCheck) -> ContactCheckResult:
    return ContactCheckResult(contacts=await gw.sessions.contacts.check(caller.tenant, cmd.session, cmd.phones))


@handles(ContactInfo)
async def contact_info(gw: Gateway, caller: Caller, cmd: ContactInfo) -> ContactInfoResult:
    return await gw.sessions.contacts.info(caller.tenant, cmd.session, cmd.contact)


@handles(ContactBlock)
async def contact_block(gw: Gateway, caller: Caller, cmd: ContactBlock) -> BlockResult:
    return await gw.sessions.contacts.block(caller.tenant, cmd.session, cmd.contact, True)


@handles(ContactUnblock)
async def contact_unblock(gw: Gateway, caller: Caller, cmd: ContactUnblock) -> BlockResult:
    return await gw.sessions.contacts.block(caller.tenant, cmd.session, cmd.contact, False)


@handles(ContactBlocklist)
async def contact_blocklist(gw: Gateway, caller: Caller, cmd: ContactBlocklist) -> Blocklist:
    return Blocklist(blocked=await gw.sessions.contacts.blocklist(caller.tenant, cmd.session))
