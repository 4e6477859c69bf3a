"""Crash safety, proven by killing real processes with SIGKILL.

* a worker killed mid-training: the job resumes from its last epoch checkpoint, and fails with a
  reason once its attempts are used up;
* the whole server (and its workers) killed with a running and a queued job: after a restart
  both finish, and no job stays "running" (leases with heartbeats, and a reaper);
* the server killed in the middle of an upload stream: the SDK retries and the dataset ends with
  exactly the samples sent;
* downloads during the publication of new versions always get one complete file;
* a worker killed inside a checkpoint write, or a checkpoint truncated before the retry: the
  job still succeeds, with the history of every epoch; ended jobs leave no checkpoints.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mobiletrain.cli.demo import digits_split, png_bytes, write_digits_folder
from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.compute import checkpoints
from mobiletrain.config import Settings
from mobiletrain.core.types import Artifact, ModelFormat, ModelVersion
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.slow


def _digits(n: int) -> tuple[np.ndarray, np.ndarray]:
    x, y, _, _ = digits_split()
    return x[:n], y[:n]


def _setup_project(client: Client, name: str, n: int = 300) -> None:
    x, y = _digits(n)
    client.create_project(name, width=16, height=16, color_mode="grayscale")
    samples = [
        LocalSample(f"d{i}", str(int(v)), png_bytes(img))
        for i, (img, v) in enumerate(zip(x, y, strict=True))
    ]
    assert client.upload(name, samples).accepted == n


def _state(ev: Any) -> str:
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    return training_pb2.JobState.Name(ev.state_changed.state).removeprefix("JOB_STATE_").lower()


@pytest.fixture(autouse=True)
def _checkpoint_every_epoch(monkeypatch: pytest.MonkeyPatch) -> None:
    # A checkpoint at every epoch end (the default is one per 30 s of training): these tests
    # kill workers or pause checkpoint writes after a given epoch and check where the retry
    # starts and what is left on disk. A test that needs another interval sets its own.
    monkeypatch.setenv("MOBILETRAIN_CHECKPOINT_INTERVAL_SECONDS", "0")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[RunningServer, Client]]:
    running = start_server(
        Settings(data_dir=tmp_path / "data", grpc_port=0, http_port=0, max_job_attempts=3)
    )
    token = (tmp_path / "data" / "admin-token").read_text().strip()
    client = Client(f"127.0.0.1:{running.grpc_port}", token=token)
    try:
        yield running, client
    finally:
        client.close()
        running.stop()


def _kill_worker(running: RunningServer, job_id: str) -> None:
    pid = running.container.executor.worker_pid(job_id)  # type: ignore[attr-defined]
    assert pid is not None
    os.kill(pid, signal.SIGKILL)


def test_killed_worker_resumes_from_its_last_checkpoint(
    server: tuple[RunningServer, Client],
) -> None:
    running, client = server
    _setup_project(client, "resume")
    job = client.start_job("resume", epochs=25, batch_size=16)
    killed = False
    for ev in client.watch_job(job.id):
        if not killed and ev.WhichOneof("payload") == "epoch_end" and ev.epoch_end.epoch >= 3:
            _kill_worker(running, job.id)
            killed = True
    final = client.get_job(job.id)
    assert final.model_version == 1, final.error
    assert final.attempts == 2
    events = list(client.watch_job(job.id))  # the full history, replayed
    kinds = [(ev.WhichOneof("payload"), ev) for ev in events]
    restart = next(
        i
        for i, (k, ev) in enumerate(kinds)
        if k == "state_changed"
        and _state(ev) == "queued"
        and "exited with code -9" in ev.state_changed.error
    )
    before = [ev.epoch_end.epoch for k, ev in kinds[:restart] if k == "epoch_end"]
    after = [ev.epoch_end.epoch for k, ev in kinds[restart:] if k == "epoch_end"]
    assert before and after
    # Not from epoch 1: from the epoch after the last one announced (checkpointed) before.
    assert after[0] == max(before) + 1
    assert after[-1] == 25
    logs = [ev.log.message for k, ev in kinds[restart:] if k == "log"]
    assert any("resuming from the checkpoint" in m for m in logs)


def test_with_a_checkpoint_interval_a_killed_job_resumes_from_the_last_checkpoint_taken(
    server: tuple[RunningServer, Client], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An interval longer than the job: no epoch-end checkpoint, the retry starts at epoch 1."""
    running, client = server
    monkeypatch.setenv("MOBILETRAIN_CHECKPOINT_INTERVAL_SECONDS", "3600")
    _setup_project(client, "interval")
    job = client.start_job("interval", epochs=6, batch_size=16)
    folder = running.container.settings.data_dir / "jobs" / job.id / "checkpoint"
    killed = False
    for ev in client.watch_job(job.id):
        if not killed and ev.WhichOneof("payload") == "epoch_end" and ev.epoch_end.epoch >= 3:
            assert not (folder.exists() and checkpoints.candidates(folder))
            _kill_worker(running, job.id)
            killed = True
    final = client.get_job(job.id)
    assert final.model_version == 1, final.error
    attempts, logs, evaluation = _epochs_and_logs(client, job.id)
    assert len(attempts) == 2 and attempts[0][:3] == [1, 2, 3]
    assert attempts[1] == [1, 2, 3, 4, 5, 6]
    assert not any("resuming from the checkpoint" in m for m in logs)
    _assert_full_history(evaluation, 6)  # the first attempt's epochs are not counted twice


def test_a_job_fails_with_a_reason_after_its_attempts(server: tuple[RunningServer, Client]) -> None:
    running, client = server
    _setup_project(client, "doomed", n=100)
    job = client.start_job("doomed", epochs=50)
    kills = 0
    for ev in client.watch_job(job.id):
        if ev.WhichOneof("payload") == "state_changed" and _state(ev) == "running":
            deadline = time.monotonic() + 60
            while running.container.executor.worker_pid(job.id) is None:  # type: ignore[attr-defined]
                assert time.monotonic() < deadline
                time.sleep(0.05)
            _kill_worker(running, job.id)
            kills += 1
    final = client.get_job(job.id)
    assert kills == 3
    assert final.state == 4  # JOB_STATE_FAILED
    assert "exited with code -9" in final.error and "after 3 attempts" in final.error


def _serve(data_dir: Path, grpc_port: int, http_port: int) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MOBILETRAIN_JOB_LEASE_SECONDS": "3", "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mobiletrain.cli",
            "serve",
            "--data-dir",
            str(data_dir),
            "--grpc-port",
            str(grpc_port),
            "--http-port",
            str(http_port),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: kill server and workers together
    )


def _wait_http(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError("server did not come up")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def test_server_killed_with_running_and_queued_jobs_continues_after_restart(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    grpc_port, http_port = _free_port(), _free_port()
    proc = _serve(data, grpc_port, http_port)
    try:
        _wait_http(http_port)
        token = (data / "admin-token").read_text().strip()
        with Client(f"127.0.0.1:{grpc_port}", token=token) as client:
            _setup_project(client, "restart", n=200)
            first = client.start_job("restart", epochs=20, batch_size=16)
            second = client.start_job("restart", epochs=2)  # queued: one worker at a time
            for ev in client.watch_job(first.id):
                if ev.WhichOneof("payload") == "epoch_end":
                    break
        _kill_group(proc)  # server and its worker, no chance to clean up

        proc = _serve(data, grpc_port, http_port)
        _wait_http(http_port)
        with Client(f"127.0.0.1:{grpc_port}", token=token) as client:
            assert client.get_job(first.id).state == 2  # still "running": its lease holds
            for job_id in (first.id, second.id):
                deadline = time.monotonic() + 240
                while client.get_job(job_id).state in (1, 2):
                    assert time.monotonic() < deadline, "a job stayed queued/running"
                    time.sleep(0.5)
                final = client.get_job(job_id)
                assert final.model_version > 0, final.error
            assert "heartbeats" in _history_errors(client, first.id)
    finally:
        if proc.poll() is None:
            _kill_group(proc)


def _history_errors(client: Client, job_id: str) -> str:
    return " ".join(
        ev.state_changed.error
        for ev in client.watch_job(job_id)
        if ev.WhichOneof("payload") == "state_changed"
    )


def test_upload_survives_a_killed_server(tmp_path: Path) -> None:
    data = tmp_path / "data"
    grpc_port, http_port = _free_port(), _free_port()
    folder = tmp_path / "photos"
    x, y = _digits(1200)
    write_digits_folder(folder, x, y)
    proc = _serve(data, grpc_port, http_port)
    restarted = threading.Event()
    try:
        _wait_http(http_port)
        token = (data / "admin-token").read_text().strip()
        with Client(f"127.0.0.1:{grpc_port}", token=token) as client:
            client.create_project("upload", width=16, height=16, color_mode="grayscale")
            sent = 0

            def on_sent(n: int) -> None:
                nonlocal sent, proc
                sent += n
                if sent == 500 and not restarted.is_set():
                    restarted.set()
                    _kill_group(proc)
                    proc = _serve(data, grpc_port, http_port)

            report = client.upload_directory("upload", folder, on_sent=on_sent, retries=8)
            assert restarted.is_set()
            counts = client.class_counts("upload")
        assert sum(counts.values()) == 1200  # none lost, none doubled
        expected = {str(d): int((y == d).sum()) for d in range(10)}
        assert counts == expected
        assert report.rejected == 0
    finally:
        if proc.poll() is None:
            _kill_group(proc)


def test_downloads_during_publication_get_one_complete_file(tmp_path: Path) -> None:
    running = start_server(Settings(data_dir=tmp_path / "data", grpc_port=0, http_port=0))
    token = (tmp_path / "data" / "admin-token").read_text().strip()
    headers = {"Authorization": f"Bearer {token}"}
    container = running.container
    stop = threading.Event()
    try:
        project = container.projects.create("atomic")

        def publish(i: int) -> None:
            data = os.urandom(300_000 + i)  # every version a different file
            sha = container.blobs.put(data)
            container.blobs.sync()
            container.store.create_model_version(
                ModelVersion(
                    project.id,
                    0,
                    "job",
                    datetime.now(UTC),
                    {},
                    {"labels": []},
                    {ModelFormat.FLOAT32: Artifact(ModelFormat.FLOAT32, sha, len(data))},
                )
            )

        publish(0)

        def publisher() -> None:
            i = 1
            while not stop.is_set() and i < 200:
                publish(i)
                i += 1

        thread = threading.Thread(target=publisher)
        thread.start()
        checked = 0
        with (
            httpx.Client(base_url=f"http://127.0.0.1:{running.http_port}", headers=headers) as http,
            Client(f"127.0.0.1:{running.grpc_port}", token=token) as client,
        ):
            for i in range(40):
                r = http.get("/v1/projects/atomic/models/current/download?format=float32")
                assert r.status_code == 200
                assert hashlib.sha256(r.content).hexdigest() == r.headers["x-content-sha256"]
                path = tmp_path / f"m{i}.tflite"
                info = client.download_model("atomic", path, "float32")
                assert hashlib.sha256(path.read_bytes()).hexdigest() == info.sha256
                checked += 2
        stop.set()
        thread.join()
        assert checked == 80
        assert len(container.store.list_model_versions(project.id)) > 2
    finally:
        stop.set()
        running.stop()


# -- checkpoints that cannot tear --------------------------------------------------------------

PAUSE_ENV = "MOBILETRAIN_TEST_PAUSE_IN_CHECKPOINT_WRITE"
PAUSE_AT_EPOCH_ENV = "MOBILETRAIN_TEST_PAUSE_AT_EPOCH"
CKPT_EPOCHS = 6


def _pause_in_checkpoint_write(
    running: RunningServer, client: Client, name: str, marker: Path, epochs: int = CKPT_EPOCHS
) -> tuple[str, Path]:
    """Start a job whose worker pauses half-way through a checkpoint write; wait for it."""
    _setup_project(client, name, n=200)
    job = client.start_job(name, epochs=epochs, batch_size=16, formats=["float32"])
    deadline = time.monotonic() + 180
    while not marker.exists():
        assert time.monotonic() < deadline, "the worker never reached the paused write"
        assert client.get_job(job.id).state in (1, 2), client.get_job(job.id).error
        time.sleep(0.1)
    settings = running.container.settings
    return job.id, settings.data_dir / "jobs" / job.id / "checkpoint"


def _wait_ended(client: Client, job_id: str, timeout: float = 300) -> Any:
    deadline = time.monotonic() + timeout
    while client.get_job(job_id).state in (1, 2):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(0.2)
    return client.get_job(job_id)


def _epochs_and_logs(client: Client, job_id: str) -> tuple[list[list[int]], list[str], Any]:
    """EPOCH numbers per attempt, every log message, and the final evaluation metrics."""
    import json

    attempts: list[list[int]] = []
    logs: list[str] = []
    metrics: Any = None
    for ev in client.watch_job(job_id):
        kind = ev.WhichOneof("payload")
        if kind == "state_changed" and _state(ev) == "running":
            attempts.append([])
        elif kind == "epoch_end":
            attempts[-1].append(ev.epoch_end.epoch)
        elif kind == "log":
            logs.append(ev.log.message)
        elif kind == "evaluation":
            metrics = json.loads(ev.evaluation.metrics_json)
    return attempts, logs, metrics


def _stored_metrics(running: RunningServer, project: str) -> dict[str, Any]:
    store = running.container.store
    found = store.get_project_by_name(project)
    assert found is not None
    (version,) = store.list_model_versions(found.id)
    return version.metrics


def _assert_full_history(metrics: dict[str, Any], epochs: int) -> None:
    assert metrics["epochs_run"] == epochs
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert len(metrics["history"][key]) == epochs, key


def test_worker_killed_inside_a_checkpoint_write_resumes_and_succeeds(
    server: tuple[RunningServer, Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, client = server
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_ENV, str(marker))
    monkeypatch.setenv(PAUSE_AT_EPOCH_ENV, "3")
    job_id, folder = _pause_in_checkpoint_write(running, client, "torn", marker)
    names = sorted(p.name for p in folder.iterdir())
    # Epochs 1 and 2 complete; epoch 3 half written under a temporary name.
    assert names[-2:] == ["ckpt-000001.ckpt", "ckpt-000002.ckpt"]
    assert len(names) == 3 and names[0].startswith(".ckpt-000003.tmp-")
    _kill_worker(running, job_id)

    final = _wait_ended(client, job_id)
    assert final.model_version == 1, final.error
    assert final.attempts == 2
    attempts, logs, evaluation = _epochs_and_logs(client, job_id)
    # Epoch 3 was never announced: its checkpoint was not complete. The retry starts there.
    assert attempts == [[1, 2], [3, 4, 5, 6]]
    assert any(
        "resuming from the checkpoint of an earlier attempt: 2 epochs done" in m for m in logs
    )
    assert not any(m.startswith("warning:") for m in logs)
    # Both the evaluation event and the model version cover all epochs of both attempts.
    _assert_full_history(evaluation, CKPT_EPOCHS)
    _assert_full_history(_stored_metrics(running, "torn"), CKPT_EPOCHS)
    assert not folder.exists()  # ended: the checkpoints are gone
    assert (folder.parent / "worker-1.log").exists()  # the logs stay


def test_a_truncated_checkpoint_falls_back_to_the_previous_one(
    server: tuple[RunningServer, Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, client = server
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_ENV, str(marker))
    monkeypatch.setenv(PAUSE_AT_EPOCH_ENV, "4")
    job_id, folder = _pause_in_checkpoint_write(running, client, "truncated", marker)
    newest = folder / "ckpt-000003.ckpt"
    data = newest.read_bytes()
    with open(newest, "r+b") as f:  # a torn file as a disk without write barriers leaves it
        f.truncate(len(data) // 3)
    _kill_worker(running, job_id)

    final = _wait_ended(client, job_id)
    assert final.model_version == 1, final.error
    attempts, logs, evaluation = _epochs_and_logs(client, job_id)
    warnings = [m for m in logs if m.startswith("warning:")]
    assert len(warnings) == 1 and "ckpt-000003.ckpt" in warnings[0], logs
    assert "falling back to the previous checkpoint" in warnings[0]
    assert any("2 epochs done" in m for m in logs)
    # Epoch 3 is trained again (its checkpoint was lost), the history counts it once.
    assert attempts == [[1, 2, 3], [3, 4, 5, 6]]
    _assert_full_history(evaluation, CKPT_EPOCHS)
    _assert_full_history(_stored_metrics(running, "truncated"), CKPT_EPOCHS)
    assert not folder.exists()


def test_checkpoints_of_failed_and_cancelled_jobs_are_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    marker = tmp_path / "paused"
    monkeypatch.setenv(PAUSE_ENV, str(marker))
    monkeypatch.setenv(PAUSE_AT_EPOCH_ENV, "2")
    settings = Settings(data_dir=data, grpc_port=0, http_port=0, max_job_attempts=1)
    running = start_server(settings)
    token = (data / "admin-token").read_text().strip()
    try:
        with Client(f"127.0.0.1:{running.grpc_port}", token=token) as client:
            # Failed: killed in a checkpoint write with no attempt left; the executor cleans up.
            failed, failed_dir = _pause_in_checkpoint_write(running, client, "failing", marker)
            assert any(failed_dir.iterdir())
            _kill_worker(running, failed)
            final = _wait_ended(client, failed)
            assert final.state == 4 and "after 1 attempts" in final.error
            assert not failed_dir.exists()

            # Cancelled while training: the worker ends the job and removes its checkpoints.
            job = client.start_job("failing", epochs=40, batch_size=16, formats=["float32"])
            cancelled_dir = data / "jobs" / job.id / "checkpoint"
            for ev in client.watch_job(job.id):
                if ev.WhichOneof("payload") == "epoch_end" and ev.epoch_end.epoch == 2:
                    assert any(cancelled_dir.iterdir())
                    client.cancel_job(job.id)
            assert _wait_ended(client, job.id).state == 5  # JOB_STATE_CANCELLED
            assert not cancelled_dir.exists()

        # Ended while no worker ran (a crash before cleanup): swept when the server starts.
        running.stop()
        stray = data / "jobs" / failed / "checkpoint"
        stray.mkdir(parents=True)
        (stray / "ckpt-000001.ckpt").write_bytes(b"left behind")
        running = start_server(settings)
        assert not stray.exists()
    finally:
        running.stop()
