"""How an accepted message is kept in the outbox until it is sent: its content, and what else the send needs
(pure: encoding only)."""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from ..engines.base import PLAIN, Outgoing, Quote, Target
from ..errors import InvalidRecipient, InvalidRequest
from ..jid import USER_SERVER, Jid, parse_recipient
from ..protocol.content import Content, Edit, Revoke, content_text, target_of
from ..storage import OutboxItem, Storage

__all__ = ["decode_outgoing", "encode_content", "encode_outgoing", "mentions_for", "refers_to"]

_content_decoder = msgspec.json.Decoder(Content)
_extra_decoder = msgspec.json.Decoder(Outgoing)
_encoder = msgspec.json.Encoder()


def encode_content(content: Content) -> bytes:
    return _encoder.encode(content)


def encode_outgoing(extra: Outgoing) -> bytes | None:
    """``extra`` for the outbox's ``extra`` column (None when there is nothing to keep)."""
    return None if extra == PLAIN else _encoder.encode(extra)


def decode_outgoing(item: OutboxItem) -> tuple[Content, Outgoing]:
    content: Content = _content_decoder.decode(item.content)
    extra = _extra_decoder.decode(item.extra) if item.extra else PLAIN
    return content, extra


_TEXT_MENTION = re.compile(r"(?<![\w@])@(\d{7,15})\b")


def mentions_for(chat: Jid, content: Content, explicit: Sequence[str]) -> tuple[str, ...]:
    """The JIDs a message mentions: those given (phone numbers or JIDs; ``all`` for every member of a group)
    and the ``@5511…`` written in its text or caption. Raises :class:`InvalidRecipient` for a bad one."""
    found: dict[str, None] = {}
    for raw in explicit:
        if raw.strip().lower() == "all":
            if not chat.is_group:
                raise InvalidRecipient("mentions: 'all' mentions every member of a group; this chat is not a group")
            found["all"] = None
            continue
        try:
            found[str(parse_recipient(raw))] = None
        except InvalidRecipient as exc:
            raise InvalidRecipient(f"mentions: {exc.message}") from None
    for digits in _TEXT_MENTION.findall(content_text(content) or ""):
        found[f"{digits}@{USER_SERVER}"] = None
    return tuple(found)


async def refers_to(
    storage: Storage, session_id: str, me: str | None, chat: Jid, content: Content, reply_to: str | None
) -> Outgoing:
    """The quoted message and the target of a reaction, edit, revoke or vote, as the engine needs them:
    whether the session sent it, and who wrote it."""
    target_id = target_of(content)
    wanted = [mid for mid in (reply_to, target_id) if mid is not None]
    if not wanted:  # most messages refer to none: no reads
        return Outgoing()
    ours = await storage.sent_by(session_id, wanted)
    received = await storage.inbound_records(session_id, wanted)
    quote = target = None
    if reply_to is not None:
        if reply_to in ours:
            earlier = await storage.outbox_item(reply_to)
            text = content_text(decode_outgoing(earlier)[0]) if earlier is not None else None
            quote = Quote(message_id=reply_to, sender=str(Jid.parse(me)) if me else str(chat), text=text)
        else:
            record = received.get(reply_to)
            quote = Quote(message_id=reply_to, sender=(record.sender if record else None) or str(chat))
    if target_id is not None:
        if target_id in ours:
            target = Target(message_id=target_id, from_me=True)
        elif isinstance(content, Edit) or (isinstance(content, Revoke) and not chat.is_group):
            # Only the author edits; only the author (or, in a group, an admin) deletes for everyone.
            raise InvalidRequest(f"{type(content).__name__.lower()}: {target_id} is not a message this session sent")
        elif target_id in received:
            target = Target(message_id=target_id, from_me=False, sender=received[target_id].sender or str(chat))
        else:
            target = Target(message_id=target_id, from_me=False, sender=str(chat))
    return Outgoing(quote=quote, target=target)
