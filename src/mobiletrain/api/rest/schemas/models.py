"""REST shapes of model versions, the release gate and predictions, and their conversions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mobiletrain.api.rest.schemas.common import FORMAT_NAMES
from mobiletrain.core.metrics import VersionMetrics
from mobiletrain.core.release import ReleasePolicy, ReleaseRecord, Rollout, VersionStatus
from mobiletrain.core.services import DEFAULT_TOP_K, Prediction
from mobiletrain.core.types import (
    ModelFormat,
    ModelVersion,
)


class ArtifactPublic(BaseModel):
    """One exported file of a model version."""

    format: str = Field(
        description=f"Export format: {', '.join(FORMAT_NAMES)}.",
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
    """One sample to classify, base64-encoded in JSON (the field keeps its name `image`)."""

    model_config = ConfigDict(strict=True)

    image: str = Field(
        description="The sample's file in base64: an image, a WAV clip or a sensor CSV/JSON."
    )
    version: int = Field(default=0, description="Model version; 0 = the current version.")
    top_k: int = Field(
        default=0, description=f"Number of best classes to return; 0 = {DEFAULT_TOP_K}."
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
