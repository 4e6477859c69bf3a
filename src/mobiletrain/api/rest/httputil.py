"""Small HTTP helpers: request body limit, ETags and byte ranges."""

from __future__ import annotations

import re

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mobiletrain.api.rest.errors import error_response
from mobiletrain.core.errors import ErrorCode, MobiletrainError


class BodySizeLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413 (code SAMPLE_TOO_LARGE).

    A declared ``Content-Length`` is checked before anything is read; a body without one
    (chunked) is counted while it is read.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self, size: int | None) -> MobiletrainError:
        if size is None:
            message = f"request body is larger than the limit of {self.max_bytes} bytes"
        else:
            message = f"request body is {size} bytes; the limit is {self.max_bytes} bytes"
        return MobiletrainError(ErrorCode.SAMPLE_TOO_LARGE, message)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    response = error_response(
                        MobiletrainError(ErrorCode.INVALID_ARGUMENT, "invalid Content-Length")
                    )
                    await response(scope, receive, send)
                    return
        if declared is not None and declared > self.max_bytes:
            await error_response(self._too_large(declared))(scope, receive, send)
            return

        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException passes FastAPI's body parsing unchanged; the
                    # app's handler turns 413 into the catalog's SAMPLE_TOO_LARGE.
                    raise HTTPException(413, self._too_large(None).message)
            return message

        await self.app(scope, counting_receive, send)


def strong_etag(sha256: str) -> str:
    """The ETag of content identified by its SHA-256."""
    return f'"{sha256}"'


def etag_matches(header: str | None, etag: str) -> bool:
    """True when an ``If-None-Match`` / ``If-Range`` value names ``etag`` (or is ``*``)."""
    if not header:
        return False
    for candidate in header.split(","):
        tag = candidate.strip()
        if tag == "*":
            return True
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == etag:
            return True
    return False


_RANGE = re.compile(r"^bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.IGNORECASE)


class RangeNotSatisfiable(Exception):
    """The requested byte range lies outside the file."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, end_inclusive)`` of a single ``Range: bytes=...`` header, or None.

    Returns None when there is no header or it should be ignored (malformed, another unit,
    several ranges): the whole file is then sent, as RFC 9110 allows. Raises
    :class:`RangeNotSatisfiable` when the range is valid but outside the file.
    """
    if not header:
        return None
    match = _RANGE.match(header.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:  # suffix range: the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None  # invalid: ignore the header
    if start >= size:
        raise RangeNotSatisfiable
    return start, min(end, size - 1)
