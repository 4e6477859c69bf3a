"""Interfaces the core services depend on; implementations live in store/ and compute/.

Dependencies point inward: ``store.sql`` implements :class:`MetadataStore`, ``store.blobs``
implements :class:`BlobStore`, ``compute.executor`` implements :class:`JobExecutor`.
"""

from __future__ import annotations

import abc
import errno
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from mobiletrain.core.annotations import Box
from mobiletrain.core.release import ReleaseDecision, ReleasePolicy, ReleaseRecord, Rollout
from mobiletrain.core.types import (
    EventKind,
    InputSpec,
    Job,
    JobEvent,
    JobState,
    ModelVersion,
    Project,
    Sample,
    Token,
    UploadSession,
)


class BlobDamaged(OSError):
    """A blob is stored but its bytes no longer match their sha256 (bit rot, a torn write).

    An ``OSError`` (errno ``EIO``) so that code catching I/O errors still catches it; raised by
    :meth:`BlobStore.get` and :meth:`BlobStore.read_range` instead of ever returning wrong bytes.
    """

    def __init__(self, sha256: str, detail: str = "") -> None:
        message = f"blob {sha256} is damaged" + (f" ({detail})" if detail else "")
        super().__init__(errno.EIO, message)
        self.sha256 = sha256


class BlobStore(abc.ABC):
    """Content-addressed byte storage: the key of a blob is the sha256 of its bytes.

    The contract every implementation keeps (tests/contract/test_blob_store.py):

    * ``put`` returns only after the bytes are written; a failed write raises ``OSError`` with
      its errno (``ENOSPC``, ``EIO`` ...) and leaves the store consistent (later puts and reads
      work; the key of the failed put is not stored).
    * ``sync`` makes every blob put so far durable; callers sync before metadata refers to them.
    * ``get`` raises ``KeyError`` when the blob is absent and :class:`BlobDamaged` when it is
      present but its bytes are damaged; it never returns bytes that do not match the key.
    * ``delete_unreferenced`` (optional) removes blobs nobody refers to any more.
    """

    @abc.abstractmethod
    def put(self, data: bytes) -> str:
        """Store ``data`` (idempotent) and return its sha256 hex digest."""

    @abc.abstractmethod
    def get(self, sha256: str) -> bytes:
        """Return the bytes of a blob; raise ``KeyError`` when absent."""

    @abc.abstractmethod
    def size(self, sha256: str) -> int:
        """Size in bytes of a blob; raise ``KeyError`` when absent."""

    @abc.abstractmethod
    def read_range(
        self, sha256: str, start: int, length: int, chunk_size: int = 262144
    ) -> Iterator[bytes]:
        """Yield the bytes ``[start, start + length)`` of a blob in chunks."""

    @abc.abstractmethod
    def exists(self, sha256: str) -> bool:
        """True when the blob is stored."""

    def get_many(self, sha256s: Sequence[str]) -> list[bytes]:
        """The bytes of several blobs in order (remote stores fetch them concurrently)."""
        return [self.get(s) for s in sha256s]

    def keys(self) -> Iterable[str] | None:
        """Every stored key, when the store can list them cheaply (an index in memory); None
        otherwise, and callers ask :meth:`exists` per key (the start-up integrity check)."""
        return None

    def restore(self, data: bytes) -> str:
        """Store ``data`` again for a sample whose stored copy was found missing or damaged.

        Like :meth:`put`, but it must not settle for an existing copy that does not read back
        intact; raises :class:`BlobDamaged` when the bytes still cannot be read back. The
        default puts and verifies; stores whose ``put`` skips a known key override it to write
        a fresh copy.
        """
        key = self.put(data)
        self.get(key)  # KeyError or BlobDamaged when the store kept a bad copy
        return key

    def sync(self) -> None:  # noqa: B027 - optional hook
        """Make every blob put so far durable (before metadata refers to it)."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release files and connections."""


class MetadataStore(abc.ABC):
    """Rows about projects, samples, jobs, events and model versions."""

    # projects
    @abc.abstractmethod
    def create_project(self, project: Project) -> Project:
        """Insert a project; raise PROJECT_EXISTS when the name is taken."""

    @abc.abstractmethod
    def get_project(self, project_id: str) -> Project | None:
        """A project by id."""

    @abc.abstractmethod
    def get_project_by_name(self, name: str) -> Project | None:
        """A project by its unique name."""

    @abc.abstractmethod
    def list_projects(self, limit: int, offset: int) -> list[Project]:
        """Projects ordered by creation."""

    @abc.abstractmethod
    def add_labels(self, project_id: str, labels: Sequence[str]) -> list[str]:
        """Append labels not yet known (open label sets); return the full label list."""

    @abc.abstractmethod
    def set_promoted_version(self, project_id: str, version: int | None) -> None:
        """Pin the version apps get (None = latest)."""

    # samples
    @abc.abstractmethod
    def add_samples(self, samples: Sequence[Sample]) -> list[Sample | None]:
        """Insert samples idempotently.

        Returns, per input, ``None`` when it was inserted, or the already stored sample that has
        the same (project, client_id) or the same (project, sha256, label).
        """

    @abc.abstractmethod
    def get_sample(self, project_id: str, sample_id: str) -> Sample | None:
        """One sample by id."""

    @abc.abstractmethod
    def get_sample_by_client_id(self, project_id: str, client_id: str) -> Sample | None:
        """The sample stored under a client-chosen id."""

    @abc.abstractmethod
    def list_samples(
        self,
        project_id: str,
        label: str | None,
        limit: int,
        after: int,
        uploaded_by: str | None = None,
    ) -> tuple[list[Sample], int]:
        """Samples after cursor ``after`` (0 = start), and the next cursor (0 = the end);
        only those the token ``uploaded_by`` uploaded, when given."""

    @abc.abstractmethod
    def all_samples(self, project_id: str) -> list[Sample]:
        """Every sample of a project in insertion order (for training)."""

    @abc.abstractmethod
    def delete_sample(self, project_id: str, sample_id: str) -> bool:
        """Delete one sample; False when absent."""

    @abc.abstractmethod
    def delete_project(self, project_id: str) -> int | None:
        """Delete a project and every row that belongs to it, in one transaction.

        Returns the number of samples deleted, or None when the project is absent. Blobs stay
        until compaction finds nothing refers to them.
        """

    @abc.abstractmethod
    def relabel_sample(self, project_id: str, sample_id: str, label: str) -> Sample | None:
        """Give a sample another label; None when absent.

        Raises ALREADY_EXISTS when another sample of the project has the same bytes and
        ``label`` (the unique (project, sha256, label) rule).
        """

    @abc.abstractmethod
    def set_sample_boxes(
        self, project_id: str, sample_id: str, boxes: Sequence[Box], label: str
    ) -> Sample | None:
        """Replace a detection sample's boxes and its (derived) label; None when absent.

        Raises ALREADY_EXISTS like :meth:`relabel_sample` when the label change collides.
        """

    @abc.abstractmethod
    def box_counts(self, project_id: str) -> tuple[dict[str, int], int]:
        """Boxes per label over a project's detection samples, and the number of its
        detection images without boxes."""

    @abc.abstractmethod
    def class_counts(self, project_id: str) -> dict[str, int]:
        """Number of samples per label."""

    @abc.abstractmethod
    def dataset_size(self, project_id: str) -> tuple[int, int]:
        """(number of samples, their total bytes) of a project (for quotas)."""

    @abc.abstractmethod
    def scan_samples(self, after: int, limit: int) -> tuple[list[Sample], int]:
        """Samples of every project after cursor ``after`` (0 = start), in insertion order,
        and the next cursor (0 = the end); for integrity checks."""

    @abc.abstractmethod
    def set_samples_damaged(self, sample_ids: Sequence[str], damaged: bool) -> int:
        """Set or clear the damaged mark of samples; returns how many changed."""

    @abc.abstractmethod
    def damaged_samples(self, project_id: str | None = None) -> list[Sample]:
        """Samples marked damaged, of one project or of all, in insertion order."""

    # jobs
    @abc.abstractmethod
    def create_job(self, job: Job) -> Job:
        """Insert a queued job."""

    @abc.abstractmethod
    def get_job(self, job_id: str) -> Job | None:
        """A job by id."""

    @abc.abstractmethod
    def list_jobs(self, project_id: str | None, limit: int, offset: int) -> list[Job]:
        """Jobs, newest first."""

    @abc.abstractmethod
    def claim_job(self, job_id: str | None = None, lease_seconds: float = 60.0) -> Job | None:
        """Atomically move a queued job (the given one, or the oldest) to running, with a lease.

        Returns None when there is no such queued job.
        """

    @abc.abstractmethod
    def renew_lease(self, job_id: str, lease_seconds: float) -> bool:
        """Extend a running job's lease (the worker's heartbeat); False if it is not running."""

    @abc.abstractmethod
    def expired_jobs(self, now: datetime) -> list[Job]:
        """Running jobs whose lease ran out (their worker is gone)."""

    @abc.abstractmethod
    def finish_job(
        self, job_id: str, state: JobState, error: str = "", model_version: int | None = None
    ) -> Job:
        """Set a job's final (or re-queued) state."""

    @abc.abstractmethod
    def request_cancel(self, job_id: str) -> Job:
        """Flag a job for cancellation; a queued job is cancelled at once."""

    @abc.abstractmethod
    def count_active_jobs(self, project_id: str) -> int:
        """Queued plus running jobs of a project (for quotas)."""

    @abc.abstractmethod
    def list_jobs_in_state(self, state: JobState) -> list[Job]:
        """Jobs in one state, oldest first (for schedulers and reapers)."""

    # events
    @abc.abstractmethod
    def append_event(self, job_id: str, kind: EventKind, data: dict[str, Any]) -> JobEvent:
        """Append an event with the next sequence number of the job."""

    @abc.abstractmethod
    def list_events(self, job_id: str, after_seq: int, limit: int) -> list[JobEvent]:
        """Events with seq > after_seq in order."""

    @abc.abstractmethod
    def event_watermark(self) -> int:
        """A number that grows whenever any event is appended (cheap to poll)."""

    # models
    @abc.abstractmethod
    def create_model_version(self, model: ModelVersion) -> ModelVersion:
        """Insert a version; its number is assigned here (max + 1 per project)."""

    @abc.abstractmethod
    def get_model_version(self, project_id: str, version: int) -> ModelVersion | None:
        """One version."""

    @abc.abstractmethod
    def list_model_versions(self, project_id: str) -> list[ModelVersion]:
        """All versions, newest first."""

    @abc.abstractmethod
    def next_model_version(self, project_id: str) -> int:
        """The number the next version of a project would get (max + 1)."""

    # release gate (core.release)
    @abc.abstractmethod
    def assign_eval_set(self, project_id: str, assignments: dict[str, bool]) -> None:
        """Record evaluation-set membership of unassigned samples; assigned ones never move."""

    @abc.abstractmethod
    def set_release_policy(self, project_id: str, policy: ReleasePolicy | None) -> None:
        """Store a project's release policy (None: the defaults)."""

    @abc.abstractmethod
    def change_current_version(
        self,
        record: ReleaseRecord,
        pinned: bool,
        expected_current: int | None = -1,
        rollout: Rollout | None = None,
    ) -> ReleaseRecord | None:
        """Make ``record.version`` current and append ``record`` to the history, atomically;
        ``rollout`` replaces the project's staged rollout (None ends any).

        With ``expected_current`` (not -1) nothing changes, and None is returned, when the
        current version is no longer that one.
        """

    @abc.abstractmethod
    def list_releases(self, project_id: str, limit: int = 100) -> list[ReleaseRecord]:
        """The project's release history, newest first."""

    @abc.abstractmethod
    def set_model_decision(self, project_id: str, version: int, decision: ReleaseDecision) -> None:
        """Replace a version's stored release decision (when it lost a race to a person)."""

    # resumable uploads
    @abc.abstractmethod
    def create_upload(self, session: UploadSession) -> UploadSession:
        """Insert a session, or return the live one of the same (project, client_id)."""

    @abc.abstractmethod
    def get_upload(self, upload_id: str) -> UploadSession | None:
        """A session by id."""

    @abc.abstractmethod
    def find_upload(self, project_id: str, client_id: str) -> UploadSession | None:
        """The session of a sample's client id."""

    @abc.abstractmethod
    def advance_upload(self, upload_id: str, offset: int, chunk: str, length: int) -> bool:
        """Record a chunk at ``offset``; False if the session is no longer at that offset."""

    @abc.abstractmethod
    def delete_upload(self, upload_id: str) -> None:
        """Forget a session (finished, aborted or expired)."""

    @abc.abstractmethod
    def pending_upload_bytes(self, project_id: str, now: datetime) -> int:
        """Declared size of a project's unexpired resumable uploads (they count as quota)."""

    @abc.abstractmethod
    def delete_expired_uploads(self, now: datetime, limit: int = 1000) -> list[UploadSession]:
        """Delete up to ``limit`` expired upload sessions and return them."""

    # tokens
    @abc.abstractmethod
    def create_token(self, token: Token) -> None:
        """Insert a token record."""

    @abc.abstractmethod
    def get_token_by_hash(self, token_hash: str) -> Token | None:
        """The token whose secret has this sha256."""

    @abc.abstractmethod
    def list_tokens(self, project_id: str | None) -> list[Token]:
        """Tokens newest first, optionally of one project."""

    @abc.abstractmethod
    def revoke_token(self, token_id: str, when: datetime) -> Token | None:
        """Mark a token revoked; None when there is no such token."""

    @abc.abstractmethod
    def count_tokens(self) -> int:
        """How many tokens exist (0 on a fresh server)."""

    @abc.abstractmethod
    def referenced_blobs(self) -> set[str]:
        """The sha256 of every blob a row refers to: samples, resumable-upload chunks, model
        artifacts, federated session files and weights. Compaction of the blob store keeps
        these and drops every other blob."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class JobExecutor(abc.ABC):
    """Runs queued training jobs somewhere else than the API process."""

    @abc.abstractmethod
    def notify_queued(self, job_id: str) -> None:
        """A job was queued: schedule it soon."""

    @abc.abstractmethod
    def notify_cancel(self, job_id: str) -> None:
        """A running job was asked to stop."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Begin scheduling."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop scheduling and workers."""


class Predictor(abc.ABC):
    """Runs a model file on one sample of any task kind (server-side inference)."""

    @abc.abstractmethod
    def predict(
        self, model_key: str, load_model: Callable[[], bytes], spec: InputSpec, image: bytes
    ) -> list[float]:
        """Class probabilities for one sample (``image`` holds its bytes: image, WAV, CSV/JSON).

        Loaded models are cached by ``model_key``; ``load_model`` is called on a cache miss.
        """

    def ready(self, model_key: str, spec: InputSpec, image: bytes) -> bool:
        """Whether :meth:`predict_now` would be quick for this sample now (the model loaded,
        its recent calls short, the sample small): cheap enough to run on an event loop.
        Never loads anything; by default False (always use :meth:`predict` in a thread)."""
        return False

    def predict_now(self, model_key: str, spec: InputSpec, image: bytes) -> list[float] | None:
        """Like :meth:`predict` for a model already loaded, without waiting: None when the
        model is not loaded or no interpreter is free (then call :meth:`predict`)."""
        return None
