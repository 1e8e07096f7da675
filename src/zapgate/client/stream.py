"""The event stream's bookkeeping (pure, no I/O): which events to queue, where to resume, when to catch up.

The client feeds it the ``ready`` frame of every connection, every arriving event and the pages it reads
from the log; the stream decides. Its one promise: what comes out of :meth:`EventStream.pop` is in strictly
increasing ``seq`` order, with nothing repeated and nothing skipped silently (an :class:`EventGap` stands
where the gateway no longer had events).
"""

from __future__ import annotations

import collections
from typing import Literal

from .events import Event, EventGap, EventPage

__all__ = ["EventStream"]


class EventStream:
    """Events accepted for the consumer, and the ``seq`` cursor after which the stream goes on.

    ``cursor`` is the ``seq`` of the last event accepted into the stream (queued or already taken). While
    ``behind``, arriving events are not queued, because the queue is full or the gateway reported a gap;
    ``dropped_max`` is the highest ``seq`` passed over. The consumer then reads ``(cursor, dropped_max]``
    from the log (:meth:`apply_page`) and, once there, arriving events are queued again.
    """

    def __init__(self, cursor: int | None = None, max_pending: int = 10_000) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        self.cursor = cursor
        self.max_pending = max_pending
        self.queue: collections.deque[Event | EventGap] = collections.deque()
        self.behind = False
        self.dropped_max = 0

    def resume_point(self) -> int | None:
        """The ``seq`` to resume after on the next connection (None: start with new events)."""
        if self.cursor is None:
            return None
        # While behind, the consumer reads (cursor, dropped_max] from the log itself: no need to replay it.
        return max(self.cursor, self.dropped_max) if self.behind else self.cursor

    def on_ready(self, resume: Literal["none", "ok", "gap"], last_seq: int) -> None:
        """A connection is ready; ``resume`` and ``last_seq`` are the gateway's answer to :meth:`resume_point`.

        On ``gap`` the gateway replays nothing. When it pruned what this client missed, fall behind: the
        consumer reads what the log still holds. When its log ends before the cursor (its database was
        replaced), what came before is gone: report the gap and go on from its newest event.
        """
        if resume == "none":
            self.cursor = last_seq
        elif resume == "gap":
            point = self.resume_point()
            if point is not None and point <= last_seq:
                self.behind = True
                self.dropped_max = max(self.dropped_max, last_seq)
            else:
                self._restart_after(last_seq)

    def _restart_after(self, last_seq: int) -> None:
        self.queue.append(EventGap(after=self.cursor or 0, last_seq=last_seq))
        self.cursor = last_seq
        self.behind = False
        self.dropped_max = 0

    def accept(self, event: Event) -> bool:
        """Take an arriving event; True when it was queued."""
        if self.cursor is not None and event.seq <= self.cursor:
            return False  # already in the stream (replayed after a resume)
        if self.behind or len(self.queue) >= self.max_pending:
            self.behind = True
            self.dropped_max = max(self.dropped_max, event.seq)
            return False
        self.cursor = event.seq
        self.queue.append(event)
        return True

    def apply_page(self, after: int, page: EventPage) -> None:
        """Take a page of the log read with ``events.fetch(after)`` while behind."""
        if page.gap and after > page.last_seq:
            self._restart_after(page.last_seq)
            return
        if page.gap:
            kept_from = max(page.oldest_seq - 1, 0)
            self.queue.append(EventGap(after=after, last_seq=kept_from))
            self.cursor = kept_from
            return
        for event in page.events:
            if event.seq > (self.cursor or 0):
                self.queue.append(event)
                self.cursor = event.seq
        if not page.events and (self.cursor or 0) < self.dropped_max:
            # The log ends before events this client saw go by: it was replaced, and they are gone.
            self.queue.append(EventGap(after=after, last_seq=self.dropped_max))
            self.cursor = self.dropped_max
        if (self.cursor or 0) >= self.dropped_max:
            self.behind = False

    def pop(self) -> Event | EventGap | None:
        return self.queue.popleft() if self.queue else None
