"""The engine interface: what the session manager needs from a WhatsApp implementation.

An engine knows sessions only by their opaque ``session_id`` and the ``device`` record it asked the
manager to persist; it knows nothing of tenants, tokens or clients. It reports everything that happens
to a session through one async callback, the :data:`EngineSink`, with the typed events below, in order per
session (or through its batch form, :data:`EngineBatchSink`, several at a time). The sink returns once the
event is durably recorded, so an engine may acknowledge a message to WhatsApp only after the sink returned.

Engine events are msgspec structs so that they can cross a process boundary unchanged (the ``whatsapp``
engine runs neonize in worker processes).
"""

from __future__ import annotations

import abc
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import msgspec

from ..jid import Jid
from ..protocol import (
    GroupInfo,
    GroupJoinedData,
    GroupParticipantsData,
    GroupUpdatedData,
    Me,
    ParticipantResult,
    SimContactResult,
)
from ..protocol.content import Content

__all__ = [
    "PLAIN",
    "SINK_BATCH",
    "Availability",
    "ChatSettingIn",
    "ChatState",
    "Connected",
    "ContactProfile",
    "Disconnected",
    "DownloadError",
    "Engine",
    "EngineBatchSink",
    "EngineEvent",
    "EngineIssue",
    "EngineSink",
    "Failed",
    "GroupAction",
    "GroupChanges",
    "GroupJoinedIn",
    "GroupParticipantsIn",
    "GroupUpdatedIn",
    "HistoryBatch",
    "HistoryChat",
    "IdentityIn",
    "IdentityPair",
    "LoggedOut",
    "MediaFile",
    "MessageIn",
    "Outgoing",
    "PairCode",
    "Paired",
    "PhoneCheck",
    "PresenceIn",
    "PresenceState",
    "QrCode",
    "Quote",
    "ReceiptIn",
    "Sandbox",
    "SendError",
    "SendRestricted",
    "Sent",
    "Target",
]


class _EngineEvent(msgspec.Struct, tag_field="kind", kw_only=True):
    pass


class QrCode(_EngineEvent, tag="qr"):
    """A new QR code to show; it replaces the previous one."""

    code: str
    attempt: int
    max_attempts: int
    expires_at: float


class PairCode(_EngineEvent, tag="pair_code"):
    """A pairing code to type on the phone (phone-number linking)."""

    code: str
    expires_at: float


class Paired(_EngineEvent, tag="paired"):
    """A phone linked the session. ``device`` must be persisted: it resumes the session without a scan."""

    me: Me
    device: dict[str, Any]


class Connected(_EngineEvent, tag="connected"):
    me: Me


class Disconnected(_EngineEvent, tag="disconnected"):
    """Offline; the engine reconnects by itself (``retry_at`` says when it tries next, if known).

    ``reason`` is a stable code; ``detail`` says in words what went wrong when the engine knows
    (``cannot resolve web.whatsapp.com``), for people, not for programs."""

    reason: str
    retry_at: float | None = None
    detail: str | None = None


class LoggedOut(_EngineEvent, tag="logged_out"):
    """The device was unlinked; its keys are gone and a new pairing is needed."""

    reason: str


class Failed(_EngineEvent, tag="failed"):
    """The engine stopped working on the session and will not retry by itself (``detail`` as in
    :class:`Disconnected`)."""

    reason: str
    retry_at: float | None = None
    detail: str | None = None


class SendRestricted(_EngineEvent, tag="send_restricted"):
    """WhatsApp restricts sending until ``until`` (temporary ban, rate or reach-out limit)."""

    reason: str
    until: float


class MessageIn(_EngineEvent, tag="message"):
    """A message in a chat of the session (``from_me`` when sent from the phone itself).

    Every kind arrives here, never dropped: reactions, edits, revokes and poll votes are contents of their own
    kinds (``content.message_id`` names the message they are about); a status post has ``status`` set.
    """

    message_id: str
    chat: str
    sender: str
    content: Content
    timestamp: int
    """Unix seconds."""
    sender_lid: str | None = None
    chat_lid: str | None = None
    """The chat's hidden-user id, for a one-to-one chat whose LID the engine knows."""
    from_me: bool = False
    push_name: str | None = None
    reply_to: str | None = None
    mentions: list[str] = []
    forwarded: bool = False
    view_once: bool = False
    ephemeral: bool = False
    status: bool = False
    """A status (story) post: ``chat`` is ``status@broadcast``."""
    media_ref: dict[str, Any] | None = None
    """For a media message: what the engine needs to download the file (engine-specific)."""


class ReceiptIn(_EngineEvent, tag="receipt"):
    """The recipient's device got (``delivered``), read or played messages we sent."""

    message_ids: list[str]
    chat: str
    status: Literal["delivered", "read", "played"]
    timestamp: int
    chat_lid: str | None = None


PresenceState = Literal["available", "unavailable", "typing", "recording", "paused"]
ChatState = Literal["typing", "recording", "paused"]
Availability = Literal["available", "unavailable"]


class PresenceIn(_EngineEvent, tag="presence"):
    """A contact's presence in a chat the session subscribed to: online or not (``available``,
    ``unavailable``, with ``last_seen`` when WhatsApp tells it), or what they are doing in ``chat`` (``typing``,
    ``recording`` a voice note, ``paused``). Not stored by WhatsApp: missed while offline, never replayed."""

    chat: str
    sender: str
    """Whose presence it is (in a group chat: the member typing)."""
    state: PresenceState
    last_seen: int | None = None
    """Unix seconds, with ``unavailable``."""
    sender_lid: str | None = None
    chat_lid: str | None = None


class IdentityPair(msgspec.Struct, frozen=True, array_like=True):
    """One person's two addresses: the phone-number JID and the hidden-user id (``…@lid``), without devices."""

    phone: str
    lid: str


class IdentityIn(_EngineEvent, tag="identities"):
    """What WhatsApp told about who is who, besides messages: the LID of a number the session looked up or wrote
    to, the members of a group, a history sync's mapping table. The gateway keeps it in the session's map."""

    pairs: list[IdentityPair]


class HistoryChat(msgspec.Struct, frozen=True, kw_only=True):
    """What WhatsApp's history sync says about a chat (None: it did not say)."""

    chat: str
    name: str | None = None
    unread: int | None = None
    """How many of the chat's newest received messages are unread."""
    archived: bool | None = None
    pinned: bool | None = None
    muted_until: int | None = None
    """0: not muted; -1: until unmuted; else unix seconds."""


class HistoryBatch(_EngineEvent, tag="history"):
    """One batch of WhatsApp's history sync after pairing: older messages of the account's chats (also those
    sent from the phone, ``from_me``) and what it says about the chats. Not live: nobody is notified of each
    message. ``final`` with the last batch of a sync."""

    messages: list[MessageIn] = []
    chats: list[HistoryChat] = []
    progress: int | None = None
    """0 to 100, when WhatsApp says."""
    final: bool = False


class ChatSettingIn(_EngineEvent, tag="chat_setting"):
    """The phone or another linked device archived, pinned or muted a chat (or un-): WhatsApp's app state."""

    chat: str
    archived: bool | None = None
    pinned: bool | None = None
    muted_until: int | None = None
    """0: unmuted; -1: until unmuted; else unix seconds."""


class GroupJoinedIn(_EngineEvent, tag="group_joined"):
    """The account is in a new group (``data`` as clients get it; the gateway completes the id forms)."""

    data: GroupJoinedData


class GroupUpdatedIn(_EngineEvent, tag="group_updated"):
    data: GroupUpdatedData


class GroupParticipantsIn(_EngineEvent, tag="group_participants"):
    data: GroupParticipantsData


EngineEvent = (
    QrCode
    | PairCode
    | Paired
    | Connected
    | Disconnected
    | LoggedOut
    | Failed
    | SendRestricted
    | MessageIn
    | ReceiptIn
    | PresenceIn
    | HistoryBatch
    | ChatSettingIn
    | IdentityIn
    | GroupJoinedIn
    | GroupUpdatedIn
    | GroupParticipantsIn
)
EngineSink = Callable[[str, EngineEvent], Awaitable[None]]
EngineBatchSink = Callable[[str, Sequence[EngineEvent]], Awaitable[list[BaseException | None]]]
"""The sink's batch form: several events of one session, handled as if each were passed to the sink in turn (one
failing does not stop the others); returns once all are settled, with each one's outcome: None once it is durably
recorded, else its error. A burst of received messages costs the gateway one call per batch instead of one per
message."""

SINK_BATCH = 32
"""Most received messages of one session an engine hands to the batch sink at once (those already waiting: a
burst after a reconnect, a busy group). Every engine hands over the same number, so that a burst costs the
gateway the same through the simulator as through WhatsApp; the gateway bounds how much of it one turn of its
event loop takes (:mod:`zapgate.sessions.intake`)."""


GroupAction = Literal["add", "remove", "promote", "demote"]


class GroupChanges(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """What ``group.update`` changes (None: unchanged); the picture travels beside it as a file."""

    subject: str | None = None
    description: str | None = None
    announce: bool | None = None
    locked: bool | None = None
    ephemeral: int | None = None


class Sent(msgspec.Struct, frozen=True):
    """WhatsApp took a message: its timestamp, and the chat it went to when that differs from the one asked for.

    ``chat`` is the canonical chat WhatsApp answered for the recipient (a Brazilian mobile number registered
    before the ninth digit, ``5511988887777`` → ``551188887777@s.whatsapp.net``); None when the message went
    to the chat as given."""

    timestamp: int
    """Unix seconds."""
    chat: str | None = None


class PhoneCheck(msgspec.Struct, frozen=True, kw_only=True):
    """WhatsApp's answer for one phone number: is it on WhatsApp, and as which account."""

    phone: str
    """The number asked about (digits)."""
    on_whatsapp: bool
    jid: str | None = None
    """The canonical JID WhatsApp answered (a Brazilian number may lose or gain its ninth digit)."""
    lid: str | None = None
    """The account's hidden-user id (``…@lid``), when WhatsApp gave it."""
    business: bool = False
    business_name: str | None = None
    """The verified business name, for a business account."""


class ContactProfile(msgspec.Struct, frozen=True, kw_only=True):
    """What WhatsApp tells about an account (what its privacy settings let the session see)."""

    jid: str
    lid: str | None = None
    push_name: str | None = None
    """The name the account chose, as the session last saw it."""
    business: bool = False
    business_name: str | None = None
    about: str | None = None
    """The about text (WhatsApp calls it status)."""
    picture_id: str | None = None
    """WhatsApp's id of the current profile picture (None: none, or hidden)."""


class EngineIssue(msgspec.Struct, frozen=True):
    """Something that keeps the engine from working normally, for ``/healthz``."""

    reason: str
    """A stable code, e.g. ``whatsapp_unreachable``."""
    detail: str | None = None
    sessions: int = 0
    """How many sessions it affects."""


class Quote(msgspec.Struct, frozen=True):
    """The message a reply quotes."""

    message_id: str
    sender: str
    text: str | None = None


class Target(msgspec.Struct, frozen=True, kw_only=True):
    """The message a reaction, an edit, a revoke or a vote is about."""

    message_id: str
    from_me: bool
    """The session sent it (else it was received)."""
    sender: str | None = None
    """Its author, when it was received (needed in groups)."""


class MediaFile(msgspec.Struct, frozen=True, kw_only=True):
    """The stored file of a media message being sent: a local path the engine may read."""

    path: str
    mimetype: str
    size: int
    sha256: str
    filename: str | None = None


class Outgoing(msgspec.Struct, frozen=True, kw_only=True):
    """Everything about a message to send besides its content (what the message refers to)."""

    quote: Quote | None = None
    target: Target | None = None
    """For a reaction, edit, revoke or vote: the message it is about."""
    mentions: tuple[str, ...] = ()
    """JIDs of the people mentioned."""
    forwarded: bool = False
    media: MediaFile | None = None


PLAIN = Outgoing()
"""A message that quotes, targets and mentions nothing."""


class SendError(Exception):
    """WhatsApp (or the engine) did not take a message.

    ``retryable`` errors (the session is offline, the engine worker restarts) leave the message queued;
    the others end it as failed with ``code``.
    """

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class DownloadError(Exception):
    """A received message's file could not be fetched. ``retryable`` when a later try may succeed (the session
    is offline, WhatsApp's CDN timed out); not when the file is gone (expired on WhatsApp's servers)."""

    def __init__(self, code: str, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retryable = retryable


class RandomPool:
    """Random bits from ``os.urandom``, drawn 4 KiB at a time: one system call (which also hands the GIL to
    another thread) per 1,024 message ids instead of one per id."""

    __slots__ = ("_buf", "_pos")

    SIZE = 4096

    def __init__(self) -> None:
        self._buf = b""
        self._pos = self.SIZE

    def bits32(self) -> int:
        if self._pos + 4 > len(self._buf):
            self._buf, self._pos = os.urandom(self.SIZE), 0
        pos = self._pos
        self._pos = pos + 4
        return int.from_bytes(self._buf[pos : pos + 4])


class Engine(abc.ABC):
    """A WhatsApp implementation: the real one (neonize) or the simulator."""

    name: ClassVar[str]

    @abc.abstractmethod
    async def start(self, sink: EngineSink, batch_sink: EngineBatchSink | None = None) -> None:
        """Get ready to run sessions; every session event goes to ``sink``, or, when the engine has several of a
        session's events at hand, to ``batch_sink`` (if given) together."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Stop every session (keeping pairings) and release all resources. Must finish in seconds."""

    @abc.abstractmethod
    async def open(
        self, session_id: str, device: dict[str, Any] | None, *, pair_phone: str | None = None, epoch: int = 0
    ) -> None:
        """Start a session: resume ``device`` if given, else begin a pairing (QR, or a code for
        ``pair_phone``). Returns at once; progress arrives at the sink.

        ``epoch`` is the fencing token of the node's lease on the session in a cluster (0 for a single gateway):
        the simulator records it with each connection, so tests can prove two nodes never fight over a device."""

    @abc.abstractmethod
    async def stop(self, session_id: str) -> None:
        """Disconnect the session, keeping its pairing. Idempotent."""

    @abc.abstractmethod
    async def logout(self, session_id: str, device: dict[str, Any] | None) -> None:
        """Unlink the device from the phone (when possible) and delete its keys. Idempotent."""

    @abc.abstractmethod
    async def send(self, session_id: str, message_id: str, to: Jid, content: Content, extra: Outgoing = PLAIN) -> Sent:
        """Send ``content`` with the given WhatsApp message id; return WhatsApp's timestamp (unix seconds) and,
        when WhatsApp knows the recipient under another JID, the chat the message went to.

        Raises :class:`SendError` (``unsupported_content`` for a kind the engine cannot send). Sending the same
        ``message_id`` twice must not make the recipient see two messages (WhatsApp drops a repeated id), which
        is what makes retries after a crash safe.
        """

    @abc.abstractmethod
    async def mark_read(self, session_id: str, chat: Jid, sender: Jid | None, message_ids: list[str]) -> None:
        """Send read receipts for messages received in ``chat``."""

    def health(self) -> list[EngineIssue]:
        """What keeps the engine from working now (empty when nothing does); ``/healthz`` reports it."""
        return []

    async def download(self, session_id: str, media_ref: dict[str, Any], into: Path) -> None:
        """Fetch the file of a received message (its :attr:`MessageIn.media_ref`) into the file ``into``.

        Raises :class:`DownloadError`. The caller hashes and stores the file; the engine only fetches bytes."""
        raise DownloadError("unsupported", f"the {self.name} engine cannot download media yet", retryable=False)

    async def chat_presence(self, session_id: str, chat: Jid, state: ChatState) -> None:
        """Show the session ``typing``, ``recording`` a voice note, or neither (``paused``) in ``chat``.

        Raises :class:`SendError` (``retryable`` when the session is offline)."""
        raise SendError("unsupported", f"the {self.name} engine cannot send presence", retryable=False)

    async def set_presence(self, session_id: str, state: Availability) -> None:
        """Show the account online (``available``) or not to the contacts subscribed to it.

        Raises :class:`SendError`."""
        raise SendError("unsupported", f"the {self.name} engine cannot send presence", retryable=False)

    async def subscribe_presence(self, session_id: str, jid: Jid) -> None:
        """Ask WhatsApp for ``jid``'s presence and typing: :class:`PresenceIn` events follow while the session is
        online. Raises :class:`SendError`."""
        raise SendError("unsupported", f"the {self.name} engine cannot subscribe to presence", retryable=False)

    async def set_chat(
        self,
        session_id: str,
        chat: Jid,
        *,
        archived: bool | None = None,
        pinned: bool | None = None,
        muted_until: int | None = None,
    ) -> None:
        """Archive, pin or mute ``chat`` on WhatsApp (app state: the phone and the other linked devices follow);
        None leaves a setting as it is; ``muted_until`` 0 unmutes, -1 mutes until unmuted. Raises
        :class:`SendError`."""
        raise SendError("unsupported", f"the {self.name} engine cannot change chat settings", retryable=False)

    async def check_contacts(self, session_id: str, phones: list[str]) -> list[PhoneCheck]:
        """Ask WhatsApp which of ``phones`` (digits) are on WhatsApp, one answer per number in order. Raises
        :class:`SendError`."""
        raise SendError("unsupported", f"the {self.name} engine cannot check contacts", retryable=False)

    async def contact_info(self, session_id: str, jid: Jid) -> ContactProfile:
        """What WhatsApp tells about ``jid``. Raises :class:`SendError`."""
        raise SendError("unsupported", f"the {self.name} engine cannot read contact info", retryable=False)

    async def profile_picture(self, session_id: str, jid: Jid, into: Path) -> str | None:
        """Fetch ``jid``'s profile picture (a JPEG or PNG) into the file ``into`` and return its WhatsApp id; None
        when it has none or its owner's privacy hides it. Raises :class:`SendError`."""
        raise SendError("unsupported", f"the {self.name} engine cannot fetch profile pictures", retryable=False)

    async def set_blocked(self, session_id: str, jid: Jid, blocked: bool) -> list[str]:
        """Block or unblock ``jid``; return the blocklist as WhatsApp has it then. Raises :class:`SendError`."""
        raise SendError("unsupported", f"the {self.name} engine cannot block contacts", retryable=False)

    async def blocklist(self, session_id: str) -> list[str]:
        """The JIDs the account blocked. Raises :class:`SendError`."""
        raise SendError("unsupported", f"the {self.name} engine cannot read the blocklist", retryable=False)

    # -- groups (each raises SendError: ``group_not_found``, ``not_group_admin``, ``invite_invalid``,
    # ``not_connected`` (retryable), ``unsupported``)

    async def group_create(
        self, session_id: str, subject: str, participants: list[Jid]
    ) -> tuple[GroupInfo, list[ParticipantResult]]:
        """Create a group; its info and one result per person asked for, in order."""
        raise SendError("unsupported", f"the {self.name} engine has no groups", retryable=False)

    async def groups(self, session_id: str) -> list[GroupInfo]:
        """The groups the account is in (``participants`` may be left out)."""
        raise SendError("unsupported", f"the {self.name} engine has no groups", retryable=False)

    async def group_info(self, session_id: str, group: Jid) -> GroupInfo:
        raise SendError("unsupported", f"the {self.name} engine has no groups", retryable=False)

    async def group_participants(
        self, session_id: str, group: Jid, action: GroupAction, participants: list[Jid]
    ) -> list[ParticipantResult]:
        """Change members; one result per person, in order."""
        raise SendError("unsupported", f"the {self.name} engine has no groups", retryable=False)

    async def group_invite_link(self, session_id: str, group: Jid, reset: bool) -> str:
        """``https://chat.whatsapp.com/CODE``; ``reset`` revokes the current one first."""
        raise SendError("unsupported", f"the {self.name} engine has no groups", retryable=False)

    async def group_join(self, session_id: str, code: str) -> GroupInfo:
        """Join by an invite link's code."""
        raise SendError("unsupported", f"the {self.name} engine has no groups", retryable=False)

    async def group_leave(self, session_id: str, group: Jid) -> None:
        raise SendError("unsupported", f"the {self.name} engine has no groups", retryable=False)

    async def group_update(
        self, session_id: str, group: Jid, changes: GroupChanges, picture: MediaFile | None
    ) -> GroupInfo:
        """Change settings (and the picture, a JPEG or PNG file); answers the group as it is now."""
        raise SendError("unsupported", f"the {self.name} engine has no groups", retryable=False)

    def new_message_id(self) -> str:
        """A fresh message id shaped like WhatsApp Web's (``3EB0`` + 18 upper-case hex digits).

        The first 10 digits count milliseconds (they wrap every 34 years), the other 8 are random: ids made later
        sort later, so the indexes that hold them grow at one end instead of touching a random page for every
        message. Two ids drawn in the same millisecond are the same once in 2**32 pairs (a burst of 256 sends
        decoded in one turn makes 32,640 pairs); the outbox refuses a taken id, and the sender draws again
        (:class:`~zapgate.storage.MessageIdTaken`).
        """
        pool = self.__dict__.get("_id_bits")
        if pool is None:
            pool = self.__dict__["_id_bits"] = RandomPool()
        return f"3EB0{time.time_ns() // 1_000_000 % 16**10:010X}{pool.bits32():08X}"


EngineFactory = Callable[..., Engine]


@runtime_checkable
class Sandbox(Protocol):
    """What an engine that simulates WhatsApp also lets clients do (the ``sim.*`` commands): act as the phone
    or as WhatsApp itself. Only the simulator implements it."""

    async def scan(self, code: str, phone: str, *, owned: Callable[[str], bool], tenant: str | None = None) -> Me:
        """A phone with number ``phone`` scans a QR code (or types a pairing code) of a session ``owned``
        accepts; returns the linked account. With ``tenant``, ``phone`` must be (or become) that tenant's:
        :class:`~zapgate.errors.PhoneTaken` for the echo contact, a contact or another tenant's phone."""
        ...

    async def locate(self, code: str) -> str | None:
        """The id of the session showing QR or pairing code ``code`` (or that showed it), if any: with several
        nodes, a scan runs on the node that runs that session."""
        ...

    async def unlink(self, session_id: str) -> None: ...

    async def set_network(self, session_id: str, online: bool) -> None: ...

    async def receive(
        self,
        session_id: str,
        from_phone: str,
        content: Content,
        reply_to: str | None = None,
        media: MediaFile | None = None,
    ) -> str:
        """A contact writes to the session's number (``media``: the file of a media message); returns the new
        message's id."""
        ...

    async def restrict(self, session_id: str, seconds: float, reason: str) -> float: ...

    async def fail_downloads(self, session_id: str, times: int, reason: str) -> int:
        """The session's next ``times`` downloads of received files fail with ``reason``."""
        ...

    async def contact(
        self, phone: str, *, hide_phone: bool | None, refuse_group_adds: bool | None, tenant: str | None = None
    ) -> SimContactResult:
        """Create the account of ``phone`` if need be and change its privacy settings (None keeps one); with
        ``tenant``, :class:`~zapgate.errors.PhoneTaken` for the echo contact or another tenant's phone."""
        ...

    async def set_profile(
        self,
        phone: str,
        *,
        tenant: str,
        about: str | None = None,
        business_name: str | None = None,
        picture: bool | None = None,
        hide_profile: bool | None = None,
    ) -> None:
        """The owner of ``phone`` (a contact, or a phone of ``tenant``) changes its profile: about text, verified
        business name ("" clears it), a new picture (or none), and whether it hides about and picture from
        everyone."""
        ...
