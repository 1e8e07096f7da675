"""neonize event protobufs → zapgate engine events (no I/O; runs in the worker).

Field names follow neonize's protobufs (PascalCase, ``ev.Info.MessageSource.Chat``). JIDs come out as
strings without the device part, with phone-number JIDs preferred over hidden-user ``@lid`` ones whenever
WhatsApp tells both (replies to a ``@lid`` chat fail on many accounts).
"""

from __future__ import annotations

from typing import Any

from ...jid import LID_SERVER, USER_SERVER
from ...protocol import Me
from ..base import MessageIn, PresenceIn, PresenceState, ReceiptIn
from . import nz, policy
from .content import inbound_content
from .policy import Outcome

__all__ = [
    "chat_presence_in",
    "connection_outcome",
    "jid_string",
    "me_from",
    "message_in",
    "pair_result",
    "presence_in",
    "receipt_in",
    "wire_addresses",
]

_RECEIPT_STATUS = {"DELIVERED": "delivered", "READ": "read", "PLAYED": "played"}


def _present(jid: Any) -> bool:
    return bool(jid is not None and jid.User and not jid.IsEmpty)


def jid_string(jid: Any) -> str:
    """``user@server`` without the device or agent part; empty for an empty JID."""
    if not _present(jid):
        return ""
    text: str = nz.Jid2String(nz.JIDToNonAD(jid))
    return text


def device_jid_string(jid: Any) -> str:
    """The JID with its device part (``15550001111:7@s.whatsapp.net``), as stored for a linked device."""
    text: str = nz.Jid2String(jid)
    return text


def _phone_and_lid(primary: Any, alternative: Any) -> tuple[Any | None, Any | None]:
    """Split a (JID, alternative JID) pair into (phone-number JID, LID), either possibly unknown."""
    pn = lid = None
    for jid in (primary, alternative):
        if not _present(jid):
            continue
        if jid.Server == LID_SERVER and lid is None:
            lid = jid
        elif jid.Server == USER_SERVER and pn is None:
            pn = jid
    return pn, lid


def _chat(source: Any) -> str:
    """The chat JID; a one-to-one chat addressed by LID is named by the peer's phone number when known."""
    chat = source.Chat
    if chat.Server != LID_SERVER or source.IsGroup:
        return jid_string(chat)
    alternative = source.RecipientAlt if source.IsFromMe else source.SenderAlt
    pn, _ = _phone_and_lid(chat, alternative)
    return jid_string(pn if pn is not None else chat)


def _chat_lid(source: Any) -> str | None:
    """The peer's LID in a one-to-one chat, when WhatsApp told it (the chat's own JID, or its alternative)."""
    if source.IsGroup or source.Chat.Server not in (LID_SERVER, USER_SERVER):
        return None
    alternative = source.RecipientAlt if source.IsFromMe else source.SenderAlt
    _, lid = _phone_and_lid(source.Chat, alternative)
    return jid_string(lid) or None


STATUS_CHAT = "status@broadcast"


def message_in(event: Any) -> MessageIn | None:
    """A ``MessageEv`` (``neonize.proto.Neonize_pb2.Message``) as :class:`MessageIn`, whatever its kind (see
    :mod:`.content`); None only for protocol plumbing no person sees."""
    inbound = inbound_content(event.Message)
    if inbound is None:
        return None
    info = event.Info
    source = info.MessageSource
    pn, lid = _phone_and_lid(source.Sender, source.SenderAlt)
    chat = _chat(source)
    return MessageIn(
        message_id=info.ID,
        chat=chat,
        sender=jid_string(pn if pn is not None else lid),
        sender_lid=jid_string(lid) or None,
        chat_lid=_chat_lid(source),
        content=inbound.content,
        timestamp=policy.to_seconds(info.Timestamp),
        from_me=bool(source.IsFromMe),
        push_name=info.Pushname or None,
        reply_to=inbound.reply_to,
        mentions=inbound.mentions,
        forwarded=inbound.forwarded,
        view_once=inbound.view_once or bool(event.IsViewOnce or event.IsViewOnceV2 or event.IsViewOnceV2Extension),
        ephemeral=inbound.ephemeral or bool(event.IsEphemeral),
        status=chat == STATUS_CHAT,
        media_ref=inbound.media_ref,
    )


def wire_addresses(event: Any) -> tuple[str, str]:
    """(chat, sender) of a ``MessageEv`` as WhatsApp addressed it, without device parts: the ``@lid`` forms for a
    chat addressed by hidden-user id, although :func:`message_in` names it by phone number. Read receipts go to
    these forms, the ones the message came from."""
    source = event.Info.MessageSource
    return jid_string(source.Chat), jid_string(source.Sender)


def receipt_in(event: Any) -> ReceiptIn | None:
    """A ``ReceiptEv`` as :class:`ReceiptIn`; None for receipt types that are not a delivery status of a
    message we sent (retries, our own devices' read marks, server errors)."""
    status = _RECEIPT_STATUS.get(nz.N.Receipt.ReceiptType.Name(event.Type))
    if status is None or not event.MessageIDs:
        return None
    return ReceiptIn(
        message_ids=list(event.MessageIDs),
        chat=_chat(event.MessageSource),
        chat_lid=_chat_lid(event.MessageSource),
        status=status,  # type: ignore[arg-type]
        timestamp=policy.to_seconds(event.Timestamp),
    )


EARLIEST_LAST_SEEN = 1_230_768_000
"""2009-01-01: a ``LastSeen`` before WhatsApp existed is Go's zero time (not known), not a date."""


def chat_presence_in(event: Any) -> PresenceIn | None:
    """A ``ChatPresenceEv`` (someone typing, recording or stopping in a chat) as :class:`PresenceIn`."""
    source = event.MessageSource
    pn, lid = _phone_and_lid(source.Sender, source.SenderAlt)
    sender = jid_string(pn if pn is not None else lid)
    chat = _chat(source)
    if not sender or not chat:
        return None
    states = nz.N.ChatPresence
    state: PresenceState = "paused"
    if event.State == states.COMPOSING:
        state = "recording" if event.Media == states.AUDIO else "typing"
    return PresenceIn(
        chat=chat, sender=sender, state=state, sender_lid=jid_string(lid) or None, chat_lid=_chat_lid(source)
    )


def presence_in(event: Any) -> PresenceIn | None:
    """A ``PresenceEv`` (a subscribed contact online or not, with when it was last seen) as :class:`PresenceIn`."""
    who = jid_string(event.From)
    if not who:
        return None
    lid = who if event.From.Server == LID_SERVER else None
    if not event.Unavailable:
        return PresenceIn(chat=who, sender=who, state="available", sender_lid=lid, chat_lid=lid)
    seen = int(event.LastSeen)
    last_seen = seen if seen >= EARLIEST_LAST_SEEN else None
    return PresenceIn(chat=who, sender=who, state="unavailable", last_seen=last_seen, sender_lid=lid, chat_lid=lid)


def me_from(device_jid: str, lid: str | None = None, name: str | None = None) -> Me:
    """The linked account: phone number, the linked device's JID (``5511…:7@s.whatsapp.net``) and the account's
    hidden-user id without a device part (``99887766@lid``; whatsmeow stores the device's, ``99887766:7@lid``,
    which is the account LID with ``jid``'s device number)."""
    user = device_jid.partition("@")[0]
    account_lid = None
    if lid:
        lid_user, _, lid_server = lid.partition("@")
        account_lid = f"{lid_user.split(':', 1)[0].split('.', 1)[0]}@{lid_server or LID_SERVER}"
    return Me(phone=user.split(":", 1)[0].split(".", 1)[0], jid=device_jid, lid=account_lid, name=name or None)


def pair_result(event: Any) -> str | None:
    """The device JID of a successful ``PairStatusEv``, or None when pairing failed."""
    if event.Status != nz.N.PairStatus.SUCCESS or not _present(event.ID):
        return None
    return device_jid_string(event.ID)


def connection_outcome(event: Any, *, now: float, retry_after: float) -> Outcome | None:
    """The outcome of a connection-state event (see :mod:`.policy`); None for other events."""
    N = nz.N
    if isinstance(event, N.Disconnected):
        return policy.on_disconnected()
    if isinstance(event, N.KeepAliveTimeout):
        return policy.on_keepalive_timeout()
    if isinstance(event, N.LoggedOut):
        return policy.on_logged_out(N.ConnectFailureReason.Name(event.Reason))
    if isinstance(event, N.StreamReplaced):
        return policy.on_stream_replaced()
    if isinstance(event, N.TemporaryBan):
        code = N.TemporaryBan.TempBanReason.Name(event.Code)
        return policy.on_temporary_ban(code, int(event.Expire), now=now)
    if isinstance(event, N.ConnectFailure):
        reason = N.ConnectFailureReason.Name(event.Reason)
        return policy.on_connect_failure(reason, now=now, retry_after=retry_after)
    if isinstance(event, N.ClientOutdated):
        return policy.on_client_outdated(now=now, retry_after=retry_after)
    if isinstance(event, N.StreamError):
        return policy.on_stream_error(event.Code)
    return None
