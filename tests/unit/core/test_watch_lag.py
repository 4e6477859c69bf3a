"""Watchers that lag get every event, 1..N in order, up to the final state (issue 18).

A watcher has no queue to overflow: only its position. Whatever it has not had yet is in the
hub's shared tail or, when it is further behind than the tail reaches, in the store. These tests
make watchers lag for real — a consumer that stops reading until everything is written, through
the hub and through a real gRPC server (where HTTP/2 flow control holds the server's stream
back) — and check what they received, not how fast.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest

from mobiletrain._proto.mobiletrain.v1 import training_pb2, training_pb2_grpc
from mobiletrain.api.grpc.server import build_grpc_server
from mobiletrain.client.sdk import BearerToken
from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.core import events as events_module
from mobiletrain.core.events import EventHub
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
from mobiletrain.wiring import build_container

pytestmark = pytest.mark.timeout(120)


def _job(store: MetadataStore) -> str:
    now = datetime.now(UTC)
    project = store.create_project(
        Project(
            str(uuid.uuid4()),
            f"p-{uuid.uuid4().hex[:6]}",
            TaskType.IMAGE_CLASSIFICATION,
            [],
            False,
            InputSpec(8, 8),
            now,
        )
    )
    job = store.create_job(
        Job(str(uuid.uuid4()), project.id, JobState.RUNNING, Hyperparameters(), now)
    )
    return job.id


def _finish(store: MetadataStore, job_id: str) -> None:
    """End the job as a worker does: the state first, then its STATE event."""
    store.finish_job(job_id, JobState.SUCCEEDED)
    store.append_event(job_id, EventKind.STATE, {"state": JobState.SUCCEEDED.value})


def test_async_watchers_that_stop_reading_get_every_event_even_past_the_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A tail of 8 events: the lagging watchers fall further behind than it reaches, so the rest
    # must come from the store (the path a phone that was away for a while takes).
    monkeypatch.setattr(events_module, "_TAIL_EVENTS", 8)
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    job_id = _job(store)
    store.append_event(job_id, EventKind.STATE, {"state": "running"})
    hub = EventHub(store, poll_interval=0.01)
    hub.start()
    count = 60

    def finished() -> bool:
        job = store.get_job(job_id)
        return job is not None and job.state.is_terminal

    def write_all() -> None:
        for n in range(count):
            store.append_event(job_id, EventKind.PROGRESS, {"batch": n})
            hub.notify()
        _finish(store, job_id)
        hub.notify()

    async def run() -> dict[str, list[int]]:
        all_written = asyncio.Event()
        got: dict[str, list[int]] = {"prompt": [], "lagging": [], "late": []}

        async def watch(name: str, pause: bool) -> None:
            async for ev in hub.watch_async(job_id, 0, finished):
                if ev is None:
                    continue
                got[name].append(ev.seq)
                if pause and len(got[name]) == 1:
                    await all_written.wait()  # reads nothing more until the job has ended

        prompt = asyncio.create_task(watch("prompt", False))
        lagging = asyncio.create_task(watch("lagging", True))
        while not got["lagging"] or not got["prompt"]:
            await asyncio.sleep(0.01)
        await asyncio.to_thread(write_all)
        # The prompt watcher has had everything before the lagging one reads on.
        await asyncio.wait_for(prompt, 60)
        all_written.set()
        # And one that connects only now, from the start, joins a tail that moved on.
        late = asyncio.create_task(watch("late", False))
        await asyncio.wait_for(asyncio.gather(lagging, late), 60)
        return got

    try:
        got = asyncio.run(run())
    finally:
        hub.stop()
        store.close()
    want = list(range(1, count + 3))
    assert got["prompt"] == want
    assert got["lagging"] == want
    assert got["late"] == want


def test_a_watcher_gets_events_that_come_after_the_job_ended(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's state is written before its final event, as two commits; under load more
    arrives between them than a grace time. The grace counts from the last event delivered,
    so a stream ends only after nothing at all came for that long."""
    monkeypatch.setattr(events_module, "FINAL_EVENT_GRACE_SECONDS", 2.0)
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'm.db'}")
    job_id = _job(store)
    store.append_event(job_id, EventKind.STATE, {"state": "running"})
    store.finish_job(job_id, JobState.SUCCEEDED)  # the state first; events still to come
    hub = EventHub(store, poll_interval=0.01)
    hub.start()
    gaps = 20  # x 0.2 s = 4 s after the job ended, twice the grace

    async def run() -> list[int]:
        seqs: list[int] = []

        def finished() -> bool:
            return True

        def late_writer() -> None:
            for n in range(gaps):
                time.sleep(0.2)
                store.append_event(job_id, EventKind.LOG, {"message": f"late {n}"})
                hub.notify()
            store.append_event(job_id, EventKind.STATE, {"state": JobState.SUCCEEDED.value})
            hub.notify()

        writer = asyncio.ensure_future(asyncio.to_thread(late_writer))
        async for ev in hub.watch_async(job_id, 0, finished):
            if ev is not None:
                seqs.append(ev.seq)
        await writer
        return seqs

    try:
        seqs = asyncio.run(run())
    finally:
        hub.stop()
        store.close()
    assert seqs == list(range(1, gaps + 3))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Container, str]]:
    container = build_container(Settings(data_dir=tmp_path / "data", warm_worker=False))
    container.start()
    server, port = build_grpc_server(container, "127.0.0.1:0")
    server.start()
    try:
        yield container, f"127.0.0.1:{port}"
    finally:
        server.stop(grace=None).wait()
        container.close()


def test_grpc_watchers_held_back_by_flow_control_get_every_event(
    served: tuple[Container, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Big events and clients that stop reading: HTTP/2 flow control stops the server's
    streams, the job ends meanwhile, and each watcher still gets 1..N once it reads on."""
    monkeypatch.setattr(events_module, "_TAIL_EVENTS", 16)
    container, target = served
    store = container.store
    job_id = _job(store)
    store.append_event(job_id, EventKind.STATE, {"state": "running"})
    token = container.tokens.create_bootstrap_admin()
    count, watchers = 120, 4
    payload = "x" * 32_000  # 120 x 32 KB: far more than a stream's flow-control window
    all_written = threading.Event()
    received: dict[int, list[int]] = {}
    first = threading.Barrier(watchers + 1)

    def watch(i: int) -> None:
        channel = grpc.intercept_channel(grpc.insecure_channel(target), BearerToken(token))
        stub: Any = training_pb2_grpc.TrainingServiceStub(channel)
        seqs: list[int] = []
        try:
            for ev in stub.WatchJob(training_pb2.WatchJobRequest(job_id=job_id), timeout=90):
                seqs.append(ev.seq)
                if len(seqs) == 1:
                    first.wait(timeout=30)
                    all_written.wait(timeout=60)  # a phone that stopped reading for a while
        finally:
            received[i] = seqs
            channel.close()

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(watchers)]
    for t in threads:
        t.start()
    first.wait(timeout=30)
    for n in range(count):
        store.append_event(job_id, EventKind.LOG, {"message": f"{n} {payload}"})
        container.hub.notify()
    _finish(store, job_id)
    container.hub.notify()
    all_written.set()
    for t in threads:
        t.join(timeout=90)
    want = list(range(1, count + 3))
    assert all(received[i] == want for i in range(watchers)), {
        i: (len(s), s[-3:]) for i, s in received.items()
    }
