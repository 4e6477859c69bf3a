"""Keras model builders for the supported architectures.

Every model takes ``float32 (batch, H, W, C)`` input that is ALREADY normalised per the
project's :class:`InputSpec` (apps normalise; the manifest says how) and returns softmax
probabilities. Augmentation is a separate block applied in the tf.data pipeline, so the
trained model is the inference model and exports with builtin TFLite ops only.

Pretrained weights policy for the keras.applications backbones: ImageNet weights are used
when Keras can load them (from its cache, ``$KERAS_HOME/models`` or ``~/.keras/models``, or
by download). When they cannot be obtained (e.g. an offline server), the job fails with
BASE_WEIGHTS_UNAVAILABLE (code 55) unless the job set ``allow_random_init``: then it logs a
warning event (the version carries the warning) and trains the whole network from random
initialisation, because a frozen random backbone would be useless.
"""

from __future__ import annotations

import math
import socket
from pathlib import Path
from typing import Any

import keras

from mobiletrain.compute.protocol import Reporter
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    Architecture,
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    Normalization,
)

# keras.applications refuse inputs smaller than this (both MobileNets).
MIN_APPLICATION_SIDE = 32
# Small datasets give few steps per epoch: a faster-moving BatchNorm average lets validation
# accuracy track training within a few epochs (Keras' 0.99 lags by hundreds of steps).
_BN_MOMENTUM = 0.9
# Bound how long an offline server waits for the ImageNet weight download to fail.
_DOWNLOAD_TIMEOUT_S = 30.0


def _log(reporter: Reporter | None, message: str) -> None:
    if reporter is not None:
        reporter.emit(EventKind.LOG, {"message": message})


def _input_shape(spec: InputSpec) -> tuple[int, int, int]:
    return (spec.height, spec.width, spec.channels)


def _head(x: Any, num_classes: int, hp: Hyperparameters) -> Any:
    if hp.dropout > 0:
        x = keras.layers.Dropout(hp.dropout, name="head_dropout")(x)
    return keras.layers.Dense(num_classes, activation="softmax", name="probabilities")(x)


def _small_cnn(spec: InputSpec, num_classes: int, hp: Hyperparameters) -> keras.Model:
    """Conv/BN/ReLU/MaxPool blocks sized to the input; BN folds into the conv on export."""
    inputs = keras.Input(_input_shape(spec), name="image")
    x = inputs
    side = min(spec.width, spec.height)
    if side >= 128:
        # Large inputs: a strided stem keeps the first full-resolution layers cheap.
        x = keras.layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False, name="stem")(x)
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, name="stem_bn")(x)
        x = keras.layers.ReLU(name="stem_relu")(x)
        side //= 2
    # Pool until the feature map is about 4x4, with 1..4 blocks.
    blocks = min(4, max(1, int(math.log2(max(side, 1) / 4))))
    for i in range(blocks):
        filters = 32 * 2**i
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"bn{i}")(x)
        x = keras.layers.ReLU(name=f"relu{i}")(x)
        x = keras.layers.MaxPooling2D(name=f"pool{i}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, _head(x, num_classes, hp), name="small_cnn")


def _to_minus_one_one(spec: InputSpec) -> keras.layers.Layer | None:
    """Rescale spec-normalised input to the [-1, 1] range the MobileNets expect."""
    if spec.normalization is Normalization.MINUS_ONE_ONE:
        return None
    scale, offset = spec.normalization.scale_offset()
    # pixel = (x - offset) / scale; target = pixel / 127.5 - 1
    factor = 1.0 / (scale * 127.5)
    return keras.layers.Rescaling(factor, offset=-offset * factor - 1.0, name="to_minus_one_one")


def _application(
    arch: Architecture,
    spec: InputSpec,
    num_classes: int,
    hp: Hyperparameters,
    reporter: Reporter | None,
) -> keras.Model:
    if spec.width < MIN_APPLICATION_SIDE or spec.height < MIN_APPLICATION_SIDE:
        raise MobiletrainError(
            ErrorCode.INVALID_INPUT_SPEC,
            f"{arch.value} needs an input of at least {MIN_APPLICATION_SIDE}x"
            f"{MIN_APPLICATION_SIDE} pixels, got {spec.width}x{spec.height}",
        )
    # The backbones are built for 3 channels (ImageNet weights need them).
    backbone_shape = (spec.height, spec.width, 3)

    def make(weights: str | None) -> keras.Model:
        if arch is Architecture.MOBILENET_V3_SMALL:
            return keras.applications.MobileNetV3Small(
                input_shape=backbone_shape,
                include_top=False,
                weights=weights,
                include_preprocessing=False,
            )
        return keras.applications.MobileNetV2(
            input_shape=backbone_shape, include_top=False, weights=weights
        )

    previous_timeout = socket.getdefaulttimeout()
    socket.setdefaulttimeout(_DOWNLOAD_TIMEOUT_S)
    try:
        backbone = make("imagenet")
        pretrained = True
    except Exception as exc:  # keras raises bare Exception for a failed download
        if not hp.allow_random_init:
            raise MobiletrainError(
                ErrorCode.BASE_WEIGHTS_UNAVAILABLE,
                f"ImageNet weights for {arch.value} could not be loaded "
                f"({type(exc).__name__}); put them in the server's Keras cache "
                "($KERAS_HOME/models), or set allow_random_init to train from random "
                "initialisation (usually far less accurate)",
            ) from None
        if reporter is not None:
            reporter.emit(
                EventKind.LOG,
                {
                    "level": "warning",
                    "message": f"ImageNet weights for {arch.value} were not available "
                    f"({type(exc).__name__}): trained from random initialisation "
                    "(allow_random_init)",
                },
            )
        backbone = make(None)
        pretrained = False
    finally:
        socket.setdefaulttimeout(previous_timeout)
    backbone.trainable = not pretrained
    if not pretrained:
        # keras.applications use BatchNorm momentum 0.999, far too slow for the few steps of a
        # small from-scratch run: validation would see unconverged statistics.
        for layer in backbone.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = _BN_MOMENTUM

    inputs = keras.Input(_input_shape(spec), name="image")
    x = inputs
    if spec.color_mode is ColorMode.GRAYSCALE:
        x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
    rescale = _to_minus_one_one(spec)
    if rescale is not None:
        x = rescale(x)
    # training=False keeps a frozen backbone's BatchNorm in inference mode.
    x = backbone(x, training=False if pretrained else None)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, _head(x, num_classes, hp), name=arch.value.replace("-", "_"))


def _from_base_model(
    path: Path, spec: InputSpec, num_classes: int, hp: Hyperparameters
) -> keras.Model:
    """Use a user-supplied .keras model as frozen feature extractor (spec-normalised input)."""
    try:
        base = keras.saving.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # corrupt zip, unknown/unsafe layers, lambdas...
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT,
            f"the base model could not be loaded as a safe .keras model ({type(exc).__name__})",
        ) from None
    if not isinstance(base, keras.Model) or len(base.inputs) != 1 or len(base.outputs) != 1:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, "the base model must have exactly one input and output"
        )
    expected = _input_shape(spec)
    got = tuple(base.inputs[0].shape[1:])
    if len(got) != 3 or any(g is not None and g != e for g, e in zip(got, expected, strict=True)):
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT,
            f"the base model takes input {list(got)} but the project's input is {list(expected)}",
        )
    base.trainable = False
    inputs = keras.Input(expected, name="image")
    x = base(inputs, training=False)
    rank = len(x.shape)
    if rank == 4:
        x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    elif rank == 3:
        x = keras.layers.GlobalAveragePooling1D(name="gap")(x)
    elif rank != 2:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT, f"the base model's output has unsupported rank {rank}"
        )
    return keras.Model(inputs, _head(x, num_classes, hp), name="transfer")


def build_model(
    arch: Architecture,
    spec: InputSpec,
    num_classes: int,
    hp: Hyperparameters,
    base_model_path: Path | None = None,
    reporter: Reporter | None = None,
) -> keras.Model:
    """Build the (uncompiled) classifier.

    ``base_model_path`` (a .keras file) takes precedence over ``arch``. Raises
    ``INVALID_INPUT_SPEC`` for inputs too small for a MobileNet and ``INVALID_ARGUMENT`` for a
    base model that cannot be loaded safely or does not fit the input spec.
    """
    spec.validate()
    if num_classes < 2:
        raise MobiletrainError(ErrorCode.NOT_ENOUGH_DATA, "at least two labels are needed")
    if base_model_path is not None:
        return _from_base_model(Path(base_model_path), spec, num_classes, hp)
    if arch is Architecture.SMALL_CNN:
        return _small_cnn(spec, num_classes, hp)
    return _application(arch, spec, num_classes, hp, reporter)


def build_augmentation(hp: Hyperparameters, seed: int) -> keras.Sequential | None:
    """Random augmentation for training batches of float pixels in 0..255, or None.

    Applied in the tf.data pipeline before normalisation (RandomContrast clips to 0..255),
    never part of the exported model.
    """
    layers: list[keras.layers.Layer] = []
    if hp.augment_flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if hp.augment_rotation > 0:
        layers.append(
            keras.layers.RandomRotation(hp.augment_rotation, fill_mode="reflect", seed=seed + 1)
        )
    if hp.augment_zoom > 0:
        layers.append(keras.layers.RandomZoom(hp.augment_zoom, fill_mode="reflect", seed=seed + 2))
    if hp.augment_contrast > 0:
        layers.append(
            keras.layers.RandomContrast(hp.augment_contrast, value_range=(0, 255), seed=seed + 3)
        )
    return keras.Sequential(layers, name="augmentation") if layers else None
