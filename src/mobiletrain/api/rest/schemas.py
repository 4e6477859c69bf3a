"""JSON shapes of the REST API and the only place that converts them to and from domain types.

Request models are lenient where the core has a more precise error: enum-like strings and
hyperparameter names are passed through and checked by the core, so a bad value gets the same
catalog code (for example ``INVALID_INPUT_SPEC`` or ``INVALID_HYPERPARAMETERS``) as over gRPC.
JSON types are strict (``strict=True``): ``true`` is not a number and ``1`` is not a string.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.manifest import VersionMetrics
from mobiletrain.core.release import ReleasePolicy, ReleaseRecord, Rollout, VersionStatus
from mobiletrain.core.services import DEFAULT_TOP_K, Prediction
from mobiletrain.core.types import (
    Architecture,
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
    SampleStatus,
    TaskType,
    UploadSummary,
)

_FORMATS = [f.value for f in ModelFormat]


# --- errors and health ---------------------------------------------------------------------


class ErrorPublic(BaseModel):
    """The body of every error response (the same catalog as gRPC)."""

    code: int = Field(description="Stable numeric error code (see the error catalog), e.g. 10.")
    error: str = Field(description="Stable lower-case name of the code, e.g. `project_not_found`.")
    message: str = Field(description="Human-readable explanation; do not parse it.")
    details: dict[str, Any] | None = Field(
        default=None, description="Optional structured details (e.g. validation errors)."
    )


class HealthPublic(BaseModel):
    """Liveness answer."""

    status: Literal["ok", "degraded"] = Field(
        description="`ok`, or `degraded` while the server answers but needs attention "
        "(storage below its free-space reserve: uploads are refused with code 74; samples "
        "whose bytes were found missing at start-up)."
    )
    reasons: list[str] | None = Field(
        default=None, description="Why it is degraded, one line each (absent when `ok`)."
    )


# --- projects ------------------------------------------------------------------------------


class InputSpecModel(BaseModel):
    """The model input contract: apps preprocess images exactly like this before inference.

    On input only `width`, `height`, `color_mode` and `normalization` are read; `channels`,
    `scale` and `offset` are derived by the server and always filled in responses.
    """

    model_config = ConfigDict(strict=True)

    width: int = Field(default=96, description="Input width in pixels, 8..1024.")
    height: int = Field(default=96, description="Input height in pixels, 8..1024.")
    color_mode: str = Field(
        default=ColorMode.RGB.value,
        description="Colour mode: `rgb` (3 channels) or `grayscale` (1 channel).",
        json_schema_extra={"enum": [c.value for c in ColorMode]},
    )
    normalization: str = Field(
        default=Normalization.ZERO_ONE.value,
        description=(
            "How 0..255 pixels become model input: `zero-one` (x/255), "
            "`minus-one-one` (x/127.5-1) or `raw` (x)."
        ),
        json_schema_extra={"enum": [n.value for n in Normalization]},
    )
    channels: int | None = Field(
        default=None, description="Output only: 3 for rgb, 1 for grayscale (ignored on input)."
    )
    scale: float | None = Field(
        default=None, description="Output only: model input = pixel * scale + offset."
    )
    offset: float | None = Field(
        default=None, description="Output only: model input = pixel * scale + offset."
    )


class ProjectCreate(BaseModel):
    """Body of `POST /v1/projects`."""

    model_config = ConfigDict(strict=True, extra="forbid")

    name: str = Field(
        description="Unique project name, 1..128 characters, no '/' or '\\'; usable in URLs."
    )
    task: str = Field(
        default=TaskType.IMAGE_CLASSIFICATION.value,
        description="What the project learns; only `image-classification` for now.",
        json_schema_extra={"enum": [t.value for t in TaskType]},
    )
    labels: list[str] = Field(
        default_factory=list,
        description=(
            "Fixed label set. Empty = open label set: labels are added as samples arrive. "
            "With a fixed set, samples with another label are rejected (UNKNOWN_LABEL)."
        ),
    )
    input_spec: InputSpecModel | None = Field(
        default=None, description="Model input contract; omitted = 96x96 rgb zero-one."
    )


class ProjectPublic(BaseModel):
    """A project."""

    id: str = Field(description="Project id (UUID); usable wherever a project name is.")
    name: str = Field(description="Unique project name.")
    task: str = Field(description="Task type, e.g. `image-classification`.")
    labels: list[str] = Field(description="Known labels in order of first appearance.")
    labels_fixed: bool = Field(description="True when the label set was fixed at creation.")
    input_spec: InputSpecModel = Field(description="Model input contract, all fields filled.")
    created_at: datetime = Field(description="Creation time (UTC, ISO 8601).")
    promoted_version: int | None = Field(
        description="Model version pinned as current; null = the newest version is current."
    )


class ProjectListPublic(BaseModel):
    """A page of projects."""

    projects: list[ProjectPublic] = Field(description="Projects in creation order.")
    next_page_token: str = Field(description="Token of the next page; empty on the last page.")


# --- samples -------------------------------------------------------------------------------


class SamplePublic(BaseModel):
    """A stored labelled image."""

    id: str = Field(description="Sample id (UUID).")
    project_id: str = Field(description="Id of the project the sample belongs to.")
    client_id: str = Field(description="Client-chosen idempotency key of the upload.")
    label: str = Field(description="The sample's label.")
    sha256: str = Field(description="Lower-case hex SHA-256 of the image bytes.")
    size: int = Field(description="Size of the image in bytes.")
    media_type: str = Field(description="`image/jpeg`, `image/png` or `image/webp`.")
    width: int = Field(description="Image width in pixels.")
    height: int = Field(description="Image height in pixels.")
    created_at: datetime = Field(description="Upload time (UTC, ISO 8601).")
    data_url: str = Field(description="Relative URL of the image bytes (for thumbnails).")
    damaged: bool = Field(
        default=False,
        description="Its stored bytes were found missing or damaged (`mobiletrain fsck "
        "--repair`): training skips it, its `data_url` answers SAMPLE_DAMAGED (code 31); "
        "uploading the same bytes again restores it.",
    )


class SampleListPublic(BaseModel):
    """A page of samples."""

    samples: list[SamplePublic] = Field(description="Samples in upload order.")
    next_page_token: str = Field(description="Token of the next page; empty on the last page.")


class SampleResultPublic(BaseModel):
    """Outcome of one uploaded sample."""

    index: int = Field(description="Position of the sample in the request, from 0.")
    filename: str | None = Field(
        default=None, description="File name of the multipart part, when one was sent."
    )
    client_id: str = Field(description="Idempotency key used for the sample.")
    status: str = Field(
        json_schema_extra={"enum": [s.value for s in SampleStatus]},
        description=(
            "`accepted`: stored now; `duplicate`: already stored earlier (same client id or "
            "same bytes and label), nothing changed; `rejected`: not stored, see `error_code`."
        ),
    )
    sample_id: str | None = Field(
        default=None, description="Id of the stored sample (the earlier one for duplicates)."
    )
    error_code: int | None = Field(
        default=None, description="Numeric error code of a rejected sample, e.g. 26."
    )
    error: str | None = Field(
        default=None, description="Error name of a rejected sample, e.g. `corrupt_image`."
    )
    reason: str = Field(
        default="", description="Why the sample was rejected (or a note on a duplicate)."
    )


class UploadSummaryPublic(BaseModel):
    """Reply of an upload: one result per sample in request order, plus totals."""

    results: list[SampleResultPublic] = Field(description="One result per sample, in order.")
    total: int = Field(description="Number of samples in the request.")
    accepted: int = Field(description="Number of samples stored now.")
    duplicate: int = Field(description="Number of samples that were already stored.")
    rejected: int = Field(description="Number of samples refused.")


class Base64SampleCreate(BaseModel):
    """One sample as JSON with the image base64-encoded."""

    model_config = ConfigDict(strict=True)

    image: str = Field(
        description=(
            "The encoded JPEG, PNG or WebP file in base64 (standard or URL-safe alphabet, "
            "padding optional; a `data:image/...;base64,` prefix is allowed)."
        )
    )
    label: str = Field(description="The sample's label.")
    client_id: str | None = Field(
        default=None,
        description=(
            "Idempotency key; omitted = `sha256:<hex of the image bytes>:<label>` so that "
            "retrying the same upload never duplicates it."
        ),
    )


class SampleRelabel(BaseModel):
    """Body of `PATCH /v1/projects/{project}/samples/{sample_id}`."""

    model_config = ConfigDict(extra="forbid")

    label: str = Field(description="The sample's new label (one of a fixed label set).")


class ClassCounts(BaseModel):
    """Samples per label."""

    counts: dict[str, int] = Field(
        description="Number of samples per label, in label order, including labels with 0."
    )
    total: int = Field(description="Total number of samples.")


# --- jobs ----------------------------------------------------------------------------------


class HyperparametersModel(BaseModel):
    """Training settings. Every field is optional: a missing or null field takes its default.

    Unknown fields are refused with INVALID_HYPERPARAMETERS (code 41).
    """

    model_config = ConfigDict(strict=True, extra="allow")

    epochs: int | None = Field(default=None, description="Training epochs, 1..1000 (default 10).")
    batch_size: int | None = Field(default=None, description="Batch size, 1..4096 (default 32).")
    learning_rate: float | None = Field(
        default=None, description="Learning rate, (0, 1] (default 0.001)."
    )
    validation_split: float | None = Field(
        default=None, description="Fraction held out for validation, (0, 1) (default 0.2)."
    )
    seed: int | None = Field(default=None, description="Random seed (default 42).")
    architecture: str | None = Field(
        default=None,
        description="Model family (default `small-cnn`).",
        json_schema_extra={"enum": [a.value for a in Architecture]},
    )
    base_model: str | None = Field(
        default=None,
        description="Name of a server-side .keras base model for transfer learning (default none).",
    )
    augment_flip: bool | None = Field(
        default=None, description="Random horizontal flips (default false)."
    )
    augment_rotation: float | None = Field(
        default=None, description="Random rotation strength, 0..1 (default 0)."
    )
    augment_zoom: float | None = Field(
        default=None, description="Random zoom strength, 0..1 (default 0)."
    )
    augment_contrast: float | None = Field(
        default=None, description="Random contrast strength, 0..1 (default 0)."
    )
    early_stopping_patience: int | None = Field(
        default=None, description="Epochs without improvement before stopping; 0 = off (default)."
    )
    class_weights: bool | None = Field(
        default=None, description="Weight classes by inverse frequency (default true)."
    )
    dropout: float | None = Field(default=None, description="Dropout rate, [0, 1) (default 0.2).")
    formats: list[str] | None = Field(
        default=None,
        description=(
            f"Export formats (default all: {', '.join(_FORMATS)}); `keras` is always included."
        ),
        json_schema_extra={"items": {"type": "string", "enum": [f.value for f in ModelFormat]}},
    )
    workers: int | None = Field(
        default=None,
        description=(
            "Data-parallel training processes, 1..64; `batch_size` is the global batch. "
            "Used by servers that train on Ray; the local executor trains with one (default 1)."
        ),
    )
    allow_random_init: bool | None = Field(
        default=None,
        description=(
            "When a MobileNet's pretrained weights cannot be loaded, train it from random "
            "initialisation anyway (the version carries a warning) instead of failing with "
            "BASE_WEIGHTS_UNAVAILABLE, code 55 (default false)."
        ),
    )


class JobPublic(BaseModel):
    """A training job."""

    id: str = Field(description="Job id (UUID).")
    project_id: str = Field(description="Id of the project being trained.")
    state: str = Field(
        description="Life-cycle state; succeeded, failed and cancelled are final.",
        json_schema_extra={"enum": [s.value for s in JobState]},
    )
    hyperparameters: HyperparametersModel = Field(
        description="The effective hyperparameters (all fields filled)."
    )
    created_at: datetime = Field(description="When the job was queued (UTC).")
    started_at: datetime | None = Field(description="When the last attempt started (UTC).")
    finished_at: datetime | None = Field(description="When the job reached a final state (UTC).")
    attempts: int = Field(description="Attempts started so far (a crashed worker is retried).")
    error: str = Field(description="Why the job failed; empty otherwise.")
    cancel_requested: bool = Field(description="True once cancellation was asked for.")
    model_version: int | None = Field(
        description="Model version the job produced (set when it succeeded)."
    )


class JobListPublic(BaseModel):
    """A page of jobs."""

    jobs: list[JobPublic] = Field(description="Jobs, newest first.")
    next_page_token: str = Field(description="Token of the next page; empty on the last page.")


class JobEventPublic(BaseModel):
    """One progress event of a job."""

    job_id: str = Field(description="Id of the job.")
    seq: int = Field(description="Sequence number, 1, 2, ... per job; resume after it.")
    kind: str = Field(
        json_schema_extra={"enum": [k.value for k in EventKind]},
        description=(
            "`state` {state, error?, model_version?}; `progress` {epoch, epochs, batch, "
            "batches, samples_per_second, eta_seconds}; `epoch` {epoch, epochs, loss, accuracy, "
            "val_loss, val_accuracy, ...}; `evaluation` final metrics; `log` {message, level?}; "
            "`phase` {phase, eta_seconds}; `release` the release gate's decision {promoted, "
            "reason, version, status, warnings, ...}."
        ),
    )
    data: dict[str, Any] = Field(description="Payload; its shape depends on `kind`.")
    created_at: datetime = Field(description="When the event was recorded (UTC).")


class JobEventListPublic(BaseModel):
    """Events for polling clients (`GET /v1/jobs/{job_id}/events?stream=false`)."""

    events: list[JobEventPublic] = Field(description="Events after `after_seq`, in order.")
    next_after_seq: int = Field(description="Pass as `after_seq` on the next poll.")
    state: str = Field(
        description="The job's state at the time of the request.",
        json_schema_extra={"enum": [s.value for s in JobState]},
    )
    finished: bool = Field(
        description="True when the job is final and its final event was delivered: stop polling."
    )


# --- models --------------------------------------------------------------------------------


class ArtifactPublic(BaseModel):
    """One exported file of a model version."""

    format: str = Field(
        description=f"Export format: {', '.join(_FORMATS)}.",
        json_schema_extra={"enum": [f.value for f in ModelFormat]},
    )
    size: int = Field(description="File size in bytes.")
    sha256: str = Field(description="Lower-case hex SHA-256 of the file (cache key, ETag).")


class MetricsSummaryPublic(BaseModel):
    """Validation metrics of a version, summarised."""

    accuracy: float | None = Field(description="Top-1 validation accuracy of the Keras model.")
    tflite_accuracy: dict[str, float] = Field(
        description="Top-1 validation accuracy per exported TFLite format."
    )


class ModelVersionPublic(BaseModel):
    """A trained model version."""

    project_id: str = Field(description="Id of the project.")
    version: int = Field(description="Version number, from 1 per project.")
    job_id: str = Field(description="Id of the job that produced the version.")
    created_at: datetime = Field(description="When the version was created (UTC).")
    current: bool = Field(description="True if apps get this version by default.")
    metrics: MetricsSummaryPublic = Field(description="Validation metrics summary.")
    artifacts: list[ArtifactPublic] = Field(description="The exported files, one per format.")
    status: str = Field(
        description="current, candidate (never released: see `decision.reason`) or retired.",
        json_schema_extra={"enum": [s.value for s in VersionStatus]},
    )
    decision: ReleaseDecisionPublic | None = Field(
        default=None, description="The release gate's decision; null before the gate existed."
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="Warnings that travel with the version (random init, chance accuracy, ...).",
    )
    eval_accuracy: dict[str, float] = Field(
        default_factory=dict,
        description="Accuracy of each .tflite file on the project's fixed evaluation set.",
    )
    eval_set_size: int = Field(default=0, description="Samples in that evaluation set.")


class ReleasePolicyModel(BaseModel):
    """A project's release gate rules; a missing or null field takes its default."""

    model_config = ConfigDict(strict=True, extra="forbid")

    mode: Literal["auto", "manual"] = Field(
        default="auto", description="auto: the gate promotes passing versions; manual: never."
    )
    margin: float = Field(
        default=0.02,
        description="A new version may be at most this much less accurate than the current one.",
    )
    min_accuracy: float | None = Field(default=None, description="Accuracy floor, 0..1.")
    min_per_class_recall: float | None = Field(
        default=None, description="Floor on every label's recall, 0..1."
    )
    max_int8_drop: float | None = Field(
        default=None, description="Ceiling on float32 minus int8 accuracy, 0..1."
    )
    rollout_percent: int = Field(
        default=100,
        description="Staged rollout: share of device tokens (1..100, by a hash of the token) "
        "that get a version the gate promotes first; the others keep the previous version.",
    )
    rollout_hours: float | None = Field(
        default=None,
        description="Hours until every device follows; null = until a person promotes it.",
    )


class RolloutPublic(BaseModel):
    """A staged rollout in progress."""

    version: int = Field(description="The new current version, served to `percent` of devices.")
    previous_version: int = Field(description="The version the other devices keep meanwhile.")
    percent: int = Field(description="Share of device tokens that get `version`.")
    started_at: datetime = Field(description="When the rollout started (UTC).")
    complete_at: datetime | None = Field(
        description="When every device follows; null = when a person promotes the version."
    )


class ReleasePolicyPublic(BaseModel):
    """A project's release policy, pin and staged rollout."""

    policy: ReleasePolicyModel = Field(description="The rules in force.")
    pinned: bool = Field(
        description="True while a person pinned the current version: new versions stay candidates."
    )
    rollout: RolloutPublic | None = Field(
        default=None, description="The staged rollout in progress; null when none."
    )


class ReleaseDecisionPublic(BaseModel):
    """What the release gate decided for a version, and why."""

    promoted: bool = Field(description="True if the gate made the version current.")
    action: str = Field(description="`promoted` or `kept-candidate`.")
    reason: str = Field(description="Why, in words.")
    policy: ReleasePolicyModel = Field(description="The policy applied.")
    compared_format: str = Field(description="The format whose accuracy was compared.")
    accuracy: float | None = Field(description="The version's accuracy on the evaluation set.")
    current_version: int | None = Field(description="The version current at the time.")
    current_accuracy: float | None = Field(description="Its accuracy on the same samples.")
    checks: list[str] = Field(description="Every rule applied, passed or not.")


class ReleaseRecordPublic(BaseModel):
    """One change of a project's current version."""

    id: int = Field(description="Record number (increasing).")
    version: int | None = Field(description="The version that became current.")
    previous_version: int | None = Field(description="The version current before.")
    action: str = Field(description="`promoted` (the gate), `manual-promote` or `rollback`.")
    reason: str = Field(description="Why.")
    actor: str = Field(description="`release gate`, or the token that did it.")
    job_id: str = Field(description="The training job, for the gate's promotions.")
    created_at: datetime = Field(description="When (UTC).")


class ReleaseHistoryPublic(BaseModel):
    """Which version was current when, and why."""

    releases: list[ReleaseRecordPublic] = Field(description="Newest first.")


class PromoteRequest(BaseModel):
    """Options of a promotion (all optional)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    pin: bool = Field(
        default=False,
        description="Pin the version: the gate keeps new versions candidates until the next "
        "promotion.",
    )
    reason: str = Field(default="", description="Why (kept in the release history).")


class RollbackRequest(BaseModel):
    """Options of a rollback (all optional)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    reason: str = Field(default="", description="Why (kept in the release history).")


class ModelListPublic(BaseModel):
    """All model versions of a project."""

    versions: list[ModelVersionPublic] = Field(description="Versions, newest first.")
    current_version: int | None = Field(
        description="The version apps get (promoted, else newest); null without any model."
    )
    next_page_token: str = Field(
        default="", description="Token of the next page; empty on the last page."
    )


class UpdateCheckPublic(BaseModel):
    """Whether an app's model is still current, and what to download otherwise."""

    not_modified: bool = Field(
        description="True if the app's file (by sha256, else by version) is the current one."
    )
    version: int = Field(description="The current version number.")
    format: str = Field(description="The requested format.")
    sha256: str = Field(description="SHA-256 of the current file in this format.")
    size: int = Field(description="Size in bytes of the current file in this format.")
    download_url: str = Field(description="Relative URL to download the current file.")
    model: ModelVersionPublic = Field(description="The current version.")


class PredictionScorePublic(BaseModel):
    """One predicted class."""

    label: str = Field(description="The predicted label.")
    index: int = Field(description="Class index (model output index) of the label.")
    score: float = Field(description="Probability, 0..1.")


class PredictionPublic(BaseModel):
    """Server-side classification of one image."""

    predictions: list[PredictionScorePublic] = Field(description="Best classes, highest first.")
    version: int = Field(description="Model version that was used.")
    latency_ms: float = Field(description="Server-side inference time in milliseconds.")


class Base64PredictRequest(BaseModel):
    """One image to classify, base64-encoded in JSON."""

    model_config = ConfigDict(strict=True)

    image: str = Field(description="Encoded JPEG, PNG or WebP file in base64.")
    version: int = Field(default=0, description="Model version; 0 = the current version.")
    top_k: int = Field(
        default=0, description=f"Number of best classes to return; 0 = {DEFAULT_TOP_K}."
    )


# --- conversions ---------------------------------------------------------------------------


def input_spec_to_model(spec: InputSpec) -> InputSpecModel:
    """Domain input spec → response shape (derived fields filled)."""
    return InputSpecModel(**spec.to_dict())


def input_spec_from_model(model: InputSpecModel | None) -> InputSpec | None:
    """Request shape → domain input spec; bad enum values raise INVALID_INPUT_SPEC."""
    if model is None:
        return None
    try:
        color_mode = ColorMode(model.color_mode)
    except ValueError:
        allowed = ", ".join(c.value for c in ColorMode)
        raise MobiletrainError(
            ErrorCode.INVALID_INPUT_SPEC,
            f"unknown color_mode {model.color_mode!r}; allowed: {allowed}",
        ) from None
    try:
        normalization = Normalization(model.normalization)
    except ValueError:
        allowed = ", ".join(n.value for n in Normalization)
        raise MobiletrainError(
            ErrorCode.INVALID_INPUT_SPEC,
            f"unknown normalization {model.normalization!r}; allowed: {allowed}",
        ) from None
    return InputSpec(
        width=model.width, height=model.height, color_mode=color_mode, normalization=normalization
    )


def project_to_public(project: Project) -> ProjectPublic:
    """Domain project → response shape."""
    return ProjectPublic(
        id=project.id,
        name=project.name,
        task=project.task.value,
        labels=list(project.labels),
        labels_fixed=project.labels_fixed,
        input_spec=input_spec_to_model(project.input_spec),
        created_at=project.created_at,
        promoted_version=project.promoted_version,
    )


def sample_data_url(project_id: str, sample_id: str) -> str:
    """Relative URL of a sample's bytes."""
    return f"/v1/projects/{project_id}/samples/{sample_id}/data"


def sample_to_public(sample: Sample) -> SamplePublic:
    """Domain sample → response shape."""
    return SamplePublic(
        id=sample.id,
        project_id=sample.project_id,
        client_id=sample.client_id,
        label=sample.label,
        sha256=sample.sha256,
        size=sample.size,
        media_type=sample.media_type,
        width=sample.width,
        height=sample.height,
        created_at=sample.created_at,
        data_url=sample_data_url(sample.project_id, sample.id),
        damaged=sample.damaged,
    )


def upload_summary_to_public(
    summary: UploadSummary, filenames: Sequence[str | None] = ()
) -> UploadSummaryPublic:
    """Domain upload summary → response shape (``filenames`` parallel to the results)."""
    results = []
    for i, r in enumerate(summary.results):
        results.append(
            SampleResultPublic(
                index=i,
                filename=filenames[i] if i < len(filenames) else None,
                client_id=r.client_id,
                status=r.status.value,
                sample_id=r.sample_id,
                error_code=r.error_code.number if r.error_code else None,
                error=r.error_code.slug if r.error_code else None,
                reason=r.reason,
            )
        )
    return UploadSummaryPublic(
        results=results,
        total=len(results),
        accepted=summary.count(SampleStatus.ACCEPTED),
        duplicate=summary.count(SampleStatus.DUPLICATE),
        rejected=summary.count(SampleStatus.REJECTED),
    )


def class_counts_to_public(counts: dict[str, int]) -> ClassCounts:
    """Label → count mapping → response shape."""
    return ClassCounts(counts=dict(counts), total=sum(counts.values()))


def hyperparameters_from_model(model: HyperparametersModel | None) -> Hyperparameters | None:
    """Request shape → domain hyperparameters; unset and null fields keep their defaults.

    Unknown fields are passed on so the core refuses them with INVALID_HYPERPARAMETERS.
    """
    if model is None:
        return None
    data = model.model_dump(exclude_unset=True, exclude_none=True)
    return Hyperparameters.from_dict(data)


def hyperparameters_to_model(hp: Hyperparameters) -> HyperparametersModel:
    """Domain hyperparameters → response shape (every field set)."""
    return HyperparametersModel(**hp.to_dict())


def job_to_public(job: Job) -> JobPublic:
    """Domain job → response shape."""
    return JobPublic(
        id=job.id,
        project_id=job.project_id,
        state=job.state.value,
        hyperparameters=hyperparameters_to_model(job.hyperparameters),
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        attempts=job.attempts,
        error=job.error,
        cancel_requested=job.cancel_requested,
        model_version=job.model_version,
    )


def event_to_public(event: JobEvent) -> JobEventPublic:
    """Domain job event → response shape."""
    return JobEventPublic(
        job_id=event.job_id,
        seq=event.seq,
        kind=event.kind.value,
        data=event.data,
        created_at=event.created_at,
    )


def metrics_summary(metrics: dict[str, Any]) -> MetricsSummaryPublic:
    """Summarise a version's metrics dict (read by core's one metrics reader, as gRPC reads
    them): ``accuracy`` and each known format's accuracy; missing values are left out."""
    summary = VersionMetrics.from_dict(metrics).summary()
    return MetricsSummaryPublic(accuracy=summary.accuracy, tflite_accuracy=summary.tflite_accuracy)


def model_version_to_public(model: ModelVersion, current_version: int | None) -> ModelVersionPublic:
    """Domain model version → response shape; ``current_version`` sets the `current` flag."""
    if model.version == current_version:
        status = VersionStatus.CURRENT
    else:
        status = VersionStatus.CANDIDATE if model.status == "candidate" else VersionStatus.RETIRED
    evaluation = model.evaluation
    return ModelVersionPublic(
        project_id=model.project_id,
        version=model.version,
        job_id=model.job_id,
        created_at=model.created_at,
        current=model.version == current_version,
        metrics=metrics_summary(model.metrics),
        artifacts=[
            ArtifactPublic(format=a.format.value, size=a.size, sha256=a.sha256)
            for a in model.artifacts.values()
        ],
        status=status.value,
        decision=(
            ReleaseDecisionPublic(**model.decision.to_dict())
            if model.decision is not None
            else None
        ),
        warnings=list(model.warnings),
        eval_accuracy=(
            {k: v.accuracy for k, v in evaluation.formats.items()} if evaluation else {}
        ),
        eval_set_size=evaluation.eval_set.num_samples if evaluation else 0,
    )


def release_policy_to_public(
    policy: ReleasePolicy, pinned: bool, rollout: Rollout | None = None
) -> ReleasePolicyPublic:
    """Domain release policy (and staged rollout) → response shape."""
    return ReleasePolicyPublic(
        policy=ReleasePolicyModel(**policy.to_dict()),
        pinned=pinned,
        rollout=(
            RolloutPublic(
                version=rollout.version,
                previous_version=rollout.previous_version,
                percent=rollout.percent,
                started_at=rollout.started_at,
                complete_at=rollout.complete_at,
            )
            if rollout is not None
            else None
        ),
    )


def release_policy_from_model(model: ReleasePolicyModel) -> ReleasePolicy:
    """Request shape → domain policy, validated (INVALID_RELEASE_POLICY)."""
    return ReleasePolicy.from_dict(model.model_dump())


def release_record_to_public(record: ReleaseRecord) -> ReleaseRecordPublic:
    """Domain release record → response shape."""
    return ReleaseRecordPublic(**{**record.to_dict(), "created_at": record.created_at})


def download_url(project_id: str, version: int, fmt: str) -> str:
    """Relative URL that downloads one file of a version."""
    return f"/v1/projects/{project_id}/models/{version}/download?format={fmt}"


def prediction_to_public(
    model: ModelVersion, predictions: Sequence[Prediction], latency_ms: float
) -> PredictionPublic:
    """Domain predictions → response shape."""
    return PredictionPublic(
        predictions=[
            PredictionScorePublic(label=p.label, index=p.index, score=p.score) for p in predictions
        ],
        version=model.version,
        latency_ms=latency_ms,
    )
