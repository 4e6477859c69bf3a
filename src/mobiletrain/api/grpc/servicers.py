"""The gRPC servicers: thin adapters from the wire to the core services.

Each method converts the request with :mod:`~mobiletrain.api.grpc.serde`, calls one core
service and converts the result back. Failures are raised as
:class:`~mobiletrain.core.errors.MobiletrainError` and mapped to statuses by
:class:`~mobiletrain.api.grpc.interceptor.CallInterceptor`.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import Executor
from typing import TYPE_CHECKING

import grpc

from mobiletrain._proto.mobiletrain.v1 import (
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
from mobiletrain.api.grpc import serde
from mobiletrain.api.grpc.bridge import run_in_pool
from mobiletrain.api.grpc.deadlines import current_deadline
from mobiletrain.api.grpc.upload import incoming_samples
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import JobEvent, Project, TaskType

if TYPE_CHECKING:
    from mobiletrain.container import Container

CHUNK_BYTES = 256 * 1024
"""Size of the data messages of GetSampleData (DownloadModel uses the blob store's 256 KiB)."""

MAX_SEQ = 2**63 - 1
"""Largest event sequence number the stores can compare with."""


class EventFrames:
    """Each job event serialised once for all of its ``WatchJob`` streams.

    A thousand phones watching one job get the same bytes: building and serialising the
    message a thousand times per event was a large part of the event loop's time under load.
    The streams yield these bytes; the interceptor's response serializer passes bytes through.
    Used on the server's event loop only (no lock); keeps the newest ``size`` events.
    """

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._frames: OrderedDict[tuple[str, int], bytes] = OrderedDict()

    def get(self, event: JobEvent) -> bytes:
        """The serialised ``JobEvent`` message of ``event``."""
        key = (event.job_id, event.seq)  # (job, seq) names one event for good
        frame = self._frames.get(key)
        if frame is None:
            frame = serde.job_event_to_proto(event).SerializeToString()
            self._frames[key] = frame
            if len(self._frames) > self._size:
                self._frames.popitem(last=False)
        return frame


def _current_version(container: Container, project: Project) -> int | None:
    """The version apps get now: the promoted one, else the newest, else None."""
    return container.models.current_version_number(project)


def _format_or_unset(number: int) -> str:
    """A requested model format's name, or "" when unset (the core picks its default)."""
    return serde.model_format_from_proto(number).value if number else ""


class ProjectServicer(projects_pb2_grpc.ProjectServiceServicer):
    """``mobiletrain.v1.ProjectService`` over :class:`~mobiletrain.core.services.ProjectService`."""

    def __init__(self, container: Container) -> None:
        self._c = container

    def CreateProject(
        self, request: projects_pb2.CreateProjectRequest, context: grpc.ServicerContext
    ) -> projects_pb2.Project:
        """Create a project."""
        draft = serde.project_draft_from_proto(request)
        project = self._c.projects.create(
            draft.name, draft.task.value, draft.labels, draft.input_spec
        )
        return serde.project_to_proto(project, None)

    def GetProject(
        self, request: projects_pb2.GetProjectRequest, context: grpc.ServicerContext
    ) -> projects_pb2.Project:
        """One project by id or name."""
        project = self._c.projects.get(request.project)
        return serde.project_to_proto(project, _current_version(self._c, project))

    def ListProjects(
        self, request: projects_pb2.ListProjectsRequest, context: grpc.ServicerContext
    ) -> projects_pb2.ListProjectsResponse:
        """A page of projects."""
        page = self._c.projects.list(request.page_size, request.page_token)
        return projects_pb2.ListProjectsResponse(
            projects=[serde.project_to_proto(p, _current_version(self._c, p)) for p in page.items],
            next_page_token=page.next_page_token,
        )

    def DeleteProject(
        self, request: projects_pb2.DeleteProjectRequest, context: grpc.ServicerContext
    ) -> projects_pb2.DeleteProjectResponse:
        """Delete a project and all it owns (bytes go at the next compaction)."""
        project, samples = self._c.projects.delete(request.project)
        return projects_pb2.DeleteProjectResponse(
            project=serde.project_to_proto(project, None), samples_deleted=samples
        )


class DatasetServicer(datasets_pb2_grpc.DatasetServiceServicer):
    """``mobiletrain.v1.DatasetService`` over :class:`~mobiletrain.core.services.DatasetService`."""

    def __init__(self, container: Container) -> None:
        self._c = container

    def UploadSamples(
        self,
        request_iterator: Iterator[datasets_pb2.UploadSamplesRequest],
        context: grpc.ServicerContext,
    ) -> datasets_pb2.UploadSamplesResponse:
        """Store a stream of samples; the samples are handed to the core as they arrive."""
        requests = iter(request_iterator)
        first = next(requests, None)
        if first is None or not first.project:
            raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "the first message must set project")
        completed: list[str] = []
        samples = incoming_samples(
            itertools.chain([first], requests), first.project, self._c.uploads, completed
        )
        summary = self._c.datasets.upload(first.project, samples)
        # Ingested, accepted or rejected: their upload sessions hold nothing worth keeping
        # (and no longer reserve quota).
        self._c.uploads.forget(completed)
        return serde.upload_summary_to_proto(summary)

    def GetUploadOffset(
        self, request: datasets_pb2.GetUploadOffsetRequest, context: grpc.ServicerContext
    ) -> datasets_pb2.UploadOffset:
        """How many bytes of a chunked sample the server holds."""
        status = self._c.uploads.status(request.project, request.client_id)
        return datasets_pb2.UploadOffset(
            client_id=status.client_id,
            offset=status.offset,
            size=status.size,
            stored=status.sample is not None,
            sample_id=status.sample.id if status.sample is not None else "",
        )

    def ListSamples(
        self, request: datasets_pb2.ListSamplesRequest, context: grpc.ServicerContext
    ) -> datasets_pb2.ListSamplesResponse:
        """A page of samples, optionally of one label."""
        page = self._c.datasets.list(
            request.project,
            request.label or None,
            request.page_size,
            request.page_token,
        )
        return datasets_pb2.ListSamplesResponse(
            samples=[serde.sample_to_proto(s) for s in page.items],
            next_page_token=page.next_page_token,
        )

    def GetSampleData(
        self, request: datasets_pb2.GetSampleDataRequest, context: grpc.ServicerContext
    ) -> Iterator[datasets_pb2.GetSampleDataResponse]:
        """The sample's metadata, then its bytes in 256 KiB pieces."""
        sample, data = self._c.datasets.get_data(request.project, request.sample_id)
        yield datasets_pb2.GetSampleDataResponse(sample=serde.sample_to_proto(sample))
        view = memoryview(data)
        for offset in range(0, len(data), CHUNK_BYTES):
            yield datasets_pb2.GetSampleDataResponse(
                offset=offset, data=bytes(view[offset : offset + CHUNK_BYTES])
            )

    def DeleteSample(
        self, request: datasets_pb2.DeleteSampleRequest, context: grpc.ServicerContext
    ) -> datasets_pb2.DeleteSampleResponse:
        """Delete one sample and return what it was."""
        sample = self._c.datasets.delete(request.project, request.sample_id)
        return datasets_pb2.DeleteSampleResponse(sample=serde.sample_to_proto(sample))

    def GetClassCounts(
        self, request: datasets_pb2.GetClassCountsRequest, context: grpc.ServicerContext
    ) -> datasets_pb2.GetClassCountsResponse:
        """Samples per label, in label order (detection: box counts too)."""
        msg = serde.class_counts_to_proto(self._c.datasets.class_counts(request.project))
        if self._c.projects.get(request.project).task is TaskType.OBJECT_DETECTION:
            serde.box_stats_to_proto(self._c.datasets.box_stats(request.project), msg)
        return msg

    def UpdateSampleBoxes(
        self, request: datasets_pb2.UpdateSampleBoxesRequest, context: grpc.ServicerContext
    ) -> datasets_pb2.Sample:
        """Replace a detection image's boxes; the sample with its new label."""
        sample = self._c.datasets.update_boxes(
            request.project, request.sample_id, serde.boxes_from_proto(request.boxes)
        )
        return serde.sample_to_proto(sample)


class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    """``mobiletrain.v1.TrainingService`` over the core ``TrainingService``."""

    def __init__(self, container: Container) -> None:
        self._c = container
        self._frames = EventFrames()

    def StartJob(
        self, request: training_pb2.StartJobRequest, context: grpc.ServicerContext
    ) -> training_pb2.Job:
        """Queue a training job."""
        hp = serde.hyperparameters_from_proto(
            request.hyperparameters if request.HasField("hyperparameters") else None
        )
        return serde.job_to_proto(self._c.training.start(request.project, hp))

    def GetJob(
        self, request: training_pb2.GetJobRequest, context: grpc.ServicerContext
    ) -> training_pb2.Job:
        """One job."""
        return serde.job_to_proto(self._c.training.get(request.job_id))

    def ListJobs(
        self, request: training_pb2.ListJobsRequest, context: grpc.ServicerContext
    ) -> training_pb2.ListJobsResponse:
        """A page of a project's jobs, newest first (all projects when ``project`` is empty)."""
        page = self._c.training.list(request.project or None, request.page_size, request.page_token)
        return training_pb2.ListJobsResponse(
            jobs=[serde.job_to_proto(j) for j in page.items],
            next_page_token=page.next_page_token,
        )

    def CancelJob(
        self, request: training_pb2.CancelJobRequest, context: grpc.ServicerContext
    ) -> training_pb2.Job:
        """Ask a job to stop."""
        return serde.job_to_proto(self._c.training.cancel(request.job_id))

    async def WatchJob(
        self, request: training_pb2.WatchJobRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[training_pb2.JobEvent | bytes]:
        """Stored events after ``after_seq``, then live ones, until the job's final state.

        Asynchronous: a watcher waiting for the next event holds no thread (a thousand phones
        watching a job cost coroutines). The client going away cancels it. Each event is
        serialised once for every stream (:class:`EventFrames`).
        """
        after_seq = min(request.after_seq, MAX_SEQ)  # uint64 on the wire, int64 in the store
        training = self._c.training
        finished = await asyncio.to_thread(training.prepare_watch, request.job_id, after_seq)
        stop = asyncio.Event()
        deadline = current_deadline()
        if deadline is not None:
            deadline.on_expiry(stop.set)  # the stream's time is up: stop waiting
        async for event in training.watch_async(request.job_id, after_seq, finished, stop):
            if event is None:
                continue  # heartbeat: HTTP/2 keepalive pings already watch the connection
            yield self._frames.get(event)


class ModelServicer(models_pb2_grpc.ModelServiceServicer):
    """``mobiletrain.v1.ModelService`` over :class:`~mobiletrain.core.services.ModelService`."""

    def __init__(self, container: Container, executor: Executor) -> None:
        self._c = container
        self._executor = executor  # the handler pool, for a Predict that is not cheap

    def ListModelVersions(
        self, request: models_pb2.ListModelVersionsRequest, context: grpc.ServicerContext
    ) -> models_pb2.ListModelVersionsResponse:
        """A page of versions, newest first."""
        page, current = self._c.models.list_page(
            request.project, request.page_size, request.page_token
        )
        return models_pb2.ListModelVersionsResponse(
            versions=[serde.model_version_to_proto(v, v.version == current) for v in page.items],
            next_page_token=page.next_page_token,
            current_version=current or 0,
        )

    def GetManifest(
        self, request: models_pb2.GetManifestRequest, context: grpc.ServicerContext
    ) -> models_pb2.Manifest:
        """The manifest of a version (0 = current)."""
        project = self._c.projects.get(request.project)
        model = self._c.models.get(project.id, request.version)
        return serde.manifest_to_proto(model, project)

    def DownloadModel(
        self, request: models_pb2.DownloadModelRequest, context: grpc.ServicerContext
    ) -> Iterator[models_pb2.ModelChunk]:
        """File info first, then the bytes from ``offset`` in 256 KiB messages."""
        project = self._c.projects.get(request.project)
        model, artifact = self._c.models.artifact(
            project.id, request.version, _format_or_unset(request.format)
        )
        chunks = self._c.models.read(artifact, request.offset)  # checks the range before info
        file_name = artifact.format.download_name(project.name, model.version)
        yield models_pb2.ModelChunk(info=serde.model_file_info_to_proto(model, artifact, file_name))
        offset = request.offset
        for data in chunks:
            yield models_pb2.ModelChunk(offset=offset, data=data)
            offset += len(data)

    def CheckForUpdate(
        self, request: models_pb2.CheckForUpdateRequest, context: grpc.ServicerContext
    ) -> models_pb2.CheckForUpdateResponse:
        """Whether the app's model is still the current one in its format."""
        not_modified, model, artifact = self._c.models.check_update(
            request.project,
            _format_or_unset(request.format),
            request.current_sha256,
            request.current_version,
        )
        return serde.update_check_to_proto(not_modified, model, artifact)

    def PromoteVersion(
        self, request: models_pb2.PromoteVersionRequest, context: grpc.ServicerContext
    ) -> models_pb2.ModelVersion:
        """Make a version the current one (0: remove the promotion)."""
        model = self._c.models.promote(
            request.project, request.version, pin=request.pin, reason=request.reason
        )
        return serde.model_version_to_proto(model, current=True)

    def RollbackVersion(
        self, request: models_pb2.RollbackVersionRequest, context: grpc.ServicerContext
    ) -> models_pb2.ModelVersion:
        """Make the previous current version current again."""
        model = self._c.models.rollback(request.project, reason=request.reason)
        return serde.model_version_to_proto(model, current=True)

    def ListReleases(
        self, request: models_pb2.ListReleasesRequest, context: grpc.ServicerContext
    ) -> models_pb2.ListReleasesResponse:
        """The release history, newest first."""
        records = self._c.models.history(request.project, request.limit)
        return models_pb2.ListReleasesResponse(
            releases=[serde.release_record_to_proto(r) for r in records]
        )

    def GetReleasePolicy(
        self, request: models_pb2.GetReleasePolicyRequest, context: grpc.ServicerContext
    ) -> models_pb2.ReleasePolicyState:
        """The project's release policy and pin."""
        policy, pinned = self._c.models.policy(request.project)
        rollout = self._c.models.rollout(request.project)
        return serde.release_policy_state_to_proto(policy, pinned, rollout)

    def SetReleasePolicy(
        self, request: models_pb2.SetReleasePolicyRequest, context: grpc.ServicerContext
    ) -> models_pb2.ReleasePolicyState:
        """Replace the project's release policy."""
        policy = serde.release_policy_from_proto(
            request.policy if request.HasField("policy") else None
        )
        self._c.models.set_policy(request.project, policy)
        stored, pinned = self._c.models.policy(request.project)
        rollout = self._c.models.rollout(request.project)
        return serde.release_policy_state_to_proto(stored, pinned, rollout)

    async def Predict(
        self, request: models_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> models_pb2.PredictResponse:
        """Classify one sample on the server: on the event loop when the model is warm and
        the call cheap (no hop to a thread and back, which costs more than a small model's
        invoke), else in the handler pool (first call of a version, large sample, busy
        interpreters, slow model)."""
        models = self._c.models
        args = (request.project, request.image, request.version, request.top_k)
        answer = models.predict_now(*args)
        if answer is None:
            ctx = contextvars.copy_context()
            answer = await run_in_pool(self._executor, ctx, models.predict, *args)
        return serde.predict_response_to_proto(*answer)


class TokenServicer(tokens_pb2_grpc.TokenServiceServicer):
    """``mobiletrain.v1.TokenService`` over :class:`~mobiletrain.core.tokens.TokenService`."""

    def __init__(self, container: Container) -> None:
        self._c = container

    def CreateToken(
        self, request: tokens_pb2.CreateTokenRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.CreateTokenResponse:
        """Create a token; the secret is returned once."""
        role = serde.token_kind_from_proto(request.kind)
        project_id = self._c.projects.get(request.project).id if request.project else None
        token, secret = self._c.tokens.create(role, project_id, request.name, request.ttl_days)
        return tokens_pb2.CreateTokenResponse(token=serde.token_to_proto(token), secret=secret)

    def ListTokens(
        self, request: tokens_pb2.ListTokensRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.ListTokensResponse:
        """Tokens newest first."""
        project_id = self._c.projects.get(request.project).id if request.project else None
        tokens = self._c.tokens.list(project_id)
        return tokens_pb2.ListTokensResponse(tokens=[serde.token_to_proto(t) for t in tokens])

    def RevokeToken(
        self, request: tokens_pb2.RevokeTokenRequest, context: grpc.ServicerContext
    ) -> tokens_pb2.Token:
        """Revoke a token."""
        return serde.token_to_proto(self._c.tokens.revoke(request.id))
