"""What a message says: one tagged union of content kinds, the same shape for sending and receiving (pure).

``message.send`` takes ``content`` (``{"kind": "image", "media": {"id": "med_…"}, "caption": "…"}``) or, as a
shorthand, ``text``. ``message.received`` carries ``kind`` and ``content`` in the same shape. Only the two
engines look inside a :data:`Content`; every other layer (outbox, sender, idempotency fingerprint, events)
passes it along whole.

Media never travels inside a frame as file bytes (except small inline ``data``): a client uploads with
``POST /v1/media`` and refers to the ``media.id``, or gives a ``url`` the gateway fetches. Received media is
downloaded by the gateway, stored, and served at ``GET /v1/media/{id}``; its ``status`` says whether it is there
yet (``media.ready`` / ``media.failed`` events follow).
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Literal

import msgspec

__all__ = [
    "MAX_CAPTION_CHARS",
    "MAX_INLINE_MEDIA_BYTES",
    "MAX_POLL_OPTIONS",
    "MAX_TEXT_CHARS",
    "Audio",
    "ContactCard",
    "Contacts",
    "Content",
    "Document",
    "Edit",
    "Image",
    "LinkPreview",
    "Location",
    "Media",
    "MediaKinds",
    "Poll",
    "Reaction",
    "Revoke",
    "Sticker",
    "Text",
    "Unsupported",
    "Video",
    "Vote",
    "check_sendable",
    "content_fingerprint",
    "content_text",
    "media_of",
    "target_of",
]

MAX_TEXT_CHARS = 65536
"""WhatsApp's own limit for the text of a message."""
MAX_CAPTION_CHARS = 4096
MAX_POLL_OPTIONS = 12
MAX_INLINE_MEDIA_BYTES = 48 * 1024
"""Largest ``media.data`` (decoded) accepted inside a frame; bigger files go through ``POST /v1/media``."""

TextBody = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_TEXT_CHARS)]
Caption = Annotated[str, msgspec.Meta(max_length=MAX_CAPTION_CHARS)]
TargetId = Annotated[str, msgspec.Meta(min_length=1, max_length=128, description="the id of an earlier message")]
MediaId = Annotated[str, msgspec.Meta(pattern=r"\Amed_[A-Za-z0-9_-]{8,64}\Z", description="from POST /v1/media")]
Mimetype = Annotated[
    str, msgspec.Meta(pattern=r"\A[a-z0-9][a-z0-9.+-]*/[a-zA-Z0-9][a-zA-Z0-9.+=;_ -]*\Z", max_length=255)
]


class Media(msgspec.Struct, omit_defaults=True, kw_only=True, forbid_unknown_fields=True):
    """A file of a media message.

    Sending: exactly one of ``id`` (an upload), ``url`` (the gateway fetches it) or ``data`` (base64, at most
    :data:`MAX_INLINE_MEDIA_BYTES` decoded); ``mimetype`` and ``filename`` override what the gateway detects.
    Receiving: ``id``, ``mimetype``, ``size``, ``sha256`` and ``status`` describe the stored file.
    """

    id: MediaId | None = None
    url: Annotated[str, msgspec.Meta(min_length=8, max_length=2048)] | None = None
    data: Annotated[str, msgspec.Meta(max_length=(MAX_INLINE_MEDIA_BYTES * 4) // 3 + 4)] | None = None
    mimetype: Mimetype | None = None
    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    size: int | None = None
    """Bytes (set by the gateway)."""
    sha256: str | None = None
    """Hex digest of the file (set by the gateway)."""
    status: Literal["pending", "ready", "failed"] | None = None
    """Received media: ``pending`` while the gateway downloads it, then ``ready`` or ``failed``."""


class LinkPreview(msgspec.Struct, omit_defaults=True, kw_only=True):
    url: str
    title: str | None = None
    description: str | None = None


class _Kind(msgspec.Struct, tag_field="kind", omit_defaults=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Text(_Kind, tag="text"):
    text: TextBody
    preview: LinkPreview | None = None
    """A link preview WhatsApp showed with a received text (never needed to send)."""


class Image(_Kind, tag="image"):
    media: Media
    caption: Caption | None = None
    width: int | None = None
    height: int | None = None
    view_once: bool = False


class Video(_Kind, tag="video"):
    media: Media
    caption: Caption | None = None
    seconds: int | None = None
    width: int | None = None
    height: int | None = None
    gif: bool = False
    """Plays as a looping GIF."""
    view_once: bool = False


class Audio(_Kind, tag="audio"):
    media: Media
    voice: bool = False
    """A voice note (push-to-talk: OGG/Opus, shown with a waveform and ``played`` receipts)."""
    seconds: int | None = None
    waveform: str | None = None
    """Base64 of up to 64 amplitude bytes, as WhatsApp draws a voice note."""


class Document(_Kind, tag="document"):
    media: Media
    filename: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    caption: Caption | None = None
    pages: int | None = None


class Sticker(_Kind, tag="sticker"):
    media: Media
    animated: bool = False


class Location(_Kind, tag="location"):
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)]
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)]
    name: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    address: Annotated[str, msgspec.Meta(max_length=1024)] | None = None
    url: Annotated[str, msgspec.Meta(max_length=2048)] | None = None
    live: bool = False
    """A live location (received only: sharing one cannot be started through WhatsApp's multi-device API)."""


class ContactCard(msgspec.Struct, omit_defaults=True, kw_only=True, forbid_unknown_fields=True):
    """One contact card: the vCard text, and what the gateway read from it."""

    vcard: Annotated[str, msgspec.Meta(min_length=1, max_length=16384)] | None = None
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    phones: Annotated[list[str], msgspec.Meta(max_length=16)] = []
    """Phone numbers in international format (digits, with ``+``)."""


class Contacts(_Kind, tag="contacts"):
    """One or more contact cards. To send, give each card a ``vcard``, or a ``name`` and ``phones``."""

    contacts: Annotated[list[ContactCard], msgspec.Meta(min_length=1, max_length=32)]


class Poll(_Kind, tag="poll"):
    question: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    options: Annotated[
        list[Annotated[str, msgspec.Meta(min_length=1, max_length=100)]],
        msgspec.Meta(min_length=2, max_length=MAX_POLL_OPTIONS),
    ]
    selectable: Annotated[int, msgspec.Meta(ge=0, le=MAX_POLL_OPTIONS)] = 1
    """How many options a voter may pick; 0 means any number."""


class Reaction(_Kind, tag="reaction"):
    message_id: TargetId
    """The message reacted to."""
    emoji: Annotated[str, msgspec.Meta(max_length=32)]
    """An emoji; the empty string removes an earlier reaction."""


class Edit(_Kind, tag="edit"):
    message_id: TargetId
    """One of the session's own earlier messages (WhatsApp allows edits for 15 minutes)."""
    text: TextBody
    """The new text (or caption)."""


class Revoke(_Kind, tag="revoke"):
    """Delete for everyone: one of the session's own messages (or, as a group admin, anyone's)."""

    message_id: TargetId


class Vote(_Kind, tag="vote"):
    """A vote in a poll: the names of the chosen options (none withdraws the vote)."""

    message_id: TargetId
    """The poll."""
    options: Annotated[list[Annotated[str, msgspec.Meta(max_length=100)]], msgspec.Meta(max_length=MAX_POLL_OPTIONS)]


class Unsupported(_Kind, tag="unsupported"):
    """A received message of a kind zapgate does not model yet (received only; it is never dropped)."""

    type: str
    """WhatsApp's name for it (e.g. ``buttonsMessage``, ``eventMessage``)."""
    text: str | None = None
    """Whatever text it carries, if any."""


Content = (
    Text
    | Image
    | Video
    | Audio
    | Document
    | Sticker
    | Location
    | Contacts
    | Poll
    | Vote
    | Reaction
    | Edit
    | Revoke
    | Unsupported
)
MediaKinds = Image | Video | Audio | Document | Sticker

_encoder = msgspec.json.Encoder(order="deterministic")


_MEDIA_CLASSES = (Image, Video, Audio, Document, Sticker)
"""The classes of :data:`MediaKinds`, as a tuple for ``isinstance`` (a ``|`` union is rebuilt at each call)."""


def media_of(content: Content) -> Media | None:
    """The file of a media message, None for the other kinds."""
    return content.media if isinstance(content, _MEDIA_CLASSES) else None


_ABOUT_CLASSES = (Reaction, Edit, Revoke, Vote)
"""The kinds of content that are about another message."""


def target_of(content: Content) -> str | None:
    """The id of the message ``content`` is about (reactions, edits, revokes, votes); None for the other kinds."""
    return content.message_id if isinstance(content, _ABOUT_CLASSES) else None


def content_text(content: Content) -> str | None:
    """The text a person would read first: a text, a caption, a poll question; None when there is none."""
    match content:
        case Text() | Edit():
            return content.text
        case Image() | Video() | Document():
            return content.caption or None
        case Poll():
            return content.question
        case Location():
            return content.name
        case Unsupported():
            return content.text
    return None


def check_sendable(content: Content) -> str | None:
    """Why ``content`` cannot be sent as given (a message for ``invalid_request``), or None when it can."""
    match content:
        case Unsupported():
            return "kind 'unsupported' describes received messages; it cannot be sent"
        case Location(live=True):
            return "a live location cannot be started through WhatsApp's linked-device API; send live: false"
        case Contacts():
            for number, card in enumerate(content.contacts):
                if card.vcard is None and not (card.name and card.phones):
                    return f"contacts[{number}]: give a vcard, or a name and phones"
        case Poll():
            if len(set(content.options)) != len(content.options):
                return "poll options must differ from each other"
            if content.selectable > len(content.options):
                return "selectable cannot exceed the number of options"
    media = media_of(content)
    if media is not None:
        given = [name for name in ("id", "url", "data") if getattr(media, name) is not None]
        if len(given) != 1:
            return "media needs exactly one of id (an upload), url or data (base64)"
        if media.size is not None or media.sha256 is not None or media.status is not None:
            return "media.size, media.sha256 and media.status are set by the gateway, not by the sender"
    return None


def content_fingerprint(chat: str, content: Content, *extra: object) -> str:
    """A digest of what a send would put on the wire, for idempotency keys: the same key with a different
    fingerprint is a conflict. Stable across processes (deterministic key order)."""
    return hashlib.sha256(_encoder.encode([chat, content, list(extra)])).hexdigest()
