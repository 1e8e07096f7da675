"""The lease keeper's policy and its self-fencing (docs/scaling.md), with a fake clock and a real database.

``placement`` is pure. The keeper runs its rounds against a real :class:`~zapgate.storage.LeaseStore` (SQLite
here: the lease SQL is the same on PostgreSQL, whose contract is in ``test_storage_leases.py``); time on the
node's side is a fake monotonic clock, so "the renewal did not come back in time" needs no sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from zapgate.cluster.keeper import LeaseKeeper
from zapgate.cluster.placement import Plan, fair_share, plan, self_fence_deadline
from zapgate.storage import SessionRecord, Storage, open_storage


def test_an_even_share_rounded_up_and_capped() -> None:
    assert fair_share(10, 3) == 4
    assert fair_share(9, 3) == 3
    assert fair_share(0, 3) == 0
    assert fair_share(5, 0) == 5  # no live node counted yet: this one takes everything
    assert fair_share(100, 2, cap=30) == 30


def test_a_round_takes_free_leases_up_to_the_share_or_hands_a_quarter_of_the_excess_over() -> None:
    assert plan(held=0, sessions=6, nodes=3, free=6) == Plan(claim=2, release=0)
    assert plan(held=1, sessions=6, nodes=3, free=0) == Plan(claim=0, release=0)  # nothing free to take
    assert plan(held=6, sessions=6, nodes=1, free=0) == Plan(claim=0, release=0)  # alone: keeps everything
    assert plan(held=6, sessions=6, nodes=3, free=0) == Plan(claim=0, release=1)  # a node joined
    assert plan(held=40, sessions=60, nodes=3, free=0) == Plan(claim=0, release=5)
    assert plan(held=4, sessions=6, nodes=3, free=0, draining=True) == Plan(claim=0, release=4)
    assert plan(held=0, sessions=100, nodes=1, free=100, cap=10) == Plan(claim=10, release=0)


def test_the_self_fence_deadline_is_a_renewal_before_the_lease_can_expire() -> None:
    # Sent at t=100 s (node's clock) with 10 s leases renewed every 2 s: act until t=108; the database's expiry is
    # at least 110 on its own clock, which no other node may pass before the holder's 108.
    assert self_fence_deadline(100.0, 10.0, 2.0) == 108.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[Storage]:
    store = open_storage(f"sqlite:///{tmp_path / 'zapgate.db'}", synchronous="normal")
    await store.open()
    for i in range(4):
        await store.add_session(
            SessionRecord(id=f"s{i}", tenant="acme", name=f"n{i}", status="stopped", created_at=1.0, updated_at=1.0)
        )
    try:
        yield store
    finally:
        await store.close()


def keeper(storage: Storage, clock: Clock, node: str, events: list[tuple[str, list[str]]]) -> LeaseKeeper:
    async def acquired(claimed: dict[str, int]) -> None:
        events.append(("acquired", sorted(claimed)))

    async def lost(session_ids: list[str], reason: str) -> None:
        events.append((reason, sorted(session_ids)))

    async def hand_over(session_ids: list[str]) -> list[str]:
        events.append(("handed_over", sorted(session_ids)))
        return session_ids

    return LeaseKeeper(
        storage.leases,
        node=node,
        name=node,
        ttl=10.0,
        renew=2.0,
        cap=0,
        on_acquired=acquired,
        on_lost=lost,
        on_hand_over=hand_over,
        clock=clock,
    )


async def test_a_node_that_cannot_renew_in_time_stops_acting_before_its_leases_expire(storage: Storage) -> None:
    clock, events = Clock(), []
    a = keeper(storage, clock, "node-a", events)
    await storage.leases.ensure()
    await a.round()
    assert events == [("acquired", ["s0", "s1", "s2", "s3"])]
    assert a.valid("s0") and a.fence("s0") is not None

    clock.now += 7.9  # the next renewal has not come back yet
    assert a.valid("s0")
    clock.now += 0.2  # past sent + ttl - renew
    assert not a.valid("s0")  # no connect, no send from now on
    await a.round()  # the database was reachable after all: renewed, the leases are still this node's
    assert a.valid("s0") and a.held() == {f"s{i}": 1 for i in range(4)}


async def test_a_node_learns_at_its_next_round_that_another_node_took_its_sessions(storage: Storage) -> None:
    clock, events_a, events_b = Clock(), [], []
    a, b = keeper(storage, clock, "node-a", events_a), keeper(storage, clock, "node-b", events_b)
    await storage.leases.ensure()
    await a.round()
    # a's leases expire in the database (renewed into the past, as a frozen node's would), b takes them.
    await storage.leases.keep("node-a", "node-a", 1.0, -1.0, draining=False)
    await b.round()
    assert events_b == [("acquired", ["s0", "s1", "s2", "s3"])]
    await a.round()
    assert events_a[-1] == ("lease_lost", ["s0", "s1", "s2", "s3"])
    assert a.held() == {} and not a.valid("s0")
    assert {s: e for s, e in b.held().items()} == {f"s{i}": 2 for i in range(4)}


async def test_a_node_that_joins_gets_its_share_handed_over(storage: Storage) -> None:
    clock, events_a, events_b = Clock(), [], []
    a, b = keeper(storage, clock, "node-a", events_a), keeper(storage, clock, "node-b", events_b)
    await storage.leases.ensure()
    await a.round()
    await b.round()  # b is alive now, but everything is taken
    assert b.held() == {}
    for _ in range(3):
        await a.round()  # a sees two nodes: it hands its excess over, a quarter (at least one) per round
        await b.round()
    assert len(a.held()) == len(b.held()) == 2
    assert [e for e in events_a if e[0] == "handed_over"] == [("handed_over", ["s0"]), ("handed_over", ["s1"])]
    drained = await b.drain()
    assert drained == 2 and b.held() == {}
    await a.round()
    assert len(a.held()) == 4
