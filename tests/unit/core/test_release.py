"""The release gate's rules (core.release): evaluation-set selection, the decision, the card."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.evaluation import (
    ClassScore,
    EvalCandidate,
    EvalSetInfo,
    Evaluation,
    FormatScore,
    assign_eval_set,
)
from mobiletrain.core.manifest import DataSnapshot, FileInfo, ModelManifest
from mobiletrain.core.release import ReleaseMode, ReleasePolicy, chance_warning, decide


def _samples(label: str, n: int, start: int = 0) -> list[EvalCandidate]:
    return [
        EvalCandidate(
            f"{label}-{i}", label, hashlib.sha256(f"{label}{i}".encode()).hexdigest(), None
        )
        for i in range(start, start + n)
    ]


def test_eval_set_is_stratified_deterministic_and_only_grows() -> None:
    first = _samples("a", 50) + _samples("b", 10) + _samples("c", 4)
    chosen = assign_eval_set("p1", first)
    assert chosen == assign_eval_set("p1", first)  # seeded: same answer every time
    assert chosen != assign_eval_set("p2", first)  # another project, another set
    assert sum(chosen[s.id] for s in first if s.label == "a") == 10
    assert sum(chosen[s.id] for s in first if s.label == "b") == 2
    assert all(s.id not in chosen for s in first if s.label == "c")  # too few: all train

    stored = [EvalCandidate(s.id, s.label, s.sha256, chosen.get(s.id)) for s in first]
    more = _samples("a", 2000, start=50)
    later = assign_eval_set("p1", stored + more)
    assert set(later) == {s.id for s in more}  # assigned samples never move
    share = sum(later.values()) / len(more)
    assert 0.17 < share < 0.23  # new samples join at the same ratio (by hash)


def _eval(acc: float, int8: float | None = None, recall_b: float | None = None) -> Evaluation:
    def score(fmt: str, a: float) -> FormatScore:
        rb = a if recall_b is None else recall_b
        return FormatScore(
            fmt, a, a, [ClassScore("a", a, a, a, 10), ClassScore("b", a, rb, a, 10)], []
        )

    formats = {"float32": score("float32", acc)}
    if int8 is not None:
        formats["int8"] = score("int8", int8)
    return Evaluation(EvalSetInfo(20, {"a": 10, "b": 10}, "x"), formats)


def test_decide_margin_floors_manual_and_pin() -> None:
    policy = ReleasePolicy()
    assert decide(policy, _eval(0.9), None, None).promoted  # first version
    assert decide(policy, _eval(0.89), _eval(0.9), 1).promoted  # within the margin
    worse = decide(policy, _eval(0.80), _eval(0.9), 1)
    assert not worse.promoted and "worse than current version 1's 0.9000" in worse.reason
    assert worse.current_accuracy == 0.9 and worse.compared_format == "float32"

    floors = ReleasePolicy(min_accuracy=0.95, min_per_class_recall=0.5, max_int8_drop=0.05)
    failed = decide(floors, _eval(0.9, int8=0.7, recall_b=0.2), None, None)
    assert not failed.promoted
    assert "below min_accuracy" in failed.reason and "b 0.2000" in failed.reason
    assert "int8 loses 0.2000" in failed.reason and len(failed.checks) == 3

    manual = decide(ReleasePolicy(mode=ReleaseMode.MANUAL), _eval(0.99), _eval(0.5), 1)
    assert not manual.promoted and "manual" in manual.reason
    pinned = decide(policy, _eval(0.99), _eval(0.5), 1, pinned=True)
    assert not pinned.promoted and "pinned" in pinned.reason


def test_empty_eval_set_ships_a_first_version_but_not_a_replacement() -> None:
    empty = Evaluation(EvalSetInfo(0, {}, "x"), {"float32": FormatScore("float32", 0, 0)})
    assert decide(ReleasePolicy(), empty, None, None).promoted
    later = decide(ReleasePolicy(), empty, _eval(0.9), 1)
    assert not later.promoted and "evaluation set is empty" in later.reason


def test_policy_validation_names_the_bad_value() -> None:
    with pytest.raises(MobiletrainError) as err:
        ReleasePolicy.from_dict({"margin": 3})
    assert err.value.code is ErrorCode.INVALID_RELEASE_POLICY and "margin" in err.value.message
    with pytest.raises(MobiletrainError) as err:
        ReleasePolicy.from_dict({"mode": "yolo"})
    assert err.value.code is ErrorCode.INVALID_RELEASE_POLICY
    with pytest.raises(MobiletrainError):
        ReleasePolicy.from_dict({"mrgin": 0.1})
    policy = ReleasePolicy(min_accuracy=0.5)
    assert ReleasePolicy.from_dict(policy.to_dict()) == policy


def test_chance_warning_against_the_majority_label() -> None:
    assert chance_warning(0.52, {"a": 50, "b": 50}) is not None
    assert chance_warning(0.9, {"a": 50, "b": 50}) is None
    assert chance_warning(0.82, {"a": 80, "b": 20}) is not None  # always "a" scores 0.8


def test_embedded_card_lists_no_sha256_that_depends_on_it() -> None:
    card = ModelManifest(
        version=3,
        project_id="p",
        project_name="n",
        job_id="j",
        created_at=datetime.now(UTC),
        labels=["a", "b"],
        input={},
        files={
            "keras": FileInfo("model-keras.keras", "k", 1),
            "float32": FileInfo("model-float32.tflite", "f", 1),
            "int8": FileInfo("model-int8.tflite", "i", 1),
        },
        evaluation=_eval(0.9),
        release=None,
        dataset=DataSnapshot(10, {"a": 5, "b": 5}, "s", {}),
    )
    served = card.to_dict()
    assert set(served["files"]) == {"keras", "float32", "int8"} and "embedded_note" not in served
    embedded = card.embedded("int8", ["float32", "int8"])
    assert set(embedded["files"]) == {"keras"} and embedded["embedded_in"] == "int8"
    assert "SHA-256" in embedded["embedded_note"]
    assert embedded["version"] == 3 and [c["label"] for c in embedded["metrics"]["per_class"]] == [
        "a",
        "b",
    ]
