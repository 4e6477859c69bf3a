"""The job-lease reaper runs on one replica only, and moves when that replica goes away.

Two replicas' executors share one database (SQLite and PostgreSQL); the wiring takes the
reaper out of their schedulers (``reap_leases = False``) and runs it under the ``job-reaper``
leader lease. A job whose lease ran out is re-queued by the leader — once — and after the leader
stops, the other replica takes the lease and reaps the next one.
"""

from __future__ import annotations

import time
from pathlib import Path

from fleet_support import new_job

from mobiletrain.compute.executor import LocalExecutor
from mobiletrain.core.events import EventHub
from mobiletrain.core.types import EventKind, JobState
from mobiletrain.store.sql import SqlMetadataStore
from mobiletrain.wiring import build_leader_loops


def _expired_running_job(store: SqlMetadataStore) -> str:
    job = new_job(store)
    assert store.claim_job(job.id, lease_seconds=0.2) is not None  # its worker "died"
    return job.id


def _wait_state(store: SqlMetadataStore, job_id: str, state: JobState, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = store.get_job(job_id)
        if job is not None and job.state is state:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never became {state.value}")


def test_job_reaper_runs_on_the_leader_only_and_fails_over(
    database_url: str, tmp_path: Path
) -> None:
    store = SqlMetadataStore(database_url)
    replicas = []
    for name in ("a", "b"):
        executor = LocalExecutor(
            store,
            EventHub(store),
            database_url=database_url,
            blob_url=str(tmp_path / "blobs"),
            work_dir=tmp_path / name,
            max_attempts=5,
        )
        loops = build_leader_loops(store, executor, holder=name)
        assert executor.reap_leases is False and len(loops) == 1
        replicas.append(loops[0])
    first, second = replicas
    try:
        first.start()
        second.start()
        assert first.leading and not second.leading  # type: ignore[attr-defined]

        job_id = _expired_running_job(store)
        _wait_state(store, job_id, JobState.QUEUED, timeout=10)
        time.sleep(1.5)  # both replicas' loops had time to run: still re-queued once
        retries = [
            e
            for e in store.list_events(job_id, 0, 100)
            if e.kind is EventKind.STATE and e.data.get("state") == JobState.QUEUED.value
        ]
        assert len(retries) == 1

        first.stop()  # the leader goes away: the other replica reaps from now on
        assert second.wait_leading(True, timeout=10)  # type: ignore[attr-defined]
        other = _expired_running_job(store)
        _wait_state(store, other, JobState.QUEUED, timeout=10)
    finally:
        first.stop()
        second.stop()
        store.close()
