"""The storage contract: the same test bodies against every backend (SQLite, and PostgreSQL when it runs).

This file is the definition of correct storage. A new backend passes it; a new operation gets its tests here
(or in a file of its own that uses the same ``storage`` fixture from ``conftest.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zapgate.storage import NewEvent, OutboxItem, SessionRecord, Storage, StoredEvent, open_storage


def events(tenant: str, n: int, name: str = "x.y") -> list[NewEvent]:
    return [NewEvent(tenant, "main", name, b'{"n":%d}' % i) for i in range(n)]


async def test_sessions_with_their_events(storage: Storage) -> None:
    record = SessionRecord(
        id="ses_1", tenant="acme", name="main", status="stopped", created_at=1.0, updated_at=1.0, me={"phone": "1"}
    )
    await storage.add_session(record)
    stored = await storage.save_session(record, events("acme", 1, "session.status"))
    assert [(e.seq, e.event) for e in stored] == [(1, "session.status")]
    record.status, record.device, record.want_running = "connected", {"jid": "x"}, True
    await storage.save_session(record)
    assert await storage.list_sessions() == [record]
    same_name = SessionRecord(id="ses_2", tenant="acme", name="main", status="stopped", created_at=2, updated_at=2)
    with pytest.raises(Exception):  # noqa: B017 - each driver has its own IntegrityError
        await storage.add_session(same_name)
    await storage.delete_session(record, events("acme", 1, "session.deleted"))
    assert await storage.list_sessions() == []
    assert (await storage.event_bounds("acme")) == (1, 2)
    # A late save of a deleted session (a command or engine event that raced the delete) changes nothing.
    assert await storage.save_session(record, events("acme", 1, "session.status")) == []
    assert await storage.list_sessions() == []
    assert (await storage.event_bounds("acme")) == (1, 2)


async def test_sequence_numbers_are_per_tenant_gap_free_and_never_reused(storage: Storage) -> None:
    published: list[StoredEvent] = []
    storage.set_event_listener(published.extend)
    await asyncio.gather(*(storage.append_events(events(t, 3)) for t in ["a", "b", "a", "b", "a"]))
    by_tenant = {t: [e.seq for e in published if e.tenant == t] for t in "ab"}
    assert by_tenant == {"a": list(range(1, 10)), "b": list(range(1, 7))}
    assert [e.seq for e in await storage.read_events("a", 4, 3)] == [5, 6, 7]
    removed = await storage.prune(1e12, event_max_age=0, event_keep=0, record_max_age=1e12)
    assert removed == 15 and await storage.event_bounds("a") == (0, 0)
    again = await storage.append_events(events("a", 1))
    assert again[0].seq == 10  # pruning everything does not reset the counter


async def test_reading_events_filtered_by_session_and_name(storage: Storage) -> None:
    await storage.append_events(
        [
            NewEvent("acme", session, name, b"{}")
            for session in ("s1", "s2", "s3")
            for name in ("session.status", "message.received")
        ]
        + [NewEvent("other", "s1", "message.received", b"{}")]
    )

    async def read(after: int, limit: int, **only: set[str]) -> list[tuple[int, str, str]]:
        found = await storage.read_events("acme", after, limit, **only)
        return [(e.seq, e.session, e.event) for e in found]

    assert await read(0, 10, sessions={"s2"}) == [(3, "s2", "session.status"), (4, "s2", "message.received")]
    assert await read(0, 10, events={"message.received"}) == [
        (2, "s1", "message.received"),
        (4, "s2", "message.received"),
        (6, "s3", "message.received"),
    ]
    both = await read(0, 10, sessions={"s1", "s3"}, events={"session.status"})
    assert both == [(1, "s1", "session.status"), (5, "s3", "session.status")]
    assert await read(1, 1, sessions={"s1", "s3"}, events={"session.status"}) == [(5, "s3", "session.status")]
    assert await read(0, 10, sessions=set()) == []  # nothing wanted, nothing read
    assert len(await read(0, 10)) == 6


async def test_a_failing_write_does_not_undo_the_others_in_its_group(storage: Storage) -> None:
    item = OutboxItem(message_id="m1", session_id="s", chat="c", content=b'{"kind":"text","text":"t"}', created_at=1.0)

    async def duplicate() -> None:
        await storage.enqueue_message(
            OutboxItem(message_id="m1", session_id="s", chat="c", content=b'{"kind":"text","text":"t"}', created_at=1.0)
        )

    results = await asyncio.gather(
        storage.enqueue_message(item), duplicate(), storage.append_events(events("a", 2)), return_exceptions=True
    )
    assert isinstance(results[1], Exception)  # the same message id twice
    assert [m.message_id for m in await storage.pending_messages("s")] == ["m1"]
    assert (await storage.event_bounds("a")) == (1, 2)


async def test_outbox_idempotency_order_and_outcomes(storage: Storage) -> None:
    def item(mid: str, key: str | None = None) -> OutboxItem:
        return OutboxItem(
            message_id=mid,
            session_id="s",
            chat="c@s.whatsapp.net",
            content=b'{"kind":"text","text":"%s"}' % mid.encode(),
            created_at=1.0,
            idempotency_key=key,
            fingerprint="f",
        )

    first, created = await storage.enqueue_message(item("m1", "k"))
    assert created and first.position > 0
    again, created = await storage.enqueue_message(item("m2", "k"))
    assert not created and again.message_id == "m1"
    await storage.enqueue_message(item("m3"))
    await storage.enqueue_message(item("m4"))
    assert [m.message_id for m in await storage.pending_messages("s")] == ["m1", "m3", "m4"]
    assert (await storage.find_message("s", "k")).message_id == "m1"  # type: ignore[union-attr]
    first.status, first.wa_timestamp = "sent", 42
    await storage.finish_message(first, events("t", 1, "message.status"), new_contact_at=5.0)
    assert [m.message_id for m in await storage.pending_messages("s")] == ["m3", "m4"]
    known, recent = await storage.load_contacts("s", 0.0)
    assert known == {"c@s.whatsapp.net"} and recent == [5.0]

    def failed(it: OutboxItem) -> NewEvent:
        return NewEvent("t", "main", "message.status", it.message_id.encode())

    await storage.enqueue_message(item("m5"))
    gone = await storage.fail_pending("s", "logged_out", failed, keep={"m3"})  # m3 is with the engine
    assert [(m.message_id, m.status, m.reason) for m in gone] == [
        ("m4", "failed", "logged_out"),
        ("m5", "failed", "logged_out"),
    ]
    assert [m.message_id for m in await storage.pending_messages("s")] == ["m3"]
    assert [e.data for e in await storage.read_events("t", 1, 10)] == [b"m4", b"m5"]


async def test_inbound_is_recorded_once(storage: Storage) -> None:
    assert await storage.submit_inbound("s", "w1", "c", events("t", 1, "message.received"), 1.0)
    assert await storage.submit_inbound("s", "w1", "c", events("t", 1, "message.received"), 2.0) is None
    assert await storage.known_inbound("s", ["w1", "w2"]) == {"w1"}
    assert (await storage.event_bounds("t")) == (1, 1)
    known, recent = await storage.load_contacts("s", 0.0)
    assert known == {"c"} and recent == []


async def test_inbound_arriving_together_is_written_together_and_each_once(storage: Storage) -> None:
    """Received messages asked for at the same time share one batched write: each still gets its own events,
    in order, or None when it was received before (earlier, or earlier in the same batch)."""
    assert await storage.submit_inbound("s", "old", "c1", events("t", 1, "message.received"), 1.0)
    published: list[StoredEvent] = []
    storage.set_event_listener(published.extend)
    calls = [
        storage.submit_inbound("s", "old", "c1", events("t", 1, "message.received"), 2.0),
        *(storage.submit_inbound("s", f"n{i}", f"c{i % 3}", events("t", 2, "message.received"), 2.0) for i in range(5)),
        storage.submit_inbound("s", "n0", "c0", events("t", 1, "message.received"), 2.0),
        storage.submit_inbound("s2", "n0", "c9", events("u", 1, "message.received"), 2.0),
    ]
    results = await asyncio.gather(*calls)
    assert results[0] is None and results[6] is None
    assert [[e.seq for e in r] for r in results[1:6] if r is not None] == [[2, 3], [4, 5], [6, 7], [8, 9], [10, 11]]
    assert results[7] is not None and [(e.tenant, e.seq) for e in results[7]] == [("u", 1)]
    assert [(e.tenant, e.seq) for e in published] == [*(("t", n) for n in range(2, 12)), ("u", 1)]
    assert await storage.known_inbound("s", ["old", *(f"n{i}" for i in range(5))]) == {
        "old",
        "n0",
        "n1",
        "n2",
        "n3",
        "n4",
    }
    known, _ = await storage.load_contacts("s", 0.0)
    assert known == {"c0", "c1", "c2"}


async def test_received_messages_remembered_before_migration_12_are_known_after(storage_url: str) -> None:
    """Migration 12 rebuilds ``inbound`` (rows in the order they arrive, found by a unique index on the session
    and message id): what a database remembered before it is known the same after it, on both backends. A repeat
    is still dropped, each record keeps its chat, author and kind, the same id in another session stays apart,
    and old rows are still pruned by age."""
    from .storage_support import storage_written_before

    def write_old(conn: Any) -> tuple[None, list[object]]:
        conn.executemany(
            "INSERT INTO inbound (session_id, message_id, received_at, chat, sender, kind) VALUES (?, ?, ?, ?, ?, ?)",
            [
                ("s", "w1", 100.0, "c1", "a1", "text"),
                ("s", "w2", 200.0, "c2", None, "image"),
                ("s2", "w1", 300.0, "c9", "a9", "text"),
            ],
        )
        return None, []

    storage = await storage_written_before(storage_url, 11, write_old)
    try:
        assert await storage.known_inbound("s", ["w1", "w2", "w3"]) == {"w1", "w2"}
        records = await storage.inbound_records("s", ["w1", "w2", "w3"])
        assert {(r.message_id, r.chat, r.sender, r.kind) for r in records.values()} == {
            ("w1", "c1", "a1", "text"),
            ("w2", "c2", None, "image"),
        }
        assert await storage.submit_inbound("s", "w1", "c1", events("t", 1, "message.received"), 400.0) is None
        assert await storage.submit_inbound("s", "w3", "c1", events("t", 1, "message.received"), 400.0)
        assert await storage.submit_inbound("s2", "w2", "c9", events("u", 1, "message.received"), 400.0)
        assert await storage.known_inbound("s2", ["w1", "w2", "w3"]) == {"w1", "w2"}
        await storage.prune(450.0, event_max_age=1e9, event_keep=1_000_000, record_max_age=200.0)
        assert await storage.known_inbound("s", ["w1", "w2", "w3"]) == {"w3"}  # received before 250 are gone
        assert await storage.known_inbound("s2", ["w1", "w2"]) == {"w1", "w2"}
    finally:
        await storage.close()


async def test_two_nodes_on_one_database_share_one_sequence(storage_url: str) -> None:
    """Two storages on one database (two gateway nodes) appending for the same tenant at the same time: the
    union of their sequence numbers is 1..N, without gaps or duplicates, each node's in increasing order."""
    if storage_url.startswith("sqlite"):
        pytest.skip("several nodes share PostgreSQL, not a SQLite file")
    nodes = [open_storage(storage_url) for _ in range(2)]
    for node in nodes:
        await node.open()
    try:
        seen: list[list[int]] = [[], []]
        for node, bucket in zip(nodes, seen, strict=True):
            node.set_event_listener(lambda batch, bucket=bucket: bucket.extend(e.seq for e in batch))

        async def burst(node: Storage) -> None:
            await asyncio.gather(*(node.append_events(events("acme", 2)) for _ in range(50)))

        await asyncio.gather(*(burst(node) for node in nodes))
        assert all(bucket == sorted(bucket) for bucket in seen)
        assert sorted(seen[0] + seen[1]) == list(range(1, 201))
    finally:
        for node in nodes:
            await node.close()


async def test_the_newest_event_of_a_kind_for_a_session(storage: Storage) -> None:
    await storage.append_events(
        [
            NewEvent("acme", "main", "session.qr", b'{"n":1}'),
            NewEvent("acme", "other", "session.qr", b'{"n":2}'),
            NewEvent("acme", "main", "session.status", b'{"n":3}'),
        ]
    )
    assert await storage.newest_event("acme", "main", "session.qr") == b'{"n":1}'
    assert await storage.newest_event("acme", "main", "session.pair_code") is None
    assert await storage.newest_event("else", "main", "session.qr") is None


async def test_the_writer_counts_its_commits_writes_and_time(storage: Storage) -> None:
    """``Database.stats`` (``/metrics``): a group commit, each request of a batched write counted, and the writer's
    wall time with the COMMIT's share of it."""
    stats = storage.db.stats
    groups, writes, busy = stats.groups, stats.writes, stats.busy_s
    queued = [storage.submit_inbound("ses_stats", f"M{i}", "5511988880000@s.whatsapp.net", [], 1.0) for i in range(5)]
    for future in queued:
        await future
    assert stats.groups > groups and stats.writes >= writes + 5
    assert stats.busy_s > busy and 0 < stats.commit_s <= stats.busy_s
