"""WhatsApp message protobufs (``waE2E.Message``) → zapgate :data:`~zapgate.protocol.content.Content` (no I/O).

Every message a person can see becomes a content of its kind; a kind zapgate does not model becomes
``unsupported`` with WhatsApp's field name and whatever text it carries, so nothing a contact sends is ever
dropped. Only protocol plumbing that WhatsApp's own apps never show (key distribution, app-state keys,
history-sync notices…) yields nothing.

Wrappers are unwrapped first: ephemeral (disappearing), view-once (all versions), document-with-caption,
edited, and device-sent (what the account's phone sent to another chat).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from ...jid import USER_SERVER
from ...protocol.content import (
    Audio,
    ContactCard,
    Contacts,
    Content,
    Document,
    Edit,
    Image,
    LinkPreview,
    Location,
    Media,
    Poll,
    Reaction,
    Revoke,
    Sticker,
    Text,
    Unsupported,
    Video,
)

__all__ = ["IGNORED", "POLL_FIELDS", "Inbound", "inbound_content", "parse_vcard", "unwrapped"]

REVOKE = 0
MESSAGE_EDIT = 14

IGNORED = frozenset(
    {
        "senderKeyDistributionMessage",
        "fastRatchetKeySenderKeyDistributionMessage",
        "messageContextInfo",
        "keepInChatMessage",
        "stickerSyncRmrMessage",
        "placeholderMessage",
    }
)
"""Fields that are protocol plumbing, never shown to a person: a message made only of these yields nothing."""

_WRAPPERS = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
    "botInvokeMessage",
)
_VIEW_ONCE = frozenset({"viewOnceMessage", "viewOnceMessageV2", "viewOnceMessageV2Extension"})
POLL_FIELDS = ("pollCreationMessage", "pollCreationMessageV2", "pollCreationMessageV3", "pollCreationMessageV5")
"""The fields of ``waE2E.Message`` that carry a poll (one per version of WhatsApp's poll)."""
_MEDIA_TYPES = {
    "imageMessage": "image",
    "videoMessage": "video",
    "ptvMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
    "stickerMessage": "sticker",
}


@dataclass(slots=True)
class Inbound:
    """What a received message says, and what surrounds it."""

    content: Content
    reply_to: str | None = None
    mentions: list[str] = field(default_factory=list)
    forwarded: bool = False
    view_once: bool = False
    ephemeral: bool = False
    media_ref: dict[str, Any] | None = None
    """For media: what a later download needs (direct path, keys, hashes, length, media type), base64 where
    binary."""


def _present(message: Any, name: str) -> bool:
    return bool(message.HasField(name))


def _set_fields(message: Any) -> list[str]:
    return [descriptor.name for descriptor, _ in message.ListFields()]


def _unwrap(message: Any) -> tuple[Any, set[str], str | None]:
    """The innermost message, the wrappers met on the way, and the chat of a device-sent message."""
    seen: set[str] = set()
    destination: str | None = None
    for _ in range(8):  # wrappers nest a few levels at most; never loop on a malformed message
        if _present(message, "deviceSentMessage"):
            destination = message.deviceSentMessage.destinationJID or destination
            message = message.deviceSentMessage.message
            seen.add("deviceSentMessage")
            continue
        for name in _WRAPPERS:
            if _present(message, name):
                seen.add(name)
                message = getattr(message, name).message
                break
        else:
            return message, seen, destination
    return message, seen, destination


def _context(message: Any, name: str) -> Any | None:
    inner = getattr(message, name)
    return inner.contextInfo if inner.HasField("contextInfo") else None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _media(inner: Any, kind: str, filename: str | None = None) -> tuple[Media, dict[str, Any]]:
    """The media description for a received file, and what a download needs."""
    sha = inner.fileSHA256.hex() if inner.fileSHA256 else None
    media = Media(
        mimetype=inner.mimetype or None,
        size=int(inner.fileLength) or None,
        sha256=sha,
        filename=filename,
        status="pending",
    )
    ref = {
        "media_type": kind,
        "direct_path": inner.directPath,
        "media_key": _b64(inner.mediaKey),
        "file_enc_sha256": _b64(inner.fileEncSHA256),
        "file_sha256": _b64(inner.fileSHA256),
        "file_length": int(inner.fileLength),
        "mimetype": inner.mimetype,
        "url": inner.URL,
    }
    return media, ref


def parse_vcard(vcard: str) -> ContactCard:
    """A contact card: the vCard text, its ``FN`` name and its phone numbers (``TEL``, ``waid`` preferred)."""
    name: str | None = None
    phones: list[str] = []
    for line in vcard.splitlines():
        key, _, value = line.partition(":")
        upper = key.upper()
        if upper == "FN" and value.strip():
            name = value.strip()
        elif upper.split(";")[0].split(".")[-1] == "TEL":
            waid = next((p.split("=", 1)[1] for p in key.split(";") if p.lower().startswith("waid=")), None)
            digits = "".join(ch for ch in (waid or value) if ch.isdigit())
            if 7 <= len(digits) <= 15:
                phones.append("+" + digits)
    return ContactCard(vcard=vcard, name=name, phones=phones[:16])


def _text_of(message: Any) -> str | None:
    """Some text anywhere in an unsupported message (a caption, a title, a body), for ``unsupported.text``."""
    for descriptor, value in message.ListFields():
        named = descriptor.name in ("text", "caption", "title", "body", "contentText", "name", "conversation")
        if named and isinstance(value, str) and value:
            return value
        # ``is_repeated``: protobuf 7 (upb) descriptors have no ``label`` any more.
        if descriptor.message_type is not None and not descriptor.is_repeated:
            found = _text_of(value)
            if found:
                return found
    return None


def unwrapped(message: Any) -> Any:
    """The message inside any wrappers (ephemeral, view-once, edited, device-sent...)."""
    return _unwrap(message)[0]


def inbound_content(message: Any) -> Inbound | None:
    """Translate a received ``waE2E.Message``; None for protocol plumbing (see :data:`IGNORED`)."""
    inner, wrappers, _ = _unwrap(message)
    result = _translate(inner)
    if result is None:
        return None
    result.view_once = result.view_once or bool(wrappers & _VIEW_ONCE)
    result.ephemeral = result.ephemeral or "ephemeralMessage" in wrappers
    return result


def _translate(message: Any) -> Inbound | None:
    if message.conversation:
        return Inbound(Text(text=message.conversation))
    if _present(message, "extendedTextMessage"):
        ext = message.extendedTextMessage
        preview = None
        if ext.matchedText or ext.title:
            preview = LinkPreview(
                url=ext.matchedText or "", title=ext.title or None, description=ext.description or None
            )
        return _with_context(
            Inbound(Text(text=ext.text or " ", preview=preview)), _context(message, "extendedTextMessage")
        )
    for name, kind in _MEDIA_TYPES.items():
        if not _present(message, name):
            continue
        inner = getattr(message, name)
        content: Content
        if kind == "image":
            media, ref = _media(inner, kind)
            content = Image(
                media=media,
                caption=inner.caption or None,
                width=inner.width or None,
                height=inner.height or None,
                view_once=inner.viewOnce,
            )
        elif kind == "video":
            media, ref = _media(inner, kind)
            content = Video(
                media=media,
                caption=getattr(inner, "caption", "") or None,
                seconds=inner.seconds or None,
                width=inner.width or None,
                height=inner.height or None,
                gif=bool(getattr(inner, "gifPlayback", False)),
                view_once=bool(getattr(inner, "viewOnce", False)),
            )
        elif kind == "audio":
            media, ref = _media(inner, kind)
            content = Audio(
                media=media,
                voice=inner.PTT,
                seconds=inner.seconds or None,
                waveform=_b64(inner.waveform) if inner.waveform else None,
            )
        elif kind == "document":
            media, ref = _media(inner, kind, filename=inner.fileName or None)
            content = Document(
                media=media,
                filename=inner.fileName or None,
                caption=inner.caption or None,
                pages=inner.pageCount or None,
            )
        else:
            media, ref = _media(inner, kind)
            content = Sticker(media=media, animated=inner.isAnimated)
        result = Inbound(content, media_ref=ref)
        return _with_context(result, _context(message, name))
    if _present(message, "locationMessage"):
        loc = message.locationMessage
        content = Location(
            latitude=loc.degreesLatitude,
            longitude=loc.degreesLongitude,
            name=loc.name or None,
            address=loc.address or None,
            url=loc.URL or None,
            live=loc.isLive,
        )
        return _with_context(Inbound(content), _context(message, "locationMessage"))
    if _present(message, "liveLocationMessage"):
        live = message.liveLocationMessage
        content = Location(
            latitude=live.degreesLatitude, longitude=live.degreesLongitude, name=live.caption or None, live=True
        )
        return _with_context(Inbound(content), _context(message, "liveLocationMessage"))
    if _present(message, "contactMessage"):
        card = parse_vcard(message.contactMessage.vcard) if message.contactMessage.vcard else ContactCard()
        if card.name is None and message.contactMessage.displayName:
            card = ContactCard(vcard=card.vcard, name=message.contactMessage.displayName, phones=card.phones)
        return _with_context(Inbound(Contacts(contacts=[card])), _context(message, "contactMessage"))
    if _present(message, "contactsArrayMessage"):
        cards = [parse_vcard(c.vcard) for c in message.contactsArrayMessage.contacts if c.vcard][:32]
        if cards:
            return _with_context(Inbound(Contacts(contacts=cards)), _context(message, "contactsArrayMessage"))
    for name in POLL_FIELDS:
        if _present(message, name):
            poll = getattr(message, name)
            options = [o.optionName for o in poll.options if o.optionName][:12]
            if poll.name and len(options) >= 2:
                count = min(int(poll.selectableOptionsCount), len(options))
                content = Poll(question=poll.name[:255], options=[o[:100] for o in options], selectable=count)
                return _with_context(Inbound(content), _context(message, name))
    if _present(message, "reactionMessage"):
        reaction = message.reactionMessage
        return Inbound(Reaction(message_id=reaction.key.ID, emoji=reaction.text))
    if _present(message, "protocolMessage"):
        protocol = message.protocolMessage
        if protocol.type == REVOKE and protocol.key.ID:
            return Inbound(Revoke(message_id=protocol.key.ID))
        if protocol.type == MESSAGE_EDIT and protocol.key.ID:
            edited = _translate(protocol.editedMessage) if protocol.HasField("editedMessage") else None
            new_text = None
            if edited is not None:
                match edited.content:
                    case Text(text=text):
                        new_text = text
                    case Image(caption=caption) | Video(caption=caption) | Document(caption=caption):
                        new_text = caption
            return Inbound(Edit(message_id=protocol.key.ID, text=new_text or " "))
        return None  # history-sync notices, app-state keys, ephemeral settings…: plumbing
    fields = [name for name in _set_fields(message) if name not in IGNORED]
    if not fields:
        return None
    kind = fields[0]
    return Inbound(
        Unsupported(type=kind, text=_text_of(getattr(message, kind)) if _is_message(message, kind) else None)
    )


def _is_message(message: Any, name: str) -> bool:
    descriptor = message.DESCRIPTOR.fields_by_name.get(name)
    return descriptor is not None and descriptor.message_type is not None


def _with_context(result: Inbound, context: Any | None) -> Inbound:
    if context is None:
        return result
    if context.stanzaID:
        result.reply_to = context.stanzaID
    result.mentions = [m if "@" in m else f"{m}@{USER_SERVER}" for m in context.mentionedJID]
    result.forwarded = bool(context.isForwarded or context.forwardingScore)
    result.ephemeral = bool(context.expiration)
    return result
