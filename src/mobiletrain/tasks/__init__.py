"""Task kinds (image, audio, sensor classification; object detection), TensorFlow free; see
:mod:`.base`."""

from mobiletrain.tasks.base import SampleInfo, TaskKind
from mobiletrain.tasks.registry import (
    client_resizes,
    kind,
    parse_task,
    sample_extensions,
    spec_for,
    task_types,
    validate_sample,
)

__all__ = [
    "SampleInfo",
    "TaskKind",
    "client_resizes",
    "kind",
    "parse_task",
    "sample_extensions",
    "spec_for",
    "task_types",
    "validate_sample",
]
