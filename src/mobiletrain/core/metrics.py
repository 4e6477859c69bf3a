"""A version's metrics, read once for both wires.

``ModelVersion.metrics`` is the JSON the trainer (or federated publishing) stored: accuracy,
per-class scores, the confusion matrix, each exported file's LiteRT measures, the history, timings.
:class:`VersionMetrics` reads the part both wires show, in every shape ever stored; the rest stays
in ``extra`` untouched.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mobiletrain.core.evaluation import ClassScore
from mobiletrain.core.jsonvalues import (
    class_scores,
    mapping,
    matrix,
    number,
    strings,
    unmodelled,
)
from mobiletrain.core.types import ModelFormat, ModelVersion


@dataclass(frozen=True)
class MetricsSummary:
    """What both wires show of a version's metrics: its accuracy and each file's."""

    accuracy: float | None
    tflite_accuracy: dict[str, float]  # format name → accuracy, known formats only


@dataclass
class VersionMetrics:
    """A version's metrics (``ModelVersion.metrics``, the EVALUATION event's data), read once.

    The keys modelled are the ones both wires show; everything else (history, timings, the
    split, the evaluation-set scores, federated details) stays in ``extra`` as stored.
    ``tflite`` maps a format to its LiteRT measures on the validation split.
    """

    accuracy: float | None = None
    labels: list[str] = field(default_factory=list)
    per_class: list[ClassScore] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)
    tflite: dict[str, float] = field(default_factory=dict)  # format → accuracy
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: Any) -> VersionMetrics:
        """Read a metrics dict; never fails (odd values are left out).

        Per-format accuracy is read from ``tflite`` (``{format: {accuracy, ...}}``,
        ``{format: accuracy}`` or ``[{format, accuracy}, ...]``), or from ``tflite_accuracy``
        (the summary a client rebuilds); unknown formats are left out.
        Labels default to the per-class rows' labels.
        """
        data = mapping(data)
        per_format_raw = data.get("tflite", data.get("tflite_accuracy"))
        if isinstance(per_format_raw, list):  # [{"format", "accuracy"}, ...]
            per_format_raw = {
                str(e.get("format")): e for e in per_format_raw if isinstance(e, Mapping)
            }
        tflite: dict[str, float] = {}
        formats = {f.value for f in ModelFormat}
        for name, entry in mapping(per_format_raw).items():
            value = number(entry.get("accuracy") if isinstance(entry, Mapping) else entry)
            if value is not None and name in formats:
                tflite[str(name)] = value
        per_class = class_scores(data.get("per_class"))
        labels = strings(data.get("labels")) if isinstance(data.get("labels"), list) else []
        return cls(
            accuracy=number(data.get("accuracy")),
            labels=labels or [c.label for c in per_class],
            per_class=per_class,
            confusion_matrix=matrix(data.get("confusion_matrix")),
            tflite=tflite,
            extra=unmodelled(
                data,
                (
                    "accuracy",
                    "labels",
                    "per_class",
                    "confusion_matrix",
                    "tflite",
                    "tflite_accuracy",
                ),
            ),
        )

    def summary(self) -> MetricsSummary:
        """Accuracy and per-format accuracy, in :class:`ModelFormat` order."""
        order = [f.value for f in ModelFormat]
        return MetricsSummary(
            accuracy=self.accuracy,
            tflite_accuracy={k: self.tflite[k] for k in sorted(self.tflite, key=order.index)},
        )


def metrics_of(model: ModelVersion) -> VersionMetrics:
    """The typed metrics of a stored version."""
    return VersionMetrics.from_dict(model.metrics)
