"""Resumable uploads of large samples: chunks survive dropped connections and restarts.

The protocol follows tus in spirit: open a session for a sample (idempotent per client id),
ask for its offset, send chunks that start exactly there (a wrong offset is a conflict that
tells the right one), optionally with a checksum per chunk (a mismatch discards the chunk).
Each chunk is stored as a blob and made durable before the session's offset moves, so the
offset a client is told is always backed by bytes, and the session lives in the metadata store
(any replica, any restart). The complete sample goes through the normal ingest path.

Every byte a client can park here is bounded: an open upload reserves its declared size
against the project's byte quota (with the stored samples, QUOTA_EXCEEDED past it), belongs
to the token that opened it (another device token gets UPLOAD_NOT_FOUND), and expires after
``ttl`` (default 24 h). Sessions are deleted when finished (accepted or rejected), aborted or
expired; expired ones are swept at most once a minute by the next call that opens an upload.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mobiletrain.core.auth import Action, Role, can_see, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.services import DatasetService, IncomingSample, ProjectService
from mobiletrain.core.storage import storage_full_error
from mobiletrain.core.types import Sample, SampleResult, TaskType, UploadSession
from mobiletrain.core.validation import check_client_id, check_label

SESSION_TTL = timedelta(hours=24)
"""Default lifetime of an unfinished upload (``upload_ttl_hours``)."""
SWEEP_INTERVAL_SECONDS = 60.0
"""Expired sessions are looked for at most this often."""
log = logging.getLogger("mobiletrain.uploads")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class UploadStatus:
    """Where a sample's upload stands."""

    client_id: str
    offset: int
    size: int
    session: UploadSession | None
    sample: Sample | None  # set when the sample is already stored


class ResumableUploads:
    """Open, continue, finish and abort chunked uploads."""

    def __init__(
        self,
        store: MetadataStore,
        blobs: BlobStore,
        projects: ProjectService,
        datasets: DatasetService,
        ttl: timedelta = SESSION_TTL,
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.projects = projects
        self.datasets = datasets
        self.limits = datasets.limits
        self.ttl = ttl
        self.sweep_interval = SWEEP_INTERVAL_SECONDS
        self._next_sweep = 0.0
        self._sweep_lock = threading.Lock()

    def open(
        self, project_ref: str, client_id: str, label: str, size: int, sha256: str = ""
    ) -> UploadStatus:
        """Start (or find again) the upload of one sample; tells the offset to send from."""
        require(Action.UPLOAD)
        project = self.projects.get(project_ref)
        check_client_id(client_id, self.limits)
        # An object-detection sample's label is derived from its boxes when it is ingested.
        detection = project.task is TaskType.OBJECT_DETECTION
        if detection:
            label = ""
        else:
            check_label(label, self.limits)
            if project.labels_fixed and label not in project.labels:
                raise MobiletrainError(
                    ErrorCode.UNKNOWN_LABEL, f"label {label!r} is not one of the project's labels"
                )
        if size <= 0:
            raise MobiletrainError(ErrorCode.EMPTY_SAMPLE, f"size must be positive, got {size}")
        if size > self.limits.max_sample_bytes:
            raise MobiletrainError(
                ErrorCode.SAMPLE_TOO_LARGE,
                f"sample is {size} bytes; the limit is {self.limits.max_sample_bytes}",
            )
        sha256 = sha256.lower()
        if sha256 and not _SHA256.match(sha256):
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "sha256 must be 64 hex digits")
        status = self.status(project.id, client_id)
        if status.sample is not None:
            stored = status.sample
            other_label = not detection and stored.label != label
            if stored.size != size or other_label or sha256 not in ("", stored.sha256):
                # The idempotency key is taken by another payload: an error, not "complete".
                raise MobiletrainError(
                    ErrorCode.CLIENT_ID_CONFLICT,
                    f"client id {client_id!r} is already used by a sample with other bytes or "
                    "another label; choose a new client id",
                )
            return status
        existing = status.session
        if existing is not None and (existing.size, existing.sha256, existing.label) == (
            size,
            sha256,
            label,
        ):
            return status
        self.datasets.check_space()  # a new upload needs room; resuming one is let through
        if existing is not None:  # the client restarted with other content: start over
            self.store.delete_upload(existing.id)
        self.sweep()
        now = datetime.now(UTC)
        self._check_quota(project.id, size, now)
        session = self.store.create_upload(
            UploadSession(
                id=str(uuid.uuid4()),
                project_id=project.id,
                client_id=client_id,
                label=label,
                size=size,
                sha256=sha256,
                offset=0,
                chunks=[],
                created_at=now,
                expires_at=now + self.ttl,
                uploaded_by=current().token_id,
            )
        )
        return UploadStatus(client_id, session.offset, session.size, session, None)

    def status(self, project_ref: str, client_id: str) -> UploadStatus:
        """Offset of a sample's upload, or that it is stored already.

        A device token sees only its own: a client id another token uploaded (or is
        uploading) is ALREADY_EXISTS, with nothing about the other sample."""
        principal = require(Action.UPLOAD)
        project = self.projects.get(project_ref)
        sample = self.store.get_sample_by_client_id(project.id, client_id)
        session = self.store.find_upload(project.id, client_id)
        if sample is not None and sample.damaged:
            sample = None  # its bytes are lost: let the client send them again to restore it
        if session is not None and (sample is not None or session.expires_at <= datetime.now(UTC)):
            # Finished sessions are dropped lazily, expired ones start over.
            self.store.delete_upload(session.id)
            session = None
        if principal.role is Role.DEVICE and any(
            item is not None and item.uploaded_by != principal.token_id
            for item in (sample, session)
        ):
            raise MobiletrainError(
                ErrorCode.ALREADY_EXISTS,
                f"client id {client_id!r} is used by another uploader; choose another",
            )
        if sample is not None:
            return UploadStatus(client_id, sample.size, sample.size, None, sample)
        if session is None:
            return UploadStatus(client_id, 0, 0, None, None)
        return UploadStatus(client_id, session.offset, session.size, session, None)

    def _check_quota(self, project_id: str, size: int, now: datetime) -> None:
        """QUOTA_EXCEEDED unless the stored samples, the other open uploads and this one fit
        in the project's byte quota (an open upload reserves its declared size)."""
        _, stored = self.store.dataset_size(project_id)
        pending = self.store.pending_upload_bytes(project_id, now)
        if stored + pending + size > self.limits.max_bytes_per_project:
            raise MobiletrainError(
                ErrorCode.QUOTA_EXCEEDED,
                f"the project holds {stored} bytes of samples and {pending} bytes of open "
                f"uploads; {size} more would pass its quota of "
                f"{self.limits.max_bytes_per_project} bytes",
            )

    def sweep(self, force: bool = False) -> int:
        """Delete expired sessions (at most once per ``sweep_interval`` unless ``force``);
        returns how many were deleted. Their chunks are then unreferenced: pack compaction
        reclaims them."""
        mono = time.monotonic()
        with self._sweep_lock:
            if not force and mono < self._next_sweep:
                return 0
            self._next_sweep = mono + self.sweep_interval
        gone = self.store.delete_expired_uploads(datetime.now(UTC))
        if gone:
            log.info("deleted %d expired resumable upload(s)", len(gone))
        return len(gone)

    def get(self, upload_id: str) -> UploadSession:
        """A live session of the caller (hidden from other projects' device tokens and from
        device tokens that did not open it)."""
        principal = require(Action.UPLOAD)
        session = self.store.get_upload(upload_id)
        if (
            session is None
            or not can_see(session.project_id)
            or session.expires_at <= datetime.now(UTC)
            or (principal.role is Role.DEVICE and session.uploaded_by != principal.token_id)
        ):
            raise MobiletrainError(ErrorCode.UPLOAD_NOT_FOUND, f"upload {upload_id!r} not found")
        return session

    def append(
        self, upload_id: str, offset: int, data: bytes, checksum: bytes | None = None
    ) -> UploadSession:
        """Add a chunk at exactly ``offset``; returns the session with its new offset."""
        session = self.get(upload_id)
        if offset != session.offset:
            raise MobiletrainError(
                ErrorCode.UPLOAD_OFFSET_MISMATCH,
                f"the upload is at offset {session.offset}, not {offset}",
                offset=session.offset,
            )
        if not data:
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "a chunk needs at least one byte")
        if checksum is not None and hashlib.sha256(data).digest() != checksum:
            raise MobiletrainError(
                ErrorCode.CHECKSUM_MISMATCH, "the chunk's sha256 does not match; it was discarded"
            )
        if offset + len(data) > session.size:
            raise MobiletrainError(
                ErrorCode.INVALID_ARGUMENT,
                f"the chunk ends at {offset + len(data)}, past the declared size {session.size}",
            )
        self.datasets.check_space()
        try:
            key = self.blobs.put(data)
            self.blobs.sync()  # durable before the offset that promises it moves
        except OSError as exc:
            full = storage_full_error(exc)
            if full is None:
                raise
            raise full from exc
        if not self.store.advance_upload(session.id, offset, key, len(data)):
            fresh = self.get(upload_id)
            raise MobiletrainError(
                ErrorCode.UPLOAD_OFFSET_MISMATCH,
                f"another chunk arrived first; the upload is at offset {fresh.offset}",
                offset=fresh.offset,
            )
        return self.get(upload_id)

    def assemble(self, session: UploadSession) -> IncomingSample:
        """The complete sample (rejected if the declared sha256 does not match)."""
        if session.offset != session.size:
            raise MobiletrainError(
                ErrorCode.INCOMPLETE_SAMPLE,
                f"the upload has {session.offset} of {session.size} bytes",
            )
        data = b"".join(self.blobs.get(key) for key in session.chunks)
        error = None
        if session.sha256 and hashlib.sha256(data).hexdigest() != session.sha256:
            error = MobiletrainError(
                ErrorCode.INCOMPLETE_SAMPLE, "the sample's sha256 does not match its declared one"
            )
        return IncomingSample(session.client_id, session.label, data, error)

    def finish(self, upload_id: str) -> SampleResult:
        """Ingest a complete upload like any other sample, then drop the session (accepted
        or rejected alike: a rejected sample's upload cannot be finished differently)."""
        session = self.get(upload_id)
        summary = self.datasets.upload(session.project_id, [self.assemble(session)])
        self.store.delete_upload(session.id)
        return summary.results[0]

    def forget(self, upload_ids: list[str]) -> None:
        """Drop sessions whose samples went through ingest (accepted or rejected)."""
        for upload_id in upload_ids:
            self.store.delete_upload(upload_id)

    def abort(self, upload_id: str) -> None:
        """Drop a session (its chunks are garbage)."""
        session = self.get(upload_id)
        self.store.delete_upload(session.id)
