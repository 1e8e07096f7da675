"""The media table, in the storage contract style: every test body runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import dataclasses

from zapgate.storage import MediaRecord, NewEvent, OutboxItem, SessionRecord, Storage, StoredEvent

SHA_A = "a" * 64
SHA_B = "b" * 64


def upload(
    media_id: str, *, tenant: str = "acme", sha: str = SHA_A, at: float = 100.0, **fields: object
) -> MediaRecord:
    values: dict[str, object] = {
        "id": media_id,
        "tenant": tenant,
        "origin": "upload",
        "status": "ready",
        "created_at": at,
        "used_at": at,
        "sha256": sha,
        "size": 10,
        "mimetype": "image/png",
        "filename": "a.png",
    }
    values.update(fields)
    return MediaRecord(**values)  # type: ignore[arg-type]


def received(media_id: str, *, session_id: str = "ses_1", at: float = 100.0) -> MediaRecord:
    return MediaRecord(
        id=media_id,
        tenant="acme",
        origin="received",
        status="pending",
        created_at=at,
        used_at=at,
        size=10,
        mimetype="image/jpeg",
        session_id=session_id,
        message_id="3A01",
        chat="551100@s.whatsapp.net",
        claimed_sha256=SHA_B,
        media_ref={"direct_path": "/v/x", "media_key": "a2V5"},
        next_attempt_at=at,
    )


def event(name: str) -> list[NewEvent]:
    return [NewEvent("acme", "main", name, b"{}")]


async def test_rows_are_read_back_whole_and_only_by_their_tenant(storage: Storage) -> None:
    row = upload("med_aaaaaaaa", width=64, height=48)
    await storage.media.add(row)
    await storage.media.add(received("med_bbbbbbbb"))
    assert await storage.media.get("med_aaaaaaaa") == row
    assert await storage.media.get("med_aaaaaaaa", "acme") == row
    assert await storage.media.get("med_aaaaaaaa", "other") is None
    assert await storage.media.get("med_nothere") is None
    got = await storage.media.get("med_bbbbbbbb")
    assert got == received("med_bbbbbbbb")  # the engine's handle round-trips


async def test_the_same_upload_again_is_found_by_bytes_name_and_type(storage: Storage) -> None:
    await storage.media.add(upload("med_aaaaaaaa"))
    found = await storage.media.find_upload("acme", SHA_A, "a.png", "image/png", 500.0)
    assert found is not None and found.id == "med_aaaaaaaa" and found.used_at == 500.0
    assert (await storage.media.get("med_aaaaaaaa")).used_at == 500.0  # type: ignore[union-attr]
    assert await storage.media.find_upload("acme", SHA_A, "b.png", "image/png", 500.0) is None
    assert await storage.media.find_upload("acme", SHA_A, "a.png", "image/webp", 500.0) is None
    assert await storage.media.find_upload("acme", SHA_A, None, "image/png", 500.0) is None
    assert await storage.media.find_upload("other", SHA_A, "a.png", "image/png", 500.0) is None
    await storage.media.add(upload("med_cccccccc", filename=None))
    nameless = await storage.media.find_upload("acme", SHA_A, None, "image/png", 500.0)
    assert nameless is not None and nameless.id == "med_cccccccc"


async def test_a_received_file_is_stored_with_its_message_once(storage: Storage) -> None:
    published: list[StoredEvent] = []
    storage.set_event_listener(published.extend)
    row = received("med_aaaaaaaa")
    first = await storage.submit_inbound("ses_1", "3A01", "c", event("message.received"), 1.0, media=row)
    assert first is not None and [e.event for e in published] == ["message.received"]
    again = await storage.submit_inbound(
        "ses_1", "3A01", "c", event("message.received"), 2.0, media=received("med_bbbbbbbb")
    )
    assert again is None  # a repeat of the message: neither its event nor another media row
    assert await storage.media.get("med_bbbbbbbb") is None
    assert [r.id for r in await storage.media.unfinished()] == ["med_aaaaaaaa"]


async def test_a_download_ends_ready_or_failed_with_its_event(storage: Storage) -> None:
    published: list[StoredEvent] = []
    storage.set_event_listener(published.extend)
    await storage.media.add(received("med_aaaaaaaa"))
    await storage.media.add(received("med_bbbbbbbb"))
    assert await storage.media.mark_failed(
        "med_aaaaaaaa",
        reason="cdn_timeout",
        detail="timed out",
        attempts=1,
        next_attempt_at=200.0,
        events=event("media.failed"),
        now=150.0,
    )
    failed = await storage.media.get("med_aaaaaaaa")
    assert failed is not None and (failed.status, failed.reason, failed.attempts, failed.next_attempt_at) == (
        "failed",
        "cdn_timeout",
        1,
        200.0,
    )
    assert {r.id for r in await storage.media.unfinished()} == {"med_aaaaaaaa", "med_bbbbbbbb"}
    assert await storage.media.mark_ready(
        "med_aaaaaaaa",
        sha256=SHA_B,
        size=11,
        mimetype="image/jpeg",
        width=3,
        height=4,
        events=event("media.ready"),
        now=300.0,
    )
    ready = await storage.media.get("med_aaaaaaaa")
    assert ready is not None
    assert (ready.status, ready.sha256, ready.size, ready.attempts, ready.reason, ready.next_attempt_at) == (
        "ready",
        SHA_B,
        11,
        2,
        None,
        None,
    )
    # Ready is final: a late failure or a second success changes nothing and publishes nothing.
    assert not await storage.media.mark_failed(
        "med_aaaaaaaa", reason="x", detail=None, attempts=3, next_attempt_at=None, events=event("media.failed"), now=1
    )
    assert not await storage.media.mark_ready(
        "med_aaaaaaaa",
        sha256=SHA_A,
        size=1,
        mimetype="x/y",
        width=None,
        height=None,
        events=event("media.ready"),
        now=1,
    )
    assert [e.event for e in published] == ["media.failed", "media.ready"]
    # A failure with no retry scheduled is no longer unfinished work.
    await storage.media.mark_failed(
        "med_bbbbbbbb", reason="media_expired", detail=None, attempts=1, next_attempt_at=None, events=[], now=1
    )
    assert await storage.media.unfinished() == []


async def test_retry_now_makes_a_failed_download_pending_again(storage: Storage) -> None:
    await storage.media.add(received("med_aaaaaaaa"))
    await storage.media.mark_failed(
        "med_aaaaaaaa", reason="media_expired", detail=None, attempts=6, next_attempt_at=None, events=[], now=1
    )
    again = await storage.media.retry_now("acme", "med_aaaaaaaa", 400.0)
    assert again is not None and (again.status, again.attempts, again.next_attempt_at, again.reason) == (
        "pending",
        0,
        400.0,
        None,
    )
    assert await storage.media.retry_now("other", "med_aaaaaaaa", 400.0) is None
    await storage.media.add(upload("med_cccccccc"))
    untouched = await storage.media.retry_now("acme", "med_cccccccc", 400.0)
    assert untouched == upload("med_cccccccc")


async def test_retention_spares_files_of_queued_messages_and_reports_blobs(storage: Storage) -> None:
    await storage.media.add(upload("med_old00001", sha=SHA_A, at=10.0))
    await storage.media.add(upload("med_old00002", sha=SHA_A, at=10.0, filename="same-bytes.png"))
    await storage.media.add(upload("med_queued01", sha=SHA_B, at=10.0))
    await storage.media.add(upload("med_fresh001", sha=SHA_B, at=1000.0))
    content = b'{"kind":"image","media":{"id":"med_queued01"}}'
    item = OutboxItem(
        message_id="m1", session_id="s", chat="c", content=content, created_at=20.0, media_id="med_queued01"
    )
    await storage.enqueue_message(item)
    # Accepting the message counts as a use of its file.
    assert (await storage.media.get("med_queued01")).used_at == 20.0  # type: ignore[union-attr]
    assert await storage.media.prune(500.0) == [SHA_A]
    assert await storage.media.get("med_old00001") is None and await storage.media.get("med_old00002") is None
    assert await storage.media.get("med_queued01") is not None  # its message is still queued
    assert await storage.media.referenced(SHA_B) and not await storage.media.referenced(SHA_A)
    assert await storage.media.known_blobs([SHA_A, SHA_B, "c" * 64]) == {SHA_B}
    # Once the message is sent, the file is subject to retention again.
    item.status, item.wa_timestamp = "sent", 30
    await storage.finish_message(item, [], new_contact_at=None)
    assert await storage.media.prune(500.0) == [SHA_B]  # a candidate only: the fresh upload still names it
    assert await storage.media.get("med_queued01") is None
    assert await storage.media.referenced(SHA_B)


async def test_deleting_a_session_deletes_its_received_files(storage: Storage) -> None:
    session = SessionRecord(id="ses_1", tenant="acme", name="main", status="stopped", created_at=1.0, updated_at=1.0)
    await storage.save_session(session)
    await storage.media.add(received("med_aaaaaaaa", session_id="ses_1"))
    await storage.media.add(received("med_bbbbbbbb", session_id="ses_2"))
    await storage.media.add(upload("med_cccccccc"))
    await storage.delete_session(session)
    assert await storage.media.get("med_aaaaaaaa") is None
    assert await storage.media.get("med_bbbbbbbb") is not None and await storage.media.get("med_cccccccc") is not None


def test_records_are_plain_data() -> None:
    assert dataclasses.is_dataclass(MediaRecord)
