"""The warm worker (issue 18): a job goes to the process that waited with TensorFlow imported.

A real server with ``warm_worker=True``: the job's worker is the warm process that was waiting
(same pid), data loading reports PROGRESS events before training's, the job succeeds, a new
warm worker is started once the slot is free, and stopping the server ends the waiting one.
"""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psutil
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.compute.executor import LocalExecutor
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.slow


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RunningServer, Client]]:
    running = start_server(
        Settings(data_dir=tmp_path / "data", grpc_port=0, http_port=0, warm_worker=True)
    )
    token = (tmp_path / "data" / "admin-token").read_text().strip()
    client = Client(f"127.0.0.1:{running.grpc_port}", token=token)
    try:
        yield running, client
    finally:
        client.close()
        running.stop()


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _warm_pid(executor: LocalExecutor, timeout: float = 60.0) -> int:
    deadline = time.monotonic() + timeout
    while (pid := executor.local.warm_pid()) is None:
        assert time.monotonic() < deadline, "no warm worker started"
        time.sleep(0.05)
    return pid


def test_a_job_runs_in_the_waiting_warm_worker(server: tuple[RunningServer, Client]) -> None:
    running, client = server
    executor = running.container.executor
    assert isinstance(executor, LocalExecutor)
    warm = _warm_pid(executor)
    digits = load_digits()
    x = np.clip(digits.images * 16, 0, 255).astype(np.uint8)  # 8x8, 0..16 -> 0..255
    y = digits.target
    client.create_project("warm", width=8, height=8, color_mode="grayscale")
    samples = [
        LocalSample(f"d{i}", str(int(v)), _png(img))
        for i, (img, v) in enumerate(zip(x[:300], y[:300], strict=True))
    ]
    assert client.upload("warm", samples).accepted == 300
    job = client.start_job("warm", epochs=1, batch_size=32, formats=["float32"])
    deadline = time.monotonic() + 60
    while executor.worker_pid(job.id) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert executor.worker_pid(job.id) == warm  # no new interpreter, no TensorFlow import

    events = list(client.watch_job(job.id))
    assert events[-1].WhichOneof("payload") == "state_changed"
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    assert events[-1].state_changed.state == training_pb2.JOB_STATE_SUCCEEDED
    progress = [e.progress for e in events if e.WhichOneof("payload") == "progress"]
    loading = [p for p in progress if p.phase == training_pb2.JOB_PHASE_PREPARING_DATA]
    assert loading and loading[-1].batch == loading[-1].batches > 0  # every sample read
    first_training = next(i for i, p in enumerate(progress) if p.epoch > 0)
    assert all(p.epoch == 0 for p in progress[:first_training])

    replacement = _warm_pid(executor)  # the slot is free again: a new one waits
    assert replacement != warm
    executor.stop()  # what the server's shutdown does (stop is idempotent for the fixture)
    assert not psutil.pid_exists(replacement) or psutil.Process(replacement).status() in (
        psutil.STATUS_ZOMBIE,
        psutil.STATUS_DEAD,
    )
