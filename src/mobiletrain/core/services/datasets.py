"""Samples: ingest (batches and streams), list, read, relabel, delete, class counts."""

from __future__ import annotations

import hashlib
import uuid
from collections import deque
from collections.abc import Iterable, Sequence, Sized
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from mobiletrain.core.annotations import (
    Box,
    check_boxes,
    new_box_labels,
    sample_label,
)
from mobiletrain.core.auth import Action, Role, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import BlobDamaged, BlobStore, MetadataStore
from mobiletrain.core.services.common import check_page_size, parse_page_token, utc_now
from mobiletrain.core.services.projects import ProjectService
from mobiletrain.core.storage import SpaceGuard, storage_full_error
from mobiletrain.core.types import (
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
)
from mobiletrain.tasks import validate_sample


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
    """One sample as an adapter received it; ``error`` marks one the adapter already rejected.

    ``boxes``: an object-detection image's boxes (None: none sent; a detection project then
    stores the image without boxes). A detection sample's ``label`` is ignored: the server
    derives it from the boxes.
    """

    client_id: str
    label: str
    data: bytes
    error: MobiletrainError | None = None
    boxes: list[Box] | None = None


def _class_labels(sample: Sample) -> list[str]:
    """The project labels a sample uses: its box labels (detection) or its label."""
    if sample.boxes is not None:
        return new_box_labels(sample.boxes, ())
    return [sample.label]


@dataclass
class BoxStats:
    """Box counts of a detection project: boxes per label (every project label listed) and
    the number of images without boxes."""

    boxes_per_label: dict[str, int]
    images_without_boxes: int


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

        # One sample (a REST call per image): verified on this thread, no hand-off to the pool.
        inline = isinstance(samples, Sized) and len(samples) <= 1
        try:
            for incoming in samples:
                summary.results.append(
                    SampleResult(client_id=incoming.client_id, status=SampleStatus.REJECTED)
                )
                in_flight.append(
                    (len(summary.results) - 1, self._submit(project, incoming, damaged, inline))
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
        self, project: Project, incoming: IncomingSample, damaged: set[str], inline: bool = False
    ) -> Future[Sample]:
        if self._pool is not None and not inline:
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
        detection = project.task is TaskType.OBJECT_DETECTION
        if detection:
            pass  # the label comes from the boxes, checked once the image size is known
        elif incoming.boxes is not None:
            raise MobiletrainError(
                ErrorCode.INVALID_ANNOTATION,
                f"boxes belong to object-detection projects; this one is {project.task.value}",
            )
        else:
            check_label(incoming.label, self.limits)
            if project.labels_fixed and incoming.label not in project.labels:
                raise MobiletrainError(
                    ErrorCode.UNKNOWN_LABEL,
                    f"label {incoming.label!r} is not one of the project's labels: "
                    f"{', '.join(project.labels)}",
                )
        info = validate_sample(project.input_spec, incoming.data, self.limits)
        boxes: list[Box] | None = None
        label = incoming.label
        if detection:
            known = project.labels if project.labels_fixed else None
            boxes = check_boxes(incoming.boxes or [], info.width, info.height, known)
            label = sample_label(boxes)
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
            label=label,
            sha256=sha,
            size=len(incoming.data),
            media_type=info.media_type,
            width=info.width,
            height=info.height,
            created_at=utc_now(),
            boxes=boxes,
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
            new = [label for label in _class_labels(pending.sample) if label not in known]
            if len(known) + len(new) <= cap:
                known.update(new)
                kept.append(pending)
                continue
            result = summary.results[pending.index]
            result.error_code = (
                ErrorCode.INVALID_LABEL
                if pending.sample.boxes is None
                else ErrorCode.UNKNOWN_BOX_LABEL
            )
            result.reason = f"the project has {cap} labels, the most it may have; {new[0]!r} is new"
        return kept

    def _commit(self, project: Project, batch: list[_Pending], summary: UploadSummary) -> None:
        batch = self._within_label_cap(project, batch, summary)
        batch = self._within_quota(project, batch, summary)
        if not batch:
            return
        self.blobs.sync()
        if not project.labels_fixed:
            # Each label once, in first-seen order (detection: every box label).
            new_labels = list(
                dict.fromkeys(
                    label
                    for p in batch
                    for label in _class_labels(p.sample)
                    if label not in project.labels
                )
            )
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
                twin.sha256 != pending.sample.sha256
                or twin.label != pending.sample.label
                or twin.boxes != pending.sample.boxes
            ):
                # The idempotency key was reused with another payload: refuse, never drop
                # silently (the stored sample stays as it was; its id is not revealed).
                if twin.sha256 != pending.sample.sha256:
                    other = "other bytes"
                elif pending.sample.boxes is None:
                    other = "another label"
                else:  # a detection image's label follows its boxes
                    other = "other boxes (change them with UpdateSampleBoxes)"
                result.error_code = ErrorCode.CLIENT_ID_CONFLICT
                result.reason = (
                    f"client id {twin.client_id!r} is already used by a sample with {other}; "
                    "choose a new client id"
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

    def update_boxes(self, project_ref: str, sample_id: str, boxes: Sequence[Box]) -> Sample:
        """Replace a detection image's boxes ([] marks it as having none); its label follows
        (the most frequent box label, or ``_no_boxes_``). Same rights as relabelling; boxes
        are checked like at upload (codes 120-124); an open label set learns new box labels.
        """
        require(Action.RELABEL)  # before any lookup: a device learns nothing here
        project = self.projects.get(project_ref)
        sample = self.store.get_sample(project.id, sample_id)
        if sample is None:
            raise MobiletrainError(ErrorCode.SAMPLE_NOT_FOUND, f"sample {sample_id!r} not found")
        if project.task is not TaskType.OBJECT_DETECTION or sample.boxes is None:
            raise MobiletrainError(
                ErrorCode.INVALID_ANNOTATION,
                f"boxes belong to object-detection projects; this one is {project.task.value}",
            )
        known = project.labels if project.labels_fixed else None
        checked = check_boxes(boxes, sample.width, sample.height, known)
        if not project.labels_fixed:
            new = new_box_labels(checked, project.labels)
            if new:
                if len(project.labels) + len(new) > self.limits.max_labels_per_project:
                    raise MobiletrainError(
                        ErrorCode.UNKNOWN_BOX_LABEL,
                        f"the project has {len(project.labels)} labels, the most it may have; "
                        f"{new[0]!r} is new",
                    )
                project.labels = self.store.add_labels(project.id, new)
        updated = self.store.set_sample_boxes(project.id, sample_id, checked, sample_label(checked))
        if updated is None:  # deleted in the meantime
            raise MobiletrainError(ErrorCode.SAMPLE_NOT_FOUND, f"sample {sample_id!r} not found")
        return updated

    def box_stats(self, project_ref: str) -> BoxStats:
        """Boxes per label (every project label, 0 when unused) and the number of images
        without boxes (administrators)."""
        project = self.projects.get(project_ref)  # another project's: "not found" first
        require(Action.MONITOR)
        counts, empty = self.store.box_counts(project.id)
        labels = [*project.labels, *counts]
        return BoxStats(
            boxes_per_label={label: counts.get(label, 0) for label in labels},
            images_without_boxes=empty,
        )

    def class_counts(self, project_ref: str) -> dict[str, int]:
        """Samples per label, including labels with none yet (administrators)."""
        project = self.projects.get(project_ref)  # another project's: "not found" first
        require(Action.MONITOR)
        counts = self.store.class_counts(project.id)
        return {label: counts.get(label, 0) for label in [*project.labels, *counts]}
