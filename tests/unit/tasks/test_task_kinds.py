"""Every registered task kind satisfies the TaskKind contract (attributes and behaviour)."""

from __future__ import annotations

import pytest

from mobiletrain.core.types import ModelFormat, TaskType
from mobiletrain.tasks import client_resizes, kind, parse_task, sample_extensions, task_types


@pytest.mark.parametrize("task", task_types(), ids=[t.value for t in task_types()])
def test_kind_conforms(task: TaskType) -> None:
    k = kind(task)
    assert k.task is task
    assert parse_task(task.value) is task and parse_task(k.short_name) is task
    assert k.sample_extensions and all(
        e.startswith(".") and e == e.lower() for e in k.sample_extensions
    )
    assert sample_extensions(task.value) == frozenset(k.sample_extensions)
    assert isinstance(client_resizes(task), bool)
    assert k.media_types and ModelFormat.KERAS in k.export_formats
    assert isinstance(k.reserved_labels, frozenset)
    spec = k.default_spec()
    assert spec.task is task
    assert k.check_spec(spec) == spec
    manifest_input = k.manifest_input(spec)
    assert isinstance(manifest_input, dict) and manifest_input
    assert callable(k.decode_examples) and callable(k.validate_sample)


def test_kinds_are_distinct() -> None:
    kinds = [kind(t) for t in task_types()]
    assert len({k.short_name for k in kinds}) == len(kinds)
    # Kinds may share file extensions only with the same media (object detection takes the
    # images image classification takes; the upload command is told the task).
    media: dict[str, tuple[str, ...]] = {}
    for k in kinds:
        for e in k.sample_extensions:
            assert media.setdefault(e, k.media_types) == k.media_types, e
