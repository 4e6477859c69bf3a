"""Per-token request rates, stream slots and per-project quotas."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.events import EventHub
from mobiletrain.core.ratelimit import RateLimiter, StreamSlots
from mobiletrain.core.services import (
    DatasetService,
    IncomingSample,
    ProjectService,
    TrainingService,
)
from mobiletrain.core.types import SampleStatus
from mobiletrain.core.validation import Limits
from mobiletrain.store.blobs import LocalPackBlobStore
from mobiletrain.store.sql import SqlMetadataStore


def test_token_bucket_allows_a_burst_then_refills() -> None:
    limiter = RateLimiter(rate=20, burst=3)
    for _ in range(3):
        limiter.check("phone")
    with pytest.raises(MobiletrainError) as err:
        limiter.check("phone")
    assert err.value.code is ErrorCode.RATE_LIMITED
    assert err.value.details["retry_after_seconds"] > 0
    limiter.check("another-phone")  # keys are independent
    time.sleep(0.06)  # 20/s: one request back after 50 ms
    limiter.check("phone")


def test_stream_slots_are_released() -> None:
    slots = StreamSlots(limit=2)
    with slots.hold("t"), slots.hold("t"):
        with pytest.raises(MobiletrainError) as err:
            slots.check("t")
        assert err.value.code is ErrorCode.TOO_MANY_STREAMS
        with pytest.raises(MobiletrainError), slots.hold("t"):
            pass
        assert slots.open_streams("t") == 2
    assert slots.open_streams("t") == 0


class _NoExecutor:
    def notify_queued(self, job_id: str) -> None:
        pass

    def notify_cancel(self, job_id: str) -> None:
        pass


def test_project_quotas(tmp_path: Path, make_image: Callable[..., bytes]) -> None:
    store = SqlMetadataStore(f"sqlite:///{tmp_path}/m.db")
    limits = Limits(max_samples_per_project=5, max_active_jobs_per_project=1)
    projects = ProjectService(store, limits)
    datasets = DatasetService(store, LocalPackBlobStore(tmp_path / "b"), projects, limits)
    training = TrainingService(store, projects, _NoExecutor(), EventHub(store), limits)  # type: ignore[arg-type]
    projects.create("p")
    summary = datasets.upload(
        "p", [IncomingSample(f"s{i}", "ab"[i % 2], make_image(i)) for i in range(7)], batch_size=4
    )
    statuses = [r.status for r in summary.results]
    assert statuses.count(SampleStatus.ACCEPTED) == 5
    assert [r.error_code for r in summary.results[5:]] == [ErrorCode.QUOTA_EXCEEDED] * 2
    assert sum(datasets.class_counts("p").values()) == 5
    training.start("p")
    with pytest.raises(MobiletrainError) as err:
        training.start("p")
    assert err.value.code is ErrorCode.QUOTA_EXCEEDED

    bytes_limited = Limits(max_bytes_per_project=len(make_image(0)) * 2 + 10)
    small = DatasetService(store, LocalPackBlobStore(tmp_path / "c"), projects, bytes_limited)
    projects.create("q")
    result = small.upload("q", [IncomingSample(f"s{i}", "a", make_image(i)) for i in range(4)])
    assert result.count(SampleStatus.ACCEPTED) == 2
