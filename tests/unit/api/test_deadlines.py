"""Server-side deadlines: a real gRPC server with short limits, and the SSE stream's maximum age.

Each test sets the limits to fractions of a second, then makes a call overrun them the way a
phone would (no client deadline, a stalled client stream, a watch that outlives its limit) and
checks the call ends with DEADLINE_EXCEEDED and code 73, that the handler thread is freed, and
that a client reconnecting from its last sequence number misses nothing. Watchers wait on the
event loop: ten times more of them than the server has threads are all served.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import pytest
from fastapi.testclient import TestClient

from mobiletrain._proto.mobiletrain.v1 import (
    datasets_pb2,
    datasets_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from mobiletrain.api.grpc.server import build_grpc_server
from mobiletrain.api.rest.app import create_app
from mobiletrain.client.sdk import BearerToken, Client
from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.core.types import EventKind, Hyperparameters, Job, JobState
from mobiletrain.wiring import build_container

pytestmark = pytest.mark.timeout(60)

UNARY_SECONDS = 0.5
STREAM_SECONDS = 1.0
GRACE_SECONDS = 0.5
THREADS = 3


@dataclass
class Api:
    container: Container
    projects: Any
    datasets: Any
    training: Any
    address: str
    token: str


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    settings = Settings(
        data_dir=tmp_path / "data",
        grpc_unary_timeout_seconds=UNARY_SECONDS,
        stream_max_seconds=STREAM_SECONDS,
        grpc_deadline_grace_seconds=GRACE_SECONDS,
        grpc_threads=THREADS,
    )
    container = build_container(settings)
    container.hub.start()  # event wake-ups; no executor, so nothing trains
    server, port = build_grpc_server(container, "127.0.0.1:0")
    server.start()
    token = container.tokens.create_bootstrap_admin()
    channel = grpc.intercept_channel(grpc.insecure_channel(f"127.0.0.1:{port}"), BearerToken(token))
    try:
        yield Api(
            container,
            projects_pb2_grpc.ProjectServiceStub(channel),
            datasets_pb2_grpc.DatasetServiceStub(channel),
            training_pb2_grpc.TrainingServiceStub(channel),
            f"127.0.0.1:{port}",
            token,
        )
    finally:
        channel.close()
        server.stop(grace=None).wait()
        container.close()


def error_of(exc: Any) -> tuple[grpc.StatusCode, int]:
    trailers = dict(exc.trailing_metadata() or ())
    return exc.code(), int(trailers.get("mobiletrain-error-code", 0))


def running_job(container: Container) -> Job:
    """A job the (absent) executor never touches: its events are written by the test."""
    project = container.projects.create(f"p{uuid.uuid4().hex[:8]}")
    job = Job(
        id=str(uuid.uuid4()),
        project_id=project.id,
        state=JobState.RUNNING,
        hyperparameters=Hyperparameters(epochs=2),
        created_at=datetime.now(UTC),
        attempts=1,
    )
    return container.store.create_job(job)


def emit(container: Container, job: Job, kind: EventKind, **data: Any) -> int:
    seq = container.store.append_event(job.id, kind, data).seq
    container.hub.notify()
    return seq


def test_a_unary_call_stuck_on_the_server_is_cut_at_its_deadline(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.container.projects.create("slow")
    real_get = api.container.projects.get
    release = threading.Event()

    def stuck_get(name: str) -> Any:
        release.wait(10)  # a dependency that hangs
        return real_get(name)

    monkeypatch.setattr(api.container.projects, "get", stuck_get)
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        api.projects.GetProject(projects_pb2.GetProjectRequest(project="slow"))  # no deadline
    elapsed = time.monotonic() - started
    release.set()
    assert error_of(info.value) == (grpc.StatusCode.DEADLINE_EXCEEDED, 73)
    assert "deadline" in (info.value.details() or "")
    assert UNARY_SECONDS * 0.8 < elapsed < UNARY_SECONDS + 3


def test_a_watch_ends_at_the_maximum_stream_duration_and_resumes_without_loss(api: Api) -> None:
    job = running_job(api.container)
    emit(api.container, job, EventKind.STATE, state="running", attempt=1)
    received: list[int] = []
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        for event in api.training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id)):
            received.append(event.seq)
            if event.seq == 1:
                emit(api.container, job, EventKind.LOG, message="still going")
    elapsed = time.monotonic() - started
    # Ended by the handler itself when its deadline expired, not by the hard stop.
    assert error_of(info.value) == (grpc.StatusCode.DEADLINE_EXCEEDED, 73)
    assert STREAM_SECONDS * 0.8 < elapsed < STREAM_SECONDS + GRACE_SECONDS
    assert received == [1, 2]

    # Events written while nobody watched arrive on reconnection, then the final one ends it.
    emit(api.container, job, EventKind.EPOCH, epoch=1, epochs=2, loss=0.5)
    api.container.store.finish_job(job.id, JobState.SUCCEEDED, model_version=1)
    emit(api.container, job, EventKind.STATE, state="succeeded")
    after = received[-1]
    resumed = [
        e.seq
        for e in api.training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id, after_seq=after))
    ]
    assert resumed == [3, 4]


def test_a_stalled_upload_stream_is_stopped_and_its_thread_freed(api: Api) -> None:
    api.container.projects.create("stalled")
    hang = threading.Event()

    def stalled_requests() -> Iterator[Any]:
        yield datasets_pb2.UploadSamplesRequest(
            project="stalled",
            header=datasets_pb2.SampleHeader(client_id="a", label="x", size=1000),
        )
        hang.wait(30)  # the phone keeps the connection but sends nothing more

    outcomes: list[tuple[grpc.StatusCode, float]] = []

    def upload() -> None:
        started = time.monotonic()
        try:
            api.datasets.UploadSamples(stalled_requests())
        except grpc.RpcError as exc:
            outcomes.append((exc.code(), time.monotonic() - started))

    # As many stalled uploads as the server has threads: without deadlines it would be stuck.
    uploaders = [threading.Thread(target=upload) for _ in range(THREADS)]
    for t in uploaders:
        t.start()
    for t in uploaders:
        t.join(15)
    hang.set()
    assert len(outcomes) == THREADS
    for code, elapsed in outcomes:
        assert code is grpc.StatusCode.DEADLINE_EXCEEDED
        assert elapsed < STREAM_SECONDS + GRACE_SECONDS + 3
    # The threads are free again: an ordinary call is answered.
    reply = api.projects.GetProject(projects_pb2.GetProjectRequest(project="stalled"), timeout=5)
    assert reply.name == "stalled"


def test_calls_within_their_deadline_are_untouched(api: Api) -> None:
    api.container.projects.create("quick")
    for _ in range(5):
        assert api.projects.GetProject(projects_pb2.GetProjectRequest(project="quick")).name
    time.sleep(UNARY_SECONDS + 0.3)  # their watchdog entries come due: nothing may happen
    assert api.projects.GetProject(projects_pb2.GetProjectRequest(project="quick")).name


def test_watchers_hold_no_thread(api: Api) -> None:
    # Ten times more watchers than the server has threads: all of them are served, and an
    # ordinary call is still answered while they wait.
    job = running_job(api.container)
    emit(api.container, job, EventKind.STATE, state="running")
    watchers = 10 * THREADS
    received: list[list[int]] = [[] for _ in range(watchers)]
    first_seen = threading.Barrier(watchers + 1, timeout=20)

    def watch(i: int) -> None:
        stream = api.training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id), timeout=30)
        for event in stream:
            received[i].append(event.seq)
            if event.seq == 1:
                first_seen.wait()

    threads = [threading.Thread(target=watch, args=(i,)) for i in range(watchers)]
    for t in threads:
        t.start()
    first_seen.wait()  # every watcher is connected and waiting for the next event
    api.container.projects.create("busy")
    reply = api.projects.GetProject(projects_pb2.GetProjectRequest(project="busy"), timeout=5)
    assert reply.name == "busy"
    api.container.store.finish_job(job.id, JobState.SUCCEEDED, model_version=1)
    emit(api.container, job, EventKind.STATE, state="succeeded")
    for t in threads:
        t.join(20)
    assert received == [[1, 2]] * watchers


def test_an_sse_stream_ends_at_its_maximum_age_and_resumes_from_last_event_id(
    tmp_path: Path,
) -> None:
    container = build_container(Settings(data_dir=tmp_path / "data", stream_max_seconds=1.0))
    container.hub.start()
    try:
        admin = container.tokens.create_bootstrap_admin()
        with TestClient(create_app(container), headers={"Authorization": f"Bearer {admin}"}) as c:
            job = running_job(container)
            emit(container, job, EventKind.STATE, state="running")
            started = time.monotonic()
            with c.stream("GET", f"/v1/jobs/{job.id}/events") as r:
                assert r.status_code == 200
                text = "".join(r.iter_text())  # returns when the server ends the stream
            assert 0.8 < time.monotonic() - started < 5
            ids = [line[4:] for line in text.splitlines() if line.startswith("id: ")]
            assert ids == ["1"]
            emit(container, job, EventKind.LOG, message="while away")
            container.store.finish_job(job.id, JobState.FAILED, error="boom")
            emit(container, job, EventKind.STATE, state="failed", error="boom")
            with c.stream(
                "GET", f"/v1/jobs/{job.id}/events", headers={"Last-Event-ID": ids[-1]}
            ) as r:
                text = "".join(r.iter_text())
            assert [line[4:] for line in text.splitlines() if line.startswith("id: ")] == [
                "2",
                "3",
            ]
    finally:
        container.close()


def test_the_sdk_watch_reconnects_when_the_server_ends_an_old_stream(api: Api) -> None:
    job = running_job(api.container)
    emit(api.container, job, EventKind.STATE, state="running")

    def finish_later() -> None:
        time.sleep(STREAM_SECONDS * 2.5)  # outlives two streams
        emit(api.container, job, EventKind.LOG, message="late")
        api.container.store.finish_job(job.id, JobState.SUCCEEDED, model_version=1)
        emit(api.container, job, EventKind.STATE, state="succeeded")

    writer = threading.Thread(target=finish_later)
    writer.start()
    client = Client(api.address, token=api.token)
    try:
        seqs = [event.seq for event in client.watch_job(job.id)]
    finally:
        client.close()
        writer.join()
    assert seqs == [1, 2, 3]
