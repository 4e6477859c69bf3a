"""The round state machine: select devices, admit their answers, decide when and how to close.

::

    (session waits until enough devices are available)
            │ open(): select devices, set the deadline
            ▼
          OPEN ── accepted / rejected / failed answers ──┐
            │ should_close(): everyone answered, the     │
            │ quorum is reached, or the deadline passed  ◄┘
            ▼
      decide(): AGGREGATED (enough accepted updates) or SKIPPED (the model is kept)

Times are Unix seconds (floats) so the state can be persisted and resumed after a restart.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mobiletrain.federated.config import FederatedConfig, StragglerPolicy
from mobiletrain.federated.validation import Rejection, RejectReason


class RoundPhase(enum.StrEnum):
    """Where a round is."""

    OPEN = "open"  # selected devices are training
    AGGREGATED = "aggregated"  # closed; the updates made a new global model
    SKIPPED = "skipped"  # closed without enough good updates; the global model is unchanged

    @property
    def is_closed(self) -> bool:
        """True once the round will not change again."""
        return self is not RoundPhase.OPEN


def sample_size(available: int, config: FederatedConfig) -> int:
    """How many of ``available`` devices a round selects (0 = not enough to start)."""
    if available < config.min_available_devices:
        return 0
    return min(available, max(config.min_devices, math.ceil(config.fraction * available)))


def select_devices(
    available: Sequence[str], config: FederatedConfig, rng: np.random.Generator
) -> list[str]:
    """A uniform random sample of the available devices ([] when too few are available)."""
    n = sample_size(len(available), config)
    if n == 0:
        return []
    pool = sorted(available)
    picked = rng.choice(len(pool), size=n, replace=False)
    return [pool[i] for i in sorted(picked)]


@dataclass
class RoundState:
    """One round of a session."""

    number: int
    selected: list[str]
    opened_at: float
    deadline: float
    phase: RoundPhase = RoundPhase.OPEN
    accepted: dict[str, int] = field(default_factory=dict)  # device -> counted samples
    rejected: dict[str, str] = field(default_factory=dict)  # device -> reason
    failed: dict[str, str] = field(default_factory=dict)  # device -> its error message
    closed_at: float | None = None
    close_reason: str = ""

    def admit(self, device_id: str, round_number: int) -> Rejection | None:
        """Round checks before the content of an update is looked at."""
        if round_number != self.number or self.phase.is_closed:
            return Rejection(
                RejectReason.STALE_ROUND,
                f"round {round_number} is not open (the open round is "
                f"{self.number if not self.phase.is_closed else 'none'})",
            )
        if device_id not in self.selected:
            return Rejection(
                RejectReason.NOT_SELECTED, f"device {device_id} was not selected for this round"
            )
        if device_id in self.answered:
            return Rejection(RejectReason.DUPLICATE, "this device already answered this round")
        return None

    @property
    def answered(self) -> set[str]:
        """Selected devices that sent an update (good or bad) or reported a failure."""
        return set(self.accepted) | set(self.failed) | (set(self.rejected) & set(self.selected))

    @property
    def completion_rate(self) -> float:
        """Accepted updates per selected device."""
        return len(self.accepted) / len(self.selected) if self.selected else 0.0

    def quorum(self, config: FederatedConfig) -> int:
        """Accepted updates needed to aggregate."""
        return max(config.min_devices, math.ceil(config.min_completion_rate * len(self.selected)))

    def should_close(self, now: float, config: FederatedConfig) -> str:
        """Why the round should close now ("" = keep waiting)."""
        if self.phase.is_closed:
            return ""
        if set(self.selected) <= self.answered:
            return "all selected devices answered"
        if config.straggler_policy is StragglerPolicy.QUORUM and len(self.accepted) >= self.quorum(
            config
        ):
            return "quorum reached"
        if now >= self.deadline:
            return "deadline passed"
        return ""

    def decide(self, config: FederatedConfig) -> tuple[RoundPhase, str]:
        """Aggregate or skip, with the reason."""
        accepted, selected = len(self.accepted), len(self.selected)
        if accepted < config.min_devices:
            return RoundPhase.SKIPPED, (
                f"{accepted} accepted update(s), fewer than min_devices={config.min_devices}"
            )
        if self.completion_rate < config.min_completion_rate:
            return RoundPhase.SKIPPED, (
                f"completion {accepted}/{selected} = {self.completion_rate:.2f} is below "
                f"min_completion_rate={config.min_completion_rate}"
            )
        if not config.accept_failures and accepted < selected:
            return RoundPhase.SKIPPED, (
                f"{selected - accepted} selected device(s) failed and accept_failures is off"
            )
        return RoundPhase.AGGREGATED, f"{accepted}/{selected} updates aggregated"

    def to_dict(self) -> dict[str, Any]:
        """JSON form (persisted with the round)."""
        return {
            "accepted": dict(self.accepted),
            "rejected": dict(self.rejected),
            "failed": dict(self.failed),
            "close_reason": self.close_reason,
        }
