"""The worker reads a job's samples in chunks and reports PROGRESS while it goes (issue 18).

Real local blob store; samples whose bytes are missing are skipped with the same warning and
NOT_ENOUGH_DATA rule as an unchunked read (compute/sample_bytes.check_skipped).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest

from mobiletrain.compute import worker
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import EventKind, InputSpec, Project, Sample, TaskType
from mobiletrain.store.blobs import open_blob_store


class Events:
    """What the worker's reporter would append to the store."""

    def __init__(self) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self.events.append((kind, data))

    def of(self, kind: EventKind) -> list[dict[str, Any]]:
        return [d for k, d in self.events if k is kind]


def _project() -> Project:
    return Project(
        id=str(uuid.uuid4()),
        name="p",
        task=TaskType.IMAGE_CLASSIFICATION,
        labels=["a", "b"],
        labels_fixed=True,
        input_spec=InputSpec(8, 8),
        created_at=datetime.now(UTC),
    )


def _samples(project: Project, blobs: Any, n: int, missing: set[int]) -> list[Sample]:
    out = []
    for i in range(n):
        data = f"sample {i}".encode()
        sha = blobs.put(data) if i not in missing else uuid.uuid4().hex * 2
        out.append(
            Sample(
                id=str(uuid.uuid4()),
                project_id=project.id,
                client_id=f"c{i}",
                label="ab"[i % 2],
                sha256=sha,
                size=len(data),
                media_type="image/png",
                width=8,
                height=8,
                created_at=datetime.now(UTC),
            )
        )
    return out


def test_chunked_read_reports_progress_and_skips_missing_bytes(tmp_path: Path) -> None:
    blobs = open_blob_store(str(tmp_path / "blobs"))
    project = _project()
    n = worker.LOAD_CHUNK * 2 + 10
    samples = _samples(project, blobs, n, missing={3, 300})
    events = Events()
    reporter = cast(worker.StoreReporter, events)
    kept, images = worker._load_bytes(blobs, project, samples, 5, reporter)
    assert len(kept) == len(images) == n - 2
    assert images[0] == b"sample 0" and {s.client_id for s in kept}.isdisjoint({"c3", "c300"})
    progress = events.of(EventKind.PROGRESS)
    assert progress and progress[-1]["batch"] == progress[-1]["batches"] == n
    assert all(p["phase"] == "preparing data" and p["epoch"] == 0 for p in progress)
    (warning,) = [d for d in events.of(EventKind.LOG) if d.get("level") == "warning"]
    assert "b/c3" in str(warning["message"]) and "a/c300" in str(warning["message"])
    blobs.close()


def test_chunked_read_fails_when_too_few_are_left(tmp_path: Path) -> None:
    blobs = open_blob_store(str(tmp_path / "blobs"))
    project = _project()
    n = worker.LOAD_CHUNK + 20
    # Every "b" sample but one is lost: one label left with enough samples.
    samples = _samples(project, blobs, n, missing={i for i in range(1, n, 2)} - {1})
    with pytest.raises(MobiletrainError) as err:
        worker._load_bytes(blobs, project, samples, 5, cast(worker.StoreReporter, Events()))
    assert err.value.code is ErrorCode.NOT_ENOUGH_DATA
    blobs.close()
