"""Sensor classification trains through the task hooks: synthetic motion from eight wearers,
every classifier format exported and verified in LiteRT, held-out wearers evaluated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.slow

keras = pytest.importorskip("keras")

from mobiletrain.compute.keras.train import train_and_export  # noqa: E402
from mobiletrain.compute.litert import (  # noqa: E402
    LiteRTClassifier,
    custom_op_names,
    predict_samples,
    read_embedded_manifest,
)
from mobiletrain.compute.protocol import TrainingOutput, TrainingRequest  # noqa: E402
from mobiletrain.core.types import (  # noqa: E402
    TFLITE_FORMATS,
    EventKind,
    Hyperparameters,
    InputSpec,
    ModelFormat,
)
from mobiletrain.tasks import sensor_synth  # noqa: E402
from mobiletrain.tasks.sensor import decode  # noqa: E402

SPEC = InputSpec(task_spec=sensor_synth.DEMO_SPEC)
LABELS = list(sensor_synth.LABELS)


class Reporter:
    def __init__(self) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def should_stop(self) -> bool:
        return False


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainingOutput, Reporter]:
    train = sensor_synth.samples(list(range(8)), per_label=4, seed=1)
    reporter = Reporter()
    request = TrainingRequest(
        images=[s.data for s in train],
        labels=[LABELS.index(s.label) for s in train],
        sample_ids=[s.name for s in train],
        label_names=LABELS,
        input_spec=SPEC,
        hyperparameters=Hyperparameters(epochs=12, batch_size=32, learning_rate=3e-3),
        work_dir=tmp_path_factory.mktemp("job"),
    )
    return train_and_export(request, reporter), reporter


def test_windows_train_and_every_format_runs_in_litert(
    trained: tuple[TrainingOutput, Reporter],
) -> None:
    output, _ = trained
    metrics = output.metrics
    # 128 recordings of 4-6 s give 3-5 windows each; the split is by recording.
    assert set(output.split["train_ids"]).isdisjoint(output.split["validation_ids"])
    assert metrics["num_train"] + metrics["num_validation"] > 128 * 3
    assert metrics["accuracy"] >= 0.9, metrics["accuracy"]
    assert set(output.artifacts) == {ModelFormat.KERAS, *TFLITE_FORMATS}
    for fmt in TFLITE_FORMATS:
        assert custom_op_names(output.artifacts[fmt]) == []
        measured = metrics["tflite"][fmt.value]
        assert measured["accuracy"] >= metrics["accuracy"] - 0.05, (fmt, measured)


def test_manifest_describes_the_input_exactly(trained: tuple[TrainingOutput, Reporter]) -> None:
    output, _ = trained
    manifest = read_embedded_manifest(output.artifacts[ModelFormat.FLOAT32])
    assert manifest is not None and manifest["task"] == "sensor-classification"
    section = manifest["input"]
    assert section["shape"] == [1, 100, 3] and section["channels"] == ["ax", "ay", "az"]
    assert section["rate_hz"] == 50.0 and section["dtype"] == "float32"
    (tensor,) = manifest["inputs"]
    assert tensor["layout"] == "NTC" and tensor["length"] == 100 and tensor["rate_hz"] == 50.0
    norm = manifest["task_spec"]["normalization"]
    assert len(norm["mean"]) == 3 and all(s > 0 for s in norm["std"])
    # Gravity (9.81) shows in the means, spread in the stds: raw units go in.
    assert np.linalg.norm(norm["mean"]) > 5
    int8 = manifest["formats"]["int8"]["input"]
    assert int8["dtype"] in ("uint8", "int8") and int8["quantization"] is not None


def test_held_out_wearers(trained: tuple[TrainingOutput, Reporter]) -> None:
    output, _ = trained
    held_out = sensor_synth.samples([9, 10, 11], per_label=3, seed=1)
    y = np.array([LABELS.index(s.label) for s in held_out])
    for fmt in (ModelFormat.FLOAT32, ModelFormat.INT8):
        probs = predict_samples(output.artifacts[fmt], SPEC, [s.data for s in held_out])
        accuracy = float(np.mean(probs.argmax(axis=1) == y))
        assert accuracy >= 0.9, (fmt, accuracy)
    # Raw windows in, the same answer as the Keras file's own preprocessing-free input.
    windows = decode(held_out[0].data, sensor_synth.DEMO_SPEC)
    runner = LiteRTClassifier(output.artifacts[ModelFormat.FLOAT32])
    assert runner.predict(windows).shape == (len(windows), len(LABELS))


def test_progress_events(trained: tuple[TrainingOutput, Reporter], tmp_path: Path) -> None:
    _, reporter = trained
    kinds = [k for k, _ in reporter.events]
    assert kinds.count(EventKind.EPOCH) == 12 and kinds[-1] is EventKind.EVALUATION
