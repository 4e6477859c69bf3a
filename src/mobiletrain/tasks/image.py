"""Image classification: JPEG/PNG/WebP samples, the input contract of ``InputSpec``."""

from __future__ import annotations

from typing import Any

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import InputSpec, ModelFormat, TaskType
from mobiletrain.core.validation import Limits, verify_image
from mobiletrain.tasks.base import SampleInfo


class ImageClassification:
    """The image-classification kind (see :class:`mobiletrain.tasks.base.TaskKind`)."""

    task = TaskType.IMAGE_CLASSIFICATION
    short_name = "image"
    sample_extensions: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp")
    client_resizes = True
    media_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")
    # Every format, the on-device training files included.
    export_formats: tuple[ModelFormat, ...] = tuple(ModelFormat)
    reserved_labels: frozenset[str] = frozenset()

    def default_spec(self) -> InputSpec:
        """96x96 RGB, zero-one."""
        return InputSpec()

    def check_spec(self, spec: InputSpec) -> InputSpec:
        """An image spec carries no ``task_spec``."""
        if spec.task_spec is not None:
            raise MobiletrainError(
                ErrorCode.WRONG_TASK_SPEC,
                f"an image-classification project takes no {spec.task.value} settings",
            )
        spec.validate()
        return spec

    def validate_sample(self, data: bytes, spec: InputSpec, limits: Limits) -> SampleInfo:
        """Magic bytes, pixel limit, full decode (see ``core.validation.verify_image``)."""
        info = verify_image(data, limits)
        return SampleInfo(media_type=info.media_type, width=info.width, height=info.height)

    def decode_examples(self, data: bytes, spec: InputSpec) -> np.ndarray:
        """One uint8 ``(1, H, W, C)`` image, decoded as apps do (see ``compute.preprocess``)."""
        # Imported here: the SDK asks this kind for its extensions and must not load compute.
        from mobiletrain.compute.preprocess import decode_image

        return decode_image(data, spec)[np.newaxis]

    def model_input(self, examples: np.ndarray, spec: InputSpec) -> np.ndarray:
        """``pixel * scale + offset`` per the spec's normalisation."""
        from mobiletrain.compute.preprocess import normalize

        return normalize(examples, spec)

    def manifest_input(self, spec: InputSpec) -> dict[str, Any]:
        """The image contract as today's manifests carry it (float32 NHWC)."""
        return spec.to_dict()


KIND = ImageClassification()
