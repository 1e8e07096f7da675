"""The lease contract (docs/scaling.md), on SQLite and PostgreSQL: who holds a session, and fencing.

A lease is taken only when free or expired by the database's clock; every take raises the epoch; a write that
carries a stale fence is refused and changes nothing. Expiry is made deterministic with negative lease times
(a lease renewed for -1 s is expired at once), never by sleeping.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zapgate.storage import (
    Fence,
    LeaseLost,
    NewEvent,
    OutboxItem,
    SessionExists,
    SessionRecord,
    Storage,
    StoredEvent,
    open_storage,
)

LONG = 600.0


def record(session_id: str, name: str | None = None, *, want_running: bool = False) -> SessionRecord:
    return SessionRecord(
        id=session_id,
        tenant="acme",
        name=name or session_id,
        status="stopped",
        created_at=1.0,
        updated_at=1.0,
        want_running=want_running,
    )


def event(n: int = 0) -> NewEvent:
    return NewEvent("acme", "main", "x.y", b'{"n":%d}' % n)


async def test_a_new_session_is_created_with_its_lease(storage: Storage) -> None:
    fence = await storage.create_session(record("s1", "main"), [event()], owner=("node-a", LONG))
    assert fence == Fence("s1", "node-a", 1)
    located = await storage.leases.locate("acme", "main")
    assert located is not None and located.session_id == "s1"
    assert located.lease.node == "node-a" and located.lease.epoch == 1 and located.lease.held
    assert await storage.leases.locate("acme", "other") is None
    assert await storage.leases.locate("other-tenant", "main") is None
    with pytest.raises(SessionExists):
        await storage.create_session(record("s2", "main"), owner=("node-b", LONG))
    assert [s.id for s in await storage.list_sessions()] == ["s1"]
    assert (await storage.event_bounds("acme")) == (1, 1)  # the refused creation stored no event


async def test_a_held_lease_is_not_taken_an_expired_one_is_with_a_new_epoch(storage: Storage) -> None:
    await storage.create_session(record("s1"), owner=("node-a", LONG))
    assert await storage.leases.claim("node-b", LONG, 10) == {}
    kept = await storage.leases.keep("node-a", "a", 1.0, -1.0, draining=False)  # renewed into the past
    assert kept.held == {"s1": 1} and kept.free == 1 and kept.sessions == 1
    assert await storage.leases.claim("node-b", LONG, 10) == {"s1": 2}
    assert await storage.leases.claim("node-a", LONG, 10) == {}
    # The old holder's renewal no longer returns the session: it learns it lost it.
    assert (await storage.leases.keep("node-a", "a", 1.0, LONG, draining=False)).held == {}
    assert (await storage.leases.keep("node-b", "b", 1.0, LONG, draining=False)).held == {"s1": 2}


async def test_a_write_with_a_stale_fence_is_refused_and_changes_nothing(storage: Storage) -> None:
    old = await storage.create_session(record("s1", "main"), owner=("node-a", LONG))
    assert old is not None
    await storage.append_events([event(1)], fence=old)
    await storage.leases.keep("node-a", "a", 1.0, -1.0, draining=False)
    new_epoch = await storage.leases.claim("node-b", LONG, 10)
    new = Fence("s1", "node-b", new_epoch["s1"])
    published: list[StoredEvent] = []
    storage.set_event_listener(published.extend)

    rec = record("s1", "main")
    rec.status = "connected"
    item = OutboxItem(
        message_id="m1", session_id="s1", chat="c", content=b'{"kind":"text","text":"t"}', created_at=1.0
    )
    stale_writes = [
        storage.append_events([event(2)], fence=old),
        storage.save_session(rec, [event(3)], fence=old),
        storage.enqueue_message(item, fence=old),
        storage.submit_inbound("s1", "w1", "c", [event(4)], 1.0, fence=old),
        storage.fail_pending("s1", "x", lambda it: event(5), fence=old),
        storage.finish_message(item, [event(6)], new_contact_at=None, fence=old),
        storage.delete_session(rec, [event(7)], fence=old),
    ]
    results = await asyncio.gather(*stale_writes, return_exceptions=True)
    assert all(isinstance(r, LeaseLost) and r.session_id == "s1" for r in results), results
    assert published == []
    assert [s.status for s in await storage.list_sessions()] == ["stopped"]
    assert await storage.pending_messages("s1") == []
    assert await storage.known_inbound("s1", ["w1"]) == set()
    assert (await storage.event_bounds("acme")) == (1, 1)

    # The new holder's writes go through, also in the same batch as a refused one.
    refused, accepted = await asyncio.gather(
        storage.submit_inbound("s1", "w2", "c", [event(9)], 1.0, fence=old),
        storage.submit_inbound("s1", "w3", "c", [event(10)], 1.0, fence=new),
        return_exceptions=True,
    )
    assert isinstance(refused, LeaseLost) and isinstance(accepted, list) and len(accepted) == 1
    assert await storage.known_inbound("s1", ["w2", "w3"]) == {"w3"}
    await storage.enqueue_message(item, fence=new)
    assert [m.message_id for m in await storage.pending_messages("s1")] == ["m1"]
    await storage.delete_session(rec, [event(8)], fence=new)
    assert await storage.list_sessions() == [] and await storage.leases.leases() == []


async def test_released_leases_are_free_at_once_and_claims_prefer_running_sessions(storage: Storage) -> None:
    fences = [
        await storage.create_session(record(f"s{i}", want_running=i % 2 == 0), owner=("node-a", LONG))
        for i in range(4)
    ]
    assert await storage.leases.release(f for f in fences if f is not None) == 4
    assert await storage.leases.release(f for f in fences if f is not None) == 0  # already released
    assert sorted(await storage.leases.claim("node-b", LONG, 2)) == ["s0", "s2"]  # they want to run
    assert sorted(await storage.leases.claim("node-c", LONG, 5)) == ["s1", "s3"]
    by_session = {lease.session_id: lease for lease in await storage.leases.leases()}
    assert {s: (lease.node, lease.epoch) for s, lease in by_session.items()} == {
        "s0": ("node-b", 2),
        "s1": ("node-c", 2),
        "s2": ("node-b", 2),
        "s3": ("node-c", 2),
    }


async def test_nodes_are_listed_alive_draining_or_dead_and_sessions_without_lease_get_one(storage: Storage) -> None:
    await storage.add_session(record("legacy"))  # stored before leases existed: no lease row
    assert await storage.leases.ensure() == 1
    assert await storage.leases.ensure() == 0
    await storage.leases.keep("node-a", "host-a", 1.0, LONG, draining=False)
    await storage.leases.keep("node-b", "host-b", 2.0, -1.0, draining=False)
    kept = await storage.leases.keep("node-c", "host-c", 3.0, LONG, draining=True)
    assert [(n.node, n.name, n.alive, n.draining) for n in kept.nodes] == [
        ("node-a", "host-a", True, False),
        ("node-b", "host-b", False, False),
        ("node-c", "host-c", True, True),
    ]
    assert kept.sessions == 1 and kept.free == 1
    await storage.leases.leave("node-c")
    kept = await storage.leases.keep("node-a", "host-a", 1.0, LONG, draining=False)
    assert [n.node for n in kept.nodes] == ["node-a", "node-b"]
    assert await storage.leases.cluster_id() == await storage.leases.cluster_id()


async def test_concurrent_claims_by_several_nodes_never_share_a_lease(storage_url: str) -> None:
    if storage_url.startswith("sqlite"):
        pytest.skip("several nodes share PostgreSQL, not a SQLite file")
    nodes = [open_storage(storage_url) for _ in range(3)]
    for node in nodes:
        await node.open()
    try:
        for i in range(60):
            await nodes[0].add_session(record(f"s{i:02d}"))
        await nodes[0].leases.ensure()
        rounds = await asyncio.gather(
            *(node.leases.claim(f"node-{n}", LONG, 25) for _ in range(3) for n, node in enumerate(nodes))
        )
        taken = [session for claimed in rounds for session in claimed]
        assert sorted(taken) == [f"s{i:02d}" for i in range(60)]  # every lease once, none twice
        assert {lease.epoch for lease in await nodes[0].leases.leases()} == {1}
    finally:
        for node in nodes:
            await node.close()


async def test_nodes_that_start_together_agree_on_the_cluster_id(storage_url: str) -> None:
    if storage_url.startswith("sqlite"):
        pytest.skip("several nodes share PostgreSQL, not a SQLite file")
    nodes = [open_storage(storage_url) for _ in range(4)]
    for node in nodes:
        await node.open()
    try:
        ids = await asyncio.gather(*(node.leases.cluster_id() for node in nodes))
        assert len(set(ids)) == 1
    finally:
        for node in nodes:
            await node.close()


async def test_a_connection_the_server_dropped_is_replaced(storage_url: str) -> None:
    """PostgreSQL ends a node's connections (idle-in-transaction limit, restart, pg_terminate_backend): the next
    read and write work on new ones."""
    if storage_url.startswith("sqlite"):
        pytest.skip("PostgreSQL connections only")
    import psycopg

    from .services import POSTGRES_URL

    store = open_storage(storage_url, lock_hold_limit_s=1.0)
    await store.open()
    try:
        pids = {
            await store.db.write(lambda conn: (conn.execute("SELECT pg_backend_pid()").fetchone()[0], [])),
            await store.db.read(lambda conn: conn.execute("SELECT pg_backend_pid()").fetchone()[0]),
        }
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        await store.add_session(record("s1"))
        assert [s.id for s in await store.list_sessions()] == ["s1"]
        limit = await store.db.write(
            lambda conn: (conn.execute("SHOW idle_in_transaction_session_timeout").fetchone()[0], [])
        )
        assert limit == "1s"
    finally:
        await store.close()


PAUSED_WRITER = """
import asyncio, sys, time
from zapgate.storage import NewEvent, open_storage

async def main(url: str, when: str) -> None:
    storage = open_storage(url, lock_hold_limit_s=1.0)
    await storage.open()
    await storage.append_events([NewEvent("acme", "main", "x.y", b"{}")])  # the tenant's counter row exists
    rows = [("other", n, "main", "x.y", b'{"n": 1}', 1.0) for n in range(200_000 if when == "during" else 10)]

    def write(conn):
        conn.execute("UPDATE tenant_seq SET seq = seq WHERE tenant = ?", ("acme",))  # locked until the commit
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        if when == "during":
            print(backend, flush=True)
        conn.executemany("INSERT INTO events (tenant, seq, session, event, data, ts) VALUES (?, ?, ?, ?, ?, ?)", rows)
        if when == "after":
            print(backend, flush=True)
            time.sleep(600)  # what the node does next, before its next statement, takes long (it is paused)
        return None, []

    await storage.db.write(write)

asyncio.run(main(*sys.argv[1:]))
"""


@pytest.mark.parametrize("when", ["during", "after"])
def test_a_node_paused_during_or_after_a_write_of_many_rows_holds_its_locks_only_until_the_limit(
    storage_url: str, tmp_path: Path, when: str
) -> None:
    """A node stopped (SIGSTOP) in the middle of an ``executemany``, or right after one, while its transaction
    holds a tenant's counter row: the others' writes of that row wait only until PostgreSQL ends the paused
    transaction at the lock-hold limit, not until the node resumes. (psycopg's own ``executemany`` pipelines its
    rows and ends with a flush request after the Sync; while the server waits for the rest of a pipeline, and
    after that flush request, its idle-in-transaction timeout does not run.)"""
    if storage_url.startswith("sqlite"):
        pytest.skip("several nodes share PostgreSQL, not a SQLite file")
    import psycopg

    errors = tmp_path / "writer.err"
    with errors.open("wb") as err:
        writer = subprocess.Popen(
            [sys.executable, "-c", PAUSED_WRITER, storage_url, when], stdout=subprocess.PIPE, stderr=err
        )
    try:
        assert writer.stdout is not None
        backend = writer.stdout.readline().strip()
        assert backend.isdigit(), errors.read_text()
        with psycopg.connect(storage_url, autocommit=True) as other:
            # "during": paused once the rows are on their way to the server.
            while when == "during" and not other.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND query LIKE 'INSERT INTO events%%'", (int(backend),)
            ).fetchone():
                assert writer.poll() is None, errors.read_text()
                time.sleep(0.001)
            writer.send_signal(signal.SIGSTOP)
            other.execute("SET lock_timeout = '30s'")  # bounds a failure; the limit is 1 s
            other.execute("UPDATE tenant_seq SET seq = seq + 1 WHERE tenant = 'acme'")
        assert writer.poll() is None  # still paused: PostgreSQL ended its transaction, not the node
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()
