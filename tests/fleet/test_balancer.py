"""The whole loop through HAProxy in front of two replicas, one of them SIGKILLed mid-job.

Two ``mobiletrain serve`` processes share PostgreSQL and an S3 bucket (moto) behind
``deploy/haproxy.cfg`` (HAProxy from Debian, gRPC as h2c to the replicas, SSE streamed) and
train on one Ray cluster (a local ``ray start --head`` of this test, ``--executor ray``). Every
call goes to the balancer's one gRPC address or its one HTTP address:

1. two clients upload digits at once (the balancer spreads their calls over both replicas);
2. a job starts; a gRPC watcher and an SSE watcher follow it. The SSE watcher sees progress
   while the job still runs (the balancer does not buffer the stream);
3. the replica that submitted the job to Ray is SIGKILLed, while a third client uploads more
   samples. Ray ends the actors that replica owned (they are not detached), nothing renews the
   job's lease, and the other replica's reaper re-queues it and trains it on Ray again; the
   upload is retried by its client and stored exactly once;
4. both watchers saw every event of the job, in order, none twice — the same list a fresh
   watch from seq 0 returns — and the model downloads byte-identical to its manifest.

Needs PostgreSQL (``MOBILETRAIN_TEST_POSTGRES_URL``), ``haproxy`` (``.ci/run`` has both) and
``ray`` (requirements.lock).
The federated part of issue 19 (a 20-round session through the balancer):
test_balancer_sessions.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fleet_support import HAProxy, Replica, free_port

from mobiletrain.cli.demo import digits_split, png_bytes
from mobiletrain.client.sdk import Client, ClientError, LocalSample

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

# Short leases so the killed replica's job comes back within seconds.
REPLICA_ENV = {
    "MOBILETRAIN_JOB_LEASE_SECONDS": "4",
    "MOBILETRAIN_MAX_JOB_ATTEMPTS": "3",
    "MOBILETRAIN_EXECUTOR": "ray",
}


@pytest.fixture
def ray_address(s3_endpoint: str) -> Iterator[str]:
    """A one-node Ray cluster (2 logical CPUs) shared by both replicas, stopped at the end.

    Started after ``s3_endpoint`` so the actors inherit its dummy AWS credentials."""
    if shutil.which("haproxy") is None and not Path("/usr/sbin/haproxy").exists():
        pytest.skip("needs HAProxy (apt-get install haproxy; .ci/run installs it)")
    pytest.importorskip("ray", reason="the fleet test trains on Ray (requirements.lock)")
    port = free_port()
    # Ray's socket paths must stay short: a temp dir of its own, not pytest's deep tmp_path.
    temp_dir = tempfile.mkdtemp(prefix="mtray")
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("ray")),
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


def _ray_job_dir(replica: Replica, job_id: str) -> Path:
    """The job's folder in the replica's Ray work dir: the actors of the jobs a replica
    submits write there (each replica has its own, so it tells which one submitted)."""
    return replica.data_dir.parent / f"{replica.data_dir.name}-ray" / "mobiletrain-jobs" / job_id


@pytest.fixture
def fleet(
    tmp_path: Path, postgres_schema_url: str, s3_bucket_url: str, ray_address: str
) -> Iterator[tuple[list[Replica], HAProxy, str]]:
    replicas: list[Replica] = []
    lb: HAProxy | None = None

    def env(name: str) -> dict[str, str]:
        work = tmp_path / f"{name}-ray"
        return {
            **REPLICA_ENV,
            "MOBILETRAIN_RAY_ADDRESS": ray_address,
            "MOBILETRAIN_RAY_WORK_DIR": str(work),
        }

    try:
        first = Replica(tmp_path / "r1", postgres_schema_url, s3_bucket_url, env("r1"))
        replicas.append(first)
        first.wait_ready()  # migrates the schema; the second finds it done
        second = Replica(tmp_path / "r2", postgres_schema_url, s3_bucket_url, env("r2"))
        replicas.append(second)
        second.wait_ready()
        lb = HAProxy(replicas, tmp_path)
        token = (tmp_path / "r1" / "admin-token").read_text().strip()
        yield replicas, lb, token
    finally:
        if lb is not None:
            lb.stop()
        for r in replicas:
            r.stop()


def _payload(ev: Any) -> str:
    return str(ev.WhichOneof("payload"))


def _state(ev: Any) -> str:
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    return training_pb2.JobState.Name(ev.state_changed.state).removeprefix("JOB_STATE_").lower()


def _upload_until_stored(address: str, token: str, project: str, samples: list[LocalSample]) -> int:
    """What a phone does: send, and on a broken call send the same samples again (client ids
    make the retry idempotent). Returns how many calls it took."""
    for attempt in range(1, 11):
        try:
            with Client(address, token=token, timeout=30) as c:
                c.upload(project, samples)
            return attempt
        except ClientError:
            time.sleep(0.5)
    raise AssertionError("upload never succeeded through the balancer")


class GrpcWatcher(threading.Thread):
    """``Client.watch_job`` through the balancer (the SDK resumes from the last seq)."""

    def __init__(self, address: str, token: str, job_id: str) -> None:
        super().__init__(daemon=True)
        self.address, self.token, self.job_id = address, token, job_id
        self.events: list[Any] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with Client(self.address, token=self.token) as c:
                for ev in c.watch_job(self.job_id):
                    self.events.append(ev)
        except BaseException as exc:  # reported by the test
            self.error = exc


class SseWatcher(threading.Thread):
    """Follows ``/v1/jobs/{id}/events`` through the balancer, reconnecting with
    ``Last-Event-ID`` like a browser's EventSource; notes the job's state at the first
    progress event it receives."""

    def __init__(self, base: str, token: str, job_id: str) -> None:
        super().__init__(daemon=True)
        self.base, self.token, self.job_id = base, token, job_id
        self.seqs: list[int] = []
        self.state_at_first_progress: str | None = None
        self.error: BaseException | None = None
        self.reconnects = 0

    def run(self) -> None:
        try:
            self._follow()
        except BaseException as exc:  # reported by the test
            self.error = exc

    def _job_state(self, headers: dict[str, str]) -> str:
        """The job's state now (a call that met the replica being killed is sent again)."""
        for _ in range(20):
            try:
                resp = httpx.get(f"{self.base}/v1/jobs/{self.job_id}", headers=headers)
                if resp.status_code == 200:
                    return str(resp.json()["state"])
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError("GET job never answered through the balancer")

    def _follow(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            if self.seqs:
                headers["Last-Event-ID"] = str(self.seqs[-1])
            try:
                with httpx.stream(
                    "GET", f"{self.base}/v1/jobs/{self.job_id}/events", headers=headers, timeout=30
                ) as resp:
                    if resp.status_code == 204:
                        return  # everything delivered, the job ended
                    resp.raise_for_status()
                    kind = ""
                    for line in resp.iter_lines():
                        if line.startswith("event: "):
                            kind = line[7:]
                        elif line.startswith("data: "):
                            data = json.loads(line[6:])
                            self.seqs.append(int(data["seq"]))
                            if kind == "progress" and self.state_at_first_progress is None:
                                self.state_at_first_progress = self._job_state(headers)
                            final = kind == "state" and data["data"].get("state") in (
                                "succeeded",
                                "failed",
                                "cancelled",
                            )
                            if final:
                                return
            except httpx.HTTPError:
                pass
            self.reconnects += 1
            time.sleep(0.3)
        raise TimeoutError("SSE watch did not end")


def test_upload_train_watch_download_through_haproxy_with_a_replica_killed(
    fleet: tuple[list[Replica], HAProxy, str],
) -> None:
    replicas, lb, token = fleet
    x, y, _, _ = digits_split()
    n = 100
    samples = [LocalSample(f"d{i}", str(int(y[i])), png_bytes(x[i])) for i in range(n)]
    late = [LocalSample(f"late{i}", str(int(y[i])), png_bytes(x[i][::-1])) for i in range(30)]

    with Client(lb.grpc_address, token=token) as admin:
        admin.create_project("fleet", width=16, height=16, color_mode="grayscale")

        # 1. Two phones upload at once through the one address.
        done: list[int] = []
        ups = [
            threading.Thread(
                target=lambda part: done.append(
                    _upload_until_stored(lb.grpc_address, token, "fleet", part)
                ),
                args=(part,),
            )
            for part in (samples[0::2], samples[1::2])
        ]
        for t in ups:
            t.start()
        for t in ups:
            t.join(timeout=120)
        assert len(done) == 2

        # 2. Train; watch over gRPC and SSE, both through the balancer.
        job = admin.start_job("fleet", epochs=3, batch_size=16, formats=["float32"])
        # Two of each: the balancer hands consecutive streams to different replicas, so one
        # gRPC and one SSE watcher are on the replica that will be killed.
        grpc_watchers = [GrpcWatcher(lb.grpc_address, token, job.id) for _ in range(2)]
        sse_watchers = [SseWatcher(lb.http_url, token, job.id) for _ in range(2)]
        watchers: list[GrpcWatcher | SseWatcher] = [*grpc_watchers, *sse_watchers]
        for w in watchers:
            w.start()
            time.sleep(0.2)

        # 3. Once the job trains on Ray, kill the replica that submitted it (its process group:
        # the Ray actors live in the Ray head's, so only Ray's owner clean-up can end them).
        deadline = time.monotonic() + 90
        victim: Replica | None = None
        while victim is None and time.monotonic() < deadline:
            if any(_payload(ev) == "progress" for ev in list(grpc_watchers[0].events)):
                owners = [r for r in replicas if _ray_job_dir(r, job.id).exists()]
                if owners:
                    victim = owners[0]
            time.sleep(0.1)
        assert victim is not None, "the job never started training"
        survivor = next(r for r in replicas if r is not victim)
        late_done: list[int] = []
        late_up = threading.Thread(
            target=lambda: late_done.append(
                _upload_until_stored(lb.grpc_address, token, "fleet", late)
            )
        )
        late_up.start()
        time.sleep(0.2)  # the upload is under way when the replica dies
        victim.kill()

        for w in watchers:
            w.join(timeout=150)
            assert not w.is_alive(), survivor.log_tail()
            assert w.error is None, w.error
        late_up.join(timeout=60)
        assert late_done, "the upload during the kill never completed"

        # 4. Every event, in order, once — on both transports.
        final = admin.get_job(job.id)
        every = list(admin.watch_job(job.id, after_seq=0))
        all_seqs = [ev.seq for ev in every]
        assert all_seqs == list(range(1, len(all_seqs) + 1))
        for g in grpc_watchers:
            assert [ev.seq for ev in g.events] == all_seqs
        # One SSE stream was on the killed replica: cut, and resumed through the other one.
        assert any(sse.reconnects for sse in sse_watchers)
        for sse in sse_watchers:
            assert sse.seqs == all_seqs
            assert sse.state_at_first_progress == "running"  # streamed, not held back
        states = [_state(ev) for ev in every if _payload(ev) == "state_changed"]
        assert states[-1] == "succeeded", (states, survivor.log_tail())
        assert states.count("running") >= 2  # the killed attempt, then the retry
        assert final.attempts >= 2
        # The survivor's lease reaper took the job over (the victim's supervisor was gone) ...
        retries = [
            ev.state_changed.error
            for ev in every
            if _payload(ev) == "state_changed" and _state(ev) == "queued" and ev.state_changed.error
        ]
        assert retries and "supervisor stopped renewing" in retries[0], retries
        # ... and Ray ended the victim's actor: after the last start only the retry trains
        # (from epoch 1: its checkpoints were in the victim's work dir), no orphan's epochs.
        last_run = max(
            i
            for i, ev in enumerate(every)
            if _payload(ev) == "state_changed" and _state(ev) == "running"
        )
        epochs = [ev.epoch_end.epoch for ev in every[last_run:] if _payload(ev) == "epoch_end"]
        assert epochs == [1, 2, 3], epochs

        # No lost sample, none twice: exact per-label counts.
        counts = admin.class_counts("fleet")
        expected: dict[str, int] = {}
        for s in [*samples, *late]:
            expected[s.label] = expected.get(s.label, 0) + 1
        assert counts == expected

        manifest = admin.manifest("fleet")
        out = lb_file = victim.data_dir.parent / "model.tflite"
        admin.download_model("fleet", out, fmt="float32")
        assert (
            hashlib.sha256(lb_file.read_bytes()).hexdigest()
            == (manifest["files"]["float32"]["sha256"])
        )
