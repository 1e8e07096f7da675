"""The SDK's event-stream bookkeeping (pure): dedupe by seq, bounded queue, catch-up from the log, gaps."""

from __future__ import annotations

import msgspec
import pytest

from zapgate.client.events import (
    EventGap,
    EventPage,
    MessageReceived,
    SessionDeleted,
    SessionQr,
    UnknownEvent,
    event_from_frame,
    event_to_json,
)
from zapgate.client.stream import EventStream
from zapgate.protocol import Event as EventFrame


def ev(seq: int) -> UnknownEvent:
    return UnknownEvent(event="test.event", seq=seq, session="s", ts=0.0, data={"n": seq})


def drain(stream: EventStream) -> list[int | tuple[int, int]]:
    out: list[int | tuple[int, int]] = []
    while (item := stream.pop()) is not None:
        out.append((item.after, item.last_seq) if isinstance(item, EventGap) else item.seq)
    return out


def page(events: list[int], *, oldest: int = 1, last: int = 0, gap: bool = False) -> EventPage:
    newest = last or max(events, default=0)
    return EventPage(events=[ev(s) for s in events], oldest_seq=oldest, last_seq=newest, gap=gap)


def test_fresh_stream_starts_after_ready_and_drops_repeats() -> None:
    stream = EventStream()
    assert stream.resume_point() is None
    stream.on_ready("none", last_seq=10)
    assert [stream.accept(ev(s)) for s in (9, 10, 11, 12, 12, 11, 13)] == [False, False, True, True, False, False, True]
    assert drain(stream) == [11, 12, 13]
    assert stream.resume_point() == 13


def test_resume_ok_keeps_the_cursor() -> None:
    stream = EventStream(cursor=5)
    stream.on_ready("ok", last_seq=9)
    for s in (4, 5, 6, 7, 8, 9, 7, 10):  # replay, then live, with a repeat in between
        stream.accept(ev(s))
    assert drain(stream) == [6, 7, 8, 9, 10]


def test_full_queue_falls_behind_and_catches_up_from_pages_without_skipping() -> None:
    stream = EventStream(cursor=0, max_pending=3)
    for s in range(1, 11):
        stream.accept(ev(s))
    assert stream.behind and stream.dropped_max == 10 and stream.cursor == 3
    # Behind, the next connection resumes after what went by: the consumer reads the rest from the log.
    assert stream.resume_point() == 10
    assert drain(stream) == [1, 2, 3]
    stream.apply_page(3, page([4, 5, 6, 7]))
    assert stream.behind  # not yet at 10
    stream.accept(ev(11))  # still behind: passed over, remembered
    assert stream.dropped_max == 11
    stream.apply_page(7, page([8, 9, 10, 11]))
    assert not stream.behind
    assert drain(stream) == [4, 5, 6, 7, 8, 9, 10, 11]
    assert [stream.accept(ev(s)) for s in (11, 12)] == [False, True]
    assert drain(stream) == [12]


def test_gap_on_resume_reads_what_the_log_kept_and_reports_the_rest() -> None:
    stream = EventStream(cursor=3)
    stream.on_ready("gap", last_seq=20)  # events up to 15 were pruned
    assert stream.behind
    stream.accept(ev(21))
    stream.apply_page(3, page([], oldest=16, last=21, gap=True))
    stream.apply_page(15, page(list(range(16, 22))))
    assert not stream.behind
    stream.accept(ev(22))
    assert drain(stream) == [(3, 15), 16, 17, 18, 19, 20, 21, 22]


def test_gap_when_the_gateway_log_was_replaced_goes_on_from_its_newest() -> None:
    stream = EventStream(cursor=500)
    stream.on_ready("gap", last_seq=7)
    assert not stream.behind
    stream.accept(ev(8))
    assert drain(stream) == [(500, 7), 8]


def test_log_shorter_than_what_went_by_is_reported_not_awaited_forever() -> None:
    stream = EventStream(cursor=0, max_pending=1)
    for s in (1, 2, 3):
        stream.accept(ev(s))
    drain(stream)
    stream.apply_page(1, page([], last=1))  # the log ends at 1 although 2 and 3 went by
    assert not stream.behind
    assert drain(stream) == [(1, 3)]


def test_max_pending_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_pending"):
        EventStream(max_pending=0)


def test_wire_events_become_typed_and_back() -> None:
    raw = (
        b'{"type":"event","event":"message.received","seq":4,"session":"main","ts":1.5,'
        b'"data":{"message_id":"m1","chat":"1@s.whatsapp.net","from":"1@s.whatsapp.net","from_me":false,"kind":"text","content":{"kind":"text","text":"oi"},"text":"oi","timestamp":7}}'
    )
    frame = msgspec.json.decode(raw, type=EventFrame)
    event = event_from_frame(frame)
    assert isinstance(event, MessageReceived)
    assert event.data.from_ == "1@s.whatsapp.net" and event.data.text == "oi" and not event.data.from_me
    assert msgspec.json.decode(event_to_json(event)) == msgspec.json.decode(raw)

    deleted = event_from_frame(EventFrame(event="session.deleted", seq=5, session="main", data={}, ts=2.0))
    assert isinstance(deleted, SessionDeleted)


def test_unknown_or_malformed_events_do_not_break_the_client() -> None:
    newer = event_from_frame(EventFrame(event="chat.archived", seq=1, session="s", data={"chat": "x"}, ts=0.0))
    assert isinstance(newer, UnknownEvent) and newer.data == {"chat": "x"}
    odd = event_from_frame(EventFrame(event="session.qr", seq=2, session="s", data={"qr": 5}, ts=0.0))
    assert isinstance(odd, UnknownEvent) and not isinstance(odd, SessionQr)
