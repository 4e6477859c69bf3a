"""One coordinator per federated session across replicas (issue 19).

Two federated services — two replicas — share one database (SQLite file or PostgreSQL) and one
blob folder, each with its own leases holder, as two ``mobiletrain serve`` processes behind a
load balancer do. Every device call goes to the other replica than the device's previous call.
In the middle of round 2 the coordinating replica goes away — stopped cleanly (it hands its
lease back) or "crashed" (its lease is left to expire) — and the other one takes the session
over from the store and finishes it. The numpy devices and toolkit are those of test_service.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from test_service import SPEC, NumpyToolkit

from mobiletrain.core.events import EventHub
from mobiletrain.core.leader import LeaseLost
from mobiletrain.core.services import ProjectService
from mobiletrain.core.types import EventKind
from mobiletrain.core.validation import Limits
from mobiletrain.federated.config import FederatedConfig
from mobiletrain.federated.device import AssignmentStatus
from mobiletrain.federated.head import HeadSpec, weights_from_bytes, weights_to_bytes
from mobiletrain.federated.records import SessionState
from mobiletrain.federated.rounds import RoundPhase
from mobiletrain.federated.service import FederatedService
from mobiletrain.store.blobs import open_blob_store
from mobiletrain.store.federated import SqlFederatedStore
from mobiletrain.store.leases import SqlLeaseStore
from mobiletrain.store.sql import SqlMetadataStore

POSTGRES_URL = os.environ.get("MOBILETRAIN_TEST_POSTGRES_URL", "")
LEASE_TTL_S = 3.0  # a coordinator stalled this long on a loaded machine loses its session


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLite file, or a fresh PostgreSQL schema (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'meta.db'}"
        return
    if not POSTGRES_URL:
        pytest.skip("needs MOBILETRAIN_TEST_POSTGRES_URL (set by .ci/run)")
    schema = f"fed_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@dataclass
class Replica:
    """One server's stores and federated service over the shared database and blob folder."""

    name: str
    store: SqlMetadataStore
    service: FederatedService
    calls: int = 0

    def close(self) -> None:
        self.service.stop()
        self.service.blobs.close()  # type: ignore[attr-defined]
        self.store.close()


def replica(
    name: str, database_url: str, blobs: Path, toolkit: NumpyToolkit | None = None
) -> Replica:
    store = SqlMetadataStore(database_url)
    service = FederatedService(
        store,
        SqlFederatedStore(store),
        open_blob_store(str(blobs)),
        toolkit or NumpyToolkit(),
        ProjectService(store, Limits()),
        EventHub(store),
        leases=SqlLeaseStore(store.engine),
        holder=name,
        tick_seconds=0.02,
        lease_ttl_s=LEASE_TTL_S,
    )
    service.start()
    return Replica(name, store, service)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


@pytest.mark.parametrize("how", ["stopped", "crashed"])
def test_the_session_survives_its_coordinator_while_devices_alternate_replicas(
    database_url: str, tmp_path: Path, how: str
) -> None:
    a = replica("replica-a", database_url, tmp_path / "blobs")
    b = replica("replica-b", database_url, tmp_path / "blobs")
    try:
        a.service.projects.create("digits", labels=["a", "b", "c"], input_spec=SPEC)
        config = FederatedConfig(
            rounds=4, min_devices=3, min_available_devices=3, hidden=(4,), seed=3
        )
        sid = a.service.start_session("digits", config).id  # replica A coordinates it
        wait_for(lambda: b.service.get_session(sid).state is SessionState.RUNNING)
        assert a.service.sessions.get(sid) is not None and b.service.sessions.get(sid) is None
        alive = [a, b]
        turn = itertools.count()

        def next_replica() -> Replica:
            """The replica of a device's next call: never the one of the call before."""
            chosen = alive[next(turn) % len(alive)]
            chosen.calls += 1
            return chosen

        devices = [next_replica().service.register("digits", {})[1] for _ in range(3)]
        head = HeadSpec.from_dict(b.service.get_session(sid).bundle["head"])
        initial = weights_from_bytes(
            b.service.blobs.get(b.service.get_session(sid).weights_sha256), head
        )
        hold = threading.Event()  # the last device answers round 2 only after the kill
        errors: list[BaseException] = []

        def device(device_id: str, slow: bool) -> None:
            try:
                while True:
                    reply = next_replica().service.get_assignment("digits", device_id, 0.5)
                    if reply.status is AssignmentStatus.FINISHED:
                        return
                    work = reply.assignment
                    if work is None:
                        continue
                    if slow and work.round == 2:
                        hold.wait(30)
                    new = [w + 1.0 for w in weights_from_bytes(work.weights, head)]
                    answer = next_replica().service.push_update(
                        "digits", device_id, sid, work.round, weights_to_bytes(new), 10
                    )
                    assert answer.accepted, answer
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        threads = [
            threading.Thread(target=device, args=(d, i == 2), daemon=True)
            for i, d in enumerate(devices)
        ]
        for thread in threads:
            thread.start()

        def answered_in_round_2() -> int:
            rounds = b.service.rounds(sid)
            return len(rounds[1].result["accepted"]) if len(rounds) >= 2 else 0

        wait_for(lambda: answered_in_round_2() == 2)  # two of three answered round 2
        assert a.service.sessions.get(sid) is not None  # still coordinated by A
        alive.remove(a)
        a.service.stop(hand_over=how == "stopped")  # "crashed": the lease is left to expire
        wait_for(lambda: b.service.sessions.get(sid) is not None, timeout=LEASE_TTL_S + 10)
        hold.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        wait_for(lambda: b.service.get_session(sid).state is SessionState.FINISHED)

        session = b.service.get_session(sid)
        rounds = b.service.rounds(sid)
        assert [r.phase for r in rounds] == [RoundPhase.AGGREGATED] * 4
        assert all(len(r.result["accepted"]) == 3 for r in rounds)
        # Every round: each device adds 1 to every weight, FedAvg of equal counts: +1 per round.
        final = weights_from_bytes(b.service.blobs.get(session.weights_sha256), head)
        for got, start in zip(final, initial, strict=True):
            np.testing.assert_allclose(got, start + 4.0, atol=1e-5)
        assert [v.version for v in b.store.list_model_versions(session.project_id)] == [
            4,
            3,
            2,
            1,
        ]
        logs = [
            e.data.get("message", "")
            for e in b.store.list_events(session.job_id, 0, 10_000)
            if e.kind is EventKind.LOG
        ]
        opened = [m for m in logs if m.startswith("round ") and "/4: selected" in m]
        assert len(opened) == 4  # no round was opened twice
        assert any("coordinator changed: resuming at round 2" in m for m in logs)
        assert a.calls > 3 and b.calls > 3  # both replicas took device calls
    finally:
        hold_set = locals().get("hold")
        if isinstance(hold_set, threading.Event):
            hold_set.set()
        b.close()
        a.close()


class GatedToolkit(NumpyToolkit):
    """Exports only once ``gate`` is set (a slow export on a loaded machine)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()

    def prepare(self, *args: Any, **kwargs: Any) -> Any:
        self.gate.wait(30)
        return super().prepare(*args, **kwargs)


def test_a_round_number_opens_once_when_the_session_is_adopted_again(
    database_url: str, tmp_path: Path
) -> None:
    """The single-replica fleet baseline logged "round 1/20: selected" twice. Mechanism: the
    replica's scan found the new session before start_session had registered its state, so
    the session had two states here, each exporting the files under the same lease (a holder
    re-acquiring its live lease keeps the token, so fencing could not tell them apart); the
    late one wrote the session back to round 0 after round 1 had opened, and when the lease
    then ran out under load (it was renewed only between two steps of the round loop), the
    replica adopted the session again at round 0 and opened round 1 a second time.

    Here: a second adoption while the export runs gets the same state (one export), and a
    lease lost in the middle of round 2 (expired in the database, as a stalled renewal leaves
    it) makes the replica take the session over again and resume round 2, not open a round
    twice; the old state can no longer write."""
    toolkit = GatedToolkit()
    a = replica("replica-a", database_url, tmp_path / "blobs", toolkit)
    try:
        a.service.projects.create("digits", labels=["a", "b", "c"], input_spec=SPEC)
        config = FederatedConfig(
            rounds=3, min_devices=3, min_available_devices=3, hidden=(4,), seed=3
        )
        sid = a.service.start_session("digits", config).id
        first = a.service.sessions.get(sid)
        assert first is not None and first.preparing
        stored = a.service.fstore.get_session(sid)
        assert stored is not None
        # What the scan does when it finds the session before start_session's adopt ran.
        assert a.service.coordinator.adopt(stored) is first
        toolkit.gate.set()
        wait_for(lambda: a.service.get_session(sid).state is SessionState.RUNNING)
        assert toolkit.prepared == 1

        devices = [a.service.register("digits", {})[1] for _ in range(3)]
        head = HeadSpec.from_dict(a.service.get_session(sid).bundle["head"])
        hold = threading.Event()
        errors: list[BaseException] = []

        def device(device_id: str, slow: bool) -> None:
            try:
                while True:
                    reply = a.service.get_assignment("digits", device_id, 0.5)
                    if reply.status is AssignmentStatus.FINISHED:
                        return
                    work = reply.assignment
                    if work is None:
                        continue
                    if slow and work.round == 2:
                        hold.wait(30)
                    new = [w + 1.0 for w in weights_from_bytes(work.weights, head)]
                    answer = a.service.push_update(
                        "digits", device_id, sid, work.round, weights_to_bytes(new), 10
                    )
                    assert answer.accepted, answer
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        threads = [
            threading.Thread(target=device, args=(d, i == 2), daemon=True)
            for i, d in enumerate(devices)
        ]
        for thread in threads:
            thread.start()

        def answered_in_round_2() -> int:
            rounds = a.service.rounds(sid)
            return len(rounds[1].result["accepted"]) if len(rounds) >= 2 else 0

        wait_for(lambda: answered_in_round_2() == 2)
        old = a.service.sessions.get(sid)
        assert old is not None and old.lease is not None
        old_token = old.lease.token
        with a.store.engine.begin() as c:  # the lease runs out: nobody renewed it in time
            c.execute(
                sa.text("UPDATE leases SET expires_at = 0 WHERE name = :n"),
                {"n": f"federated:{sid}"},
            )
        wait_for(
            lambda: (
                (live := a.service.sessions.get(sid)) is not None
                and live is not old
                and live.lease is not None
                and live.lease.token > old_token
            ),
            timeout=LEASE_TTL_S + 10,
        )
        with pytest.raises(LeaseLost):  # the replaced state writes nothing any more
            a.service.lifecycle._fenced(old, lambda: None)
        hold.set()
        for thread in threads:
            thread.join(timeout=30)
        assert not errors, errors
        wait_for(lambda: a.service.get_session(sid).state is SessionState.FINISHED)

        rounds = a.service.rounds(sid)
        assert [r.phase for r in rounds] == [RoundPhase.AGGREGATED] * 3
        assert all(len(r.result["accepted"]) == 3 for r in rounds)
        session = a.service.get_session(sid)
        versions = [v.version for v in a.store.list_model_versions(session.project_id)]
        assert versions == [3, 2, 1]
        logs = [
            e.data.get("message", "")
            for e in a.store.list_events(session.job_id, 0, 10_000)
            if e.kind is EventKind.LOG
        ]
        opened = [int(m.split()[1].split("/")[0]) for m in logs if "/3: selected" in m]
        assert opened == [1, 2, 3], logs  # each round opened (and logged) once
        assert any("coordinator changed: resuming at round 2 (open" in m for m in logs), logs
    finally:
        hold_set = locals().get("hold")
        if isinstance(hold_set, threading.Event):
            hold_set.set()
        toolkit.gate.set()
        a.close()
