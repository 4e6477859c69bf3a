"""The Ray executor on a local Ray cluster that the tests start (``ray start --head``).

* a 2-worker job trains data-parallel (MultiWorkerMirroredStrategy across two Ray actors) and
  publishes a model; its events reach the watcher like any job's;
* a job whose worker is lost (its process killed, as when a node dies) is retried and succeeds;
* a cancelled job ends CANCELLED and its actors are gone.

The server runs in this process with SQLite and the local blob store (Ray workers are on the
same machine); the PostgreSQL + S3 set-up is covered by the two-replica test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mobiletrain.cli.demo import digits_split, png_bytes
from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

ray = pytest.importorskip("ray", reason="the Ray executor tests need ray (requirements.lock)")

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """A one-node Ray cluster with 2 logical CPUs, stopped (process group) at the end."""
    port = _free_port()
    # Ray's socket paths must stay short: a temp dir of its own, not pytest's deep tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="mtray")
    ray_cli = Path(sys.executable).with_name("ray")
    proc = subprocess.Popen(
        [
            str(ray_cli),
            "start",
            "--head",
            "--block",
            f"--port={port}",
            "--node-ip-address=127.0.0.1",
            "--num-cpus=2",
            "--num-gpus=0",
            f"--object-store-memory={200 * 1024 * 1024}",
            f"--temp-dir={temp_dir}",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "2"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, "ray start exited"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "Ray head did not come up"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=5)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        shutil.rmtree(temp_dir, ignore_errors=True)


@pytest.fixture
def server(tmp_path: Path, ray_address: str) -> Iterator[tuple[RunningServer, Client]]:
    running = start_server(
        Settings(
            data_dir=tmp_path / "data",
            grpc_port=0,
            http_port=0,
            executor="ray",
            ray_address=ray_address,
            ray_cpus_per_worker=1,
            ray_work_dir=tmp_path / "ray-jobs",
            max_job_attempts=2,
            job_lease_seconds=10,
        )
    )
    running.container.executor.cancel_grace_seconds = 5  # type: ignore[attr-defined]
    token = (tmp_path / "data" / "admin-token").read_text().strip()
    client = Client(f"127.0.0.1:{running.grpc_port}", token=token)
    try:
        yield running, client
    finally:
        client.close()
        running.stop()


def _project(client: Client, name: str, n: int = 160) -> None:
    x, y, _, _ = digits_split()
    client.create_project(name, width=16, height=16, color_mode="grayscale")
    samples = [LocalSample(f"d{i}", str(int(y[i])), png_bytes(x[i])) for i in range(n)]
    assert client.upload(name, samples).accepted == n


def _payload(ev: Any) -> str:
    return str(ev.WhichOneof("payload"))


def _state(ev: Any) -> str:
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    return training_pb2.JobState.Name(ev.state_changed.state).removeprefix("JOB_STATE_").lower()


def test_two_worker_job_trains_data_parallel(server: tuple[RunningServer, Client]) -> None:
    _, client = server
    _project(client, "parallel")
    job = client.start_job("parallel", epochs=4, batch_size=16, workers=2, formats=["float32"])
    assert job.hyperparameters.workers == 2
    events = list(client.watch_job(job.id))
    states = [_state(ev) for ev in events if _payload(ev) == "state_changed"]
    assert states[-1] == "succeeded", [ev for ev in events if _payload(ev) == "state_changed"]
    logs = [ev.log.message for ev in events if _payload(ev) == "log"]
    assert "data-parallel training on 2 workers" in logs
    # Only the chief reports: one EPOCH event per epoch, not one per worker.
    epochs = [ev.epoch_end for ev in events if _payload(ev) == "epoch_end"]
    assert [e.epoch for e in epochs] == [1, 2, 3, 4]
    # Gradients averaged over both workers still train the model: the loss goes down.
    assert epochs[-1].loss < epochs[0].loss
    final = client.get_job(job.id)
    assert final.model_version == 1 and final.attempts == 1
    manifest = client.manifest("parallel")
    # Every sample either trained, validated or sits in the fixed evaluation set (never trains).
    held_out = manifest["evaluation"]["eval_set"]["num_samples"]
    assert held_out > 0
    trained = manifest["metrics"]["num_train"] + manifest["metrics"]["num_validation"]
    assert trained + held_out == 160
    assert manifest["hyperparameters"]["workers"] == 2


def test_lost_worker_is_retried(server: tuple[RunningServer, Client]) -> None:
    running, client = server
    _project(client, "lost")
    job = client.start_job("lost", epochs=30, batch_size=16, formats=["float32"])
    killed = False
    for ev in client.watch_job(job.id):
        if not killed and _payload(ev) == "epoch_end":
            pids = running.container.executor.worker_pids(job.id)  # type: ignore[attr-defined]
            os.kill(pids[0], signal.SIGKILL)  # as when its node dies
            killed = True
    final = client.get_job(job.id)
    assert killed
    assert final.attempts == 2 and final.model_version == 1, final.error
    history = list(client.watch_job(job.id))
    retry = [
        ev.state_changed.error
        for ev in history
        if _payload(ev) == "state_changed" and _state(ev) == "queued" and ev.state_changed.error
    ]
    assert len(retry) == 1 and "Ray chief was lost" in retry[0]


def test_cancel_stops_the_job(server: tuple[RunningServer, Client]) -> None:
    running, client = server
    _project(client, "cancel", n=100)
    job = client.start_job("cancel", epochs=200, batch_size=8, workers=2, formats=["float32"])
    pids: list[int] = []
    for ev in client.watch_job(job.id):
        if _payload(ev) == "epoch_end":
            pids = running.container.executor.worker_pids(job.id)  # type: ignore[attr-defined]
            client.cancel_job(job.id)
            break
    assert len(pids) == 2
    events = list(client.watch_job(job.id))
    assert _state(events[-1]) == "cancelled"
    assert client.get_job(job.id).state == 5  # JOB_STATE_CANCELLED
    assert client.list_versions("cancel") == []
    # Every actor of the job is gone once the job ended.
    deadline = time.monotonic() + 30
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _alive(p)]
        time.sleep(0.2)
    assert pids == []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped by the raylet) is gone as well.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False
