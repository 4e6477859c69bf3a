"""The web dashboard: the static files that `make web` builds from ``web/`` into
``mobiletrain/web/dist``.

``/`` answers ``index.html``; a file of the build answers itself (hashed ``assets/`` may be cached
for a year, a missing one is 404); any other GET path outside the API falls back to
``index.html`` so that the dashboard's own routes (``/projects/flowers/train``) survive a reload.
API paths (``/v1``, the OpenAPI pages, ``/healthz``) never reach this route, and other methods
keep their 404/405.

The files are public like any web page: the dashboard asks for an admin token and sends it with
every API call, and the API is what checks it.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.requests import Request
from starlette.routing import Match, Route
from starlette.types import Scope

DIST_DIR = Path(__file__).resolve().parents[2] / "web" / "dist"
"""Where the build writes the dashboard (``vite build`` in ``web/``)."""

_NOT_SERVED = ("/v1", "/docs", "/redoc", "/openapi.json", "/healthz")

_NOT_BUILT = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mobiletrain</title></head>
<body><h1>mobiletrain</h1>
<p>The dashboard has not been built. Run <code>make web</code> (needs Node.js and npm), then
reload. The API is at <a href="/docs">/docs</a>.</p></body></html>
"""


class _DashboardRoute(Route):
    """A GET catch-all that never matches API paths, so their errors stay as they are."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """No match for API paths and for methods other than GET and HEAD."""
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            return Match.NONE, {}
        path: str = scope["path"]
        if any(path == p or path.startswith(p + "/") for p in _NOT_SERVED):
            return Match.NONE, {}
        return super().matches(scope)


def _resolve(dist: Path, path: str) -> Path | None:
    """The build file for a URL path, or None (no escaping the folder, no directories)."""
    if not path or path.endswith("/"):
        return None
    candidate = (dist / path).resolve()
    if not candidate.is_relative_to(dist) or not candidate.is_file():
        return None
    return candidate


def _index(dist: Path) -> Response:
    index = dist / "index.html"
    if not index.is_file():
        return HTMLResponse(_NOT_BUILT, status_code=503, headers={"Cache-Control": "no-store"})
    return FileResponse(index, media_type="text/html", headers={"Cache-Control": "no-cache"})


def include_dashboard(app: FastAPI, dist: Path | None = None) -> None:
    """Serve the dashboard at ``/``; call after every API route has been added."""
    folder = (dist or DIST_DIR).resolve()

    async def dashboard(request: Request) -> Response:
        path = request.path_params.get("path", "")
        found = _resolve(folder, path)
        if found is None and path.startswith("assets/"):
            # A missing script must not come back as HTML (an old page after a rebuild).
            return Response(status_code=404, headers={"Cache-Control": "no-store"})
        if found is None or found.name == "index.html":
            return _index(folder)
        cache = "public, max-age=31536000, immutable" if path.startswith("assets/") else "no-cache"
        return FileResponse(found, headers={"Cache-Control": cache})

    app.router.routes.append(
        _DashboardRoute(
            "/{path:path}",
            dashboard,
            methods=["GET", "HEAD"],
            name="dashboard",
            include_in_schema=False,
        )
    )
