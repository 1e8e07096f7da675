"""What the simulated WhatsApp server accepts, and how the echo contact answers (pure).

The rules are WhatsApp's, as seen from a linked device: you edit only your own messages, within 15 minutes;
you delete for everyone only your own; you vote only in a poll you received, for options it has, no more of
them than it allows. A refusal is a :class:`~zapgate.engines.base.SendError` code.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from ...protocol.content import Content, Edit, Poll, Reaction, Revoke, Text, Vote, target_of

__all__ = ["EDIT_WINDOW_S", "Earlier", "echo_answer", "refusal", "target_of"]

EDIT_WINDOW_S = 15 * 60
"""WhatsApp lets the author edit a message for 15 minutes."""


@dataclass(frozen=True, slots=True)
class Earlier:
    """A message the server accepted before: who sent it to whom, when, saying what."""

    sender: str
    recipient: str
    timestamp: int
    content: Content


def refusal(content: Content, sender: str, recipient: str, target: Earlier | None, now: int) -> str | None:
    """Why the server refuses ``content`` from ``sender`` to ``recipient`` (a code), or None to accept it."""
    match content:
        case Edit():
            if target is None or target.sender != sender or target.recipient != recipient:
                return "edit_refused"
            if now - target.timestamp > EDIT_WINDOW_S:
                return "edit_window_passed"
            if not isinstance(target.content, Text):
                return "edit_refused"  # the simulator edits texts; captions would follow the same rule
        case Revoke():
            if target is None or target.sender != sender or target.recipient != recipient:
                return "revoke_refused"
        case Vote():
            if target is None or not isinstance(target.content, Poll) or target.recipient != sender:
                return "vote_refused"
            poll = target.content
            if any(option not in poll.options for option in content.options):
                return "vote_refused"
            if poll.selectable and len(set(content.options)) > poll.selectable:
                return "vote_refused"
    return None


_decoder = msgspec.json.Decoder(Content)


def decode_content(raw: bytes) -> Content:
    content: Content = _decoder.decode(raw)
    return content


def echo_answer(content: Content) -> Content | None:
    """What the echo contact sends back: the same text, location or contacts (as a reply); a vote for the first
    option of a poll; nothing for reactions, edits, revokes and votes."""
    match content:
        case Poll():
            return None  # answered with a vote, see engine
        case Reaction() | Edit() | Revoke() | Vote():
            return None
    return content
