"""Hypothesis properties of the gRPC serde and of input validation.

* Serde: every domain value the core can hold survives ``x_to_proto`` then ``x_from_proto``
  unchanged (hyperparameters, input specs, projects, samples, jobs, job events, upload results,
  artifacts, predictions), and the domain → proto side never fails on odd stored data (free-form
  event payloads), as ``api/grpc/serde.py`` promises.
* Validation: labels, project names and client ids made of arbitrary Unicode are accepted (and
  then satisfy the documented rules) or refused with their own error code; arbitrary bytes, and
  valid images cut or corrupted, given to ``verify_image`` never raise anything but
  ``MobiletrainError`` with an image error code.

Derandomized and without an example database, so a run is reproducible and leaves no files.
"""

from __future__ import annotations

import io
import math
import string
import unicodedata
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mobiletrain.api.grpc import serde
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.release import ReleaseDecision, ReleaseMode, ReleasePolicy, VersionStatus
from mobiletrain.core.services import Prediction
from mobiletrain.core.types import (
    Architecture,
    Artifact,
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobEvent,
    JobPhase,
    JobState,
    ModelFormat,
    Normalization,
    Project,
    Sample,
    SampleResult,
    SampleStatus,
    TaskType,
    UploadSummary,
)
from mobiletrain.core.validation import (
    Limits,
    check_client_id,
    check_label,
    check_name,
    verify_image,
)

pytestmark = pytest.mark.timeout(300)

EXAMPLES = 200
PROPERTY = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
UINT31 = st.integers(min_value=0, max_value=2**31 - 1)
INT64_POSITIVE = st.integers(min_value=0, max_value=2**63 - 1)
WIDE_INT = st.integers(min_value=-(2**65), max_value=2**65)  # magnitudes past 32 and 64 bits
FINITE = st.floats(allow_nan=False, allow_infinity=False)
# Strings as they arrive over either wire: valid UTF-8, so no lone surrogates.
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
WHEN = st.datetimes(
    min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
)


# --- serde round trips ------------------------------------------------------------------------


def _hp_field_strategies() -> dict[str, st.SearchStrategy[Any]]:
    """Values Hyperparameters.validate() accepts, per field (new fields keep their default)."""
    known: dict[str, st.SearchStrategy[Any]] = {
        "epochs": st.integers(1, 1000),
        "batch_size": st.integers(1, 4096),
        "learning_rate": st.floats(min_value=1e-9, max_value=1.0),
        "validation_split": st.floats(min_value=1e-6, max_value=0.999),
        "seed": UINT31,
        "architecture": st.sampled_from(Architecture),
        "base_model": TEXT,
        "augment_flip": st.booleans(),
        "augment_rotation": st.floats(0.0, 1.0),
        "augment_zoom": st.floats(0.0, 1.0),
        "augment_contrast": st.floats(0.0, 1.0),
        "early_stopping_patience": st.integers(0, 1000),
        "class_weights": st.booleans(),
        "dropout": st.floats(min_value=0.0, max_value=0.99),
        "formats": st.lists(
            st.sampled_from([ModelFormat.KERAS, *serde_formats()]), min_size=1, unique=True
        ),
    }
    defaults = Hyperparameters()
    return {f.name: known.get(f.name, st.just(getattr(defaults, f.name))) for f in fields(defaults)}


def serde_formats() -> list[ModelFormat]:
    """Formats of image-classifier jobs (every member the wire has a number for)."""
    return [f for f in Hyperparameters().formats if f is not ModelFormat.KERAS]


VALID_HYPERPARAMETERS = st.fixed_dictionaries(_hp_field_strategies()).map(
    lambda kw: Hyperparameters(**kw)
)


@PROPERTY
@given(hp=VALID_HYPERPARAMETERS)
def test_hyperparameters_round_trip(hp: Hyperparameters) -> None:
    hp.validate()  # puts keras first if missing, as the service does before storing a job
    assert serde.hyperparameters_from_proto(serde.hyperparameters_to_proto(hp)) == hp


@PROPERTY
@given(
    epochs=st.integers(1, 1000) | INT32,
    batch_size=st.integers(1, 4096) | INT32,
    seed=st.integers() | WIDE_INT,
    early_stopping_patience=st.integers() | WIDE_INT,
    learning_rate=st.floats(1e-9, 1.0) | st.floats(allow_nan=False),
)
def test_any_hyperparameters_validate_accepts_can_be_sent(
    epochs: int, batch_size: int, seed: int, early_stopping_patience: int, learning_rate: float
) -> None:
    """A job the REST API accepted must also be readable over gRPC (int32 fields)."""
    hp = Hyperparameters(
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        early_stopping_patience=early_stopping_patience,
        learning_rate=learning_rate,
    )
    try:
        hp.validate()
    except MobiletrainError as err:
        assert err.code is ErrorCode.INVALID_HYPERPARAMETERS
        return
    assert serde.hyperparameters_from_proto(serde.hyperparameters_to_proto(hp)) == hp


INPUT_SPECS = st.builds(
    InputSpec,
    width=st.integers(1, 2**31 - 1),
    height=st.integers(1, 2**31 - 1),
    color_mode=st.sampled_from(ColorMode),
    normalization=st.sampled_from(Normalization),
)


@PROPERTY
@given(spec=INPUT_SPECS)
def test_input_spec_round_trip(spec: InputSpec) -> None:
    msg = serde.input_spec_to_proto(spec)
    assert serde.input_spec_from_proto(msg) == spec
    assert msg.channels == spec.channels
    assert (msg.scale, msg.offset) == spec.normalization.scale_offset()


@PROPERTY
@given(
    project=st.builds(
        Project,
        id=TEXT,
        name=TEXT,
        task=st.sampled_from(TaskType),
        labels=st.lists(TEXT, max_size=5),
        labels_fixed=st.booleans(),
        input_spec=INPUT_SPECS,
        created_at=WHEN,
        promoted_version=st.none() | st.integers(1, 2**31 - 1),
    )
)
def test_project_round_trip(project: Project) -> None:
    msg = serde.project_to_proto(project, project.promoted_version)
    assert serde.project_from_proto(msg) == project


@PROPERTY
@given(
    sample=st.builds(
        Sample,
        id=TEXT,
        project_id=TEXT,
        client_id=TEXT,
        label=TEXT,
        sha256=TEXT,
        size=INT64_POSITIVE,
        media_type=TEXT,
        width=UINT31,
        height=UINT31,
        created_at=WHEN,
    )
)
def test_sample_round_trip(sample: Sample) -> None:
    assert serde.sample_from_proto(serde.sample_to_proto(sample)) == sample


@PROPERTY
@given(
    job=st.builds(
        Job,
        id=TEXT,
        project_id=TEXT,
        state=st.sampled_from(JobState),
        hyperparameters=VALID_HYPERPARAMETERS,
        created_at=WHEN,
        started_at=st.none() | WHEN,
        finished_at=st.none() | WHEN,
        attempts=UINT31,
        error=TEXT,
        cancel_requested=st.booleans(),
        model_version=st.none() | st.integers(1, 2**31 - 1),
    )
)
def test_job_round_trip(job: Job) -> None:
    job.hyperparameters.validate()
    assert serde.job_from_proto(serde.job_to_proto(job)) == job


def _event_data(kind: EventKind) -> st.SearchStrategy[dict[str, Any]]:
    """Payloads as the worker writes them, with every field the wire carries."""
    if kind is EventKind.STATE:
        return st.builds(
            lambda state, error: {"state": state.value, **({"error": error} if error else {})},
            st.sampled_from(JobState),
            TEXT,
        )
    if kind is EventKind.PROGRESS:
        return st.fixed_dictionaries(
            {
                "epoch": INT32,
                "epochs": INT32,
                "batch": INT32,
                "batches": INT32,
                "samples_per_second": FINITE,
                "eta_seconds": FINITE,
            }
        )
    if kind is EventKind.EPOCH:
        return st.fixed_dictionaries(
            {
                "epoch": INT32,
                "epochs": INT32,
                "loss": FINITE,
                "accuracy": FINITE,
                "val_loss": FINITE,
                "val_accuracy": FINITE,
                "seconds": FINITE,
            }
        )
    if kind is EventKind.LOG:
        return st.builds(
            lambda m, level: {"message": m, **({"level": level} if level else {})},
            TEXT,
            st.sampled_from(["", "info", "warning"]),
        )
    if kind is EventKind.PHASE:
        return st.fixed_dictionaries(
            {
                "phase": st.sampled_from([p.value for p in JobPhase]),
                "eta_seconds": st.none() | st.floats(0.001, 1e9),
            }
        )
    if kind is EventKind.RELEASE:
        return st.builds(
            _release_data,
            decision=st.builds(
                ReleaseDecision,
                promoted=st.booleans(),
                reason=TEXT,
                policy=st.builds(ReleasePolicy, mode=st.sampled_from(ReleaseMode)),
                compared_format=st.sampled_from(["", *(f.value for f in ModelFormat)]),
                accuracy=st.none() | st.floats(0, 1),
                current_version=st.none() | st.integers(1, 2**31 - 1),
                current_accuracy=st.none() | st.floats(0, 1),
                checks=st.lists(TEXT, max_size=3),
            ),
            version=st.integers(1, 2**31 - 1),
            status=st.sampled_from(VersionStatus),
            warnings=st.lists(TEXT, max_size=3),
        )
    return st.dictionaries(TEXT, JSON_VALUES, max_size=5)  # evaluation: any JSON object


def _release_data(
    decision: ReleaseDecision, version: int, status: VersionStatus, warnings: list[str]
) -> dict[str, Any]:
    """A RELEASE event's data as the worker writes it (the decision, the version's standing)."""
    return decision.to_dict() | {
        "version": version,
        "status": status.value,
        "warnings": warnings,
    }


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | FINITE | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def job_events(draw: st.DrawFn) -> JobEvent:
    kind = draw(st.sampled_from(EventKind))
    return JobEvent(
        job_id=draw(TEXT),
        seq=draw(st.integers(1, 2**63 - 1)),
        kind=kind,
        data=draw(_event_data(kind)),
        created_at=draw(WHEN),
    )


@PROPERTY
@given(event=job_events())
def test_job_event_round_trip(event: JobEvent) -> None:
    back = serde.job_event_from_proto(serde.job_event_to_proto(event))
    assert back == event


@PROPERTY
@given(
    kind=st.sampled_from([k for k in EventKind if k is not EventKind.STATE]),
    data=st.dictionaries(
        st.sampled_from(
            [
                "epoch",
                "epochs",
                "batch",
                "batches",
                "loss",
                "accuracy",
                "message",
                "per_class",
                "confusion_matrix",
                "labels",
                "tflite",
                "samples_per_second",
                "eta_seconds",
            ]
        )
        | TEXT,
        JSON_VALUES,
        max_size=8,
    ),
)
def test_job_event_to_proto_never_fails_on_odd_data(kind: EventKind, data: dict[str, Any]) -> None:
    """Odd stored payloads (wrong types, out-of-range numbers) become proto defaults."""
    event = JobEvent("job", 1, kind, data, datetime.now(UTC))
    msg = serde.job_event_to_proto(event)
    assert msg.ByteSize() >= 0


RESULTS = st.builds(
    SampleResult,
    client_id=TEXT,
    status=st.sampled_from(SampleStatus),
    sample_id=st.none() | TEXT.filter(bool),
    error_code=st.none() | st.sampled_from(ErrorCode),
    reason=TEXT,
)


@PROPERTY
@given(summary=st.builds(UploadSummary, results=st.lists(RESULTS, max_size=6)))
def test_upload_summary_round_trip(summary: UploadSummary) -> None:
    msg = serde.upload_summary_to_proto(summary)
    assert serde.upload_summary_from_proto(msg) == summary
    assert (msg.accepted, msg.duplicates, msg.rejected) == tuple(
        summary.count(s) for s in SampleStatus
    )


@PROPERTY
@given(
    artifact=st.builds(
        Artifact, format=st.sampled_from(ModelFormat), sha256=TEXT, size=INT64_POSITIVE
    ),
    prediction=st.builds(Prediction, label=TEXT, index=UINT31, score=FINITE),
)
def test_artifact_and_prediction_round_trip(artifact: Artifact, prediction: Prediction) -> None:
    assert serde.artifact_from_proto(serde.artifact_to_proto(artifact)) == artifact
    assert serde.prediction_from_proto(serde.prediction_to_proto(prediction)) == prediction


@PROPERTY
@given(when=WHEN)
def test_timestamp_round_trip(when: datetime) -> None:
    assert serde.timestamp_from_proto(serde.timestamp_to_proto(when)) == when


# --- validation -------------------------------------------------------------------------------

LIMITS = Limits()
FORBIDDEN = ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")
ANY_TEXT = st.text(max_size=140) | st.text(string.printable, max_size=140)
ODD_INPUT = st.none() | st.integers() | st.binary(max_size=8)


def _assert_acceptable(value: str, max_length: int) -> None:
    assert 1 <= len(value) <= max_length
    assert value == value.strip()
    assert not any(unicodedata.category(ch) in FORBIDDEN for ch in value)


@PROPERTY
@given(text=ANY_TEXT | ODD_INPUT)
def test_labels_are_accepted_or_refused_with_invalid_label(text: Any) -> None:
    try:
        assert check_label(text, LIMITS) == text
    except MobiletrainError as err:
        assert err.code is ErrorCode.INVALID_LABEL
        return
    _assert_acceptable(text, LIMITS.max_label_length)


@PROPERTY
@given(text=ANY_TEXT | ODD_INPUT)
def test_names_are_accepted_or_refused_with_invalid_name(text: Any) -> None:
    try:
        assert check_name(text, LIMITS) == text
    except MobiletrainError as err:
        assert err.code is ErrorCode.INVALID_NAME
        return
    _assert_acceptable(text, LIMITS.max_name_length)
    assert "/" not in text and "\\" not in text


@PROPERTY
@given(text=ANY_TEXT | ODD_INPUT)
def test_client_ids_are_accepted_or_refused_with_invalid_client_id(text: Any) -> None:
    try:
        assert check_client_id(text, LIMITS) == text
    except MobiletrainError as err:
        assert err.code is ErrorCode.INVALID_CLIENT_ID
        return
    _assert_acceptable(text, LIMITS.max_client_id_length)


IMAGE_CODES = {
    ErrorCode.EMPTY_SAMPLE,
    ErrorCode.SAMPLE_TOO_LARGE,
    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    ErrorCode.CORRUPT_IMAGE,
    ErrorCode.IMAGE_TOO_LARGE,
}
SMALL_LIMITS = Limits(max_sample_bytes=64 * 1024, max_pixels=48 * 48)


def _encode(fmt: str, size: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


VALID_IMAGES = [
    _encode(fmt, size, i) for i, fmt in enumerate(("PNG", "JPEG", "WEBP")) for size in (8, 40, 64)
]
MAGIC = [b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"RIFF\x00\x00\x00\x00WEBP"]


@st.composite
def damaged_images(draw: st.DrawFn) -> bytes:
    """A valid JPEG, PNG or WebP, cut short, with bytes overwritten, or with bytes inserted."""
    data = bytearray(draw(st.sampled_from(VALID_IMAGES)))
    how = draw(st.sampled_from(["cut", "flip", "insert", "header-only"]))
    if how == "cut":
        del data[draw(st.integers(1, len(data) - 1)) :]
    elif how == "flip":
        for _ in range(draw(st.integers(1, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    elif how == "insert":
        at = draw(st.integers(0, len(data)))
        data[at:at] = draw(st.binary(min_size=1, max_size=64))
    else:
        data = bytearray(draw(st.sampled_from(MAGIC)) + draw(st.binary(max_size=64)))
    return bytes(data)


def _verify_or_clean_error(data: bytes) -> None:
    try:
        info = verify_image(data, SMALL_LIMITS)
    except MobiletrainError as err:
        assert err.code in IMAGE_CODES, err
        return
    assert info.media_type in ("image/jpeg", "image/png", "image/webp")
    assert info.width * info.height <= SMALL_LIMITS.max_pixels


@PROPERTY
@given(data=st.binary(max_size=2048))
def test_verify_image_on_arbitrary_bytes(data: bytes) -> None:
    _verify_or_clean_error(data)


@settings(PROPERTY, max_examples=400)
@given(data=damaged_images())
def test_verify_image_on_damaged_images(data: bytes) -> None:
    _verify_or_clean_error(data)


def test_verify_image_accepts_the_undamaged_images() -> None:
    for data in VALID_IMAGES:
        try:
            info = verify_image(data, SMALL_LIMITS)
        except MobiletrainError as err:
            assert err.code is ErrorCode.IMAGE_TOO_LARGE  # the 64x64 ones
            continue
        assert info.width <= 48


def test_nan_and_infinity_in_event_data_stay_floats() -> None:
    data = {"epoch": 1, "loss": math.nan, "accuracy": math.inf}
    msg = serde.job_event_to_proto(JobEvent("j", 1, EventKind.EPOCH, data, datetime.now(UTC)))
    assert math.isnan(msg.epoch_end.loss) and msg.epoch_end.accuracy == math.inf
