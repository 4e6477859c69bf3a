"""The REST application: the same core services as gRPC, as JSON over HTTP."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from mobiletrain import __version__
from mobiletrain.api.rest.deps import authenticate
from mobiletrain.api.rest.errors import error_docs, install_error_handlers
from mobiletrain.api.rest.httputil import BodySizeLimitMiddleware
from mobiletrain.api.rest.routes import (
    federated,
    jobs,
    models,
    projects,
    samples,
    tokens,
    uploads,
)
from mobiletrain.api.rest.schemas import HealthPublic
from mobiletrain.api.rest.web import include_dashboard
from mobiletrain.server import Container

DESCRIPTION = """\
Self-hosted training server for mobile apps: upload labelled images, train image
classifiers, watch training live, download TFLite models.

* Every `/v1` call needs `Authorization: Bearer <token>`: an admin token, or a device token
  bound to one project (it sees nothing of other projects). A fresh server writes its first
  admin token to `DATA_DIR/admin-token`.
* Projects are addressed by id or by name in `{project}`.
* Lists take `page_size` (0 = default) and `page_token`, and return `next_page_token`
  ("" on the last page).
* Every error has the JSON body `{"code": <number>, "error": "<name>", "message": "..."}`
  and the header `X-Mobiletrain-Error-Code`; branch on `code` (the same catalog as the gRPC
  API's `mobiletrain-error-code`).
* Training progress: `GET /v1/jobs/{job_id}/events` (Server-Sent Events, resumable with
  `Last-Event-ID`), or `?stream=false` for JSON polling.
"""

TAGS = [
    {"name": "projects", "description": "Projects: what is learnt and the input contract."},
    {"name": "samples", "description": "Labelled images: upload, browse, delete."},
    {"name": "jobs", "description": "Training jobs and their live progress."},
    {"name": "models", "description": "Trained versions: manifests, downloads, updates."},
    {"name": "uploads", "description": "Resumable uploads of large samples (tus-like)."},
    {"name": "tokens", "description": "Admin and device credentials."},
    {"name": "federated", "description": "Federated sessions and the device protocol."},
    {"name": "health", "description": "Liveness."},
]

REQUEST_BODY_FACTOR = 64
"""Request bodies may be this many times ``settings.max_sample_bytes``."""


def _operation_id(route: APIRoute) -> str:
    return route.name


health = APIRouter(tags=["health"])


@health.get("/healthz", summary="Liveness check")
def healthz() -> HealthPublic:
    """Answers `{"status": "ok"}` while the server runs."""
    return HealthPublic(status="ok")


def _error_schema_ref() -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorPublic"}}}


def _custom_openapi(app: FastAPI) -> dict[str, Any]:
    """OpenAPI with FastAPI's 422 validation entries replaced by the catalog's 400."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {})
            if responses.pop("422", None) is not None and "400" not in responses:
                responses["400"] = {
                    "description": "Invalid argument (code 2 and others)",
                    "content": _error_schema_ref(),
                }
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    app.openapi_schema = schema
    return schema


def create_app(container: Container) -> FastAPI:
    """Build the REST app over ``container``'s services (which the caller starts and closes)."""
    app = FastAPI(
        title="mobiletrain",
        description=DESCRIPTION,
        version=__version__,
        openapi_tags=TAGS,
        generate_unique_id_function=_operation_id,
    )
    app.state.container = container
    app.add_middleware(
        BodySizeLimitMiddleware,
        max_bytes=container.settings.max_sample_bytes * REQUEST_BODY_FACTOR,
    )
    install_error_handlers(app)
    app.include_router(health)
    # Every /v1 route authenticates; only /healthz and the API documents are open.
    for module in (projects, samples, uploads, jobs, models, tokens, federated):
        app.include_router(
            module.router,
            prefix="/v1",
            dependencies=[Depends(authenticate)],
            responses=error_docs(401, 403, 429),
        )
    include_dashboard(app)  # the web dashboard at / (after every API route)
    app.openapi = lambda: _custom_openapi(app)  # type: ignore[method-assign]
    return app
