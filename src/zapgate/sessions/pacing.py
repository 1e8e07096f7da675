"""Anti-ban pacing of outgoing messages (pure; time is passed in, the caller sleeps).

WhatsApp publishes no limits for linked devices. The defaults follow what gateway users report and the
official Cloud API's own per-recipient pair rate (see ``docs/delivery.md``): at least 1 s plus up to 1 s of
random jitter between two sends of a session, at least 3 s between two sends to the same chat, at most 30
first messages to new contacts per rolling 24 h, and a full pause while WhatsApp reports a temporary ban or a
send restriction. Pauses apply even when pacing is disabled: they are WhatsApp's orders, not ours.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["DAY", "Pacer", "PacingPolicy"]

DAY = 86400.0


@dataclass(frozen=True, slots=True)
class PacingPolicy:
    enabled: bool = True
    interval: float = 1.0
    jitter: float = 1.0
    recipient_interval: float = 3.0
    new_contacts_per_day: int = 30
    window: float = DAY


class Pacer:
    """Decides when the next message of one session may go out."""

    def __init__(
        self,
        policy: PacingPolicy,
        *,
        rng: random.Random | None = None,
        new_contact_times: Iterable[float] = (),
    ) -> None:
        self.policy = policy
        self._rng = rng or random.Random()
        self._next_send_at = 0.0
        self._next_chat_at: dict[str, float] = {}
        self._new_contacts: deque[float] = deque(sorted(new_contact_times))
        self.paused_until: float | None = None
        self.paused_reason: str | None = None

    def ready_at(self, chat: str, *, new_contact: bool, now: float) -> float:
        """Earliest time a message to ``chat`` may be sent (``now`` when it may go at once)."""
        at = now
        if self.paused_until is not None:
            if self.paused_until > now:
                at = self.paused_until
            else:
                self.paused_until = self.paused_reason = None
        if not self.policy.enabled:
            return at
        at = max(at, self._next_send_at, self._next_chat_at.get(chat, 0.0))
        if new_contact and self.policy.new_contacts_per_day >= 0:
            self._forget_old(now)
            if len(self._new_contacts) >= self.policy.new_contacts_per_day:
                oldest = self._new_contacts[0] if self._new_contacts else now
                at = max(at, oldest + self.policy.window)
        return at

    def record_send(self, chat: str, *, new_contact: bool, now: float) -> None:
        """Account for a message handed to WhatsApp at ``now``: :meth:`started`, plus :meth:`new_contact_taken`
        when it went to a new contact."""
        if new_contact:
            self.new_contact_taken(now)
        self.started(chat, now=now)

    def new_contact_taken(self, now: float) -> None:
        """A first message to a new contact went out at ``now`` (it counts towards the daily limit)."""
        self._new_contacts.append(now)

    def started(self, chat: str, *, now: float) -> None:
        """A send to ``chat`` started at ``now``: the session's and the chat's intervals run from here."""
        if not self.policy.enabled:
            return
        self._next_send_at = now + self.policy.interval + self._rng.uniform(0, self.policy.jitter)
        self._next_chat_at[chat] = now + self.policy.recipient_interval
        if len(self._next_chat_at) > 4096:  # keep the map to chats that still constrain us
            self._next_chat_at = {c: t for c, t in self._next_chat_at.items() if t > now}

    def pause(self, until: float, reason: str) -> None:
        """Hold every send until ``until`` (a temporary ban or a send restriction)."""
        if self.paused_until is None or until > self.paused_until:
            self.paused_until = until
            self.paused_reason = reason

    def new_contacts_in_window(self, now: float) -> int:
        self._forget_old(now)
        return len(self._new_contacts)

    def _forget_old(self, now: float) -> None:
        horizon = now - self.policy.window
        while self._new_contacts and self._new_contacts[0] <= horizon:
            self._new_contacts.popleft()
