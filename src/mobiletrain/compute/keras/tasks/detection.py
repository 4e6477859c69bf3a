"""Object detection for the trainer: a centre-point detector, its targets, loss and export.

The model is a single-shot, anchor-free CenterNet-style detector on a grid of 8-pixel cells:
a backbone (``small-cnn``: a compact Conv/BN/ReLU network; ``mobilenet-v2`` /
``mobilenet-v3-small``: the keras.applications networks with ImageNet weights when they can
be loaded, under the same policy as classification) gives features at strides 8 and 16, the
stride-16 ones are upsampled and merged, and two heads predict per cell and class a centre
heatmap and per cell the box size (width, height as fractions of the image) and the
centre's offset inside the cell, every channel a sigmoid in 0..1. Training uses the CenterNet
focal loss on Gaussian heatmap targets and L1 on size and offset at object centres.

Post-processing is part of the exported model: heatmap peaks (3x3 max-pool equality), the
top-scoring candidates (``TOPK_V2``), boxes decoded from size and offset, and class-aware
non-maximum suppression (``NON_MAX_SUPPRESSION_V4``: boxes of different classes are shifted
apart so they never suppress each other) with the project's ``iou_threshold``,
``score_threshold`` and ``max_detections``. Every op is a builtin of the default LiteRT
resolver. The outputs, in tensor order: ``detection_boxes`` ``[1, N, 4]`` (y_min, x_min,
y_max, x_max), ``detection_classes`` ``[1, N]``, ``detection_scores`` ``[1, N]``,
``num_detections`` ``[1]``, all float32 (int8 files quantise the network, not these).

Augmentation keeps the boxes right: horizontal flip, a random zoom in or out (0.6x to 1.5x;
a crop, or the image shrunk onto a grey canvas) with the boxes moved and clipped accordingly
(a box less than half inside the crop is dropped), and brightness/contrast jitter.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from mobiletrain.compute.detection_eval import Detections
from mobiletrain.compute.protocol import Reporter
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.manifest import TensorSpec
from mobiletrain.core.types import (
    Architecture,
    ColorMode,
    DetectionSpec,
    EventKind,
    Hyperparameters,
    InputSpec,
    ModelFormat,
)
from mobiletrain.tasks.detection import OUTPUT_NAMES, OUTPUT_ROLES

STRIDE = 8
"""Pixels per grid cell."""
# Candidates kept after peak picking, before non-maximum suppression.
_CANDIDATES = 100
_BN_MOMENTUM = 0.9
# Heatmap bias at start: sigmoid(-2.19) = 0.1, as CenterNet (stable focal loss early on).
_HEAT_BIAS = -2.19
_SIZE_WEIGHT = 5.0
_OFFSET_WEIGHT = 1.0
# Grey the canvas takes where a zoomed-out image does not reach.
_FILL = 114.0
_ZOOM_RANGE = (0.6, 1.5)
_MIN_VISIBLE = 0.5
SIGNATURE_KEY = "serving_default"
INPUT_NAME = "image"


def grid_shape(spec: InputSpec) -> tuple[int, int]:
    """(rows, columns) of the output grid."""
    return spec.height // STRIDE, spec.width // STRIDE


# --- boxes as arrays -------------------------------------------------------------------------


def boxes_array(boxes: Sequence[Any] | None, label_index: dict[str, int]) -> np.ndarray:
    """Domain boxes → float32 ``(k, 5)`` rows ``class, x_min, y_min, x_max, y_max`` (boxes of
    labels the job does not train are left out)."""
    rows = [
        (label_index[b.label], b.x_min, b.y_min, b.x_max, b.y_max)
        for b in boxes or ()
        if b.label in label_index
    ]
    return np.asarray(rows, dtype=np.float32).reshape(-1, 5)


# --- model -----------------------------------------------------------------------------------


def _conv(x: Any, filters: int, name: str, strides: int = 1) -> Any:
    x = keras.layers.Conv2D(
        filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(momentum=_BN_MOMENTUM, name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _small_backbone(x: Any) -> tuple[Any, Any]:
    x = _conv(x, 16, "stem", strides=2)
    x = _conv(x, 32, "c2", strides=2)
    x = _conv(x, 32, "c2b")
    x = _conv(x, 64, "c3", strides=2)
    c8 = _conv(x, 64, "c3b")
    x = _conv(c8, 128, "c4", strides=2)
    c16 = _conv(x, 128, "c4b")
    return c8, c16


def _application_backbone(
    arch: Architecture, spec: InputSpec, hp: Hyperparameters, reporter: Reporter | None
) -> keras.Model:
    """A keras.applications network → a model giving its stride-8 and stride-16 features."""
    shape = (spec.height, spec.width, 3)

    def make(weights: str | None) -> keras.Model:
        if arch is Architecture.MOBILENET_V3_SMALL:
            return keras.applications.MobileNetV3Small(
                input_shape=shape, include_top=False, weights=weights, include_preprocessing=False
            )
        return keras.applications.MobileNetV2(input_shape=shape, include_top=False, weights=weights)

    try:
        net = make("imagenet")
    except Exception as exc:  # keras raises bare Exception for a failed download
        if not hp.allow_random_init:
            raise MobiletrainError(
                ErrorCode.BASE_WEIGHTS_UNAVAILABLE,
                f"ImageNet weights for {arch.value} could not be loaded "
                f"({type(exc).__name__}); put them in the server's Keras cache "
                "($KERAS_HOME/models), or set allow_random_init",
            ) from None
        if reporter is not None:
            reporter.emit(
                EventKind.LOG,
                {
                    "level": "warning",
                    "message": f"ImageNet weights for {arch.value} were not available: "
                    "the detector's backbone trains from random initialisation",
                },
            )
        net = make(None)
        for layer in net.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = _BN_MOMENTUM
    # The last layer at each stride: the deepest features of that resolution.
    by_stride: dict[int, Any] = {}
    for layer in net.layers:
        out = layer.output
        if not hasattr(out, "shape") or len(out.shape) != 4 or not out.shape[1]:
            continue
        stride = spec.height // int(out.shape[1])
        if stride in (8, 16):
            by_stride[stride] = out
    if set(by_stride) != {8, 16}:
        raise MobiletrainError(
            ErrorCode.INVALID_INPUT_SPEC, f"{arch.value} has no stride-8/16 features here"
        )
    return keras.Model(net.input, [by_stride[8], by_stride[16]], name="backbone")


def _to_minus_one_one(spec: InputSpec) -> keras.layers.Layer:
    scale, offset = spec.normalization.scale_offset()
    factor = 1.0 / (scale * 127.5)
    return keras.layers.Rescaling(factor, offset=-offset * factor - 1.0, name="to_minus_one_one")


def build_detector(
    spec: InputSpec, num_classes: int, hp: Hyperparameters, reporter: Reporter | None = None
) -> keras.Model:
    """The trainable detector: normalised ``(H, W, C)`` image → heads ``(Gh, Gw, C+4)``, all
    sigmoid outputs in 0..1 (class heatmaps, then size and offset), so one int8 scale suits
    every channel of the quantised file."""
    inputs = keras.Input((spec.height, spec.width, spec.channels), name=INPUT_NAME)
    x = inputs
    if hp.architecture is Architecture.SMALL_CNN:
        c8, c16 = _small_backbone(x)
    else:
        if spec.color_mode is ColorMode.GRAYSCALE:
            x = keras.layers.Concatenate(name="gray_to_rgb")([x, x, x])
        x = _to_minus_one_one(spec)(x)
        c8, c16 = _application_backbone(hp.architecture, spec, hp, reporter)(x)
    up = keras.layers.UpSampling2D(2, interpolation="nearest", name="up16")(c16)
    x = keras.layers.Concatenate(name="merge")([c8, up])
    x = _conv(x, 64, "neck")
    heat = _conv(x, 64, "heat")
    heat = keras.layers.Conv2D(
        num_classes,
        1,
        activation="sigmoid",
        bias_initializer=keras.initializers.Constant(_HEAT_BIAS),
        name="heatmap",
    )(heat)
    box = _conv(x, 64, "box")
    box = keras.layers.Conv2D(4, 1, activation="sigmoid", name="size_offset")(box)
    outputs = keras.layers.Concatenate(name="heads")([heat, box])
    return keras.Model(inputs, outputs, name=f"detector_{hp.architecture.value.replace('-', '_')}")


# --- targets and loss ------------------------------------------------------------------------


def encode_targets(boxes: Sequence[np.ndarray], spec: InputSpec, num_classes: int) -> np.ndarray:
    """Training targets ``(B, Gh, Gw, C+5)``: Gaussian class heatmaps (1 at each centre),
    then size (w, h), offset (dx, dy) and a centre mask."""
    rows, cols = grid_shape(spec)
    out = np.zeros((len(boxes), rows, cols, num_classes + 5), np.float32)
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float32)
    for i, items in enumerate(boxes):
        for cls, x0, y0, x1, y1 in items:
            w, h = x1 - x0, y1 - y0
            cx, cy = (x0 + x1) / 2 * cols, (y0 + y1) / 2 * rows
            ix, iy = min(int(cx), cols - 1), min(int(cy), rows - 1)
            sx, sy = max(w * cols / 6, 0.5), max(h * rows / 6, 0.5)
            gauss = np.exp(-((xs - ix) ** 2) / (2 * sx**2) - ((ys - iy) ** 2) / (2 * sy**2))
            c = int(cls)
            out[i, :, :, c] = np.maximum(out[i, :, :, c], gauss)
            out[i, iy, ix, c] = 1.0
            out[i, iy, ix, num_classes : num_classes + 5] = (w, h, cx - ix, cy - iy, 1.0)
    return out


def make_loss(num_classes: int) -> Any:
    """CenterNet loss on the heads: focal loss on the heatmap, L1 on size and offset."""
    c = num_classes

    def detection_loss(y_true: tf.Tensor, y_pred: tf.Tensor) -> tf.Tensor:
        heat_true = y_true[..., :c]
        p = tf.clip_by_value(y_pred[..., :c], 1e-4, 1 - 1e-4)
        pos = tf.cast(heat_true >= 1.0 - 1e-6, tf.float32)
        pos_loss = -tf.math.log(p) * tf.square(1 - p) * pos
        neg_weight = tf.pow(1 - heat_true, 4.0) * (1 - pos)
        neg_loss = -tf.math.log(1 - p) * tf.square(p) * neg_weight
        n_pos = tf.maximum(tf.reduce_sum(pos), 1.0)
        focal = (tf.reduce_sum(pos_loss) + tf.reduce_sum(neg_loss)) / n_pos
        mask = y_true[..., c + 4 : c + 5]
        size = tf.abs(y_pred[..., c : c + 2] - y_true[..., c : c + 2])
        offset = tf.abs(y_pred[..., c + 2 : c + 4] - y_true[..., c + 2 : c + 4])
        regression = tf.reduce_sum(mask * (_SIZE_WEIGHT * size + _OFFSET_WEIGHT * offset))
        return focal + regression / tf.maximum(tf.reduce_sum(mask), 1.0)

    return detection_loss


# --- augmentation ----------------------------------------------------------------------------


def augment_batch(
    images: np.ndarray, boxes: Sequence[np.ndarray], rng: np.random.Generator
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Flip, zoom in/out and colour jitter on uint8 ``(B, H, W, C)`` images; the boxes follow.

    Returns float32 pixels 0..255 and the moved boxes (those less than half inside dropped).
    """
    n, height, width = images.shape[:3]
    windows = np.zeros((n, 4), np.float32)  # y0, x0, y1, x1 of the crop, image-normalised
    out_boxes: list[np.ndarray] = []
    flips = np.asarray(rng.random(n) < 0.5, dtype=bool)
    for i in range(n):
        zoom = float(np.exp(rng.uniform(*np.log(_ZOOM_RANGE))))
        size = 1.0 / zoom  # window side, in image units (> 1: zoom out onto a canvas)
        lo, hi = (0.0, 1.0 - size) if size <= 1 else (1.0 - size, 0.0)
        y0, x0 = rng.uniform(lo, hi), rng.uniform(lo, hi)
        windows[i] = (y0, x0, y0 + size, x0 + size)
        b = boxes[i].copy()
        if flips[i] and len(b):
            b[:, 1], b[:, 3] = 1.0 - boxes[i][:, 3], 1.0 - boxes[i][:, 1]
        if len(b):
            area = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2])
            b[:, [1, 3]] = (b[:, [1, 3]] - x0) / size
            b[:, [2, 4]] = (b[:, [2, 4]] - y0) / size
            b[:, 1:] = np.clip(b[:, 1:], 0.0, 1.0)
            visible = (b[:, 3] - b[:, 1]) * (b[:, 4] - b[:, 2]) * size * size
            tiny = np.minimum((b[:, 3] - b[:, 1]) * width, (b[:, 4] - b[:, 2]) * height) < 2
            b = b[(visible >= _MIN_VISIBLE * area) & ~tiny]
        out_boxes.append(b)
    pixels = tf.cast(images, tf.float32)
    pixels = tf.where(tf.constant(flips)[:, None, None, None], pixels[:, :, ::-1, :], pixels)
    cropped = tf.image.crop_and_resize(
        pixels - _FILL, windows, np.arange(n, dtype=np.int32), (height, width)
    ).numpy()
    cropped += _FILL
    contrast = rng.uniform(0.75, 1.25, (n, 1, 1, 1)).astype(np.float32)
    brightness = rng.uniform(-25, 25, (n, 1, 1, 1)).astype(np.float32)
    mean = cropped.mean(axis=(1, 2, 3), keepdims=True)
    jittered = np.clip((cropped - mean) * contrast + mean + brightness, 0, 255)
    return jittered.astype(np.float32), out_boxes


class DetectionBatches(keras.utils.PyDataset):
    """Training batches: augmented, normalised images and their encoded targets; a new
    order and new augmentations every epoch (seeded)."""

    def __init__(
        self,
        images: np.ndarray,
        boxes: list[np.ndarray],
        spec: InputSpec,
        num_classes: int,
        batch_size: int,
        seed: int,
    ) -> None:
        super().__init__()
        self.images, self.boxes, self.spec = images, boxes, spec
        self.num_classes, self.batch_size = num_classes, batch_size
        self.rng = np.random.default_rng(seed)
        self.order = self.rng.permutation(len(images))
        self.scale, self.offset = spec.normalization.scale_offset()

    def __len__(self) -> int:
        return math.ceil(len(self.images) / self.batch_size)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        rows = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        pixels, boxes = augment_batch(self.images[rows], [self.boxes[r] for r in rows], self.rng)
        x = pixels * np.float32(self.scale) + np.float32(self.offset)
        return x, encode_targets(boxes, self.spec, self.num_classes)

    def on_epoch_end(self) -> None:
        self.order = self.rng.permutation(len(self.images))


# --- post-processing (inside the exported model) ---------------------------------------------


def postprocess(
    raw: tf.Tensor, num_classes: int, detection: DetectionSpec, grid: tuple[int, int]
) -> dict[str, tf.Tensor]:
    """Heads of ONE image ``(1, Gh, Gw, C+4)`` → the four outputs (see module docs)."""
    rows, cols = grid
    c, n = num_classes, detection.max_detections
    heat = raw[..., :c]
    size = raw[..., c : c + 2]
    offset = raw[..., c + 2 : c + 4]
    # Break ties before peak picking: an int8 file's heatmap comes in steps of 1/256, so two
    # neighbouring cells often hold the same value and both would count as peaks (duplicate
    # boxes). A ramp over the cells, below half a step in total, makes one of them win.
    ramp = np.arange(rows * cols, dtype=np.float32).reshape(1, rows, cols, 1)
    ranked = heat + tf.constant(ramp * (0.5 / 256 / (rows * cols)))
    peaks = tf.nn.max_pool2d(ranked, 3, 1, "SAME")
    heat = tf.where(tf.equal(ranked, peaks), heat, tf.zeros_like(heat))
    k = min(_CANDIDATES, rows * cols * c)
    scores, index = tf.math.top_k(tf.reshape(heat, [-1]), k)
    cls = index % c
    cell = index // c
    regress = tf.gather(tf.reshape(tf.concat([size, offset], -1), [rows * cols, 4]), cell)
    xc = (tf.cast(cell % cols, tf.float32) + regress[:, 2]) / cols
    yc = (tf.cast(cell // cols, tf.float32) + regress[:, 3]) / rows
    half_w, half_h = regress[:, 0] / 2, regress[:, 1] / 2
    boxes = tf.clip_by_value(
        tf.stack([yc - half_h, xc - half_w, yc + half_h, xc + half_w], -1), 0.0, 1.0
    )
    classes = tf.cast(cls, tf.float32)
    # Class-aware NMS in one call: boxes of different classes are moved 2 units apart.
    shifted = boxes + classes[:, None] * 2.0
    selected, valid = tf.image.non_max_suppression_padded(
        shifted,
        scores,
        n,
        iou_threshold=detection.iou_threshold,
        score_threshold=detection.score_threshold,
        pad_to_max_output_size=True,
    )
    keep = tf.range(n) < valid
    out_boxes = tf.where(keep[:, None], tf.gather(boxes, selected), 0.0)
    out_classes = tf.where(keep, tf.gather(classes, selected), 0.0)
    out_scores = tf.where(keep, tf.gather(scores, selected), 0.0)
    count = tf.reshape(tf.cast(valid, tf.float32), [1])
    return dict(
        zip(
            OUTPUT_NAMES,
            (out_boxes[None], out_classes[None], out_scores[None], count),
            strict=True,
        )
    )


def keras_detections(
    model: keras.Model, x: np.ndarray, num_classes: int, spec: InputSpec
) -> Detections:
    """The Keras model plus the same post-processing, image by image (the reference the
    exported files are compared with)."""
    detection = spec.task_spec
    assert isinstance(detection, DetectionSpec)
    grid = grid_shape(spec)
    raw = np.asarray(model.predict(x, batch_size=32, verbose=0))
    post = tf.function(lambda r: postprocess(r, num_classes, detection, grid))
    outs = [post(tf.constant(raw[i : i + 1])) for i in range(len(raw))]
    if not outs:
        n = detection.max_detections
        return Detections(np.zeros((0, n, 4)), np.zeros((0, n)), np.zeros((0, n)), np.zeros(0))
    stack = {k: np.concatenate([o[k].numpy() for o in outs]) for k in OUTPUT_NAMES}
    return Detections(
        stack["detection_boxes"],
        stack["detection_classes"],
        stack["detection_scores"],
        stack["num_detections"].reshape(-1),
    )


# --- export ----------------------------------------------------------------------------------


def write_detector_saved_model(
    model: keras.Model, num_classes: int, spec: InputSpec, directory: Path
) -> Path:
    """The batch-1 endpoint (network + post-processing) as a SavedModel."""
    detection = spec.task_spec
    assert isinstance(detection, DetectionSpec)
    grid = grid_shape(spec)
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        SIGNATURE_KEY,
        lambda x: postprocess(model(x, training=False), num_classes, detection, grid),
        input_signature=[
            tf.TensorSpec([1, spec.height, spec.width, spec.channels], tf.float32, name=INPUT_NAME)
        ],
    )
    archive.write_out(str(directory), verbose=False)
    return directory


def _order_outputs(tflite: bytes) -> bytes:
    """Put the outputs in the documented order and name the tensors after them (the
    converter orders a signature's outputs arbitrarily; apps index them by position)."""
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    signature = model.signatureDefs[0]
    subgraph = model.subgraphs[signature.subgraphIndex]
    by_name = {
        (o.name.decode() if isinstance(o.name, bytes) else o.name): o.tensorIndex
        for o in signature.outputs
    }
    subgraph.outputs = [by_name[name] for name in OUTPUT_NAMES]
    for name in OUTPUT_NAMES:
        subgraph.tensors[by_name[name]].name = name.encode()
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def export_detector(fmt: ModelFormat, saved_model_dir: Path, representative: np.ndarray) -> bytes:
    """One .tflite format of the detector, builtin ops only.

    ``int8``: the network runs in int8 with a ``uint8`` image input (as image classification's
    int8 files: with the zero-one spec the app feeds raw pixels); the post-processing and the
    four outputs stay float32 (class indices and counts must not be quantised).
    """
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model_dir))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if fmt is ModelFormat.FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif fmt is ModelFormat.DYNAMIC_INT8:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif fmt is ModelFormat.INT8:
        if len(representative) == 0:
            raise ValueError("int8 export needs representative images")
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: (
            [representative[i : i + 1].astype(np.float32)] for i in range(len(representative))
        )
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
            tf.lite.OpsSet.TFLITE_BUILTINS,
        ]
        converter.inference_input_type = tf.uint8
    elif fmt is not ModelFormat.FLOAT32:
        raise MobiletrainError(
            ErrorCode.INVALID_FORMAT, f"an object detector cannot be exported as {fmt.value}"
        )
    try:
        return _order_outputs(bytes(converter.convert()))
    except Exception as exc:  # converter errors are long MLIR dumps
        raise MobiletrainError(
            ErrorCode.INTERNAL, f"the detector could not be exported as {fmt.value}"
        ) from exc


def manifest_outputs(detection: DetectionSpec) -> list[TensorSpec]:
    """The four outputs as the manifest lists them, in tensor order."""
    n = detection.max_detections
    shapes: list[list[int | None]] = [[1, n, 4], [1, n], [1, n], [1]]
    layouts = ["NK4", "NK", "NK", "N"]
    descriptions = [
        "y_min, x_min, y_max, x_max normalised 0..1 to the input image (top-left origin); "
        "rows past num_detections are zero",
        "class index into the manifest labels (a float holding an integer)",
        "confidence 0..1, sorted high to low",
        "how many rows of the other outputs are detections",
    ]
    return [
        TensorSpec(
            name=name,
            dtype="float32",
            shape=shape,
            layout=layout,
            role=role,
            value_range=(0.0, 1.0) if role in ("boxes", "scores") else None,
            description=text,
        )
        for name, role, shape, layout, text in zip(
            OUTPUT_NAMES, OUTPUT_ROLES, shapes, layouts, descriptions, strict=True
        )
    ]
