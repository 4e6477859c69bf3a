"""Training jobs: start, list, get, cancel, and progress events (SSE or JSON)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Response, status

from mobiletrain.api.rest.deps import (
    ContainerDep,
    JobId,
    PageSize,
    PageToken,
    ProjectRef,
    TrainingDep,
)
from mobiletrain.api.rest.errors import error_docs
from mobiletrain.api.rest.schemas import (
    HyperparametersModel,
    JobEventListPublic,
    JobListPublic,
    JobPublic,
    event_to_public,
    hyperparameters_from_model,
    job_to_public,
)
from mobiletrain.api.rest.sse import SSE_MEDIA_TYPE, EventStreamResponse, sse_lines
from mobiletrain.core.auth import current
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import EventKind

if TYPE_CHECKING:
    from mobiletrain.container import Container

router = APIRouter(tags=["jobs"], responses=error_docs(400, 404, 500))

SSE_EVENT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": (
        "One Server-Sent Event of the stream (before OpenAPI 3.2 an event-stream schema "
        "describes each event): `id` is the event's `seq`, `event` its kind, `data` the "
        "JobEventPublic as JSON."
    ),
    "properties": {
        "id": {"type": "string", "description": "The event's `seq` (for `Last-Event-ID`)."},
        "event": {"type": "string", "enum": [k.value for k in EventKind]},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/JobEventPublic"},
        },
        "retry": {"type": "integer", "description": "Suggested reconnection delay in ms."},
    },
    "required": ["id", "event", "data"],
}
"""OpenAPI schema of one event of ``GET /v1/jobs/{job_id}/events`` (a stream of these)."""

MAX_SEQ = 2**63 - 1
"""Largest event sequence number the stores can compare with (64-bit integers)."""


@router.post(
    "/projects/{project}/jobs",
    status_code=status.HTTP_201_CREATED,
    responses=error_docs(409),
    summary="Start a training job",
)
def start_job(
    project: ProjectRef,
    training: TrainingDep,
    hyperparameters: Annotated[
        HyperparametersModel | None,
        Body(description="Training settings; omit the body (or any field) for the defaults."),
    ] = None,
) -> JobPublic:
    """Queue a training job for the project's current samples.

    Fails with NOT_ENOUGH_DATA (409, code 42) unless at least 2 labels have at least 2 samples
    each, and with INVALID_HYPERPARAMETERS (400, code 41) on a bad or unknown setting.
    """
    job = training.start(project, hyperparameters_from_model(hyperparameters))
    return job_to_public(job)


@router.get("/projects/{project}/jobs", summary="List a project's jobs")
def list_jobs(
    project: ProjectRef,
    training: TrainingDep,
    page_size: PageSize = 0,
    page_token: PageToken = "",
) -> JobListPublic:
    """List the project's training jobs, newest first, a page at a time."""
    page = training.list(project, page_size, page_token)
    return JobListPublic(
        jobs=[job_to_public(j) for j in page.items], next_page_token=page.next_page_token
    )


@router.get("/jobs/{job_id}", summary="Get a job")
def get_job(job_id: JobId, training: TrainingDep) -> JobPublic:
    """Get a training job (JOB_NOT_FOUND, 404, code 40)."""
    return job_to_public(training.get(job_id))


@router.post("/jobs/{job_id}:cancel", responses=error_docs(409), summary="Cancel a job")
def cancel_job(job_id: JobId, training: TrainingDep) -> JobPublic:
    """Ask a job to stop. A queued job is cancelled at once; a running one stops at the next
    batch (watch its events for the final `cancelled` state). Fails with JOB_FINISHED (409,
    code 43) when the job has already ended."""
    return job_to_public(training.cancel(job_id))


def _resume_point(after_seq: int, last_event_id: str | None) -> int:
    if last_event_id is None or not last_event_id.strip():
        value = after_seq
    else:
        try:
            value = int(last_event_id.strip())
        except ValueError:
            raise MobiletrainError(
                ErrorCode.INVALID_ARGUMENT, "Last-Event-ID must be an event sequence number"
            ) from None
    if value < 0:
        raise MobiletrainError(ErrorCode.INVALID_ARGUMENT, "after_seq must be >= 0")
    return min(value, MAX_SEQ)  # as over gRPC: nothing comes after the stores' largest seq


@router.get(
    "/jobs/{job_id}/events",
    response_model=None,
    responses={
        200: {
            "description": (
                "`text/event-stream` (default): one message per event with `id: <seq>`, "
                "`event: <kind>` and `data: <JobEventPublic JSON>`; `: keep-alive` comments "
                "every 15 s; the server closes the stream after the job's final `state` "
                "event. With `stream=false`: a JSON JobEventListPublic."
            ),
            "model": JobEventListPublic,
            "content": {SSE_MEDIA_TYPE: {"schema": SSE_EVENT_SCHEMA}},
        },
        204: {
            "description": (
                "Stream only: the job has ended and every event up to its final one was "
                "already received (per the SSE spec this stops EventSource reconnects)."
            )
        },
    },
    summary="Watch a job's progress events",
)
def job_events(
    job_id: JobId,
    container: ContainerDep,
    after_seq: Annotated[
        int, Query(description="Only events with a larger `seq`; 0 = from the start.")
    ] = 0,
    stream: Annotated[
        bool, Query(description="true = Server-Sent Events stream; false = one JSON page.")
    ] = True,
    page_size: Annotated[
        int, Query(description="JSON mode only: most events per reply; 0 = 100, at most 1000.")
    ] = 0,
    last_event_id: Annotated[
        str | None,
        Header(description="SSE reconnect: resume after this `seq` (wins over `after_seq`)."),
    ] = None,
) -> Response | JobEventListPublic:
    """Progress events of a job: state changes, per-batch progress, per-epoch metrics, the
    final evaluation and log lines.

    By default a Server-Sent Events stream that starts after `after_seq` (or the
    `Last-Event-ID` header of a reconnecting client), delivers every later event exactly once
    in order, and ends after the job's final state event. With `stream=false` the events
    after `after_seq` are returned as JSON for polling clients; poll again with
    `after_seq=next_after_seq` until `finished` is true.
    """
    training = container.training
    start = _resume_point(after_seq, last_event_id)
    if not stream:
        page = training.events_page(job_id, start, page_size)
        return JobEventListPublic(
            events=[event_to_public(e) for e in page.events],
            next_after_seq=page.events[-1].seq if page.events else start,
            state=page.job.state.value,
            finished=page.finished,
        )
    if training.delivered_all(training.get(job_id), start):
        return Response(status_code=status.HTTP_204_NO_CONTENT)
    key = current().token_id
    container.stream_slots.check(key)  # a 429 now, before the stream starts
    cancelled = threading.Event()
    watch = training.watch(job_id, start, cancelled)
    return EventStreamResponse(
        _holding_slot(sse_lines(watch), container, key),
        cancelled,
        max_seconds=container.settings.stream_max_seconds,
    )


def _holding_slot(lines: Iterator[str], container: Container, key: str) -> Iterator[str]:
    """Occupy one of the token's stream slots while the SSE stream runs."""
    with container.stream_slots.hold(key):
        yield from lines
