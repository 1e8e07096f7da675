"""``message.*``: send messages and read receipts."""

from __future__ import annotations

from ...auth import Caller
from ...gateway import Gateway
from ...protocol import MessageRead, MessageReadResult, MessageSend, SendResult
from .registry import handles

__all__: list[str] = []


@handles(MessageSend)
async def message_send(gw: Gateway, caller: Caller, cmd: MessageSend) -> SendResult:
    return await gw.sessions.send_text(
        caller.tenant,
        cmd.session,
        to=cmd.to,
        text=cmd.text,
        reply_to=cmd.reply_to,
        idempotency_key=cmd.idempotency_key,
    )


@handles(MessageRead)
async def message_read(gw: Gateway, caller: Caller, cmd: MessageRead) -> MessageReadResult:
    read = await gw.sessions.mark_read(caller.tenant, cmd.session, chat=cmd.chat, message_ids=cmd.message_ids)
    return MessageReadResult(read=read)
