"""The local executor: runs each training job in its own worker process.

The API process never imports TensorFlow: workers are separate Python processes started with
``python -m mobiletrain.compute.worker``. A worker that crashes (even SIGKILL) only costs its
job one attempt; the scheduler re-queues it or fails it with a reason, and the server goes on.

Running jobs hold a lease that their worker renews (heartbeats). When a worker vanishes without
this scheduler seeing it exit (the whole server was killed, or another replica's worker died),
the lease runs out and the reaper re-queues the job; the retry resumes from the job's last
epoch checkpoint.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from mobiletrain.compute import checkpoints
from mobiletrain.core.events import EventHub
from mobiletrain.core.ports import JobExecutor, MetadataStore
from mobiletrain.core.storage import is_storage_full
from mobiletrain.core.types import EventKind, JobState

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0
"""How often the scheduler removes the checkpoints of jobs that ended while no worker ran."""


@dataclass
class _Running:
    process: subprocess.Popen[bytes]
    started: float
    cancel_seen_at: float | None = None
    log_path: Path = field(default_factory=Path)


class SchedulingExecutor(JobExecutor):
    """What every executor records when an attempt ends: a retry, or the job's final state.

    Subclasses set ``store``, ``hub``, ``max_attempts`` and ``_wake`` (their scheduler's wake-up).
    """

    store: MetadataStore
    hub: EventHub
    max_attempts: int
    _wake: threading.Event

    def _retry_or_fail(self, job_id: str, attempts: int, reason: str) -> None:
        if attempts < self.max_attempts:
            self.store.finish_job(job_id, JobState.QUEUED, reason)
            self.store.append_event(
                job_id,
                EventKind.STATE,
                {"state": JobState.QUEUED.value, "error": f"{reason}; retrying"},
            )
            self.hub.notify()
            self._wake.set()
        else:
            self._finish(job_id, JobState.FAILED, f"{reason} (after {attempts} attempts)")

    def _finish(self, job_id: str, state: JobState, error: str) -> None:
        self.store.finish_job(job_id, state, error)
        data = {"state": state.value}
        if error:
            data["error"] = error
        self.store.append_event(job_id, EventKind.STATE, data)
        self.hub.notify()
        try:
            self._job_ended(job_id)
        except OSError:  # cleanup must never keep the scheduler from going on
            log.warning("could not remove the checkpoints of job %s", job_id, exc_info=True)

    def _job_ended(self, job_id: str) -> None:
        """The job reached a final state here: remove what only a retry would have used."""


class LocalExecutor(SchedulingExecutor):
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
    ) -> None:
        self.store = store
        self.hub = hub
        self.database_url = database_url
        self.blob_url = blob_url
        self.work_dir = work_dir
        self._full_logged = float("-inf")  # when "storage is full" was last logged
        self.max_workers = max_workers
        self.max_attempts = max_attempts
        self.base_models_dir = base_models_dir
        self.cancel_grace_seconds = cancel_grace_seconds
        self.lease_seconds = lease_seconds
        self._running: dict[str, _Running] = {}
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0

    # -- JobExecutor ---------------------------------------------------------------------------
    def notify_queued(self, job_id: str) -> None:
        """Wake the scheduler."""
        self._wake.set()

    def notify_cancel(self, job_id: str) -> None:
        """The worker sees the flag in the store; wake the scheduler to enforce the grace time."""
        self._wake.set()

    def worker_pid(self, job_id: str) -> int | None:
        """Process id of the worker running ``job_id`` here, if any (for operators and tests)."""
        running = self._running.get(job_id)
        return running.process.pid if running is not None else None

    def start(self) -> None:
        """Start scheduling (jobs a previous server left running come back as leases expire)."""
        self._sweep()
        self._thread = threading.Thread(target=self._loop, name="local-executor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; running workers are terminated and their jobs re-queued on restart."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for running in self._running.values():
            running.process.terminate()
        for job_id, running in self._running.items():
            try:
                running.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                running.process.kill()
            # Back to the queue at once (not after the lease): the next start resumes it.
            job = self.store.get_job(job_id)
            if job is not None and job.state is JobState.RUNNING:
                self._retry_or_fail(job_id, 0, "the server stopped while the job ran")
        self._running.clear()

    # -- scheduling ----------------------------------------------------------------------------
    def _job_ended(self, job_id: str) -> None:
        checkpoints.remove(self.work_dir / job_id)

    def _sweep(self) -> None:
        """Checkpoints of jobs that ended while no worker of this server ran them (a queued
        retry cancelled, a crash before cleanup) go; worker logs stay."""
        self._last_sweep = time.monotonic()
        try:
            checkpoints.sweep(self.work_dir, self.store)
        except Exception:  # a busy database or a vanished folder: next time
            log.warning("checkpoint sweep failed", exc_info=True)

    def _reap_expired_leases(self) -> None:
        for job in self.store.expired_jobs(datetime.now(UTC)):
            if job.id in self._running:
                continue  # our own child: _reap sees its exit
            self._retry_or_fail(job.id, job.attempts, "the job's worker stopped sending heartbeats")

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap()
                self._reap_expired_leases()
                self._enforce_cancel()
                self._launch()
                if time.monotonic() - self._last_sweep > SWEEP_INTERVAL_S:
                    self._sweep()
            except Exception as exc:  # the scheduler must survive a transient database error
                if not is_storage_full(exc):
                    log.exception("executor loop failed; retrying")
                elif time.monotonic() - self._full_logged > 60:  # one line a minute, no trace
                    self._full_logged = time.monotonic()
                    log.warning("the server's storage is full: jobs wait until space is back")
            self._wake.wait(timeout=0.5)
            self._wake.clear()

    def _launch(self) -> None:
        while len(self._running) < self.max_workers and not self._stop.is_set():
            job = self.store.claim_job(lease_seconds=self.lease_seconds)
            if job is None:
                return
            self.store.append_event(
                job.id, EventKind.STATE, {"state": JobState.RUNNING.value, "attempt": job.attempts}
            )
            self.hub.notify()
            job_dir = self.work_dir / job.id
            log_path = job_dir / f"worker-{job.attempts}.log"
            try:
                job_dir.mkdir(parents=True, exist_ok=True)
                log_path.touch()
            except OSError as exc:
                if not is_storage_full(exc):
                    raise
                # Expected, not a bug: one line, and the job ends with the reason at once
                # (retrying would only burn its attempts while the disk stays full).
                log.warning("job %s not started: the server's storage is full", job.id)
                self._finish(
                    job.id,
                    JobState.FAILED,
                    "the server's storage is full (no room for the job's folder); free space "
                    "and train again",
                )
                continue
            cmd = [
                sys.executable,
                "-m",
                "mobiletrain.compute.worker",
                "--job-id",
                job.id,
                "--database-url",
                self.database_url,
                "--blob-url",
                self.blob_url,
                "--work-dir",
                str(job_dir),
                "--lease-seconds",
                str(self.lease_seconds),
            ]
            if self.base_models_dir is not None:
                cmd += ["--base-models-dir", str(self.base_models_dir)]
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
            with open(log_path, "ab") as log_file:
                process = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
            self._running[job.id] = _Running(process, time.monotonic(), log_path=log_path)
            log.info(
                "job %s attempt %d started in worker pid %d", job.id, job.attempts, process.pid
            )

    def _reap(self) -> None:
        for job_id, running in list(self._running.items()):
            code = running.process.poll()
            if code is None:
                continue
            del self._running[job_id]
            job = self.store.get_job(job_id)
            if job is None or job.state is not JobState.RUNNING:
                continue  # the worker recorded the outcome itself
            if job.cancel_requested:
                self._finish(job_id, JobState.CANCELLED, "")
                continue
            self._retry_or_fail(job_id, job.attempts, f"the worker process exited with code {code}")

    def _enforce_cancel(self) -> None:
        now = time.monotonic()
        for job_id, running in self._running.items():
            job = self.store.get_job(job_id)
            if job is None or not job.cancel_requested:
                continue
            if running.cancel_seen_at is None:
                running.cancel_seen_at = now
            elif now - running.cancel_seen_at > self.cancel_grace_seconds:
                running.process.kill()
