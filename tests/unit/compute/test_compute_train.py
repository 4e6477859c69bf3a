"""End-to-end training on scikit-learn digits: accuracy, exports, events, cancellation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

keras = pytest.importorskip("keras")

from ai_edge_litert.interpreter import Interpreter, OpResolverType  # noqa: E402

from mobiletrain.compute.keras.train import train_and_export  # noqa: E402
from mobiletrain.compute.litert import (  # noqa: E402
    LiteRTModel,
    custom_op_names,
    evaluate,
    read_embedded_manifest,
)
from mobiletrain.compute.preprocess import decode_batch  # noqa: E402
from mobiletrain.compute.protocol import TrainingOutput, TrainingRequest  # noqa: E402
from mobiletrain.core.errors import ErrorCode, MobiletrainError  # noqa: E402
from mobiletrain.core.manifest import SCHEMA_VERSION  # noqa: E402
from mobiletrain.core.types import (  # noqa: E402
    CLASSIFIER_FORMATS,
    TFLITE_FORMATS,
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    ModelFormat,
    Normalization,
)

SPEC = InputSpec(
    width=32, height=32, color_mode=ColorMode.GRAYSCALE, normalization=Normalization.ZERO_ONE
)
EPOCHS = 15
Digits = tuple[list[bytes], list[int]]


class RecordingReporter:
    """Records events; asks to stop once ``stop_after_epochs`` EPOCH events were seen."""

    def __init__(self, stop_after_epochs: int | None = None) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []
        self.stop_after_epochs = stop_after_epochs

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def should_stop(self) -> bool:
        if self.stop_after_epochs is None:
            return False
        return len(self.of(EventKind.EPOCH)) >= self.stop_after_epochs

    def of(self, kind: EventKind) -> list[dict[str, Any]]:
        return [data for k, data in self.events if k is kind]


def make_request(
    digits: Digits, work_dir: Path, limit: int | None = None, **hp: Any
) -> TrainingRequest:
    images, labels = digits
    images, labels = images[:limit], labels[:limit]
    return TrainingRequest(
        images=images,
        labels=labels,
        sample_ids=[f"s{i}" for i in range(len(images))],
        label_names=[str(d) for d in range(10)],
        input_spec=SPEC,
        hyperparameters=Hyperparameters(**hp),
        work_dir=work_dir,
    )


@pytest.fixture(scope="module")
def trained(
    digits_png: Digits, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainingRequest, TrainingOutput, RecordingReporter]:
    request = make_request(
        digits_png,
        tmp_path_factory.mktemp("job"),
        epochs=EPOCHS,
        batch_size=32,
        learning_rate=1e-3,
        validation_split=0.2,
        seed=42,
    )
    reporter = RecordingReporter()
    return request, train_and_export(request, reporter), reporter


def test_digits_accuracy_in_keras_and_litert(trained: Any) -> None:
    _, out, _ = trained
    assert not out.cancelled
    assert set(out.artifacts) == set(CLASSIFIER_FORMATS)
    tflite = out.metrics["tflite"]
    print(
        "\ndigits:",
        f"keras={out.metrics['accuracy']:.4f}",
        *(f"{f}={m['accuracy']:.4f} ({m['size_bytes']} B)" for f, m in tflite.items()),
        f"keras-file={len(out.artifacts[ModelFormat.KERAS])} B",
        f"train={out.metrics['train_seconds']}s export+eval={out.metrics['export_seconds']}s",
    )
    assert out.metrics["accuracy"] >= 0.97
    assert tflite["float32"]["accuracy"] >= 0.97
    assert abs(tflite["int8"]["accuracy"] - tflite["float32"]["accuracy"]) <= 0.01
    for fmt in ("float16", "dynamic-int8"):
        assert tflite[fmt]["accuracy"] >= 0.97
    sizes = {f: m["size_bytes"] for f, m in tflite.items()}
    assert sizes["float16"] < sizes["float32"] and sizes["int8"] < sizes["float16"]
    assert out.metrics["num_train"] + out.metrics["num_validation"] == 1797
    assert len(out.metrics["confusion_matrix"]) == 10
    # Every wrong validation prediction is listed (at most 100), surest mistake first.
    matrix = np.asarray(out.metrics["confusion_matrix"])
    missed = out.metrics["misclassified"]
    assert len(missed) == min(100, int(matrix.sum() - np.trace(matrix)))
    val_ids = set(out.split["validation_ids"])
    for m in missed:
        assert m["sample_id"] in val_ids and m["label"] != m["predicted"]
        assert 0.0 < m["score"] <= 1.0
    assert [m["score"] for m in missed] == sorted((m["score"] for m in missed), reverse=True)


def test_exports_use_builtin_ops_and_embed_the_manifest(trained: Any) -> None:
    request, out, _ = trained
    _, val_ids = out.split["train_ids"], out.split["validation_ids"]
    index = {sid: i for i, sid in enumerate(request.sample_ids)}
    val = [index[s] for s in val_ids]
    x_val = decode_batch([request.images[i] for i in val], SPEC)
    y_val = np.asarray([request.labels[i] for i in val])
    for fmt in TFLITE_FORMATS:
        data = out.artifacts[fmt]
        assert custom_op_names(data) == [], fmt
        Interpreter(
            model_content=data, experimental_op_resolver_type=OpResolverType.BUILTIN
        ).allocate_tensors()
        assert read_embedded_manifest(data) == out.manifest
        # The shipped file (manifest embedded) scores what the metrics say.
        report = evaluate(data, SPEC, x_val, y_val, 10, request.label_names)
        assert report["accuracy"] == pytest.approx(out.metrics["tflite"][fmt.value]["accuracy"])
        assert report["size_bytes"] == len(data)
        assert sum(map(sum, report["confusion_matrix"])) == len(val)
        probabilities = LiteRTModel(data, SPEC).predict_uint8(x_val[:5])
        np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=0.02)
    model = keras.saving.load_model(
        _write(out.artifacts[ModelFormat.KERAS], request.work_dir / "check.keras"),
        safe_mode=True,
        compile=False,
    )
    assert model.output_shape == (None, 10)


def _write(data: bytes, path: Path) -> Path:
    path.write_bytes(data)
    return path


def test_manifest_content(trained: Any) -> None:
    _, out, _ = trained
    manifest = out.manifest
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["task"] == "image-classification"
    assert manifest["labels"] == [str(d) for d in range(10)]
    assert manifest["input"] == SPEC.to_dict()
    assert manifest["hyperparameters"]["epochs"] == EPOCHS
    assert set(manifest["library_versions"]) >= {"tensorflow", "keras", "numpy", "mobiletrain"}
    int8 = manifest["formats"]["int8"]
    assert int8["file"] == "model-int8.tflite"
    assert int8["input"]["dtype"] == "uint8" and int8["input"]["shape"] == [1, 32, 32, 1]
    assert int8["input"]["quantization"]["scale"] == pytest.approx(1 / 255, rel=1e-3)
    assert int8["output"]["dtype"] == "uint8"
    assert manifest["formats"]["float32"]["input"]["dtype"] == "float32"
    assert manifest["formats"]["float32"]["input"]["quantization"] is None
    assert set(manifest["metrics"]["validation_accuracy"]) == {f.value for f in CLASSIFIER_FORMATS}
    assert manifest["formats"]["keras"]["file"] == "model-keras.keras"


def test_events_and_split(trained: Any) -> None:
    request, out, reporter = trained
    epochs = reporter.of(EventKind.EPOCH)
    assert len(epochs) == out.metrics["epochs_run"] == EPOCHS
    assert [e["epoch"] for e in epochs] == list(range(1, EPOCHS + 1))
    assert all(e["val_accuracy"] is not None and e["seconds"] > 0 for e in epochs)
    assert out.metrics["history"]["val_accuracy"] == [e["val_accuracy"] for e in epochs]
    progress = reporter.of(EventKind.PROGRESS)
    assert progress
    assert set(progress[0]) == {
        "epoch",
        "epochs",
        "batch",
        "batches",
        "samples_per_second",
        "eta_seconds",
        "job_eta_seconds",
        "phase",
    }
    # The job-level ETA adds the expected export and evaluation to the epochs left.
    assert all(p["job_eta_seconds"] >= p["eta_seconds"] for p in progress)
    phases = [e["phase"] for e in reporter.of(EventKind.PHASE)]
    assert phases == ["training", "exporting"]
    # Every epoch reports its last batch; the throttle keeps the rest rare.
    last = [p for p in progress if p["batch"] == p["batches"]]
    assert [p["epoch"] for p in last] == list(range(1, EPOCHS + 1))
    assert len(progress) < EPOCHS * progress[0]["batches"] / 2
    assert len(reporter.of(EventKind.EVALUATION)) == 1
    assert reporter.events[-1][0] is EventKind.EVALUATION

    train_ids, val_ids = out.split["train_ids"], out.split["validation_ids"]
    assert not set(train_ids) & set(val_ids)
    assert sorted(train_ids + val_ids) == sorted(request.sample_ids)
    assert out.split["seed"] == 42 and out.split["validation_fraction"] == 0.2


def test_cancel_after_first_epoch(digits_png: Digits, tmp_path: Path) -> None:
    reporter = RecordingReporter(stop_after_epochs=1)
    out = train_and_export(make_request(digits_png, tmp_path, limit=500, epochs=10), reporter)
    assert out.cancelled and out.artifacts == {}
    assert len(reporter.of(EventKind.EPOCH)) == 1
    assert not reporter.of(EventKind.EVALUATION)


def test_cancel_before_training(digits_png: Digits, tmp_path: Path) -> None:
    reporter = RecordingReporter(stop_after_epochs=0)
    out = train_and_export(make_request(digits_png, tmp_path, limit=100), reporter)
    assert out.cancelled and out.artifacts == {} and not reporter.of(EventKind.EPOCH)
    assert len(out.split["train_ids"]) + len(out.split["validation_ids"]) == 100


def test_augmentation_and_options_export_builtin_only(digits_png: Digits, tmp_path: Path) -> None:
    request = make_request(
        digits_png,
        tmp_path,
        limit=300,
        epochs=2,
        augment_flip=True,
        augment_rotation=0.05,
        augment_zoom=0.1,
        augment_contrast=0.1,
        early_stopping_patience=1,
        class_weights=True,
        formats=[ModelFormat.INT8],
    )
    out = train_and_export(request, RecordingReporter())
    assert set(out.artifacts) == {ModelFormat.KERAS, ModelFormat.INT8}
    assert custom_op_names(out.artifacts[ModelFormat.INT8]) == []
    assert 1 <= out.metrics["epochs_run"] <= 2


def test_request_errors(digits_png: Digits, tmp_path: Path) -> None:
    images, labels = digits_png
    one_label = make_request(([images[0], images[10]], [0, 0]), tmp_path)
    with pytest.raises(MobiletrainError) as info:
        train_and_export(one_label, RecordingReporter())
    assert info.value.code is ErrorCode.NOT_ENOUGH_DATA

    singletons = make_request(([images[0], images[1]], [0, 1]), tmp_path)
    with pytest.raises(MobiletrainError) as info:
        train_and_export(singletons, RecordingReporter())
    assert info.value.code is ErrorCode.NOT_ENOUGH_DATA

    corrupt = make_request(([*images[:4], b"junk"], labels[:5]), tmp_path)
    with pytest.raises(MobiletrainError) as info:
        train_and_export(corrupt, RecordingReporter())
    assert info.value.code is ErrorCode.CORRUPT_IMAGE
    assert info.value.details == {"sample_id": "s4"}

    mismatched = make_request((images[:4], labels[:3]), tmp_path)
    with pytest.raises(MobiletrainError) as info:
        train_and_export(mismatched, RecordingReporter())
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
