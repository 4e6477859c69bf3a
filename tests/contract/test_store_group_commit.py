"""Group commit: concurrent writers of one process share SQLite transactions and pack fsyncs.

Real SQLite file (WAL, synchronous=FULL) and real pack files; the checks are about outcomes
(every row stored once, each caller's own error reaches only that caller, events numbered
1..N) and about sharing (fewer transactions and fsyncs than callers), never about time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from mobiletrain.core.errors import MobiletrainError
from mobiletrain.core.types import (
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobState,
    Project,
    Sample,
    TaskType,
)
from mobiletrain.store import blobs as blobs_module
from mobiletrain.store.blobs import LocalPackBlobStore
from mobiletrain.store.sql import SqlMetadataStore

THREADS = 24
CALLS = 8


def _project(name: str) -> Project:
    return Project(
        id=str(uuid.uuid4()),
        name=name,
        task=TaskType.IMAGE_CLASSIFICATION,
        labels=["a"],
        labels_fixed=False,
        input_spec=InputSpec(8, 8),
        created_at=datetime.now(UTC),
    )


def _sample(project_id: str, client_id: str) -> Sample:
    return Sample(
        id=str(uuid.uuid4()),
        project_id=project_id,
        client_id=client_id,
        label="a",
        sha256=uuid.uuid4().hex * 2,
        size=10,
        media_type="image/png",
        width=8,
        height=8,
        created_at=datetime.now(UTC),
    )


def _running_job(store: SqlMetadataStore, project_id: str) -> Job:
    return store.create_job(
        Job(
            id=str(uuid.uuid4()),
            project_id=project_id,
            state=JobState.RUNNING,
            hyperparameters=Hyperparameters(),
            created_at=datetime.now(UTC),
        )
    )


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SqlMetadataStore(f"sqlite:///{tmp_path}/meta.db")
    yield s
    s.close()


def test_concurrent_writers_share_transactions(store: SqlMetadataStore) -> None:
    project = store.create_project(_project("crowd"))
    job = _running_job(store, project.id)
    writer = store._writer
    assert writer is not None
    groups_before, writes_before = writer.groups, writer.writes
    start = threading.Barrier(THREADS)

    def work(t: int) -> None:
        start.wait()
        for c in range(CALLS):
            twins = store.add_samples([_sample(project.id, f"t{t}-c{c}-{k}") for k in range(3)])
            assert twins == [None, None, None]
            store.append_event(job.id, EventKind.PROGRESS, {"t": t, "c": c})

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(work, range(THREADS)))

    assert store.dataset_size(project.id) == (THREADS * CALLS * 3, THREADS * CALLS * 3 * 10)
    seqs = [e.seq for e in store.list_events(job.id, 0, 10_000)]
    assert seqs == list(range(1, THREADS * CALLS + 1))
    writes = writer.writes - writes_before
    assert writes == 2 * THREADS * CALLS
    # Callers that arrived while a commit ran were committed together.
    assert writer.groups - groups_before < writes


def test_one_callers_error_stays_with_that_caller(store: SqlMetadataStore) -> None:
    store.create_project(_project("taken"))
    barrier = threading.Barrier(THREADS)
    outcomes: dict[int, str] = {}

    def create(i: int) -> None:
        barrier.wait()
        name = "taken" if i % 3 == 0 else f"free-{i}"
        try:
            store.create_project(_project(name))
            outcomes[i] = "created"
        except MobiletrainError as exc:
            outcomes[i] = exc.code.name

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(create, range(THREADS)))

    for i, outcome in outcomes.items():
        assert outcome == ("PROJECT_EXISTS" if i % 3 == 0 else "created"), (i, outcome)
    names = {p.name for p in store.list_projects(1000, 0)}
    assert names == {"taken"} | {f"free-{i}" for i in range(THREADS) if i % 3}


def test_a_write_from_inside_a_group_runs_in_its_transaction(store: SqlMetadataStore) -> None:
    project = store.create_project(_project("nested"))

    def outer(c: sa.Connection) -> int:
        c.execute(
            sa.text("UPDATE projects SET labels_fixed = 1 WHERE id = :id"), {"id": project.id}
        )
        # A store call from inside a transaction function: nested savepoint, same transaction.
        store.add_samples([_sample(project.id, "inner")])
        raise IntegrityError("forced", {}, Exception("forced"))

    with pytest.raises(IntegrityError):
        store._tx(outer)
    # Both the outer write and the nested one were rolled back with the caller's savepoint.
    assert store.get_project(project.id).labels_fixed is False  # type: ignore[union-attr]
    assert store.dataset_size(project.id) == (0, 0)


def test_concurrent_blob_syncs_share_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs = LocalPackBlobStore(tmp_path / "blobs")
    calls = 0
    real_fsync = os.fsync
    lock = threading.Lock()

    def counting_fsync(fd: int) -> None:  # the real fsync, counted
        nonlocal calls
        with lock:
            calls += 1
        real_fsync(fd)

    monkeypatch.setattr(blobs_module.os, "fsync", counting_fsync)
    barrier = threading.Barrier(THREADS)
    keys: list[str] = []

    def put_and_sync(i: int) -> None:
        barrier.wait()
        for c in range(CALLS):
            data = f"blob {i} {c}".encode() * 20
            key = blobs.put(data)
            blobs.sync()
            keys.append(key)

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(put_and_sync, range(THREADS)))

    assert len(set(keys)) == THREADS * CALLS
    assert calls < THREADS * CALLS  # one fsync served several callers
    reopened = LocalPackBlobStore(tmp_path / "blobs")
    for key in keys:
        assert len(reopened.get(key)) > 0
    blobs.close()
    reopened.close()


GUEST = """
import sys
import time
import sqlalchemy as sa
from mobiletrain.core.types import EventKind
from mobiletrain.store.sql import SqlMetadataStore

url, job_id, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = SqlMetadataStore(url, run_migrations=False)
print("ready", flush=True)
sys.stdin.readline()  # the busy process is writing
for i in range(count):
    time.sleep(0.02)  # a worker's progress events come now and then, not back to back
    with store.engine.connect() as c:  # the last committed event when this append is asked for
        seen = c.execute(sa.text("SELECT coalesce(max(id), 0) FROM job_events")).scalar()
    store.append_event(job_id, EventKind.PROGRESS, {"seen": seen})
store.close()
print("done", flush=True)
"""


def test_a_busy_process_cannot_starve_another_at_the_write_lock(store: SqlMetadataStore) -> None:
    """A second process (a training worker) gets the write lock between the busy one's groups.

    Eight threads of this process write back to back, each holding the lock a few milliseconds
    (as an upload burst does), while another process appends ten events, 20 ms apart. Each of its
    events records the last committed event id when it was asked for; the global ids then count
    the busy process's commits that overtook it. With turns, at most a group or two of the busy
    process (<= 8 writes each); SQLite's busy handler alone let the other process wait until
    the busy one stopped (983 of its 1,000 writes overtook one event).
    """
    project = store.create_project(_project("turns"))
    busy_job, guest_job = (_running_job(store, project.id).id for _ in range(2))
    guest_writes, threads, cap = 10, 8, 1_000
    guest = subprocess.Popen(
        [sys.executable, "-c", GUEST, store.url, guest_job, str(guest_writes)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert guest.stdin is not None and guest.stdout is not None
    try:
        assert guest.stdout.readline().strip() == "ready"
        written = 0
        lock = threading.Lock()
        started = threading.Barrier(threads + 1)

        def long_write(c: sa.Connection) -> None:
            # An upload's add_samples holds the lock for milliseconds of CPU; so does this.
            store.append_event(busy_job, EventKind.PROGRESS, {})
            time.sleep(0.005)

        def hammer() -> None:
            nonlocal written
            started.wait()
            while guest.poll() is None:
                with lock:
                    if written >= cap:
                        return
                    written += 1
                store._tx(long_write)

        with ThreadPoolExecutor(threads) as pool:
            futures = [pool.submit(hammer) for _ in range(threads)]
            started.wait()
            guest.stdin.write("go\n")
            guest.stdin.flush()
            for f in futures:
                f.result()
        assert guest.wait(timeout=120) == 0
        assert guest.stdout.read().strip() == "done"
    finally:
        guest.kill()
        guest.wait()

    with store.engine.connect() as c:
        rows = c.execute(
            sa.text("SELECT id, job_id, data FROM job_events WHERE job_id IN (:a, :b) ORDER BY id"),
            {"a": busy_job, "b": guest_job},
        ).all()
    busy_ids = [r[0] for r in rows if r[1] == busy_job]
    guest_rows = [
        (r[0], json.loads(r[2]) if isinstance(r[2], str) else r[2])
        for r in rows
        if r[1] == guest_job
    ]
    assert len(guest_rows) == guest_writes
    # Busy-process commits that came after a guest append was asked for and before it committed.
    overtaken = [sum(1 for b in busy_ids if data["seen"] < b < gid) for gid, data in guest_rows]
    assert max(overtaken) <= 3 * threads, (overtaken, written)
