"""The task kinds: TaskType ↔ module, and the dispatch helpers the other layers call.

Adding a kind: one module in this package exposing ``KIND`` (see :mod:`.base`), one line
in :data:`_MODULES`, its TaskType value, and its TensorFlow half in
``mobiletrain.compute.keras.tasks``. Modules are imported on first use, so the API process
only loads the kinds its projects use.
"""

from __future__ import annotations

import importlib
from functools import cache

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import InputSpec, TaskType
from mobiletrain.core.validation import Limits
from mobiletrain.tasks.base import SampleInfo, TaskKind

_MODULES: dict[TaskType, str] = {
    TaskType.IMAGE_CLASSIFICATION: "mobiletrain.tasks.image",
    TaskType.AUDIO_CLASSIFICATION: "mobiletrain.tasks.audio",
    TaskType.SENSOR_CLASSIFICATION: "mobiletrain.tasks.sensor",
    TaskType.OBJECT_DETECTION: "mobiletrain.tasks.detection",
}


def task_types() -> list[TaskType]:
    """Every task type a project may have, in a stable order."""
    return list(_MODULES)


@cache
def kind(task: TaskType) -> TaskKind:
    """The kind implementing ``task`` (UNSUPPORTED_TASK when there is none)."""
    module = _MODULES.get(task)
    if module is None:
        allowed = ", ".join(t.value for t in _MODULES)
        raise MobiletrainError(
            ErrorCode.UNSUPPORTED_TASK, f"unsupported task {task.value!r}; allowed: {allowed}"
        )
    found: TaskKind = importlib.import_module(module).KIND
    return found


def _short_name(task: TaskType) -> str:
    """The short name: "sensor" for "sensor-classification", "detection" for "object-detection"."""
    return task.value.removesuffix("-classification").removeprefix("object-")


def parse_task(name: str) -> TaskType:
    """A task name as the wire and the CLI spell it ("sensor-classification",
    "object-detection"), or its short name ("sensor", "detection"); UNSUPPORTED_TASK
    otherwise."""
    for task in _MODULES:
        if name in (task.value, _short_name(task)):
            return task
    allowed = ", ".join(t.value for t in _MODULES)
    raise MobiletrainError(
        ErrorCode.UNSUPPORTED_TASK, f"unsupported task {name!r}; allowed: {allowed}"
    )


def spec_for(task: TaskType, spec: InputSpec | None) -> InputSpec:
    """The validated input contract of a new project of ``task`` (its default when None)."""
    k = kind(task)
    return k.check_spec(spec if spec is not None else k.default_spec())


def validate_sample(spec: InputSpec, data: bytes, limits: Limits) -> SampleInfo:
    """Validate one uploaded sample against a project's contract, by its task kind."""
    return kind(spec.task).validate_sample(data, spec, limits)


def sample_extensions(task: TaskType | str) -> frozenset[str]:
    """File name extensions (lower case, with the dot) ``mobiletrain upload`` picks up for
    ``task`` (a TaskType or its wire/CLI name); UNSUPPORTED_TASK for an unknown name."""
    return frozenset(kind(_task(task)).sample_extensions)


def client_resizes(task: TaskType | str) -> bool:
    """Whether the client may shrink samples before upload (images: to the input size)."""
    return kind(_task(task)).client_resizes


def _task(task: TaskType | str) -> TaskType:
    return task if isinstance(task, TaskType) else parse_task(task)
