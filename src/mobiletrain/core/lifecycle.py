"""A job's life in one place: every state change writes the job row and its STATE event together.

Watchers follow a job through its STATE events (a stream ends at the terminal one), so a
state written without its event (or with a differently shaped one) leaves a watcher waiting
or shows the wrong state. Before this module, six call sites (the two executors, the worker,
the training service) each wrote both; now each of them calls one method here.

Pure core: it uses only the :class:`~mobiletrain.core.ports.MetadataStore` port and a
``notify`` callback (the event hub's, so that watchers on this replica wake at once).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mobiletrain.core.errors import ErrorCode
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import EventKind, Job, JobState


def _no_notify() -> None:
    """Without a hub (a worker process), watchers see the event at their next poll."""


class JobLifecycle:
    """Writes a job's state and the STATE event that announces it, in that order, once."""

    def __init__(self, store: MetadataStore, notify: Callable[[], None] | None = None) -> None:
        self.store = store
        self.notify = notify or _no_notify

    def _event(self, job_id: str, state: JobState, **extra: Any) -> None:
        data: dict[str, Any] = {"state": state.value}
        data.update({k: v for k, v in extra.items() if v is not None and v != ""})
        self.store.append_event(job_id, EventKind.STATE, data)
        self.notify()

    def created(self, job: Job) -> Job:
        """Insert a new queued job and announce it."""
        stored = self.store.create_job(job)
        self._event(stored.id, JobState.QUEUED)
        return stored

    def started(self, job: Job, workers: int | None = None) -> None:
        """A scheduler claimed ``job`` (the store already moved it to running with a lease)."""
        self._event(job.id, JobState.RUNNING, attempt=job.attempts, workers=workers)

    def requeue(self, job_id: str, reason: str) -> None:
        """Back to the queue after a lost attempt; the next attempt resumes its checkpoint."""
        self.store.finish_job(job_id, JobState.QUEUED, reason)
        self._event(job_id, JobState.QUEUED, error=f"{reason}; retrying")

    def finish(
        self,
        job_id: str,
        state: JobState,
        error: str = "",
        model_version: int | None = None,
        error_code: ErrorCode | None = None,
    ) -> JobState:
        """Record a final state; watchers end their stream at this event."""
        self.store.finish_job(job_id, state, error, model_version)
        self._event(
            job_id,
            state,
            error=error,
            error_code=error_code.number if error_code is not None else None,
            model_version=model_version,
        )
        return state

    def retry_or_fail(
        self,
        job_id: str,
        attempts: int,
        max_attempts: int,
        reason: str,
        before_final: Callable[[str], None] | None = None,
    ) -> bool:
        """An attempt was lost: re-queue while attempts remain, else fail with the reason.

        ``before_final(job_id)`` runs just before a final FAILED is written (the scheduler
        removes what only a retry would have used, so a watcher seeing FAILED finds it gone).
        Returns True when the job went back to the queue.
        """
        if attempts < max_attempts:
            self.requeue(job_id, reason)
            return True
        if before_final is not None:
            before_final(job_id)
        self.finish(job_id, JobState.FAILED, f"{reason} (after {attempts} attempts)")
        return False

    def cancel(self, job_id: str) -> Job:
        """Flag a job for cancellation; a queued one is cancelled (and announced) at once."""
        job = self.store.request_cancel(job_id)
        if job.state is JobState.CANCELLED:
            self._event(job.id, JobState.CANCELLED)
        return job
