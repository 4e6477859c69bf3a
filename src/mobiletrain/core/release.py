"""The release gate: the release policy, its decision, staged rollouts and the release history.

A new model version reaches phones only through here. Each new version is run in LiteRT on the
project's fixed evaluation set (:mod:`mobiletrain.core.evaluation`) in every exported format,
next to the current version's files run on the same samples in the same worker; :func:`decide`
then applies the project's :class:`ReleasePolicy`. A version that does not pass is kept as a
*candidate* with the reason. The model card it ends up in is :mod:`mobiletrain.core.manifest`.

Plain Python (no TensorFlow, no storage): the worker, the services and both transports share
these types, and each serialises them once (``to_dict``/``from_dict``).
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.evaluation import MIN_LABEL_SAMPLES_FOR_EVAL, Evaluation

CHANCE_MARGIN = 0.05
"""A version whose accuracy is within this of the majority-class share is flagged."""


class VersionStatus(enum.StrEnum):
    """Where a model version stands in its project."""

    CURRENT = "current"  # what apps get now
    CANDIDATE = "candidate"  # never released: kept with the gate's reason
    RETIRED = "retired"  # was current once, replaced since


class ReleaseMode(enum.StrEnum):
    """``auto``: the gate promotes a version that passes; ``manual``: people promote."""

    AUTO = "auto"
    MANUAL = "manual"


class ReleaseAction(enum.StrEnum):
    """What changed (or not) in a release record or decision."""

    PROMOTED = "promoted"  # the gate made the version current
    KEPT_CANDIDATE = "kept-candidate"  # the gate kept it out of phones
    MANUAL_PROMOTE = "manual-promote"
    ROLLBACK = "rollback"


def _fraction(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not 0.0 <= float(value) <= 1.0:
        raise MobiletrainError(
            ErrorCode.INVALID_RELEASE_POLICY, f"{name} must be in 0..1, got {value}"
        )
    return float(value)


@dataclass(frozen=True)
class ReleasePolicy:
    """How a project's new versions become current. The defaults suit a newcomer.

    - ``mode``: ``auto`` (the gate decides) or ``manual`` (the gate only reports).
    - ``margin``: a new version may be at most this much less accurate than the current one.
    - ``min_accuracy``: optional floor on the evaluation-set accuracy.
    - ``min_per_class_recall``: optional floor on every label's recall.
    - ``max_int8_drop``: optional ceiling on float32 accuracy minus int8 accuracy.
    """

    mode: ReleaseMode = ReleaseMode.AUTO
    margin: float = 0.02
    min_accuracy: float | None = None
    min_per_class_recall: float | None = None
    max_int8_drop: float | None = None
    # Staged rollout of the gate's promotions: this share of device tokens (chosen by a hash of
    # the token id) gets a newly promoted version first; the others keep the previous one
    # until ``rollout_hours`` have passed (None: until a person promotes the version by hand).
    rollout_percent: int = 100
    rollout_hours: float | None = None

    def validate(self) -> ReleasePolicy:
        """Return self, or raise INVALID_RELEASE_POLICY naming the bad value."""
        _fraction("margin", self.margin)
        _fraction("min_accuracy", self.min_accuracy)
        _fraction("min_per_class_recall", self.min_per_class_recall)
        _fraction("max_int8_drop", self.max_int8_drop)
        if not 1 <= self.rollout_percent <= 100:
            raise MobiletrainError(
                ErrorCode.INVALID_RELEASE_POLICY,
                f"rollout_percent must be in 1..100, got {self.rollout_percent}",
            )
        if self.rollout_hours is not None and not 0 <= self.rollout_hours <= 24 * 365:
            raise MobiletrainError(
                ErrorCode.INVALID_RELEASE_POLICY,
                f"rollout_hours must be in 0..8760, got {self.rollout_hours}",
            )
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON form (unset floors are ``null``)."""
        return {
            "mode": self.mode.value,
            "margin": self.margin,
            "min_accuracy": self.min_accuracy,
            "min_per_class_recall": self.min_per_class_recall,
            "max_int8_drop": self.max_int8_drop,
            "rollout_percent": self.rollout_percent,
            "rollout_hours": self.rollout_hours,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> ReleasePolicy:
        """Inverse of :meth:`to_dict`; missing keys take the defaults, unknown ones fail."""
        if not data:
            return cls()
        known = {
            "mode",
            "margin",
            "min_accuracy",
            "min_per_class_recall",
            "max_int8_drop",
            "rollout_percent",
            "rollout_hours",
        }
        unknown = set(data) - known
        if unknown:
            raise MobiletrainError(
                ErrorCode.INVALID_RELEASE_POLICY,
                f"unknown release policy keys {sorted(unknown)}; allowed: {sorted(known)}",
            )
        try:
            mode = ReleaseMode(data.get("mode") or ReleaseMode.AUTO.value)
        except ValueError:
            raise MobiletrainError(
                ErrorCode.INVALID_RELEASE_POLICY,
                f"unknown release mode {data.get('mode')!r}; allowed: auto, manual",
            ) from None

        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        margin = data.get("margin")
        percent = data.get("rollout_percent")
        try:
            return cls(
                mode=mode,
                margin=0.02 if margin is None else float(margin),
                min_accuracy=opt("min_accuracy"),
                min_per_class_recall=opt("min_per_class_recall"),
                max_int8_drop=opt("max_int8_drop"),
                rollout_percent=100 if percent is None else int(percent),
                rollout_hours=opt("rollout_hours"),
            ).validate()
        except (TypeError, ValueError, OverflowError):
            raise MobiletrainError(
                ErrorCode.INVALID_RELEASE_POLICY, "release policy values must be numbers"
            ) from None


@dataclass(frozen=True)
class Rollout:
    """A staged rollout in progress: ``percent`` of device tokens get ``version``, the others
    keep ``previous_version`` until ``complete_at`` (None: until a person promotes by hand)."""

    version: int
    previous_version: int
    percent: int
    started_at: datetime
    complete_at: datetime | None = None

    def active(self, now: datetime) -> bool:
        """True while some devices still get the previous version."""
        return self.percent < 100 and (self.complete_at is None or now < self.complete_at)

    def serves_new(self, token_id: str) -> bool:
        """Whether this device token is in the first share (deterministic per token and
        version, so each rollout picks its own share)."""
        digest = hashlib.sha256(f"{self.version}:{token_id}".encode()).digest()
        return int.from_bytes(digest[:8], "big") % 100 < self.percent

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "version": self.version,
            "previous_version": self.previous_version,
            "percent": self.percent,
            "started_at": self.started_at.isoformat(),
            "complete_at": self.complete_at.isoformat() if self.complete_at else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rollout:
        """Inverse of :meth:`to_dict`."""
        complete = data.get("complete_at")
        return cls(
            version=int(data["version"]),
            previous_version=int(data["previous_version"]),
            percent=int(data["percent"]),
            started_at=datetime.fromisoformat(str(data["started_at"])),
            complete_at=datetime.fromisoformat(str(complete)) if complete else None,
        )

    @classmethod
    def start(
        cls, policy: ReleasePolicy, version: int, previous: int | None, now: datetime
    ) -> Rollout | None:
        """The rollout a gate promotion starts under ``policy`` (None: everyone at once)."""
        if previous is None or policy.rollout_percent >= 100:
            return None
        complete = (
            now + timedelta(hours=policy.rollout_hours)
            if policy.rollout_hours is not None
            else None
        )
        return cls(version, previous, policy.rollout_percent, now, complete)


# -- the decision -------------------------------------------------------------------------


@dataclass
class ReleaseDecision:
    """What the gate decided for a new version, and why (a job event and part of the card)."""

    promoted: bool
    reason: str
    policy: ReleasePolicy
    compared_format: str = ""
    accuracy: float | None = None
    current_version: int | None = None
    current_accuracy: float | None = None
    checks: list[str] = field(default_factory=list)  # every rule applied, passed or not

    @property
    def action(self) -> ReleaseAction:
        """PROMOTED or KEPT_CANDIDATE."""
        return ReleaseAction.PROMOTED if self.promoted else ReleaseAction.KEPT_CANDIDATE

    def to_dict(self) -> dict[str, Any]:
        """JSON form (the RELEASE event's data)."""
        return {
            "promoted": self.promoted,
            "action": self.action.value,
            "reason": self.reason,
            "policy": self.policy.to_dict(),
            "compared_format": self.compared_format,
            "accuracy": self.accuracy,
            "current_version": self.current_version,
            "current_accuracy": self.current_accuracy,
            "checks": list(self.checks),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReleaseDecision:
        """Inverse of :meth:`to_dict`."""

        def opt(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        current = data.get("current_version")
        return cls(
            promoted=bool(data["promoted"]),
            reason=str(data.get("reason", "")),
            policy=ReleasePolicy.from_dict(data.get("policy")),
            compared_format=str(data.get("compared_format", "")),
            accuracy=opt("accuracy"),
            current_version=None if current is None else int(current),
            current_accuracy=opt("current_accuracy"),
            checks=[str(c) for c in data.get("checks", [])],
        )


def decide(
    policy: ReleasePolicy,
    new: Evaluation,
    current: Evaluation | None,
    current_version: int | None,
    pinned: bool = False,
) -> ReleaseDecision:
    """Apply ``policy`` to a new version's evaluation and the current version's on the same set.

    Floors come first (they hold even without a current version); then the comparison: the
    new version may be at most ``policy.margin`` less accurate than the current one in the
    first format both have. ``manual`` mode and a pinned current version never promote.
    """
    fails: list[str] = []
    checks: list[str] = []
    shared = list(current.formats) if current is not None else None
    score = new.primary(shared) or new.primary()
    if score is None:
        return ReleaseDecision(
            promoted=False,
            reason="no .tflite file could be evaluated on the evaluation set",
            policy=policy,
            current_version=current_version,
        )
    if new.eval_set.num_samples == 0:
        # Nothing was measured: a first version still ships (a model beats none), a later one
        # cannot be shown not to be worse.
        empty = (
            f"the evaluation set is empty (a label needs {MIN_LABEL_SAMPLES_FOR_EVAL} samples "
            "before some are held out)"
        )
        if current_version is not None:
            return ReleaseDecision(
                promoted=False,
                reason=f"{empty}, so the gate cannot compare with current version "
                f"{current_version}: promote it yourself",
                policy=policy,
                compared_format=score.format,
                current_version=current_version,
            )
        blocked = _blocked(policy, pinned, current_version)
        return ReleaseDecision(
            promoted=blocked is None,
            reason=blocked or f"first version; {empty}, so nothing was measured",
            policy=policy,
            compared_format=score.format,
        )
    acc = score.accuracy
    if policy.min_accuracy is not None:
        ok = acc >= policy.min_accuracy
        checks.append(f"accuracy {acc:.4f} >= min_accuracy {policy.min_accuracy}: {ok}")
        if not ok:
            fails.append(f"accuracy {acc:.4f} is below min_accuracy {policy.min_accuracy}")
    if policy.min_per_class_recall is not None:
        low = [
            f"{c.label} {c.recall:.4f}"
            for c in score.per_class
            if c.support > 0 and c.recall < policy.min_per_class_recall
        ]
        checks.append(f"per-class recall >= {policy.min_per_class_recall}: {not low}")
        if low:
            fails.append(
                f"recall below min_per_class_recall {policy.min_per_class_recall}: "
                + ", ".join(low)
            )
    if policy.max_int8_drop is not None and "float32" in new.formats and "int8" in new.formats:
        drop = new.formats["float32"].accuracy - new.formats["int8"].accuracy
        ok = drop <= policy.max_int8_drop
        checks.append(f"int8 drop {drop:.4f} <= max_int8_drop {policy.max_int8_drop}: {ok}")
        if not ok:
            fails.append(f"int8 loses {drop:.4f} accuracy, more than {policy.max_int8_drop}")
    current_acc: float | None = None
    if current is not None:
        cur = current.formats.get(score.format)
        if cur is not None:
            current_acc = cur.accuracy
            ok = acc >= current_acc - policy.margin
            checks.append(
                f"{score.format} accuracy {acc:.4f} >= current v{current_version} "
                f"{current_acc:.4f} - margin {policy.margin}: {ok}"
            )
            if not ok:
                fails.append(
                    f"{score.format} accuracy {acc:.4f} on the evaluation set is worse than "
                    f"current version {current_version}'s {current_acc:.4f} by more than the "
                    f"margin {policy.margin}"
                )
    blocked = _blocked(policy, pinned, current_version)
    if fails:
        promoted, reason = False, "; ".join(fails)
    elif blocked is not None:
        promoted, reason = False, blocked
    else:
        promoted = True
        reason = (
            f"{score.format} accuracy {acc:.4f} on the evaluation set"
            + (
                f" vs current version {current_version}'s {current_acc:.4f}"
                if current_acc is not None
                else " (first released version)"
                if current_version is None
                else ""
            )
            + "; every rule passed"
        )
    return ReleaseDecision(
        promoted=promoted,
        reason=reason,
        policy=policy,
        compared_format=score.format,
        accuracy=acc,
        current_version=current_version,
        current_accuracy=current_acc,
        checks=checks,
    )


def _blocked(policy: ReleasePolicy, pinned: bool, current_version: int | None) -> str | None:
    """Why the gate may not promote even a passing version (None: it may)."""
    if policy.mode is ReleaseMode.MANUAL:
        return "release policy is manual: promote it yourself"
    if pinned:
        return f"current version {current_version} is pinned: promote it yourself"
    return None


def chance_warning(accuracy: float, class_counts: Mapping[str, int]) -> str | None:
    """A warning when ``accuracy`` is no better than always answering the biggest label."""
    total = sum(class_counts.values())
    if total == 0:
        return None
    baseline = max(class_counts.values()) / total
    if accuracy <= baseline + CHANCE_MARGIN:
        return (
            f"accuracy {accuracy:.4f} is at chance level (always answering the most common "
            f"label scores {baseline:.4f}): the model has not learned the task"
        )
    return None


@dataclass
class ReleaseRecord:
    """One change of a project's current version (the history people audit)."""

    project_id: str
    version: int | None  # the version that became current
    previous_version: int | None
    action: ReleaseAction
    reason: str
    actor: str  # "release gate" or the token's name
    created_at: datetime
    job_id: str = ""
    id: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "id": self.id,
            "version": self.version,
            "previous_version": self.previous_version,
            "action": self.action.value,
            "reason": self.reason,
            "actor": self.actor,
            "job_id": self.job_id,
            "created_at": self.created_at.isoformat(),
        }
