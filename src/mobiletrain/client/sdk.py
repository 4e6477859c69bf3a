"""Python SDK over gRPC: what a phone app does, from Python.

The SDK preprocesses like a phone (resize to the project's input size before sending), uploads
in streamed batches with client-chosen ids (so a retry never doubles a sample), watches jobs with
automatic resume from the last sequence number, and downloads models with a sha256 check.

Results are the typed protobuf messages of ``proto/mobiletrain/v1`` (``Project``, ``Job``,
``ModelVersion`` ...). Errors: every failed call raises a :class:`ClientError` subclass by
gRPC status (:class:`NotFound`, :class:`InvalidArgument`, :class:`Unauthenticated` ... see
:mod:`mobiletrain.client.errors`) with the server's stable ``code`` number (see
``mobiletrain.core.errors.ErrorCode``) and message; ``except ClientError`` catches them all.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import grpc

from mobiletrain._proto.mobiletrain.v1 import (
    common_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from mobiletrain.client.channel import DEFAULT_SERVER, BearerToken, find_token, open_channel
from mobiletrain.client.errors import (
    AlreadyExists,
    ClientError,
    DataLoss,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    Unauthenticated,
    Unavailable,
)
from mobiletrain.client.samples import (
    IMAGE_SUFFIXES,
    LocalSample,
    UploadReport,
    boxes_from_proto,
    boxes_to_proto,
    client_resizes,
    prepare_image,
    scan_directory,
    task_suffixes,
)
from mobiletrain.client.spec import (
    ARCHITECTURES,
    COLOR_MODES,
    FORMATS,
    LONG_CLIPS,
    NORMALIZATIONS,
    RELEASE_MODES,
    SENSOR_FRAMINGS,
    TASKS,
    TOKEN_KINDS,
    audio_spec,
    detection_spec,
    sensor_spec,
    task_name,
)
from mobiletrain.core.annotations import Box
from mobiletrain.proto_enums import cli_name

# The SDK's public surface: the client, its errors and the sample helpers it takes.
__all__ = [
    "ARCHITECTURES",
    "COLOR_MODES",
    "DEFAULT_SERVER",
    "FORMATS",
    "IMAGE_SUFFIXES",
    "LONG_CLIPS",
    "NORMALIZATIONS",
    "SENSOR_FRAMINGS",
    "TASKS",
    "AlreadyExists",
    "BearerToken",
    "Box",
    "Client",
    "ClientError",
    "DataLoss",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "LocalSample",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "UploadReport",
    "audio_spec",
    "boxes_from_proto",
    "boxes_to_proto",
    "client_resizes",
    "detection_spec",
    "find_token",
    "prepare_image",
    "scan_directory",
    "sensor_spec",
    "task_name",
    "task_suffixes",
]

R = TypeVar("R")

_RESUMABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
"""Statuses after which watch_job reconnects from the last event it saw."""

# Keep each stream message well under gRPC's default 4 MiB limit.
_BATCH_BYTES = 2 * 1024 * 1024
_INLINE_LIMIT = 1024 * 1024
_CHUNK = 256 * 1024

TERMINAL_STATES = {
    training_pb2.JOB_STATE_SUCCEEDED,
    training_pb2.JOB_STATE_FAILED,
    training_pb2.JOB_STATE_CANCELLED,
}


class Client:
    """A connection to a mobiletrain server's gRPC API."""

    def __init__(
        self,
        server: str | None = None,
        token: str | None = None,
        timeout: float = 60.0,
        tls_ca_file: str | Path | None = None,
        tls_cert_file: str | Path | None = None,
        tls_key_file: str | Path | None = None,
    ) -> None:
        """Connect to ``server`` (host:port); TLS when a CA file is given (or
        ``MOBILETRAIN_TLS_CA``), with a client certificate for mutual TLS."""
        self.server = server or os.environ.get("MOBILETRAIN_SERVER") or DEFAULT_SERVER
        self.timeout = timeout
        self._raw_channel = open_channel(self.server, tls_ca_file, tls_cert_file, tls_key_file)
        secret = find_token(token)
        self.channel: grpc.Channel = (
            grpc.intercept_channel(self._raw_channel, BearerToken(secret))
            if secret
            else self._raw_channel
        )
        self.projects = projects_pb2_grpc.ProjectServiceStub(self.channel)
        self.datasets = datasets_pb2_grpc.DatasetServiceStub(self.channel)
        self.training = training_pb2_grpc.TrainingServiceStub(self.channel)
        self.models = models_pb2_grpc.ModelServiceStub(self.channel)
        self.tokens = tokens_pb2_grpc.TokenServiceStub(self.channel)

    def close(self) -> None:
        """Close the channel."""
        self._raw_channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, fn: Callable[..., R], request: Any, **kw: Any) -> R:
        try:
            return fn(request, timeout=kw.pop("timeout", self.timeout), **kw)
        except grpc.RpcError as err:
            raise ClientError.from_rpc(err) from None

    # -- projects ------------------------------------------------------------------------------
    def create_project(
        self,
        name: str,
        labels: Iterable[str] = (),
        width: int = 96,
        height: int = 96,
        color_mode: str = "rgb",
        normalization: str = "zero-one",
        task: str = "image-classification",
        task_spec: common_pb2.AudioSpec
        | common_pb2.SensorSpec
        | common_pb2.DetectionSpec
        | None = None,
    ) -> projects_pb2.Project:
        """Create a project (empty labels = open label set).

        ``task``: ``image-classification`` (``width`` ... ``normalization`` apply),
        ``audio-classification`` or ``sensor-classification`` (short: ``audio``, ``sensor``),
        whose settings come from :func:`audio_spec` / :func:`sensor_spec` (None: the server's
        defaults), or ``object-detection`` (short: ``detection``; the image fields apply, and
        a ``DetectionSpec``).
        """
        task = task_name(task)
        if task in ("image-classification", "object-detection"):
            spec = common_pb2.InputSpec(
                width=width,
                height=height,
                color_mode=COLOR_MODES[color_mode],
                normalization=NORMALIZATIONS[normalization],
            )
        else:
            spec = common_pb2.InputSpec()  # the image fields do not apply
        if isinstance(task_spec, common_pb2.AudioSpec):
            spec.audio.CopyFrom(task_spec)
        elif isinstance(task_spec, common_pb2.SensorSpec):
            spec.sensor.CopyFrom(task_spec)
        elif isinstance(task_spec, common_pb2.DetectionSpec):
            spec.detection.CopyFrom(task_spec)
        request = projects_pb2.CreateProjectRequest(
            name=name,
            task=TASKS[task],
            labels=list(labels),
            input_spec=spec,
        )
        return self._call(self.projects.CreateProject, request)

    def get_project(self, project: str) -> projects_pb2.Project:
        """A project by id or name."""
        return self._call(self.projects.GetProject, projects_pb2.GetProjectRequest(project=project))

    def project_task(self, project: str) -> str:
        """The project's task by name (``image-classification``; unset means images)."""
        number = self.get_project(project).task
        return cli_name(common_pb2.TaskType, number) if number else "image-classification"

    def list_projects(self) -> list[projects_pb2.Project]:
        """Every project (all pages)."""
        out, token = [], ""
        while True:
            resp = self._call(
                self.projects.ListProjects, projects_pb2.ListProjectsRequest(page_token=token)
            )
            out += list(resp.projects)
            token = resp.next_page_token
            if not token:
                return out

    def delete_project(self, project: str) -> projects_pb2.DeleteProjectResponse:
        """Delete a project and all it owns; its bytes go at the next compaction."""
        return self._call(
            self.projects.DeleteProject, projects_pb2.DeleteProjectRequest(project=project)
        )

    # -- datasets ------------------------------------------------------------------------------
    def existing_client_ids(self, project: str) -> set[str]:
        """Client ids already stored in the project (to skip re-sending them)."""
        ids: set[str] = set()
        token = ""
        while True:
            resp = self._call(
                self.datasets.ListSamples,
                datasets_pb2.ListSamplesRequest(project=project, page_size=1000, page_token=token),
            )
            ids.update(s.client_id for s in resp.samples)
            token = resp.next_page_token
            if not token:
                return ids

    def upload(
        self,
        project: str,
        samples: Iterable[LocalSample],
        on_sent: Callable[[int], None] | None = None,
    ) -> UploadReport:
        """Stream samples in one UploadSamples call (batched; large ones chunked)."""

        def requests() -> Iterator[datasets_pb2.UploadSamplesRequest]:
            first = True
            batch: list[datasets_pb2.InlineSample] = []
            size = 0

            def flush() -> datasets_pb2.UploadSamplesRequest:
                nonlocal first, batch, size
                msg = datasets_pb2.UploadSamplesRequest(
                    project=project if first else "",
                    inline_batch=datasets_pb2.InlineSampleBatch(samples=batch),
                )
                first, batch, size = False, [], 0
                return msg

            for s in samples:
                if len(s.data) > _INLINE_LIMIT:
                    if batch:
                        yield flush()
                    yield from self._chunked(project, project if first else "", s)
                    first = False
                else:
                    batch.append(
                        datasets_pb2.InlineSample(
                            client_id=s.client_id,
                            label=s.label,
                            data=s.data,
                            boxes=boxes_to_proto(s.boxes or ()),
                        )
                    )
                    size += len(s.data)
                    if size >= _BATCH_BYTES:
                        yield flush()
                if on_sent is not None:
                    on_sent(1)
            if batch or first:
                yield flush()

        report = UploadReport()
        report.add(self._call(self.datasets.UploadSamples, requests(), timeout=3600))
        return report

    def upload_offset(self, project: str, client_id: str) -> datasets_pb2.UploadOffset:
        """How many bytes of a chunked sample the server holds (``stored`` if all of it)."""
        return self._call(
            self.datasets.GetUploadOffset,
            datasets_pb2.GetUploadOffsetRequest(project=project, client_id=client_id),
        )

    def _chunked(
        self, project: str, stream_project: str, s: LocalSample
    ) -> Iterator[datasets_pb2.UploadSamplesRequest]:
        # Resume where an earlier, broken stream left this sample.
        have = self.upload_offset(project, s.client_id)
        start = 0 if have.stored or have.size != len(s.data) else int(have.offset)
        yield datasets_pb2.UploadSamplesRequest(
            project=stream_project,
            header=datasets_pb2.SampleHeader(
                client_id=s.client_id,
                label=s.label,
                size=len(s.data),
                sha256=hashlib.sha256(s.data).hexdigest(),
                boxes=boxes_to_proto(s.boxes or ()),
            ),
        )
        if have.stored:
            return  # the server answers DUPLICATE and expects no chunks
        for offset in range(start, len(s.data), _CHUNK):
            yield datasets_pb2.UploadSamplesRequest(
                chunk=datasets_pb2.SampleChunk(
                    client_id=s.client_id, offset=offset, data=s.data[offset : offset + _CHUNK]
                )
            )

    def upload_directory(
        self,
        project: str,
        root: Path,
        on_total: Callable[[int], None] | None = None,
        on_sent: Callable[[int], None] | None = None,
        retries: int = 5,
    ) -> UploadReport:
        """Upload DIR/<label>/* with client-side resizing; files already stored are skipped.

        Client ids are the paths relative to ``root``, so running it again sends nothing new,
        and a retry after a dropped connection never doubles a sample.
        """
        info = self.get_project(project)
        spec = info.input_spec
        grayscale = spec.color_mode == common_pb2.COLOR_MODE_GRAYSCALE
        task = cli_name(common_pb2.TaskType, info.task) if info.task else "image-classification"
        files = scan_directory(root, task_suffixes(task))
        # Images are resized like the phone app does; other samples go as they are.
        resize = client_resizes(task)
        report = UploadReport(rejections=[])
        for attempt in range(retries + 1):
            try:
                have = self.existing_client_ids(info.id)
                todo = [f for f in files if f[0] not in have]
                report.skipped = len(files) - len(todo) - report.accepted
                if on_total is not None:
                    on_total(len(todo))
                if not todo:
                    return report
                samples = self._prepared(todo, spec, grayscale, resize)
                part = self.upload(info.id, samples, on_sent=on_sent)
            except ClientError as err:
                # A dropped connection or a restarting server: ask what arrived, send the rest.
                if err.status != "UNAVAILABLE" or attempt == retries:
                    raise
                time.sleep(min(2**attempt * 0.5, 10))
                continue
            report.accepted += part.accepted
            report.duplicates += part.duplicates
            report.rejected += part.rejected
            report.rejections = (report.rejections or []) + (part.rejections or [])
            return report
        return report

    @staticmethod
    def _prepared(
        todo: list[tuple[str, str, Path]],
        spec: common_pb2.InputSpec,
        grayscale: bool,
        resize: bool = True,
    ) -> Iterator[LocalSample]:
        for client_id, label, path in todo:
            raw = path.read_bytes()
            if not resize:
                yield LocalSample(client_id, label, raw)
                continue
            try:
                data = prepare_image(raw, spec.width, spec.height, grayscale)
            except Exception:
                data = raw  # let the server say precisely what is wrong with it
            yield LocalSample(client_id, label, data)

    def class_counts(self, project: str) -> dict[str, int]:
        """Samples per label."""
        resp = self._call(
            self.datasets.GetClassCounts, datasets_pb2.GetClassCountsRequest(project=project)
        )
        return {c.label: c.count for c in resp.counts}

    def box_counts(self, project: str) -> tuple[dict[str, int], int]:
        """Object detection: boxes per label (label order) and the images without boxes."""
        resp = self._call(
            self.datasets.GetClassCounts, datasets_pb2.GetClassCountsRequest(project=project)
        )
        return {c.label: c.count for c in resp.box_counts}, resp.images_without_boxes

    def samples(self, project: str, label: str = "") -> Iterator[datasets_pb2.Sample]:
        """Every sample of a project (of one label), in upload order, page by page."""
        token = ""
        while True:
            resp = self._call(
                self.datasets.ListSamples,
                datasets_pb2.ListSamplesRequest(
                    project=project, label=label, page_size=1000, page_token=token
                ),
            )
            yield from resp.samples
            token = resp.next_page_token
            if not token:
                return

    def sample_data(self, project: str, sample_id: str) -> bytes:
        """A sample's stored bytes."""
        request = datasets_pb2.GetSampleDataRequest(project=project, sample_id=sample_id)
        stream = self._call(self.datasets.GetSampleData, request, timeout=600)
        return b"".join(part.data for part in stream)

    def update_boxes(
        self, project: str, sample_id: str, boxes: Iterable[Box]
    ) -> datasets_pb2.Sample:
        """Object detection: replace an image's boxes (empty: none); returns the sample with
        its new derived label."""
        request = datasets_pb2.UpdateSampleBoxesRequest(
            project=project, sample_id=sample_id, boxes=boxes_to_proto(boxes)
        )
        return self._call(self.datasets.UpdateSampleBoxes, request)

    # -- training ------------------------------------------------------------------------------
    def start_job(self, project: str, **hyperparameters: Any) -> training_pb2.Job:
        """Queue a training job; keyword arguments are the Hyperparameters fields."""
        hp = training_pb2.Hyperparameters()
        for key, value in hyperparameters.items():
            if value is None:
                continue
            if key == "architecture":
                hp.architecture = ARCHITECTURES[value]
            elif key == "formats":
                hp.formats.extend(FORMATS[f] for f in value)
            else:
                setattr(hp, key, value)
        return self._call(
            self.training.StartJob,
            training_pb2.StartJobRequest(project=project, hyperparameters=hp),
        )

    def get_job(self, job_id: str) -> training_pb2.Job:
        """A job by id."""
        return self._call(self.training.GetJob, training_pb2.GetJobRequest(job_id=job_id))

    def list_jobs(self, project: str) -> list[training_pb2.Job]:
        """A project's jobs (all pages), in the server's order (newest first)."""
        out, token = [], ""
        while True:
            resp = self._call(
                self.training.ListJobs,
                training_pb2.ListJobsRequest(project=project, page_size=100, page_token=token),
            )
            out += list(resp.jobs)
            token = resp.next_page_token
            if not token:
                return out

    def cancel_job(self, job_id: str) -> training_pb2.Job:
        """Ask a job to stop."""
        return self._call(self.training.CancelJob, training_pb2.CancelJobRequest(job_id=job_id))

    def watch_job(
        self, job_id: str, after_seq: int = 0, retries: int = 10
    ) -> Iterator[training_pb2.JobEvent]:
        """Yield JobEvents until the job ends, reconnecting from the last seq seen."""
        seq = after_seq
        failures = 0
        while True:
            try:
                stream = self.training.WatchJob(
                    training_pb2.WatchJobRequest(job_id=job_id, after_seq=seq)
                )
                for ev in stream:
                    failures = 0
                    seq = ev.seq
                    yield ev
                return
            except grpc.RpcError as err:
                if err.code() is grpc.StatusCode.DEADLINE_EXCEEDED:
                    continue  # the stream reached the server's maximum age: reconnect at once
                # A balancer ends a dead replica's stream without a status: UNKNOWN. Every one
                # of these is resumable from `seq`.
                if err.code() not in _RESUMABLE:
                    raise ClientError.from_rpc(err) from None
                failures += 1
                if failures > retries:
                    raise ClientError.from_rpc(err) from None
                time.sleep(min(0.5 * 2**failures, 10))

    # -- models --------------------------------------------------------------------------------
    def list_versions(self, project: str) -> list[models_pb2.ModelVersion]:
        """Model versions, newest first."""
        resp = self._call(
            self.models.ListModelVersions, models_pb2.ListModelVersionsRequest(project=project)
        )
        return list(resp.versions)

    def manifest(self, project: str, version: int = 0) -> dict[str, Any]:
        """The manifest of a version (0 = current) as a dict."""
        resp = self._call(
            self.models.GetManifest, models_pb2.GetManifestRequest(project=project, version=version)
        )
        return dict(json.loads(resp.manifest_json))

    def download_model(
        self,
        project: str,
        path: Path,
        fmt: str = "float32",
        version: int = 0,
        on_progress: Callable[[int, int], None] | None = None,
    ) -> models_pb2.ModelFileInfo:
        """Download a model file to ``path`` (resuming a partial ``path.part``), verify sha256."""
        part = path.with_name(path.name + ".part")
        offset = part.stat().st_size if part.exists() else 0
        request = models_pb2.DownloadModelRequest(
            project=project, version=version, format=FORMATS[fmt], offset=offset
        )
        info = None
        try:
            with open(part, "ab") as fh:
                for msg in self.models.DownloadModel(request, timeout=3600):
                    if msg.HasField("info"):
                        info = msg.info
                        if info.size < offset:  # a different file: start over
                            fh.truncate(0)
                            return self.download_model(project, path, fmt, info.version)
                        continue
                    fh.write(msg.data)
                    if on_progress is not None and info is not None:
                        on_progress(msg.offset + len(msg.data), info.size)
        except grpc.RpcError as err:
            raise ClientError.from_rpc(err) from None
        assert info is not None
        digest = hashlib.sha256(part.read_bytes()).hexdigest()
        if digest != info.sha256:
            part.unlink()
            raise ClientError(0, "DATA_LOSS", "downloaded file does not match its sha256")
        part.replace(path)  # atomic switch: the app never sees a half-written model
        return info

    def check_for_update(
        self, project: str, fmt: str, current_sha256: str = ""
    ) -> models_pb2.CheckForUpdateResponse:
        """Ask whether a newer model exists than the one the app has."""
        return self._call(
            self.models.CheckForUpdate,
            models_pb2.CheckForUpdateRequest(
                project=project, format=FORMATS[fmt], current_sha256=current_sha256
            ),
        )

    def list_versions_page(self, project: str) -> models_pb2.ListModelVersionsResponse:
        """The ListModelVersions response (versions newest first and ``current_version``)."""
        return self._call(
            self.models.ListModelVersions, models_pb2.ListModelVersionsRequest(project=project)
        )

    def promote(
        self, project: str, version: int, pin: bool = False, reason: str = ""
    ) -> models_pb2.ModelVersion:
        """Make ``version`` current (a candidate too); ``pin`` holds new versions back."""
        return self._call(
            self.models.PromoteVersion,
            models_pb2.PromoteVersionRequest(
                project=project, version=version, pin=pin, reason=reason
            ),
        )

    def rollback(self, project: str, reason: str = "") -> models_pb2.ModelVersion:
        """Make the previously current version current again."""
        return self._call(
            self.models.RollbackVersion,
            models_pb2.RollbackVersionRequest(project=project, reason=reason),
        )

    def releases(self, project: str, limit: int = 100) -> list[models_pb2.ReleaseRecord]:
        """Which version was current when, and why (newest first)."""
        resp = self._call(
            self.models.ListReleases, models_pb2.ListReleasesRequest(project=project, limit=limit)
        )
        return list(resp.releases)

    def release_policy(self, project: str) -> models_pb2.ReleasePolicyState:
        """The project's release policy and pin (``ReleasePolicyState``)."""
        return self._call(
            self.models.GetReleasePolicy, models_pb2.GetReleasePolicyRequest(project=project)
        )

    def set_release_policy(self, project: str, **fields: Any) -> models_pb2.ReleasePolicyState:
        """Replace the release policy: ``mode`` ("auto"/"manual"), ``margin``,
        ``min_accuracy``, ``min_per_class_recall``, ``max_int8_drop`` (None = unset)."""
        modes = RELEASE_MODES
        mode = fields.pop("mode", None) or "auto"
        if mode not in modes:
            raise ClientError(56, "INVALID_ARGUMENT", f"mode must be auto or manual, got {mode!r}")
        policy = models_pb2.ReleasePolicy(
            mode=modes[mode], **{k: v for k, v in fields.items() if v is not None}
        )
        return self._call(
            self.models.SetReleasePolicy,
            models_pb2.SetReleasePolicyRequest(project=project, policy=policy),
        )

    def predict(
        self, project: str, image: bytes, top_k: int = 3, version: int = 0
    ) -> models_pb2.PredictResponse:
        """Server-side inference on one encoded image."""
        return self._call(
            self.models.Predict,
            models_pb2.PredictRequest(project=project, image=image, top_k=top_k, version=version),
        )

    # -- tokens --------------------------------------------------------------------------------
    def create_token(
        self, kind: str, project: str = "", name: str = "", ttl_days: int = 0
    ) -> tuple[tokens_pb2.Token, str]:
        """Create an admin or device token; returns (record, secret)."""
        kinds = TOKEN_KINDS
        if kind not in kinds:
            raise ClientError(2, "INVALID_ARGUMENT", f"kind must be admin or device, not {kind!r}")
        resp = self._call(
            self.tokens.CreateToken,
            tokens_pb2.CreateTokenRequest(
                kind=kinds[kind], project=project, name=name, ttl_days=ttl_days
            ),
        )
        return resp.token, resp.secret

    def list_tokens(self, project: str = "") -> list[tokens_pb2.Token]:
        """Token records, newest first."""
        resp = self._call(self.tokens.ListTokens, tokens_pb2.ListTokensRequest(project=project))
        return list(resp.tokens)

    def revoke_token(self, token_id: str) -> tokens_pb2.Token:
        """Revoke a token."""
        return self._call(self.tokens.RevokeToken, tokens_pb2.RevokeTokenRequest(id=token_id))
