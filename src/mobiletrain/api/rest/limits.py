"""Limits before work: what a REST request may cost before its token is known.

A client without a valid token must not be able to make the server allocate, parse or wait on
its behalf. :class:`RequestLimitsMiddleware` runs before any route (and before FastAPI reads a
body) and, in this order:

1. caps the requests in flight per client address (SERVER_BUSY, 503, code 79, ``Retry-After``);
2. refuses more than ``max_header_count`` headers (HEADERS_TOO_LARGE, 431, code 77);
3. checks the bearer token of every ``/v1`` call from the headers alone (UNAUTHENTICATED, 401)
   — a failed attempt also takes one request from the client address's bucket, so guessing or
   flooding without a token is rate-limited (RATE_LIMITED, 429, ``Retry-After``);
4. refuses a ``Content-Length`` above the route's body cap at once (BODY_TOO_LARGE, 413, 76);
5. counts the body while the route reads it and stops at the cap (413, code 76), and cuts a body
   that stalls: no bytes for ``body_idle_timeout_seconds``, or slower on average than
   ``body_min_bytes_per_second`` after that long (REQUEST_TIMEOUT, 408, code 78);
6. counts every body a route holds in memory (all but multipart uploads, which are spooled to
   disk) against one server-wide budget, ``max_buffered_body_bytes``: past it, SERVER_BUSY (503,
   code 79, ``Retry-After``), so memory stays bounded however many clients send at once.

The size of the request line and headers is capped one level lower, by
:class:`HeaderLimitedHttpToolsProtocol` (uvicorn's parser has no such cap of its own): bytes are
counted as they arrive, before they are parsed or buffered.

The body caps per route (:func:`body_cap`): a multipart sample upload may carry many images and
is spooled to disk by the form parser; the base64 JSON routes and federated updates are parsed in
memory, so they are capped at twice the sample size (plus 64 KiB); a resumable-upload chunk at
twice the sample size (the route refuses a chunk over the sample size itself); every other route
at 1 MiB.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from mobiletrain.api.rest.errors import error_response, retry_after_header
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ratelimit import RateLimiter
from mobiletrain.core.tokens import TokenService

SMALL_BODY_BYTES = 1024 * 1024
"""Body cap of every route that takes no sample bytes (project, job, token, session settings)."""

JSON_OVERHEAD_BYTES = 64 * 1024
"""Room for the other fields of a base64 JSON body (labels, client ids, metrics)."""

MULTIPART_BODY_FACTOR = 64
"""A multipart sample upload may be this many times ``max_sample_bytes`` (spooled to disk)."""


@dataclass(frozen=True)
class LimitSettings:
    """The limits of :class:`RequestLimitsMiddleware` (see the module docstring)."""

    max_sample_bytes: int
    max_header_count: int = 100
    body_idle_timeout_seconds: float = 30.0
    body_min_bytes_per_second: float = 1024.0
    max_requests_per_address: int = 256
    max_buffered_body_bytes: int = 256 * 1024 * 1024
    auth: bool = True


_MULTIPART_ROUTES = (re.compile(r"^/v1/projects/[^/]+/samples$"),)
_SAMPLE_ROUTES = (re.compile(r"^/v1/projects/[^/]+/predict$"),)
_JSON_SAMPLE_ROUTES = (
    re.compile(r"^/v1/projects/[^/]+/samples:base64$"),
    re.compile(r"^/v1/projects/[^/]+/predict:base64$"),
    re.compile(r"^/v1/projects/[^/]+/federated/updates$"),
)
_CHUNK_ROUTES = (re.compile(r"^/v1/uploads/[^/]+$"),)


def body_cap(method: str, path: str, max_sample_bytes: int) -> int:
    """The most body bytes a request to ``method path`` may send."""
    if method == "POST" and any(p.match(path) for p in _MULTIPART_ROUTES):
        return max_sample_bytes * MULTIPART_BODY_FACTOR
    if method == "POST" and any(p.match(path) for p in _SAMPLE_ROUTES):
        return max_sample_bytes + SMALL_BODY_BYTES
    if method == "POST" and any(p.match(path) for p in _JSON_SAMPLE_ROUTES):
        return 2 * max_sample_bytes + JSON_OVERHEAD_BYTES  # base64 is 4/3 of the bytes
    if method == "PATCH" and any(p.match(path) for p in _CHUNK_ROUTES):
        return 2 * max_sample_bytes  # the route refuses a chunk over max_sample_bytes itself
    return SMALL_BODY_BYTES


def needs_token(path: str) -> bool:
    """Whether the route at ``path`` authenticates (every ``/v1`` route does)."""
    return path == "/v1" or path.startswith("/v1/")


class _LimitHit(Exception):
    """Raised into the route by the body reader; the middleware answers ``error`` instead."""

    def __init__(self, error: MobiletrainError) -> None:
        super().__init__(error.message)
        self.error = error


class BodyBudget:
    """Bytes of request bodies held in memory by all requests together (0 = no limit)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._held = 0
        self._lock = threading.Lock()

    def take(self, size: int) -> bool:
        """Count ``size`` more bytes; False (nothing counted) when that passes the limit."""
        with self._lock:
            if self.limit > 0 and self._held + size > self.limit:
                return False
            self._held += size
            return True

    def release(self, size: int) -> None:
        """Forget ``size`` bytes counted by :meth:`take`."""
        with self._lock:
            self._held -= size

    @property
    def held(self) -> int:
        """Bytes counted now."""
        return self._held


class AddressSlots:
    """Requests in flight per client address."""

    def __init__(self) -> None:
        self._open: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, address: str, limit: int) -> bool:
        """Occupy a slot for ``address``; False when it holds ``limit`` already."""
        with self._lock:
            count = self._open.get(address, 0)
            if limit > 0 and count >= limit:
                return False
            self._open[address] = count + 1
            return True

    def release(self, address: str) -> None:
        """Free a slot taken with :meth:`take`."""
        with self._lock:
            left = self._open.get(address, 1) - 1
            if left > 0:
                self._open[address] = left
            else:
                self._open.pop(address, None)

    def held(self, address: str) -> int:
        """Slots ``address`` holds now."""
        with self._lock:
            return self._open.get(address, 0)


def _bearer(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if name == b"authorization":
            scheme, _, secret = value.decode("latin-1").partition(" ")
            return secret.strip() if scheme.lower() == "bearer" else None
    return None


class RequestLimitsMiddleware:
    """The checks of the module docstring, as pure ASGI middleware (outermost in the app)."""

    def __init__(
        self,
        app: ASGIApp,
        limits: LimitSettings,
        tokens: TokenService,
        address_limiter: RateLimiter,
    ) -> None:
        self.app = app
        self.limits = limits
        self.tokens = tokens
        self.address_limiter = address_limiter
        self.slots = AddressSlots()
        self.budget = BodyBudget(limits.max_buffered_body_bytes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if not self.slots.take(address, self.limits.max_requests_per_address):
            busy = MobiletrainError(
                ErrorCode.SERVER_BUSY,
                f"this address has {self.limits.max_requests_per_address} requests in flight; "
                "retry when one has finished",
            )
            await self._refuse(busy, scope, receive, send)
            return
        try:
            await self._checked(scope, receive, send, address)
        finally:
            self.slots.release(address)

    async def _refuse(
        self, err: MobiletrainError, scope: Scope, receive: Receive, send: Send
    ) -> None:
        # The unread body is never read: uvicorn closes the connection after this response.
        headers = {**retry_after_header(err), "Connection": "close"}
        await error_response(err, headers=headers)(scope, receive, send)

    async def _checked(self, scope: Scope, receive: Receive, send: Send, address: str) -> None:
        headers: list[tuple[bytes, bytes]] = scope.get("headers", [])
        if len(headers) > self.limits.max_header_count:
            err = MobiletrainError(
                ErrorCode.HEADERS_TOO_LARGE,
                f"{len(headers)} headers; at most {self.limits.max_header_count} are accepted",
            )
            await self._refuse(err, scope, receive, send)
            return
        if self.limits.auth and needs_token(scope["path"]):
            try:
                # Token lookups are cached; an unknown secret without the token prefix never
                # reaches the store, so this is cheap enough for the event loop.
                self.tokens.verify(_bearer(headers))
            except MobiletrainError as exc:
                refusal = exc
                try:
                    self.address_limiter.check(f"address:{address}")
                except MobiletrainError as limited:
                    refusal = limited
                await self._refuse(refusal, scope, receive, send)
                return
        cap = body_cap(scope["method"], scope["path"], self.limits.max_sample_bytes)
        declared: int | None = None
        for name, value in headers:
            if name == b"content-length":
                text = value.decode("latin-1").strip()
                if not (text.isascii() and text.isdigit()) or len(text) > 18:
                    bad = MobiletrainError(ErrorCode.INVALID_ARGUMENT, "invalid Content-Length")
                    await self._refuse(bad, scope, receive, send)
                    return
                declared = int(text)
        if declared is not None and declared > cap:
            err = MobiletrainError(
                ErrorCode.BODY_TOO_LARGE,
                f"request body is {declared} bytes; this route accepts at most {cap}",
                limit=cap,
            )
            await self._refuse(err, scope, receive, send)
            return
        # Multipart files are spooled to disk by the form parser; every other body is held in
        # memory by its route, so those share one server-wide budget.
        in_memory = not any(p.match(scope["path"]) for p in _MULTIPART_ROUTES)
        await self._run(scope, receive, send, cap, in_memory)

    async def _run(
        self, scope: Scope, receive: Receive, send: Send, cap: int, in_memory: bool
    ) -> None:
        limits = self.limits
        hit: list[MobiletrainError] = []
        started = False
        received = 0
        reserved = 0
        body_done = False
        began = time.monotonic()

        def fail(err: MobiletrainError) -> _LimitHit:
            hit.append(err)
            return _LimitHit(err)

        async def limited_receive() -> Message:
            nonlocal received, reserved, body_done
            if hit:
                raise _LimitHit(hit[0])
            if body_done:
                # The body is complete: what follows is only http.disconnect, which a long
                # response (an SSE stream) waits for as long as it runs, so no idle cut here.
                return await receive()
            message: Message | None = None
            with anyio.move_on_after(limits.body_idle_timeout_seconds):
                message = await receive()
            if message is None:
                raise fail(
                    MobiletrainError(
                        ErrorCode.REQUEST_TIMEOUT,
                        f"no request body bytes for {limits.body_idle_timeout_seconds:g} s",
                    )
                )
            if message["type"] == "http.request":
                body_done = not message.get("more_body", False)
                size = len(message.get("body", b""))
                received += size
                if in_memory and size:
                    if not self.budget.take(size):
                        raise fail(
                            MobiletrainError(
                                ErrorCode.SERVER_BUSY,
                                f"the server holds {self.budget.limit} bytes of request bodies "
                                "already; retry shortly",
                            )
                        )
                    reserved += size
                if received > cap:
                    raise fail(
                        MobiletrainError(
                            ErrorCode.BODY_TOO_LARGE,
                            f"request body is larger than this route's limit of {cap} bytes",
                            limit=cap,
                        )
                    )
                elapsed = time.monotonic() - began
                if (
                    message.get("more_body", False)
                    and elapsed > limits.body_idle_timeout_seconds
                    and received / elapsed < limits.body_min_bytes_per_second
                ):
                    raise fail(
                        MobiletrainError(
                            ErrorCode.REQUEST_TIMEOUT,
                            f"request body arrives slower than "
                            f"{limits.body_min_bytes_per_second:g} bytes/s",
                        )
                    )
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if hit and not started:
                # The route turned our exception into a response of its own (a framework's
                # 400 "error parsing the body", say): answer the limit's error instead.
                raise _LimitHit(hit[0])
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not hit or started:
                raise
            await self._refuse(hit[0], scope, receive, send)
        finally:
            self.budget.release(reserved)


class HeaderLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a cap on the bytes of the request line and headers.

    httptools buffers a header until it is complete, so a 100 MiB header would be held in memory
    before any callback could refuse it; the bytes of an incomplete head are therefore counted
    as they arrive, and a request whose head passes ``max_bytes`` is answered 431 (code 77) and
    the connection closed.
    """

    max_bytes = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._in_head = True
        self._head_bytes = 0
        self._heads_done_in_read = 0
        self._refused = False
        self._message_done = False
        self._raw: asyncio.Transport | None = None
        self._linger_left: int | None = None
        self._linger_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """Hand uvicorn a transport whose ``close`` lingers (see :meth:`close_softly`)."""
        super().connection_made(transport)
        self._raw = transport
        self.transport = _LingeringTransport(transport, self)  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        """Stop the lingering timer."""
        if self._linger_timer is not None:
            self._linger_timer.cancel()
        super().connection_lost(exc)

    def close_softly(self) -> None:
        """Close; but when the client is still sending the refused request, first read and drop
        up to ``LINGER_BYTES`` for up to ``LINGER_SECONDS``.

        Closing a socket with unread bytes makes the kernel answer with a reset, which can make
        the client lose the response (a 401 or 413) before reading it; lingering lets a client
        that stops sending read it, at a bounded cost.
        """
        assert self._raw is not None
        if self._linger_left is not None:
            return
        if self._message_done and not self._in_head:
            self._raw.close()
            return
        self._linger_left = LINGER_BYTES
        self._raw.resume_reading()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self._raw.close)

    def data_received(self, data: bytes) -> None:
        """Parse, then count the bytes of a head that is still incomplete.

        The parser holds an incomplete head, so it never holds more than the cap plus one read
        (at most 256 KiB) before the request is refused.
        """
        if self._linger_left is not None:
            self._linger_left -= len(data)  # dropped unparsed
            if self._linger_left <= 0 and self._raw is not None:
                self._raw.close()
            return
        if self._refused:
            return
        was_in_head = self._in_head
        self._heads_done_in_read = 0
        super().data_received(data)
        # Counted only when the read began and ended inside one head: a read that completed a
        # head, or began in a body, also carried body bytes, which are not head (at most one
        # read, 256 KiB, of a next head goes uncounted).
        whole_read_is_head = was_in_head and self._in_head and not self._heads_done_in_read
        if whole_read_is_head and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_bytes:
                self._send_431()

    def on_message_begin(self) -> None:
        """A request starts."""
        self._message_done = False
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        """The head is complete: the rest is body, counted by the middleware."""
        self._in_head = False
        self._heads_done_in_read += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        """A next request on this connection starts a new head."""
        super().on_message_complete()
        self._message_done = True
        self._in_head = True
        self._head_bytes = 0

    def _send_431(self) -> None:
        err = MobiletrainError(
            ErrorCode.HEADERS_TOO_LARGE,
            f"request line and headers exceed {self.max_bytes} bytes",
        )
        body = error_response(err).body
        head = (
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
            b"content-type: application/json\r\n"
            b"x-mobiletrain-error-code: " + str(err.code.number).encode() + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        self._in_head = False
        self._refused = True
        if not self.transport.is_closing():
            self.transport.write(head + bytes(body))
            self.transport.close()


LINGER_BYTES = 8 * 1024 * 1024
"""After refusing a request whose body is still coming, read and drop at most this much..."""

LINGER_SECONDS = 2.0
"""...for at most this long, then close (see ``HeaderLimitedHttpToolsProtocol.close_softly``)."""


class _LingeringTransport:
    """The connection's transport, with ``close`` routed through the protocol's lingering."""

    def __init__(self, transport: asyncio.Transport, protocol: HeaderLimitedHttpToolsProtocol):
        self._transport = transport
        self._protocol = protocol
        self._closing = False

    def close(self) -> None:
        """Close once the refused request's body has been drained (bounded)."""
        self._closing = True
        self._protocol.close_softly()

    def is_closing(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closing or self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def header_limited_protocol(max_bytes: int) -> type[HeaderLimitedHttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with this head cap."""
    return type(
        "HeaderLimitedProtocol", (HeaderLimitedHttpToolsProtocol,), {"max_bytes": max_bytes}
    )


PoolGauge = Callable[[], tuple[int, int]]
"""``() -> (busy, size)`` of a worker thread pool, for the health check."""
