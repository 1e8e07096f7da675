"""The SDK's methods for chats, message history and contacts (mixed into :class:`zapgate.client.Client`)."""

from __future__ import annotations

from ..protocol import (
    Blocklist,
    BlockResult,
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
    ContactBlock,
    ContactBlocklist,
    ContactCheck,
    ContactCheckResult,
    ContactInfo,
    ContactInfoResult,
    ContactUnblock,
    MessageHistory,
    MessageHistoryResult,
    NumberCheck,
    SimProfile,
)
from .connection import Connection

__all__ = ["ChatsAndContacts"]


class ChatsAndContacts(Connection):
    """``chat.*``, ``message.history`` and ``contact.*``. Every one is safe to send again after a dropped
    connection: each sets a state or reads one."""

    async def chats(
        self, session: str, *, limit: int = 50, before: str | None = None, archived: bool | None = None
    ) -> ChatListResult:
        """The session's chats, most recent first (``before``: the last chat of the previous page)."""
        cmd = ChatList(id=self._new_id(), session=session, limit=limit, before=before, archived=archived)
        return await self._request(cmd, ChatListResult, retry_safe=True)

    async def history(
        self, session: str, chat: str, *, before: str | None = None, limit: int = 50
    ) -> MessageHistoryResult:
        """The stored messages of ``chat``, newest first (``before``: the last message id of the previous page)."""
        cmd = MessageHistory(id=self._new_id(), session=session, chat=chat, before=before, limit=limit)
        return await self._request(cmd, MessageHistoryResult, retry_safe=True)

    async def read_chat(self, session: str, chat: str) -> int:
        """Send read receipts for every unread message of ``chat``; returns how many there were."""
        result = await self._request(
            ChatMarkRead(id=self._new_id(), session=session, chat=chat), ChatReadResult, retry_safe=True
        )
        return result.read

    async def archive_chat(self, session: str, chat: str, archived: bool = True) -> ChatInfo:
        """Archive ``chat`` (``archived=False``: take it out of the archive); returns the chat as it is now."""
        kind = ChatArchive if archived else ChatUnarchive
        return await self._request(kind(id=self._new_id(), session=session, chat=chat), ChatInfo, retry_safe=True)

    async def pin_chat(self, session: str, chat: str, pinned: bool = True) -> ChatInfo:
        """Pin ``chat`` (``pinned=False``: unpin it)."""
        kind = ChatPin if pinned else ChatUnpin
        return await self._request(kind(id=self._new_id(), session=session, chat=chat), ChatInfo, retry_safe=True)

    async def mute_chat(self, session: str, chat: str, *, until: int | None = None) -> ChatInfo:
        """Mute ``chat`` until ``until`` (unix seconds) or until unmuted."""
        cmd = ChatMute(id=self._new_id(), session=session, chat=chat, until=until)
        return await self._request(cmd, ChatInfo, retry_safe=True)

    async def unmute_chat(self, session: str, chat: str) -> ChatInfo:
        return await self._request(ChatUnmute(id=self._new_id(), session=session, chat=chat), ChatInfo, retry_safe=True)

    async def check_numbers(self, session: str, phones: list[str]) -> list[NumberCheck]:
        """Which of ``phones`` (1 to 100) are on WhatsApp, with the JID to write to, the LID and the business flag."""
        cmd = ContactCheck(id=self._new_id(), session=session, phones=list(phones))
        return (await self._request(cmd, ContactCheckResult, retry_safe=True)).contacts

    async def contact_info(self, session: str, contact: str) -> ContactInfoResult:
        """Push name, business name, about and profile picture (a media id: ``download(picture.media_id)``)."""
        cmd = ContactInfo(id=self._new_id(), session=session, contact=contact)
        return await self._request(cmd, ContactInfoResult, retry_safe=True)

    async def block(self, session: str, contact: str, blocked: bool = True) -> BlockResult:
        """Block ``contact`` (``blocked=False``: unblock it)."""
        kind = ContactBlock if blocked else ContactUnblock
        return await self._request(
            kind(id=self._new_id(), session=session, contact=contact), BlockResult, retry_safe=True
        )

    async def blocklist(self, session: str) -> list[str]:
        """The JIDs the account blocked."""
        cmd = ContactBlocklist(id=self._new_id(), session=session)
        return (await self._request(cmd, Blocklist, retry_safe=True)).blocked

    async def sim_profile(
        self,
        phone: str,
        *,
        about: str | None = None,
        business_name: str | None = None,
        picture: bool | None = None,
        hide_profile: bool | None = None,
    ) -> None:
        """Simulator: the owner of ``phone`` changes its profile (``business_name=""``: not a business; ``picture``:
        a new one, or none; ``hide_profile``: about and picture hidden from everyone)."""
        cmd = SimProfile(
            id=self._new_id(),
            phone=phone,
            about=about,
            business_name=business_name,
            picture=picture,
            hide_profile=hide_profile,
        )
        await self._call(cmd, retry_safe=False)
