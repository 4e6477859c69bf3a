"""Contract of the leader-lease store on SQLite and PostgreSQL (real databases).

Two contenders never both hold a lease; an expired lease is taken over with a larger fencing
token; the stale holder can neither renew nor write through :meth:`SqlLeaseStore.fenced_tx`;
:class:`SingletonLoop` runs its part on exactly one of several replicas and fails over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.leader import LeaseLost, SingletonLoop
from mobiletrain.store.leases import SqlLeaseStore
from mobiletrain.store.sql import SqlMetadataStore


@pytest.fixture
def leases(database_url: str) -> Iterator[SqlLeaseStore]:
    """Leases over a migrated SQLite file or PostgreSQL schema (``database_url`` fixture)."""
    store = SqlMetadataStore(database_url)
    try:
        yield SqlLeaseStore(store.engine)
    finally:
        store.close()


def test_two_contenders_one_winner(leases: SqlLeaseStore) -> None:
    for round_no in range(5):
        name = f"race-{round_no}"
        won: list[str] = []
        barrier = threading.Barrier(6)

        def contend(holder: str, name: str, barrier: threading.Barrier, won: list[str]) -> None:
            barrier.wait()
            if leases.acquire(name, holder, 30) is not None:
                won.append(holder)

        threads = [
            threading.Thread(target=contend, args=(f"r{i}", name, barrier, won)) for i in range(6)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert len(won) == 1, won
        current = leases.current(name)
        assert current is not None and current.holder == won[0] and current.token == 1


def test_renew_keeps_token_and_other_holder_waits(leases: SqlLeaseStore) -> None:
    a = leases.acquire("sched", "a", 30)
    assert a is not None and a.token == 1
    assert leases.acquire("sched", "b", 30) is None
    again = leases.acquire("sched", "a", 60)  # the holder asking again extends its lease
    assert again is not None and again.token == 1 and again.expires_at > a.expires_at
    renewed = leases.renew(again, 30)
    assert renewed is not None and renewed.token == 1
    assert leases.fenced_tx(renewed, lambda c: "written") == "written"


def test_expiry_takeover_fences_the_stale_holder(leases: SqlLeaseStore) -> None:
    stale = leases.acquire("coord", "a", 0.3)
    assert stale is not None
    time.sleep(0.5)
    assert leases.current("coord") is None  # expired: nobody holds it
    fresh = leases.acquire("coord", "b", 30)
    assert fresh is not None and fresh.holder == "b" and fresh.token == stale.token + 1
    assert leases.renew(stale, 30) is None
    assert leases.release(stale) is False  # cannot free the successor's lease
    wrote: list[int] = []
    with pytest.raises(LeaseLost) as refused:
        leases.fenced_tx(stale, lambda c: wrote.append(stale.token))
    assert refused.value.code is ErrorCode.FAILED_PRECONDITION and wrote == []
    with pytest.raises(LeaseLost):
        leases.fenced(stale, lambda: wrote.append(stale.token))
    assert wrote == []
    assert leases.fenced_tx(fresh, lambda c: 7) == 7
    current = leases.current("coord")
    assert current is not None and current.holder == "b"


def test_expired_holder_without_successor_is_fenced_too(leases: SqlLeaseStore) -> None:
    lease = leases.acquire("sweep", "a", 0.2)
    assert lease is not None
    time.sleep(0.4)
    with pytest.raises(LeaseLost):
        leases.fenced_tx(lease, lambda c: None)
    back = leases.acquire("sweep", "a", 30)  # coming back after expiry is a new holding
    assert back is not None and back.token == lease.token + 1


def test_release_hands_over_at_once_with_a_larger_token(leases: SqlLeaseStore) -> None:
    a = leases.acquire("compaction", "a", 30)
    assert a is not None
    assert leases.release(a) is True
    assert leases.current("compaction") is None
    b = leases.acquire("compaction", "b", 30)
    assert b is not None and b.token == a.token + 1


def test_bad_arguments_have_a_code(leases: SqlLeaseStore) -> None:
    for name, holder, ttl in (("", "a", 1.0), ("x" * 201, "a", 1.0), ("n", "", 1.0), ("n", "a", 0)):
        with pytest.raises(MobiletrainError) as bad:
            leases.acquire(name, holder, ttl)
        assert bad.value.code is ErrorCode.INVALID_ARGUMENT


def test_singleton_loop_runs_on_one_replica_and_fails_over(leases: SqlLeaseStore) -> None:
    running: set[str] = set()
    both_seen = threading.Event()

    def part(holder: str) -> tuple[SingletonLoop, list[str]]:
        log: list[str] = []

        def start() -> None:
            running.add(holder)
            log.append("start")
            if len(running) > 1:
                both_seen.set()

        def stop() -> None:
            running.discard(holder)
            log.append("stop")

        return SingletonLoop(leases, "reaper", holder, start, stop, ttl_s=0.6), log

    (a, a_log), (b, b_log) = part("a"), part("b")
    a.start()
    b.start()
    try:
        assert a.leading and not b.leading
        time.sleep(1.0)  # several renewals: b stays out
        assert running == {"a"} and not b.leading
        a.stop()  # releases: b takes over within one renewal period
        assert b.wait_leading(True, timeout=3)
        assert running == {"b"} and a_log == ["start", "stop"] and b_log == ["start"]
        assert b.lease is not None and b.lease.token == 2
    finally:
        a.stop()
        b.stop()
    assert not both_seen.is_set() and running == set()


def test_singleton_loop_takes_over_from_a_dead_holder(leases: SqlLeaseStore) -> None:
    dead = leases.acquire("compaction", "killed-replica", 0.5)  # never renewed again
    assert dead is not None
    started = threading.Event()
    loop = SingletonLoop(leases, "compaction", "b", started.set, lambda: None, ttl_s=0.6)
    loop.start()
    try:
        assert not loop.leading
        assert started.wait(timeout=3)
        assert loop.lease is not None and loop.lease.token == dead.token + 1
    finally:
        loop.stop()
