"""Core services over real stores (SQLite + packed blobs), without any transport."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.events import EventHub
from mobiletrain.core.ports import JobExecutor
from mobiletrain.core.services import (
    DatasetService,
    IncomingSample,
    ModelService,
    ProjectService,
    TrainingService,
)
from mobiletrain.core.types import EventKind, Hyperparameters, InputSpec, JobState, SampleStatus
from mobiletrain.core.validation import Limits
from mobiletrain.store.blobs import LocalPackBlobStore
from mobiletrain.store.sql import SqlMetadataStore


class RecordingExecutor(JobExecutor):
    def __init__(self) -> None:
        self.queued: list[str] = []
        self.cancelled: list[str] = []

    def notify_queued(self, job_id: str) -> None:
        self.queued.append(job_id)

    def notify_cancel(self, job_id: str) -> None:
        self.cancelled.append(job_id)


class Services:
    def __init__(self, tmp: Path) -> None:
        self.store = SqlMetadataStore(f"sqlite:///{tmp}/m.db")
        self.blobs = LocalPackBlobStore(tmp / "blobs")
        limits = Limits()
        self.hub = EventHub(self.store, poll_interval=0.01)
        self.executor = RecordingExecutor()
        self.projects = ProjectService(self.store, limits)
        self.datasets = DatasetService(self.store, self.blobs, self.projects, limits)
        self.training = TrainingService(self.store, self.projects, self.executor, self.hub, limits)
        self.models = ModelService(self.store, self.blobs, self.projects, None)


@pytest.fixture
def svc(tmp_path: Path) -> Iterator[Services]:
    s = Services(tmp_path)
    s.hub.start()
    yield s
    s.hub.stop()
    s.store.close()


def test_create_project_rules(svc: Services) -> None:
    p = svc.projects.create("flowers", labels=["rose", "tulip"], input_spec=InputSpec(64, 64))
    assert p.labels_fixed and svc.projects.get("flowers").id == p.id
    assert svc.projects.get(p.id).name == "flowers"
    with pytest.raises(MobiletrainError) as err:
        svc.projects.create("x", task="semantic-segmentation")
    assert (
        err.value.code is ErrorCode.UNSUPPORTED_TASK and "image-classification" in err.value.message
    )
    with pytest.raises(MobiletrainError) as err:
        svc.projects.create("y", input_spec=InputSpec(4, 4))
    assert err.value.code is ErrorCode.INVALID_INPUT_SPEC
    with pytest.raises(MobiletrainError) as err:
        svc.projects.get("nope")
    assert err.value.code is ErrorCode.PROJECT_NOT_FOUND


def test_upload_rejects_bad_samples_one_by_one(
    svc: Services, make_image: Callable[..., bytes]
) -> None:
    svc.projects.create("p")
    good = make_image(1)
    samples = [
        IncomingSample("a", "cat", good),
        IncomingSample("b", "cat", b"not an image"),
        IncomingSample("c", "dog", make_image(2)[:30]),
        IncomingSample("d", "dog", make_image(3, "JPEG")),
        IncomingSample("e", "bad\x07label", make_image(4)),
    ]
    summary = svc.datasets.upload("p", samples)
    statuses = [r.status for r in summary.results]
    assert statuses == [
        SampleStatus.ACCEPTED,
        SampleStatus.REJECTED,
        SampleStatus.REJECTED,
        SampleStatus.ACCEPTED,
        SampleStatus.REJECTED,
    ]
    assert summary.results[1].error_code is ErrorCode.UNSUPPORTED_MEDIA_TYPE
    assert summary.results[2].error_code is ErrorCode.CORRUPT_IMAGE
    assert summary.results[4].error_code is ErrorCode.INVALID_LABEL
    assert svc.datasets.class_counts("p") == {"cat": 1, "dog": 1}
    # open label set grew in order of arrival
    assert svc.projects.get("p").labels == ["cat", "dog"]


def test_one_sample_calls_are_verified_on_the_callers_thread(
    svc: Services, make_image: Callable[..., bytes]
) -> None:
    # A REST call per image hands its one sample to no pool; the checks are the same.
    svc.projects.create("p")
    jpeg = make_image(5, "JPEG", size=64)
    for data, code in (
        (jpeg[: len(jpeg) // 2], ErrorCode.CORRUPT_IMAGE),
        (jpeg[: len(jpeg) // 2] + b"\xff\xd9", ErrorCode.CORRUPT_IMAGE),
        (b"not an image", ErrorCode.UNSUPPORTED_MEDIA_TYPE),
    ):
        result = svc.datasets.upload("p", [IncomingSample("x", "cat", data)]).results[0]
        assert (result.status, result.error_code) == (SampleStatus.REJECTED, code)
    threads: list[str] = []
    real_prepare = svc.datasets._prepare

    def prepare(*args: object) -> object:
        threads.append(threading.current_thread().name)
        return real_prepare(*args)  # type: ignore[arg-type]

    svc.datasets._prepare = prepare  # type: ignore[method-assign]
    result = svc.datasets.upload("p", [IncomingSample("y", "cat", jpeg)]).results[0]
    assert result.status is SampleStatus.ACCEPTED
    assert threads == [threading.current_thread().name]
    assert svc.datasets.class_counts("p") == {"cat": 1}


def test_upload_twice_is_idempotent(svc: Services, make_image: Callable[..., bytes]) -> None:
    svc.projects.create("p")
    samples = [IncomingSample(f"id{i}", "ab"[i % 2], make_image(i)) for i in range(10)]
    first = svc.datasets.upload("p", samples, batch_size=3)
    assert first.count(SampleStatus.ACCEPTED) == 10
    again = svc.datasets.upload("p", samples, batch_size=4)
    assert again.count(SampleStatus.DUPLICATE) == 10
    assert [r.sample_id for r in again.results] == [r.sample_id for r in first.results]
    # same bytes and label under new client ids: still duplicates
    renamed = [IncomingSample(f"new{i}", s.label, s.data) for i, s in enumerate(samples)]
    assert svc.datasets.upload("p", renamed).count(SampleStatus.DUPLICATE) == 10
    assert svc.datasets.class_counts("p") == {"a": 5, "b": 5}


def test_client_id_reused_with_another_payload_is_a_conflict(
    svc: Services, make_image: Callable[..., bytes]
) -> None:
    """An idempotency key reused with other bytes or another label is REJECTED with
    CLIENT_ID_CONFLICT (34), in a later call and within one batch; the stored sample is kept.
    The same key with the same payload stays DUPLICATE, and so does the same payload under a
    new key (content dedup)."""
    from mobiletrain.core.uploads import ResumableUploads

    svc.projects.create("p")
    first = svc.datasets.upload("p", [IncomingSample("k1", "a", make_image(1))])
    assert first.count(SampleStatus.ACCEPTED) == 1
    again = svc.datasets.upload(
        "p",
        [
            IncomingSample("k1", "a", make_image(1)),  # a retry
            IncomingSample("k1", "a", make_image(2)),  # other bytes
            IncomingSample("k1", "b", make_image(1)),  # another label
            IncomingSample("k2", "a", make_image(3)),
            IncomingSample("k2", "a", make_image(4)),  # same batch, other bytes
            IncomingSample("k9", "a", make_image(1)),  # same payload, new key
        ],
    )
    statuses = [r.status for r in again.results]
    assert statuses == [
        SampleStatus.DUPLICATE,
        SampleStatus.REJECTED,
        SampleStatus.REJECTED,
        SampleStatus.ACCEPTED,
        SampleStatus.REJECTED,
        SampleStatus.DUPLICATE,
    ]
    for i in (1, 2, 4):
        assert again.results[i].error_code is ErrorCode.CLIENT_ID_CONFLICT
        assert again.results[i].sample_id in ("", None)
    assert "other bytes" in again.results[1].reason
    assert "another label" in again.results[2].reason
    assert again.results[5].sample_id == first.results[0].sample_id
    counts = svc.datasets.class_counts("p")
    assert counts["a"] == 2 and sum(counts.values()) == 2
    # The resumable path: opening an upload under a taken key with another payload fails.
    uploads = ResumableUploads(svc.store, svc.blobs, svc.projects, svc.datasets)
    stored = svc.store.get_sample_by_client_id(svc.projects.get("p").id, "k1")
    assert stored is not None
    assert uploads.open("p", "k1", "a", stored.size, stored.sha256).sample is not None
    for size, label, sha in (
        (stored.size + 1, "a", ""),
        (stored.size, "b", ""),
        (stored.size, "a", "0" * 64),
    ):
        with pytest.raises(MobiletrainError) as err:
            uploads.open("p", "k1", label, size, sha)
        assert err.value.code is ErrorCode.CLIENT_ID_CONFLICT


def test_fixed_labels_reject_others(svc: Services, make_image: Callable[..., bytes]) -> None:
    svc.projects.create("p", labels=["cat", "dog"])
    summary = svc.datasets.upload("p", [IncomingSample("x", "bird", make_image(1))])
    assert summary.results[0].error_code is ErrorCode.UNKNOWN_LABEL
    assert "cat, dog" in summary.results[0].reason


def test_list_get_delete_samples(svc: Services, make_image: Callable[..., bytes]) -> None:
    svc.projects.create("p")
    svc.datasets.upload("p", [IncomingSample(f"{i}", "a", make_image(i)) for i in range(5)])
    page = svc.datasets.list("p", page_size=2)
    assert len(page.items) == 2 and page.next_page_token
    rest = svc.datasets.list("p", page_size=10, page_token=page.next_page_token)
    assert len(rest.items) == 3 and rest.next_page_token == ""
    sample, data = svc.datasets.get_data("p", page.items[0].id)
    assert data == make_image(0)
    svc.datasets.delete("p", sample.id)
    with pytest.raises(MobiletrainError) as err:
        svc.datasets.delete("p", sample.id)
    assert err.value.code is ErrorCode.SAMPLE_NOT_FOUND
    with pytest.raises(MobiletrainError) as err:
        svc.datasets.list("p", page_token="../../etc")
    assert err.value.code is ErrorCode.INVALID_PAGE


def test_start_job_needs_data_and_valid_hyperparameters(
    svc: Services, make_image: Callable[..., bytes]
) -> None:
    svc.projects.create("p")
    with pytest.raises(MobiletrainError) as err:
        svc.training.start("p")
    assert err.value.code is ErrorCode.NOT_ENOUGH_DATA
    svc.datasets.upload("p", [IncomingSample(f"{i}", "ab"[i % 2], make_image(i)) for i in range(6)])
    with pytest.raises(MobiletrainError) as err:
        svc.training.start("p", Hyperparameters(epochs=0))
    assert err.value.code is ErrorCode.INVALID_HYPERPARAMETERS and "epochs" in err.value.message
    job = svc.training.start("p", Hyperparameters(epochs=2))
    assert svc.executor.queued == [job.id]
    assert svc.training.get(job.id).state is JobState.QUEUED


def test_cancel_queued_job_and_finished_job(
    svc: Services, make_image: Callable[..., bytes]
) -> None:
    svc.projects.create("p")
    svc.datasets.upload("p", [IncomingSample(f"{i}", "ab"[i % 2], make_image(i)) for i in range(4)])
    job = svc.training.start("p")
    assert svc.training.cancel(job.id).state is JobState.CANCELLED
    with pytest.raises(MobiletrainError) as err:
        svc.training.cancel(job.id)
    assert err.value.code is ErrorCode.JOB_FINISHED
    events = list(svc.training.watch(job.id))
    assert [e.data["state"] for e in events if e is not None] == ["queued", "cancelled"]


def test_watch_resumes_and_sees_every_later_event_once(
    svc: Services, make_image: Callable[..., bytes]
) -> None:
    svc.projects.create("p")
    svc.datasets.upload("p", [IncomingSample(f"{i}", "ab"[i % 2], make_image(i)) for i in range(4)])
    job = svc.training.start("p")
    svc.store.claim_job(job.id)
    seen: list[int] = []
    done = threading.Event()

    def watcher() -> None:
        for ev in svc.training.watch(job.id, after_seq=3):
            if ev is not None:
                seen.append(ev.seq)
        done.set()

    for i in range(5):
        svc.store.append_event(job.id, EventKind.EPOCH, {"epoch": i})
    thread = threading.Thread(target=watcher)
    thread.start()
    for i in range(5, 10):
        svc.store.append_event(job.id, EventKind.EPOCH, {"epoch": i})
    svc.store.finish_job(job.id, JobState.SUCCEEDED)
    svc.store.append_event(job.id, EventKind.STATE, {"state": "succeeded"})
    assert done.wait(10)
    # seq 1 is "queued", 2..11 the epochs, 12 the final state
    assert seen == list(range(4, 13))


def test_models_without_versions(svc: Services) -> None:
    svc.projects.create("p")
    with pytest.raises(MobiletrainError) as err:
        svc.models.get("p")
    assert err.value.code is ErrorCode.NO_MODEL
    with pytest.raises(MobiletrainError) as err:
        svc.models.artifact("p", 0, "tflite")
    assert err.value.code is ErrorCode.INVALID_FORMAT and "dynamic-int8" in err.value.message
