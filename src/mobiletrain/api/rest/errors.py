"""Error responses: every failure is the catalog's JSON body plus an error-code header."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from mobiletrain.api.rest.schemas import ErrorPublic
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.storage import storage_full_error

log = logging.getLogger("mobiletrain.api.rest")

ERROR_CODE_HEADER = "X-Mobiletrain-Error-Code"
"""Response header carrying the numeric error code of a failed request."""


def retry_after_header(err: MobiletrainError) -> dict[str, str]:
    """``Retry-After`` (whole seconds, at least 1) for the errors worth retrying later.

    A rate limit says when its bucket refills; stream and connection limits free up as other
    calls end. A used-up quota does not heal by waiting, so it gets none.
    """
    seconds = err.details.get("retry_after_seconds")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return {"Retry-After": str(max(1, math.ceil(seconds)))}
    if err.code in (ErrorCode.RATE_LIMITED, ErrorCode.TOO_MANY_STREAMS, ErrorCode.SERVER_BUSY):
        return {"Retry-After": "1"}
    return {}


def error_response(
    err: MobiletrainError, status_code: int | None = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The JSON response of an error: catalog body, HTTP status and the error-code header."""
    all_headers = {
        ERROR_CODE_HEADER: str(err.code.number),
        **retry_after_header(err),
        **(headers or {}),
    }
    return JSONResponse(
        status_code=status_code or err.code.http_status,
        content=err.to_dict(),
        headers=all_headers,
    )


_STATUS_TEXT = {
    304: "Not modified (the `If-None-Match` ETag matches)",
    400: "Invalid argument (codes 2, 12-14, 21-30, 41, 52)",
    401: "No valid token (code 60)",
    403: "The token's role may not do this (code 61)",
    404: "Not found (codes 3, 10, 20, 40, 50, 51, 62)",
    409: "Conflict or failed precondition (codes 4, 5, 11, 42, 43, 53)",
    413: "Too large (codes 24, 76)",
    415: "Unsupported media type (code 25)",
    416: "Range not satisfiable (code 54)",
    408: "The request body stalled or arrived too slowly (code 78)",
    429: "Quota, request rate or stream limit reached (codes 70, 71, 72); `Retry-After` "
    "says when to retry a rate or stream limit",
    431: "Request headers too large or too many (code 77)",
    503: "Too many requests in flight from this address (code 79); see `Retry-After`",
    500: "Internal error (code 1), or a sample's stored bytes are damaged (code 31)",
    507: "The server's storage is full or below its reserve; retry later (code 74)",
}


def error_docs(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route may return."""
    docs: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        if status == 304:
            docs[status] = {"description": _STATUS_TEXT[status]}
        else:
            docs[status] = {"model": ErrorPublic, "description": _STATUS_TEXT[status]}
    return docs


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Only location, message and type: the raw input may be large or binary.
    return [
        {
            "loc": [str(part) for part in e.get("loc", ())],
            "msg": e.get("msg", ""),
            "type": e.get("type", ""),
        }
        for e in exc.errors()
    ]


def _describe(errors: list[dict[str, Any]]) -> str:
    parts = []
    for e in errors[:5]:
        where = ".".join(p for p in e["loc"] if p not in ("body", "query", "path", "header"))
        parts.append(f"{where or 'request'}: {e['msg']}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


_HTTP_STATUS_CODES = {
    400: ErrorCode.INVALID_ARGUMENT,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.INVALID_ARGUMENT,
    409: ErrorCode.FAILED_PRECONDITION,
    413: ErrorCode.SAMPLE_TOO_LARGE,
    415: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    416: ErrorCode.INVALID_RANGE,
}


async def _mobiletrain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MobiletrainError)
    if exc.code is ErrorCode.STORAGE_FULL:
        log.warning("%s %s refused: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = _validation_errors(exc)
    err = MobiletrainError(
        ErrorCode.INVALID_ARGUMENT, f"invalid request: {_describe(errors)}", errors=errors
    )
    return error_response(err)


def _allowed_methods(request: Request) -> str | None:
    """Every documented method at this path (Starlette names only its first route's)."""
    methods: set[str] = set()
    for template, item in request.app.openapi().get("paths", {}).items():
        if compile_path(template)[0].match(request.url.path):
            methods |= {method.upper() for method in item}
    if "GET" in methods:
        methods.add("HEAD")  # served by every GET route
    return ", ".join(sorted(methods)) if methods else None


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    headers = dict(exc.headers or {})
    if status == 405:
        # RFC 9110: a 405 lists the methods the resource supports (`/v1/projects` has two).
        headers["Allow"] = _allowed_methods(request) or headers.get("Allow", "")
    code = _HTTP_STATUS_CODES.get(status)
    if code is None:
        code = ErrorCode.INTERNAL if status >= 500 else ErrorCode.INVALID_ARGUMENT
    message = exc.detail if isinstance(exc.detail, str) and status < 500 else code.public_message
    if status == 404 and message == "Not Found":
        message = "no such route"
    return error_response(MobiletrainError(code, message), status, headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    full = storage_full_error(exc)
    if full is not None:  # expected, not a bug: one line, no stack trace
        return await _mobiletrain_error(request, full)
    # The details go to the log only: clients see the catalog's public message.
    log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(MobiletrainError(ErrorCode.INTERNAL))


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception to the catalog's JSON shape."""
    app.add_exception_handler(MobiletrainError, _mobiletrain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    # OSError is handled here (inside the app) rather than by the catch-all, which Starlette
    # re-raises to the server after answering: a full disk must cost one log line, no trace.
    app.add_exception_handler(OSError, _unexpected_error)
    app.add_exception_handler(Exception, _unexpected_error)
