"""Pydantic schemas of the federated REST routes, and their conversions (this module and
``schemas.py`` are the REST adapter's only wire-shape code)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from mobiletrain.federated.config import FederatedConfig, StragglerPolicy, StrategyName
from mobiletrain.federated.device import AssignmentReply, AssignmentStatus, UpdateReply
from mobiletrain.federated.records import FederatedSession, RoundRecord, SessionState
from mobiletrain.federated.rounds import RoundPhase
from mobiletrain.federated.validation import RejectReason

_D = FederatedConfig()


class FederatedConfigModel(BaseModel):
    """Settings of a federated session; omit a field for its default."""

    model_config = ConfigDict(strict=True, extra="forbid")

    rounds: int | None = Field(None, description=f"Number of rounds. Default {_D.rounds}.")
    min_devices: int | None = Field(
        None, description="Fewest accepted updates a round aggregates. Default 2."
    )
    min_available_devices: int | None = Field(
        None, description="Devices that must be polling before a round opens. Default 2."
    )
    fraction: float | None = Field(
        None, description="Share of the available devices a round selects, (0, 1]. Default 1."
    )
    round_deadline_seconds: float | None = Field(
        None, description="Seconds a round waits for its devices. Default 60."
    )
    straggler_policy: str | None = Field(
        None,
        description="`deadline` (wait for all, up to the deadline) or `quorum` (close once "
        "min_completion_rate answered). Default deadline.",
        json_schema_extra={"enum": [p.value for p in StragglerPolicy]},
    )
    min_completion_rate: float | None = Field(
        None,
        description="Accepted share of the selected devices needed to aggregate; below it "
        "the round is skipped and the model kept. Default 0.5.",
    )
    accept_failures: bool | None = Field(
        None, description="Aggregate although some devices failed. Default true."
    )
    availability_seconds: float | None = Field(
        None, description="A device is available this long after its last poll. Default 30."
    )
    strategy: str | None = Field(
        None,
        description="Aggregation. Default fedavg.",
        json_schema_extra={"enum": [s.value for s in StrategyName]},
    )
    max_samples_per_device: int | None = Field(
        None, description="FedAvg: cap on the sample count a device may claim. Default 10000."
    )
    max_weight_share: float | None = Field(
        None,
        description="FedAvg/FedProx: most share of a round's total weight one update may have "
        "(larger weights are lowered to it), in (0, 1]. Default 0.5.",
    )
    proximal_mu: float | None = Field(None, description="FedProx: proximal strength. Default 0.01.")
    trim_fraction: float | None = Field(
        None, description="Trimmed mean: share dropped at each end. Default 0.2."
    )
    clip_norm: float | None = Field(
        None, description="Clip each update's L2 norm to this; 0 = off. Default 0."
    )
    noise_multiplier: float | None = Field(
        None, description="Gaussian noise std = this x clip_norm x sensitivity. Default 0."
    )
    local_epochs: int | None = Field(None, description="Local epochs per round. Default 1.")
    learning_rate: float | None = Field(None, description="Local SGD learning rate. Default 0.05.")
    batch_size: int | None = Field(None, description="Train-step batch size. Default 32.")
    hidden: list[int] | None = Field(
        None, description="Hidden layer widths of the head; [] = one dense layer. Default [64]."
    )
    base_version: int | None = Field(
        None, description="Trained version whose backbone extracts the features; 0 = pixels."
    )
    seed: int | None = Field(None, description="Seed of selection, init and noise. Default 42.")


def config_from_model(model: FederatedConfigModel | None) -> FederatedConfig:
    """Request body → domain config (defaults for omitted fields)."""
    data = model.model_dump(exclude_none=True) if model is not None else {}
    return FederatedConfig.from_dict(data)


class SessionFilePublic(BaseModel):
    """One file of a session."""

    format: str = Field(description="Format name, e.g. `train-step`.")
    sha256: str = Field(description="Lower-case hex SHA-256 (cache key, download check).")
    size: int = Field(description="Size in bytes.")
    download_url: str = Field(description="Where to download it.")


class FederatedSessionPublic(BaseModel):
    """A federated session."""

    id: str = Field(description="Session id.")
    project_id: str = Field(description="Project id.")
    job_id: str = Field(description="Job whose events report progress (`/v1/jobs/{id}/events`).")
    state: str = Field(
        description="Life-cycle state.", json_schema_extra={"enum": [s.value for s in SessionState]}
    )
    config: dict[str, Any] = Field(description="The settings in use (every field).")
    labels: list[str] = Field(description="Class labels in output order.")
    current_round: int = Field(description="The newest round opened (0 = none yet).")
    model_version: int | None = Field(description="Newest version the session published.")
    held_out_accuracy: float | None = Field(description="Held-out accuracy of that version.")
    files: list[SessionFilePublic] = Field(description="On-device files and current weights.")
    ondevice: dict[str, Any] = Field(
        description="The manifest's `ondevice` section: head, tensors in input order, weights."
    )
    created_at: datetime = Field(description="When the session was created (UTC).")
    finished_at: datetime | None = Field(description="When it ended (UTC).")
    error: str = Field(description="Why it failed; empty otherwise.")


class FederatedSessionListPublic(BaseModel):
    """A project's sessions."""

    sessions: list[FederatedSessionPublic] = Field(description="Sessions, newest first.")


def session_to_public(
    session: FederatedSession, weights_size: int | None
) -> FederatedSessionPublic:
    """Domain session → public schema."""
    files = dict(session.files)
    if session.weights_sha256 and weights_size is not None:
        files["head-weights"] = {"sha256": session.weights_sha256, "size": weights_size}
    accuracy = session.metrics.get("accuracy")
    return FederatedSessionPublic(
        id=session.id,
        project_id=session.project_id,
        job_id=session.job_id,
        state=session.state.value,
        config=session.config.to_dict(),
        labels=list(session.labels),
        current_round=session.current_round,
        model_version=session.model_version,
        held_out_accuracy=float(accuracy) if isinstance(accuracy, int | float) else None,
        files=[
            SessionFilePublic(
                format=name,
                sha256=str(info["sha256"]),
                size=int(info["size"]),
                download_url=f"/v1/federated/sessions/{session.id}/files/{name}",
            )
            for name, info in files.items()
        ],
        ondevice=dict(session.bundle.get("ondevice", {})),
        created_at=session.created_at,
        finished_at=session.finished_at,
        error=session.error,
    )


class FederatedRoundPublic(BaseModel):
    """One round of a session."""

    number: int = Field(description="Round number, from 1.")
    phase: str = Field(
        description="open, aggregated or skipped.",
        json_schema_extra={"enum": [p.value for p in RoundPhase]},
    )
    selected: list[str] = Field(description="Ids of the selected devices.")
    opened_at: datetime = Field(description="When it opened (UTC).")
    deadline: datetime = Field(description="When it stops waiting for devices (UTC).")
    closed_at: datetime | None = Field(description="When it closed (UTC).")
    result: dict[str, Any] = Field(
        description="accepted (device → samples), rejected (device → reason), failed, "
        "close_reason, completion_rate, clipped, noise_std, model_version, evaluation."
    )


class FederatedRoundListPublic(BaseModel):
    """A session's rounds."""

    rounds: list[FederatedRoundPublic] = Field(description="Rounds in order.")


def round_to_public(record: RoundRecord) -> FederatedRoundPublic:
    """Domain round → public schema."""
    return FederatedRoundPublic(
        number=record.number,
        phase=record.phase.value,
        selected=list(record.selected),
        opened_at=record.opened_at,
        deadline=record.deadline_at,
        closed_at=record.closed_at,
        result=record.result,
    )


class RegisterDeviceRequest(BaseModel):
    """Joining a session."""

    model_config = ConfigDict(strict=True, extra="forbid")

    info: dict[str, str] = Field(
        default_factory=dict, description="Free-form facts about the device (at most 16)."
    )


class RegisterDevicePublic(BaseModel):
    """A registered device."""

    device_id: str = Field(description="The device's id for tasks and updates.")
    session: FederatedSessionPublic = Field(description="The session joined.")


class WeightTensorPublic(BaseModel):
    """Name and shape of one weight tensor."""

    name: str = Field(description="Tensor name, e.g. `dense0_kernel`.")
    shape: list[int] = Field(description="Shape; kernels are (inputs, units).")


class FederatedTaskPublic(BaseModel):
    """One round's work."""

    session_id: str = Field(description="Session id (send it back with the update).")
    round: int = Field(description="Round number (send it back with the update).")
    rounds: int = Field(description="Rounds of the session.")
    deadline: datetime = Field(description="Updates after this are stale (UTC).")
    tensors: list[WeightTensorPublic] = Field(description="The weight tensors in order.")
    weights: str = Field(
        description="Base64 of the global weights: the tensors as little-endian float32, "
        "row-major, back to back."
    )
    learning_rate: float = Field(description="The train-step model's `lr` input.")
    local_epochs: int = Field(description="Passes over the local data.")
    batch_size: int = Field(description="The train-step model's batch size.")
    mu: float = Field(description="The train-step model's `mu` input (FedProx; 0 = plain SGD).")
    labels: list[str] = Field(description="Class labels in output order.")
    model_version: int | None = Field(description="Newest published version.")


class TaskReplyPublic(BaseModel):
    """The answer to a device asking for work (REST keeps the wire's name ``task``; in Python
    the device's round work is an *assignment*)."""

    status: str = Field(
        description="`task`: train now; `wait`: poll again later; `finished`: stop.",
        json_schema_extra={"enum": [s.value for s in AssignmentStatus]},
    )
    session_id: str = Field(description="The session.")
    message: str = Field(description="Why there is no task (for people).")
    retry_after_seconds: float = Field(description="With `wait`: poll again after this.")
    task: FederatedTaskPublic | None = Field(description="With `task`: the work.")


def assignment_reply_to_public(reply: AssignmentReply) -> TaskReplyPublic:
    """Domain assignment reply → the public ``task`` answer."""
    task = reply.assignment
    return TaskReplyPublic(
        status=reply.status.value,
        session_id=reply.session_id,
        message=reply.message,
        retry_after_seconds=reply.retry_after_seconds,
        task=None
        if task is None
        else FederatedTaskPublic(
            session_id=task.session_id,
            round=task.round,
            rounds=task.rounds,
            deadline=task.deadline,
            tensors=[WeightTensorPublic(name=n, shape=list(s)) for n, s in task.tensors],
            weights=base64.b64encode(task.weights).decode("ascii"),
            learning_rate=task.learning_rate,
            local_epochs=task.local_epochs,
            batch_size=task.batch_size,
            mu=task.mu,
            labels=list(task.labels),
            model_version=task.model_version,
        ),
    )


class UpdateRequest(BaseModel):
    """A device's answer for a round."""

    model_config = ConfigDict(strict=True, extra="forbid")

    device_id: str = Field(description="The id from registration.")
    session_id: str = Field(description="The task's session id.")
    round: int = Field(description="The task's round.")
    num_samples: int = Field(description="Local samples trained on (FedAvg weight, capped).")
    weights: str = Field(
        "", description="Base64 of the new weights, same layout as the task's (empty with error)."
    )
    dtype: str = Field("float32", description="Element type of the weights; only float32 counts.")
    metrics: dict[str, float] = Field(
        default_factory=dict, description="Local metrics such as `loss` and `accuracy`."
    )
    error: str = Field("", description="Set instead of weights when local training failed.")


class UpdateReplyPublic(BaseModel):
    """Whether an update counts."""

    accepted: bool = Field(description="True when the update counts in the round.")
    round: int = Field(description="The round it was sent for.")
    reason: str = Field(
        description="Why it was rejected; empty when accepted.",
        json_schema_extra={"enum": ["", *(r.value for r in RejectReason)]},
    )
    message: str = Field(description="Details for people.")


def update_reply_to_public(reply: UpdateReply) -> UpdateReplyPublic:
    """Domain update reply → public schema."""
    return UpdateReplyPublic(
        accepted=reply.accepted, round=reply.round, reason=reply.reason, message=reply.message
    )
