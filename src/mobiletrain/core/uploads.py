"""Resumable uploads of large samples: chunks survive dropped connections and restarts.

The protocol follows tus in spirit: open a session for a sample (idempotent per client id),
ask for its offset, send chunks that start exactly there (a wrong offset is a conflict that
tells the right one), optionally with a checksum per chunk (a mismatch discards the chunk).
Each chunk is stored as a blob and made durable before the session's offset moves, so the
offset a client is told is always backed by bytes, and the session lives in the metadata store
(any replica, any restart). The complete sample goes through the normal ingest path.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mobiletrain.core.auth import Action, can_see, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.services import DatasetService, IncomingSample, ProjectService
from mobiletrain.core.types import Sample, SampleResult, UploadSession
from mobiletrain.core.validation import check_client_id, check_label

SESSION_TTL = timedelta(hours=24)
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
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.projects = projects
        self.datasets = datasets
        self.limits = datasets.limits

    def open(
        self, project_ref: str, client_id: str, label: str, size: int, sha256: str = ""
    ) -> UploadStatus:
        """Start (or find again) the upload of one sample; tells the offset to send from."""
        require(Action.UPLOAD)
        project = self.projects.get(project_ref)
        check_client_id(client_id, self.limits)
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
            return status
        existing = status.session
        if existing is not None and (existing.size, existing.sha256, existing.label) == (
            size,
            sha256,
            label,
        ):
            return status
        if existing is not None:  # the client restarted with other content: start over
            self.store.delete_upload(existing.id)
        now = datetime.now(UTC)
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
                expires_at=now + SESSION_TTL,
            )
        )
        self.datasets.check_space()  # a new upload needs room; resuming one is let through
        return UploadStatus(client_id, session.offset, session.size, session, None)

    def status(self, project_ref: str, client_id: str) -> UploadStatus:
        """Offset of a sample's upload, or that it is stored already."""
        require(Action.UPLOAD)
        project = self.projects.get(project_ref)
        sample = self.store.get_sample_by_client_id(project.id, client_id)
        session = self.store.find_upload(project.id, client_id)
        if session is not None and (sample is not None or session.expires_at <= datetime.now(UTC)):
            # Finished sessions are dropped lazily, expired ones start over.
            self.store.delete_upload(session.id)
            session = None
        if sample is not None:
            return UploadStatus(client_id, sample.size, sample.size, None, sample)
        if session is None:
            return UploadStatus(client_id, 0, 0, None, None)
        return UploadStatus(client_id, session.offset, session.size, session, None)

    def get(self, upload_id: str) -> UploadSession:
        """A live session (hidden from other projects' device tokens)."""
        require(Action.UPLOAD)
        session = self.store.get_upload(upload_id)
        if (
            session is None
            or not can_see(session.project_id)
            or session.expires_at <= datetime.now(UTC)
        ):
            raise MobiletrainError(ErrorCode.UPLOAD_NOT_FOUND, f"upload {upload_id!r} not found")
        return session

    def append(
        if sample is not None and sample.damaged:
            sample = None  # its bytes are lost: let the client send them again to restore it
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
        key = self.blobs.put(data)
        self.blobs.sync()  # durable before the offset that promises it moves
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
        """Ingest a complete upload like any other sample, then drop the session."""
        session = self.get(upload_id)
        summary = self.datasets.upload(session.project_id, [self.assemble(session)])
        self.store.delete_upload(session.id)
        return summary.results[0]

    def abort(self, upload_id: str) -> None:
        """Drop a session (its chunks are garbage)."""
        session = self.get(upload_id)
        self.store.delete_upload(session.id)
        self.datasets.check_space()
