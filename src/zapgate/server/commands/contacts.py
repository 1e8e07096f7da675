"""``contact.resolve``."""

from __future__ import annotations

from ...auth import Caller
from ...errors import InvalidRecipient
from ...gateway import Gateway
from ...jid import parse_recipient
from ...protocol import ContactIdentity, ContactResolve
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
