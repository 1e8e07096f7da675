"""``message.*``: send messages and read receipts."""

from __future__ import annotations

from ...auth import Caller
from ...errors import InvalidRequest
from ...gateway import Gateway
from ...protocol import MessageRead, MessageReadResult, MessageSend, SendResult
from ...protocol.content import Content, Text
from .registry import handles

__all__ = ["content_of"]


def content_of(content: Content | None, text: str | None) -> Content:
    """The ``content`` of a command, or the ``text`` shorthand: exactly one of the two."""
    if (content is None) == (text is None):
        raise InvalidRequest("give exactly one of 'content' and 'text'")
    return content if content is not None else Text(text=text or "")


@handles(MessageSend)
async def message_send(gw: Gateway, caller: Caller, cmd: MessageSend) -> SendResult:
    return await gw.sessions.send(
        caller.tenant,
        cmd.session,
        to=cmd.to,
        content=content_of(cmd.content, cmd.text),
        reply_to=cmd.reply_to,
        mentions=cmd.mentions or (),
        forwarded=cmd.forwarded,
        idempotency_key=cmd.idempotency_key,
    )


@handles(MessageRead)
async def message_read(gw: Gateway, caller: Caller, cmd: MessageRead) -> MessageReadResult:
    read = await gw.sessions.mark_read(caller.tenant, cmd.session, chat=cmd.chat, message_ids=cmd.message_ids)
    return MessageReadResult(read=read)
