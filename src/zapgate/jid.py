"""WhatsApp addresses: parse what users type into canonical JIDs (pure, no I/O).

A JID is ``user@server``. zapgate accepts a recipient as a phone number in international format
(``+55 11 99999-0000``, ``5511999990000``) or as a full JID (``5511999990000@s.whatsapp.net``, a group
``120363000000000000@g.us`` or a hidden-user ``123456789@lid``). National numbers with a leading 0
are refused because the country cannot be guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import InvalidRecipient

__all__ = ["USER_SERVER", "Jid", "parse_phone", "parse_recipient"]

USER_SERVER = "s.whatsapp.net"
GROUP_SERVER = "g.us"
LID_SERVER = "lid"

_PHONE_PUNCTUATION = re.compile(r"[\s\-().]")
_PHONE_DIGITS = re.compile(r"[1-9][0-9]{6,14}")
_GROUP_USER = re.compile(r"[0-9]{5,20}(-[0-9]{5,15})?")
_LID_USER = re.compile(r"[0-9]{5,20}")
_DEVICE_SUFFIX = re.compile(r"([0-9]+)(?:\.[0-9]+)?:[0-9]{1,4}")
_SERVER_ALIASES = {"c.us": USER_SERVER, USER_SERVER: USER_SERVER, GROUP_SERVER: GROUP_SERVER, LID_SERVER: LID_SERVER}


@dataclass(frozen=True, slots=True)
class Jid:
    """A WhatsApp address without a device part."""

    user: str
    server: str = USER_SERVER

    def __str__(self) -> str:
        return f"{self.user}@{self.server}"

    @property
    def is_user(self) -> bool:
        return self.server == USER_SERVER

    @property
    def is_group(self) -> bool:
        return self.server == GROUP_SERVER

    @classmethod
    def parse(cls, raw: str) -> Jid:
        """Parse a JID string, dropping any ``:device`` or ``.agent`` suffix of the user part."""
        user, sep, server = raw.partition("@")
        if not sep:
            raise InvalidRecipient(f"{raw!r} is not a JID (expected user@server)")
        return cls(user.split(":", 1)[0].split(".", 1)[0], server)


def parse_phone(raw: str) -> str:
    """Return the digits of an international phone number, or raise :class:`InvalidRecipient`."""
    digits = _PHONE_PUNCTUATION.sub("", raw.strip()).removeprefix("+")
    if not _PHONE_DIGITS.fullmatch(digits):
        raise InvalidRecipient(
            f"{raw!r} is not a phone number in international format: use the country code and 7 to 15 "
            "digits, e.g. '+55 11 99999-0000' or '5511999990000'"
        )
    return digits


def parse_recipient(raw: str) -> Jid:
    """Turn a user-supplied recipient into a canonical :class:`Jid`, or raise :class:`InvalidRecipient`."""
    raw = raw.strip()
    if "@" not in raw:
        return Jid(parse_phone(raw))
    user, _, server = raw.partition("@")
    canonical = _SERVER_ALIASES.get(server.lower())
    if canonical in (USER_SERVER, LID_SERVER):
        # A device-qualified JID (``5511…:12@s.whatsapp.net``, as in ``me.jid``) names the same account.
        device_free = _DEVICE_SUFFIX.fullmatch(user)
        if device_free is not None:
            user = device_free.group(1)
    valid = (
        (canonical == USER_SERVER and _PHONE_DIGITS.fullmatch(user) is not None)
        or (canonical == GROUP_SERVER and _GROUP_USER.fullmatch(user) is not None)
        or (canonical == LID_SERVER and _LID_USER.fullmatch(user) is not None)
    )
    if canonical is None or not valid:
        raise InvalidRecipient(
            f"{raw!r} is not a valid recipient: use a phone number like '+55 11 99999-0000' or a JID like "
            "'5511999990000@s.whatsapp.net', '<digits>@g.us' or '<digits>@lid'"
        )
    return Jid(user, canonical)
