"""Domain ↔ protobuf conversions of the gRPC adapter, and the upload stream reassembly."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any

import pytest

from mobiletrain._proto.mobiletrain.v1 import (
    common_pb2,
    datasets_pb2,
    projects_pb2,
    training_pb2,
)
from mobiletrain.api.grpc import serde
from mobiletrain.api.grpc.upload import incoming_samples
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.services import DatasetService, Prediction, ProjectService
from mobiletrain.core.types import (
    Architecture,
    Artifact,
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobEvent,
    JobState,
    ModelFormat,
    ModelVersion,
    Normalization,
    Project,
    Sample,
    SampleResult,
    SampleStatus,
    TaskType,
    UploadSummary,
)
from mobiletrain.core.uploads import ResumableUploads
from mobiletrain.core.validation import Limits
from mobiletrain.store.blobs import LocalPackBlobStore
from mobiletrain.store.sql import SqlMetadataStore

NOW = datetime(2026, 5, 4, 12, 30, 15, 123456, tzinfo=UTC)

ENUM_PAIRS: list[tuple[type[Enum], Any, Any, Any]] = [
    (TaskType, serde.task_type_to_proto, serde.task_type_from_proto, common_pb2.TaskType),
    (ColorMode, serde.color_mode_to_proto, serde.color_mode_from_proto, common_pb2.ColorMode),
    (
        Normalization,
        serde.normalization_to_proto,
        serde.normalization_from_proto,
        common_pb2.Normalization,
    ),
    (
        ModelFormat,
        serde.model_format_to_proto,
        serde.model_format_from_proto,
        common_pb2.ModelFormat,
    ),
    (
        Architecture,
        serde.architecture_to_proto,
        serde.architecture_from_proto,
        training_pb2.Architecture,
    ),
    (JobState, serde.job_state_to_proto, serde.job_state_from_proto, training_pb2.JobState),
    (EventKind, serde.event_kind_to_proto, serde.event_kind_from_proto, training_pb2.EventKind),
    (
        SampleStatus,
        serde.sample_status_to_proto,
        serde.sample_status_from_proto,
        datasets_pb2.SampleStatus,
    ),
]


@pytest.mark.parametrize(("domain", "to_proto", "from_proto", "proto_enum"), ENUM_PAIRS)
def test_enums_cover_both_sides(
    domain: Any, to_proto: Any, from_proto: Any, proto_enum: Any
) -> None:
    numbers = {to_proto(member) for member in domain}
    assert numbers == {v for v in proto_enum.values() if v != 0}
    for member in domain:
        assert from_proto(to_proto(member)) is member
    with pytest.raises(MobiletrainError):
        from_proto(999)


def test_unspecified_enums_in_requests() -> None:
    assert serde.task_type_from_proto(0) is TaskType.IMAGE_CLASSIFICATION
    assert serde.color_mode_from_proto(0) is ColorMode.RGB
    assert serde.normalization_from_proto(0) is Normalization.ZERO_ONE
    assert serde.architecture_from_proto(0) is Architecture.SMALL_CNN
    for from_proto, code in [
        (serde.model_format_from_proto, ErrorCode.INVALID_FORMAT),
        (serde.job_state_from_proto, ErrorCode.INVALID_ARGUMENT),
    ]:
        with pytest.raises(MobiletrainError) as err:
            from_proto(0)
        assert err.value.code is code
    with pytest.raises(MobiletrainError) as err:
        serde.task_type_from_proto(5)
    assert (
        err.value.code is ErrorCode.UNSUPPORTED_TASK and "image-classification" in err.value.message
    )
    with pytest.raises(MobiletrainError) as err:
        serde.architecture_from_proto(42)
    assert err.value.code is ErrorCode.INVALID_HYPERPARAMETERS


def test_project_and_input_spec() -> None:
    spec = InputSpec(128, 64, ColorMode.GRAYSCALE, Normalization.MINUS_ONE_ONE)
    project = Project(
        "id-1", "flowers", TaskType.IMAGE_CLASSIFICATION, ["a", "b"], True, spec, NOW, 3
    )
    msg = serde.project_to_proto(project, 3)
    assert msg.input_spec.channels == 1 and msg.input_spec.scale == pytest.approx(1 / 127.5)
    assert msg.input_spec.offset == -1.0
    assert serde.project_from_proto(msg) == project
    assert serde.project_to_proto(project, None).promoted_version == 0
    assert serde.input_spec_from_proto(common_pb2.InputSpec()) == InputSpec()

    draft = serde.project_draft_from_proto(projects_pb2.CreateProjectRequest(name="x"))
    assert draft == serde.ProjectDraft(name="x")
    draft = serde.ProjectDraft("y", labels=["l"], input_spec=spec)
    assert serde.project_draft_from_proto(serde.project_draft_to_proto(draft)) == draft


def test_samples_and_upload_results() -> None:
    sample = Sample("s", "p", "c", "rose", "ab" * 32, 10, "image/png", 4, 5, NOW)
    assert serde.sample_from_proto(serde.sample_to_proto(sample)) == sample
    results = [
        SampleResult("a", SampleStatus.ACCEPTED, "s1"),
        SampleResult("b", SampleStatus.DUPLICATE, "s0", reason="client id already used"),
        SampleResult("c", SampleStatus.REJECTED, None, ErrorCode.CORRUPT_IMAGE, "bad"),
    ]
    msg = serde.upload_summary_to_proto(UploadSummary(results))
    assert (msg.accepted, msg.duplicates, msg.rejected) == (1, 1, 1)
    assert msg.results[2].error_code == 26 and msg.results[2].sample_id == ""
    assert serde.upload_summary_from_proto(msg).results == results
    counts = {"rose": 2, "tulip": 0}
    assert serde.class_counts_from_proto(serde.class_counts_to_proto(counts)) == counts


def test_hyperparameters() -> None:
    assert serde.hyperparameters_from_proto(None) == Hyperparameters()
    assert serde.hyperparameters_from_proto(training_pb2.Hyperparameters()) == Hyperparameters()
    partial = serde.hyperparameters_from_proto(
        training_pb2.Hyperparameters(
            epochs=3,
            class_weights=False,
            augment_zoom=0.0,
            architecture=training_pb2.ARCHITECTURE_MOBILENET_V2,
            formats=[common_pb2.MODEL_FORMAT_INT8, common_pb2.MODEL_FORMAT_INT8],
        )
    )
    assert partial == Hyperparameters(
        epochs=3,
        class_weights=False,
        architecture=Architecture.MOBILENET_V2,
        formats=[ModelFormat.INT8],
    )
    full = Hyperparameters(
        epochs=7,
        batch_size=8,
        learning_rate=0.01,
        validation_split=0.3,
        seed=1,
        architecture=Architecture.MOBILENET_V3_SMALL,
        base_model="base.keras",
        augment_flip=True,
        augment_rotation=0.1,
        augment_zoom=0.2,
        augment_contrast=0.3,
        early_stopping_patience=2,
        class_weights=False,
        dropout=0.5,
        formats=[ModelFormat.KERAS, ModelFormat.FLOAT16],
    )
    msg = serde.hyperparameters_to_proto(full)
    assert all(msg.HasField(name) for name in ("epochs", "base_model", "dropout", "augment_flip"))
    assert serde.hyperparameters_from_proto(msg) == full
    with pytest.raises(MobiletrainError) as err:
        serde.hyperparameters_from_proto(
            training_pb2.Hyperparameters(formats=[common_pb2.MODEL_FORMAT_UNSPECIFIED])
        )
    assert err.value.code is ErrorCode.INVALID_FORMAT


def test_jobs() -> None:
    job = Job("j", "p", JobState.QUEUED, Hyperparameters(), NOW)
    msg = serde.job_to_proto(job)
    assert not msg.HasField("started_at") and msg.model_version == 0
    assert serde.job_from_proto(msg) == job
    done = Job(
        "j",
        "p",
        JobState.SUCCEEDED,
        Hyperparameters(epochs=2),
        NOW,
        NOW + timedelta(seconds=1),
        NOW + timedelta(seconds=9),
        attempts=2,
        cancel_requested=True,
        model_version=4,
    )
    assert serde.job_from_proto(serde.job_to_proto(done)) == done


@pytest.mark.parametrize(
    ("kind", "data"),
    [
        (EventKind.STATE, {"state": "failed", "error": "out of memory"}),
        (EventKind.STATE, {"state": "queued"}),
        (
            EventKind.PROGRESS,
            {
                "epoch": 1,
                "epochs": 5,
                "batch": 2,
                "batches": 9,
                "samples_per_second": 12.5,
                "eta_seconds": 3.0,
            },
        ),
        (
            EventKind.EPOCH,
            {
                "epoch": 1,
                "epochs": 5,
                "loss": 0.5,
                "accuracy": 0.75,
                "val_loss": 0.25,
                "val_accuracy": 0.5,
                "seconds": 2.0,
            },
        ),
        (EventKind.LOG, {"message": "hello"}),
        (EventKind.LOG, {"message": "no weights", "level": "warning"}),
        (EventKind.EVALUATION, {"accuracy": 0.5, "labels": ["a", "b"], "extra": {"x": 1}}),
        (
            EventKind.PROGRESS,
            {
                "epoch": 1,
                "epochs": 5,
                "batch": 2,
                "batches": 9,
                "samples_per_second": 12.5,
                "eta_seconds": 3.0,
                "job_eta_seconds": 11.0,
                "phase": "training",
            },
        ),
        (EventKind.PHASE, {"phase": "exporting", "eta_seconds": 8.0}),
        (EventKind.PHASE, {"phase": "evaluating", "eta_seconds": None}),
        (
            EventKind.RELEASE,
            {
                "promoted": False,
                "action": "kept-candidate",
                "reason": "worse",
                "policy": {
                    "mode": "auto",
                    "margin": 0.02,
                    "min_accuracy": 0.5,
                    "min_per_class_recall": None,
                    "max_int8_drop": None,
                    "rollout_percent": 25,
                    "rollout_hours": 12.0,
                },
                "compared_format": "float32",
                "accuracy": 0.5,
                "current_version": 1,
                "current_accuracy": 0.9,
                "checks": ["a check"],
                "version": 2,
                "status": "candidate",
                "warnings": ["chance level"],
            },
        ),
    ],
)
def test_job_events_round_trip(kind: EventKind, data: dict[str, Any]) -> None:
    event = JobEvent("j", 7, kind, data, NOW)
    msg = serde.job_event_to_proto(event)
    assert msg.WhichOneof("payload") is not None and msg.seq == 7
    assert serde.job_event_from_proto(msg) == event


def test_job_events_tolerate_odd_data() -> None:
    odd = {"epoch": None, "loss": "nan?", "val_loss": float("nan"), "epochs": 2.0}
    msg = serde.job_event_to_proto(JobEvent("j", 1, EventKind.EPOCH, odd, NOW))
    assert msg.epoch_end.epoch == 0 and msg.epoch_end.loss == 0 and msg.epoch_end.epochs == 2
    evaluation = {
        "accuracy": 1,
        "per_class": [{"label": "a", "support": 3}, "junk"],
        "confusion_matrix": [[3]],
        "tflite": {"float16": {"accuracy": 0.5}, "unknown-format": 1.0},
    }
    ev = serde.job_event_to_proto(
        JobEvent("j", 2, EventKind.EVALUATION, evaluation, NOW)
    ).evaluation
    assert list(ev.labels) == ["a"] and ev.per_class[0].support == 3
    assert [(a.format, a.accuracy) for a in ev.tflite_accuracy] == [
        (common_pb2.MODEL_FORMAT_FLOAT16, 0.5)
    ]


def test_model_versions_and_predictions() -> None:
    artifacts = {
        ModelFormat.INT8: Artifact(ModelFormat.INT8, "c" * 64, 3),
        ModelFormat.KERAS: Artifact(ModelFormat.KERAS, "d" * 64, 9),
    }
    metrics = {"accuracy": 0.875, "tflite_accuracy": {"int8": 0.75}}
    model = ModelVersion("p", 2, "j", NOW, metrics, {"labels": ["a"]}, artifacts)
    msg = serde.model_version_to_proto(model, current=True)
    assert [a.format for a in msg.artifacts] == [
        common_pb2.MODEL_FORMAT_KERAS,
        common_pb2.MODEL_FORMAT_INT8,
    ]
    back = serde.model_version_from_proto(msg)
    assert back.artifacts == artifacts and back.metrics == metrics and back.version == 2
    # The list form of per-format accuracy is understood too.
    listed = serde.metrics_summary_to_proto(
        {"tflite_accuracy": [{"format": "int8", "accuracy": 0.25}]}
    )
    assert listed.tflite_accuracy[0].accuracy == 0.25
    prediction = Prediction("a", 0, 0.5)
    assert serde.prediction_from_proto(serde.prediction_to_proto(prediction)) == prediction


# -- upload stream ------------------------------------------------------------------------------


def _uploads(tmp_path: Path, max_sample_bytes: int = 10_000) -> ResumableUploads:
    """Real resumable uploads over temporary stores, with a project named "p"."""
    store = SqlMetadataStore(f"sqlite:///{tmp_path}/m.db")
    blobs = LocalPackBlobStore(tmp_path / "blobs")
    limits = Limits(max_sample_bytes=max_sample_bytes)
    projects = ProjectService(store, limits)
    projects.create("p")
    return ResumableUploads(store, blobs, projects, DatasetService(store, blobs, projects, limits))


def test_incoming_samples_reads_lazily(tmp_path: Path) -> None:
    consumed: list[int] = []

    def requests() -> Iterator[Any]:
        for i in range(3):
            consumed.append(i)
            yield datasets_pb2.UploadSamplesRequest(
                project="p" if i == 0 else "",
                inline_batch=datasets_pb2.InlineSampleBatch(
                    samples=[datasets_pb2.InlineSample(client_id=f"c{i}", label="l", data=b"x")]
                ),
            )

    samples = incoming_samples(requests(), "p", _uploads(tmp_path))
    assert consumed == []
    first = next(samples)
    assert first.client_id == "c0" and consumed == [0]
    assert [s.client_id for s in samples] == ["c1", "c2"] and consumed == [0, 1, 2]


def test_incoming_samples_reassembles_chunks(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10
    header = datasets_pb2.SampleHeader(
        client_id="big", label="l", size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    messages = [datasets_pb2.UploadSamplesRequest(project="p", header=header)]
    for offset in range(0, len(data), 1000):
        messages.append(
            datasets_pb2.UploadSamplesRequest(
                project="p",
                chunk=datasets_pb2.SampleChunk(
                    client_id="big", offset=offset, data=data[offset : offset + 1000]
                ),
            )
        )
    (sample,) = incoming_samples(messages, "p", _uploads(tmp_path / "a"))
    assert sample.error is None and sample.data == data and sample.label == "l"
    # Over the limit: rejected at its header, and its chunks are skipped.
    (rejected,) = incoming_samples(messages, "p", _uploads(tmp_path / "b", 1000))
    assert rejected.error is not None and rejected.error.code is ErrorCode.SAMPLE_TOO_LARGE
    assert rejected.data == b""
