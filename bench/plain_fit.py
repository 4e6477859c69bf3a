"""The training baseline: a plain Keras ``model.fit`` script on arrays held in memory.

It builds the same model as a mobiletrain job (``mobiletrain.compute.keras.builders.build_model``
with the job's hyperparameters) and compiles and fits it the way
``mobiletrain.compute.keras.train`` does: Adam on a cosine-decay learning rate ending at 5% of the
initial rate, sparse categorical cross-entropy, the same seeded stratified train/validation split,
balanced class weights, the same batch size and epochs, a reshuffle every epoch and a validation
pass after each epoch. What it leaves out is everything a server adds: the worker process, the
metadata and blob stores, decoding the uploaded files, the tf.data pipeline, progress events.

Run: python bench/plain_fit.py --data X.npz --hyperparameters '{"epochs": 3, ...}'
where X.npz holds ``x`` (uint8 N,H,W,C), ``y`` (int64 label indices) and ``spec`` (the input spec
as JSON). Prints one JSON line: wall-clock stamps (``time.time()``), per-epoch seconds (epoch begin
to epoch end, validation included, like the job's EPOCH events) and the validation accuracy.
"""

from __future__ import annotations

import time

STARTED = time.time()  # before the heavy imports: they are part of a script's cost

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

# Run as a script, sys.path[0] is bench/: keep its module names from shadowing any package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from mobiletrain.compute.keras.builders import build_model  # noqa: E402
from mobiletrain.compute.split import stratified_split  # noqa: E402
from mobiletrain.core.types import Hyperparameters, InputSpec  # noqa: E402

# As in mobiletrain.compute.keras.train: the cosine schedule ends at this fraction of the rate.
LR_FLOOR = 0.05


class EpochClock(keras.callbacks.Callback):
    """Wall-clock stamps of each epoch's begin and end (the end follows validation)."""

    def __init__(self) -> None:
        super().__init__()
        self.begins: list[float] = []
        self.ends: list[float] = []
        self._mono = 0.0
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Remember the start."""
        self.begins.append(time.time())
        self._mono = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Record the end and the duration."""
        self.seconds.append(round(time.monotonic() - self._mono, 3))
        self.ends.append(time.time())


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced weights n / (k * count), as the job computes them."""
    counts = np.bincount(labels, minlength=num_classes)
    present = int((counts > 0).sum())
    return {
        c: float(len(labels) / (present * counts[c])) if counts[c] else 1.0
        for c in range(num_classes)
    }


def main() -> None:
    """Load the arrays, build, compile and fit; print the timings as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help=".npz with x, y and spec")
    parser.add_argument("--hyperparameters", required=True, help="Hyperparameters as JSON")
    parser.add_argument("--num-classes", type=int, required=True)
    args = parser.parse_args()
    imported = time.time()

    hp = Hyperparameters.from_dict(json.loads(args.hyperparameters))
    with np.load(args.data) as data:
        x = data["x"]
        y = data["y"]
        spec = InputSpec.from_dict(json.loads(str(data["spec"])))
    train_idx, val_idx = stratified_split(y.tolist(), hp.validation_split, hp.seed)
    scale, offset = spec.normalization.scale_offset()
    x_train = x[train_idx].astype(np.float32) * np.float32(scale) + np.float32(offset)
    x_val = x[val_idx].astype(np.float32) * np.float32(scale) + np.float32(offset)
    y_train, y_val = y[train_idx], y[val_idx]

    keras.utils.set_random_seed(hp.seed)
    model = build_model(hp.architecture, spec, args.num_classes, hp)
    steps = math.ceil(len(x_train) / hp.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        hp.learning_rate, decay_steps=steps * hp.epochs, alpha=LR_FLOOR
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    clock = EpochClock()
    fit_start = time.time()
    history = model.fit(
        x_train,
        y_train,
        batch_size=hp.batch_size,
        epochs=hp.epochs,
        validation_data=(x_val, y_val),
        class_weight=class_weights(y_train, args.num_classes) if hp.class_weights else None,
        shuffle=True,
        callbacks=[clock],
        verbose=0,
    )
    fit_end = time.time()
    print(
        json.dumps(
            {
                "started": STARTED,
                "imported": imported,
                "fit_start": fit_start,
                "fit_end": fit_end,
                "epoch_ends": clock.ends,
                "epoch_seconds": clock.seconds,
                "val_accuracy": [float(v) for v in history.history.get("val_accuracy", [])],
                "num_train": len(x_train),
                "num_validation": len(x_val),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
