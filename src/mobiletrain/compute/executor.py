"""The local executor: runs each training job in its own worker process.

The API process never imports TensorFlow: workers are separate Python processes started with
``python -m mobiletrain.compute.worker``. A worker that crashes (even SIGKILL) only costs its
job one attempt; the scheduler re-queues it or fails it with a reason, and the server goes on.

Scheduling (claims, leases, the cancel grace, retries) is :mod:`mobiletrain.compute.scheduler`'s;
this module is its :class:`LocalLauncher`. Running jobs hold a lease that their worker renews
(heartbeats); a job whose worker vanished without this scheduler seeing it exit is re-queued when
the lease runs out, and the retry resumes from the job's last epoch checkpoint.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from mobiletrain.compute import checkpoints
from mobiletrain.compute.scheduler import Scheduler
from mobiletrain.core.events import EventHub
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import Job

log = logging.getLogger(__name__)

WARM_RETRY_SECONDS = 30.0
"""Wait before replacing a warm worker that exited without a job (jobs start cold meanwhile)."""


@dataclass
class LocalAttempt:
    """A job's worker process on this machine."""

    process: subprocess.Popen[bytes]

    def exit_reason(self) -> str | None:
        """None while the process runs, else its exit code in words."""
        code = self.process.poll()
        return None if code is None else f"the worker process exited with code {code}"

    def cancel_requested(self) -> None:
        """The worker reads the flag from the store itself."""

    def kill(self) -> None:
        """SIGKILL: the cancel grace ran out."""
        self.process.kill()

    def stop(self) -> None:
        """Terminate, wait up to 10 s, then kill."""
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def pids(self) -> list[int]:
        """The worker's process id."""
        return [self.process.pid]


class LocalLauncher:
    """Starts each attempt as ``python -m mobiletrain.compute.worker`` in ``work_dir/<job>``.

    With ``warm`` one worker is kept started ahead (``--warm``: interpreter up, TensorFlow
    imported, stores open) and waiting on its stdin; a job claimed while it waits goes to it
    (seconds sooner than a cold start), and a new warm worker starts once a slot is free
    again, so it never competes for the CPU with the job that runs in the only slot.
    """

    def __init__(
        self,
        database_url: str,
        blob_url: str,
        work_dir: Path,
        base_models_dir: Path | None = None,
        lease_seconds: float = 30.0,
        warm: bool = False,
    ) -> None:
        self.database_url = database_url
        self.blob_url = blob_url
        self.work_dir = work_dir
        self.base_models_dir = base_models_dir
        self.lease_seconds = lease_seconds
        self.warm = warm
        self._warm: subprocess.Popen[bytes] | None = None
        self._warm_retry_at = 0.0  # monotonic time before which no new warm worker starts

    def _command(self, extra: list[str]) -> list[str]:
        cmd = [
            sys.executable,
            "-m",
            "mobiletrain.compute.worker",
            "--database-url",
            self.database_url,
            "--blob-url",
            self.blob_url,
            "--lease-seconds",
            str(self.lease_seconds),
            *extra,
        ]
        if self.base_models_dir is not None:
            cmd += ["--base-models-dir", str(self.base_models_dir)]
        return cmd

    @staticmethod
    def _env() -> dict[str, str]:
        return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    # -- Launcher ------------------------------------------------------------------------------
    def open(self) -> None:
        """Nothing to open: the scheduler's first round (at once) starts the warm worker when a
        slot is free (never with ``max_workers=0``)."""

    def idle(self, free_slots: int) -> None:
        """Keep one warm worker while a slot is free."""
        if not self.warm or free_slots <= 0:
            return
        if self._warm is not None and self._warm.poll() is None:
            return
        now = time.monotonic()
        if self._warm is not None:
            # It exited before taking a job (a crash at import, a killed process): try again
            # later, not on every round, and log why it matters once.
            log.warning(
                "warm worker pid %d exited with code %s before taking a job; next try in %.0f s",
                self._warm.pid,
                self._warm.returncode,
                WARM_RETRY_SECONDS,
            )
            self._warm = None
            self._warm_retry_at = now + WARM_RETRY_SECONDS
        if now < self._warm_retry_at:
            return
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with open(self.work_dir / "warm-worker.log", "ab") as log_file:
            self._warm = subprocess.Popen(
                self._command(["--warm"]),
                stdin=subprocess.PIPE,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env(),
            )
        log.info("warm worker pid %d started", self._warm.pid)

    def launch(self, job: Job) -> LocalAttempt:
        """Hand the job to the warm worker if one waits, else start a worker for it."""
        job_dir = self.work_dir / job.id
        log_path = job_dir / f"worker-{job.attempts}.log"
        job_dir.mkdir(parents=True, exist_ok=True)  # OSError (disk full) fails the job
        log_path.touch()
        process = self._take_warm(job, job_dir, log_path)
        if process is None:
            cmd = self._command(["--job-id", job.id, "--work-dir", str(job_dir)])
            with open(log_path, "ab") as log_file:
                process = subprocess.Popen(
                    cmd, stdout=log_file, stderr=subprocess.STDOUT, env=self._env()
                )
        return LocalAttempt(process)

    def _take_warm(self, job: Job, job_dir: Path, log_path: Path) -> subprocess.Popen[bytes] | None:
        warm, self._warm = self._warm, None
        if warm is None or warm.stdin is None:
            return None
        if warm.poll() is not None:
            self._warm = warm  # idle() logs it and waits before starting the next one
            return None
        order = {"job_id": job.id, "work_dir": str(job_dir), "log_path": str(log_path)}
        try:
            warm.stdin.write(json.dumps(order).encode() + b"\n")
            warm.stdin.close()
        except OSError:  # it died meanwhile: a cold start instead
            warm.kill()
            warm.wait()
            return None
        return warm

    def job_ended(self, job_id: str) -> None:
        """Remove the job's checkpoints (its logs stay)."""
        checkpoints.remove(self.work_dir / job_id)

    def sweep(self, store: MetadataStore) -> None:
        """Checkpoints of jobs that ended while no worker of this server ran them."""
        checkpoints.sweep(self.work_dir, store)

    def close(self) -> None:
        """End the warm worker: end of its stdin, then terminate if it lingers."""
        warm, self._warm = self._warm, None
        if warm is None:
            return
        try:
            if warm.stdin is not None:
                warm.stdin.close()
            warm.wait(timeout=2)
        except (OSError, subprocess.TimeoutExpired):
            warm.terminate()
            try:
                warm.wait(timeout=10)
            except subprocess.TimeoutExpired:
                warm.kill()
                warm.wait()

    def warm_pid(self) -> int | None:
        """Process id of the waiting warm worker, if any (tests, operators)."""
        return self._warm.pid if self._warm is not None else None


class LocalExecutor(Scheduler):
    """Schedules queued jobs onto at most ``max_workers`` worker processes on this machine."""

    def __init__(
        self,
        store: MetadataStore,
        hub: EventHub,
        database_url: str,
        blob_url: str,
        work_dir: Path,
        max_workers: int = 1,
        max_attempts: int = 2,
        base_models_dir: Path | None = None,
        cancel_grace_seconds: float = 30.0,
        lease_seconds: float = 30.0,
        warm_worker: bool = False,
    ) -> None:
        self.local = LocalLauncher(
            database_url, blob_url, work_dir, base_models_dir, lease_seconds, warm_worker
        )
        super().__init__(
            store,
            hub,
            self.local,
            capacity=max_workers,
            max_attempts=max_attempts,
            lease_seconds=lease_seconds,
            cancel_grace_seconds=cancel_grace_seconds,
        )
        self.work_dir = work_dir
        self.max_workers = max_workers
