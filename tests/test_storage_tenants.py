"""The storage of tenants, tokens, quotas and the audit log, on SQLite and PostgreSQL (the ``storage`` fixture)."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from zapgate.errors import QuotaExceeded, TenantExists
from zapgate.storage import (
    MessageIdTaken,
    NewEvent,
    OutboxItem,
    SessionRecord,
    Storage,
    TenantQuotas,
    TokenRecord,
)
from zapgate.storage.tenants import counted_queued, queued_usage

NO_LIMITS = TenantQuotas(0, 0, 0)


def session(name: str, tenant: str = "acme") -> SessionRecord:
    return SessionRecord(
        id=f"ses_{tenant}_{name}", tenant=tenant, name=name, status="stopped", created_at=1.0, updated_at=1.0
    )


def message(n: int, session_id: str, size: int = 10) -> OutboxItem:
    return OutboxItem(
        message_id=f"m{session_id}{n}",
        session_id=session_id,
        chat="1@s.whatsapp.net",
        content=b"x" * size,
        created_at=1.0,
    )


async def test_tokens_keep_scopes_sessions_and_expiry(storage: Storage) -> None:
    tokens = storage.tenants
    record = TokenRecord(
        id="a1b2c3d4e5f6",
        tenant="acme",
        label="ci",
        created_at=1.0,
        scopes=("send",),
        sessions=("main", "sales"),
        expires_at=50.0,
    )
    await tokens.add_token(record, b"\x01" * 32)
    assert await tokens.find_token("a1b2c3d4e5f6") == (record, b"\x01" * 32, False)
    assert await tokens.list_tokens("acme") == [record]
    assert (await tokens.get_tenant("acme")) is not None  # a token's tenant exists from then on
    assert await tokens.refused_tokens(["a1b2c3d4e5f6", "nope"], now=10.0) == {"nope": "unknown"}
    assert await tokens.refused_tokens(["a1b2c3d4e5f6"], now=50.0) == {"a1b2c3d4e5f6": "expired"}
    revoked = await tokens.revoke_token("a1b2c3d4e5f6", 2.0)
    assert revoked is not None and revoked.revoked_at == 2.0
    assert await tokens.revoke_token("a1b2c3d4e5f6", 3.0) is None
    found = await tokens.find_token("a1b2c3d4e5f6")
    assert found is not None and found[0].revoked_at == 2.0
    assert await tokens.refused_tokens(["a1b2c3d4e5f6"], now=10.0) == {"a1b2c3d4e5f6": "revoked"}


async def test_tenants_created_listed_disabled_and_changed(storage: Storage) -> None:
    tenants = storage.tenants
    created = await tenants.create_tenant("acme", 5.0, TenantQuotas(max_sessions=3))
    assert created.quotas == TenantQuotas(3, None, None) and created.disabled_at is None
    with pytest.raises(TenantExists):
        await tenants.create_tenant("acme", 6.0)
    await tenants.create_tenant("beta", 6.0)
    assert [t.name for t in await tenants.list_tenants()] == ["acme", "beta"]
    await tenants.add_token(TokenRecord(id="0123456789ab", tenant="acme", label="", created_at=7.0), b"\x02" * 32)
    assert await tenants.refused_tokens(["0123456789ab"], now=8.0) == {}

    disabled = await tenants.update_tenant("acme", disabled_at=9.0)
    assert disabled is not None and disabled.disabled_at == 9.0
    assert await tenants.disabled_tenants() == {"acme"}
    assert await tenants.refused_tokens(["0123456789ab"], now=10.0) == {"0123456789ab": "tenant_disabled"}
    found = await tenants.find_token("0123456789ab")
    assert found is not None and found[2] is True  # its tenant is disabled

    changed = await tenants.update_tenant(
        "acme", disabled_at=None, quotas={"max_sessions": None, "max_queued_bytes": 9}
    )
    assert changed is not None and changed.disabled_at is None and changed.quotas == TenantQuotas(None, None, 9)
    assert await tenants.update_tenant("nope", disabled_at=None) is None


async def test_session_quota_counts_the_tenants_sessions_only(storage: Storage) -> None:
    await storage.tenants.create_tenant("acme", 1.0, TenantQuotas(max_sessions=2))
    await storage.tenants.create_tenant("beta", 1.0)
    defaults = TenantQuotas(max_sessions=1, max_queued_messages=0, max_queued_bytes=0)
    await storage.add_session(session("a"), quotas=defaults)
    await storage.add_session(session("b"), quotas=defaults)  # acme's own quota (2) replaces the default (1)
    with pytest.raises(QuotaExceeded) as exc:
        await storage.add_session(session("c"), quotas=defaults)
    assert (exc.value.quota, exc.value.limit) == ("max_sessions", 2)
    await storage.add_session(session("a", "beta"), quotas=defaults)  # beta: the default, 1
    with pytest.raises(QuotaExceeded):
        await storage.create_session(session("b", "beta"), quotas=defaults)
    assert [s.name for s in await storage.list_sessions()] == ["a", "b", "a"]
    assert await storage.tenants.usage("acme") == (2, 0, 0)


async def test_queue_quotas_count_queued_messages_and_their_bytes(storage: Storage) -> None:
    await storage.tenants.create_tenant("acme", 1.0, TenantQuotas(max_queued_messages=3, max_queued_bytes=100))
    await storage.add_session(session("a"))
    await storage.add_session(session("b"))
    quota = ("acme", NO_LIMITS)
    await storage.enqueue_message(message(1, "ses_acme_a", 30), quota=quota)
    await storage.enqueue_message(message(2, "ses_acme_b", 30), quota=quota)
    with pytest.raises(QuotaExceeded) as exc:
        await storage.enqueue_message(message(3, "ses_acme_a", 41), quota=quota)  # 101 bytes
    assert (exc.value.quota, exc.value.limit) == ("max_queued_bytes", 100)
    await storage.enqueue_message(message(4, "ses_acme_a", 40), quota=quota)
    with pytest.raises(QuotaExceeded) as exc:
        await storage.enqueue_message(message(5, "ses_acme_a", 1), quota=quota)
    assert (exc.value.quota, exc.value.limit) == ("max_queued_messages", 3)
    assert await storage.tenants.usage("acme") == (2, 3, 100)
    assert await storage.outbox_item("mses_acme_a3") is None  # refused: nothing stored

    # A sent message leaves the queue and frees its place.
    sent = await storage.outbox_item("mses_acme_a1")
    assert sent is not None
    sent.status = "sent"
    await storage.finish_message(sent, [], new_contact_at=None)
    assert await storage.tenants.usage("acme") == (2, 2, 70)
    await storage.enqueue_message(message(6, "ses_acme_a", 30), quota=quota)


async def test_queue_quota_holds_under_concurrent_sends(storage: Storage) -> None:
    await storage.tenants.create_tenant("acme", 1.0, TenantQuotas(max_queued_messages=5))
    await storage.add_session(session("a"))
    results = await asyncio.gather(
        *(storage.enqueue_message(message(n, "ses_acme_a"), quota=("acme", NO_LIMITS)) for n in range(20)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, BaseException) for r in results) == 5
    assert all(isinstance(r, QuotaExceeded) for r in results if isinstance(r, BaseException))
    assert len(await storage.pending_messages("ses_acme_a")) == 5


async def test_a_taken_message_id_stores_nothing_and_counts_nothing(storage: Storage) -> None:
    # Two ids drawn in the same millisecond can meet (Engine.new_message_id): the second message is refused with
    # MessageIdTaken, and neither the outbox nor the tenant's queue counts it; the first one is untouched.
    await storage.tenants.create_tenant("acme", 1.0, TenantQuotas(max_queued_messages=10, max_queued_bytes=1000))
    await storage.add_session(session("a"))
    await storage.add_session(session("b"))
    quota = ("acme", NO_LIMITS)
    first = message(1, "ses_acme_a", 30)
    await storage.enqueue_message(first, quota=quota)
    taken = OutboxItem(
        message_id=first.message_id, session_id="ses_acme_b", chat="2@s.whatsapp.net", content=b"y" * 50, created_at=2.0
    )
    with pytest.raises(MessageIdTaken) as exc:
        await storage.enqueue_message(taken, quota=quota)
    assert exc.value.message_id == first.message_id
    assert await storage.tenants.usage("acme") == (2, 1, 30)
    kept = await storage.outbox_item(first.message_id)
    assert kept is not None and (kept.session_id, kept.content) == ("ses_acme_a", b"x" * 30)
    assert await storage.pending_messages("ses_acme_b") == []

    # Queued together with others (one batch, one reservation for the tenant): only the taken one is left out.
    groups = storage.db.stats.groups
    results = await asyncio.gather(
        storage.enqueue_message(message(2, "ses_acme_a", 10), quota=quota),
        storage.enqueue_message(dataclasses.replace(taken, created_at=3.0), quota=quota),
        storage.enqueue_message(message(3, "ses_acme_b", 20), quota=quota),
        return_exceptions=True,
    )
    assert storage.db.stats.groups == groups + 1  # the three were written by one batch, in one group commit
    assert isinstance(results[1], MessageIdTaken), results
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException), results
    assert await storage.tenants.usage("acme") == (2, 3, 60)
    assert [m.message_id for m in await storage.pending_messages("ses_acme_b")] == ["mses_acme_b3"]


async def test_a_hundred_sends_and_their_outcomes_in_one_batch_each(storage: Storage) -> None:
    """A batch of sends is stored by a few multi-row statements (64, 32 and 4 rows for 100): each message keeps
    its place in the queue, an id taken before or earlier in the same batch stores nothing, and the outcomes of a
    batch (a second outcome of one message among them, applied after its first) leave the tenant's queue
    counting exactly what is still queued."""
    await storage.tenants.create_tenant("acme", 1.0, TenantQuotas(max_queued_messages=1000, max_queued_bytes=10**6))
    await storage.add_session(session("a"))
    quota = ("acme", NO_LIMITS)
    await storage.enqueue_message(message(0, "ses_acme_a", 5), quota=quota)
    items = [message(n, "ses_acme_a", 10 + n) for n in range(1, 99)]
    items.insert(40, message(0, "ses_acme_a", 7))  # taken before this batch
    items.insert(70, dataclasses.replace(items[20], content=b"z" * 3))  # taken earlier in this batch
    assert len(items) == 100
    groups = storage.db.stats.groups
    results = await asyncio.gather(*(storage.enqueue_message(i, quota=quota) for i in items), return_exceptions=True)
    assert storage.db.stats.groups == groups + 1
    assert [n for n, r in enumerate(results) if isinstance(r, BaseException)] == [40, 70]
    assert isinstance(results[40], MessageIdTaken) and isinstance(results[70], MessageIdTaken)
    stored = [r[0] for r in results if not isinstance(r, BaseException)]
    queued = await storage.pending_messages("ses_acme_a")
    assert [m.message_id for m in queued] == ["mses_acme_a0", *(m.message_id for m in stored)]
    assert [m.position for m in queued[1:]] == [m.position for m in stored]
    kept = await storage.outbox_item(items[20].message_id)
    assert kept is not None and kept.content == items[20].content  # the first with that id, not the repeat
    assert await storage.tenants.usage("acme") == (1, 99, 5 + sum(10 + n for n in range(1, 99)))

    outcomes = []
    for n, item in enumerate(stored):
        item.status, item.reason = ("sent", None) if n % 3 else ("failed", "not_on_whatsapp")
        item.wa_timestamp = 1_700_000_000 + n if n % 3 else None
        outcomes.append(storage.finish_message(dataclasses.replace(item), [], new_contact_at=None))
    again = dataclasses.replace(stored[1], status="failed", reason="server_error", wa_timestamp=None)
    outcomes.append(storage.finish_message(again, [], new_contact_at=None))  # after its first, in the same batch
    groups = storage.db.stats.groups
    await asyncio.gather(*outcomes)
    assert storage.db.stats.groups == groups + 1
    for n, item in enumerate(stored):
        row = await storage.outbox_item(item.message_id)
        assert row is not None
        if n == 1:
            assert (row.status, row.reason, row.wa_timestamp) == ("failed", "server_error", None)
        elif n % 3:
            assert (row.status, row.reason, row.wa_timestamp) == ("sent", None, 1_700_000_000 + n)
        else:
            assert (row.status, row.reason, row.wa_timestamp) == ("failed", "not_on_whatsapp", None)
    assert [m.message_id for m in await storage.pending_messages("ses_acme_a")] == ["mses_acme_a0"]
    assert await storage.tenants.usage("acme") == (1, 1, 5)


async def test_audit_log_pages_and_filters_by_tenant(storage: Storage) -> None:
    audit = storage.tenants
    for n in range(5):
        await audit.audit(
            ts=float(n),
            token_id="a1b2c3d4e5f6",
            tenant="acme" if n % 2 == 0 else "beta",
            session="main" if n else None,
            command="session.start",
            outcome="ok" if n != 3 else "quota_exceeded",
        )
    newest = await audit.list_audit(tenant=None, after=None, limit=2)
    assert [e.ts for e in newest] == [3.0, 4.0] and newest[0].outcome == "quota_exceeded"
    first = await audit.list_audit(tenant=None, after=0, limit=2)
    assert [e.ts for e in first] == [0.0, 1.0] and first[0].session is None
    rest = await audit.list_audit(tenant=None, after=first[-1].id, limit=10)
    assert [e.ts for e in rest] == [2.0, 3.0, 4.0]
    assert [e.ts for e in await audit.list_audit(tenant="acme", after=None, limit=10)] == [0.0, 2.0, 4.0]
    # Paging back: the page before the newest one, and the rest of it.
    older = await audit.list_audit(tenant=None, after=None, before=newest[0].id, limit=2)
    assert [e.ts for e in older] == [1.0, 2.0]
    assert [e.ts for e in await audit.list_audit(tenant=None, after=None, before=older[0].id, limit=2)] == [0.0]
    assert [e.ts for e in await audit.list_audit(tenant="beta", after=None, before=newest[0].id, limit=5)] == [1.0]
    assert [e.ts for e in await audit.list_audit(tenant=None, after=first[0].id, before=newest[0].id, limit=5)] == [
        1.0,
        2.0,
    ]
    assert await audit.prune_audit(2.0) == 2
    assert [e.ts for e in await audit.list_audit(tenant=None, after=None, limit=10)] == [2.0, 3.0, 4.0]


async def test_queue_counters_follow_every_change_of_the_queue(storage: Storage) -> None:
    """The counters the quota reads equal what the outbox holds after sends, failures and deletions."""
    await storage.tenants.create_tenant("acme", 1.0)
    for name in ("a", "b"):
        await storage.add_session(session(name))
    quota = ("acme", NO_LIMITS)
    for n in range(6):
        await storage.enqueue_message(message(n, "ses_acme_a", 10 + n), quota=quota)
    for n in range(3):
        await storage.enqueue_message(message(n, "ses_acme_b", 100), quota=quota)

    async def both() -> tuple[tuple[int, int], tuple[int, int]]:
        counters = await storage.db.read(lambda conn: queued_usage(conn, "acme"))
        counted = await storage.db.read(lambda conn: counted_queued(conn, "acme"))
        return counters, counted

    counters, counted = await both()
    assert counters == counted == (9, 10 + 11 + 12 + 13 + 14 + 15 + 300)

    sent = await storage.outbox_item("mses_acme_a0")
    assert sent is not None
    sent.status = "sent"
    await storage.finish_message(sent, [], new_contact_at=None)
    await storage.finish_message(sent, [], new_contact_at=None)  # a second outcome changes no count
    counters, counted = await both()
    assert counters == counted == (8, 11 + 12 + 13 + 14 + 15 + 300)

    failed = await storage.fail_pending("ses_acme_a", "logged_out", events_for, keep={"mses_acme_a5"})
    assert len(failed) == 4
    counters, counted = await both()
    assert counters == counted == (4, 15 + 300)

    record = session("b")
    await storage.delete_session(record)
    counters, counted = await both()
    assert counters == counted == (1, 15)


def events_for(item: OutboxItem) -> NewEvent:
    return NewEvent("acme", "a", "message.status", b'{"status":"failed"}')
