"""The SDK's typed API: :func:`connect` and :class:`Client`, one method per command of the protocol.

Which commands are sent again after a dropped connection (``retry_safe``) is decided here, per command;
:mod:`zapgate.client.connection` explains why and does the rest.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal

import msgspec

from ..protocol import (
    ChatPresence,
    ContactIdentity,
    ContactResolve,
    Empty,
    GroupCreate,
    GroupCreated,
    GroupInfo,
    GroupInfoGet,
    GroupInvite,
    GroupInviteLink,
    GroupJoin,
    GroupLeave,
    GroupList,
    GroupListResult,
    GroupParticipants,
    GroupParticipantsResult,
    GroupUpdate,
    Me,
    MediaGet,
    MediaInfo,
    MediaRetry,
    MessageRead,
    MessageReadResult,
    MessageSend,
    ParticipantResult,
    Ping,
    PresenceSet,
    PresenceSubscribe,
    SendResult,
    SessionDelete,
    SessionGet,
    SessionInfo,
    SessionList,
    SessionLogout,
    SessionStart,
    SessionStop,
    SimMediaFail,
    SimMediaFailResult,
    SimNetwork,
    SimReceive,
    SimRestrict,
    SimScan,
    SimUnlink,
)
from ..protocol.content import (
    Audio,
    ContactCard,
    Contacts,
    Content,
    Document,
    Edit,
    Image,
    Location,
    Media,
    Poll,
    Reaction,
    Revoke,
    Sticker,
    Text,
    Video,
    Vote,
)
from .admin import AdminCommands
from .chats import ChatsAndContacts
from .media import FileSource, MediaTransfer
from .webhooks import WebhookCommands

__all__ = ["Client", "connect"]


def connect(
    url: str,
    token: str,
    *,
    resume_from: int | None = None,
    request_timeout: float | None = 30.0,
    open_timeout: float = 10.0,
    reconnect: bool = True,
    backoff_base: float = 0.5,
    backoff_cap: float = 30.0,
    max_pending_events: int = 10_000,
    sessions: Iterable[str] | None = None,
    events: Iterable[str] | None = None,
) -> Client:
    """A client for the gateway at ``url``; use it as ``async with connect(url, token) as client:``.

    ``resume_from`` is the ``seq`` of the last event you handled (e.g. stored by a previous run): the stream
    then starts right after it. Without it, the stream starts with events newer than the connection.
    The first connection fails at once (:class:`GatewayUnreachable`, :class:`~zapgate.errors.Unauthorized`);
    later drops are retried with backoff between ``backoff_base`` and ``backoff_cap`` seconds.
    ``sessions`` and ``events`` subscribe the connection to only those sessions and event types (names or
    ``"message.*"``-style wildcards) from its first event on; see :meth:`Client.subscribe`.
    """
    return Client(
        url,
        token,
        resume_from=resume_from,
        request_timeout=request_timeout,
        open_timeout=open_timeout,
        reconnect=reconnect,
        backoff_base=backoff_base,
        backoff_cap=backoff_cap,
        max_pending_events=max_pending_events,
        sessions=sessions,
        events=events,
    )


class Client(ChatsAndContacts, AdminCommands, WebhookCommands):
    """A connection to one gateway as one tenant, with a typed method per command. Build it with :func:`connect`.

    Every method raises the gateway's error as its :mod:`zapgate.errors` class, :class:`RequestTimeout` after
    ``request_timeout``, or :class:`~zapgate.errors.ConnectionClosed` when the connection dropped and the
    command is not safe to send again.
    """

    async def start_session(self, session: str, *, pair_phone: str | None = None) -> SessionInfo:
        """Create ``session`` if needed and start it (idempotent). Unpaired, it shows QR codes
        (``session.qr`` events) or, with ``pair_phone``, also a pairing code (``session.pair_code``)."""
        cmd = SessionStart(id=self._new_id(), session=session, pair_phone=pair_phone)
        return await self._request(cmd, SessionInfo, retry_safe=True)

    async def sessions(self) -> list[SessionInfo]:
        """Every session of the tenant, sorted by name."""
        listing = await self._request(SessionList(id=self._new_id()), _SessionListing, retry_safe=True)
        return listing.sessions

    async def session(self, session: str) -> SessionInfo:
        """One session; :class:`~zapgate.errors.SessionNotFound` when the tenant has no such session."""
        return await self._request(SessionGet(id=self._new_id(), session=session), SessionInfo, retry_safe=True)

    async def stop_session(self, session: str) -> SessionInfo:
        """Stop the session and keep its pairing; ``start_session`` resumes it without a scan."""
        return await self._request(SessionStop(id=self._new_id(), session=session), SessionInfo, retry_safe=True)

    async def logout(self, session: str) -> SessionInfo:
        """Unlink the session from its phone and forget its keys; it needs a new pairing."""
        return await self._request(SessionLogout(id=self._new_id(), session=session), SessionInfo, retry_safe=True)

    async def delete_session(self, session: str) -> None:
        """Log out and delete the session with everything stored for it (not retried across a drop)."""
        await self._call(SessionDelete(id=self._new_id(), session=session), retry_safe=False)

    async def send(
        self,
        session: str,
        to: str,
        content: Content,
        *,
        reply_to: str | None = None,
        mentions: list[str] | None = None,
        forwarded: bool = False,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Send ``content`` (any kind: :class:`Text`, :class:`Location`, :class:`Poll`, :class:`Reaction`…) to
        ``to`` (a phone number or JID); ``reply_to`` quotes a message of that chat; ``mentions`` lists people
        to mention (``"all"`` in a group).

        ``idempotency_key`` makes the send safe to repeat: the same key with the same content returns the first
        result and sends nothing (a different content raises :class:`~zapgate.errors.IdempotencyConflict`).
        Without one the SDK makes a fresh key, so its own resend after a dropped connection is safe too;
        pass your own (e.g. your database id of the message) to be safe across restarts of your program.
        """
        key = idempotency_key if idempotency_key is not None else f"sdk-{uuid.uuid4().hex}"
        cmd = MessageSend(
            id=self._new_id(),
            session=session,
            to=to,
            content=content,
            reply_to=reply_to,
            mentions=mentions,
            forwarded=forwarded,
            idempotency_key=key,
        )
        return await self._request(cmd, SendResult, retry_safe=True)

    async def send_text(
        self,
        session: str,
        to: str,
        text: str,
        *,
        reply_to: str | None = None,
        mentions: list[str] | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Send a text (see :meth:`send`); ``@5511…`` in the text mentions that number."""
        return await self.send(
            session, to, Text(text=text), reply_to=reply_to, mentions=mentions, idempotency_key=idempotency_key
        )

    async def send_location(
        self,
        session: str,
        to: str,
        latitude: float,
        longitude: float,
        *,
        name: str | None = None,
        address: str | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Send a location pin (see :meth:`send`)."""
        location = Location(latitude=latitude, longitude=longitude, name=name, address=address)
        return await self.send(session, to, location, idempotency_key=idempotency_key)

    async def send_contact(
        self, session: str, to: str, name: str, phones: list[str], *, idempotency_key: str | None = None
    ) -> SendResult:
        """Send a contact card for ``name`` with ``phones`` (international format); for several cards or a
        ready vCard, :meth:`send` a :class:`Contacts`."""
        card = ContactCard(name=name, phones=list(phones))
        return await self.send(session, to, Contacts(contacts=[card]), idempotency_key=idempotency_key)

    async def send_poll(
        self,
        session: str,
        to: str,
        question: str,
        options: list[str],
        *,
        selectable: int = 1,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Send a poll; ``selectable`` is how many options a voter may pick (0: any number). Votes arrive as
        :class:`PollVote` events."""
        poll = Poll(question=question, options=list(options), selectable=selectable)
        return await self.send(session, to, poll, idempotency_key=idempotency_key)

    async def vote(
        self, session: str, chat: str, poll_id: str, options: list[str], *, idempotency_key: str | None = None
    ) -> SendResult:
        """Vote in the poll ``poll_id`` received in ``chat`` for ``options`` (by name; none withdraws)."""
        return await self.send(
            session, chat, Vote(message_id=poll_id, options=list(options)), idempotency_key=idempotency_key
        )

    async def react(
        self, session: str, chat: str, message_id: str, emoji: str, *, idempotency_key: str | None = None
    ) -> SendResult:
        """React to ``message_id`` in ``chat`` with ``emoji``; an empty string removes the reaction."""
        return await self.send(
            session, chat, Reaction(message_id=message_id, emoji=emoji), idempotency_key=idempotency_key
        )

    async def edit(
        self, session: str, chat: str, message_id: str, text: str, *, idempotency_key: str | None = None
    ) -> SendResult:
        """Edit one of the session's own messages (WhatsApp allows it for 15 minutes)."""
        return await self.send(session, chat, Edit(message_id=message_id, text=text), idempotency_key=idempotency_key)

    async def revoke(
        self, session: str, chat: str, message_id: str, *, idempotency_key: str | None = None
    ) -> SendResult:
        """Delete one of the session's own messages for everyone."""
        return await self.send(session, chat, Revoke(message_id=message_id), idempotency_key=idempotency_key)

    # -- media: files go over HTTP to the same gateway (docs/media.md)

    @property
    def _files(self) -> MediaTransfer:
        transfer: MediaTransfer | None = getattr(self, "_transfer", None)
        if transfer is None:
            transfer = self._transfer = MediaTransfer(self.url, self._token, timeout=self._request_timeout)
        return transfer

    async def close(self) -> None:
        await super().close()
        transfer: MediaTransfer | None = getattr(self, "_transfer", None)
        if transfer is not None:
            await transfer.aclose()

    async def upload(self, file: FileSource, *, mimetype: str | None = None, filename: str | None = None) -> MediaInfo:
        """Upload a file (a path, streamed from disk; or bytes) with ``POST /v1/media``; its ``media_id`` can then
        be sent any number of times. The gateway reads the type from the bytes (``mimetype`` only helps when
        they say nothing); a path's name is its ``filename`` unless given. The same bytes under the same name
        again return the same media id."""
        return await self._files.upload(file, mimetype=mimetype, filename=filename)

    async def _send_file(
        self,
        session: str,
        to: str,
        file: FileSource,
        make: type[Image | Video | Audio | Document | Sticker],
        fields: Mapping[str, object],
        *,
        mimetype: str | None = None,
        upload_name: str | None = None,
        reply_to: str | None = None,
        mentions: list[str] | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Upload ``file``, then send a ``make`` content naming it with ``fields``. The send carries an
        idempotency key as any other; the upload of the same bytes again gives the same media id, so repeating
        the whole call with the same key sends nothing twice."""
        uploaded = await self.upload(file, mimetype=mimetype, filename=upload_name)
        content: Content = make(media=Media(id=uploaded.media_id, mimetype=mimetype), **fields)  # type: ignore[arg-type]
        return await self.send(
            session, to, content, reply_to=reply_to, mentions=mentions, idempotency_key=idempotency_key
        )

    async def send_image(
        self,
        session: str,
        to: str,
        file: FileSource,
        *,
        caption: str | None = None,
        view_once: bool = False,
        mimetype: str | None = None,
        reply_to: str | None = None,
        mentions: list[str] | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Upload a picture (path or bytes) and send it, with an optional ``caption`` (see :meth:`send`)."""
        fields = {"caption": caption, "view_once": view_once}
        return await self._send_file(
            session,
            to,
            file,
            Image,
            fields,
            mimetype=mimetype,
            reply_to=reply_to,
            mentions=mentions,
            idempotency_key=idempotency_key,
        )

    async def send_video(
        self,
        session: str,
        to: str,
        file: FileSource,
        *,
        caption: str | None = None,
        gif: bool = False,
        view_once: bool = False,
        mimetype: str | None = None,
        reply_to: str | None = None,
        mentions: list[str] | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Upload a video and send it (``gif``: it plays as a looping GIF)."""
        fields = {"caption": caption, "gif": gif, "view_once": view_once}
        return await self._send_file(
            session,
            to,
            file,
            Video,
            fields,
            mimetype=mimetype,
            reply_to=reply_to,
            mentions=mentions,
            idempotency_key=idempotency_key,
        )

    async def send_audio(
        self,
        session: str,
        to: str,
        file: FileSource,
        *,
        voice: bool = False,
        mimetype: str | None = None,
        reply_to: str | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Upload a sound file and send it; ``voice=True`` sends a voice note (it must be OGG/Opus)."""
        return await self._send_file(
            session,
            to,
            file,
            Audio,
            {"voice": voice},
            mimetype=mimetype,
            reply_to=reply_to,
            idempotency_key=idempotency_key,
        )

    async def send_document(
        self,
        session: str,
        to: str,
        file: FileSource,
        *,
        filename: str | None = None,
        caption: str | None = None,
        mimetype: str | None = None,
        reply_to: str | None = None,
        mentions: list[str] | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Upload any file and send it as a document, shown with ``filename`` (a path's own name by default)."""
        name = filename or (None if isinstance(file, bytes) else Path(file).name)
        fields = {"filename": name, "caption": caption}
        return await self._send_file(
            session,
            to,
            file,
            Document,
            fields,
            mimetype=mimetype,
            upload_name=name,
            reply_to=reply_to,
            mentions=mentions,
            idempotency_key=idempotency_key,
        )

    async def send_sticker(
        self,
        session: str,
        to: str,
        file: FileSource,
        *,
        reply_to: str | None = None,
        idempotency_key: str | None = None,
    ) -> SendResult:
        """Upload a WebP image and send it as a sticker."""
        return await self._send_file(session, to, file, Sticker, {}, reply_to=reply_to, idempotency_key=idempotency_key)

    async def download(self, media_id: str) -> bytes:
        """The bytes of a stored file (a received one once ``media.ready`` came, or an upload). Raises
        :class:`~zapgate.errors.MediaNotFound` (also for another tenant's id) or
        :class:`~zapgate.errors.MediaNotReady`."""
        return await self._files.download(media_id)

    async def download_to(self, media_id: str, path: str | os.PathLike[str]) -> Path:
        """Stream a stored file to ``path`` without holding it in memory (whole or not at all); returns the path."""
        await self._files.download_to(media_id, path)
        return Path(path)

    async def media_info(self, media_id: str) -> MediaInfo:
        """What the gateway knows of a media file: status, type, size, digest (``media.get``)."""
        return await self._request(MediaGet(id=self._new_id(), media_id=media_id), MediaInfo, retry_safe=True)

    async def retry_media(self, media_id: str) -> MediaInfo:
        """Download a received file again now, after ``media.failed`` (``media.retry``)."""
        return await self._request(MediaRetry(id=self._new_id(), media_id=media_id), MediaInfo, retry_safe=True)

    async def mark_read(self, session: str, chat: str, message_ids: list[str]) -> int:
        """Send read receipts (blue ticks) for ``message_ids`` received in ``chat``; returns how many of them
        the session had received (the others are ignored)."""
        cmd = MessageRead(id=self._new_id(), session=session, chat=chat, message_ids=list(message_ids))
        result = await self._request(cmd, MessageReadResult, retry_safe=True)
        return result.read

    async def chat_presence(self, session: str, chat: str, state: Literal["typing", "recording", "paused"]) -> None:
        """Show the session ``typing`` or ``recording`` a voice note in ``chat``, or stop (``paused``)."""
        cmd = ChatPresence(id=self._new_id(), session=session, chat=chat, state=state)
        await self._call(cmd, retry_safe=True)

    async def set_presence(self, session: str, state: Literal["available", "unavailable"]) -> None:
        """Show the account online (``available``) or offline (``unavailable``) to its contacts."""
        await self._call(PresenceSet(id=self._new_id(), session=session, state=state), retry_safe=True)

    async def subscribe_presence(self, session: str, chat: str) -> None:
        """Get :class:`Presence` events for ``chat`` (a contact): online, offline, typing, recording."""
        await self._call(PresenceSubscribe(id=self._new_id(), session=session, chat=chat), retry_safe=True)

    async def resolve_contact(self, session: str, contact: str) -> ContactIdentity:
        """Both addresses of a person named by phone number, phone JID or LID, as far as ``session`` knows them:
        ``jid`` (phone-number JID), ``lid`` and ``phone``, each None when not known (``contact.resolve``)."""
        cmd = ContactResolve(id=self._new_id(), session=session, contact=contact)
        return await self._request(cmd, ContactIdentity, retry_safe=True)

    # -- groups

    async def create_group(self, session: str, subject: str, participants: list[str] | None = None) -> GroupCreated:
        """Create a group and add ``participants`` (numbers, JIDs or LIDs): the group, and one result per person
        (``ok``, ``not_authorized``, ``already_member``, …). Not resent after a drop: a repeat makes a second group."""
        cmd = GroupCreate(id=self._new_id(), session=session, subject=subject, participants=list(participants or []))
        return await self._request(cmd, GroupCreated, retry_safe=False)

    async def groups(self, session: str) -> list[GroupInfo]:
        """The groups the session's account is in (without their members)."""
        result = await self._request(GroupList(id=self._new_id(), session=session), GroupListResult, retry_safe=True)
        return result.groups

    async def group_info(self, session: str, group: str) -> GroupInfo:
        """A group's settings and members (each with both id forms and admin flags)."""
        cmd = GroupInfoGet(id=self._new_id(), session=session, group=group)
        return await self._request(cmd, GroupInfo, retry_safe=True)

    async def group_participants(
        self,
        session: str,
        group: str,
        action: Literal["add", "remove", "promote", "demote"],
        participants: list[str],
    ) -> list[ParticipantResult]:
        """Add, remove, promote or demote people; one result per person, in order."""
        cmd = GroupParticipants(
            id=self._new_id(), session=session, group=group, action=action, participants=list(participants)
        )
        result = await self._request(cmd, GroupParticipantsResult, retry_safe=True)
        return result.participants

    async def group_invite_link(self, session: str, group: str, *, reset: bool = False) -> str:
        """The group's invite link (``reset`` revokes the current one and answers a new one)."""
        cmd = GroupInvite(id=self._new_id(), session=session, group=group, reset=reset)
        result = await self._request(cmd, GroupInviteLink, retry_safe=not reset)
        return result.link

    async def join_group(self, session: str, link: str) -> GroupInfo:
        """Join a group by invite link (or its code)."""
        return await self._request(GroupJoin(id=self._new_id(), session=session, link=link), GroupInfo, retry_safe=True)

    async def leave_group(self, session: str, group: str) -> None:
        """Leave a group."""
        await self._request(GroupLeave(id=self._new_id(), session=session, group=group), Empty, retry_safe=True)

    async def update_group(
        self,
        session: str,
        group: str,
        *,
        subject: str | None = None,
        description: str | None = None,
        picture: Media | None = None,
        announce: bool | None = None,
        locked: bool | None = None,
        ephemeral: Literal[0, 86400, 604800, 7776000] | None = None,
    ) -> GroupInfo:
        """Change what is given (``picture``: a JPEG or PNG as ``Media(id=…)``, ``url`` or ``data``)."""
        cmd = GroupUpdate(
            id=self._new_id(),
            session=session,
            group=group,
            subject=subject,
            description=description,
            picture=picture,
            announce=announce,
            locked=locked,
            ephemeral=ephemeral,
        )
        return await self._request(cmd, GroupInfo, retry_safe=True)

    async def ping(self) -> float:
        """Round trip to the gateway; returns the gateway's clock (epoch seconds)."""
        pong = await self._request(Ping(id=self._new_id()), _Pong, retry_safe=True)
        return pong.time

    # -- simulator only (CommandUnavailable on a gateway running the real engine)

    async def sim_scan(self, qr: str, phone: str) -> Me:
        """Simulator: a simulated phone with number ``phone`` scans ``qr`` (or types a pairing code)."""
        result = await self._request(SimScan(id=self._new_id(), qr=qr, phone=phone), _Linked, retry_safe=False)
        return result.me

    async def sim_unlink(self, session: str) -> None:
        """Simulator: the session's phone removes it from its linked devices."""
        await self._call(SimUnlink(id=self._new_id(), session=session), retry_safe=False)

    async def sim_network(self, session: str, online: bool) -> None:
        """Simulator: drop (``online=False``) or restore the session's network."""
        await self._call(SimNetwork(id=self._new_id(), session=session, online=online), retry_safe=True)

    async def sim_receive(
        self,
        session: str,
        from_: str,
        text: str | None = None,
        *,
        content: Content | None = None,
        reply_to: str | None = None,
    ) -> str:
        """Simulator: contact ``from_`` sends ``text`` (or ``content`` of any kind) to the session's number;
        returns the message id."""
        cmd = SimReceive(id=self._new_id(), session=session, from_=from_, text=text, content=content, reply_to=reply_to)
        received = await self._request(cmd, _Received, retry_safe=False)
        return received.message_id

    async def sim_restrict(self, session: str, seconds: float, *, reason: str = "send_restricted") -> float:
        """Simulator: WhatsApp restricts the session's sending for ``seconds`` (a ``session.restricted`` event
        follows); returns when the restriction ends (epoch seconds). Not resent after a drop: a repeat would
        restart the restriction."""
        cmd = SimRestrict(id=self._new_id(), session=session, seconds=seconds, reason=reason)
        restricted = await self._request(cmd, _Restricted, retry_safe=False)
        return restricted.until

    async def sim_fail_downloads(self, session: str, times: int, reason: str = "cdn_timeout") -> int:
        """Simulator: the session's next ``times`` downloads of received files fail (``cdn_timeout``: retried by
        the gateway; ``media_expired``: not)."""
        cmd = SimMediaFail(id=self._new_id(), session=session, times=times, reason=reason)  # type: ignore[arg-type]
        result = await self._request(cmd, SimMediaFailResult, retry_safe=True)
        return result.failing


class _SessionListing(msgspec.Struct):
    sessions: list[SessionInfo]


class _Pong(msgspec.Struct):
    time: float


class _Linked(msgspec.Struct):
    me: Me


class _Received(msgspec.Struct):
    message_id: str


class _Restricted(msgspec.Struct):
    until: float
