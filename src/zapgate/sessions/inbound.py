"""What a received message becomes for clients: one event per kind (pure).

A message's content decides its event: ``message.received`` for what a person writes (text, media, location,
contacts, poll, anything unsupported), ``message.reaction``, ``message.edited``, ``message.revoked`` and
``poll.vote`` for what changes an earlier message, and ``status.received`` for a status post. Nothing is
dropped: a kind zapgate does not model arrives as ``unsupported`` with WhatsApp's type name.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..engines.base import MessageIn
from ..protocol import (
    MessageEditedData,
    MessageReactionData,
    MessageReceivedData,
    MessageRevokedData,
    PollVoteData,
    StatusReceivedData,
)
from ..protocol.content import Edit, Reaction, Revoke, Text, Vote, content_text

__all__ = ["describe_inbound"]


def describe_inbound(message: MessageIn) -> tuple[str, msgspec.Struct]:
    """The event name and payload for a received message."""
    common: dict[str, Any] = {
        "message_id": message.message_id,
        "chat": message.chat,
        "from_": message.sender,
        "from_me": message.from_me,
        "timestamp": message.timestamp,
        "from_lid": message.sender_lid,
        "chat_lid": message.chat_lid,
        "push_name": message.push_name,
    }
    content = message.content
    if message.status:
        return "status.received", StatusReceivedData(
            **common, kind=_kind(content), content=content, text=content_text(content)
        )
    match content:
        case Reaction():
            common["message_id"] = content.message_id
            return "message.reaction", MessageReactionData(**common, emoji=content.emoji)
        case Edit():
            common["message_id"] = content.message_id
            return "message.edited", MessageEditedData(**common, content=Text(text=content.text))
        case Revoke():
            common["message_id"] = content.message_id
            return "message.revoked", MessageRevokedData(**common)
        case Vote():
            common["message_id"] = content.message_id
            return "poll.vote", PollVoteData(**common, options=list(content.options))
    return "message.received", MessageReceivedData(
        **common,
        kind=_kind(content),
        content=content,
        text=content_text(content),
        reply_to=message.reply_to,
        mentions=list(message.mentions) or None,
        forwarded=message.forwarded,
        view_once=message.view_once,
        ephemeral=message.ephemeral,
    )


def _kind(content: msgspec.Struct) -> str:
    return str(type(content).__struct_config__.tag)
