"""Streamed training (issue 18): samples read from a real blob store and decoded per batch
inside tf.data give the same split as the in-memory path and a model as good; a sample that
fails mid-training fails the job with its own code; the disk cache lives only while training."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mobiletrain.compute import streaming
from mobiletrain.compute.protocol import TrainingRequest
from mobiletrain.compute.sample_bytes import BlobSampleBytes
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import (
    ColorMode,
    EventKind,
    Hyperparameters,
    InputSpec,
    ModelFormat,
    Normalization,
    SensorSpec,
    TaskType,
)
from mobiletrain.store.blobs import open_blob_store

SPEC = InputSpec(
    width=16, height=16, color_mode=ColorMode.GRAYSCALE, normalization=Normalization.ZERO_ONE
)
Digits = tuple[list[bytes], list[int]]


class Reporter:
    def __init__(self, on_epoch: Any = None) -> None:
        self.events: list[tuple[EventKind, dict[str, Any]]] = []
        self.on_epoch = on_epoch

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        self.events.append((kind, data))
        if kind is EventKind.EPOCH and self.on_epoch is not None:
            self.on_epoch()

    def should_stop(self) -> bool:
        return False


def _request(images: Any, labels: list[int], work_dir: Path, **extra: Any) -> TrainingRequest:
    hp = Hyperparameters(
        epochs=8, batch_size=32, seed=7, learning_rate=3e-3, formats=[ModelFormat.FLOAT32]
    )
    return TrainingRequest(
        images=images,
        labels=labels,
        sample_ids=[f"s{i}" for i in range(len(labels))],
        label_names=[str(d) for d in range(10)],
        input_spec=SPEC,
        hyperparameters=hp,
        work_dir=work_dir,
        **extra,
    )


def _streamed(images: list[bytes], tmp_path: Path) -> BlobSampleBytes:
    blobs = open_blob_store(str(tmp_path / "blobs"))
    keys = [blobs.put(data) for data in images]
    return BlobSampleBytes(blobs, keys, [f"s{i}" for i in range(len(images))])


def test_plan_streams_large_image_jobs_only() -> None:
    big = InputSpec(224, 224)
    assert not streaming.plan(big, 1_000, {}).stream  # 147 MB decoded: in memory
    assert streaming.plan(big, 10_000, {}) == streaming.StreamPlan(stream=True)
    env = {"MOBILETRAIN_TRAIN_STREAMING": "always", "MOBILETRAIN_TRAIN_CACHE": "disk"}
    assert streaming.plan(big, 10, env) == streaming.StreamPlan(stream=True, disk_cache=True)
    assert not streaming.plan(big, 10**6, {"MOBILETRAIN_TRAIN_STREAMING": "never"}).stream
    sensor = InputSpec(task_spec=SensorSpec())
    assert sensor.task is TaskType.SENSOR_CLASSIFICATION
    assert not streaming.plan(sensor, 10**6, {"MOBILETRAIN_TRAIN_STREAMING": "always"}).stream
    with pytest.raises(MobiletrainError) as err:
        streaming.plan(big, 10, {"MOBILETRAIN_TRAIN_STREAMING": "sometimes"})
    assert err.value.code is ErrorCode.INVALID_ARGUMENT


@pytest.mark.slow
def test_streamed_matches_in_memory(digits_png: Digits, tmp_path: Path) -> None:
    from mobiletrain.compute.keras.streamed import DATA_CACHE_DIR
    from mobiletrain.compute.keras.train import train_and_export

    images, labels = digits_png[0][:600], digits_png[1][:600]
    memory = train_and_export(_request(images, labels, tmp_path / "m"), Reporter())
    lazy = _streamed(images, tmp_path)
    plain = train_and_export(_request(lazy, labels, tmp_path / "s"), Reporter())
    cache = tmp_path / "c" / DATA_CACHE_DIR
    seen: list[list[str]] = []
    reporter = Reporter(on_epoch=lambda: seen.append(sorted(p.name for p in cache.iterdir())))
    cached = train_and_export(_request(lazy, labels, tmp_path / "c", data_cache=True), reporter)
    for out in (plain, cached):
        assert out.split == memory.split  # the same seeded split, from the labels alone
        assert out.metrics["num_train"] == memory.metrics["num_train"]
        assert out.metrics["accuracy"] >= memory.metrics["accuracy"] - 0.1
        assert out.metrics["accuracy"] > 0.5, (out.metrics["accuracy"], memory.metrics["accuracy"])
        assert out.metrics["tflite"]["float32"]["agreement_with_keras"] > 0.95
    # The cache files were there while training (train and validation), gone after it.
    assert seen and any(name.startswith("train") for name in seen[-1])
    assert any(name.startswith("val") for name in seen[-1])
    assert not cache.exists()


@pytest.mark.slow
def test_a_sample_that_breaks_mid_training_fails_the_job_naming_it(
    digits_png: Digits, tmp_path: Path
) -> None:
    from mobiletrain.compute.keras.train import train_and_export

    images, labels = list(digits_png[0][:200]), digits_png[1][:200]
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, format="PNG")
    images[123] = buffer.getvalue()[:40]  # a truncated PNG
    with pytest.raises(MobiletrainError) as err:
        train_and_export(_request(_streamed(images, tmp_path), labels, tmp_path / "j"), Reporter())
    assert err.value.code is ErrorCode.CORRUPT_IMAGE and err.value.details["sample_id"] == "s123"

    lazy = _streamed(list(digits_png[0][:200]), tmp_path / "b")
    lazy._sha256s[57] = "0" * 64  # its bytes vanished after the worker checked them
    with pytest.raises(MobiletrainError) as err:
        train_and_export(_request(lazy, labels, tmp_path / "k"), Reporter())
    assert err.value.code is ErrorCode.SAMPLE_DAMAGED and err.value.details["sample_id"] == "s57"


def test_a_streamed_job_checks_every_sample_but_keeps_no_bytes(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from mobiletrain.compute import worker
    from mobiletrain.core.types import Project, Sample

    blobs = open_blob_store(str(tmp_path / "blobs"))
    project = Project(
        "p", "p", TaskType.IMAGE_CLASSIFICATION, ["a", "b"], True, SPEC, datetime.now(UTC)
    )
    samples = [
        Sample(
            f"s{i}",
            "p",
            f"c{i}",
            "ab"[i % 2],
            blobs.put(f"bytes {i}".encode()) if i != 300 else "ef" * 32,
            7,
            "image/png",
            16,
            16,
            datetime.now(UTC),
        )
        for i in range(worker.LOAD_CHUNK + 100)
    ]
    kept, images = worker._load_bytes(blobs, project, samples, 1, None, keep=False)
    assert images == [] and len(kept) == len(samples) - 1
    assert "c300" not in {s.client_id for s in kept}
