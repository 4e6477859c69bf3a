"""What the job runner hands to the trainer and gets back (TensorFlow free)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from mobiletrain.core.types import EventKind, Hyperparameters, InputSpec, ModelFormat

if TYPE_CHECKING:
    from mobiletrain.core.types import Box

MANIFEST_METADATA_NAME = "mobiletrain_manifest"
"""Name of the TFLite metadata entry that holds the manifest JSON."""

MANIFEST_SCHEMA_VERSION = 1


@dataclass
class TrainingRequest:
    """Everything one training job needs; images are the encoded bytes as stored.

    ``images`` is a list, or for a streamed job a ``BlobSampleBytes`` that reads them from the
    blob store on demand (``compute/streaming.py``): the trainer then decodes batch by batch
    inside tf.data instead of all at once.
    """

    images: Sequence[bytes]
    labels: list[int]  # index into label_names
    sample_ids: list[str]
    label_names: list[str]
    input_spec: InputSpec
    hyperparameters: Hyperparameters
    work_dir: Path  # scratch dir for this job (checkpoints, temp files)
    base_model_path: Path | None = None
    # Seconds the export and evaluation took for the project's last version (job-level ETA);
    # None: unknown, the trainer guesses.
    expected_post_seconds: float | None = None
    # Object detection: each image's boxes, in ``images`` order (None for other task kinds).
    boxes: list[list[Box]] | None = None
    # Streamed jobs only: keep the decoded examples in a file in work_dir after the first epoch.
    data_cache: bool = False


class Reporter(Protocol):
    """Sink for job events plus the cancellation flag."""

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        """Record one event."""
        ...

    def should_stop(self) -> bool:
        """Return True once the job was cancelled."""
        ...


@dataclass
class TrainingOutput:
    """Result of a job.

    ``artifacts`` holds one file per requested format (the .tflite ones already carry the
    embedded manifest); ``manifest`` lacks the file sha256s, which the caller adds.
    When ``cancelled`` is true, ``artifacts`` is empty and metrics/manifest may be partial.
    """

    artifacts: dict[ModelFormat, bytes]
    # {accuracy, loss, macro_f1, labels, per_class: [{label, precision, recall, f1, support}],
    #  confusion_matrix (rows = true label), tflite: {format: {accuracy, ...}}, history, ...}
    metrics: dict[str, Any]
    split: dict[str, Any]  # {"seed", "validation_fraction", "train_ids", "validation_ids"}
    manifest: dict[str, Any]
    cancelled: bool = False


def artifact_file_name(fmt: ModelFormat) -> str:
    """File name of a format inside a model version, as written in the manifest."""
    return fmt.file_name
