"""Core services: the plain-Python operations both transports call.

Adapters (gRPC, REST) convert wire types to the arguments below and the results back; all rules
live here, once.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mobiletrain.core.auth import Action, Role, can_see, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.events import FINAL_EVENT_GRACE_SECONDS, EventHub, is_final_event
from mobiletrain.core.ports import BlobDamaged, BlobStore, JobExecutor, MetadataStore, Predictor
from mobiletrain.core.release import (
    ReleaseAction,
    ReleasePolicy,
    ReleaseRecord,
    Rollout,
    VersionStatus,
)
from mobiletrain.core.storage import SpaceGuard, storage_full_error
from mobiletrain.core.types import (
    DEFAULT_MODEL_FORMAT,
    Artifact,
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobEvent,
    JobState,
    ModelFormat,
    ModelVersion,
    Page,
    Project,
    Sample,
    SampleResult,
    SampleStatus,
    TaskType,
    UploadSummary,
)
from mobiletrain.core.validation import (
    Limits,
    check_client_id,
    check_label,
    check_name,
    verify_image,
)


def _now() -> datetime:
    return datetime.now(UTC)


def _newest_released(versions: Sequence[ModelVersion]) -> int | None:
    """The newest version that is not a candidate (``versions`` newest first)."""
    return next((v.version for v in versions if v.status != "candidate"), None)


def parse_page_token(token: str) -> int:
    """Page tokens are opaque to clients; here they are a decimal cursor."""
    if not token:
        return 0
    if not (token.isascii() and token.isdigit()) or len(token) > 18:
        raise MobiletrainError(ErrorCode.INVALID_PAGE, "invalid page token")
    return int(token)


def check_page_size(size: int, limits: Limits, default: int = 100) -> int:
    """0 means the default; above the limit is the limit (a page size is a maximum, as both
    wires document it); below 0 is INVALID_PAGE. The one rule for gRPC and REST."""
    if size == 0:
        return min(default, limits.max_page_size)
    if size < 0:
        raise MobiletrainError(ErrorCode.INVALID_PAGE, f"page_size must be at least 0, got {size}")
    return min(size, limits.max_page_size)


DEFAULT_TOP_K = 5
"""Number of predictions when a request leaves ``top_k`` unset (0), on every wire."""


@dataclass
class EventPage:
    """Stored events of a job for a polling client, and whether it then has every event."""

    job: Job
    events: list[JobEvent]
    finished: bool


class ProjectService:
    """Create, find and list projects."""

    def __init__(self, store: MetadataStore, limits: Limits) -> None:
        self.store = store
        self.limits = limits

    def create(
        self,
        name: str,
        task: str = TaskType.IMAGE_CLASSIFICATION.value,
        labels: Sequence[str] = (),
        input_spec: InputSpec | None = None,
    ) -> Project:
        """Create a project; empty ``labels`` means an open label set."""
        require(Action.CREATE_PROJECT)
        check_name(name, self.limits)
        try:
            task_type = TaskType(task)
        except ValueError:
            allowed = ", ".join(t.value for t in TaskType)
            raise MobiletrainError(
                ErrorCode.UNSUPPORTED_TASK, f"unsupported task {task!r}; allowed: {allowed}"
            ) from None
        spec = input_spec or InputSpec()
        spec.validate()
        clean = [check_label(lab, self.limits) for lab in labels]
        if len(set(clean)) != len(clean):
            raise MobiletrainError(ErrorCode.INVALID_LABEL, "labels must be unique")
        if len(clean) > self.limits.max_labels_per_project:
            raise MobiletrainError(
                ErrorCode.INVALID_LABEL,
                f"{len(clean)} labels; a project may have {self.limits.max_labels_per_project}",
            )
        project = Project(
            id=str(uuid.uuid4()),
            name=name,
            task=task_type,
            labels=clean,
            labels_fixed=bool(clean),
            input_spec=spec,
            created_at=_now(),
        )
        return self.store.create_project(project)

    def get(self, ref: str) -> Project:
        """A project by id or by name."""
        project = self.store.get_project(ref) or self.store.get_project_by_name(ref)
        # Another project's device token learns nothing, not even that the project exists.
        if project is None or not can_see(project.id):
            raise MobiletrainError(ErrorCode.PROJECT_NOT_FOUND, f"project {ref!r} not found")
        return project

    def delete(self, ref: str) -> tuple[Project, int]:
        """Delete a project and all it owns (admins only): (the project, samples deleted).

        The rows go in one transaction; the bytes they referred to (samples, model files,
        federated weights) are removed by the next compaction pass, which deletes every blob
        nothing refers to. PROJECT_BUSY while a job of the project is queued or running.
        """
        require(Action.CREATE_PROJECT)
        project = self.get(ref)
        deleted = self.store.delete_project(project.id)
        if deleted is None:  # deleted by another call in the meantime
            raise MobiletrainError(ErrorCode.PROJECT_NOT_FOUND, f"project {ref!r} not found")
        return project, deleted

    def list(self, page_size: int = 0, page_token: str = "") -> Page:
        """Projects in creation order (a device token sees its own project only)."""
        size = check_page_size(page_size, self.limits)
        offset = parse_page_token(page_token)
        principal = current()
        if principal.role is Role.DEVICE:
            own = self.store.get_project(principal.project_id or "")
            return Page(items=[own] if own is not None and offset == 0 else [])
        items = self.store.list_projects(size + 1, offset)
        more = len(items) > size
        return Page(items=items[:size], next_page_token=str(offset + size) if more else "")


def damaged_sample_error(sample: Sample, what: str = "missing or damaged") -> MobiletrainError:
    """SAMPLE_DAMAGED naming the sample the way people find it again (label and client id)."""
    return MobiletrainError(
        ErrorCode.SAMPLE_DAMAGED,
        f"the stored bytes of sample {sample.id} (label {sample.label!r}, client id "
        f"{sample.client_id!r}) are {what}; upload the same image again to restore it",
        sample_id=sample.id,
    )


@dataclass
class IncomingSample:
    """One sample as an adapter received it; ``error`` marks one the adapter already rejected."""

    client_id: str
    label: str
    data: bytes
    error: MobiletrainError | None = None


@dataclass
class _Pending:
    # No reference to the incoming bytes: a batch must not keep up to batch_size samples alive.
    index: int
    sample: Sample


class DatasetService:
    """Ingest and manage labelled samples."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        projects: ProjectService,
        limits: Limits,
        verify_threads: int = 2,
        space: SpaceGuard | None = None,
        device_sample_access: str = "own",
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.projects = projects
        self.limits = limits
        # What a device token reads of the dataset: "own" (what it uploaded) or "none".
        self.device_sample_access = device_sample_access
        # Uploads are refused (STORAGE_FULL) while free space is below its reserve.
        self.space = space
        # Image decoding runs in C with the GIL released, so a small pool verifies the next
        # samples of a stream while this thread receives and commits.
        self._pool = (
            ThreadPoolExecutor(verify_threads, thread_name_prefix="verify")
            if verify_threads > 0
            else None
        )
        self._window = 4 * verify_threads

    def upload(
        self, project_ref: str, samples: Iterable[IncomingSample], batch_size: int = 128
    ) -> UploadSummary:
        """Validate and store samples one by one; a bad one is rejected, the rest go on.

        Samples are written in batches: blobs first and made durable, then one metadata
        transaction, so a row never points at a missing blob and a retry is idempotent.

        A full disk (or free space below the reserve) fails the whole call with STORAGE_FULL;
        the batches committed before stay stored, and a retry reports them as duplicates.
        """
        require(Action.UPLOAD)
        project = self.projects.get(project_ref)
        self.check_space()
        try:
            return self._upload(project, samples, batch_size)
        except Exception as exc:
            full = storage_full_error(exc)
            if full is None or full is exc:
                raise
            raise full from exc

    def check_space(self) -> None:
        """STORAGE_FULL while free space is below the reserve (cheap: cached statvfs)."""
        if self.space is not None:
            self.space.check()

    def _upload(
        self, project: Project, samples: Iterable[IncomingSample], batch_size: int
    ) -> UploadSummary:
        # Bytes of samples marked damaged (fsck --repair): a re-upload writes them again.
        # Almost always empty, so the normal path pays one small query per call.
        damaged = {s.sha256 for s in self.store.damaged_samples(project.id)}
        summary = UploadSummary()
        batch: list[_Pending] = []
        # Samples being verified, in arrival order; bounded so memory stays flat.
        in_flight: deque[tuple[int, Future[Sample]]] = deque()

        def settle(keep: int) -> None:
            nonlocal batch
            while len(in_flight) > keep:
                index, future = in_flight.popleft()
                try:
                    sample = future.result()
                except MobiletrainError as exc:
                    if exc.code is ErrorCode.STORAGE_FULL:
                        raise  # not this sample's fault: the whole call fails
                    summary.results[index].error_code = exc.code
                    summary.results[index].reason = exc.message
                    continue
                batch.append(_Pending(index, sample))
                if len(batch) >= batch_size:
                    self._commit(project, batch, summary)
                    batch = []

        try:
            for incoming in samples:
                summary.results.append(
                    SampleResult(client_id=incoming.client_id, status=SampleStatus.REJECTED)
                )
                in_flight.append(
                    (len(summary.results) - 1, self._submit(project, incoming, damaged))
                )
                settle(self._window)
            settle(0)
        finally:
            for _, future in in_flight:
                future.cancel()
        if batch:
            self._commit(project, batch, summary)
        return summary

    def _submit(
        self, project: Project, incoming: IncomingSample, damaged: set[str]
    ) -> Future[Sample]:
        if self._pool is not None:
            return self._pool.submit(self._prepare, project, incoming, damaged)
        future: Future[Sample] = Future()
        try:
            future.set_result(self._prepare(project, incoming, damaged))
        except MobiletrainError as exc:
            future.set_exception(exc)
        return future

    def _prepare(self, project: Project, incoming: IncomingSample, damaged: set[str]) -> Sample:
        if incoming.error is not None:
            raise incoming.error
        check_client_id(incoming.client_id, self.limits)
        check_label(incoming.label, self.limits)
        if project.labels_fixed and incoming.label not in project.labels:
            raise MobiletrainError(
                ErrorCode.UNKNOWN_LABEL,
                f"label {incoming.label!r} is not one of the project's labels: "
                f"{', '.join(project.labels)}",
            )
        info = verify_image(incoming.data, self.limits)
        self.check_space()
        if damaged and hashlib.sha256(incoming.data).hexdigest() in damaged:
            try:
                sha = self.blobs.restore(incoming.data)
            except (KeyError, BlobDamaged):
                raise MobiletrainError(
                    ErrorCode.SAMPLE_DAMAGED,
                    "the stored copy of these bytes is damaged and could not be replaced",
                ) from None
        else:
            sha = self.blobs.put(incoming.data)
        return Sample(
            id=str(uuid.uuid4()),
            project_id=project.id,
            client_id=incoming.client_id,
            label=incoming.label,
            sha256=sha,
            size=len(incoming.data),
            media_type=info.media_type,
            width=info.width,
            height=info.height,
            created_at=_now(),
        )

    def _within_quota(
        self, project: Project, batch: list[_Pending], summary: UploadSummary
    ) -> list[_Pending]:
        """The part of a batch the project's sample and byte quotas still allow.

        Conservative: duplicates in the batch count against the room left.
        """
        count, size = self.store.dataset_size(project.id)
        room, room_bytes = (
            self.limits.max_samples_per_project - count,
            self.limits.max_bytes_per_project - size,
        )
        kept: list[_Pending] = []
        for pending in batch:
            if room >= 1 and room_bytes >= pending.sample.size:
                kept.append(pending)
                room -= 1
                room_bytes -= pending.sample.size
                continue
            result = summary.results[pending.index]
            result.error_code = ErrorCode.QUOTA_EXCEEDED
            result.reason = (
                f"the project may hold {self.limits.max_samples_per_project} samples and "
                f"{self.limits.max_bytes_per_project} bytes; it is full"
            )
        return kept

    def _within_label_cap(
        self, project: Project, batch: list[_Pending], summary: UploadSummary
    ) -> list[_Pending]:
        """The part of a batch whose new labels still fit ``max_labels_per_project``."""
        if project.labels_fixed:
            return batch  # a fixed label set was capped when the project was created
        cap = self.limits.max_labels_per_project
        known = set(project.labels)
        kept: list[_Pending] = []
        for pending in batch:
            label = pending.sample.label
            if label in known or len(known) < cap:
                known.add(label)
                kept.append(pending)
                continue
            result = summary.results[pending.index]
            result.error_code = ErrorCode.INVALID_LABEL
            result.reason = f"the project has {cap} labels, the most it may have; {label!r} is new"
        return kept

    def _commit(self, project: Project, batch: list[_Pending], summary: UploadSummary) -> None:
        batch = self._within_label_cap(project, batch, summary)
        batch = self._within_quota(project, batch, summary)
        if not batch:
            return
        self.blobs.sync()
        if not project.labels_fixed:
            new_labels = [p.sample.label for p in batch if p.sample.label not in project.labels]
            if new_labels:
                project.labels = self.store.add_labels(project.id, new_labels)
        uploader = current().token_id  # this runs in the caller's thread (its context)
        for pending in batch:
            pending.sample.uploaded_by = uploader
        twins = self.store.add_samples([p.sample for p in batch])
        for pending, twin in zip(batch, twins, strict=True):
            result = summary.results[pending.index]
            if twin is None:
                result.status = SampleStatus.ACCEPTED
                result.sample_id = pending.sample.id
            elif twin.client_id == pending.sample.client_id and (
                twin.sha256 != pending.sample.sha256 or twin.label != pending.sample.label
            ):
                # The idempotency key was reused with another payload: refuse, never drop
                # silently (the stored sample stays as it was; its id is not revealed).
                result.error_code = ErrorCode.CLIENT_ID_CONFLICT
                result.reason = (
                    f"client id {twin.client_id!r} is already used by a sample with "
                    + ("other bytes" if twin.sha256 != pending.sample.sha256 else "another label")
                    + "; choose a new client id"
                )
            elif twin.damaged and twin.sha256 == pending.sample.sha256:
                self._restore(twin, result)
            else:
                # A retry (same client id, bytes and label) or the same bytes and label under
                # another client id: the stored sample stands for this one.
                result.status = SampleStatus.DUPLICATE
                result.sample_id = twin.id

    def _restore(self, twin: Sample, result: SampleResult) -> None:
        """The same bytes as a sample marked damaged arrived again: clear its mark once the
        blob store gives the bytes back intact (they were just written by ``_prepare``)."""
        result.sample_id = twin.id
        try:
            self.blobs.get(twin.sha256)
        except (KeyError, OSError):
            result.error_code = ErrorCode.SAMPLE_DAMAGED
            result.reason = "the stored copy of these bytes is still damaged; try again later"
            return
        self.store.set_samples_damaged([twin.id], False)
        result.status = SampleStatus.ACCEPTED
        result.reason = "restored: the sample's stored bytes had been damaged"

    def read_bytes(self, sample: Sample) -> bytes:
        """A sample's bytes; SAMPLE_DAMAGED when the blob store lost or damaged them."""
        try:
            return self.blobs.get(sample.sha256)
        except KeyError:
            raise damaged_sample_error(sample, "missing") from None
        except OSError as exc:
            # Read errors (EIO, a bad checksum) mean the copy on disk is not usable.
            raise damaged_sample_error(sample, "damaged") from exc

    def list(
        self, project_ref: str, label: str | None = None, page_size: int = 0, page_token: str = ""
    ) -> Page:
        """Samples in upload order, optionally of one label (a device token: its own)."""
        uploader = self._reader_scope()
        project = self.projects.get(project_ref)
        size = check_page_size(page_size, self.limits)
        items, cursor = self.store.list_samples(
            project.id, label or None, size, parse_page_token(page_token), uploaded_by=uploader
        )
        return Page(items=items, next_page_token=str(cursor) if cursor else "")

    def get(self, project_ref: str, sample_id: str) -> Sample:
        """One sample's metadata (a device token: only one it uploaded; others are "not
        found", giving no hint that they exist)."""
        uploader = self._reader_scope()
        project = self.projects.get(project_ref)
        sample = self.store.get_sample(project.id, sample_id)
        if sample is None or (uploader is not None and sample.uploaded_by != uploader):
            raise MobiletrainError(ErrorCode.SAMPLE_NOT_FOUND, f"sample {sample_id!r} not found")
        return sample

    def _reader_scope(self) -> str | None:
        """Whose samples the caller may read: None for all (admins), else its token id;
        PERMISSION_DENIED for a device token when device_sample_access is "none"."""
        principal = require(Action.READ_SAMPLES)
        if principal.role is Role.ADMIN:
            return None
        if self.device_sample_access != "own":
            raise MobiletrainError(
                ErrorCode.PERMISSION_DENIED, "device tokens may not read this server's datasets"
            )
        return principal.token_id

    def get_data(self, project_ref: str, sample_id: str) -> tuple[Sample, bytes]:
        """One sample with its bytes."""
        sample = self.get(project_ref, sample_id)
        return sample, self.read_bytes(sample)

    def delete(self, project_ref: str, sample_id: str) -> Sample:
        """Delete a sample and return what it was (its bytes stay while other samples share
        them)."""
        require(Action.DELETE_SAMPLE)  # before any lookup: a device learns nothing here
        project = self.projects.get(project_ref)
        sample = self.store.get_sample(project.id, sample_id)
        if sample is None or not self.store.delete_sample(project.id, sample_id):
            raise MobiletrainError(ErrorCode.SAMPLE_NOT_FOUND, f"sample {sample_id!r} not found")
        return sample

    def relabel(self, project_ref: str, sample_id: str, label: str) -> Sample:
        """Give a sample another label (a fixed label set must contain it; an open one learns
        it). ALREADY_EXISTS when the project has the same image with that label already."""
        require(Action.RELABEL)
        project = self.projects.get(project_ref)
        clean = check_label(label, self.limits)
        if project.labels_fixed and clean not in project.labels:
            raise MobiletrainError(
                ErrorCode.UNKNOWN_LABEL,
                f"label {clean!r} is not one of the project's labels: {', '.join(project.labels)}",
            )
        if self.store.get_sample(project.id, sample_id) is None:
            raise MobiletrainError(ErrorCode.SAMPLE_NOT_FOUND, f"sample {sample_id!r} not found")
        if not project.labels_fixed and clean not in project.labels:
            if len(project.labels) >= self.limits.max_labels_per_project:
                raise MobiletrainError(
                    ErrorCode.INVALID_LABEL,
                    f"the project has {len(project.labels)} labels, the most it may have; "
                    f"{clean!r} is new",
                )
            project.labels = self.store.add_labels(project.id, [clean])
        sample = self.store.relabel_sample(project.id, sample_id, clean)
        if sample is None:  # deleted in the meantime
            raise MobiletrainError(ErrorCode.SAMPLE_NOT_FOUND, f"sample {sample_id!r} not found")
        return sample

    def class_counts(self, project_ref: str) -> dict[str, int]:
        """Samples per label, including labels with none yet (administrators)."""
        project = self.projects.get(project_ref)  # another project's: "not found" first
        require(Action.MONITOR)
        counts = self.store.class_counts(project.id)
        return {label: counts.get(label, 0) for label in [*project.labels, *counts]}


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
            created_at=_now(),
        )
        self.store.create_job(job)
        self.store.append_event(job.id, EventKind.STATE, {"state": JobState.QUEUED.value})
        self.hub.notify()
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
        job = self.store.request_cancel(job_id)
        if job.state is JobState.CANCELLED:
            self.store.append_event(job.id, EventKind.STATE, {"state": JobState.CANCELLED.value})
            self.hub.notify()
        else:
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
        finished = job.finished_at or _now()
        return _now() - finished > timedelta(seconds=FINAL_EVENT_GRACE_SECONDS)

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


@dataclass
class Prediction:
    """One class score."""

    label: str
    index: int
    score: float


PREDICT_FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat.FLOAT32,
    ModelFormat.FLOAT16,
    ModelFormat.DYNAMIC_INT8,
    ModelFormat.INT8,
)
"""Classifier files Predict may use, best first: the most exact result the version offers."""


class ModelService:
    """The model registry: versions, manifests, downloads, update checks, inference."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        projects: ProjectService,
        predictor: Predictor | None,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.projects = projects
        self.predictor = predictor

    def current_version_number(self, project: Project) -> int | None:
        """The promoted version, else the newest released one (never a candidate), else None.

        The release gate and people promote explicitly; the fallback serves versions stored
        before the gate existed and projects whose pin was removed (``promote(0)``).
        """
        number = project.promoted_version
        if number is None:
            number = _newest_released(self.store.list_model_versions(project.id))
        rollout = project.rollout
        principal = current()
        # A staged rollout answers per device: tokens outside its share keep the previous one.
        if (
            rollout is not None
            and rollout.version == number
            and principal.role is Role.DEVICE
            and rollout.active(_now())
            and not rollout.serves_new(principal.token_id)
        ):
            return rollout.previous_version
        return number

    def list(self, project_ref: str) -> tuple[builtins.list[ModelVersion], int | None]:
        """All versions newest first, and the current version number."""
        project = self.projects.get(project_ref)
        versions = self.store.list_model_versions(project.id)
        current = project.promoted_version or _newest_released(versions)
        return versions, current

    def list_page(
        self, project_ref: str, page_size: int = 0, page_token: str = ""
    ) -> tuple[Page, int | None]:
        """A page of versions newest first, and the current version number."""
        size = check_page_size(page_size, self.projects.limits)
        start = parse_page_token(page_token)
        versions, current = self.list(project_ref)
        more = start + size < len(versions)
        page = Page(versions[start : start + size], str(start + size) if more else "")
        return page, current

    @staticmethod
    def status_of(model: ModelVersion, current: int | None) -> VersionStatus:
        """current, candidate (never released) or retired (current once, replaced since)."""
        if model.version == current:
            return VersionStatus.CURRENT
        if model.status == "candidate":
            return VersionStatus.CANDIDATE
        return VersionStatus.RETIRED

    def history(self, project_ref: str, limit: int = 100) -> builtins.list[ReleaseRecord]:
        """Which version was current when, and why; newest first."""
        project = self.projects.get(project_ref)
        if not 1 <= limit <= 1000:
            raise MobiletrainError(ErrorCode.INVALID_PAGE, f"limit must be in 1..1000, got {limit}")
        return self.store.list_releases(project.id, limit)

    def policy(self, project_ref: str) -> tuple[ReleasePolicy, bool]:
        """The project's release policy (defaults when never set) and whether it is pinned."""
        project = self.projects.get(project_ref)
        return project.release_policy or ReleasePolicy(), project.release_pinned

    def rollout(self, project_ref: str) -> Rollout | None:
        """The staged rollout in progress (None when every device gets the current version)."""
        project = self.projects.get(project_ref)
        rollout = project.rollout
        return rollout if rollout is not None and rollout.active(_now()) else None

    def set_policy(self, project_ref: str, policy: ReleasePolicy) -> ReleasePolicy:
        """Replace the project's release policy (INVALID_RELEASE_POLICY for a bad value)."""
        require(Action.PROMOTE)
        project = self.projects.get(project_ref)
        policy.validate()
        self.store.set_release_policy(project.id, policy)
        return policy

    def rollback(self, project_ref: str, reason: str = "") -> ModelVersion:
        """Undo the promotion of the current version: the version that was current before it
        was promoted is current again. Rollbacks themselves are not undone (a second rollback
        goes further back, it does not flip back).

        NO_PREVIOUS_VERSION when there is none (the first release, or no history).
        """
        require(Action.PROMOTE)
        project = self.projects.get(project_ref)
        current = self.current_version_number(project)
        target: int | None = None
        for record in self.store.list_releases(project.id, 1000):
            if record.action is not ReleaseAction.ROLLBACK and record.version == current:
                target = record.previous_version
                break
        if target is None and not self.store.list_releases(project.id, 1):
            # Versions released before the history existed: the newest older released one.
            older = [
                v
                for v in self.store.list_model_versions(project.id)
                if v.status != "candidate" and current is not None and v.version < current
            ]
            target = older[0].version if older else None
        if target is None or target == current:
            raise MobiletrainError(
                ErrorCode.NO_PREVIOUS_VERSION,
                f"version {current} has no earlier current version to roll back to",
            )
        return self._make_current(
            project, target, ReleaseAction.ROLLBACK, reason or "rolled back", pin=False
        )

    def get(self, project_ref: str, version: int = 0) -> ModelVersion:
        """A version; 0 means the current one."""
        project = self.projects.get(project_ref)
        if version == 0:
            current = self.current_version_number(project)
            if current is None:
                raise MobiletrainError(ErrorCode.NO_MODEL, "the project has no trained model yet")
            version = current
        # A number past the database's 64-bit integers names no version (and must not reach
        # SQL, which cannot bind it).
        fits = -(2**63) <= version < 2**63
        model = self.store.get_model_version(project.id, version) if fits else None
        if model is None:
            raise MobiletrainError(ErrorCode.MODEL_NOT_FOUND, f"model version {version} not found")
        return model

    def artifact(self, project_ref: str, version: int, fmt: str) -> tuple[ModelVersion, Artifact]:
        """The file of one format of a version (``fmt`` "": :data:`DEFAULT_MODEL_FORMAT`)."""
        model_format = ModelFormat.parse(fmt) if fmt else DEFAULT_MODEL_FORMAT
        model = self.get(project_ref, version)
        artifact = model.artifacts.get(model_format)
        if artifact is None:
            have = ", ".join(f.value for f in model.artifacts)
            raise MobiletrainError(
                ErrorCode.FORMAT_NOT_FOUND,
                f"version {model.version} has no {model_format.value!r} file; it has: {have}",
            )
        return model, artifact

    def read(
        self, artifact: Artifact, start: int = 0, length: int | None = None
    ) -> Iterator[bytes]:
        """Stream an artifact's bytes from ``start``."""
        require(Action.DOWNLOAD)
        if start < 0 or start > artifact.size:
            raise MobiletrainError(
                ErrorCode.INVALID_RANGE,
                f"offset {start} is outside the {artifact.size}-byte file "
                f"(valid offsets: 0 to {artifact.size})",
            )
        if length is None:
            length = artifact.size - start
        if length < 0 or start + length > artifact.size:
            raise MobiletrainError(
                ErrorCode.INVALID_RANGE,
                f"{length} bytes from offset {start} run past the end of the "
                f"{artifact.size}-byte file",
            )
        return self.blobs.read_range(artifact.sha256, start, length)

    def check_update(
        self, project_ref: str, fmt: str, have_sha256: str = "", have_version: int = 0
    ) -> tuple[bool, ModelVersion, Artifact]:
        """(not_modified, current version, its artifact) for an app that has a model already."""
        require(Action.DOWNLOAD)
        model, artifact = self.artifact(project_ref, 0, fmt)
        not_modified = (have_sha256 and have_sha256 == artifact.sha256) or (
            not have_sha256 and have_version == model.version
        )
        return bool(not_modified), model, artifact

    def promote(
        self, project_ref: str, version: int, pin: bool = False, reason: str = ""
    ) -> ModelVersion:
        """Make ``version`` the one apps get, whatever the gate said (a candidate too).

        ``pin``: the release gate then keeps every new version a candidate until someone
        promotes again. ``0`` removes the pin and the promotion: the newest released version
        is current. Every change is recorded in :meth:`history`.
        """
        require(Action.PROMOTE)
        project = self.projects.get(project_ref)
        if version == 0:
            newest = _newest_released(self.store.list_model_versions(project.id))
            if newest is None:
                raise MobiletrainError(ErrorCode.NO_MODEL, "the project has no released model")
            model = self._make_current(
                project,
                newest,
                ReleaseAction.MANUAL_PROMOTE,
                reason or "promotion removed: the newest released version is current",
                pin=False,
            )
            # No promoted version: the newest released one stays current as new ones arrive.
            self.store.set_promoted_version(project.id, None)
            return model
        return self._make_current(
            project, version, ReleaseAction.MANUAL_PROMOTE, reason or "promoted by hand", pin
        )

    def _make_current(
        self, project: Project, version: int, action: ReleaseAction, reason: str, pin: bool
    ) -> ModelVersion:
        if len(reason) > 1000:
            raise MobiletrainError(ErrorCode.FIELD_TOO_LONG, "reason is longer than 1000 chars")
        model = self.get(project.id, version)
        principal = current()
        actor = f"token {principal.token_id}" if principal.token_id else "server"
        self.store.change_current_version(
            ReleaseRecord(
                project_id=project.id,
                version=model.version,
                previous_version=None,
                action=action,
                reason=reason,
                actor=actor,
                created_at=_now(),
            ),
            pinned=pin,
        )
        return self.get(project.id, version)

    def predict(
        self, project_ref: str, image: bytes, version: int = 0, top_k: int = 0
    ) -> tuple[ModelVersion, builtins.list[Prediction], float]:
        """Top-k predictions for one encoded image, and latency in ms (``top_k`` 0 = unset:
        :data:`DEFAULT_TOP_K`; below 0: INVALID_ARGUMENT).

        Uses the best classifier file the version has, in the order of :data:`PREDICT_FORMATS`
        (float32, float16, dynamic-int8, int8); FORMAT_NOT_FOUND only when it has none.
        """
        require(Action.PREDICT)
        if top_k < 0:
            raise MobiletrainError(
                ErrorCode.INVALID_ARGUMENT, f"top_k must be at least 0, got {top_k}"
            )
        top_k = top_k or DEFAULT_TOP_K
        if self.predictor is None:
            raise MobiletrainError(ErrorCode.FAILED_PRECONDITION, "server-side inference is off")
        project = self.projects.get(project_ref)
        model = self.get(project.id, version)
        artifact = next((model.artifacts[f] for f in PREDICT_FORMATS if f in model.artifacts), None)
        if artifact is None:
            have = ", ".join(f.value for f in model.artifacts) or "none"
            raise MobiletrainError(
                ErrorCode.FORMAT_NOT_FOUND,
                f"version {model.version} has no classifier file to predict with "
                f"(float32, float16, dynamic-int8 or int8); it has: {have}",
            )
        # Verify first so a bad image gets the same precise error as an upload.
        verify_image(image, self.projects.limits)
        started = time.perf_counter()
        probs = self.predictor.predict(
            artifact.sha256, lambda: self.blobs.get(artifact.sha256), project.input_spec, image
        )
        latency_ms = (time.perf_counter() - started) * 1000
        labels = model.manifest.get("labels") or project.labels
        ranked = sorted(range(len(probs)), key=lambda i: probs[i], reverse=True)
        top = [Prediction(label=labels[i], index=i, score=float(probs[i])) for i in ranked[:top_k]]
        return model, top, latency_ms
