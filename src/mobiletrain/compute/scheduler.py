"""The one job scheduler: claiming, lease reaping, the cancel grace and re-queueing.

Where a job's attempt runs is a :class:`Launcher`'s business (local worker processes in
:mod:`mobiletrain.compute.executor`, Ray actors in :mod:`mobiletrain.compute.ray_executor`);
what happens around it is decided here, once, for both:

* **Claiming.** ``store.claim_job`` is a compare-and-set, so replicas sharing a store never run
  a job twice; the scheduler claims while it has free slots and announces RUNNING.
* **Outcome.** The worker records success, failure and cancellation itself. When an attempt
  ends and the job is still RUNNING, the attempt was lost: cancelled if a cancel was asked,
  else re-queued until ``max_attempts``, then failed with the reason.
* **Cancel grace.** A worker sees the cancel flag between batches and stops; one that has not
  stopped ``cancel_grace_seconds`` after the scheduler first saw the flag is killed.
* **Leases.** Running jobs carry a lease their worker (or supervisor) renews. A job whose lease
  ran out and that no attempt of this scheduler runs lost its worker elsewhere (a killed
  server, another replica): :func:`reap_expired_leases` re-queues it. It is one plain function
  so that a fleet can run it on one replica only (a leader lease).
* **Stop.** Attempts still running when the server stops are ended and go back to the queue
  without costing an attempt; the next start resumes them from their last checkpoint.

Every state change goes through :class:`~mobiletrain.core.lifecycle.JobLifecycle`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Container
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from mobiletrain.core.events import EventHub
from mobiletrain.core.lifecycle import JobLifecycle
from mobiletrain.core.ports import JobExecutor, MetadataStore
from mobiletrain.core.storage import is_storage_full
from mobiletrain.core.types import Job, JobState

log = logging.getLogger(__name__)

SWEEP_INTERVAL_S = 60.0
"""How often the launcher removes the checkpoints of jobs that ended while no attempt ran."""

STORAGE_FULL_AT_START = (
    "the server's storage is full (no room for the job's folder); free space and train again"
)


class Attempt(Protocol):
    """One running attempt of a job, as its launcher started it."""

    def exit_reason(self) -> str | None:
        """None while the attempt runs; once it ended, why (used only if the job is still
        RUNNING, i.e. the worker recorded no outcome)."""
        ...

    def cancel_requested(self) -> None:
        """The job's cancel flag was first seen (the worker stops by itself; this is a hint)."""
        ...

    def kill(self) -> None:
        """End the attempt now (the cancel grace ran out)."""
        ...

    def stop(self) -> None:
        """The server stops: end the attempt and wait for it (briefly)."""
        ...

    def pids(self) -> list[int]:
        """Process ids of the attempt's workers, chief first (for operators and tests)."""
        ...


class Launcher(Protocol):
    """Starts attempts somewhere: local worker processes, Ray actors, ..."""

    def open(self) -> None:
        """Prepare (connect to a cluster, pre-start a warm worker)."""
        ...

    def launch(self, job: Job) -> Attempt:
        """Start an attempt of ``job`` (already claimed and announced RUNNING).

        Raising fails this attempt: a full disk fails the job at once, anything else costs
        one attempt.
        """
        ...

    def idle(self, free_slots: int) -> None:
        """Called on every scheduler round with the number of free slots (warm-up time)."""
        ...

    def job_ended(self, job_id: str) -> None:
        """The job reached a final state: remove what only a retry would have used."""
        ...

    def sweep(self, store: MetadataStore) -> None:
        """Remove leftovers (checkpoints) of jobs that ended while no attempt ran here."""
        ...

    def close(self) -> None:
        """Release what :meth:`open` took."""
        ...


def reap_expired_leases(
    store: MetadataStore,
    lifecycle: JobLifecycle,
    max_attempts: int,
    running_here: Container[str] = (),
    reason: str = "the job's worker stopped sending heartbeats",
) -> list[str]:
    """Re-queue (or fail) every running job whose lease ran out; returns their ids.

    Jobs in ``running_here`` are skipped: their scheduler sees their attempt end by itself.
    Safe to run on any number of replicas (a job re-queued twice is claimed once), cheaper on
    one.
    """
    reaped: list[str] = []
    for job in store.expired_jobs(datetime.now(UTC)):
        if job.id in running_here:
            continue
        lifecycle.retry_or_fail(job.id, job.attempts, max_attempts, reason)
        reaped.append(job.id)
    return reaped


@dataclass
class _Running:
    attempt: Attempt
    cancel_seen_at: float | None = None


class Scheduler(JobExecutor):
    """Claims queued jobs onto at most ``capacity`` attempts of one :class:`Launcher`."""

    def __init__(
        self,
        store: MetadataStore,
        hub: EventHub,
        launcher: Launcher,
        capacity: int = 1,
        max_attempts: int = 2,
        lease_seconds: float = 30.0,
        cancel_grace_seconds: float = 30.0,
        lease_reason: str = "the job's worker stopped sending heartbeats",
        reap_leases: bool = True,
    ) -> None:
        self.store = store
        self.hub = hub
        self.launcher = launcher
        self.lifecycle = JobLifecycle(store, hub.notify)
        # 0: this server claims no job (it only serves the API); leases are still reaped.
        self.capacity = max(0, capacity)
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.cancel_grace_seconds = cancel_grace_seconds
        self.lease_reason = lease_reason
        # False where a fleet runs the reaper on its leader only (reap_expired_leases).
        self.reap_leases = reap_leases
        self._running: dict[str, _Running] = {}
        self._lock = threading.Lock()  # _running is read by worker_pid() from other threads
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_sweep = 0.0
        self._full_logged = float("-inf")  # when "storage is full" was last logged

    # -- JobExecutor ---------------------------------------------------------------------------
    def notify_queued(self, job_id: str) -> None:
        """Wake the scheduler."""
        self._wake.set()

    def notify_cancel(self, job_id: str) -> None:
        """The worker sees the flag in the store; wake the scheduler to start the grace time."""
        self._wake.set()

    def start(self) -> None:
        """Open the launcher and begin scheduling (jobs a previous server left running come
        back as their leases expire)."""
        self.launcher.open()
        self._sweep()
        self._thread = threading.Thread(target=self._loop, name="job-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; running attempts end and their jobs go back to the queue."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            running = dict(self._running)
            self._running.clear()
        for job_id, run in running.items():
            run.attempt.stop()
            job = self.store.get_job(job_id)
            if job is not None and job.state is JobState.RUNNING:
                # At once (not after the lease), without costing an attempt.
                self.lifecycle.requeue(job_id, "the server stopped while the job ran")
                self._wake.set()
        self.launcher.close()

    def worker_pids(self, job_id: str) -> list[int]:
        """Process ids of the job's workers here, chief first (empty if it runs elsewhere)."""
        with self._lock:
            run = self._running.get(job_id)
        return run.attempt.pids() if run is not None else []

    def worker_pid(self, job_id: str) -> int | None:
        """Process id of the job's (chief) worker here, if any."""
        pids = self.worker_pids(job_id)
        return pids[0] if pids else None

    def running_job_ids(self) -> set[str]:
        """Jobs with an attempt of this scheduler running now."""
        with self._lock:
            return set(self._running)

    # -- one round -----------------------------------------------------------------------------
    def run_once(self) -> None:
        """One scheduling round: reap ended attempts and expired leases, enforce the cancel
        grace, launch queued jobs, let the launcher warm up."""
        self._reap()
        if self.reap_leases:
            self.reap_expired_leases()
        self._enforce_cancel()
        self._launch()
        with self._lock:
            free = self.capacity - len(self._running)
        self.launcher.idle(free)
        if time.monotonic() - self._last_sweep > SWEEP_INTERVAL_S:
            self._sweep()

    def reap_expired_leases(self) -> list[str]:
        """:func:`reap_expired_leases` for this scheduler's store, skipping its own attempts."""
        reaped = reap_expired_leases(
            self.store,
            self.lifecycle,
            self.max_attempts,
            self.running_job_ids(),
            self.lease_reason,
        )
        if reaped:
            self._wake.set()
        return reaped

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the scheduler must survive a transient database error
                if not is_storage_full(exc):
                    log.exception("scheduler round failed; retrying")
                elif time.monotonic() - self._full_logged > 60:  # one line a minute, no trace
                    self._full_logged = time.monotonic()
                    log.warning("the server's storage is full: jobs wait until space is back")
            self._wake.wait(timeout=0.5)
            self._wake.clear()

    def _sweep(self) -> None:
        self._last_sweep = time.monotonic()
        try:
            self.launcher.sweep(self.store)
        except Exception:  # a busy database or a vanished folder: next time
            log.warning("checkpoint sweep failed", exc_info=True)

    def _finish(self, job_id: str, state: JobState, error: str = "") -> None:
        # Leftovers first: a watcher that sees the final state finds them gone.
        self._job_ended(job_id)
        self.lifecycle.finish(job_id, state, error)

    def _retry_or_fail(self, job_id: str, attempts: int, reason: str) -> None:
        if self.lifecycle.retry_or_fail(
            job_id, attempts, self.max_attempts, reason, before_final=self._job_ended
        ):
            self._wake.set()

    def _job_ended(self, job_id: str) -> None:
        """The job ends now: remove what only a retry would have used."""
        try:
            self.launcher.job_ended(job_id)
        except OSError:  # cleanup must never keep the scheduler from going on
            log.warning("could not remove the checkpoints of job %s", job_id, exc_info=True)

    def _launch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                if len(self._running) >= self.capacity:
                    return
            job = self.store.claim_job(lease_seconds=self.lease_seconds)
            if job is None:
                return
            self.lifecycle.started(
                job, workers=job.hyperparameters.workers if job.hyperparameters.workers else None
            )
            try:
                attempt = self.launcher.launch(job)
            except Exception as exc:
                if is_storage_full(exc):
                    # Expected, not a bug: one line, and the job ends with the reason at once
                    # (retrying would only burn its attempts while the disk stays full).
                    log.warning("job %s not started: the server's storage is full", job.id)
                    self._finish(job.id, JobState.FAILED, STORAGE_FULL_AT_START)
                else:
                    log.exception("job %s: the attempt could not start", job.id)
                    self._retry_or_fail(
                        job.id, job.attempts, f"the attempt could not start: {exc}"[:300]
                    )
                continue
            with self._lock:
                self._running[job.id] = _Running(attempt)
            log.info("job %s attempt %d started (pids %s)", job.id, job.attempts, attempt.pids())

    def _reap(self) -> None:
        with self._lock:
            items = list(self._running.items())
        for job_id, run in items:
            reason = run.attempt.exit_reason()
            if reason is None:
                continue
            with self._lock:
                self._running.pop(job_id, None)
            job = self.store.get_job(job_id)
            if job is None or job.state is not JobState.RUNNING:
                continue  # the worker recorded the outcome itself
            if job.cancel_requested:
                self._finish(job_id, JobState.CANCELLED)
                continue
            self._retry_or_fail(job_id, job.attempts, reason)

    def _enforce_cancel(self) -> None:
        now = time.monotonic()
        with self._lock:
            items = list(self._running.items())
        for job_id, run in items:
            job = self.store.get_job(job_id)
            if job is None or not job.cancel_requested:
                continue
            if run.cancel_seen_at is None:
                run.cancel_seen_at = now
                run.attempt.cancel_requested()
            elif now - run.cancel_seen_at > self.cancel_grace_seconds:
                run.attempt.kill()
