"""Classification metrics in plain numpy, shared by the Keras and LiteRT evaluations."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Count (true, predicted) pairs: rows are true classes, columns predicted ones."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64)), 1)
    return matrix


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    # 0/0 is reported as 0 (like scikit-learn's zero_division=0) to keep JSON finite.
    out = np.zeros_like(num, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def classification_report(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    num_classes: int,
    label_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Accuracy, per-class precision/recall/F1/support, macro averages and confusion matrix.

    Returns JSON-ready values: ``{"accuracy", "macro_precision", "macro_recall",
    "macro_f1", "per_class": [{"label", "precision", "recall", "f1", "support"}, ...],
    "confusion_matrix": [[...], ...]}`` with confusion rows = true class, columns = predicted.
    Macro averages are over classes with support > 0.
    """
    names = list(label_names) if label_names is not None else [str(i) for i in range(num_classes)]
    if len(names) != num_classes:
        raise ValueError(f"{len(names)} label names for {num_classes} classes")
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has {p.shape}")
    matrix = confusion_matrix(t, p, num_classes)
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    present = support > 0
    accuracy = float(tp.sum() / t.size) if t.size else 0.0

    def macro(values: np.ndarray) -> float:
        return float(values[present].mean()) if present.any() else 0.0

    return {
        "accuracy": accuracy,
        "macro_precision": macro(precision),
        "macro_recall": macro(recall),
        "macro_f1": macro(f1),
        "per_class": [
            {
                "label": names[i],
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i in range(num_classes)
        ],
        "confusion_matrix": matrix.tolist(),
    }


def cross_entropy(probabilities: np.ndarray, y_true: Sequence[int] | np.ndarray) -> float:
    """Mean sparse categorical cross-entropy of predicted probabilities (clipped at 1e-7)."""
    probs = np.asarray(probabilities, dtype=np.float64)
    t = np.asarray(y_true, dtype=np.int64)
    if t.size == 0:
        return 0.0
    picked = np.clip(probs[np.arange(t.size), t], 1e-7, 1.0)
    return float(-np.log(picked).mean())
