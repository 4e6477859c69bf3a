"""FastAPI dependencies: the container and its services, read from ``app.state``."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from mobiletrain.container import Container
from mobiletrain.core.auth import SYSTEM, Principal, bind
from mobiletrain.core.services import DatasetService, ModelService, ProjectService, TrainingService

# These providers are async on purpose, like ``authenticate``: FastAPI runs a plain ``def``
# dependency in its thread pool, and a thread hand-off per provider per request cost more CPU
# than the rest of a small request (issue 18: four hops for one base64 upload).


def _container(request: Request) -> Container:
    return cast(Container, request.app.state.container)


async def get_container(request: Request) -> Container:
    """The container :func:`~mobiletrain.api.rest.app.create_app` stored on the app."""
    return _container(request)


async def get_projects(container: Annotated[Container, Depends(get_container)]) -> ProjectService:
    """The project service."""
    return container.projects


async def get_datasets(container: Annotated[Container, Depends(get_container)]) -> DatasetService:
    """The dataset service."""
    return container.datasets


async def get_training(
    container: Annotated[Container, Depends(get_container)],
) -> TrainingService:
    """The training service."""
    return container.training


async def get_models(container: Annotated[Container, Depends(get_container)]) -> ModelService:
    """The model service."""
    return container.models


_bearer = HTTPBearer(
    auto_error=False,
    description="An admin or device token: `Authorization: Bearer <token>`.",
)


async def authenticate(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal | None:
    """Verify the bearer token of every /v1 call and bind the caller for the core services.

    Async on purpose: it runs in the request's own task, so the binding is seen by the
    endpoint and by streamed bodies (both run in copies of this context).
    """
    container = _container(request)
    if not container.settings.auth:
        container.rate_limiter.check(SYSTEM.token_id)
        return None
    principal = container.tokens.verify(credentials.credentials if credentials else None)
    container.rate_limiter.check(principal.token_id)
    bind(principal)
    return principal


ContainerDep = Annotated[Container, Depends(get_container)]
ProjectsDep = Annotated[ProjectService, Depends(get_projects)]
DatasetsDep = Annotated[DatasetService, Depends(get_datasets)]
TrainingDep = Annotated[TrainingService, Depends(get_training)]
ModelsDep = Annotated[ModelService, Depends(get_models)]

ProjectRef = Annotated[str, Path(description="Project id or project name.")]
JobId = Annotated[str, Path(description="Training job id.")]
SampleId = Annotated[str, Path(description="Sample id.")]
VersionRef = Annotated[
    str, Path(description="Model version number; `0` or `current` = the current version.")
]
PageSize = Annotated[
    int, Query(description="Items per page; 0 = server default (100), at most 1000.")
]
PageToken = Annotated[
    str, Query(description="`next_page_token` of the previous page; empty = first page.")
]
