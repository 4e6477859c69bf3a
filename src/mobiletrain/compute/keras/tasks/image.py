"""Image classification for the trainer: uint8 pixels in memory, normalised per batch.

The model takes normalised float32 ``(H, W, C)`` images (apps normalise; the manifest says
how), as it did before task kinds existed; augmentation runs on 0..255 pixels in tf.data.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from mobiletrain.compute.keras.builders import build_augmentation, build_model
from mobiletrain.compute.keras.tasks.base import BatchMap, KerasTaskBase, TaskData
from mobiletrain.compute.preprocess import decode_batch
from mobiletrain.compute.protocol import Reporter, TrainingRequest
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import InputSpec, TaskType


def _decode(images: Sequence[bytes], sample_ids: Sequence[str], spec: InputSpec) -> np.ndarray:
    try:
        return decode_batch(images, spec)
    except MobiletrainError:
        pass
    # Slow path only to name the offending sample.
    for sample_id, data in zip(sample_ids, images, strict=True):
        try:
            decode_batch([data], spec)
        except MobiletrainError as exc:
            raise MobiletrainError(
                exc.code, f"sample {sample_id} could not be decoded", sample_id=sample_id
            ) from None
    raise MobiletrainError(ErrorCode.CORRUPT_IMAGE)  # pragma: no cover - unreachable


class ImageTask(KerasTaskBase):
    """Hooks of image classification (see :class:`KerasTaskBase`)."""

    task = TaskType.IMAGE_CLASSIFICATION

    def prepare(self, request: TrainingRequest) -> TaskData:
        """All images decoded at once into one uint8 array (one example per sample)."""
        n = len(request.images)
        return TaskData(
            x=_decode(request.images, request.sample_ids, request.input_spec),
            y=np.asarray(request.labels, dtype=np.int64),
            owner=np.arange(n, dtype=np.int64),
            label_names=list(request.label_names),
        )

    def decode_many(
        self, request: TrainingRequest, raw: Sequence[bytes], sample_ids: Sequence[str]
    ) -> np.ndarray:
        """One batch of a streamed job, decoded as :meth:`prepare` decodes all."""
        return _decode(raw, sample_ids, request.input_spec)

    def build_model(
        self, request: TrainingRequest, data: TaskData, train_rows: np.ndarray, reporter: Reporter
    ) -> keras.Model:
        """The architecture the hyperparameters name (see ``compute/keras/builders.py``)."""
        hp = request.hyperparameters
        return build_model(
            hp.architecture,
            request.input_spec,
            len(data.label_names),
            hp,
            request.base_model_path,
            reporter=reporter,
        )

    def batch_map(self, request: TrainingRequest, data: TaskData, training: bool) -> BatchMap:
        """uint8 → normalised float32; augmentation first (RandomContrast clips to 0..255)."""
        hp = request.hyperparameters
        scale, offset = request.input_spec.normalization.scale_offset()
        augment = build_augmentation(hp, hp.seed) if training else None

        def apply(x: tf.Tensor) -> tf.Tensor:
            pixels = tf.cast(x, tf.float32)
            if augment is not None:
                pixels = augment(pixels, training=True)
            return pixels * scale + offset

        return apply


TASK = ImageTask()
