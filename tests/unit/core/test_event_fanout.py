"""Many watchers of one job share the hub's reads of the store."""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mobiletrain.core import events as events_module
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


def test_async_watchers_wake_when_a_thread_watcher_read_the_events_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REST's SSE watches in a thread, gRPC on the event loop; both share the job's tail.

    The thread watcher read the new event into the tail first; the loop's feed then read
    nothing new, and did not wake its watchers, which waited for their 1 s fallback timer
    (gRPC progress p50 94 ms, p99 0.9 s while an SSE client watched the same job). The timer
    is made an hour here, so a missed wake-up hangs instead of passing late.
    """
    monkeypatch.setattr(events_module._Watcher, "wait_seconds", lambda self: 3600.0)
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    job_id = _job(store)
    hub = EventHub(store, poll_interval=3600)  # no poll: only notify() wakes anyone
    hub.start()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        agen = hub.watch_async(job_id, 0, lambda: False)

        async def first_event() -> JobEvent:
            async for ev in agen:
                if ev is not None:
                    return ev
            raise AssertionError("the watch ended without an event")

        task = asyncio.ensure_future(first_event())
        for _ in range(3000):  # until the watcher waits on its feed
            feed = hub._feeds.get(loop, {}).get(job_id)
            if feed is not None and feed._waiters and feed._reading is None:
                break
            await asyncio.sleep(0.01)
        event = await asyncio.to_thread(store.append_event, job_id, EventKind.PROGRESS, {})
        # notify() wakes the thread watchers first (its condition variable) and the loop's
        # feeds after (a callback on the loop); the woken thread watcher (what hub.watch
        # does) reads the event into the shared tail before the feed gets to read.
        with hub._cond:
            hub._generation += 1
            hub._cond.notify_all()
        assert [e.seq for e in await asyncio.to_thread(hub._events_after, job_id, 0)] == [1]
        events_module._poke_all([feed for feed in hub._feeds[loop].values()])
        got = await asyncio.wait_for(task, timeout=30)
        assert got.seq == event.seq
        await agen.aclose()

    try:
        asyncio.run(scenario())
    finally:
        hub.stop()
        store.close()
