"""Contacts for sessions: ``contact.check``, ``contact.info``, ``contact.block`` / ``unblock`` / ``blocklist``.

Everything asks WhatsApp through the engine, so it needs a connected session (``engine_unavailable`` while
offline). ``contact.check`` answers are cached per session for :data:`CHECK_CACHE_S`: WhatsApp limits how
often an account may look numbers up, and a CRM importing a list asks about the same numbers again and again.
A profile picture is fetched through the engine and stored in the media store (origin ``picture``): clients
get a media id that stays valid (``GET /v1/media/{id}``), not a WhatsApp CDN link that expires; the same
picture again maps to the same media id.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from ..engines.base import Engine, PhoneCheck, SendError
from ..errors import EngineUnavailable, NotOnWhatsApp, SendFailed, SessionNotPaired
from ..jid import parse_phone, parse_recipient
from ..media.library import MediaLibrary
from ..protocol import BlockResult, ContactInfoResult, NumberCheck, ProfilePicture
from ..storage import Storage
from .chats import ninth_digit_variants
from .identities import Identities

__all__ = ["CHECK_CACHE_S", "CHECK_CACHE_SIZE", "Contacts"]

CHECK_CACHE_S = 300.0
"""How long a ``contact.check`` answer is reused for the same session and number."""
CHECK_CACHE_SIZE = 100_000
"""Cached answers kept at most (all sessions); the oldest are forgotten first."""


class _Session(Protocol):
    @property
    def id(self) -> str: ...

    @property
    def tenant(self) -> str: ...

    @property
    def paired(self) -> bool: ...


class Contacts:
    """The contact side of the session manager (see the module documentation)."""

    def __init__(
        self,
        engine: Engine,
        media: MediaLibrary,
        storage: Storage,
        identities: Identities,
        lookup: Callable[[str, str], Any],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._media = media
        self._storage = storage
        self._identities = identities
        self._lookup = lookup
        self._clock = clock
        self._checked: collections.OrderedDict[tuple[str, str], tuple[float, PhoneCheck]] = collections.OrderedDict()

    async def check(self, tenant: str, name: str, phones: Sequence[str]) -> list[NumberCheck]:
        session = self._paired(tenant, name)
        digits = [parse_phone(phone) for phone in phones]
        now = self._clock()
        answers: dict[str, PhoneCheck] = {}
        for number in digits:
            cached = self._checked.get((session.id, number))
            if cached is not None and cached[0] > now:
                answers[number] = cached[1]
        missing = list(dict.fromkeys(n for n in digits if n not in answers))
        if missing:
            fresh = await _call(self._engine.check_contacts(session.id, missing), "check the numbers")
            await self._identities.learn(session.id, [(a.jid, a.lid) for a in fresh if a.jid and a.lid])
            for answer in fresh:
                answers[answer.phone] = answer
                self._remember(session.id, answer, now)
        return [_number(phone, answers.get(number)) for phone, number in zip(phones, digits, strict=True)]

    async def info(self, tenant: str, name: str, contact: str) -> ContactInfoResult:
        session = self._paired(tenant, name)
        jid = parse_recipient(contact)
        if not (jid.is_user or jid.server == "lid"):
            raise SendFailed(f"{jid} is not a person (contact.info is for contacts; groups have group.info)")
        jid = await self._identities.address(session.id, jid)  # a LID whose number is known: by number
        profile = await _call(self._engine.contact_info(session.id, jid), "read the contact's profile")
        if profile.lid is not None and not profile.jid.endswith("@lid"):
            await self._identities.learn(session.id, [(profile.jid, profile.lid)])
        picture = None
        if profile.picture_id is not None:
            into = await self._media.blobs.scratch()
            try:
                picture_id = await _call(self._engine.profile_picture(session.id, jid, into), "fetch the picture")
            except BaseException:
                into.unlink(missing_ok=True)
                raise
            if picture_id is not None:
                record = await self._media.store_file(session.tenant, into, origin="picture")
                picture = ProfilePicture(
                    media_id=record.id,
                    mimetype=record.mimetype or "application/octet-stream",
                    size=record.size or 0,
                    picture_id=picture_id,
                )
            else:
                into.unlink(missing_ok=True)
        blocked = await _call(self._engine.blocklist(session.id), "read the blocklist")
        push_name = profile.push_name
        if push_name is None:  # the engine may not know it: the name the chat got from its messages
            chat = await self._storage.chats.chat(session.id, profile.jid)
            push_name = chat.name if chat is not None else None
        return ContactInfoResult(
            jid=profile.jid,
            lid=profile.lid,
            push_name=push_name,
            business=profile.business,
            business_name=profile.business_name,
            about=profile.about,
            picture=picture,
            blocked=profile.jid in blocked or (profile.lid is not None and profile.lid in blocked),
        )

    async def block(self, tenant: str, name: str, contact: str, blocked: bool) -> BlockResult:
        session = self._paired(tenant, name)
        jid = parse_recipient(contact)
        if not (jid.is_user or jid.server == "lid"):
            raise SendFailed(f"{jid} is not a person: only contacts can be blocked")
        jid = await self._identities.address(session.id, jid)
        what = "block the contact" if blocked else "unblock the contact"
        now_blocked = await _call(self._engine.set_blocked(session.id, jid, blocked), what)
        # The blocklist names the account as WhatsApp knows it (a Brazilian number maybe without its ninth digit).
        variants = ninth_digit_variants(jid)
        target = next((j for j in now_blocked if j in variants), str(jid))
        return BlockResult(jid=target, blocked=target in now_blocked)

    async def blocklist(self, tenant: str, name: str) -> list[str]:
        session = self._paired(tenant, name)
        return list(await _call(self._engine.blocklist(session.id), "read the blocklist"))

    def forget(self, session_id: str) -> None:
        for key in [k for k in self._checked if k[0] == session_id]:
            del self._checked[key]

    def _remember(self, session_id: str, answer: PhoneCheck, now: float) -> None:
        key = (session_id, answer.phone)
        self._checked[key] = (now + CHECK_CACHE_S, answer)
        self._checked.move_to_end(key)
        while len(self._checked) > CHECK_CACHE_SIZE:
            self._checked.popitem(last=False)

    def _paired(self, tenant: str, name: str) -> _Session:
        session: _Session = self._lookup(tenant, name)
        if not session.paired:
            raise SessionNotPaired(f"session {name!r} is not linked to a phone yet: pair it first")
        return session


def _number(phone: str, answer: PhoneCheck | None) -> NumberCheck:
    if answer is None or not answer.on_whatsapp:
        return NumberCheck(phone=phone, on_whatsapp=False)
    return NumberCheck(
        phone=phone,
        on_whatsapp=True,
        jid=answer.jid,
        lid=answer.lid,
        business=answer.business,
        business_name=answer.business_name,
    )


async def _call(call: Any, what: str) -> Any:
    try:
        return await call
    except SendError as exc:
        if exc.retryable:
            raise EngineUnavailable(f"could not {what} now ({exc.message}); retry when connected") from None
        if exc.code == "not_on_whatsapp":
            raise NotOnWhatsApp(f"could not {what}: {exc.message}") from None
        raise SendFailed(f"could not {what}: {exc.message}") from None
