"""Chats and message history in storage, on SQLite and PostgreSQL: messages stored once with their chat's last
message and unread count, paging newest first (also within one second), reading, settings with their events,
a history batch in one transaction, and deleting a session removing both."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from zapgate.storage import MUTED_FOREVER, ChatSettings, NewEvent, SessionRecord, Storage, StoredMessage

BOB = "5521988880002@s.whatsapp.net"
CAROL = "5531977770003@s.whatsapp.net"


def message(
    chat: str, n: int, *, from_me: bool = False, ts: int = 1000, read: bool = False, origin: str = "live"
) -> StoredMessage:
    return StoredMessage(
        chat=chat,
        message_id=f"M{n:04d}",
        from_me=from_me,
        timestamp=ts,
        kind="text",
        content=b'{"kind":"text","text":"m%d"}' % n,
        sender=None if from_me else chat,
        text=f"m{n}",
        push_name=None if from_me else "Bob",
        origin=origin,
        read=from_me or read,
    )


async def store(storage: Storage, *messages: StoredMessage) -> None:
    for m in messages:
        await storage.submit_inbound("ses_1", m.message_id, m.chat, [], 1.0, message=m)


async def test_messages_chats_paging_and_reading(storage: Storage) -> None:
    await store(storage, message(BOB, 1, ts=1000), message(BOB, 2, ts=1000), message(CAROL, 3, ts=999))
    await store(storage, message(BOB, 2, ts=1000))  # a repeat is not stored twice (nor counted)
    chats = await storage.chats.list_chats("ses_1", limit=10)
    assert chats is not None
    assert [(c.chat, c.unread, c.name) for c in chats] == [(BOB, 2, "Bob"), (CAROL, 1, "Bob")]
    assert chats[0].last is not None and chats[0].last.message_id == "M0002"  # same second: the later one
    page = await storage.chats.list_chats("ses_1", limit=1, before=BOB)
    assert page is not None and [c.chat for c in page] == [CAROL]
    assert await storage.chats.list_chats("ses_1", limit=1, before="nobody@s.whatsapp.net") is None

    history = await storage.chats.history("ses_1", BOB, limit=10)
    assert history is not None and [m.message_id for m in history] == ["M0002", "M0001"]
    older = await storage.chats.history("ses_1", BOB, limit=10, before="M0002")
    assert older is not None and [m.message_id for m in older] == ["M0001"]
    assert await storage.chats.history("ses_1", BOB, limit=10, before="nope") is None

    assert [m.message_id for m in await storage.chats.unread("ses_1", BOB)] == ["M0001", "M0002"]
    assert await storage.chats.mark_read("ses_1", BOB, ["M0001", "M0001", "unknown"]) == 1
    assert await storage.chats.mark_read("ses_1", BOB, ["M0001"]) == 0
    bob = await storage.chats.chat("ses_1", BOB)
    assert bob is not None and bob.unread == 1


async def test_one_batch_over_many_sessions_keeps_each_sessions_history_apart(storage: Storage) -> None:
    """Received messages queued together are written together, across sessions: the same chat and message id in
    two sessions are two messages, a repeat within the batch is stored once, and each session's chat counts only
    its own unread messages."""
    first, second, again = message(BOB, 1, ts=1000), message(BOB, 2, ts=1001), message(BOB, 1, ts=1000)
    queued = [
        storage.submit_inbound("ses_1", first.message_id, BOB, [], 1.0, message=first),
        storage.submit_inbound("ses_2", again.message_id, BOB, [], 1.0, message=again),
        storage.submit_inbound("ses_2", second.message_id, BOB, [], 1.0, message=second),
        storage.submit_inbound("ses_2", "M0002-repeat", BOB, [], 1.0, message=message(BOB, 2, ts=1001)),
    ]
    for future in queued:
        await future
    one, two = await storage.chats.chat("ses_1", BOB), await storage.chats.chat("ses_2", BOB)
    assert one is not None and one.unread == 1 and one.last is not None and one.last.message_id == "M0001"
    assert two is not None and two.unread == 2 and two.last is not None and two.last.message_id == "M0002"
    history = await storage.chats.history("ses_2", BOB, limit=10)
    assert history is not None and [m.message_id for m in history] == ["M0002", "M0001"]


async def test_sent_messages_and_settings_with_events(storage: Storage) -> None:
    published: list[str] = []
    storage.set_event_listener(lambda batch: published.extend(e.event for e in batch))
    await store(storage, message(BOB, 1, ts=1000), message(BOB, 2, ts=1001, from_me=True))
    bob = await storage.chats.chat("ses_1", BOB)
    assert bob is not None and bob.unread == 1 and bob.last is not None and bob.last.from_me

    def updated(record: object) -> list[NewEvent]:
        return [NewEvent("acme", "main", "chat.updated", b"{}")]

    changed = await storage.chats.set_chat(
        "ses_1", ChatSettings(chat=BOB, archived=True, pinned=True, muted_until=MUTED_FOREVER), updated
    )
    assert (changed.archived, changed.pinned, changed.muted_until) == (True, True, MUTED_FOREVER)
    assert published[-1] == "chat.updated"
    only_archived = await storage.chats.list_chats("ses_1", limit=10, archived=True)
    assert only_archived is not None and [c.chat for c in only_archived] == [BOB]
    fresh = await storage.chats.set_chat("ses_1", ChatSettings(chat=CAROL, pinned=True), updated)
    assert fresh.last is None and fresh.last_timestamp == 0 and fresh.pinned
    unarchived = await storage.chats.list_chats("ses_1", limit=10, archived=False)
    assert unarchived is not None and [c.chat for c in unarchived] == [CAROL]


async def test_a_history_batch_in_one_transaction(storage: Storage) -> None:
    await store(storage, message(BOB, 1, ts=2000))
    batch = [message(BOB, n, ts=1000 + n, read=True, origin="history") for n in range(1, 1201)]
    counts: list[int] = []

    def events(stored: int) -> list[NewEvent]:
        counts.append(stored)
        return [NewEvent("acme", "main", "history.synced", b"{}")]

    stored, appended = await storage.chats.apply_history(
        "ses_1", batch, [ChatSettings(chat=BOB, unread=2, name="Bob B")], events
    )
    assert stored == 1199 and counts == [1199] and [e.event for e in appended] == ["history.synced"]
    bob = await storage.chats.chat("ses_1", BOB)
    assert bob is not None and bob.unread == 2 and bob.name == "Bob B"
    assert bob.last is not None and bob.last.message_id == "M1200"  # the newest by WhatsApp's time
    unread = await storage.chats.unread("ses_1", BOB)
    assert [m.message_id for m in unread] == ["M1199", "M1200"]
    page = await storage.chats.history("ses_1", BOB, limit=500)
    assert page is not None and len(page) == 500 and page[0].origin == "history"


async def test_deleting_a_session_deletes_its_chats_and_messages(storage: Storage) -> None:
    record = SessionRecord(id="ses_1", tenant="acme", name="main", status="stopped", created_at=1.0, updated_at=1.0)
    await storage.add_session(record)
    await store(storage, message(BOB, 1))
    await storage.delete_session(record)
    assert await storage.chats.list_chats("ses_1", limit=10) == []
    assert await storage.chats.history("ses_1", BOB, limit=10) == []


def test_what_a_sent_message_leaves_in_the_history() -> None:
    from zapgate.sessions.chats import outbound_entry
    from zapgate.storage import OutboxItem

    def sent(content: bytes) -> OutboxItem:
        return OutboxItem("3EB0A", "ses_1", BOB, content, 1.0, status="sent", wa_timestamp=1000)

    entry = outbound_entry(sent(b'{"kind":"text","text":"oi"}'))
    assert entry is not None and (entry.kind, entry.text, entry.from_me, entry.timestamp) == ("text", "oi", True, 1000)
    assert outbound_entry(sent(b'{"kind":"reaction","message_id":"3A01","emoji":"x"}')) is None
    assert outbound_entry(sent(b"not json")) is None  # the send's outcome is stored all the same


async def test_an_edit_changes_the_stored_text_or_caption(storage: Storage) -> None:
    await store(storage, message(BOB, 1))
    photo = StoredMessage(
        chat=BOB,
        message_id="M0002",
        from_me=False,
        timestamp=1001,
        kind="image",
        content=b'{"kind":"image","media":{"id":"med_x"},"caption":"old"}',
        text="old",
    )
    await store(storage, photo)
    await storage.submit_inbound("ses_1", "E1", BOB, [], 2.0, edit=("M0001", "m1, edited"))
    await storage.submit_inbound("ses_1", "E2", BOB, [], 2.0, edit=("M0002", "new caption"))
    await storage.submit_inbound("ses_1", "E3", BOB, [], 2.0, edit=("M9999", "nothing to edit"))
    history = await storage.chats.history("ses_1", BOB, limit=10)
    assert history is not None
    assert [(m.message_id, m.text) for m in history] == [("M0002", "new caption"), ("M0001", "m1, edited")]
    assert b'"caption":"new caption"' in history[0].content and b'"media"' in history[0].content


async def test_history_written_before_chat_numbers_reads_the_same_after(storage_url: str) -> None:
    """Migration 11 keys the history by a number per chat: a database written with the layout before it (the
    session id and the chat's address on every message) reads the same after it, on both backends: each
    session's chats with their last message and unread count, pages newest first, unread messages, a message
    whose chat had no row, and a repeat of a stored message is still not stored twice."""
    from .storage_support import storage_written_before

    rows = [  # session, chat, id, from_me, timestamp, is_read, stored_at
        ("ses_1", BOB, "M0001", 0, 1000, 1, 1.0),
        ("ses_1", BOB, "M0002", 0, 1001, 0, 2.0),
        ("ses_1", BOB, "M0003", 1, 1001, 1, 3.0),
        ("ses_1", CAROL, "M0004", 0, 999, 0, 4.0),
        ("ses_2", BOB, "M0001", 0, 1002, 0, 5.0),  # the same chat and id in another session
    ]

    def write_old(conn: Any) -> tuple[None, list[object]]:
        conn.executemany(
            "INSERT INTO messages (session_id, chat, message_id, sender, from_me, timestamp, kind, text, content, "
            "origin, is_read, stored_at) VALUES (?, ?, ?, ?, ?, ?, 'text', ?, ?, 'live', ?, ?)",
            [
                (s, c, i, None if me else c, me, ts, f"text {i}", b'{"kind":"text","text":"%s"}' % i.encode(), r, at)
                for s, c, i, me, ts, r, at in rows
            ],
        )
        conn.executemany(  # CAROL's chat in ses_1 has no row: the migration makes one
            "INSERT INTO chats (session_id, chat, name, last_message_id, last_timestamp, last_stored_at, unread, "
            "pinned) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [("ses_1", BOB, "Bob", "M0003", 1001, 3.0, 1, 7), ("ses_2", BOB, None, "M0001", 1002, 5.0, 1, 0)],
        )
        return None, []

    storage = await storage_written_before(storage_url, 10, write_old)
    try:
        chats = await storage.chats.list_chats("ses_1", limit=10)
        assert chats is not None
        assert [(c.chat, c.name, c.unread, c.pinned) for c in chats] == [(BOB, "Bob", 1, True), (CAROL, None, 0, False)]
        assert chats[0].last is not None and (chats[0].last.message_id, chats[0].last.text) == ("M0003", "text M0003")
        history = await storage.chats.history("ses_1", BOB, limit=10)
        assert history is not None and [m.message_id for m in history] == ["M0003", "M0002", "M0001"]
        assert history[0].from_me and history[0].chat == BOB and history[1].sender == BOB
        older = await storage.chats.history("ses_1", BOB, limit=1, before="M0002")
        assert older is not None and [m.message_id for m in older] == ["M0001"]
        carol = await storage.chats.history("ses_1", CAROL, limit=10)
        assert carol is not None and [(m.message_id, m.chat) for m in carol] == [("M0004", CAROL)]
        assert [m.message_id for m in await storage.chats.unread("ses_1", BOB)] == ["M0002"]
        other = await storage.chats.chat("ses_2", BOB)
        assert other is not None and other.unread == 1 and other.last is not None
        assert other.last.message_id == "M0001" and other.last.timestamp == 1002

        await store(storage, message(BOB, 2, ts=1001), message(BOB, 5, ts=1003))  # M0002 again, and a new one
        bob = await storage.chats.chat("ses_1", BOB)
        assert bob is not None and bob.unread == 2 and bob.last is not None and bob.last.message_id == "M0005"
        assert await storage.chats.mark_read("ses_1", BOB, ["M0002", "M0005"]) == 2
        assert await storage.chats.unread("ses_1", BOB) == []
    finally:
        await storage.close()


def test_a_chats_unread_messages_are_read_through_their_own_index(tmp_path: Path) -> None:
    """Listing a chat's unread messages reads ``messages_unread`` (the unread ones), not the chat's whole history:
    SQLite, asked for them in order, chose ``messages_chat_time``, which walks every message of the chat."""
    from zapgate.storage.chats import _UNREAD
    from zapgate.storage.schema import migrations_for

    conn = sqlite3.connect(tmp_path / "plan.db")
    for script in migrations_for("sqlite"):
        conn.executescript(script)
    plan = " ".join(str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {_UNREAD}", (1,)))
    assert "messages_unread" in plan, plan
    conn.close()
