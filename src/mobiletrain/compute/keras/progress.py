"""The Keras callback that turns training into PROGRESS and EPOCH events and stops on cancel.

Split from :mod:`mobiletrain.compute.keras.train` (issue 15: modules of at most ~600 lines).
"""

from __future__ import annotations

import math
import time
from typing import Any

import keras

from mobiletrain.compute.protocol import Reporter
from mobiletrain.core.types import EventKind, JobPhase

# At most this many PROGRESS events (and should_stop() polls) per second, plus each epoch's
# last batch.
PROGRESS_INTERVAL_S = 0.5


class _CancelledError(Exception):
    """Raised inside fit() to leave it at once (no validation pass) when the job is cancelled."""


class ProgressCallback(keras.callbacks.Callback):
    """Emits PROGRESS/EPOCH events and aborts training once ``reporter.should_stop()``.

    Per batch it only reads a monotonic clock: no tensor is read, so it adds no device sync
    beyond what Keras already does. Epoch numbers in events are 1-based.
    """

    def __init__(
        self,
        reporter: Reporter,
        epochs: int,
        batch_size: int,
        num_samples: int,
        post_seconds: float = 0.0,
    ):
        super().__init__()
        self.reporter = reporter
        # Expected seconds of export and evaluation after training (job-level ETA).
        self.post_seconds = post_seconds
        self.epochs = epochs
        self.batch_size = batch_size
        self.num_samples = num_samples
        self.batches = max(1, math.ceil(num_samples / batch_size))
        self._epoch = 0
        self._epoch_start = 0.0
        self._next_report = 0.0

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """Remember when the epoch started."""
        self._epoch = epoch
        self._epoch_start = time.monotonic()
        self._next_report = self._epoch_start + PROGRESS_INTERVAL_S

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        """Throttled progress event and cancellation check."""
        now = time.monotonic()
        done = batch + 1
        if now < self._next_report and done < self.batches:
            return
        self._next_report = now + PROGRESS_INTERVAL_S
        if self.reporter.should_stop():
            raise _CancelledError
        elapsed = max(now - self._epoch_start, 1e-9)
        samples = min(done * self.batch_size, self.num_samples)
        remaining = (self.batches - done) + self.batches * (self.epochs - self._epoch - 1)
        self.reporter.emit(
            EventKind.PROGRESS,
            {
                "epoch": self._epoch + 1,
                "epochs": self.epochs,
                "batch": done,
                "batches": self.batches,
                "samples_per_second": round(samples / elapsed, 2),
                "eta_seconds": round(remaining * elapsed / done, 1),
                # The whole job: the epochs left plus the expected export and evaluation.
                "job_eta_seconds": round(remaining * elapsed / done + self.post_seconds, 1),
                "phase": JobPhase.TRAINING.value,
            },
        )

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        """EPOCH event with the epoch's metrics, then a cancellation check."""
        logs = logs or {}
        data: dict[str, Any] = {"epoch": epoch + 1, "epochs": self.epochs}
        for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
            data[key] = float(logs[key]) if key in logs else None
        data["seconds"] = round(time.monotonic() - self._epoch_start, 3)
        self.reporter.emit(EventKind.EPOCH, data)
        if self.reporter.should_stop():
            raise _CancelledError
