"""The gRPC transport end to end: a real server over a real container, real channels and stubs.

No training runs here: jobs and their events are written straight into the metadata store, and
model versions are registered with artifacts put into the blob store by hand.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from PIL import Image

from mobiletrain._proto.mobiletrain.v1 import (
    common_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from mobiletrain.api.grpc.server import SERVICE_NAMES, build_grpc_server
from mobiletrain.client.sdk import BearerToken
from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.core.ports import Predictor
from mobiletrain.core.types import (
    Artifact,
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobState,
    ModelFormat,
    ModelVersion,
)
from mobiletrain.wiring import build_container

pytestmark = pytest.mark.timeout(120)

CHUNK = 256 * 1024


@dataclass
class Api:
    """A running server and stubs connected to it."""

    container: Container
    channel: grpc.Channel
    projects: Any
    datasets: Any
    training: Any
    models: Any


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    container = build_container(Settings(data_dir=tmp_path / "data"))
    container.start()
    server, port = build_grpc_server(container, "127.0.0.1:0")
    server.start()
    channel = grpc.intercept_channel(
        grpc.insecure_channel(f"127.0.0.1:{port}"),
        BearerToken(container.tokens.create_bootstrap_admin()),
    )
    try:
        yield Api(
            container=container,
            channel=channel,
            projects=projects_pb2_grpc.ProjectServiceStub(channel),
            datasets=datasets_pb2_grpc.DatasetServiceStub(channel),
            training=training_pb2_grpc.TrainingServiceStub(channel),
            models=models_pb2_grpc.ModelServiceStub(channel),
        )
    finally:
        channel.close()
        server.stop(grace=None).wait()
        container.close()


def rpc_error(call: Callable[[], Any]) -> tuple[grpc.StatusCode, int, str]:
    """Run a failing call; return its status, the mobiletrain error code number and details."""
    with pytest.raises(grpc.RpcError) as info:
        result = call()
        if isinstance(result, Iterator):  # a server stream fails when read
            list(result)
    err: Any = info.value
    trailers = dict(err.trailing_metadata() or ())
    return err.code(), int(trailers["mobiletrain-error-code"]), err.details()


def image(seed: int, fmt: str = "PNG", size: int = 16) -> bytes:
    """An encoded image of random pixels (distinct per seed)."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format=fmt)
    return buf.getvalue()


def big_noisy_png(seed: int = 7, side: int = 720) -> bytes:
    """A PNG of random pixels: it does not compress, so it is well over 1 MiB."""
    data = image(seed, "PNG", side)
    assert len(data) > 1024 * 1024
    return data


def inline(client_id: str, label: str, data: bytes, sha256: str = "") -> Any:
    return datasets_pb2.InlineSample(client_id=client_id, label=label, data=data, sha256=sha256)


def batch_request(project: str, *samples: Any) -> Any:
    return datasets_pb2.UploadSamplesRequest(
        project=project, inline_batch=datasets_pb2.InlineSampleBatch(samples=list(samples))
    )


def chunked_requests(
    client_id: str, label: str, data: bytes, sha256: str = "", project: str = ""
) -> list[Any]:
    header = datasets_pb2.SampleHeader(
        client_id=client_id, label=label, size=len(data), sha256=sha256
    )
    messages = [datasets_pb2.UploadSamplesRequest(project=project, header=header)]
    for offset in range(0, len(data), CHUNK):
        messages.append(
            datasets_pb2.UploadSamplesRequest(
                chunk=datasets_pb2.SampleChunk(
                    client_id=client_id, offset=offset, data=data[offset : offset + CHUNK]
                )
            )
        )
    return messages


def create_project(api: Api, name: str = "flowers", labels: tuple[str, ...] = ()) -> Any:
    return api.projects.CreateProject(projects_pb2.CreateProjectRequest(name=name, labels=labels))


def upload(api: Api, messages: list[Any]) -> Any:
    return api.datasets.UploadSamples(iter(messages), timeout=30)


# -- projects -----------------------------------------------------------------------------------


def test_create_get_and_list_projects(api: Api) -> None:
    created = api.projects.CreateProject(
        projects_pb2.CreateProjectRequest(
            name="flowers",
            labels=["rose", "tulip"],
            input_spec=common_pb2.InputSpec(width=64, color_mode=common_pb2.COLOR_MODE_GRAYSCALE),
        )
    )
    assert created.id and created.name == "flowers"
    assert created.task == common_pb2.TASK_TYPE_IMAGE_CLASSIFICATION
    assert list(created.labels) == ["rose", "tulip"] and created.labels_fixed
    spec = created.input_spec
    assert (spec.width, spec.height, spec.channels) == (64, 96, 1)
    assert spec.color_mode == common_pb2.COLOR_MODE_GRAYSCALE
    assert spec.normalization == common_pb2.NORMALIZATION_ZERO_ONE
    assert spec.scale == pytest.approx(1 / 255) and spec.offset == 0
    assert created.promoted_version == 0 and created.created_at.seconds > 0

    by_name = api.projects.GetProject(projects_pb2.GetProjectRequest(project="flowers"))
    by_id = api.projects.GetProject(projects_pb2.GetProjectRequest(project=created.id))
    assert by_name == by_id == created

    create_project(api, "cars")
    create_project(api, "birds")
    first = api.projects.ListProjects(projects_pb2.ListProjectsRequest(page_size=2))
    assert [p.name for p in first.projects] == ["flowers", "cars"] and first.next_page_token
    second = api.projects.ListProjects(
        projects_pb2.ListProjectsRequest(page_size=2, page_token=first.next_page_token)
    )
    assert [p.name for p in second.projects] == ["birds"] and second.next_page_token == ""
    # Page sizes above the server maximum are clamped, as common.proto promises.
    everything = api.projects.ListProjects(projects_pb2.ListProjectsRequest(page_size=100_000))
    assert len(everything.projects) == 3


def test_project_errors_carry_status_and_code(api: Api) -> None:
    create_project(api, "flowers")
    code, number, details = rpc_error(
        lambda: api.projects.GetProject(projects_pb2.GetProjectRequest(project="nope"))
    )
    assert (code, number) == (grpc.StatusCode.NOT_FOUND, 10) and "nope" in details
    code, number, _ = rpc_error(lambda: create_project(api, "flowers"))
    assert (code, number) == (grpc.StatusCode.ALREADY_EXISTS, 11)
    code, number, _ = rpc_error(lambda: create_project(api, "a/b"))
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 12)
    unknown_task: Any = 7  # a TaskType number this server does not know
    code, number, _ = rpc_error(
        lambda: api.projects.CreateProject(
            projects_pb2.CreateProjectRequest(name="x", task=unknown_task)
        )
    )
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 14)
    code, number, _ = rpc_error(
        lambda: api.projects.CreateProject(
            projects_pb2.CreateProjectRequest(name="y", input_spec=common_pb2.InputSpec(width=4))
        )
    )
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 13)
    code, number, _ = rpc_error(
        lambda: api.projects.ListProjects(projects_pb2.ListProjectsRequest(page_token="x"))
    )
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 30)


def test_unexpected_failures_are_internal_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret: /srv/data/mobiletrain.db is locked")

    monkeypatch.setattr(api.container.projects, "get", boom)
    monkeypatch.setattr(api.container.training, "prepare_watch", boom)
    code, number, details = rpc_error(
        lambda: api.projects.GetProject(projects_pb2.GetProjectRequest(project="p"))
    )
    assert (code, number) == (grpc.StatusCode.INTERNAL, 1)
    assert "secret" not in details and "RuntimeError" not in details
    code, number, details = rpc_error(
        lambda: api.training.WatchJob(training_pb2.WatchJobRequest(job_id="j"))
    )
    assert (code, number) == (grpc.StatusCode.INTERNAL, 1) and "secret" not in details


# -- datasets -----------------------------------------------------------------------------------


def test_upload_inline_batch_rejects_only_the_bad_samples(api: Api) -> None:
    create_project(api, "flowers")
    good = [
        inline("p1", "rose", image(1, "PNG")),
        inline("j1", "rose", image(2, "JPEG")),
        inline("p2", "tulip", image(3, "PNG")),
        inline("j2", "tulip", image(4, "JPEG")),
    ]
    corrupt = image(5, "PNG")[:60]  # PNG magic bytes, truncated body
    response = upload(
        api,
        [
            batch_request("flowers", good[0], good[1], inline("bad", "rose", corrupt)),
            batch_request("", good[2], inline("txt", "tulip", b"hello, not an image")),
            batch_request("flowers", good[3], inline("", "tulip", image(6))),
        ],
    )
    results = list(response.results)
    assert [r.client_id for r in results] == ["p1", "j1", "bad", "p2", "txt", "j2", ""]
    statuses = [r.status for r in results]
    accepted, rejected = datasets_pb2.SAMPLE_STATUS_ACCEPTED, datasets_pb2.SAMPLE_STATUS_REJECTED
    assert statuses == [accepted, accepted, rejected, accepted, rejected, accepted, rejected]
    assert [r.error_code for r in results] == [0, 0, 26, 0, 25, 0, 28]
    assert all(r.sample_id for r in results if r.status == accepted)
    assert not results[2].sample_id and results[2].reason
    assert (response.accepted, response.duplicates, response.rejected) == (4, 0, 3)


def test_upload_big_image_in_chunks_and_read_it_back(api: Api) -> None:
    create_project(api, "flowers")
    data = big_noisy_png()
    sha = hashlib.sha256(data).hexdigest()
    messages = chunked_requests("big-1", "rose", data, sha256=sha, project="flowers")
    assert len(messages) > 4
    response = upload(api, messages)
    (result,) = response.results
    assert result.status == datasets_pb2.SAMPLE_STATUS_ACCEPTED, result.reason

    stream = list(
        api.datasets.GetSampleData(
            datasets_pb2.GetSampleDataRequest(project="flowers", sample_id=result.sample_id)
        )
    )
    meta = stream[0].sample
    assert (meta.client_id, meta.sha256, meta.size) == ("big-1", sha, len(data))
    assert (meta.media_type, meta.width, meta.height) == ("image/png", 720, 720)
    assert all(m.data and len(m.data) <= CHUNK for m in stream[1:])
    assert [m.offset for m in stream[1:]] == list(range(0, len(data), CHUNK))
    assert b"".join(m.data for m in stream[1:]) == data


def test_chunked_sample_with_wrong_sha256_is_rejected_and_the_stream_goes_on(api: Api) -> None:
    create_project(api, "flowers")
    data = big_noisy_png(8)
    wrong = hashlib.sha256(b"something else").hexdigest()
    messages = [
        *chunked_requests("big-bad", "rose", data, sha256=wrong, project="flowers"),
        batch_request("", inline("small", "rose", image(9))),
        # Inline samples are checked too (upper-case hex is accepted).
        batch_request(
            "", inline("small-2", "rose", image(10), hashlib.sha256(image(10)).hexdigest().upper())
        ),
    ]
    response = upload(api, messages)
    bad, small, small2 = response.results
    assert bad.status == datasets_pb2.SAMPLE_STATUS_REJECTED and bad.error_code == 29
    assert "sha256" in bad.reason
    assert small.status == small2.status == datasets_pb2.SAMPLE_STATUS_ACCEPTED
    counts = api.datasets.GetClassCounts(datasets_pb2.GetClassCountsRequest(project="flowers"))
    assert counts.total == 2


def test_same_upload_twice_gives_duplicates(api: Api) -> None:
    create_project(api, "flowers")
    big = big_noisy_png(11)

    def messages() -> list[Any]:
        return [
            batch_request(
                "flowers",
                inline("a", "rose", image(1)),
                inline("b", "rose", image(2)),
                inline("c", "tulip", image(3, "JPEG")),
            ),
            *chunked_requests("d", "tulip", big),
        ]

    first = upload(api, messages())
    assert (first.accepted, first.duplicates, first.rejected) == (4, 0, 0)
    counts_before = api.datasets.GetClassCounts(
        datasets_pb2.GetClassCountsRequest(project="flowers")
    )
    second = upload(api, messages())
    assert (second.accepted, second.duplicates, second.rejected) == (0, 4, 0)
    assert [r.sample_id for r in second.results] == [r.sample_id for r in first.results]
    assert all(r.status == datasets_pb2.SAMPLE_STATUS_DUPLICATE for r in second.results)
    counts_after = api.datasets.GetClassCounts(
        datasets_pb2.GetClassCountsRequest(project="flowers")
    )
    assert counts_after == counts_before
    assert {c.label: c.count for c in counts_after.counts} == {"rose": 2, "tulip": 2}
    assert counts_after.total == 4


def test_header_problems_reject_one_sample(api: Api) -> None:
    create_project(api, "flowers")
    limit = api.container.settings.max_sample_bytes
    too_big = datasets_pb2.SampleHeader(client_id="huge", label="rose", size=limit + 1)
    empty = datasets_pb2.SampleHeader(client_id="empty", label="rose", size=0)
    unfinished = datasets_pb2.SampleHeader(client_id="cut", label="rose", size=5000)
    response = upload(
        api,
        [
            datasets_pb2.UploadSamplesRequest(project="flowers", header=too_big),
            # Chunks of a sample rejected at its header are skipped.
            datasets_pb2.UploadSamplesRequest(
                chunk=datasets_pb2.SampleChunk(client_id="huge", offset=0, data=b"x" * 100)
            ),
            datasets_pb2.UploadSamplesRequest(header=empty),
            batch_request("", inline("ok", "rose", image(1))),
            datasets_pb2.UploadSamplesRequest(header=unfinished),
            datasets_pb2.UploadSamplesRequest(
                chunk=datasets_pb2.SampleChunk(client_id="cut", offset=0, data=b"y" * 100)
            ),
        ],
    )
    assert [(r.client_id, r.error_code) for r in response.results] == [
        ("huge", 24),
        ("empty", 23),
        ("ok", 0),
        ("cut", 29),
    ]
    assert (response.accepted, response.rejected) == (1, 3)


def test_malformed_upload_streams_fail_the_call(api: Api) -> None:
    create_project(api, "flowers")
    sample = batch_request("", inline("a", "rose", image(1)))
    header = datasets_pb2.SampleHeader(client_id="big", label="rose", size=1000)

    def chunk(client_id: str, offset: int, size: int = 10) -> Any:
        return datasets_pb2.UploadSamplesRequest(
            chunk=datasets_pb2.SampleChunk(client_id=client_id, offset=offset, data=b"z" * size)
        )

    cases: list[tuple[list[Any], grpc.StatusCode, int]] = [
        ([], grpc.StatusCode.INVALID_ARGUMENT, 2),
        ([sample], grpc.StatusCode.INVALID_ARGUMENT, 2),  # no project on the first message
        ([batch_request("nope", inline("a", "rose", image(1)))], grpc.StatusCode.NOT_FOUND, 10),
        (
            [datasets_pb2.UploadSamplesRequest(project="flowers")],
            grpc.StatusCode.INVALID_ARGUMENT,
            2,
        ),
        (
            [batch_request("flowers"), batch_request("other", inline("a", "rose", image(1)))],
            grpc.StatusCode.INVALID_ARGUMENT,
            2,
        ),
        ([batch_request("flowers"), chunk("x", 0)], grpc.StatusCode.INVALID_ARGUMENT, 29),
        (
            [datasets_pb2.UploadSamplesRequest(project="flowers", header=header), chunk("big", 5)],
            grpc.StatusCode.FAILED_PRECONDITION,
            80,  # UPLOAD_OFFSET_MISMATCH: the server holds 0 bytes of "big"
        ),
        (
            [datasets_pb2.UploadSamplesRequest(project="flowers", header=header), chunk("b2", 0)],
            grpc.StatusCode.INVALID_ARGUMENT,
            29,
        ),
        (
            [
                datasets_pb2.UploadSamplesRequest(project="flowers", header=header),
                chunk("big", 0, 1001),
            ],
            grpc.StatusCode.INVALID_ARGUMENT,
            29,
        ),
        (
            [datasets_pb2.UploadSamplesRequest(project="flowers", header=header), sample],
            grpc.StatusCode.INVALID_ARGUMENT,
            29,
        ),
    ]
    for messages, status, number in cases:
        code, got, _ = rpc_error(lambda m=messages: upload(api, m))  # type: ignore[misc]
        assert (code, got) == (status, number), messages


def test_upload_streams_lazily_to_the_core(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    """The first sample is processed before the client has sent the second message."""
    create_project(api, "flowers")
    datasets = api.container.datasets
    prepared = threading.Event()
    original = datasets._prepare

    def spy(*args: Any) -> Any:
        result = original(*args)
        prepared.set()
        return result

    monkeypatch.setattr(datasets, "_prepare", spy)

    def requests() -> Iterator[Any]:
        yield batch_request("flowers", inline("first", "rose", image(1)))
        assert prepared.wait(10), "the server waited for the whole stream"
        yield batch_request("", inline("second", "rose", image(2)))

    response = api.datasets.UploadSamples(requests(), timeout=30)
    assert response.accepted == 2


def test_list_delete_and_count_samples(api: Api) -> None:
    create_project(api, "flowers", labels=("rose", "tulip", "daisy"))
    samples = [inline(f"s{i}", "rose" if i < 3 else "tulip", image(i)) for i in range(5)]
    upload(api, [batch_request("flowers", *samples)])

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = api.datasets.ListSamples(
            datasets_pb2.ListSamplesRequest(project="flowers", page_size=2, page_token=token)
        )
        seen += [s.client_id for s in page.samples]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert seen == ["s0", "s1", "s2", "s3", "s4"] and pages == 3
    roses = api.datasets.ListSamples(
        datasets_pb2.ListSamplesRequest(project="flowers", label="rose")
    )
    assert [s.client_id for s in roses.samples] == ["s0", "s1", "s2"]
    assert all(s.media_type == "image/png" and s.width == 16 for s in roses.samples)
    code, number, _ = rpc_error(
        lambda: api.datasets.ListSamples(
            datasets_pb2.ListSamplesRequest(project="flowers", page_token="garbage")
        )
    )
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 30)

    counts = api.datasets.GetClassCounts(datasets_pb2.GetClassCountsRequest(project="flowers"))
    assert [(c.label, c.count) for c in counts.counts] == [("rose", 3), ("tulip", 2), ("daisy", 0)]
    assert counts.total == 5

    victim = roses.samples[0]
    deleted = api.datasets.DeleteSample(
        datasets_pb2.DeleteSampleRequest(project="flowers", sample_id=victim.id)
    )
    assert deleted.sample == victim
    code, number, _ = rpc_error(
        lambda: api.datasets.DeleteSample(
            datasets_pb2.DeleteSampleRequest(project="flowers", sample_id=victim.id)
        )
    )
    assert (code, number) == (grpc.StatusCode.NOT_FOUND, 20)
    code, number, _ = rpc_error(
        lambda: api.datasets.GetSampleData(
            datasets_pb2.GetSampleDataRequest(project="flowers", sample_id=victim.id)
        )
    )
    assert (code, number) == (grpc.StatusCode.NOT_FOUND, 20)
    counts = api.datasets.GetClassCounts(datasets_pb2.GetClassCountsRequest(project="flowers"))
    assert counts.counts[0].count == 2 and counts.total == 4


# -- training -----------------------------------------------------------------------------------


def test_start_job_needs_enough_data(api: Api) -> None:
    create_project(api, "flowers")
    upload(api, [batch_request("flowers", inline("a", "rose", image(1)))])
    code, number, details = rpc_error(
        lambda: api.training.StartJob(training_pb2.StartJobRequest(project="flowers"))
    )
    assert (code, number) == (grpc.StatusCode.FAILED_PRECONDITION, 42) and "2 labels" in details
    code, number, _ = rpc_error(
        lambda: api.training.StartJob(
            training_pb2.StartJobRequest(
                project="flowers", hyperparameters=training_pb2.Hyperparameters(epochs=0)
            )
        )
    )
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 41)
    code, number, _ = rpc_error(
        lambda: api.training.StartJob(training_pb2.StartJobRequest(project="nope"))
    )
    assert (code, number) == (grpc.StatusCode.NOT_FOUND, 10)
    assert api.container.store.list_jobs(None, 10, 0) == []


def insert_running_job(api: Api, project_id: str) -> Job:
    """A job the executor will not pick up (it only claims QUEUED jobs)."""
    job = Job(
        id=str(uuid.uuid4()),
        project_id=project_id,
        state=JobState.RUNNING,
        hyperparameters=Hyperparameters(epochs=2),
        created_at=datetime.now(UTC),
        attempts=1,
    )
    return api.container.store.create_job(job)


def append(api: Api, job_id: str, kind: EventKind, data: dict[str, Any]) -> int:
    seq = api.container.store.append_event(job_id, kind, data).seq
    api.container.hub.notify()
    return seq


def test_watch_job_resumes_and_ends_after_the_final_state(api: Api) -> None:
    project = create_project(api, "flowers")
    job = insert_running_job(api, project.id)
    append(api, job.id, EventKind.STATE, {"state": "running", "attempt": 1})
    append(api, job.id, EventKind.LOG, {"message": "loading 4 samples"})
    append(api, job.id, EventKind.PROGRESS, {"epoch": 1, "epochs": 2, "batch": 1, "batches": 3})

    stream = api.training.WatchJob(
        training_pb2.WatchJobRequest(job_id=job.id, after_seq=2), timeout=60
    )
    received: list[Any] = []
    done = threading.Event()

    def read() -> None:
        for event in stream:
            received.append(event)
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    deadline = time.monotonic() + 10
    while not received and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.seq for e in received] == [3]  # the stored event after after_seq came first

    epoch = {
        "epoch": 1,
        "epochs": 2,
        "loss": 0.9,
        "accuracy": 0.5,
        "val_loss": 1.1,
        "val_accuracy": 0.25,
        "seconds": 1.5,
    }
    append(api, job.id, EventKind.EPOCH, epoch)
    evaluation = {
        "accuracy": 0.75,
        "per_class": [
            {"label": "rose", "precision": 1.0, "recall": 0.5, "f1": 0.66, "support": 2},
            {"label": "tulip", "precision": 0.66, "recall": 1.0, "f1": 0.8, "support": 2},
        ],
        "confusion_matrix": [[1, 1], [0, 2]],
        "tflite_accuracy": {"float32": 0.75, "int8": 0.5},
        "something_new": [1, 2],
    }
    append(api, job.id, EventKind.EVALUATION, evaluation)
    api.container.store.finish_job(job.id, JobState.SUCCEEDED, model_version=1)
    append(api, job.id, EventKind.STATE, {"state": "succeeded", "model_version": 1})
    # An event after the final state is never sent: the stream has ended.
    append(api, job.id, EventKind.LOG, {"message": "late"})

    assert done.wait(15), "the stream did not end after the final state"
    reader.join()
    assert [e.seq for e in received] == [3, 4, 5, 6]
    progress, epoch_end, evaluated, final = received
    assert progress.kind == training_pb2.EVENT_KIND_PROGRESS
    assert progress.WhichOneof("payload") == "progress" and progress.progress.batches == 3
    assert epoch_end.epoch_end.val_accuracy == pytest.approx(0.25)
    assert epoch_end.epoch_end.seconds == pytest.approx(1.5)
    ev = evaluated.evaluation
    assert ev.accuracy == pytest.approx(0.75) and list(ev.labels) == ["rose", "tulip"]
    assert [list(r.counts) for r in ev.confusion_matrix] == [[1, 1], [0, 2]]
    assert {(a.format, round(a.accuracy, 2)) for a in ev.tflite_accuracy} == {
        (common_pb2.MODEL_FORMAT_FLOAT32, 0.75),
        (common_pb2.MODEL_FORMAT_INT8, 0.5),
    }
    assert '"something_new"' in ev.metrics_json
    assert final.state_changed.state == training_pb2.JOB_STATE_SUCCEEDED
    assert all(e.job_id == job.id and e.created_at.seconds > 0 for e in received)

    # A finished job replays its stored events (up to the final state) and ends.
    replay = list(api.training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id), timeout=30))
    assert [e.seq for e in replay] == [1, 2, 3, 4, 5, 6]
    assert replay[0].state_changed.state == training_pb2.JOB_STATE_RUNNING
    assert replay[1].log.message == "loading 4 samples"

    got = api.training.GetJob(training_pb2.GetJobRequest(job_id=job.id))
    assert got.state == training_pb2.JOB_STATE_SUCCEEDED and got.model_version == 1
    assert got.hyperparameters.epochs == 2 and got.hyperparameters.HasField("base_model")
    assert got.HasField("finished_at")
    listed = api.training.ListJobs(training_pb2.ListJobsRequest(project="flowers"))
    assert [j.id for j in listed.jobs] == [job.id]
    code, number, _ = rpc_error(
        lambda: api.training.CancelJob(training_pb2.CancelJobRequest(job_id=job.id))
    )
    assert (code, number) == (grpc.StatusCode.FAILED_PRECONDITION, 43)


def test_watch_job_errors_and_client_cancel(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    code, number, _ = rpc_error(
        lambda: api.training.WatchJob(training_pb2.WatchJobRequest(job_id="missing"))
    )
    assert (code, number) == (grpc.StatusCode.NOT_FOUND, 40)
    code, number, _ = rpc_error(
        lambda: api.training.GetJob(training_pb2.GetJobRequest(job_id="missing"))
    )
    assert (code, number) == (grpc.StatusCode.NOT_FOUND, 40)

    project = create_project(api, "flowers")
    job = insert_running_job(api, project.id)
    append(api, job.id, EventKind.STATE, {"state": "running"})
    ended = threading.Event()
    original = api.container.training.watch_async

    async def spy(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        try:
            async for item in original(*args, **kwargs):
                yield item
        finally:
            ended.set()  # the watch was closed: nothing of it is left running

    monkeypatch.setattr(api.container.training, "watch_async", spy)
    stream = api.training.WatchJob(training_pb2.WatchJobRequest(job_id=job.id))
    assert next(stream).seq == 1
    assert not ended.is_set()
    stream.cancel()
    assert ended.wait(10), "the server did not notice that the client went away"


# -- models -------------------------------------------------------------------------------------


def register_version(api: Api, project: Any, formats: dict[ModelFormat, bytes]) -> ModelVersion:
    """Store artifact bytes as blobs and register a model version that points at them."""
    blobs = api.container.blobs
    artifacts = {}
    for fmt, data in formats.items():
        artifacts[fmt] = Artifact(format=fmt, sha256=blobs.put(data), size=len(data))
    blobs.sync()
    spec = InputSpec.from_dict(
        {"width": 96, "height": 96, "color_mode": "rgb", "normalization": "zero-one"}
    )
    return api.container.store.create_model_version(
        ModelVersion(
            project_id=project.id,
            version=0,
            job_id=str(uuid.uuid4()),
            created_at=datetime.now(UTC),
            metrics={"accuracy": 0.9, "tflite_accuracy": {"float16": 0.875}},
            manifest={
                "labels": ["rose", "tulip", "daisy"],
                "input_spec": spec.to_dict(),
                "files": {f.value: {"sha256": a.sha256} for f, a in artifacts.items()},
            },
            artifacts=artifacts,
        )
    )


def test_download_model_with_resume(api: Api) -> None:
    project = create_project(api, "flowers")
    code, number, _ = rpc_error(
        lambda: api.models.DownloadModel(
            models_pb2.DownloadModelRequest(
                project="flowers", format=common_pb2.MODEL_FORMAT_FLOAT16
            )
        )
    )
    assert (code, number) == (grpc.StatusCode.FAILED_PRECONDITION, 53)

    data = np.random.default_rng(3).bytes(700_000)
    register_version(api, project, {ModelFormat.FLOAT16: data, ModelFormat.KERAS: b"keras"})
    stream = list(
        api.models.DownloadModel(
            models_pb2.DownloadModelRequest(
                project="flowers", format=common_pb2.MODEL_FORMAT_FLOAT16
            )
        )
    )
    info = stream[0].info
    assert stream[0].HasField("info") and not stream[0].data
    assert (info.version, info.format, info.size) == (1, common_pb2.MODEL_FORMAT_FLOAT16, len(data))
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.file_name == "flowers-v1-float16.tflite"
    assert '"labels"' in info.manifest_json
    assert all(not m.HasField("info") and 0 < len(m.data) <= CHUNK for m in stream[1:])
    assert [m.offset for m in stream[1:]] == list(range(0, len(data), CHUNK))
    assert b"".join(m.data for m in stream[1:]) == data

    # Resume: ask for version info.version from the bytes already received.
    start = 300_001
    resumed = list(
        api.models.DownloadModel(
            models_pb2.DownloadModelRequest(
                project=project.id,
                version=info.version,
                format=common_pb2.MODEL_FORMAT_FLOAT16,
                offset=start,
            )
        )
    )
    assert resumed[0].info.size == len(data) and resumed[1].offset == start
    tail = b"".join(m.data for m in resumed[1:])
    assert tail == data[start:]
    assert hashlib.sha256(data[:start] + tail).hexdigest() == info.sha256

    at_end = list(
        api.models.DownloadModel(
            models_pb2.DownloadModelRequest(
                project="flowers", format=common_pb2.MODEL_FORMAT_FLOAT16, offset=len(data)
            )
        )
    )
    assert len(at_end) == 1 and at_end[0].HasField("info")

    def failing(**kwargs: Any) -> tuple[grpc.StatusCode, int, str]:
        request = models_pb2.DownloadModelRequest(project="flowers", **kwargs)
        return rpc_error(lambda: api.models.DownloadModel(request))

    float16 = common_pb2.MODEL_FORMAT_FLOAT16
    past = failing(format=float16, offset=len(data) + 1)
    assert past[:2] == (grpc.StatusCode.OUT_OF_RANGE, 54)
    assert past[2] == (
        f"offset {len(data) + 1} is outside the {len(data)}-byte file "
        f"(valid offsets: 0 to {len(data)})"
    )
    assert failing(format=float16, offset=-1)[:2] == (grpc.StatusCode.OUT_OF_RANGE, 54)
    # An unset format is float32 (as over REST), which this version lacks.
    assert failing()[:2] == (grpc.StatusCode.NOT_FOUND, 51)
    assert failing(format=99)[:2] == (grpc.StatusCode.INVALID_ARGUMENT, 52)
    assert failing(format=common_pb2.MODEL_FORMAT_INT8)[:2] == (grpc.StatusCode.NOT_FOUND, 51)
    assert failing(format=float16, version=9)[:2] == (grpc.StatusCode.NOT_FOUND, 50)


def test_check_for_update_manifest_versions_and_promote(api: Api) -> None:
    project = create_project(api, "flowers")
    code, number, _ = rpc_error(
        lambda: api.models.CheckForUpdate(
            models_pb2.CheckForUpdateRequest(
                project="flowers", format=common_pb2.MODEL_FORMAT_FLOAT32
            )
        )
    )
    assert (code, number) == (grpc.StatusCode.FAILED_PRECONDITION, 53)

    v1 = register_version(api, project, {ModelFormat.FLOAT32: b"v1-float32"})
    v2 = register_version(api, project, {ModelFormat.FLOAT32: b"v2-float32"})
    sha1 = v1.artifacts[ModelFormat.FLOAT32].sha256
    sha2 = v2.artifacts[ModelFormat.FLOAT32].sha256

    def check(**kwargs: Any) -> Any:
        return api.models.CheckForUpdate(
            models_pb2.CheckForUpdateRequest(
                project="flowers", format=common_pb2.MODEL_FORMAT_FLOAT32, **kwargs
            )
        )

    fresh = check(current_sha256=sha2)
    assert fresh.not_modified and fresh.latest.version == 2 and fresh.latest.current
    assert fresh.artifact.sha256 == sha2 and fresh.artifact.size == len(b"v2-float32")
    stale = check(current_sha256=sha1)
    assert not stale.not_modified and stale.artifact.sha256 == sha2
    assert check(current_version=2).not_modified
    assert not check(current_version=1).not_modified
    assert not check().not_modified
    # An unset format is float32, as over REST.
    unset = api.models.CheckForUpdate(models_pb2.CheckForUpdateRequest(project="flowers"))
    assert unset.artifact.sha256 == sha2 and unset.latest.version == 2
    code, number, _ = rpc_error(
        lambda: api.models.CheckForUpdate(
            models_pb2.CheckForUpdateRequest(project="flowers", format=99)
        )
    )
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 52)

    manifest = api.models.GetManifest(models_pb2.GetManifestRequest(project="flowers"))
    assert manifest.version == 2 and list(manifest.labels) == ["rose", "tulip", "daisy"]
    assert manifest.input_spec.width == 96 and manifest.input_spec.channels == 3
    assert [a.sha256 for a in manifest.artifacts] == [sha2]
    assert '"version": 2' in manifest.manifest_json

    versions = api.models.ListModelVersions(
        models_pb2.ListModelVersionsRequest(project="flowers", page_size=1)
    )
    assert [v.version for v in versions.versions] == [2] and versions.versions[0].current
    assert versions.versions[0].metrics.accuracy == pytest.approx(0.9)
    assert versions.versions[0].metrics.tflite_accuracy[0].format == (
        common_pb2.MODEL_FORMAT_FLOAT16
    )
    older = api.models.ListModelVersions(
        models_pb2.ListModelVersionsRequest(
            project="flowers", page_size=1, page_token=versions.next_page_token
        )
    )
    assert [v.version for v in older.versions] == [1] and not older.versions[0].current
    assert older.next_page_token == ""

    promoted = api.models.PromoteVersion(
        models_pb2.PromoteVersionRequest(project="flowers", version=1)
    )
    assert promoted.version == 1 and promoted.current
    assert check(current_sha256=sha1).not_modified
    got = api.projects.GetProject(projects_pb2.GetProjectRequest(project="flowers"))
    assert got.promoted_version == 1
    code, number, _ = rpc_error(
        lambda: api.models.PromoteVersion(
            models_pb2.PromoteVersionRequest(project="flowers", version=5)
        )
    )
    assert (code, number) == (grpc.StatusCode.NOT_FOUND, 50)
    code, number, _ = rpc_error(
        lambda: api.models.PromoteVersion(
            models_pb2.PromoteVersionRequest(project="flowers", version=-1)
        )
    )
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 2)
    # Version 0 removes the promotion (as in REST): the newest released version is current.
    unpinned = api.models.PromoteVersion(models_pb2.PromoteVersionRequest(project="flowers"))
    assert unpinned.version == 2 and unpinned.current


class FixedPredictor(Predictor):
    """Returns the same probabilities for every image."""

    def predict(
        self, model_key: str, load_model: Callable[[], bytes], spec: InputSpec, image: bytes
    ) -> list[float]:
        return [0.1, 0.7, 0.2]


def test_predict(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    project = create_project(api, "flowers")
    monkeypatch.setattr(api.container.models, "predictor", FixedPredictor())
    code, number, _ = rpc_error(
        lambda: api.models.Predict(models_pb2.PredictRequest(project="flowers", image=image(1)))
    )
    assert (code, number) == (grpc.StatusCode.FAILED_PRECONDITION, 53)
    register_version(api, project, {ModelFormat.FLOAT32: b"model"})
    response = api.models.Predict(
        models_pb2.PredictRequest(project="flowers", image=image(1), top_k=2)
    )
    assert [(p.label, p.index) for p in response.predictions] == [("tulip", 1), ("daisy", 2)]
    assert response.predictions[0].score == pytest.approx(0.7) and response.version == 1
    everything = api.models.Predict(models_pb2.PredictRequest(project="flowers", image=image(1)))
    assert len(everything.predictions) == 3  # default 5, capped at the number of labels
    code, number, _ = rpc_error(
        lambda: api.models.Predict(
            models_pb2.PredictRequest(project="flowers", image=image(1)[:50])
        )
    )
    assert (code, number) == (grpc.StatusCode.INVALID_ARGUMENT, 26)


class LoadingPredictor(Predictor):
    """Loads the model file it is given (as the LiteRT predictor does) and remembers its bytes."""

    def __init__(self) -> None:
        self.loaded: list[bytes] = []

    def predict(
        self, model_key: str, load_model: Callable[[], bytes], spec: InputSpec, image: bytes
    ) -> list[float]:
        self.loaded.append(load_model())
        return [0.1, 0.7, 0.2]


def test_predict_uses_the_best_format_the_version_has(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32, then float16, then dynamic-int8, then int8; FORMAT_NOT_FOUND (51) only for a
    version without any classifier file."""
    project = create_project(api, "flowers")
    predictor = LoadingPredictor()
    monkeypatch.setattr(api.container.models, "predictor", predictor)
    cases = [
        ({ModelFormat.INT8: b"i8"}, b"i8"),
        ({ModelFormat.INT8: b"i8", ModelFormat.DYNAMIC_INT8: b"dyn"}, b"dyn"),
        ({ModelFormat.INT8: b"i8", ModelFormat.FLOAT16: b"f16", ModelFormat.KERAS: b"k"}, b"f16"),
        ({ModelFormat.FLOAT16: b"f16", ModelFormat.FLOAT32: b"f32"}, b"f32"),
    ]
    for formats, expected in cases:
        version = register_version(api, project, formats).version
        request = models_pb2.PredictRequest(project="flowers", image=image(1), version=version)
        assert api.models.Predict(request).version == version
        assert predictor.loaded[-1] == expected, formats
    keras_only = register_version(api, project, {ModelFormat.KERAS: b"k"}).version
    code, number, message = rpc_error(
        lambda: api.models.Predict(
            models_pb2.PredictRequest(project="flowers", image=image(1), version=keras_only)
        )
    )
    assert (code, number) == (grpc.StatusCode.NOT_FOUND, 51)
    assert "it has: keras" in message


# -- health and reflection ----------------------------------------------------------------------


def test_health_serving_for_every_service(api: Api) -> None:
    stub = health_pb2_grpc.HealthStub(api.channel)
    for name in ("", *SERVICE_NAMES):
        response = stub.Check(health_pb2.HealthCheckRequest(service=name))
        assert response.status == health_pb2.HealthCheckResponse.SERVING, name
    with pytest.raises(grpc.RpcError) as info:
        stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND  # type: ignore[attr-defined]


def test_reflection_lists_the_services(api: Api) -> None:
    database = ProtoReflectionDescriptorDatabase(api.channel)
    services = set(database.get_services())
    assert set(SERVICE_NAMES) <= services
    assert "grpc.health.v1.Health" in services
    assert SERVICE_NAMES == (
        "mobiletrain.v1.ProjectService",
        "mobiletrain.v1.DatasetService",
        "mobiletrain.v1.TrainingService",
        "mobiletrain.v1.ModelService",
        "mobiletrain.v1.TokenService",
        "mobiletrain.v1.FederatedService",
    )
    described = database.FindFileContainingSymbol("mobiletrain.v1.ModelService")
    assert described.name == "mobiletrain/v1/models.proto"
