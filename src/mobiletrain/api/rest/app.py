"""The REST application: the same core services as gRPC, as JSON over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio.to_thread
import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from mobiletrain import __version__
from mobiletrain.api import longpoll
from mobiletrain.api.rest.deps import authenticate
from mobiletrain.api.rest.errors import error_docs, install_error_handlers
from mobiletrain.api.rest.limits import LimitSettings, RequestLimitsMiddleware
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
from mobiletrain.container import Container
from mobiletrain.core.ratelimit import RateLimiter

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


def _operation_id(route: APIRoute) -> str:
    return route.name


health = APIRouter(tags=["health"])


@health.get("/healthz", summary="Liveness check", response_model_exclude_none=True)
async def healthz(request: Request) -> HealthPublic:
    """Answers `{"status": "ok"}` while the server runs, or `{"status": "degraded",
    "reasons": [...]}` (still 200) while it needs attention, e.g. "storage below reserve" or a
    saturated worker thread pool (calls that need a thread then wait)."""
    # Async on purpose: it must answer while every worker thread is busy.
    reasons = request.app.state.container.health()
    limiter = anyio.to_thread.current_default_thread_limiter()
    if limiter.borrowed_tokens >= limiter.total_tokens:
        reasons.append(
            f"HTTP worker threads saturated ({limiter.borrowed_tokens}/"
            f"{int(limiter.total_tokens)} busy): calls that need one wait"
        )
    if reasons:
        return HealthPublic(status="degraded", reasons=reasons)
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


DOCS_ASSETS = "/docs/assets"
"""Where the Swagger UI and ReDoc files are served (packaged by ``fastapi-offline``)."""


def include_docs(app: FastAPI) -> None:
    """`/docs` (Swagger UI) and `/redoc` with every script and style served by this server.

    Relative URLs only, so neither page depends on the Host header or a CDN; no web fonts and
    no online validator.
    """
    static = Path(fastapi_offline.__file__).parent / "static"
    app.mount(DOCS_ASSETS, StaticFiles(directory=static), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - API",
            redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
            with_google_fonts=False,
        )


def create_app(container: Container) -> FastAPI:
    """Build the REST app over ``container``'s services (which the caller starts and closes)."""
    app = FastAPI(
        title="mobiletrain",
        description=DESCRIPTION,
        version=__version__,
        openapi_tags=TAGS,
        generate_unique_id_function=_operation_id,
        # Served by include_docs from files of this package, not from a CDN.
        docs_url=None,
        redoc_url=None,
        # A trailing-slash redirect would be built from the request's Host header.
        redirect_slashes=False,
    )
    app.state.container = container
    container.pool_gauges["federated long-poll"] = longpoll.pool_gauge
    settings = container.settings
    app.add_middleware(
        RequestLimitsMiddleware,
        limits=LimitSettings(
            max_sample_bytes=settings.max_sample_bytes,
            max_header_count=settings.max_header_count,
            body_idle_timeout_seconds=settings.body_idle_timeout_seconds,
            body_min_bytes_per_second=settings.body_min_bytes_per_second,
            max_requests_per_address=settings.max_requests_per_address,
            max_buffered_body_bytes=settings.max_buffered_body_bytes,
            auth=settings.auth,
        ),
        tokens=container.tokens,
        address_limiter=RateLimiter(
            settings.unauthenticated_rate_per_second, settings.unauthenticated_burst
        ),
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
    include_docs(app)
    include_dashboard(app)  # the web dashboard at / (after every API route)
    app.openapi = lambda: _custom_openapi(app)  # type: ignore[method-assign]
    return app
