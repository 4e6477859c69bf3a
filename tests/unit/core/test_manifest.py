"""The typed manifest (core.manifest): the JSON layout it writes, the old layouts it reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from mobiletrain.core.evaluation import ClassScore, EvalSetInfo, Evaluation, FormatScore
from mobiletrain.core.manifest import (
    SCHEMA_VERSION,
    DataSnapshot,
    FileInfo,
    FormatInfo,
    ModelManifest,
    ModelOutput,
    Quantization,
    TensorInfo,
    TensorSpec,
    ValidationMetrics,
)
from mobiletrain.core.metrics import VersionMetrics
from mobiletrain.core.release import ReleasePolicy, decide
from mobiletrain.core.types import InputSpec, ModelFormat


def _evaluation() -> Evaluation:
    per_class = [ClassScore("a", 1.0, 0.5, 0.667, 2), ClassScore("b", 0.667, 1.0, 0.8, 2)]
    return Evaluation(
        eval_set=EvalSetInfo(4, {"a": 2, "b": 2}, "e" * 64),
        formats={"float32": FormatScore("float32", 0.75, 0.73, per_class, [[1, 1], [0, 2]])},
    )


def _card() -> ModelManifest:
    evaluation = _evaluation()
    return ModelManifest(
        version=7,
        project_id="p1",
        project_name="flowers",
        job_id="j1",
        created_at=datetime(2026, 12, 3, 17, 0, tzinfo=UTC),
        labels=["a", "b"],
        input=InputSpec().to_dict(),
        output=ModelOutput(num_classes=2),
        formats={
            "keras": FormatInfo.for_format(
                ModelFormat.KERAS,
                TensorInfo("float32", [None, 96, 96, 3]),
                TensorInfo("float32", [None, 2]),
            ),
            "int8": FormatInfo.for_format(
                ModelFormat.INT8,
                TensorInfo("uint8", [1, 96, 96, 3], Quantization(0.0039, 0), name="input"),
                TensorInfo("uint8", [1, 2], Quantization(0.0039, 0), name="Identity"),
            ),
        },
        files={"keras": FileInfo.for_format(ModelFormat.KERAS, "k" * 64, 10)},
        validation=ValidationMetrics({"keras": 0.9, "int8": 0.85}, 16, 4),
        evaluation=evaluation,
        release=decide(ReleasePolicy(), evaluation, None, None),
        dataset=DataSnapshot(20, {"a": 10, "b": 10}, "s" * 64, {"seed": 1}),
        warnings=["w"],
        hyperparameters={"epochs": 3},
        library_versions={"tensorflow": "2.x"},
        extra={"ondevice": {"classifier": {}}},
    )


def test_card_writes_the_documented_layout() -> None:
    out = _card().to_dict()
    assert list(out) == [
        "schema_version", "version", "project", "job_id", "created_at", "task", "labels",
        "input", "output", "formats", "files", "metrics", "evaluation", "release", "dataset",
        "warnings", "hyperparameters", "library_versions", "ondevice",
    ]  # fmt: skip
    assert out["schema_version"] == SCHEMA_VERSION == 2
    assert out["project"] == {"id": "p1", "name": "flowers"}
    assert out["formats"]["keras"] == {
        "file": "model-keras.keras",
        "input": {"dtype": "float32", "shape": [None, 96, 96, 3], "quantization": None},
        "output": {"dtype": "float32", "shape": [None, 2], "quantization": None},
    }
    assert out["formats"]["int8"]["input"] == {
        "name": "input",
        "dtype": "uint8",
        "shape": [1, 96, 96, 3],
        "quantization": {"scale": 0.0039, "zero_point": 0},
    }
    assert out["files"]["keras"] == {"file": "model-keras.keras", "sha256": "k" * 64, "size": 10}
    assert out["metrics"]["validation_accuracy"] == {"keras": 0.9, "int8": 0.85}
    assert [c["label"] for c in out["metrics"]["per_class"]] == ["a", "b"]
    assert out["metrics"]["confusion_matrix"] == [[1, 1], [0, 2]]
    assert out["output"] == {"kind": "probabilities", "num_classes": 2}


def test_a_stored_card_reads_back_unchanged() -> None:
    stored = json.loads(json.dumps(_card().to_dict()))  # as the store keeps it
    assert ModelManifest.from_dict(stored).to_dict() == stored
    embedded = _card().embedded("int8", ["int8"])
    assert ModelManifest.from_dict(embedded).to_dict() == embedded


def test_schema_1_manifests_still_load() -> None:
    trainer = {  # the trainer's layout before the release gate
        "schema_version": 1,
        "task": "image-classification",
        "labels": ["a", "b"],
        "input": InputSpec().to_dict(),
        "output": {"kind": "probabilities", "num_classes": 2},
        "formats": {"float32": {"file": "model-float32.tflite"}},
        "hyperparameters": {"epochs": 3},
        "metrics": {"validation_accuracy": {"keras": 0.9}, "num_train": 8, "num_validation": 2},
        "library_versions": {"numpy": "2"},
        "ondevice": {"x": 1},
    }
    card = ModelManifest.from_dict(trainer)
    assert card.schema_version == 1 and card.labels == ["a", "b"]
    assert card.validation.num_train == 8 and card.formats["float32"].input is None
    assert card.extra == {"ondevice": {"x": 1}} and card.created_at is None
    federated = {  # a federated version's layout
        "schema_version": 1,
        "labels": ["a", "b"],
        "files": {"float32": {"file": "model-float32.tflite", "sha256": "f", "size": 3}},
        "federated": {"round": 2},
        "metrics": {"held_out_accuracy": None},
        "job_id": "j",
        "project": {"id": "p", "name": "n"},
    }
    card = ModelManifest.from_dict(federated)
    assert card.files["float32"].size == 3 and card.project_name == "n"
    assert card.extra == {"federated": {"round": 2}}
    assert card.to_dict()["metrics"]["held_out_accuracy"] is None


def test_odd_stored_values_never_fail() -> None:
    for odd in (
        {},
        {"labels": "ab", "created_at": "yesterday", "evaluation": {"x": 1}, "release": {}},
        {"formats": {"int8": {"input": {"dtype": "uint8", "shape": "?"}}}, "files": [1]},
        {"metrics": {"validation_accuracy": {"keras": float("nan")}}, "version": "7"},
    ):
        card = ModelManifest.from_dict(odd)
        json.dumps(card.to_dict())  # still writable
    assert ModelManifest.from_dict(None).labels_or(["x"]) == ["x"]


def test_generic_inputs_outputs_and_task_block_for_other_task_kinds() -> None:
    audio_in = TensorSpec(
        name="pcm",
        dtype="float32",
        shape=[1, 16000],
        layout="NT",
        role="waveform",
        channels=["mono"],
        rate_hz=16000.0,
        length=16000,
        value_range=(-1.0, 1.0),
    )
    boxes = TensorSpec(name="boxes", dtype="float32", shape=[1, 10, 4], layout="NK4", role="boxes")
    card = ModelManifest(
        labels=["yes", "no"],
        input={"sample_rate_hz": 16000, "clip_ms": 1000},
        task="audio-classification",
        inputs=[audio_in],
        outputs=[boxes],
        task_spec={"front_end": "log-mel", "n_mels": 40},
    )
    out = json.loads(json.dumps(card.to_dict()))
    assert out["inputs"][0]["rate_hz"] == 16000.0 and out["inputs"][0]["value_range"] == [-1, 1]
    assert audio_in.seconds == 1.0
    back = ModelManifest.from_dict(out)
    assert back.inputs == [audio_in] and back.outputs == [boxes]
    assert back.task_spec == {"front_end": "log-mel", "n_mels": 40}
    assert back.to_dict() == out
    # An image classifier's card has none of the three keys (its layout is unchanged).
    assert not {"inputs", "outputs", "task_spec"} & set(_card().to_dict())


def test_version_metrics_read_every_stored_shape_once() -> None:
    trained: dict[str, Any] = {
        "accuracy": 0.9,
        "tflite": {"int8": {"accuracy": 0.8, "size_bytes": 5}, "float32": {"accuracy": 0.9}},
        "per_class": [{"label": "a", "precision": 1, "recall": 1, "f1": 1, "support": 2}],
        "history": {"loss": [1.0]},
    }
    metrics = VersionMetrics.from_dict(trained)
    summary = metrics.summary()
    assert summary.accuracy == 0.9
    assert list(summary.tflite_accuracy.items()) == [("float32", 0.9), ("int8", 0.8)]
    assert metrics.labels == ["a"] and metrics.extra == {"history": {"loss": [1.0]}}
    flat = VersionMetrics.from_dict({"tflite": {"float16": 0.7, "nonsense": 0.1}})
    assert flat.summary().tflite_accuracy == {"float16": 0.7} and flat.accuracy is None
    client = VersionMetrics.from_dict({"accuracy": 0.5, "tflite_accuracy": {"int8": 0.4}})
    assert client.tflite == {"int8": 0.4}
    odd = VersionMetrics.from_dict({"accuracy": "high", "tflite": [1], "per_class": "x"})
    assert odd.accuracy is None and odd.tflite == {} and odd.per_class == []
