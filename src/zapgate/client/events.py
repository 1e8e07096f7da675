"""Typed events for SDK users (pure, no I/O).

Every wire event becomes one frozen struct carrying the envelope (``event``, ``seq``, ``session``, ``ts``)
and its payload as ``data``, typed with the payload struct from :mod:`zapgate.protocol`. An event name this
SDK does not know yet becomes an :class:`UnknownEvent` with the raw ``data``, so a newer gateway never
breaks an older client. :class:`EventGap` is not a wire event: the SDK yields it when the gateway could not
replay what the client missed.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..protocol import (
    ChatUpdatedData,
    GroupJoinedData,
    GroupParticipantsData,
    GroupUpdatedData,
    HistorySyncedData,
    MediaFailedData,
    MediaReadyData,
    MessageEditedData,
    MessageReactionData,
    MessageReceivedData,
    MessageRevokedData,
    MessageStatusData,
    PollVoteData,
    PresenceData,
    SessionDeletedData,
    SessionPairCodeData,
    SessionQrData,
    SessionRestrictedData,
    SessionStatusData,
    StatusReceivedData,
    WebhookDisabledData,
    encode,
)
from ..protocol import Event as EventFrame

__all__ = [
    "ChatUpdated",
    "ChatUpdatedData",
    "Event",
    "EventGap",
    "EventPage",
    "GroupJoined",
    "GroupParticipantsChanged",
    "GroupUpdated",
    "HistorySynced",
    "HistorySyncedData",
    "MediaFailed",
    "MediaReady",
    "MessageEdited",
    "MessageReaction",
    "MessageReceived",
    "MessageRevoked",
    "MessageStatus",
    "PollVote",
    "Presence",
    "PresenceData",
    "SessionDeleted",
    "SessionDeletedData",
    "SessionPairCode",
    "SessionQr",
    "SessionRestricted",
    "SessionRestrictedData",
    "SessionStatus",
    "StatusReceived",
    "UnknownEvent",
    "WebhookDisabled",
    "event_from_frame",
    "event_to_json",
]


class Event(msgspec.Struct, frozen=True, kw_only=True):
    """One event of the tenant's stream. ``seq`` increases strictly; ``ts`` is the gateway's epoch time."""

    event: str
    seq: int
    session: str
    ts: float


class SessionStatus(Event, frozen=True, kw_only=True):
    """``session.status``: the session changed status (``data.status``, with ``reason`` and ``me``)."""

    data: SessionStatusData


class SessionQr(Event, frozen=True, kw_only=True):
    """``session.qr``: a new QR code to scan; it replaces the previous one and expires at ``data.expires_at``."""

    data: SessionQrData


class SessionPairCode(Event, frozen=True, kw_only=True):
    """``session.pair_code``: the code to type on the phone (pairing by phone number)."""

    data: SessionPairCodeData


class SessionRestricted(Event, frozen=True, kw_only=True):
    """``session.restricted``: WhatsApp limited sending; queued messages wait until ``data.until``."""

    data: SessionRestrictedData


class SessionDeleted(Event, frozen=True, kw_only=True):
    """``session.deleted``: the session and everything stored for it are gone."""

    data: SessionDeletedData


class MessageStatus(Event, frozen=True, kw_only=True):
    """``message.status``: a sent message moved to sent, delivered, read, played or failed."""

    data: MessageStatusData


class MessageReceived(Event, frozen=True, kw_only=True):
    """``message.received``: a message arrived in a chat of the session (``data.from_me`` for the phone's own);
    ``data.kind`` and ``data.content`` say what it is, ``data.text`` the text or caption if any."""

    data: MessageReceivedData


class MessageReaction(Event, frozen=True, kw_only=True):
    """``message.reaction``: someone reacted to ``data.message_id`` (an empty ``data.emoji`` removes it)."""

    data: MessageReactionData


class MessageEdited(Event, frozen=True, kw_only=True):
    """``message.edited``: ``data.message_id`` was edited; ``data.content`` is its new text."""

    data: MessageEditedData


class MessageRevoked(Event, frozen=True, kw_only=True):
    """``message.revoked``: ``data.message_id`` was deleted for everyone."""

    data: MessageRevokedData


class PollVote(Event, frozen=True, kw_only=True):
    """``poll.vote``: someone voted in the poll ``data.message_id``; ``data.options`` is their current choice."""

    data: PollVoteData


class Presence(Event, frozen=True, kw_only=True):
    """``presence``: a contact the session subscribed to came online or went offline (``data.last_seen``), or is
    typing or recording in ``data.chat``."""

    data: PresenceData


class StatusReceived(Event, frozen=True, kw_only=True):
    """``status.received``: a contact posted a status (not a chat message)."""

    data: StatusReceivedData


class MediaReady(Event, frozen=True, kw_only=True):
    """``media.ready``: a received file is stored; fetch it with ``download(data.media_id)``."""

    data: MediaReadyData


class MediaFailed(Event, frozen=True, kw_only=True):
    """``media.failed``: a received file could not be downloaded (``data.reason``); with ``data.retry_at`` the
    gateway tries again by itself, without it ``retry_media`` does."""

    data: MediaFailedData


class WebhookDisabled(Event, frozen=True, kw_only=True):
    """``webhook.disabled``: the gateway stopped delivering to a webhook endpoint (``data.reason``: ``failing``
    or ``gone``); ``update_webhook(id, enabled=True)`` resumes it at its cursor."""

    data: WebhookDisabledData


class ChatUpdated(Event, frozen=True, kw_only=True):
    """``chat.updated``: a chat was archived, pinned or muted (or un-); ``data`` is the chat as it is now."""

    data: ChatUpdatedData


class HistorySynced(Event, frozen=True, kw_only=True):
    """``history.synced``: a batch of WhatsApp's history sync was stored (read it with ``history()``)."""

    data: HistorySyncedData


class GroupJoined(Event, frozen=True, kw_only=True):
    """``group.joined``: the account is in a new group (``data.reason``: created, invited, added by ``data.by``)."""

    data: GroupJoinedData


class GroupUpdated(Event, frozen=True, kw_only=True):
    """``group.updated``: settings of ``data.group`` changed; only the changed ones are set."""

    data: GroupUpdatedData


class GroupParticipantsChanged(Event, frozen=True, kw_only=True):
    """``group.participants``: members of ``data.group`` were added, joined, removed, left, promoted or demoted."""

    data: GroupParticipantsData


class UnknownEvent(Event, frozen=True, kw_only=True):
    """An event this version of the SDK has no type for; ``data`` is the decoded JSON."""

    data: Any


class EventGap(msgspec.Struct, frozen=True, kw_only=True):
    """Not a wire event: the gateway could not replay everything after ``after``.

    Yielded by :meth:`zapgate.client.Client.events` in place of the events it could not deliver: those with
    ``seq`` greater than ``after`` that the gateway no longer keeps (older than its retention) or never had
    (its database was replaced). The stream goes on with events newer than ``last_seq``. Treat it as "my
    picture of the world may be stale": re-read what you depend on (``sessions()``, your own records).
    """

    after: int
    """The last ``seq`` this client had received."""
    last_seq: int
    """The gateway's newest ``seq`` when it reported the gap; the stream continues after it."""


class EventPage(msgspec.Struct, frozen=True, kw_only=True):
    """A page of the event log from :meth:`zapgate.client.Client.fetch_events`."""

    events: list[Event]
    oldest_seq: int
    """The oldest ``seq`` the gateway still keeps (0 when the log is empty)."""
    last_seq: int
    """The newest ``seq`` when the page was read."""
    gap: bool
    """True when ``after`` is outside what the gateway keeps: the page is empty and events were lost."""


_TYPES: dict[str, tuple[type[Event], type[Any]]] = {
    "session.status": (SessionStatus, SessionStatusData),
    "session.qr": (SessionQr, SessionQrData),
    "session.pair_code": (SessionPairCode, SessionPairCodeData),
    "session.restricted": (SessionRestricted, SessionRestrictedData),
    "session.deleted": (SessionDeleted, SessionDeletedData),
    "message.status": (MessageStatus, MessageStatusData),
    "message.received": (MessageReceived, MessageReceivedData),
    "message.reaction": (MessageReaction, MessageReactionData),
    "message.edited": (MessageEdited, MessageEditedData),
    "message.revoked": (MessageRevoked, MessageRevokedData),
    "poll.vote": (PollVote, PollVoteData),
    "status.received": (StatusReceived, StatusReceivedData),
    "presence": (Presence, PresenceData),
    "media.ready": (MediaReady, MediaReadyData),
    "media.failed": (MediaFailed, MediaFailedData),
    "webhook.disabled": (WebhookDisabled, WebhookDisabledData),
    "chat.updated": (ChatUpdated, ChatUpdatedData),
    "history.synced": (HistorySynced, HistorySyncedData),
    "group.joined": (GroupJoined, GroupJoinedData),
    "group.updated": (GroupUpdated, GroupUpdatedData),
    "group.participants": (GroupParticipantsChanged, GroupParticipantsData),
}


def event_from_frame(frame: EventFrame) -> Event:
    """The typed event for a decoded wire frame; a payload that does not fit its type becomes an
    :class:`UnknownEvent` rather than an error, so one odd event never stops a client."""
    known = _TYPES.get(frame.event)
    if known is not None:
        cls, data_type = known
        make: Any = cls  # every class in _TYPES has a typed ``data`` field
        try:
            data = msgspec.convert(frame.data, data_type)
        except msgspec.ValidationError:
            pass
        else:
            typed: Event = make(event=frame.event, seq=frame.seq, session=frame.session, ts=frame.ts, data=data)
            return typed
    return UnknownEvent(event=frame.event, seq=frame.seq, session=frame.session, ts=frame.ts, data=frame.data)


def event_to_json(event: Event) -> bytes:
    """The event as the gateway sent it: one JSON object, the wire frame."""
    data = getattr(event, "data", None)
    return encode(EventFrame(event=event.event, seq=event.seq, session=event.session, data=data, ts=event.ts))
