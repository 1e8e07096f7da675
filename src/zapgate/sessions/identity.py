"""Who is who: a session's map between phone numbers and hidden-user ids (LIDs) (pure, no I/O).

WhatsApp names a person either by phone number (``5511999990000@s.whatsapp.net``) or by a *LID*
(``123456789012345@lid``), an id that hides the number. Which one arrives depends on the chat's addressing mode
and on the person's privacy settings; often both arrive (whatsmeow's ``Sender`` and ``SenderAlt``), sometimes
only the LID. Each session keeps what it learned (from messages, receipts, look-ups, group member lists and
history syncs) in an :class:`IdentityMap`, so that every event can name a person both ways when either was ever
seen together with the other, and a client can address anyone by either form.

A LID belongs to one account, and an account has one LID: learning ``(phone, lid)`` replaces whatever either
side was paired with before (a number that changed hands gets a new LID).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..jid import LID_SERVER, USER_SERVER

__all__ = ["Both", "IdentityMap", "lid_jid", "phone_jid", "user_part"]


def user_part(jid: str) -> str:
    """``5511…`` of ``5511…:3@s.whatsapp.net`` (no device or agent part)."""
    return jid.partition("@")[0].split(":", 1)[0].split(".", 1)[0]


def phone_jid(phone: str) -> str:
    return f"{phone}@{USER_SERVER}"


def lid_jid(lid: str) -> str:
    return f"{lid}@{LID_SERVER}"


@dataclass(frozen=True, slots=True)
class Both:
    """A person's two addresses, each None when not known."""

    phone: str | None
    """The phone-number JID."""
    lid: str | None
    """The ``…@lid`` JID."""

    @property
    def preferred(self) -> str | None:
        """The address to report and to send to: the phone number when known (replies to a LID fail on some
        accounts), else the LID."""
        return self.phone or self.lid


class IdentityMap:
    """One session's phone ↔ LID pairs, by user part (digits, no server)."""

    def __init__(self, pairs: Iterable[tuple[str, str]] = ()) -> None:
        self._phone_of: dict[str, str] = {}
        self._lid_of: dict[str, str] = {}
        for phone, lid in pairs:
            self.learn(phone, lid)

    def __len__(self) -> int:
        return len(self._phone_of)

    def learn(self, phone: str, lid: str) -> bool:
        """Record that ``phone`` and ``lid`` (user parts) are one person; True when that is news."""
        if not phone or not lid or (self._phone_of.get(lid) == phone and self._lid_of.get(phone) == lid):
            return False
        old_phone = self._phone_of.pop(lid, None)
        if old_phone is not None:
            self._lid_of.pop(old_phone, None)
        old_lid = self._lid_of.pop(phone, None)
        if old_lid is not None:
            self._phone_of.pop(old_lid, None)
        self._phone_of[lid] = phone
        self._lid_of[phone] = lid
        return True

    def learn_jids(self, phone: str | None, lid: str | None) -> tuple[str, str] | None:
        """:meth:`learn` from two JIDs, either possibly missing or of the wrong kind; returns the new
        (phone, lid) user parts, or None when nothing new was learned."""
        if not phone or not lid or not phone.endswith("@" + USER_SERVER) or not lid.endswith("@" + LID_SERVER):
            return None
        pair = (user_part(phone), user_part(lid))
        return pair if self.learn(*pair) else None

    def phone_of(self, lid: str) -> str | None:
        return self._phone_of.get(lid)

    def lid_of(self, phone: str) -> str | None:
        return self._lid_of.get(phone)

    def both(self, jid: str | None) -> Both:
        """Both addresses of the person ``jid`` names (a phone JID or a LID); groups and other JIDs have no
        other form: ``Both(jid, None)``."""
        if not jid:
            return Both(None, None)
        user, _, server = jid.partition("@")
        user = user_part(jid)
        if server == LID_SERVER:
            phone = self._phone_of.get(user)
            return Both(phone_jid(phone) if phone else None, lid_jid(user))
        if server == USER_SERVER:
            lid = self._lid_of.get(user)
            return Both(phone_jid(user), lid_jid(lid) if lid else None)
        return Both(jid, None)
