"""The frames waiting to be written to one client, bounded in frames and in bytes (pure, no I/O).

Events and replies share the buffer under different rules, because the server can regenerate one and not
the other:

- **Events** are stored before they are sent, so a connection never needs to hold many of them: they may
  fill only half of the buffer (:meth:`SendBuffer.fits_event`); beyond that the connection reads the rest
  from the event log once the client has taken what is queued. A burst the server makes itself (thousands
  of ``message.status`` events when a session with a long queue is deleted) thus never closes a client that
  reads, and never costs more than half the buffer.
- **Replies** exist only here. They may use the whole buffer (:meth:`SendBuffer.fits_reply`); one that does
  not fit means the client sends commands without reading the answers, and the connection is closed (4429).
  The reader stops taking commands once the buffer is three quarters full (:meth:`SendBuffer.accepts_commands`),
  so a client that pipelines and reads is slowed down by TCP rather than closed.
"""

from __future__ import annotations

import collections

__all__ = ["SendBuffer", "frame_size"]


def frame_size(frame: str) -> int:
    """Bytes of a text frame on the wire (UTF-8)."""
    return len(frame) if frame.isascii() else len(frame.encode())


class SendBuffer:
    __slots__ = ("_frames", "bytes", "max_bytes", "max_frames")

    def __init__(self, max_frames: int, max_bytes: int) -> None:
        self.max_frames = max_frames
        self.max_bytes = max_bytes
        # A deque allocates a block of 64 slots (about 0.75 KiB): an idle connection, whose queue is empty, holds
        # none; one is made when a frame is queued and dropped when the queue is drained.
        self._frames: collections.deque[tuple[str, int]] | tuple[()] = ()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._frames)

    def __bool__(self) -> bool:
        return bool(self._frames)

    def _fits(self, size: int, frames: int, max_bytes: int) -> bool:
        return not self._frames or (len(self._frames) < frames and self.bytes + size <= max_bytes)

    def fits_event(self, size: int) -> bool:
        """An event of ``size`` bytes fits in the events' half (an empty buffer takes anything)."""
        return self._fits(size, max(1, self.max_frames // 2), self.max_bytes // 2)

    def has_room_for_events(self) -> bool:
        return len(self._frames) < max(1, self.max_frames // 2) and self.bytes < self.max_bytes // 2

    def fits_reply(self, size: int) -> bool:
        return self._fits(size, self.max_frames, self.max_bytes)

    def accepts_commands(self) -> bool:
        """Below three quarters: the reader may take another command."""
        return len(self._frames) < max(1, self.max_frames * 3 // 4) and self.bytes < self.max_bytes * 3 // 4

    def event_room(self) -> int:
        """How many more events could fit by count (at least 1)."""
        return max(1, self.max_frames // 2 - len(self._frames))

    def push(self, frame: str, size: int) -> None:
        frames = self._frames
        if not isinstance(frames, collections.deque):
            frames = self._frames = collections.deque()
        frames.append((frame, size))
        self.bytes += size

    def pop(self) -> str:
        frames = self._frames
        if not isinstance(frames, collections.deque):
            raise IndexError("pop from an empty send buffer")
        frame, size = frames.popleft()
        self.bytes -= size
        if not frames:
            self._frames = ()
        return frame

    def pop_many(self, max_bytes: int) -> list[str]:
        """The oldest queued frames, at least one, up to ``max_bytes`` in all."""
        frames = self._frames
        if not isinstance(frames, collections.deque):
            raise IndexError("pop from an empty send buffer")
        out: list[str] = []
        taken = 0
        while frames and (not out or taken + frames[0][1] <= max_bytes):
            frame, size = frames.popleft()
            out.append(frame)
            taken += size
        self.bytes -= taken
        if not frames:
            self._frames = ()
        return out

    def clear(self) -> None:
        self._frames = ()
        self.bytes = 0
