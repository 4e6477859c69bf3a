"""The TensorFlow half of a task kind: what the trainer asks of it.

``compute/keras/train.py`` runs the same stages for every kind — data, fit, evaluate and
export — and calls the kind's hooks (:class:`KerasTask`) where the kinds differ: decoding
samples to examples, building the model (with its preprocessing **inside**, so an app feeds
raw data), mapping stored examples to model input (with augmentation while training), the
export of each format, and what the manifest records of learned preprocessing. Everything a
kind shares with the API process (validation, decoding to arrays, its input contract) stays in
``mobiletrain.tasks.<kind>``, which the hooks use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import keras
import numpy as np
import tensorflow as tf

from mobiletrain.compute.keras import export as exporting
from mobiletrain.compute.protocol import Reporter, TrainingRequest
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.manifest import TensorSpec
from mobiletrain.core.types import ModelFormat, TaskType
from mobiletrain.tasks import kind as task_kind


@dataclass
class TaskData:
    """A job's decoded samples as model examples.

    One sample may give several examples (sensor windows, audio clips split to the clip
    length) or none (audio background noise, kept in ``extras``); ``owner`` maps each example
    back to its sample, so the split is by sample and never leaks a recording into both sides.
    """

    # examples in the kind's storage dtype, (N, *example_shape); for a streamed job
    # (compute/streaming.py) only the first sample's example: the others are decoded per batch
    x: np.ndarray
    y: np.ndarray  # int64 (N,): index into label_names
    owner: np.ndarray  # int64 (N,): index into request.sample_ids
    label_names: list[str]  # the classes the model predicts, in output order
    extras: dict[str, Any] = field(default_factory=dict)


BatchMap = Callable[[tf.Tensor], tf.Tensor]
"""A batch of stored examples → the float32 model input (augmented when training)."""


class KerasTask(Protocol):
    """Hooks of one task kind for the trainer; see :class:`KerasTaskBase` for defaults."""

    task: TaskType

    def prepare(self, request: TrainingRequest) -> TaskData:
        """Decode every sample into examples; errors name the sample (``sample_id``)."""
        ...

    def decode_many(
        self, request: TrainingRequest, raw: Sequence[bytes], sample_ids: Sequence[str]
    ) -> np.ndarray:
        """Samples → their examples stacked, exactly one per sample (streamed jobs decode each
        batch this way inside tf.data; only kinds in ``compute.streaming.STREAMING_KINDS``)."""
        ...

    def build_model(
        self, request: TrainingRequest, data: TaskData, train_rows: np.ndarray, reporter: Reporter
    ) -> keras.Model:
        """An uncompiled classifier whose input is what the app feeds and whose output is
        class probabilities; statistics of preprocessing come from ``data.x[train_rows]``."""
        ...

    def batch_map(self, request: TrainingRequest, data: TaskData, training: bool) -> BatchMap:
        """Stored examples → model input, per batch inside tf.data (augment when training)."""
        ...

    def model_input(self, request: TrainingRequest, x: np.ndarray) -> np.ndarray:
        """NumPy twin of ``batch_map(training=False)``: what LiteRT and calibration get."""
        ...

    def export(
        self,
        model: keras.Model,
        fmt: ModelFormat,
        representative: np.ndarray,
        saved_model_dir: Path,
    ) -> bytes:
        """One export format (``representative``: model input for int8 calibration)."""
        ...

    def manifest_input(self, request: TrainingRequest, model: keras.Model) -> dict[str, Any]:
        """The manifest's ``input`` section: the task's input contract."""
        ...

    def manifest_inputs(self, request: TrainingRequest, model: keras.Model) -> list[TensorSpec]:
        """The manifest's generic ``inputs`` (dtype, shape, layout, channels, rate, length);
        empty keeps an image classifier's card as it always was."""
        ...

    def manifest_task_spec(self, request: TrainingRequest, model: keras.Model) -> dict[str, Any]:
        """The manifest's ``task_spec``: what the kind learned or fixed inside the model
        (normalisation statistics, a front end's parameters); empty for none."""
        ...


class KerasTaskBase:
    """Defaults: examples from the pure kind's ``decode_examples``, model input from its
    ``model_input`` (a cast in the graph), the shared exporters, the kind's manifest input."""

    task: TaskType

    def prepare(self, request: TrainingRequest) -> TaskData:
        """Decode sample by sample with ``mobiletrain.tasks.<kind>.decode_examples``."""
        kind = task_kind(self.task)
        spec = request.input_spec
        parts: list[np.ndarray] = []
        owners: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        for i, (sample_id, raw) in enumerate(zip(request.sample_ids, request.images, strict=True)):
            try:
                examples = kind.decode_examples(raw, spec)
            except MobiletrainError as exc:
                raise MobiletrainError(
                    exc.code,
                    f"sample {sample_id} could not be decoded: {exc.message}",
                    sample_id=sample_id,
                ) from None
            parts.append(examples)
            owners.append(np.full(len(examples), i, dtype=np.int64))
            ys.append(np.full(len(examples), request.labels[i], dtype=np.int64))
        if not parts:
            raise MobiletrainError(ErrorCode.NOT_ENOUGH_DATA, "the job has no samples")
        return TaskData(
            x=np.concatenate(parts),
            y=np.concatenate(ys),
            owner=np.concatenate(owners),
            label_names=list(request.label_names),
        )

    def decode_many(
        self, request: TrainingRequest, raw: Sequence[bytes], sample_ids: Sequence[str]
    ) -> np.ndarray:
        """The pure kind's ``decode_examples`` sample by sample; INTERNAL unless each sample
        gives exactly one example (a kind that splits samples cannot stream)."""
        kind = task_kind(self.task)
        out: list[np.ndarray] = []
        for sample_id, data in zip(sample_ids, raw, strict=True):
            try:
                examples = kind.decode_examples(data, request.input_spec)
            except MobiletrainError as exc:
                raise MobiletrainError(
                    exc.code,
                    f"sample {sample_id} could not be decoded: {exc.message}",
                    sample_id=sample_id,
                ) from None
            if len(examples) != 1:
                raise MobiletrainError(
                    ErrorCode.INTERNAL, f"{self.task.value} samples cannot be streamed"
                )
            out.append(examples[0])
        return np.stack(out)

    def batch_map(self, request: TrainingRequest, data: TaskData, training: bool) -> BatchMap:
        """A cast to float32 (no augmentation)."""
        return lambda x: tf.cast(x, tf.float32)

    def model_input(self, request: TrainingRequest, x: np.ndarray) -> np.ndarray:
        """The pure kind's ``model_input``."""
        return task_kind(self.task).model_input(x, request.input_spec)

    def export(
        self,
        model: keras.Model,
        fmt: ModelFormat,
        representative: np.ndarray,
        saved_model_dir: Path,
    ) -> bytes:
        """The shared exporters of :mod:`mobiletrain.compute.keras.export`."""
        return exporting.export(model, fmt, representative, saved_model_dir)

    def manifest_input(self, request: TrainingRequest, model: keras.Model) -> dict[str, Any]:
        """The pure kind's ``manifest_input``."""
        return task_kind(self.task).manifest_input(request.input_spec)

    def manifest_inputs(self, request: TrainingRequest, model: keras.Model) -> list[TensorSpec]:
        """None (the ``input`` section says it all)."""
        return []

    def manifest_task_spec(self, request: TrainingRequest, model: keras.Model) -> dict[str, Any]:
        """Nothing learned outside the weights."""
        return {}
