"""What every task kind provides to the TensorFlow-free layers (the API process included).

A task kind is one module in this package exposing ``KIND``, an object satisfying
:class:`TaskKind`. Core, stores, transports and the dashboard dispatch on
``project.task`` through :mod:`mobiletrain.tasks.registry` and learn nothing about a kind's
data: the kind owns what a valid sample is (codec and validation, with stable error codes),
its part of the input contract (:class:`~mobiletrain.core.types.InputSpec`'s ``task_spec``),
the sample file extensions the CLI uploads, the export formats it supports and how the
manifest describes the model's input and output.

The TensorFlow part of a kind (model builder, preprocessing inside the model, decoding to
arrays, augmentation) lives in ``mobiletrain.compute.keras.tasks.<kind>``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from mobiletrain.core.types import InputSpec, ModelFormat, TaskType
from mobiletrain.core.validation import Limits


@dataclass(frozen=True)
class SampleInfo:
    """What validating one sample told us; stored with the sample.

    ``width``/``height`` are the sample's two sizes in the kind's own terms: pixels for
    images; time steps and channels for audio (frames, channels) and sensors (readings,
    channels).
    """

    media_type: str
    width: int
    height: int


class TaskKind(Protocol):
    """One task kind, TensorFlow free. Implementations are stateless singletons."""

    task: TaskType
    """The task type this kind implements."""
    short_name: str
    """Short name used by ``mobiletrain demo --task`` ("image", "audio", "sensor")."""
    sample_extensions: tuple[str, ...]
    """File name extensions ``mobiletrain upload`` picks up (lower case, with the dot)."""
    client_resizes: bool
    """Whether a client may shrink samples before upload (images to the input size)."""
    media_types: tuple[str, ...]
    """Media types a stored sample of this kind may have (served by the sample data endpoint)."""
    export_formats: tuple[ModelFormat, ...]
    """The model formats a training job of this kind can produce (KERAS always among them)."""
    reserved_labels: frozenset[str]
    """Labels a project may hold that are not classes the model predicts (audio:
    ``_background_noise_``, clips mixed in as augmentation); the release gate and the
    dashboard treat their samples apart."""

    def default_spec(self) -> InputSpec:
        """The input contract of a project created without one."""
        ...

    def check_spec(self, spec: InputSpec) -> InputSpec:
        """Validate ``spec`` for this kind (INVALID_INPUT_SPEC / WRONG_TASK_SPEC) and return
        it, with the kind's default ``task_spec`` filled in when it has none."""
        ...

    def validate_sample(self, data: bytes, spec: InputSpec, limits: Limits) -> SampleInfo:
        """Check one uploaded sample in full against the project's contract.

        Raises ``MobiletrainError`` with a stable code (EMPTY_SAMPLE, SAMPLE_TOO_LARGE and the
        kind's own codes); returns what is stored with the sample.
        """
        ...

    def decode_examples(self, data: bytes, spec: InputSpec) -> np.ndarray:
        """A stored sample → its model examples ``(k, *example_shape)`` in the kind's storage
        dtype (uint8 pixels; float32 windows or clips). One sample may give several examples
        (windows, split clips). The trainer, the release gate and server-side prediction
        all decode through here, so they see exactly what training saw."""
        ...

    def model_input(self, examples: np.ndarray, spec: InputSpec) -> np.ndarray:
        """Stored examples → the float32 tensor the exported model takes (what the app
        computes before inference: pixel normalisation for images, nothing for raw-fed
        kinds)."""
        ...

    def manifest_input(self, spec: InputSpec) -> dict[str, Any]:
        """The manifest's ``input`` section: everything an app needs to feed the model
        (rates, lengths, channel order, dtype, layout); the trainer adds learned values such
        as normalisation statistics."""
        ...


def check_size(data: bytes, limits: Limits) -> None:
    """EMPTY_SAMPLE / SAMPLE_TOO_LARGE, the same for every kind."""
    from mobiletrain.core.errors import ErrorCode, MobiletrainError

    if not data:
        raise MobiletrainError(ErrorCode.EMPTY_SAMPLE, "sample has no bytes")
    if len(data) > limits.max_sample_bytes:
        raise MobiletrainError(
            ErrorCode.SAMPLE_TOO_LARGE,
            f"sample is {len(data)} bytes; the limit is {limits.max_sample_bytes}",
        )
