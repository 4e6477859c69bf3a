"""Group commit: concurrent writers of one process share SQLite transactions and pack fsyncs.

Real SQLite file (WAL, synchronous=FULL) and real pack files; the checks are about outcomes
(every row stored once, each caller's own error reaches only that caller, events numbered
1..N) and about sharing (fewer transactions and fsyncs than callers), never about time.
"""

from __future__ import annotations

import os
import threading
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


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = SqlMetadataStore(f"sqlite:///{tmp_path}/meta.db")
    yield s
    s.close()


def test_concurrent_writers_share_transactions(store: SqlMetadataStore) -> None:
    project = store.create_project(_project("crowd"))
    job = store.create_job(
        Job(
            id=str(uuid.uuid4()),
            project_id=project.id,
            state=JobState.RUNNING,
            hyperparameters=Hyperparameters(),
            created_at=datetime.now(UTC),
        )
    )
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
