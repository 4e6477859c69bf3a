"""The TensorFlow half of each task kind (see :mod:`.base`), looked up by task type."""

from __future__ import annotations

import importlib
from functools import cache

from mobiletrain.compute.keras.tasks.base import KerasTask, KerasTaskBase, TaskData
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import TaskType

_MODULES: dict[TaskType, str] = {
    TaskType.IMAGE_CLASSIFICATION: "mobiletrain.compute.keras.tasks.image",
    TaskType.AUDIO_CLASSIFICATION: "mobiletrain.compute.keras.tasks.audio",
    TaskType.SENSOR_CLASSIFICATION: "mobiletrain.compute.keras.tasks.sensor",
}


@cache
def keras_task(task: TaskType) -> KerasTask:
    """The trainer hooks of ``task`` (each module exposes ``TASK``)."""
    module = _MODULES.get(task)
    if module is None:
        raise MobiletrainError(ErrorCode.UNSUPPORTED_TASK, f"no trainer for {task.value!r}")
    found: KerasTask = importlib.import_module(module).TASK
    return found


__all__ = ["KerasTask", "KerasTaskBase", "TaskData", "keras_task"]
