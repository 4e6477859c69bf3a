"""Sensor task accuracy on BasicMotions' own test split: mobiletrain's trainer vs plain Keras.

mobiletrain: ``train_and_export`` on the 40 training recordings (it holds 20 % of them out
for validation), then every exported .tflite file run in LiteRT on the 40 test recordings
(``litert.predict_samples``: each recording's windows averaged, as an app would do).
Plain Keras: a script a developer would write — the same 1-D CNN, per-channel normalisation
from the training data, ``model.fit`` on all 40 training recordings' windows for the same
epochs, ``model.predict`` on the test windows, averaged per recording.

Run: python bench/sensor_accuracy.py [--epochs 40] [--window 50] [--stride 25] [--seed 0]
Prints one JSON line, with both fit times and their ratio (same-run baseline).
The end-to-end test does the mobiletrain half through a real server.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent / "tests" / "e2e"))  # sensor_sets: the BasicMotions reader
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sensor_sets import CHANNELS, RATE_HZ, basic_motions  # noqa: E402

from mobiletrain.compute.keras.tasks.sensor import build_sensor_cnn, channel_statistics  # noqa: E402
from mobiletrain.compute.keras.train import train_and_export  # noqa: E402
from mobiletrain.compute.litert import predict_samples  # noqa: E402
from mobiletrain.compute.protocol import TrainingRequest  # noqa: E402
from mobiletrain.core.types import (  # noqa: E402
    EventKind,
    Hyperparameters,
    InputSpec,
    SensorFraming,
    SensorSpec,
)
from mobiletrain.tasks.sensor import decode  # noqa: E402


class _Quiet:
    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        pass

    def should_stop(self) -> bool:
        return False


def hyperparameters(epochs: int, seed: int) -> Hyperparameters:
    """The job's settings (also what the end-to-end test sends)."""
    return Hyperparameters(epochs=epochs, batch_size=16, learning_rate=3e-3, seed=seed)


def spec(window: int, stride: int) -> InputSpec:
    """BasicMotions' channels at its 10 Hz."""
    framing = SensorFraming.WINDOWS
    return InputSpec(task_spec=SensorSpec(CHANNELS, RATE_HZ, window, stride, framing))


def plain_keras(epochs: int, window: int, stride: int, seed: int) -> tuple[float, float]:
    """Test accuracy and fit seconds of the plain script (see the module docstring)."""
    keras.utils.set_random_seed(seed)
    sensor = spec(window, stride).task_spec
    assert isinstance(sensor, SensorSpec)
    train, test = basic_motions("TRAIN"), basic_motions("TEST")
    labels = sorted({r.label for r in train})
    parts = [decode(r.csv(), sensor) for r in train]
    x = np.concatenate(parts)
    y = np.concatenate(
        [np.full(len(p), labels.index(r.label)) for p, r in zip(parts, train, strict=True)]
    )
    mean, std = channel_statistics(x)
    model = build_sensor_cnn(
        window, len(CHANNELS), len(labels), mean, std, hyperparameters(epochs, seed)
    )
    model.compile(
        optimizer=keras.optimizers.Adam(3e-3),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    fit_start = time.monotonic()
    model.fit(x, y, batch_size=16, epochs=epochs, shuffle=True, verbose=0)
    fit_seconds = time.monotonic() - fit_start
    hits = 0
    for r in test:
        probs = model.predict(decode(r.csv(), sensor), verbose=0).mean(axis=0)
        hits += int(labels[int(probs.argmax())] == r.label)
    return hits / len(test), fit_seconds


def mobiletrain_job(epochs: int, window: int, stride: int, seed: int) -> dict[str, Any]:
    """The trainer on the training recordings; every .tflite file on the test recordings."""
    train, test = basic_motions("TRAIN"), basic_motions("TEST")
    labels = sorted({r.label for r in train})
    project = spec(window, stride)
    with tempfile.TemporaryDirectory() as tmp:
        request = TrainingRequest(
            images=[r.csv() for r in train],
            labels=[labels.index(r.label) for r in train],
            sample_ids=[f"train-{i}" for i in range(len(train))],
            label_names=labels,
            input_spec=project,
            hyperparameters=hyperparameters(epochs, seed),
            work_dir=Path(tmp),
        )
        output = train_and_export(request, _Quiet())
    y = np.array([labels.index(r.label) for r in test])
    test_accuracy = {}
    for fmt, blob in output.artifacts.items():
        if fmt.is_tflite:
            probs = predict_samples(blob, project, [r.csv() for r in test])
            test_accuracy[fmt.value] = float(np.mean(probs.argmax(axis=1) == y))
    return {
        "validation_accuracy_keras": output.metrics["accuracy"],
        "train_seconds": output.metrics["train_seconds"],
        "num_train_windows": output.metrics["num_train"],
        "test_accuracy": test_accuracy,
        "sizes": {f: m["size_bytes"] for f, m in output.metrics["tflite"].items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--stride", type=int, default=25)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    started = time.time()
    job = mobiletrain_job(args.epochs, args.window, args.stride, args.seed)
    plain_accuracy, plain_seconds = plain_keras(args.epochs, args.window, args.stride, args.seed)
    result = {
        "dataset": "BasicMotions (sktime 1.2.0 wheel), 40 train / 40 test recordings",
        "window": args.window,
        "stride": args.stride,
        "epochs": args.epochs,
        "mobiletrain": job,
        "plain_keras_test_accuracy": plain_accuracy,
        "plain_keras_fit_seconds": round(plain_seconds, 2),
        # Both fit the same network for the same epochs; mobiletrain on 80 % of the windows
        # (it holds 20 % out) plus a validation pass per epoch, progress events, checkpoints.
        "fit_seconds_ratio": round(job["train_seconds"] / plain_seconds, 2),
    }
    result["seconds"] = round(time.time() - started, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
