"""Contacts: who is who (a session's phone number ↔ LID map), is a number on WhatsApp (and as which account),
what an account shows of itself, and blocking (pure)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from .base import Command, Recipient, Scope, SessionName, command

__all__ = [
    "CONTACT_CHECK_MAX",
    "BlockResult",
    "Blocklist",
    "ContactBlock",
    "ContactBlocklist",
    "ContactCheck",
    "ContactCheckResult",
    "ContactIdentity",
    "ContactInfo",
    "ContactInfoResult",
    "ContactResolve",
    "ContactUnblock",
    "NumberCheck",
    "ProfilePicture",
]


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


CONTACT_CHECK_MAX = 100
"""Phone numbers per ``contact.check`` at most."""


class NumberCheck(msgspec.Struct, omit_defaults=True, kw_only=True):
    phone: str
    """The number as given."""
    on_whatsapp: bool
    jid: str | None = None
    """The canonical JID WhatsApp answered: send here (a Brazilian mobile number registered before the ninth
    digit answers without it)."""
    lid: str | None = None
    """The account's hidden-user id (``…@lid``), when known."""
    business: bool = False
    business_name: str | None = None
    """A business account's verified name."""


class ContactCheckResult(msgspec.Struct, kw_only=True):
    contacts: list[NumberCheck]
    """One per number asked, in the same order."""


class ProfilePicture(msgspec.Struct, kw_only=True):
    media_id: str
    """The picture, stored by the gateway: ``GET /v1/media/{media_id}`` (a WhatsApp link would expire)."""
    mimetype: str
    size: int
    picture_id: str
    """WhatsApp's id of this picture: it changes when the contact changes the picture."""


class ContactInfoResult(msgspec.Struct, omit_defaults=True, kw_only=True):
    jid: str
    lid: str | None = None
    push_name: str | None = None
    """The name the contact chose for itself, as the session last saw it."""
    business: bool = False
    business_name: str | None = None
    """A business account's verified name."""
    about: str | None = None
    """The about text, unless the contact's privacy hides it."""
    picture: ProfilePicture | None = None
    """The profile picture, unless there is none or the contact's privacy hides it."""
    blocked: bool = False
    """The session's account blocked this contact."""


class BlockResult(msgspec.Struct, kw_only=True):
    jid: str
    blocked: bool


class Blocklist(msgspec.Struct, kw_only=True):
    blocked: list[str]
    """The JIDs the account blocked."""


Phones = Annotated[list[Recipient], msgspec.Meta(min_length=1, max_length=CONTACT_CHECK_MAX)]


@command(reply=ContactCheckResult, scope=Scope.SEND, http=("POST", "/v1/sessions/{session}/contacts/check"))
class ContactCheck(Command, tag="contact.check"):
    """Ask WhatsApp which of ``phones`` are on WhatsApp: for each, the canonical JID to write to, the account's
    LID when known, and whether it is a business. Answers are cached for a few minutes."""

    session: SessionName
    phones: Phones


@command(reply=ContactInfoResult, scope=Scope.SEND, http=("GET", "/v1/sessions/{session}/contacts/info"))
class ContactInfo(Command, tag="contact.info"):
    """What a contact shows of itself: push name, verified business name, about, and profile picture (stored in
    the media store), as its privacy settings allow."""

    session: SessionName
    contact: Recipient
    """A phone number, a phone JID or a LID."""


@command(reply=BlockResult, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/contacts/block"))
class ContactBlock(Command, tag="contact.block"):
    """Block a contact: WhatsApp stops delivering its messages and calls to the account."""

    session: SessionName
    contact: Recipient


@command(reply=BlockResult, scope=Scope.TENANT, http=("POST", "/v1/sessions/{session}/contacts/unblock"))
class ContactUnblock(Command, tag="contact.unblock"):
    """Unblock a contact."""

    session: SessionName
    contact: Recipient


@command(reply=Blocklist, scope=Scope.READ, http=("GET", "/v1/sessions/{session}/contacts/blocked"))
class ContactBlocklist(Command, tag="contact.blocklist"):
    """The contacts the account blocked, as WhatsApp has them."""

    session: SessionName
