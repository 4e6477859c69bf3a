"""Training jobs: queue, inspect, cancel, and watch their events."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta

from mobiletrain.core.auth import Action, Role, can_see, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.events import FINAL_EVENT_GRACE_SECONDS, EventHub, is_final_event
from mobiletrain.core.lifecycle import JobLifecycle
from mobiletrain.core.ports import JobExecutor, MetadataStore
from mobiletrain.core.services.common import check_page_size, parse_page_token, utc_now
from mobiletrain.core.services.projects import ProjectService
from mobiletrain.core.types import (
    Hyperparameters,
    Job,
    JobEvent,
    JobState,
    Page,
)
from mobiletrain.core.validation import (
    Limits,
)


@dataclass
class EventPage:
    """Stored events of a job for a polling client, and whether it then has every event."""

    job: Job
    events: list[JobEvent]
    finished: bool


class TrainingService:
    """Queue, inspect, cancel and watch training jobs."""

    def __init__(
        self,
        store: MetadataStore,
        projects: ProjectService,
        executor: JobExecutor,
        hub: EventHub,
        limits: Limits,
    ) -> None:
        self.store = store
        self.projects = projects
        self.executor = executor
        self.hub = hub
        self.limits = limits
        # A job's state and its STATE event are written together, in one place.
        self.lifecycle = JobLifecycle(store, hub.notify)

    def start(self, project_ref: str, hyperparameters: Hyperparameters | None = None) -> Job:
        """Validate, queue a job and tell the executor."""
        require(Action.TRAIN)
        project = self.projects.get(project_ref)
        hp = hyperparameters or Hyperparameters()
        hp.validate()
        counts = {k: v for k, v in self.store.class_counts(project.id).items() if v > 0}
        if len(counts) < 2 or min(counts.values()) < 2:
            raise MobiletrainError(
                ErrorCode.NOT_ENOUGH_DATA,
                "training needs at least 2 labels with at least 2 samples each; "
                f"have {counts or 'none'}",
            )
        active = self.store.count_active_jobs(project.id)
        if active >= self.limits.max_active_jobs_per_project:
            raise MobiletrainError(
                ErrorCode.QUOTA_EXCEEDED,
                f"the project has {active} queued or running jobs; the limit is "
                f"{self.limits.max_active_jobs_per_project}",
            )
        job = Job(
            id=str(uuid.uuid4()),
            project_id=project.id,
            state=JobState.QUEUED,
            hyperparameters=hp,
            created_at=utc_now(),
        )
        self.lifecycle.created(job)
        self.executor.notify_queued(job.id)
        return job

    def get(self, job_id: str) -> Job:
        """A job by id."""
        job = self.store.get_job(job_id)
        if job is None or not can_see(job.project_id):
            raise MobiletrainError(ErrorCode.JOB_NOT_FOUND, f"job {job_id!r} not found")
        return job

    def list(
        self, project_ref: str | None = None, page_size: int = 0, page_token: str = ""
    ) -> Page:
        """Jobs newest first (a device token sees its own project's only)."""
        principal = current()
        if not project_ref and principal.role is Role.DEVICE:
            project_ref = principal.project_id
        project_id = self.projects.get(project_ref).id if project_ref else None
        size = check_page_size(page_size, self.limits)
        offset = parse_page_token(page_token)
        items = self.store.list_jobs(project_id, size + 1, offset)
        more = len(items) > size
        return Page(items=items[:size], next_page_token=str(offset + size) if more else "")

    def cancel(self, job_id: str) -> Job:
        """Ask a job to stop; a queued job is cancelled at once."""
        require(Action.CANCEL)
        job = self.get(job_id)
        if job.state.is_terminal:
            raise MobiletrainError(ErrorCode.JOB_FINISHED, f"job is already {job.state.value}")
        job = self.lifecycle.cancel(job_id)
        if job.state is not JobState.CANCELLED:
            self.executor.notify_cancel(job_id)
        return job

    def watch(
        self, job_id: str, after_seq: int = 0, cancelled: threading.Event | None = None
    ) -> Iterator[JobEvent | None]:
        """Events after ``after_seq`` until the job ends (``None`` items are heartbeats)."""
        finished = self.prepare_watch(job_id, after_seq)
        return self.hub.watch(job_id, after_seq, finished, cancelled)

    def watch_async(
        self,
        job_id: str,
        after_seq: int,
        finished: Callable[[], bool],
        stop: asyncio.Event | None = None,
    ) -> AsyncIterator[JobEvent | None]:
        """:meth:`watch` for asyncio servers, after :meth:`prepare_watch` (waiting holds no
        thread); ``stop`` ends it early."""
        return self.hub.watch_async(job_id, after_seq, finished, stop)

    def events_page(self, job_id: str, after_seq: int, page_size: int = 0) -> EventPage:
        """The stored events after ``after_seq`` (for polling clients), with "has the client
        now got every event, the final one included?"."""
        require(Action.WATCH)
        job = self.get(job_id)
        if after_seq < 0:
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "after_seq must be >= 0")
        events = self.store.list_events(job.id, after_seq, check_page_size(page_size, self.limits))
        return EventPage(job, events, self.delivered_all(job, after_seq, events))

    def delivered_all(self, job: Job, after_seq: int, returned: Sequence[JobEvent] = ()) -> bool:
        """True when ``job`` has ended and a client that has every event up to ``after_seq``
        (plus ``returned``) has its final state event: nothing more will come.

        A job that ended without a final event after the client's last one (its writer died
        in between) counts as delivered once :data:`FINAL_EVENT_GRACE_SECONDS` have passed,
        the same grace the live watch gives.
        """
        if not job.state.is_terminal:
            return False
        if returned:
            if is_final_event(returned[-1]):
                return True
            after_seq = returned[-1].seq
        if self.store.list_events(job.id, after_seq, 1):
            return False  # more events to deliver
        if not returned and after_seq > 0:
            seen = self.store.list_events(job.id, after_seq - 1, 1)
            if seen and seen[0].seq == after_seq and is_final_event(seen[0]):
                return True
        finished = job.finished_at or utc_now()
        return utc_now() - finished > timedelta(seconds=FINAL_EVENT_GRACE_SECONDS)

    def prepare_watch(self, job_id: str, after_seq: int) -> Callable[[], bool]:
        """Check that the caller may watch the job; returns "has the job finished?"."""
        require(Action.WATCH)
        self.get(job_id)
        if after_seq < 0:
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "after_seq must be >= 0")

        def finished() -> bool:
            job = self.store.get_job(job_id)
            return job is None or job.state.is_terminal

        return finished
