"""Helpers of the fleet tests (imported by name: tests/fleet is on the import path)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mobiletrain.core.types import Hyperparameters, InputSpec, Job, JobState, Project, TaskType
from mobiletrain.store.sql import SqlMetadataStore

ROOT = Path(__file__).resolve().parents[2]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"


def new_job(store: SqlMetadataStore) -> Job:
    """A project with one queued job, for event tests."""
    now = datetime.now(UTC)
    project = store.create_project(
        Project(
            id=str(uuid.uuid4()),
            name=f"p{uuid.uuid4().hex[:8]}",
            task=TaskType.IMAGE_CLASSIFICATION,
            labels=[],
            labels_fixed=False,
            input_spec=InputSpec(32, 32),
            created_at=now,
        )
    )
    return store.create_job(
        Job(
            id=str(uuid.uuid4()),
            project_id=project.id,
            state=JobState.QUEUED,
            hyperparameters=Hyperparameters(epochs=1),
            created_at=now,
        )
    )


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what} did not come up")


class Replica:
    """One ``mobiletrain serve`` process (its own process group: a kill takes its workers)."""

    def __init__(
        self, data_dir: Path, database_url: str, blob_url: str, env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.grpc_port, self.http_port = free_port(), free_port()
        script = Path(sys.executable).parent / "mobiletrain"
        cmd = [str(script)] if script.exists() else [sys.executable, "-m", "mobiletrain.client.cli"]
        self.log_path = data_dir.parent / f"{data_dir.name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *cmd,
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
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env or {})},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 90) -> None:
        """Until /healthz answers."""
        _wait_http(f"http://127.0.0.1:{self.http_port}/healthz", self.proc, timeout, "replica")

    def kill(self) -> None:
        """SIGKILL the replica and its training workers: no shutdown code runs."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (SIGKILL after 30 s)."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log_tail(self, n: int = 3000) -> str:
        """The end of the replica's output (for failure messages)."""
        return self.log_path.read_bytes()[-n:].decode(errors="replace")


class HAProxy:
    """HAProxy from the distribution, running ``deploy/haproxy.cfg`` in front of replicas."""

    def __init__(self, replicas: list[Replica], workdir: Path) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        self.grpc_port, self.http_port = free_port(), free_port()
        env = {
            **os.environ,
            "MOBILETRAIN_LB_GRPC_BIND": f"127.0.0.1:{self.grpc_port}",
            "MOBILETRAIN_LB_HTTP_BIND": f"127.0.0.1:{self.http_port}",
        }
        for n, r in enumerate(replicas, start=1):
            env[f"MOBILETRAIN_REPLICA_{n}_HOST"] = "127.0.0.1"
            env[f"MOBILETRAIN_REPLICA_{n}_GRPC_PORT"] = str(r.grpc_port)
            env[f"MOBILETRAIN_REPLICA_{n}_HTTP_PORT"] = str(r.http_port)
        self._log = open(workdir / "haproxy.log", "wb")  # noqa: SIM115
        # -db: stay in the foreground; -W: master-worker (a clean stop on SIGTERM).
        self.proc = subprocess.Popen(
            [binary, "-db", "-W", "-f", str(HAPROXY_CFG)],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _wait_http(f"http://127.0.0.1:{self.http_port}/healthz", self.proc, 20, "haproxy")

    @property
    def grpc_address(self) -> str:
        """The one gRPC address clients use."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """The one HTTP address (REST, SSE)."""
        return f"http://127.0.0.1:{self.http_port}"

    def stop(self) -> None:
        """Stop HAProxy."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log.close()
