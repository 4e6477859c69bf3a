"""The audio baseline: a plain Keras script on WAV files, same model and recipe as a job.

It reads ``DATA/train/<label>/*.wav`` with ``tf.audio.decode_wav`` (plain TensorFlow, not
mobiletrain's codec; the files are 16 kHz mono 16-bit 1 s clips) and splits them with the
job's seeded stratified split function (the validation rows can differ from the job's, whose
sample order is the server's); ``_background_noise_`` clips only serve as noise for mixing.
Model and recipe are the job's: the DS-CNN with the log-mel front end
(``compute.keras.tasks.audio.build_model`` at the job's width), the same augmentation (time
shift, gain, background mixing), Adam on a cosine-decay learning rate ending at 5% of the
initial rate, sparse categorical cross-entropy, balanced class weights, the same batch size
and epochs. Finally it measures the Keras model on ``DATA/held_out`` (voices never heard).

Run: python bench/audio_plain_fit.py --data DIR --hyperparameters '{"epochs": 30, ...}'
Prints one JSON line: wall-clock stamps, per-epoch seconds, validation and held-out accuracy.
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
import tensorflow as tf  # noqa: E402

from mobiletrain.compute.keras.tasks.audio import TASK, build_model, make_augment  # noqa: E402
from mobiletrain.compute.split import stratified_split  # noqa: E402
from mobiletrain.core.types import Hyperparameters  # noqa: E402

BACKGROUND = "_background_noise_"
RATE = 16000
LR_FLOOR = 0.05  # as in mobiletrain.compute.keras.train


class EpochClock(keras.callbacks.Callback):
    """Wall-clock stamps of each epoch's end and its duration (validation included)."""

    def __init__(self) -> None:
        super().__init__()
        self.ends: list[float] = []
        self.seconds: list[float] = []
        self._mono = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Remember the start."""
        self._mono = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Record the end and the duration."""
        self.seconds.append(round(time.monotonic() - self._mono, 3))
        self.ends.append(time.time())


def load(root: Path, labels: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Every ``root/<label>/*.wav`` as float32 (N, 16000) with tf.audio.decode_wav."""
    xs, ys = [], []
    for index, label in enumerate(labels):
        for path in sorted((root / label).glob("*.wav")):
            audio, rate = tf.audio.decode_wav(tf.io.read_file(str(path)), 1, RATE)
            if int(rate) != RATE:
                raise SystemExit(f"{path}: {int(rate)} Hz; this baseline reads 16 kHz files")
            xs.append(audio.numpy()[:, 0])
            ys.append(index)
    return np.stack(xs).astype(np.float32), np.asarray(ys, dtype=np.int64)


def class_weights(labels: np.ndarray, num_classes: int) -> dict[int, float]:
    """Balanced weights n / (k * count), as the job computes them."""
    counts = np.bincount(labels, minlength=num_classes)
    present = int((counts > 0).sum())
    return {
        c: float(len(labels) / (present * counts[c])) if counts[c] else 1.0
        for c in range(num_classes)
    }


def main() -> None:
    """Load, split, build, compile, fit, evaluate on held-out voices; print JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="dataset root with train/ and held_out/")
    parser.add_argument("--hyperparameters", required=True, help="Hyperparameters as JSON")
    args = parser.parse_args()
    imported = time.time()
    hp = Hyperparameters.from_dict(json.loads(args.hyperparameters))
    root = Path(args.data)
    words = sorted(p.name for p in (root / "train").iterdir() if p.name != BACKGROUND)
    all_labels = sorted([*words, BACKGROUND]) if (root / "train" / BACKGROUND).is_dir() else words
    x, y_all = load(root / "train", all_labels)
    train_idx, val_idx = stratified_split(y_all.tolist(), hp.validation_split, hp.seed)
    is_noise = np.array([all_labels[i] == BACKGROUND for i in y_all])
    noise = x[is_noise]
    remap = np.array([words.index(lb) if lb != BACKGROUND else -1 for lb in all_labels])
    y = remap[y_all]
    train_idx = np.array([i for i in train_idx if not is_noise[i]])
    val_idx = np.array([i for i in val_idx if not is_noise[i]])
    x_train, y_train, x_val, y_val = x[train_idx], y[train_idx], x[val_idx], y[val_idx]
    x_hold, y_hold = load(root / "held_out", words)

    keras.utils.set_random_seed(hp.seed)
    model = build_model(RATE, RATE, len(words), width=TASK.width, dropout=hp.dropout)
    steps = math.ceil(len(x_train) / hp.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(
        hp.learning_rate, decay_steps=steps * hp.epochs, alpha=LR_FLOOR
    )
    model.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    augment = make_augment(RATE, RATE, noise if len(noise) else None, seed=hp.seed)
    train = (
        tf.data.Dataset.from_tensor_slices((x_train, y_train))
        .shuffle(len(x_train), seed=hp.seed, reshuffle_each_iteration=True)
        .batch(hp.batch_size)
        .map(lambda a, b: (augment(a), b))
        .prefetch(2)
    )
    clock = EpochClock()
    fit_start = time.time()
    history = model.fit(
        train,
        epochs=hp.epochs,
        validation_data=(x_val, y_val),
        class_weight=class_weights(y_train, len(words)) if hp.class_weights else None,
        callbacks=[clock],
        verbose=0,
    )
    fit_end = time.time()
    predictions = model.predict(x_hold, verbose=0).argmax(axis=1)
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
                "held_out_accuracy": float(np.mean(predictions == y_hold)),
                "num_train": len(x_train),
                "num_validation": len(x_val),
                "num_held_out": len(x_hold),
                "num_noise_clips": len(noise),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
