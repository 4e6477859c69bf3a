"""The fixed evaluation set and the scores measured on it.

Every project has a **fixed evaluation set**: samples chosen once (seeded, stratified) that never
train any version. Each new version is run in LiteRT on that set in every exported format; the
scores below are what the release gate (:mod:`mobiletrain.core.release`) compares and what the
model card (:mod:`mobiletrain.core.manifest`) shows.

Plain Python (no TensorFlow, no storage); each type serialises itself once (``to_dict`` /
``from_dict``) for the store and both wires.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

EVAL_FRACTION = 0.2
"""Share of each label's samples that goes to the evaluation set."""
MIN_LABEL_SAMPLES_FOR_EVAL = 5
"""A label contributes to the evaluation set once it has this many samples; below that,
every sample of it trains (a label with 2 samples cannot spare one)."""
PRIMARY_FORMATS = ("float32", "float16", "dynamic-int8", "int8")
"""The gate compares the first of these formats both versions have (float32 normally: the
file ``predict`` runs and most apps ship)."""


# -- the fixed evaluation set ---------------------------------------------------------------


def eval_rank(project_id: str, sha256: str) -> float:
    """A sample's deterministic place in 0..1, seeded by the project id.

    The same bytes get the same rank in a project on every server and at every run.
    """
    digest = hashlib.sha256(f"{project_id}:{sha256}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass(frozen=True)
class EvalCandidate:
    """What the selection needs to know about one sample."""

    id: str
    label: str
    sha256: str
    in_eval_set: bool | None  # None: not assigned yet


def assign_eval_set(
    project_id: str, samples: Sequence[EvalCandidate], fraction: float = EVAL_FRACTION
) -> dict[str, bool]:
    """Decide, for every not yet assigned sample, whether it joins the evaluation set.

    Already assigned samples never move (an evaluation sample never trains a version).
    Per label: while a label has no evaluation sample and at least
    :data:`MIN_LABEL_SAMPLES_FOR_EVAL` samples, ``round(n * fraction)`` of its unassigned
    samples with the lowest :func:`eval_rank` are chosen (stratified, seeded). After that a new
    sample joins when its rank is below ``fraction`` (same ratio per label, deterministic).
    Labels with fewer samples stay unassigned and train, until they reach the minimum.
    """
    by_label: dict[str, list[EvalCandidate]] = defaultdict(list)
    for sample in samples:
        by_label[sample.label].append(sample)
    out: dict[str, bool] = {}
    for members in by_label.values():
        pending = [s for s in members if s.in_eval_set is None]
        if not pending:
            continue
        if any(s.in_eval_set for s in members):
            for s in pending:
                out[s.id] = eval_rank(project_id, s.sha256) < fraction
            continue
        if len(members) < MIN_LABEL_SAMPLES_FOR_EVAL:
            continue  # stays unassigned: trains for now
        take = max(1, round(len(members) * fraction))
        ranked = sorted(pending, key=lambda s: (eval_rank(project_id, s.sha256), s.id))
        chosen = {s.id for s in ranked[:take]}
        for s in pending:
            out[s.id] = s.id in chosen
    return out


def eval_set_snapshot(samples: Sequence[tuple[str, str]]) -> str:
    """sha256 over the sorted (sample sha256, label) pairs: names the exact evaluation set."""
    joined = "\n".join(f"{sha}:{label}" for sha, label in sorted(samples))
    return hashlib.sha256(joined.encode()).hexdigest()


# -- scores ---------------------------------------------------------------------------------


@dataclass
class ClassScore:
    """Precision, recall and F1 of one label."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "label": self.label,
            "precision": self.precision,
            "recall": self.recall,
            "f1": self.f1,
            "support": self.support,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ClassScore:
        """Inverse of :meth:`to_dict`."""
        return cls(
            label=str(data["label"]),
            precision=float(data["precision"]),
            recall=float(data["recall"]),
            f1=float(data["f1"]),
            support=int(data["support"]),
        )


@dataclass
class FormatScore:
    """One file run in LiteRT on the evaluation set."""

    format: str
    accuracy: float
    macro_f1: float
    per_class: list[ClassScore] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)

    def recall_of(self, label: str) -> float | None:
        """Recall of ``label`` (None when the set has no sample of it)."""
        for c in self.per_class:
            if c.label == label and c.support > 0:
                return c.recall
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "format": self.format,
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "per_class": [c.to_dict() for c in self.per_class],
            "confusion_matrix": self.confusion_matrix,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FormatScore:
        """Inverse of :meth:`to_dict`."""
        return cls(
            format=str(data["format"]),
            accuracy=float(data["accuracy"]),
            macro_f1=float(data.get("macro_f1", 0.0)),
            per_class=[ClassScore.from_dict(c) for c in data.get("per_class", [])],
            confusion_matrix=[[int(v) for v in row] for row in data.get("confusion_matrix", [])],
        )


@dataclass
class EvalSetInfo:
    """Which evaluation set a score was measured on."""

    num_samples: int
    class_counts: dict[str, int]
    snapshot_sha256: str
    fraction: float = EVAL_FRACTION
    description: str = (
        "fixed evaluation set: a seeded, stratified share of each label's samples chosen once; "
        "new samples join by a hash of their bytes; it never trains any version"
    )

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "num_samples": self.num_samples,
            "class_counts": dict(self.class_counts),
            "snapshot_sha256": self.snapshot_sha256,
            "fraction": self.fraction,
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalSetInfo:
        """Inverse of :meth:`to_dict`."""
        return cls(
            num_samples=int(data["num_samples"]),
            class_counts={str(k): int(v) for k, v in data.get("class_counts", {}).items()},
            snapshot_sha256=str(data.get("snapshot_sha256", "")),
            fraction=float(data.get("fraction", EVAL_FRACTION)),
            description=str(data.get("description", "")),
        )


@dataclass
class Evaluation:
    """A version's scores on the evaluation set, one per exported .tflite format."""

    eval_set: EvalSetInfo
    formats: dict[str, FormatScore]

    def primary(self, among: Sequence[str] | None = None) -> FormatScore | None:
        """The score the gate compares: the first of :data:`PRIMARY_FORMATS` present (and in
        ``among`` when given)."""
        for name in PRIMARY_FORMATS:
            if name in self.formats and (among is None or name in among):
                return self.formats[name]
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "eval_set": self.eval_set.to_dict(),
            "formats": {k: v.to_dict() for k, v in self.formats.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Inverse of :meth:`to_dict`."""
        return cls(
            eval_set=EvalSetInfo.from_dict(data["eval_set"]),
            formats={k: FormatScore.from_dict(v) for k, v in data.get("formats", {}).items()},
        )
