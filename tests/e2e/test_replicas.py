"""Two API replicas (separate server processes) sharing PostgreSQL and an S3-compatible store.

* uploads sent to either replica land in one dataset, with exact counts (duplicates sent to the
  other replica are recognised);
* a job started through replica B is watched live through replica A (events go through the
  shared database, whichever replica's worker runs the job);
* the model the job made downloads from either replica, byte-identical to its manifest.

Needs PostgreSQL (``MOBILETRAIN_TEST_POSTGRES_URL``, set by ``.ci/run``); skips otherwise.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mobiletrain.cli.demo import digits_split, png_bytes
from mobiletrain.client.sdk import Client, LocalSample

POSTGRES_URL = os.environ.get("MOBILETRAIN_TEST_POSTGRES_URL", "")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL whose tables live in a fresh schema (dropped afterwards)."""
    if not POSTGRES_URL:
        pytest.skip("the two-replica test needs MOBILETRAIN_TEST_POSTGRES_URL (set by .ci/run)")
    import sqlalchemy as sa

    schema = f"replicas_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    """One ``mobiletrain serve`` process."""

    def __init__(self, data_dir: Path, database_url: str, blob_url: str) -> None:
        self.data_dir = data_dir
        self.grpc_port, self.http_port = _free_port(), _free_port()
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        self.log = open(data_dir.parent / f"{data_dir.name}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "mobiletrain.cli",
                "serve",
                "--data-dir",
                str(data_dir),
                "--grpc-port",
                str(self.grpc_port),
                "--http-port",
                str(self.http_port),
                "--database-url",
                database_url,
                "--blob-url",
                blob_url,
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"replica exited with {self.proc.returncode}")
            try:
                url = f"http://127.0.0.1:{self.http_port}/healthz"
                if httpx.get(url, timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError("replica did not come up")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def replicas(
    tmp_path: Path, postgres_url: str, s3_bucket_url: str
) -> Iterator[tuple[Replica, Replica, str]]:
    a = Replica(tmp_path / "replica-a", postgres_url, s3_bucket_url)
    b: Replica | None = None
    try:
        a.wait_ready()  # A creates the schema first; B finds it migrated
        b = Replica(tmp_path / "replica-b", postgres_url, s3_bucket_url)
        b.wait_ready()
        # The first replica created the admin token; the database is shared, so it works on B.
        token = (tmp_path / "replica-a" / "admin-token").read_text().strip()
        assert not (tmp_path / "replica-b" / "admin-token").exists()
        yield a, b, token
    finally:
        for r in (a, b):
            if r is not None:
                r.stop()


def _state(ev: Any) -> str:
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    return training_pb2.JobState.Name(ev.state_changed.state).removeprefix("JOB_STATE_").lower()


def test_two_replicas_share_uploads_events_and_models(
    replicas: tuple[Replica, Replica, str],
) -> None:
    a, b, token = replicas
    x, y, _, _ = digits_split()
    n = 120
    samples = [LocalSample(f"d{i}", str(int(y[i])), png_bytes(x[i])) for i in range(n)]
    with Client(a.address, token=token) as ca, Client(b.address, token=token) as cb:
        ca.create_project("shared", width=16, height=16, color_mode="grayscale")
        # Half through each replica, at the same time.
        reports: dict[str, Any] = {}

        def send(name: str, client: Client, part: list[LocalSample]) -> None:
            reports[name] = client.upload("shared", part)

        threads = [
            threading.Thread(target=send, args=("a", ca, samples[0::2])),
            threading.Thread(target=send, args=("b", cb, samples[1::2])),
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert reports["a"].accepted + reports["b"].accepted == n
        # Sent again through the other replica: recognised, nothing stored twice.
        again = cb.upload("shared", samples[0::2][:10])
        assert again.accepted == 0
        counts_a, counts_b = ca.class_counts("shared"), cb.class_counts("shared")
        assert counts_a == counts_b
        assert sum(counts_a.values()) == n
        expected: dict[str, int] = {}
        for s in samples:
            expected[s.label] = expected.get(s.label, 0) + 1
        assert counts_a == expected

        # Started through B, watched live through A.
        job = cb.start_job("shared", epochs=2, batch_size=16, formats=["float32"])
        events = list(ca.watch_job(job.id))
        kinds = [ev.WhichOneof("payload") for ev in events]
        states = [_state(ev) for ev in events if ev.WhichOneof("payload") == "state_changed"]
        assert "running" in states and states[-1] == "succeeded", (states, kinds)
        assert kinds.count("epoch_end") == 2
        seqs = [ev.seq for ev in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)

        # The model (written to S3 by whichever worker ran the job) downloads from both.
        manifest = ca.manifest("shared")
        want = manifest["files"]["float32"]["sha256"]
        for client, name in ((ca, "a"), (cb, "b")):
            out = a.data_dir.parent / f"model-{name}.tflite"
            client.download_model("shared", out, fmt="float32")
            assert hashlib.sha256(out.read_bytes()).hexdigest() == want


def test_replicas_starting_at_once_migrate_the_schema_once(postgres_url: str) -> None:
    """Four processes migrating one empty schema at the same moment all succeed."""
    code = f"from mobiletrain.store.sql import migrate; migrate({postgres_url!r})"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(4)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()[-2000:]
