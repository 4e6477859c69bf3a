"""Row → domain object converters of the SQL metadata store."""

from __future__ import annotations

from typing import Any

from mobiletrain.core.annotations import Box
from mobiletrain.core.auth import Role
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.evaluation import Evaluation
from mobiletrain.core.release import (
    ReleaseAction,
    ReleaseDecision,
    ReleasePolicy,
    ReleaseRecord,
    Rollout,
)
from mobiletrain.core.types import (
    Artifact,
    Hyperparameters,
    InputSpec,
    Job,
    JobState,
    ModelFormat,
    ModelVersion,
    Project,
    Sample,
    TaskType,
    Token,
    UploadSession,
)
from mobiletrain.store.sql.engine import _utc


def _row_project(r: Any) -> Project:
    return Project(
        id=r.id,
        name=r.name,
        task=TaskType(r.task),
        labels=list(r.labels),
        labels_fixed=bool(r.labels_fixed),
        input_spec=InputSpec.from_dict(r.input_spec),
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        promoted_version=r.promoted_version,
        release_policy=ReleasePolicy.from_dict(r.release_policy) if r.release_policy else None,
        release_pinned=bool(r.release_pinned),
        rollout=Rollout.from_dict(r.rollout) if r.rollout else None,
    )


def _row_sample(r: Any) -> Sample:
    return Sample(
        id=r.id,
        project_id=r.project_id,
        client_id=r.client_id,
        label=r.label,
        sha256=r.sha256,
        size=r.size,
        media_type=r.media_type,
        width=r.width,
        height=r.height,
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        uploaded_by=r.uploaded_by,
        in_eval_set=None if r.in_eval_set is None else bool(r.in_eval_set),
        damaged=bool(r.damaged),
        boxes=None if r.boxes is None else [Box.from_dict(b) for b in r.boxes],
    )


def _row_job(r: Any) -> Job:
    return Job(
        id=r.id,
        project_id=r.project_id,
        state=JobState(r.state),
        hyperparameters=Hyperparameters.from_dict(r.hyperparameters),
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        started_at=_utc(r.started_at),
        finished_at=_utc(r.finished_at),
        attempts=r.attempts,
        error=r.error,
        cancel_requested=bool(r.cancel_requested),
        model_version=r.model_version,
    )


def _row_model(r: Any) -> ModelVersion:
    artifacts = {
        ModelFormat(k): Artifact(format=ModelFormat(k), sha256=v["sha256"], size=v["size"])
        for k, v in r.artifacts.items()
    }
    return ModelVersion(
        project_id=r.project_id,
        version=r.version,
        job_id=r.job_id,
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        metrics=r.metrics,
        manifest=r.manifest,
        artifacts=artifacts,
        status=r.status,
        decision=ReleaseDecision.from_dict(r.decision) if r.decision else None,
        evaluation=Evaluation.from_dict(r.evaluation) if r.evaluation else None,
        warnings=list(r.warnings or []),
    )


def _row_release(r: Any) -> ReleaseRecord:
    return ReleaseRecord(
        id=r.id,
        project_id=r.project_id,
        version=r.version,
        previous_version=r.previous_version,
        action=ReleaseAction(r.action),
        reason=r.reason,
        actor=r.actor,
        job_id=r.job_id,
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
    )


def _relabel_conflict(label: str, twin_id: str | None) -> MobiletrainError:
    details = {"sample_id": twin_id} if twin_id else {}
    return MobiletrainError(
        ErrorCode.ALREADY_EXISTS,
        f"the project already has this image labelled {label!r}",
        **details,
    )


def _hex_digests(value: Any, out: set[str]) -> None:
    """Add every sha256-looking string inside a JSON value to ``out``."""
    if isinstance(value, str):
        if len(value) == 64 and all(ch in "0123456789abcdef" for ch in value):
            out.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _hex_digests(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _hex_digests(v, out)


def _row_token(r: Any) -> Token:
    return Token(
        id=r.id,
        role=Role(r.role),
        project_id=r.project_id,
        name=r.name,
        token_hash=r.token_hash,
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        expires_at=_utc(r.expires_at),
        revoked_at=_utc(r.revoked_at),
    )


def _row_upload(r: Any) -> UploadSession:
    return UploadSession(
        id=r.id,
        project_id=r.project_id,
        client_id=r.client_id,
        label=r.label,
        size=int(r.size),
        sha256=r.sha256,
        offset=int(r.offset),
        chunks=list(r.chunks),
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        expires_at=_utc(r.expires_at),  # type: ignore[arg-type]
        uploaded_by=r.uploaded_by,
    )
