"""WhatsApp's history sync as whatsmeow delivers it (``HistorySyncEv``: one decoded blob of
``waHistorySync.HistorySync``) turned into :class:`~..base.HistoryBatch` events (pure).

A blob holds conversations, each with its messages (``WebMessageInfo``: key, message, timestamp, push name)
and its settings (unread count, archived, pinned, mute end). Messages are translated like live ones
(:mod:`.content`); system messages (no content) and protocol plumbing are left out. A one-to-one chat WhatsApp
names by ``@lid`` is named by its phone number when the conversation gives it (``pnJID``). The blob is cut into
batches of :data:`BATCH_MESSAGES`; the chats' settings ride on its last batch, which is ``final`` when WhatsApp
says the sync is complete (``progress`` 100).
"""

from __future__ import annotations

from typing import Any

from ..base import HistoryBatch, HistoryChat, MessageIn
from .content import inbound_content
from .translate import STATUS_CHAT

__all__ = ["BATCH_MESSAGES", "history_batches", "mute_end", "push_names"]

BATCH_MESSAGES = 500
"""Messages per batch (one transaction in the gateway)."""
_MS_THRESHOLD = 100_000_000_000
"""Timestamps above this are milliseconds (year 5138 in seconds)."""


def mute_end(value: int) -> int:
    """A conversation's ``muteEndTime`` as zapgate's ``muted_until``: 0 not muted, -1 for ever, else seconds."""
    if value in (0, 0xFFFFFFFFFFFFFFFF):
        return -1 if value else 0
    return value // 1000 if value > _MS_THRESHOLD else value


def _phone_form(jid: str, pn_jid: str) -> str:
    return pn_jid if jid.endswith("@lid") and pn_jid else jid


def _message(info: Any, chat: str, lid_chat: str | None) -> MessageIn | None:
    if not info.HasField("message"):
        return None  # a system message (group created, number changed ...)
    inbound = inbound_content(info.message)
    if inbound is None:
        return None
    key = info.key
    from_me = bool(key.fromMe)
    participant = key.participant or info.participant
    if from_me:
        sender, sender_lid = "", None
    elif chat.endswith("@g.us"):
        sender, sender_lid = participant, participant if participant.endswith("@lid") else None
    else:
        sender, sender_lid = chat, lid_chat
    timestamp = int(info.messageTimestamp)
    return MessageIn(
        message_id=key.ID,
        chat=chat,
        sender=sender,
        sender_lid=sender_lid,
        chat_lid=lid_chat if not chat.endswith("@g.us") else None,
        content=inbound.content,
        timestamp=timestamp // 1000 if timestamp > _MS_THRESHOLD else timestamp,
        from_me=from_me,
        push_name=info.pushName or None,
        reply_to=inbound.reply_to,
        mentions=inbound.mentions,
        forwarded=inbound.forwarded,
        view_once=inbound.view_once,
        ephemeral=inbound.ephemeral,
    )


def history_batches(data: Any) -> list[HistoryBatch]:
    """The batches of one history-sync blob (``HistorySyncEv.Data``); empty when it holds nothing for chats."""
    messages: list[MessageIn] = []
    chats: list[HistoryChat] = []
    for conversation in data.conversations:
        chat = _phone_form(conversation.ID, conversation.pnJID)
        if not chat or chat == STATUS_CHAT:
            continue
        lid_chat = conversation.ID if conversation.ID.endswith("@lid") else (conversation.lidJID or None)
        for entry in conversation.messages:
            message = _message(entry.message, chat, lid_chat)
            if message is not None and message.message_id:
                messages.append(message)
        chats.append(
            HistoryChat(
                chat=chat,
                name=conversation.name or conversation.displayName or None,
                unread=int(conversation.unreadCount),
                archived=bool(conversation.archived),
                pinned=bool(conversation.pinned),
                muted_until=mute_end(int(conversation.muteEndTime)),
            )
        )
    if not messages and not chats:
        return []
    messages.sort(key=lambda m: m.timestamp)
    batches = [
        HistoryBatch(messages=messages[start : start + BATCH_MESSAGES])
        for start in range(0, max(len(messages), 1), BATCH_MESSAGES)
    ]
    progress = int(data.progress) if data.HasField("progress") else None
    for batch in batches:
        batch.progress = progress
    batches[-1].chats = chats
    batches[-1].final = progress == 100
    return batches


def push_names(data: Any) -> list[tuple[str, str]]:
    """(JID, push name) pairs a blob carries (``PUSH_NAME`` syncs, and others)."""
    return [(entry.ID, entry.pushname) for entry in data.pushnames if entry.ID and entry.pushname]
