"""zapgate :data:`~zapgate.protocol.content.Content` → WhatsApp message protobufs (``waE2E.Message``), for sending.

No I/O and no call into Go: the worker uploads media and resolves addresses first (:mod:`.outbound`), then
builds here what whatsmeow's own builders build (``BuildPollCreation``, ``BuildReaction``, ``BuildEdit``,
``BuildRevoke``), field for field, so every message can be checked in tests without WhatsApp. Poll votes are
the exception: they are encrypted with the poll's secret, which only whatsmeow holds (:mod:`.polls`).

Replies, mentions and the forwarded flag travel in a ``ContextInfo``, which WhatsApp carries in the message of
each kind; a text that has one goes as ``extendedTextMessage``, a plain text as ``conversation``.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ...protocol.content import (
    Audio,
    ContactCard,
    Contacts,
    Document,
    Image,
    Location,
    MediaKinds,
    Poll,
    Sticker,
    Video,
)
from . import nz
from .ipc import QuoteRef

__all__ = [
    "Prepared",
    "contacts_message",
    "context_info",
    "edit_message",
    "location_message",
    "media_message",
    "message_key",
    "poll_message",
    "reaction_message",
    "text_message",
    "vcard",
]

MAX_WAVEFORM_BYTES = 64
"""WhatsApp draws a voice note's waveform from (at most) 64 amplitude samples."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A media file ready to send: what was uploaded, and what was learnt from the file on the way."""

    upload: Any
    """neonize's ``UploadResponse`` (url, direct path, media key, hashes, length)."""
    mimetype: str
    width: int | None = None
    height: int | None = None
    thumbnail: bytes | None = None
    """A small JPEG preview (images), shown until the file is downloaded."""
    seconds: int | None = None
    """Duration found in the file (an OGG/Opus voice note), when the sender gave none."""
    filename: str | None = None
    """The stored file's name, for a document sent without one."""


def context_info(*, quote: QuoteRef | None, mentions: Sequence[str], forwarded: bool) -> Any | None:
    """The ``ContextInfo`` for a reply, mentions and the forwarded flag; None when there is none of them."""
    if quote is None and not mentions and not forwarded:
        return None
    context = nz.ContextInfo(mentionedJID=list(mentions))
    if quote is not None:
        context.stanzaID = quote.message_id
        context.participant = quote.participant
        context.quotedMessage.CopyFrom(nz.WAMessage(conversation=quote.text or ""))
    if forwarded:
        context.isForwarded = True
        context.forwardingScore = 1
    return context


def text_message(text: str, context: Any | None) -> Any:
    if context is None:
        return nz.WAMessage(conversation=text)
    return nz.WAMessage(extendedTextMessage=nz.ExtendedTextMessage(text=text, contextInfo=context))


def location_message(location: Location, context: Any | None) -> Any:
    pin = nz.E2E.LocationMessage(degreesLatitude=location.latitude, degreesLongitude=location.longitude)
    if location.name:
        pin.name = location.name
    if location.address:
        pin.address = location.address
    if location.url:
        pin.URL = location.url
    if context is not None:
        pin.contextInfo.CopyFrom(context)
    return nz.WAMessage(locationMessage=pin)


def _escape(value: str) -> str:
    """vCard 3.0 text escaping (RFC 2426 §5): backslash, comma, semicolon and line breaks."""
    value = value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;")
    return value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")


def _display(phone: str) -> str:
    """``+55 11 99999-0000`` for ``+5511999990000`` (as the phone's address book shows it), when recognisable."""
    import phonenumbers  # a dependency of neonize

    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return phone
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def vcard(card: ContactCard) -> str:
    """The card's own vCard, or one built from its name and phones the way WhatsApp's apps write them
    (``TEL;waid=<digits>`` makes the number tappable to chat)."""
    if card.vcard is not None:
        return card.vcard
    name = _escape(card.name or "")
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"FN:{name}", f"N:;{name};;;"]
    for number, phone in enumerate(card.phones, start=1):
        digits = "".join(ch for ch in phone if ch.isdigit())
        lines.append(f"item{number}.TEL;waid={digits}:{_display('+' + digits)}")
        lines.append(f"item{number}.X-ABLabel:Mobile")
    lines.append("END:VCARD")
    return "\n".join(lines)


def _card_name(card: ContactCard) -> str:
    if card.name:
        return card.name
    for line in (card.vcard or "").splitlines():
        key, _, value = line.partition(":")
        if key.upper() == "FN" and value.strip():
            return value.strip()
    return card.phones[0] if card.phones else "Contact"


def contacts_message(contacts: Contacts, context: Any | None) -> Any:
    """One card as ``contactMessage``; several as ``contactsArrayMessage`` (as WhatsApp's apps send them)."""
    cards = [nz.E2E.ContactMessage(displayName=_card_name(c), vcard=vcard(c)) for c in contacts.contacts]
    if len(cards) == 1:
        if context is not None:
            cards[0].contextInfo.CopyFrom(context)
        return nz.WAMessage(contactMessage=cards[0])
    array = nz.E2E.ContactsArrayMessage(displayName=f"{len(cards)} contacts", contacts=cards)
    if context is not None:
        array.contextInfo.CopyFrom(context)
    return nz.WAMessage(contactsArrayMessage=array)


def poll_message(poll: Poll, secret: bytes, context: Any | None) -> Any:
    """A poll, with the 32-byte secret votes are encrypted with (whatsmeow stores it when it sends the poll)."""
    creation = nz.E2E.PollCreationMessage(
        name=poll.question,
        options=[nz.E2E.PollCreationMessage.Option(optionName=option) for option in poll.options],
        selectableOptionsCount=poll.selectable,
    )
    if context is not None:
        creation.contextInfo.CopyFrom(context)
    return nz.WAMessage(
        pollCreationMessage=creation, messageContextInfo=nz.E2E.MessageContextInfo(messageSecret=secret)
    )


def message_key(*, chat: str, message_id: str, from_me: bool, participant: str | None) -> Any:
    """The key naming an earlier message: the chat it is in, its id, whether the session sent it, and (in a group,
    for someone else's) its author."""
    key = nz.MessageKey(remoteJID=chat, fromMe=from_me, ID=message_id)
    if not from_me and participant and not chat.endswith(("@s.whatsapp.net", "@lid")):
        key.participant = participant
    return key


def reaction_message(key: Any, emoji: str, *, now_ms: int | None = None) -> Any:
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    return nz.WAMessage(reactionMessage=nz.E2E.ReactionMessage(key=key, text=emoji, senderTimestampMS=now_ms))


def edit_message(chat: Any, message_id: str, text: str) -> Any:
    """An edit of one of the session's texts (neonize's builder: ``editedMessage`` → ``protocolMessage`` of type
    ``MESSAGE_EDIT``)."""
    return nz.build_edit(chat, message_id, nz.WAMessage(conversation=text))


def media_message(content: MediaKinds, prepared: Prepared, context: Any | None) -> Any:
    """An image, video, audio, document or sticker message for an uploaded file."""
    up = prepared.upload
    common: dict[str, Any] = {
        "URL": up.url,
        "directPath": up.DirectPath,
        "mediaKey": up.MediaKey,
        "fileEncSHA256": up.FileEncSHA256,
        "fileSHA256": up.FileSHA256,
        "fileLength": up.FileLength,
        "mimetype": prepared.mimetype,
        "mediaKeyTimestamp": int(time.time()),
    }
    if context is not None:
        common["contextInfo"] = context
    match content:
        case Image():
            inner = nz.E2E.ImageMessage(**common, viewOnce=content.view_once)
            _size(inner, content.width or prepared.width, content.height or prepared.height)
            if content.caption:
                inner.caption = content.caption
            if prepared.thumbnail:
                inner.JPEGThumbnail = prepared.thumbnail
            return nz.WAMessage(imageMessage=inner)
        case Video():
            inner = nz.E2E.VideoMessage(**common, gifPlayback=content.gif, viewOnce=content.view_once)
            _size(inner, content.width, content.height)
            if content.caption:
                inner.caption = content.caption
            if content.seconds:
                inner.seconds = content.seconds
            return nz.WAMessage(videoMessage=inner)
        case Audio():
            inner = nz.E2E.AudioMessage(**common, PTT=content.voice)
            seconds = content.seconds or prepared.seconds
            if seconds:
                inner.seconds = seconds
            waveform = _waveform(content.waveform)
            if waveform:
                inner.waveform = waveform
            return nz.WAMessage(audioMessage=inner)
        case Document():
            filename = content.filename or prepared.filename or "file"
            inner = nz.E2E.DocumentMessage(**common, fileName=filename, title=filename)
            if content.caption:
                inner.caption = content.caption
            if content.pages:
                inner.pageCount = content.pages
            return nz.WAMessage(documentMessage=inner)
        case Sticker():
            inner = nz.E2E.StickerMessage(**common, isAnimated=content.animated)
            _size(inner, prepared.width, prepared.height)
            return nz.WAMessage(stickerMessage=inner)
    raise TypeError(f"not a media kind: {type(content).__name__}")


def _waveform(text: str | None) -> bytes | None:
    if not text:
        return None
    try:
        return base64.b64decode(text, validate=True)[:MAX_WAVEFORM_BYTES]
    except ValueError:
        return None  # not base64: sent without a waveform rather than not at all


def _size(inner: Any, width: int | None, height: int | None) -> None:
    if width and height:
        inner.width, inner.height = width, height
