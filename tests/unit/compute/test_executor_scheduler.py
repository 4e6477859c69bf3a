"""The one scheduler's rules (compute/scheduler.py) on a real SQLite store and real processes.

The launcher here starts a real ``python -c`` process per attempt (what it does decides the
case: exit at once, or sleep until killed), so retries, the cancel grace, lease reaping and a
server stop go through :class:`Scheduler` exactly as with the local and Ray launchers, without
TensorFlow. ``run_once()`` drives the rounds so the tests need no timing luck.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mobiletrain.compute.executor import LocalAttempt
from mobiletrain.compute.scheduler import Scheduler, reap_expired_leases
from mobiletrain.core.events import EventHub
from mobiletrain.core.lifecycle import JobLifecycle
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import (
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobState,
    Project,
    TaskType,
)
from mobiletrain.store.sql import SqlMetadataStore


class ProcessLauncher:
    """Each attempt is ``python -c <code>``; records what the scheduler asked of it."""

    def __init__(self, code: str) -> None:
        self.code = code
        self.launched: list[str] = []
        self.ended: list[str] = []
        self.attempts: list[LocalAttempt] = []

    def open(self) -> None:
        """Nothing to prepare."""

    def launch(self, job: Job) -> LocalAttempt:
        self.launched.append(job.id)
        attempt = LocalAttempt(subprocess.Popen([sys.executable, "-c", self.code]))
        self.attempts.append(attempt)
        return attempt

    def idle(self, free_slots: int) -> None:
        """No warm-up."""

    def job_ended(self, job_id: str) -> None:
        self.ended.append(job_id)

    def sweep(self, store: MetadataStore) -> None:
        """Nothing left over."""

    def close(self) -> None:
        for attempt in self.attempts:
            if attempt.process.poll() is None:
                attempt.process.kill()
            attempt.process.wait()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlMetadataStore]:
    s = SqlMetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    yield s
    s.close()


def _queued_job(store: MetadataStore) -> Job:
    project = store.create_project(
        Project(
            id=str(uuid.uuid4()),
            name=f"p{uuid.uuid4().hex[:6]}",
            task=TaskType.IMAGE_CLASSIFICATION,
            labels=["a", "b"],
            labels_fixed=True,
            input_spec=InputSpec(8, 8),
            created_at=datetime.now(UTC),
        )
    )
    job = Job(
        id=str(uuid.uuid4()),
        project_id=project.id,
        state=JobState.QUEUED,
        hyperparameters=Hyperparameters(epochs=1),
        created_at=datetime.now(UTC),
    )
    return JobLifecycle(store).created(job)


def _states(store: MetadataStore, job_id: str) -> list[dict[str, object]]:
    return [e.data for e in store.list_events(job_id, 0, 100) if e.kind is EventKind.STATE]


def _round_until(scheduler: Scheduler, done: object, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, "the scheduler did not get there"
        scheduler.run_once()
        time.sleep(0.05)


def test_a_lost_attempt_is_retried_then_fails_with_the_reason(store: SqlMetadataStore) -> None:
    launcher = ProcessLauncher("raise SystemExit(3)")
    scheduler = Scheduler(store, EventHub(store), launcher, max_attempts=2)
    job = _queued_job(store)

    def failed() -> bool:
        current = store.get_job(job.id)
        return current is not None and current.state is JobState.FAILED

    _round_until(scheduler, failed)
    final = store.get_job(job.id)
    assert final is not None and final.attempts == 2
    assert "exited with code 3 (after 2 attempts)" in final.error
    states = _states(store, job.id)
    assert [s["state"] for s in states] == ["queued", "running", "queued", "running", "failed"]
    assert str(states[2]["error"]).endswith("; retrying")
    assert launcher.launched == [job.id, job.id] and launcher.ended == [job.id]


def test_cancel_kills_after_the_grace_and_records_cancelled(store: SqlMetadataStore) -> None:
    launcher = ProcessLauncher("import time; time.sleep(120)")  # never looks at the flag
    scheduler = Scheduler(
        store, EventHub(store), launcher, max_attempts=3, cancel_grace_seconds=0.3
    )
    job = _queued_job(store)
    _round_until(scheduler, lambda: bool(launcher.attempts))
    store.request_cancel(job.id)
    scheduler.run_once()  # sees the flag: the grace starts, nothing killed yet
    assert launcher.attempts[0].exit_reason() is None

    def cancelled() -> bool:
        current = store.get_job(job.id)
        return current is not None and current.state is JobState.CANCELLED

    _round_until(scheduler, cancelled)
    assert launcher.attempts[0].process.returncode is not None  # killed, not left running
    assert _states(store, job.id)[-1] == {"state": "cancelled"}
    assert launcher.ended == [job.id]


def test_expired_lease_of_another_replica_is_requeued(store: SqlMetadataStore) -> None:
    job = _queued_job(store)
    claimed = store.claim_job(job.id, lease_seconds=0.1)  # a replica that then died
    assert claimed is not None
    lifecycle = JobLifecycle(store)
    assert reap_expired_leases(store, lifecycle, 3, running_here={job.id}) == []
    time.sleep(0.3)
    assert reap_expired_leases(store, lifecycle, 3, running_here=()) == [job.id]
    current = store.get_job(job.id)
    assert current is not None and current.state is JobState.QUEUED
    assert _states(store, job.id)[-1]["state"] == "queued"
    # A scheduler that leaves reaping to a leader does not reap.
    again = store.claim_job(job.id, lease_seconds=0.1)
    assert again is not None
    time.sleep(0.3)
    follower = Scheduler(store, EventHub(store), ProcessLauncher("pass"), reap_leases=False)
    follower.run_once()
    assert store.expired_jobs(datetime.now(UTC) + timedelta(seconds=1))[0].id == job.id


def test_stop_requeues_a_running_job_without_costing_an_attempt(
    store: SqlMetadataStore,
) -> None:
    launcher = ProcessLauncher("import time; time.sleep(120)")
    scheduler = Scheduler(store, EventHub(store), launcher, max_attempts=1)
    job = _queued_job(store)
    _round_until(scheduler, lambda: bool(launcher.attempts))
    assert scheduler.worker_pid(job.id) == launcher.attempts[0].process.pid
    scheduler.stop()
    current = store.get_job(job.id)
    # max_attempts=1: a counted attempt would have failed it.
    assert current is not None and current.state is JobState.QUEUED
    assert "server stopped" in str(_states(store, job.id)[-1]["error"])
    assert launcher.attempts[0].process.returncode is not None


def test_a_warm_worker_that_dies_is_replaced_after_a_pause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mobiletrain.compute import executor

    launcher = executor.LocalLauncher(
        "sqlite://", str(tmp_path / "b"), tmp_path / "jobs", warm=True
    )
    # A warm worker that exits at once (as one whose TensorFlow import crashes would).
    monkeypatch.setattr(launcher, "_command", lambda extra: [sys.executable, "-c", "pass"])
    launcher.open()
    launcher.idle(0)  # no free slot: no warm worker
    assert launcher.warm_pid() is None
    launcher.idle(1)
    first = launcher.warm_pid()
    assert first is not None
    assert launcher._warm is not None
    launcher._warm.wait(timeout=30)
    for _ in range(5):  # scheduler rounds: no respawn loop
        launcher.idle(1)
    assert launcher.warm_pid() is None
    monkeypatch.setattr(executor, "WARM_RETRY_SECONDS", 0.0)
    launcher._warm_retry_at = 0.0
    launcher.idle(1)
    second = launcher.warm_pid()
    assert second is not None and second != first
    launcher.close()


def test_capacity_zero_claims_nothing(store: SqlMetadataStore) -> None:
    launcher = ProcessLauncher("pass")
    scheduler = Scheduler(store, EventHub(store), launcher, capacity=0)
    job = _queued_job(store)
    scheduler.run_once()
    current = store.get_job(job.id)
    assert current is not None and current.state is JobState.QUEUED
    assert launcher.launched == [] and [s["state"] for s in _states(store, job.id)] == ["queued"]
