"""``chat.*`` and ``message.history``."""

from __future__ import annotations

from ...auth import Caller
from ...gateway import Gateway
from ...protocol import (
    ChatArchive,
    ChatInfo,
    ChatList,
    ChatListResult,
    ChatMarkRead,
    ChatMute,
    ChatPin,
    ChatReadResult,
    ChatUnarchive,
    ChatUnmute,
    ChatUnpin,
    MessageHistory,
    MessageHistoryResult,
)
from ...storage import MUTED_FOREVER
from .registry import handles

__all__: list[str] = []


@handles(ChatList)
async def chat_list(gw: Gateway, caller: Caller, cmd: ChatList) -> ChatListResult:
    return await gw.sessions.chats.list(
        caller.tenant, cmd.session, limit=cmd.limit, before=cmd.before, archived=cmd.archived
    )


@handles(ChatMarkRead)
async def chat_mark_read(gw: Gateway, caller: Caller, cmd: ChatMarkRead) -> ChatReadResult:
    return ChatReadResult(read=await gw.sessions.chats.mark_read(caller.tenant, cmd.session, chat=cmd.chat))


@handles(ChatArchive)
async def chat_archive(gw: Gateway, caller: Caller, cmd: ChatArchive) -> ChatInfo:
    return await gw.sessions.chats.change(caller.tenant, cmd.session, chat=cmd.chat, archived=True)


@handles(ChatUnarchive)
async def chat_unarchive(gw: Gateway, caller: Caller, cmd: ChatUnarchive) -> ChatInfo:
    return await gw.sessions.chats.change(caller.tenant, cmd.session, chat=cmd.chat, archived=False)


@handles(ChatPin)
async def chat_pin(gw: Gateway, caller: Caller, cmd: ChatPin) -> ChatInfo:
    return await gw.sessions.chats.change(caller.tenant, cmd.session, chat=cmd.chat, pinned=True)


@handles(ChatUnpin)
async def chat_unpin(gw: Gateway, caller: Caller, cmd: ChatUnpin) -> ChatInfo:
    return await gw.sessions.chats.change(caller.tenant, cmd.session, chat=cmd.chat, pinned=False)


@handles(ChatMute)
async def chat_mute(gw: Gateway, caller: Caller, cmd: ChatMute) -> ChatInfo:
    until = MUTED_FOREVER if cmd.until is None else cmd.until
    return await gw.sessions.chats.change(caller.tenant, cmd.session, chat=cmd.chat, muted_until=until)


@handles(ChatUnmute)
async def chat_unmute(gw: Gateway, caller: Caller, cmd: ChatUnmute) -> ChatInfo:
    return await gw.sessions.chats.change(caller.tenant, cmd.session, chat=cmd.chat, muted_until=0)


@handles(MessageHistory)
async def message_history(gw: Gateway, caller: Caller, cmd: MessageHistory) -> MessageHistoryResult:
    return await gw.sessions.chats.history(
        caller.tenant, cmd.session, chat=cmd.chat, before=cmd.before, limit=cmd.limit
    )
