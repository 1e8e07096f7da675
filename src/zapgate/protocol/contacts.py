"""Contacts: who is who (a session's phone number ↔ LID map) (pure)."""

from __future__ import annotations

import msgspec

from .base import Command, Recipient, Scope, SessionName, command

__all__ = ["ContactIdentity", "ContactResolve"]


class ContactIdentity(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A person's addresses as the session knows them; a side that is not known is absent."""

    jid: str | None = None
    """The phone-number JID (``5511999990000@s.whatsapp.net``)."""
    lid: str | None = None
    """The hidden-user id (``123456789012345@lid``)."""
    phone: str | None = None
    """The phone number, digits with the country code (``5511999990000``)."""


@command(reply=ContactIdentity, scope=Scope.READ, http=("GET", "/v1/sessions/{session}/contacts/resolve"))
class ContactResolve(Command, tag="contact.resolve"):
    """Both addresses of a person: ``contact`` is a phone number, a phone-number JID or a LID (``…@lid``). Answers what
    the session learned from WhatsApp (messages, receipts, look-ups, group members, history); a side it never
    saw is absent."""

    session: SessionName
    contact: Recipient
