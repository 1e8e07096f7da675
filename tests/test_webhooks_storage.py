"""The webhook tables on SQLite and PostgreSQL alike: endpoints, the compare-and-set cursor, its fence, leases
shared out between nodes, attempts, dead letters, and the log kept for undelivered events."""

from __future__ import annotations

import time

from zapgate.storage import AttemptRecord, DeadLetterRecord, NewEvent, Storage, WebhookFence, WebhookRecord
from zapgate.storage.webhooks import ATTEMPTS_KEPT

LONG = 60.0


def endpoint(webhook_id: str, tenant: str = "acme", **fields: object) -> WebhookRecord:
    now = time.time()
    return WebhookRecord(
        id=webhook_id,
        tenant=tenant,
        url="https://x.example/",
        secret="whsec_x",
        created_at=now,
        updated_at=now,
        **fields,
    )  # type: ignore[arg-type]


async def emit(storage: Storage, count: int, tenant: str = "acme") -> list[int]:
    stored = await storage.append_events([NewEvent(tenant, "s1", "presence", b"{}")] * count)
    return [e.seq for e in stored]


def attempt(seq: int, outcome: str = "delivered", status: int | None = 200) -> AttemptRecord:
    return AttemptRecord(seq, "presence", 1, outcome, 1.5, time.time(), status, None if status == 200 else "HTTP 500")


async def test_endpoints_start_at_the_newest_seq_and_are_limited_per_tenant(storage: Storage) -> None:
    hooks = storage.webhooks
    seqs = await emit(storage, 3)
    first = await hooks.add(endpoint("wh_a", events=["presence"], sessions=["s1"]), limit=2, from_seq=None)
    assert first is not None and first.cursor == seqs[-1] and first.pending == 0
    second = await hooks.add(endpoint("wh_b"), limit=2, from_seq=seqs[1])
    assert second is not None and second.cursor == seqs[0]
    assert await hooks.add(endpoint("wh_c"), limit=2, from_seq=None) is None
    assert await hooks.add(endpoint("wh_c", tenant="globex"), limit=2, from_seq=None) is not None
    listed = await hooks.of_tenant("acme")
    assert [(h.id, h.events, h.sessions, h.pending) for h in listed] == [
        ("wh_a", ["presence"], ["s1"], 0),
        ("wh_b", [], [], 2),
    ]
    assert await hooks.get("wh_a", "globex") is None, "another tenant's endpoint is not found"
    updated = await hooks.update("acme", "wh_a", {"url": "https://y.example/", "events": [], "enabled": 0})
    assert updated is not None and updated.url == "https://y.example/" and updated.events == [] and not updated.enabled
    assert await hooks.update("globex", "wh_a", {"enabled": 1}) is None
    assert await hooks.delete("acme", "wh_b") and not await hooks.delete("acme", "wh_b")
    assert [h.id for h in await hooks.enabled()] == ["wh_c"]


async def test_the_cursor_moves_only_from_where_the_writer_started(storage: Storage) -> None:
    hooks = storage.webhooks
    await hooks.add(endpoint("wh_a"), limit=10, from_seq=None)
    seqs = await emit(storage, 3)
    assert await hooks.advance("wh_a", expected=0, cursor=seqs[0], attempt=attempt(seqs[0]))
    # A replay moved the cursor meanwhile: the deliverer's next write is refused and changes nothing.
    await hooks.update("acme", "wh_a", {"cursor_seq": 0})
    assert not await hooks.advance("wh_a", expected=seqs[0], cursor=seqs[1], attempt=attempt(seqs[1]))
    record = await hooks.get("wh_a")
    assert record is not None and record.cursor == 0 and record.pending == 3
    assert [a.seq for a in await hooks.attempts("wh_a", 10)] == [seqs[0]]
    # A failure marks it failing; a delivery clears that.
    assert await hooks.record_attempt("wh_a", attempt(seqs[0], "retry", 500), failing=True)
    record = await hooks.get("wh_a")
    assert record is not None and record.failing_since is not None and record.last_status == 500
    assert await hooks.advance("wh_a", expected=0, cursor=seqs[0], attempt=attempt(seqs[0]))
    record = await hooks.get("wh_a")
    assert record is not None and record.failing_since is None and record.last_status == 200
    assert not await hooks.record_attempt("wh_gone", attempt(1), failing=False)


async def test_dead_letters_keep_their_event_and_are_redelivered(storage: Storage) -> None:
    hooks = storage.webhooks
    await hooks.add(endpoint("wh_a"), limit=10, from_seq=None)
    (seq,) = await emit(storage, 1)
    (event,) = await storage.read_events("acme", seq - 1, 1)
    dead = DeadLetterRecord(event, 3, time.time(), 422, "HTTP 422")
    assert await hooks.advance("wh_a", expected=0, cursor=seq, attempt=attempt(seq, "dead", 422), dead=dead)
    await storage.prune(time.time() + 10, event_max_age=0, event_keep=1, record_max_age=0)
    (listed,) = await hooks.dead_letters("wh_a", 10)
    assert listed.event == event and listed.attempts == 3 and listed.status == 422 and not listed.redeliver
    assert await hooks.queue_redelivery("wh_a", seq + 100) == 0
    assert await hooks.queue_redelivery("wh_a", None) == 1
    assert [d.event.seq for d in await hooks.dead_letters("wh_a", 10, redeliver_only=True)] == [seq]
    await hooks.redelivered("wh_a", seq, attempt(seq, "dead", 500), DeadLetterRecord(event, 4, time.time(), 500))
    (again,) = await hooks.dead_letters("wh_a", 10)
    assert again.attempts == 4 and not again.redeliver
    await hooks.redelivered("wh_a", seq, attempt(seq), None)
    assert await hooks.dead_letters("wh_a", 10) == []


async def test_disabling_appends_its_event_once(storage: Storage) -> None:
    hooks = storage.webhooks
    await hooks.add(endpoint("wh_a"), limit=10, from_seq=None)
    notice = NewEvent("acme", "", "webhook.disabled", b'{"webhook":"wh_a"}')
    (stored,) = await hooks.disable("wh_a", "failing", notice)
    assert stored.event == "webhook.disabled" and stored.session == ""
    assert await hooks.disable("wh_a", "failing", notice) == []
    record = await hooks.get("wh_a")
    assert record is not None and not record.enabled and record.disabled_reason == "failing"
    record = await hooks.update("acme", "wh_a", {"enabled": 1})
    assert record is not None and record.enabled and record.disabled_reason is None


async def test_the_log_keeps_what_an_enabled_endpoint_has_not_received(storage: Storage) -> None:
    hooks = storage.webhooks
    await hooks.add(endpoint("wh_a"), limit=10, from_seq=None)
    seqs = await emit(storage, 10)
    late = time.time() + 100
    await storage.prune(late, event_max_age=0, event_keep=1, record_max_age=0)
    assert [e.seq for e in await storage.read_events("acme", 0, 100)] == seqs, "nothing delivered: all kept"
    assert await hooks.advance("wh_a", expected=0, cursor=seqs[5])
    await storage.prune(late, event_max_age=0, event_keep=1, record_max_age=0)
    assert [e.seq for e in await storage.read_events("acme", 0, 100)] == seqs[6:]
    await hooks.update("acme", "wh_a", {"enabled": 0})
    await storage.prune(late, event_max_age=0, event_keep=1, record_max_age=0)
    assert [e.seq for e in await storage.read_events("acme", 0, 100)] == seqs[-1:], "a disabled one keeps nothing"


async def test_attempts_beyond_the_newest_thousand_are_forgotten(storage: Storage) -> None:
    hooks = storage.webhooks
    await hooks.add(endpoint("wh_a"), limit=10, from_seq=None)
    for n in range(ATTEMPTS_KEPT + 5):
        await hooks.record_attempt("wh_a", attempt(n + 1, "retry", 500), failing=True)
    assert await hooks.prune() == 5
    kept = await hooks.attempts("wh_a", ATTEMPTS_KEPT + 10)
    assert len(kept) == ATTEMPTS_KEPT and kept[0].seq == ATTEMPTS_KEPT + 5 and kept[-1].seq == 6


async def test_leases_share_endpoints_between_nodes_and_fence_the_cursor(storage: Storage) -> None:
    hooks = storage.webhooks
    for n in range(4):
        await hooks.add(endpoint(f"wh_{n}"), limit=10, from_seq=None)
    seqs = await emit(storage, 2)
    # Alone, a node takes them all; when a second one is alive, it lets half of them go, and the other takes them.
    await storage.leases.keep("node-a", "a", 1.0, LONG, draining=False)
    assert len(await hooks.keep_leases("node-a", LONG)) == 4
    await storage.leases.keep("node-b", "b", 2.0, LONG, draining=False)
    assert await hooks.keep_leases("node-b", LONG) == {}, "nothing free yet"
    held_a = await hooks.keep_leases("node-a", LONG)
    held_b = await hooks.keep_leases("node-b", LONG)
    assert len(held_a) == 2 and len(held_b) == 2 and not set(held_a) & set(held_b)
    assert await hooks.keep_leases("node-a", LONG) == held_a, "renewed, nothing more taken"
    mine = next(iter(held_a))
    fence_a = WebhookFence("node-a", held_a[mine])
    cursor = (await hooks.get(mine)).cursor  # type: ignore[union-attr]
    assert not await hooks.advance(mine, expected=cursor, cursor=seqs[0], fence=WebhookFence("node-b", 1))
    assert await hooks.advance(mine, expected=cursor, cursor=seqs[0], fence=fence_a)
    # Node a stops renewing: its leases expire and node b takes them, with a new epoch.
    await hooks.keep_leases("node-a", -1.0)
    await storage.leases.keep("node-a", "a", 1.0, -1.0, draining=False)
    taken = await hooks.keep_leases("node-b", LONG)
    assert set(taken) == {f"wh_{n}" for n in range(4)} and taken[mine] == fence_a.epoch + 1
    assert not await hooks.advance(mine, expected=seqs[0], cursor=seqs[1], fence=fence_a), "a is fenced off"
    assert await hooks.advance(mine, expected=seqs[0], cursor=seqs[1], fence=WebhookFence("node-b", taken[mine]))
    # A disabled endpoint's lease is let go.
    await hooks.update("acme", mine, {"enabled": 0})
    assert mine not in await hooks.keep_leases("node-b", LONG)
    await hooks.release_leases("node-b")
    record = await hooks.get(mine)
    assert record is not None and record.node is None
