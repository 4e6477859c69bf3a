"""Keras side of the epoch checkpoints: model and optimizer state to arrays and back.

The files themselves (atomic writes, verification, the previous good copy) are
:mod:`mobiletrain.compute.checkpoints`. A checkpoint holds every model variable (trainable and
not: batch-norm statistics too), every optimizer variable (Adam's moments and its iteration
count, which also drives the learning-rate schedule), the number of finished epochs and the
metrics history of every attempt so far. Not held: the data order of the interrupted epoch
(the resumed attempt's tf.data pipeline shuffles with the same seed from its own start) and
EarlyStopping's patience counter.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from mobiletrain.compute import checkpoints
from mobiletrain.compute.checkpoints import Checkpoint, CheckpointError
from mobiletrain.compute.protocol import Reporter
from mobiletrain.core.types import EventKind

HISTORY_KEYS = ("loss", "accuracy", "val_loss", "val_accuracy")

INTERVAL_ENV = "MOBILETRAIN_CHECKPOINT_INTERVAL_SECONDS"
DEFAULT_INTERVAL_S = 30.0
"""Seconds of training between two epoch checkpoints (issue 18): a checkpoint is taken at the
first epoch end at which this much time has passed since the attempt's previous checkpoint (or
its start), so a crash costs at most this plus one epoch of training. ``0``: every epoch."""


def interval_from_env() -> float:
    """``MOBILETRAIN_CHECKPOINT_INTERVAL_SECONDS`` (30), read by the worker at each job."""
    raw = os.environ.get(INTERVAL_ENV, "").strip()
    if not raw:
        return DEFAULT_INTERVAL_S
    try:
        value = float(raw)
    except ValueError as exc:
        raise ValueError(f"{INTERVAL_ENV} must be a number of seconds, got {raw!r}") from exc
    if value < 0 or value != value:
        raise ValueError(f"{INTERVAL_ENV} must be >= 0, got {raw!r}")
    return value


def _variables(model: keras.Model) -> dict[str, Any]:
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        # Adam creates its moments on the first step; a restore needs them now.
        optimizer.build(model.trainable_variables)
    named = {f"model/{i}": v for i, v in enumerate(model.weights)}
    if optimizer is not None:
        named.update({f"optimizer/{i}": v for i, v in enumerate(optimizer.variables)})
    return named


def state_arrays(model: keras.Model) -> dict[str, np.ndarray]:
    """Every model and optimizer variable as a numpy array, in a stable order."""
    return {
        name: np.asarray(keras.ops.convert_to_numpy(v)) for name, v in _variables(model).items()
    }


def apply_arrays(model: keras.Model, arrays: dict[str, np.ndarray]) -> None:
    """Assign saved arrays to the model; ``CheckpointError`` (nothing assigned) on a mismatch."""
    variables = _variables(model)
    if set(arrays) != set(variables):
        raise CheckpointError(f"holds {len(arrays)} variables, this model has {len(variables)}")
    for name, variable in variables.items():
        if tuple(arrays[name].shape) != tuple(variable.shape):
            raise CheckpointError(
                f"variable {name} has shape {arrays[name].shape}, expected {variable.shape}"
            )
    for name, variable in variables.items():  # all checked first: never half-assigned
        variable.assign(arrays[name].astype(variable.dtype))


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoints the training state at epoch ends and keeps the whole history.

    With ``interval_s`` 0 every epoch end is checkpointed; otherwise the first epoch end at
    least ``interval_s`` seconds (``clock``) after the previous checkpoint of this attempt (or
    its first epoch's start). The end of training is always checkpointed (``save(finished=True)``
    after ``fit``). A resumed attempt re-trains the epochs after the newest checkpoint: at most
    ``interval_s`` plus one epoch of work, and their EPOCH events come again. ``history`` covers
    the epochs of every attempt, each counted once.
    """

    def __init__(
        self,
        directory: Path,
        reporter: Reporter,
        interval_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.directory = directory
        self.reporter = reporter
        self.interval_s = interval_s
        self._clock = clock
        self._last_save: float | None = None
        self.history: dict[str, list[float]] = {key: [] for key in HISTORY_KEYS}
        self.epochs_done = 0
        self.finished = False
        self._write_failed = False

    def restore(self, model: keras.Model) -> int:
        """Load the newest checkpoint that verifies and fits ``model``; returns its epochs.

        A damaged checkpoint is set aside with a warning event and the previous one is tried;
        with none left, training starts at epoch 0. It never fails the job.
        """
        damaged = 0
        for path in checkpoints.candidates(self.directory):
            try:
                checkpoint = checkpoints.read(path)
                apply_arrays(model, checkpoint.arrays)
            except CheckpointError as exc:
                damaged += 1
                checkpoints.set_aside(path)
                self._warn(
                    f"checkpoint {path.name} cannot be used ({exc}); "
                    "falling back to the previous checkpoint",
                    checkpoint=path.name,
                )
                continue
            self.epochs_done = checkpoint.epoch
            self.finished = checkpoint.finished
            self.history = {key: list(checkpoint.history.get(key, [])) for key in HISTORY_KEYS}
            self.reporter.emit(
                EventKind.LOG,
                {
                    "message": "resuming from the checkpoint of an earlier attempt: "
                    f"{checkpoint.epoch} epochs done",
                    "checkpoint": path.name,
                    "epoch": checkpoint.epoch,
                },
            )
            return checkpoint.epoch
        if damaged:
            self._warn("no usable checkpoint is left: training starts again from epoch 1")
        return 0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """The interval counts from the attempt's first epoch start."""
        if self._last_save is None:
            self._last_save = self._clock()

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Add the epoch to the history; write the checkpoint once the interval has passed.

        Skipped epochs cost nothing here: no weights are copied out of the model.
        """
        logs = logs or {}
        for key in HISTORY_KEYS:
            if key in logs:
                self.history[key].append(float(logs[key]))
        self.epochs_done = epoch + 1
        now = self._clock()
        if self._last_save is not None and now - self._last_save < self.interval_s:
            return
        self.save(self.model, finished=False)
        self._last_save = self._clock()

    def save(self, model: keras.Model, finished: bool) -> None:
        """Write the current state; ``finished`` marks the end of training (export is next).

        A failed write (disk full) costs only the resume point: a warning, training goes on
        and the previous checkpoint stays.
        """
        self.finished = finished
        checkpoint = Checkpoint(self.epochs_done, self.history, finished, state_arrays(model))
        try:
            checkpoints.write(self.directory, checkpoint)
        except OSError as exc:
            if not self._write_failed:
                self._write_failed = True
                self._warn(f"could not write the epoch checkpoint ({exc.strerror or exc})")

    def _warn(self, message: str, **extra: Any) -> None:
        self.reporter.emit(
            EventKind.LOG, {"message": f"warning: {message}", "level": "warning", **extra}
        )
