"""REST shapes of training jobs, hyperparameters and job events, and their conversions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mobiletrain.api.rest.schemas.common import FORMAT_NAMES
from mobiletrain.core.types import (
    Architecture,
    EventKind,
    Hyperparameters,
    Job,
    JobEvent,
    JobState,
    ModelFormat,
)


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
            f"Export formats (default all: {', '.join(FORMAT_NAMES)}); `keras` is always included."
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
