"""Object detection: images with boxes, the input contract of ``InputSpec`` + DetectionSpec.

A detection sample is an image (JPEG/PNG/WebP, validated exactly as for image
classification) plus zero or more boxes (``Sample.boxes``, validated by
``core.annotations``). The sample's ``label`` is derived by the server from its boxes (the most
frequent box label, or :data:`NO_BOXES_LABEL` for an image without boxes), so stratified
splits and label counts keep working; that reserved label is never a class the model detects.

The exported model takes the image as image classification does (float32 NHWC normalised per
the spec; int8: uint8 pixels) and returns, in this order, ``detection_boxes`` ``[1, N, 4]``
(y_min, x_min, y_max, x_max, normalised 0..1), ``detection_classes`` ``[1, N]`` (class index
into the manifest labels, as float32), ``detection_scores`` ``[1, N]`` and ``num_detections``
``[1]`` (float32), ``N = max_detections`` — the SSD post-process convention of the
tflite_flutter examples. Decoding and non-maximum suppression run inside the model.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    CLASSIFIER_FORMATS,
    DetectionSpec,
    InputSpec,
    ModelFormat,
    TaskType,
)
from mobiletrain.core.validation import Limits, verify_image
from mobiletrain.tasks.base import SampleInfo

NO_BOXES_LABEL = "_no_boxes_"
"""The label of a detection image without boxes (a background image); never a class."""

OUTPUT_NAMES: tuple[str, ...] = (
    "detection_boxes",
    "detection_classes",
    "detection_scores",
    "num_detections",
)
"""The exported model's outputs, in tensor order (the SSD / tflite_flutter convention)."""
OUTPUT_ROLES: tuple[str, ...] = ("boxes", "classes", "scores", "count")
"""The manifest role of each output, in the same order."""

DEFAULT_SIDE = 160
"""Default input size: a 20x20 grid of 8-pixel cells, small enough to train on a CPU."""


# EXIF orientations 5..8 rotate by 90 degrees: width and height swap.
_TRANSPOSING_ORIENTATIONS = frozenset({5, 6, 7, 8})
_EXIF_ORIENTATION_TAG = 0x0112


def _exif_orientation(data: bytes) -> int:
    """The EXIF orientation tag of an image already verified (1 when absent)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            return int(img.getexif().get(_EXIF_ORIENTATION_TAG, 1))
    except (OSError, ValueError, TypeError):
        return 1


def detection_spec(spec: InputSpec) -> DetectionSpec:
    """The project's :class:`DetectionSpec` (WRONG_TASK_SPEC when it is not a detection one)."""
    if not isinstance(spec.task_spec, DetectionSpec):
        raise MobiletrainError(ErrorCode.WRONG_TASK_SPEC, "the project has no detection settings")
    return spec.task_spec


class ObjectDetection:
    """The object-detection kind (see :class:`mobiletrain.tasks.base.TaskKind`)."""

    task = TaskType.OBJECT_DETECTION
    short_name = "detection"
    sample_extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
    # Boxes are normalised to the image, so shrinking before upload keeps them right.
    client_resizes = True
    media_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")
    # The whole-model formats; the on-device training files assume a classifier head.
    export_formats: tuple[ModelFormat, ...] = CLASSIFIER_FORMATS
    reserved_labels: frozenset[str] = frozenset({NO_BOXES_LABEL})

    def default_spec(self) -> InputSpec:
        """160x160 RGB, zero-one, up to 10 detections above 0.25, NMS at IoU 0.5."""
        return InputSpec(width=DEFAULT_SIDE, height=DEFAULT_SIDE, task_spec=DetectionSpec())

    def check_spec(self, spec: InputSpec) -> InputSpec:
        """The spec must carry a :class:`DetectionSpec` (the defaults when it has none); the
        side must be a multiple of 8 (the detector's grid cell) and at least 32."""
        if spec.task_spec is None:
            spec = InputSpec(
                width=spec.width,
                height=spec.height,
                color_mode=spec.color_mode,
                normalization=spec.normalization,
                task_spec=DetectionSpec(),
            )
        if not isinstance(spec.task_spec, DetectionSpec):
            raise MobiletrainError(
                ErrorCode.WRONG_TASK_SPEC,
                f"an object-detection project takes detection settings, not {spec.task.value}",
            )
        spec.validate()
        for name, value in (("width", spec.width), ("height", spec.height)):
            if value < 32 or value % 8:
                raise MobiletrainError(
                    ErrorCode.INVALID_INPUT_SPEC,
                    f"a detector's {name} must be a multiple of 8 and at least 32, got {value}",
                )
        return spec

    def validate_sample(self, data: bytes, spec: InputSpec, limits: Limits) -> SampleInfo:
        """The image, as for classification; boxes are checked by ``core.annotations``
        against the returned size, which is the size after the EXIF orientation (boxes are
        relative to the image as ``decode_image`` turns it upright)."""
        info = verify_image(data, limits)
        width, height = info.width, info.height
        if _exif_orientation(data) in _TRANSPOSING_ORIENTATIONS:
            width, height = height, width
        return SampleInfo(media_type=info.media_type, width=width, height=height)

    def decode_examples(self, data: bytes, spec: InputSpec) -> np.ndarray:
        """One uint8 ``(1, H, W, C)`` image resized to the input (boxes are normalised, so
        they stay right through the resize)."""
        from mobiletrain.compute.preprocess import decode_image

        return decode_image(data, spec)[np.newaxis]

    def model_input(self, examples: np.ndarray, spec: InputSpec) -> np.ndarray:
        """``pixel * scale + offset`` per the spec's normalisation (as for images)."""
        from mobiletrain.compute.preprocess import normalize

        return normalize(examples, spec)

    def manifest_input(self, spec: InputSpec) -> dict[str, Any]:
        """The image contract (float32 NHWC) plus the detection settings."""
        return spec.to_dict()


KIND = ObjectDetection()
