"""What the metadata store keeps about federated sessions, devices, rounds and updates."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from mobiletrain.federated.config import FederatedConfig
from mobiletrain.federated.rounds import RoundPhase
from mobiletrain.federated.validation import RejectReason


class SessionState(enum.StrEnum):
    """Life cycle of a federated session."""

    PREPARING = "preparing"  # the on-device files are being exported
    RUNNING = "running"  # rounds are being run
    FINISHED = "finished"  # every round ran
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True when the session will never change state again."""
        return self in (SessionState.FINISHED, SessionState.FAILED, SessionState.CANCELLED)


class UpdateStatus(enum.StrEnum):
    """What became of one device answer."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"  # the device reported that it could not train


@dataclass
class FederatedSession:
    """A federated training run of a project.

    Its progress events are the events of the job ``job_id`` (watch it like a training job).
    ``files`` holds the session's on-device files (format → ``{sha256, size}``), ``bundle``
    what is needed to use and republish them (head spec, manifest section, patch sites).
    """

    id: str
    project_id: str
    job_id: str
    state: SessionState
    config: FederatedConfig
    labels: list[str]
    created_at: datetime
    current_round: int = 0  # the newest round opened (0 = none yet)
    model_version: int | None = None  # the newest published version
    weights_sha256: str = ""  # blob of the current global weights (head-weights format)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    bundle: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # the latest held-out evaluation
    finished_at: datetime | None = None
    error: str = ""


@dataclass
class DeviceRecord:
    """A device registered with a session."""

    session_id: str
    device_id: str
    registered_at: datetime
    info: dict[str, Any] = field(default_factory=dict)
    token_id: str = ""  # the token that registered it: the only one that may act as it
    declared_samples: int | None = None  # local dataset size declared at registration
    last_seen_at: datetime | None = None  # when it last asked for work (on any replica)


@dataclass
class RoundRecord:
    """One round as stored; ``result`` holds the answers and, once closed, the outcome."""

    session_id: str
    number: int
    phase: RoundPhase
    selected: list[str]
    opened_at: datetime
    deadline_at: datetime
    closed_at: datetime | None = None
    result: dict[str, Any] = field(default_factory=dict)


@dataclass
class UpdateRecord:
    """One device answer; ``payload`` is the blob (sha256) of an accepted update's weights
    while its round is open (cleared when the round closes); ``id`` orders the answers."""

    session_id: str
    round: int
    device_id: str
    status: UpdateStatus
    reason: str
    message: str
    num_samples: int
    metrics: dict[str, Any]
    created_at: datetime
    payload: str = ""
    id: int = 0

    @property
    def counts(self) -> bool:
        """True when the answer counts for its round (not a duplicate or a stale-round one)."""
        return self.reason not in (RejectReason.DUPLICATE, RejectReason.STALE_ROUND)
