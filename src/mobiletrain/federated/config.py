"""Configuration of a federated session, checked once with every bad value quoted."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from typing import Any

from mobiletrain.core.errors import ErrorCode, MobiletrainError


class StrategyName(enum.StrEnum):
    """How the server combines the devices' updates."""

    FEDAVG = "fedavg"  # mean weighted by (capped) sample counts, aggregated as updates arrive
    FEDPROX = "fedprox"  # FedAvg on the server; devices add a proximal term (mu)
    MEDIAN = "median"  # coordinate-wise median (robust to outliers)
    TRIMMED_MEAN = "trimmed-mean"  # coordinate-wise mean without the extremes


class StragglerPolicy(enum.StrEnum):
    """When a round stops waiting for its selected devices."""

    DEADLINE = "deadline"  # when every selected device answered, or at the deadline
    QUORUM = "quorum"  # as soon as min_completion_rate of them sent an accepted update


@dataclass
class FederatedConfig:
    """Settings of a federated session; every field has a default.

    A round opens when at least ``min_available_devices`` devices asked for work in the last
    ``availability_seconds``; it selects ``max(min_devices, fraction * available)`` of them.
    It closes per ``straggler_policy`` or at ``round_deadline_seconds``; then it aggregates
    when at least ``min_devices`` updates were accepted and the accepted share of the
    selected devices is at least ``min_completion_rate`` (and, without ``accept_failures``,
    when no selected device failed); otherwise it is skipped and the model is kept.
    """

    rounds: int = 20
    min_devices: int = 2
    min_available_devices: int = 2
    fraction: float = 1.0
    round_deadline_seconds: float = 60.0
    straggler_policy: StragglerPolicy = StragglerPolicy.DEADLINE
    min_completion_rate: float = 0.5
    accept_failures: bool = True
    availability_seconds: float = 30.0
    strategy: StrategyName = StrategyName.FEDAVG
    # FedAvg weights: a device claims its sample count; claims above this cap count as the cap.
    max_samples_per_device: int = 10_000
    # FedAvg weights: no update counts for more than this share of a round's total weight
    # (larger ones are lowered to the share; see strategy.cap_weight_shares).
    max_weight_share: float = 0.5
    proximal_mu: float = 0.01
    trim_fraction: float = 0.2
    # Central differential privacy: clip each update's L2 norm, add Gaussian noise.
    clip_norm: float = 0.0
    noise_multiplier: float = 0.0
    # What devices do each round.
    local_epochs: int = 1
    learning_rate: float = 0.05
    batch_size: int = 32
    # The model: a head of dense layers (hidden widths) on a feature extractor: the flattened
    # pixels, or the backbone of a trained model version (base_version > 0).
    hidden: list[int] = field(default_factory=lambda: [64])
    base_version: int = 0
    seed: int = 42

    def __post_init__(self) -> None:
        # Accept the wire strings too ("median"), so JSON and keyword arguments both work.
        for name, kind in (("strategy", StrategyName), ("straggler_policy", StragglerPolicy)):
            value = getattr(self, name)
            if not isinstance(value, kind):
                try:
                    setattr(self, name, kind(value))
                except ValueError:
                    allowed = ", ".join(v.value for v in kind)
                    raise MobiletrainError(
                        ErrorCode.INVALID_ARGUMENT,
                        f"unknown {name} {value!r}; allowed: {allowed}",
                    ) from None
        self.hidden = [int(h) for h in self.hidden]

    def validate(self) -> None:
        """Raise INVALID_ARGUMENT quoting the first bad value."""

        def bad(msg: str) -> MobiletrainError:
            return MobiletrainError(ErrorCode.INVALID_ARGUMENT, msg)

        if not 1 <= self.rounds <= 10_000:
            raise bad(f"rounds must be in 1..10000, got {self.rounds}")
        if not 1 <= self.min_devices <= 100_000:
            raise bad(f"min_devices must be in 1..100000, got {self.min_devices}")
        if self.min_available_devices < self.min_devices:
            raise bad(
                f"min_available_devices ({self.min_available_devices}) must be at least "
                f"min_devices ({self.min_devices})"
            )
        if not 0 < self.fraction <= 1:
            raise bad(f"fraction must be in (0, 1], got {self.fraction}")
        if not 0.05 <= self.round_deadline_seconds <= 7 * 86400:
            raise bad(
                f"round_deadline_seconds must be in 0.05..604800, got {self.round_deadline_seconds}"
            )
        if not 0 <= self.min_completion_rate <= 1:
            raise bad(f"min_completion_rate must be in [0, 1], got {self.min_completion_rate}")
        if self.availability_seconds <= 0:
            raise bad(f"availability_seconds must be > 0, got {self.availability_seconds}")
        if self.max_samples_per_device < 1:
            raise bad(f"max_samples_per_device must be >= 1, got {self.max_samples_per_device}")
        if not 0 < self.max_weight_share <= 1:
            raise bad(f"max_weight_share must be in (0, 1], got {self.max_weight_share}")
        if self.proximal_mu < 0:
            raise bad(f"proximal_mu must be >= 0, got {self.proximal_mu}")
        if not 0 <= self.trim_fraction < 0.5:
            raise bad(f"trim_fraction must be in [0, 0.5), got {self.trim_fraction}")
        if self.clip_norm < 0 or self.noise_multiplier < 0:
            raise bad("clip_norm and noise_multiplier must be >= 0")
        if self.noise_multiplier > 0 and self.clip_norm == 0:
            raise bad("noise_multiplier needs clip_norm > 0 (the noise is scaled to the clip)")
        if not 1 <= self.local_epochs <= 1000:
            raise bad(f"local_epochs must be in 1..1000, got {self.local_epochs}")
        if not 0 < self.learning_rate <= 10:
            raise bad(f"learning_rate must be in (0, 10], got {self.learning_rate}")
        if not 1 <= self.batch_size <= 4096:
            raise bad(f"batch_size must be in 1..4096, got {self.batch_size}")
        if len(self.hidden) > 8 or any(not 1 <= h <= 65536 for h in self.hidden):
            raise bad(f"hidden must be at most 8 widths in 1..65536, got {self.hidden}")
        if self.base_version < 0:
            raise bad(f"base_version must be >= 0, got {self.base_version}")

    @property
    def device_mu(self) -> float:
        """The proximal strength devices use (0 unless the strategy is FedProx)."""
        return self.proximal_mu if self.strategy is StrategyName.FEDPROX else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON form (enums as their strings)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, enum.Enum) else value
        out["hidden"] = list(self.hidden)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FederatedConfig:
        """Build from JSON, rejecting unknown keys and bad enum values."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MobiletrainError(
                ErrorCode.INVALID_ARGUMENT,
                f"unknown federated settings: {sorted(unknown)}; allowed: {sorted(known)}",
            )
        kwargs = dict(data)
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, str(exc)) from None
