"""What one session asks WhatsApp about people, in an engine worker: which numbers are on WhatsApp, profiles and
pictures, and the blocklist.

- **Numbers** go to ``is_on_whatsapp`` with a ``+`` (whatsmeow's format). Current whatsmeow asks with LID
  addressing, so an answer may be ``…@lid``: the phone JID is then what whatsmeow's store maps it to
  (``get_pn_from_lid``), and the answer carries both. A Brazilian number typed with the ninth digit is answered
  with the account WhatsApp has (maybe without it).
- **Profiles** come from ``get_user_info`` (about text, picture id, verified business name). whatsmeow's push
  names are in its local contact store, whose neonize binding aborts the process when called at the wrong moment
  (``contact.get_contact``, ``docs/engines.md``): push names are taken instead from the messages and history the
  session received (:meth:`SessionAccounts.saw_push_name`), and the gateway falls back to the chat's name.
- **Pictures** are asked for with ``get_profile_picture`` and the file is fetched from WhatsApp's picture server
  (its link expires; the gateway stores the file). An account without a picture, or hiding it, answers none.
- **Blocking** is ``update_blocklist``; WhatsApp answers the whole list.

Every call is made only on a connected client (Go must know it), under the worker's FFI lock (``ffi.py``).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from pathlib import Path
from typing import Any, Protocol

import httpx

from ..base import ContactProfile, PhoneCheck
from . import nz, translate
from .policy import SendFailure, lookup_error

__all__ = ["PICTURE_MAX_BYTES", "PICTURE_TIMEOUT_S", "PUSH_NAMES_KEPT", "SessionAccounts"]

log = logging.getLogger("zapgate.engines.whatsapp")

PICTURE_MAX_BYTES = 5 * 1024 * 1024
"""A profile picture larger than this is refused (WhatsApp's are a few hundred KB at most)."""
PICTURE_TIMEOUT_S = 30.0
PUSH_NAMES_KEPT = 10_000
"""Push names remembered per session (the most recently seen)."""

_LID_SERVER = "lid"
_NO_PICTURE = ("404", "401", "not-authorized", "item-not-found", "not set", "unauthorized")


class _Session(Protocol):
    session_id: str

    def require_online(self) -> Any: ...


def _jid(text: str) -> Any:
    user, _, server = text.partition("@")
    return nz.build_jid(user, server or "s.whatsapp.net")


def _error_text(exc: Exception) -> str:
    first = exc.args[0] if exc.args else ""
    if isinstance(first, bytes):
        return first.decode(errors="replace")
    error = getattr(first, "Error", None)  # some neonize errors carry the whole answer
    return str(error) if error else str(exc)


class SessionAccounts:
    """See the module documentation."""

    def __init__(self, session: _Session, *, proxy: str | None = None) -> None:
        self._session = session
        self._proxy = proxy
        self._push_names: collections.OrderedDict[str, str] = collections.OrderedDict()

    def saw_push_name(self, jid: str, name: str | None) -> None:
        """Remember the push name a message or the history showed for ``jid``."""
        if not jid or not name:
            return
        self._push_names[jid] = name
        self._push_names.move_to_end(jid)
        while len(self._push_names) > PUSH_NAMES_KEPT:
            self._push_names.popitem(last=False)

    async def check(self, phones: list[str]) -> list[PhoneCheck]:
        client = self._session.require_online()
        try:
            answers = await client.is_on_whatsapp(*["+" + phone for phone in phones])
        except Exception as exc:
            text = _error_text(exc)
            code, retryable = lookup_error(text)
            raise SendFailure(code, f"could not look the numbers up: {text}", retryable=retryable) from None
        by_number = {answer.Query.lstrip("+"): answer for answer in answers}
        checks = []
        for phone in phones:
            answer = by_number.get(phone)
            if answer is None or not answer.IsIn:
                checks.append(PhoneCheck(phone=phone, on_whatsapp=False))
                continue
            jid, lid = await self._both_forms(client, answer.JID)
            name = answer.VerifiedName.Details.verifiedName if answer.HasField("VerifiedName") else ""
            checks.append(
                PhoneCheck(
                    phone=phone,
                    on_whatsapp=True,
                    jid=jid,
                    lid=lid,
                    business=bool(name),
                    business_name=name or None,
                )
            )
        return checks

    async def info(self, jid: str) -> ContactProfile:
        client = self._session.require_online()
        target = _jid(jid)
        try:
            found = await client.get_user_info(target)
        except Exception as exc:
            text = _error_text(exc)
            code, retryable = lookup_error(text)
            raise SendFailure(code, f"could not read {jid}'s profile: {text}", retryable=retryable) from None
        if not found:
            raise SendFailure("not_on_whatsapp", f"{jid} is not on WhatsApp", retryable=False)
        user = found[0]
        info = user.UserInfo
        phone, lid = await self._both_forms(client, user.JID if user.HasField("JID") else target)
        name = info.VerifiedName.Details.verifiedName if info.HasField("VerifiedName") else ""
        push_name = self._push_names.get(phone or "") or (self._push_names.get(lid) if lid else None)
        return ContactProfile(
            jid=phone or jid,
            lid=lid,
            push_name=push_name,
            business=bool(name),
            business_name=name or None,
            about=info.Status or None,
            picture_id=info.PictureID or None,
        )

    async def picture(self, jid: str, into: str) -> str | None:
        client = self._session.require_online()
        try:
            picture = await client.get_profile_picture(
                _jid(jid), nz.N.GetProfilePictureParams(Preview=False, ExistingID="", IsCommunity=False)
            )
        except Exception as exc:
            text = _error_text(exc)
            if any(fragment in text.lower() for fragment in _NO_PICTURE):
                return None
            code, retryable = lookup_error(text)
            raise SendFailure(code, f"could not get {jid}'s picture: {text}", retryable=retryable) from None
        if not picture.URL:
            return None
        await self._fetch(picture.URL, Path(into))
        return picture.ID or None

    async def block(self, jid: str, blocked: bool) -> list[str]:
        from neonize.utils.enum import BlocklistAction

        client = self._session.require_online()
        action = BlocklistAction.BLOCK if blocked else BlocklistAction.UNBLOCK
        try:
            answer = await client.update_blocklist(_jid(jid), action)
        except Exception as exc:
            text = _error_text(exc)
            code, retryable = lookup_error(text)
            raise SendFailure(code, f"could not change the blocklist: {text}", retryable=retryable) from None
        return [translate.jid_string(j) for j in answer.JIDs]

    async def blocklist(self) -> list[str]:
        client = self._session.require_online()
        try:
            answer = await client.get_blocklist()
        except Exception as exc:
            text = _error_text(exc)
            code, retryable = lookup_error(text)
            raise SendFailure(code, f"could not read the blocklist: {text}", retryable=retryable) from None
        return [translate.jid_string(j) for j in answer.JIDs]

    async def _both_forms(self, client: Any, jid: Any) -> tuple[str | None, str | None]:
        """(phone JID, LID) of an account WhatsApp named by either."""
        text = translate.jid_string(jid)
        if getattr(jid, "Server", "") != _LID_SERVER:
            return text, None
        try:
            phone = await client.get_pn_from_lid(jid)  # whatsmeow stored the mapping with its answer
        except Exception as exc:
            log.debug("session %s: no phone number for %s: %s", self._session.session_id, text, exc)
            return None, text
        return (translate.jid_string(phone) or None), text

    async def _fetch(self, url: str, into: Path) -> None:
        """Download a picture from WhatsApp's picture server into ``into`` (capped in size and time)."""
        try:
            async with (
                httpx.AsyncClient(timeout=PICTURE_TIMEOUT_S, proxy=self._proxy, follow_redirects=True) as http,
                http.stream("GET", url) as answer,
            ):
                answer.raise_for_status()
                data = bytearray()
                async for chunk in answer.aiter_bytes():
                    data += chunk
                    if len(data) > PICTURE_MAX_BYTES:
                        raise SendFailure("picture_too_large", "the picture is too large", retryable=False)
        except httpx.HTTPError as exc:
            raise SendFailure("picture_unavailable", f"could not fetch the picture: {exc}", retryable=True) from None
        await asyncio.to_thread(into.write_bytes, bytes(data))
