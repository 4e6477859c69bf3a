"""Sensor time-series classification for the trainer: a small 1-D CNN over raw windows.

The exported model takes what the phone's sensors give — ``float32 [1, window, channels]``
in the sensors' own units, time-major — and normalises each channel itself with the mean and
standard deviation of the training split (a ``Normalization`` layer, builtin TFLite ops; the
manifest records the statistics). Training windows are augmented with a random amplitude
scale (±10 %) and Gaussian jitter (5 % of each channel's spread), as wearers and mounting differ.
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mobiletrain.compute.keras.tasks.base import BatchMap, KerasTaskBase, TaskData
from mobiletrain.compute.protocol import Reporter, TrainingRequest
from mobiletrain.core.manifest import TensorSpec
from mobiletrain.core.types import Hyperparameters, SensorSpec, TaskType

NORMALIZE_LAYER = "normalize"
# Spread below this (a channel that never moved) is treated as 1, so it is not blown up.
_MIN_STD = 1e-6
_SCALE_RANGE = 0.1
_JITTER = 0.05
_BN_MOMENTUM = 0.9


def channel_statistics(windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation over every reading of ``windows``."""
    flat = np.asarray(windows, dtype=np.float64).reshape(-1, windows.shape[-1])
    mean = flat.mean(axis=0)
    std = flat.std(axis=0)
    return mean, np.where(std < _MIN_STD, 1.0, std)


def build_sensor_cnn(
    window: int,
    channels: int,
    num_classes: int,
    mean: np.ndarray,
    std: np.ndarray,
    hp: Hyperparameters,
) -> keras.Model:
    """Normalisation inside, three Conv1D/BN/ReLU blocks, global average pooling, softmax."""
    inputs = keras.Input((window, channels), name="readings", dtype="float32")
    x = keras.layers.Normalization(
        axis=-1, mean=mean, variance=np.square(std), name=NORMALIZE_LAYER
    )(inputs)
    for i, filters in enumerate((32, 64, 64)):
        x = keras.layers.Conv1D(filters, 5, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        if x.shape[1] >= 8:
            x = keras.layers.MaxPooling1D(2, name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    if hp.dropout > 0:
        x = keras.layers.Dropout(hp.dropout, name="head_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)
    return keras.Model(inputs, outputs, name="sensor_cnn")


class SensorTask(KerasTaskBase):
    """Hooks of sensor classification (see :class:`KerasTaskBase`); examples are windows
    from :func:`mobiletrain.tasks.sensor.decode`, several per recording."""

    task = TaskType.SENSOR_CLASSIFICATION

    def build_model(
        self, request: TrainingRequest, data: TaskData, train_rows: np.ndarray, reporter: Reporter
    ) -> keras.Model:
        """The 1-D CNN with the training split's channel statistics baked in."""
        mean, std = channel_statistics(data.x[train_rows])
        _, window, channels = data.x.shape
        return build_sensor_cnn(
            window, channels, len(data.label_names), mean, std, request.hyperparameters
        )

    def batch_map(self, request: TrainingRequest, data: TaskData, training: bool) -> BatchMap:
        """Raw windows; when training, amplitude scale and jitter per window."""
        if not training:
            return lambda x: tf.cast(x, tf.float32)
        spread = tf.constant(channel_statistics(data.x)[1], tf.float32)

        def augment(x: tf.Tensor) -> tf.Tensor:
            x = tf.cast(x, tf.float32)
            batch = tf.shape(x)[0]
            # Op-level randomness under the job's global seed (keras.utils.set_random_seed).
            scale = tf.random.uniform([batch, 1, 1], 1 - _SCALE_RANGE, 1 + _SCALE_RANGE)
            noise = tf.random.normal(tf.shape(x)) * spread * _JITTER
            return x * scale + noise

        return augment

    def manifest_inputs(self, request: TrainingRequest, model: keras.Model) -> list[TensorSpec]:
        """One window: float32 ``[1, window, channels]``, time-major, raw units."""
        sensor = request.input_spec.task_spec
        assert isinstance(sensor, SensorSpec)
        return [
            TensorSpec(
                name="readings",
                dtype="float32",
                shape=[1, sensor.window, len(sensor.channels)],
                layout="NTC",
                role="window",
                channels=list(sensor.channels),
                rate_hz=sensor.rate_hz,
                length=sensor.window,
                description="raw sensor units at rate_hz, channels in this order; a shorter "
                "recording is padded by repeating its last reading; normalised inside the model",
            )
        ]

    def manifest_task_spec(self, request: TrainingRequest, model: keras.Model) -> dict[str, Any]:
        """The per-channel normalisation the model applies (training split statistics)."""
        layer = model.get_layer(NORMALIZE_LAYER)
        return {
            "normalization": {
                "inside_model": True,
                "mean": [float(v) for v in np.asarray(layer.mean).ravel()],
                "std": [float(v) for v in np.sqrt(np.asarray(layer.variance).ravel())],
                "computed_on": "training split",
            }
        }


TASK = SensorTask()
