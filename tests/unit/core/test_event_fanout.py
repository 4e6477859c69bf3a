"""Many watchers of one job share the hub's reads of the store."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mobiletrain.core.events import EventHub
from mobiletrain.core.types import (
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobEvent,
    JobState,
    Project,
    TaskType,
)
from mobiletrain.store.sql import SqlMetadataStore


class CountingStore(SqlMetadataStore):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.list_calls = 0

    def list_events(self, job_id: str, after_seq: int, limit: int) -> list[JobEvent]:
        self.list_calls += 1
        return super().list_events(job_id, after_seq, limit)


def _job(store: SqlMetadataStore) -> str:
    now = datetime.now(UTC)
    project = store.create_project(
        Project(
            str(uuid.uuid4()), "p", TaskType.IMAGE_CLASSIFICATION, [], False, InputSpec(8, 8), now
        )
    )
    job = store.create_job(
        Job(str(uuid.uuid4()), project.id, JobState.QUEUED, Hyperparameters(), now)
    )
    return job.id


def test_watchers_of_one_job_share_reads_and_all_get_every_event(tmp_path: Path) -> None:
    store = CountingStore(f"sqlite:///{tmp_path / 'm.db'}")
    job_id = _job(store)
    hub = EventHub(store, poll_interval=0.01)
    hub.start()
    watchers, events = 40, 30
    received: dict[int, list[int]] = {}
    ready = threading.Barrier(watchers + 1)

    def watch(i: int) -> None:
        seqs: list[int] = []
        gen: Any = hub.watch(job_id, 0, lambda: False)
        store.append_event(job_id, EventKind.LOG, {"m": "first"}) if i == 0 else None
        for ev in gen:
            if ev is None:
                continue
            if not seqs:
                ready.wait(timeout=30)
            seqs.append(ev.seq)
        received[i] = seqs

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(watchers)]
    for t in threads:
        t.start()
    ready.wait(timeout=30)
    calls_before = store.list_calls
    for n in range(events):
        store.append_event(job_id, EventKind.PROGRESS, {"batch": n})
        hub.notify()
    store.append_event(job_id, EventKind.STATE, {"state": JobState.SUCCEEDED.value})
    hub.notify()
    for t in threads:
        t.join(timeout=60)
    hub.stop()
    want = list(range(1, events + 3))
    assert all(received[i] == want for i in range(watchers))
    # Without sharing: at least one read per watcher per event (40 x 31); shared: about one
    # read per change for all of them.
    assert store.list_calls - calls_before < 4 * (events + 1)
    store.close()
