"""Federated learning: sessions (admins) and the device protocol (register, task, update).

Progress of a session is the event stream of its job: ``GET /v1/jobs/{job_id}/events``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Header, Path, Query, Response, status
from fastapi.responses import StreamingResponse

from mobiletrain.api import longpoll
from mobiletrain.api.federated_access import federated_service as _service
from mobiletrain.api.rest.deps import ContainerDep, ProjectRef
from mobiletrain.api.rest.errors import error_docs
from mobiletrain.api.rest.federated_schemas import (
    FederatedConfigModel,
    FederatedRoundListPublic,
    FederatedSessionListPublic,
    FederatedSessionPublic,
    RegisterDevicePublic,
    RegisterDeviceRequest,
    TaskReplyPublic,
    UpdateReplyPublic,
    UpdateRequest,
    assignment_reply_to_public,
    config_from_model,
    round_to_public,
    session_to_public,
    update_reply_to_public,
)
from mobiletrain.api.rest.httputil import etag_matches, strong_etag
from mobiletrain.api.rest.routes.samples import decode_base64
from mobiletrain.federated.records import FederatedSession
from mobiletrain.federated.service import FederatedService

router = APIRouter(tags=["federated"], responses=error_docs(400, 404, 500))

SessionId = Annotated[str, Path(description="Federated session id.")]


def _public(service: FederatedService, session: FederatedSession) -> FederatedSessionPublic:
    return session_to_public(session, service.weights_size(session))


@router.post(
    "/projects/{project}/federated/sessions",
    status_code=status.HTTP_201_CREATED,
    responses=error_docs(409),
    summary="Start a federated session",
)
def start_session(
    project: ProjectRef,
    container: ContainerDep,
    config: Annotated[
        FederatedConfigModel | None,
        Body(description="Session settings; omit the body (or any field) for the defaults."),
    ] = None,
) -> FederatedSessionPublic:
    """Export the on-device files (state `preparing`), then run rounds with the devices that
    register. Fails with SESSION_ACTIVE (409, code 92) while another session runs."""
    service = _service(container)
    return _public(service, service.start_session(project, config_from_model(config)))


@router.get("/projects/{project}/federated/sessions", summary="List a project's sessions")
def list_sessions(project: ProjectRef, container: ContainerDep) -> FederatedSessionListPublic:
    """The project's federated sessions, newest first."""
    service = _service(container)
    return FederatedSessionListPublic(
        sessions=[_public(service, s) for s in service.list_sessions(project)]
    )


@router.get("/federated/sessions/{session_id}", summary="Get a federated session")
def get_session(session_id: SessionId, container: ContainerDep) -> FederatedSessionPublic:
    """One session (SESSION_NOT_FOUND, 404, code 90)."""
    service = _service(container)
    return _public(service, service.get_session(session_id))


@router.post(
    "/federated/sessions/{session_id}:stop",
    responses=error_docs(409),
    summary="Stop a federated session",
)
def stop_session(session_id: SessionId, container: ContainerDep) -> FederatedSessionPublic:
    """Cancel a running session; the versions it published stay."""
    service = _service(container)
    return _public(service, service.stop_session(session_id))


@router.get("/federated/sessions/{session_id}/rounds", summary="List a session's rounds")
def list_rounds(session_id: SessionId, container: ContainerDep) -> FederatedRoundListPublic:
    """Every round with its outcome; the open one with the answers so far."""
    rounds = _service(container).rounds(session_id)
    return FederatedRoundListPublic(rounds=[round_to_public(r) for r in rounds])


@router.get(
    "/federated/sessions/{session_id}/files/{format}",
    responses={
        200: {"content": {"application/octet-stream": {}}, "description": "The file."},
        **error_docs(304),
    },
    summary="Download a session file",
)
def download_file(
    session_id: SessionId,
    container: ContainerDep,
    fmt: Annotated[
        str,
        Path(
            alias="format",
            description="feature-extractor, train-step, head-inference, head-signatures, "
            "float32, or head-weights (the current global weights).",
        ),
    ],
    if_none_match: Annotated[
        str | None, Header(description="ETag the device has; 304 when unchanged.")
    ] = None,
) -> Response:
    """The file's bytes with `ETag: "<sha256>"` and `Content-Length`."""
    service = _service(container)
    artifact = service.file(session_id, fmt)
    etag = strong_etag(artifact.sha256)
    headers = {"ETag": etag, "X-Content-Sha256": artifact.sha256}
    if etag_matches(if_none_match, etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    headers["Content-Length"] = str(artifact.size)
    return StreamingResponse(
        service.read_file(artifact), media_type="application/octet-stream", headers=headers
    )


@router.post(
    "/projects/{project}/federated/devices",
    status_code=status.HTTP_201_CREATED,
    responses=error_docs(409),
    summary="Register a device",
)
def register_device(
    project: ProjectRef,
    container: ContainerDep,
    body: Annotated[
        RegisterDeviceRequest | None, Body(description="Optional facts about the device.")
    ] = None,
) -> RegisterDevicePublic:
    """Join the project's running session (NO_ACTIVE_SESSION, 409, code 91, when none)."""
    service = _service(container)
    session, device_id = service.register(project, body.info if body is not None else {})
    return RegisterDevicePublic(device_id=device_id, session=_public(service, session))


@router.get("/projects/{project}/federated/task", summary="Ask for work (long poll)")
async def get_task(
    project: ProjectRef,
    container: ContainerDep,
    device_id: Annotated[str, Query(description="The id from registration.")],
    wait_seconds: Annotated[
        float, Query(description="Wait up to this many seconds for a task (at most 60).")
    ] = 0.0,
) -> TaskReplyPublic:
    """`task` with the global weights (base64), `wait`, or `finished`. Fails with
    DEVICE_NOT_REGISTERED (404, code 93): register again."""
    # Async: the wait holds no worker thread (see api.longpoll). The handler keeps the wire's
    # name (path and operation id say "task"); in Python the device's work is an assignment.
    reply = await longpoll.get_assignment(_service(container), project, device_id, wait_seconds)
    return assignment_reply_to_public(reply)


@router.post("/projects/{project}/federated/updates", summary="Send an update")
def push_update(
    project: ProjectRef,
    container: ContainerDep,
    body: Annotated[UpdateRequest, Body(description="The new weights, or an error.")],
) -> UpdateReplyPublic:
    """Send the weights after local training. The reply says whether they count; a rejected
    update (stale round, not selected, duplicate, wrong size, NaN, ...) is excluded and
    reported in the round's result."""
    data = decode_base64(body.weights) if body.weights else b""
    reply = _service(container).push_update(
        project,
        body.device_id,
        body.session_id,
        body.round,
        data,
        body.num_samples,
        dtype=body.dtype,
        metrics=dict(body.metrics),
        error=body.error,
    )
    return update_reply_to_public(reply)
