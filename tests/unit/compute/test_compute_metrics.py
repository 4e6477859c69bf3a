"""Classification metrics against a hand-computed example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mobiletrain.compute.metrics import classification_report, cross_entropy


def test_hand_computed_report() -> None:
    y_true = [0, 0, 0, 1, 1, 2, 2, 2]
    y_pred = [0, 0, 1, 1, 2, 2, 2, 0]
    report = classification_report(y_true, y_pred, 4, ["cat", "dog", "bird", "fish"])
    assert report["confusion_matrix"] == [
        [2, 1, 0, 0],
        [0, 1, 1, 0],
        [1, 0, 2, 0],
        [0, 0, 0, 0],
    ]
    assert report["accuracy"] == pytest.approx(5 / 8)
    cat, dog, bird, fish = report["per_class"]
    assert cat == {
        "label": "cat",
        "precision": pytest.approx(2 / 3),
        "recall": pytest.approx(2 / 3),
        "f1": pytest.approx(2 / 3),
        "support": 3,
    }
    assert dog["precision"] == pytest.approx(1 / 2) and dog["recall"] == pytest.approx(1 / 2)
    assert bird["precision"] == pytest.approx(2 / 3) and bird["recall"] == pytest.approx(2 / 3)
    # A class never seen nor predicted reports zeros and is left out of the macro average.
    assert fish == {"label": "fish", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert report["macro_f1"] == pytest.approx((2 / 3 + 1 / 2 + 2 / 3) / 3)


def test_default_names_and_errors() -> None:
    report = classification_report(np.array([1]), np.array([1]), 2)
    assert [c["label"] for c in report["per_class"]] == ["0", "1"]
    assert report["accuracy"] == 1.0
    with pytest.raises(ValueError):
        classification_report([0], [0, 1], 2)
    with pytest.raises(ValueError):
        classification_report([0], [0], 2, ["only-one"])
    assert classification_report([], [], 2)["accuracy"] == 0.0


def test_cross_entropy() -> None:
    probs = np.array([[0.5, 0.5], [0.9, 0.1]])
    assert cross_entropy(probs, [0, 0]) == pytest.approx(-(math.log(0.5) + math.log(0.9)) / 2)
    assert cross_entropy(np.array([[1.0, 0.0]]), [1]) == pytest.approx(-math.log(1e-7))
