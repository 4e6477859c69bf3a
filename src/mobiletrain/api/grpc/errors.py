"""How calls enter and failures leave the gRPC adapter.

Every call to a mobiletrain service is authenticated first: the bearer token in the metadata
``authorization`` is verified and the handler runs as that principal (see ``core.auth``), so
the core services can check what the caller may do.

Servicers never build statuses themselves: they (or the core services they call) raise
:class:`~mobiletrain.core.errors.MobiletrainError`. :class:`ErrorInterceptor` wraps every handler
of the mobiletrain services (unary and streaming alike) and turns

* a ``MobiletrainError`` into its gRPC status (``ErrorCode.grpc_status``), its safe message and
  the trailing metadata ``mobiletrain-error-code`` = the code's decimal number;
* a full disk (``ENOSPC``, SQLite's "database or disk is full", see ``core.storage``) into
  ``RESOURCE_EXHAUSTED`` with code ``74`` (STORAGE_FULL) and one log line;
* any other exception into ``INTERNAL`` with code ``1`` and a generic message; the details go to
  the server log only.

A client that went away is not an error: the exception its departure causes inside the handler
is passed on to gRPC unchanged, which drops it silently.

Request bytes that do not decode as the method's message would make grpcio answer ``INTERNAL``
"Exception deserializing request!" before any handler runs. The interceptor therefore wraps
each ``request_deserializer``: a decoding failure yields an :class:`Undecodable` marker instead,
and the wrapped handler raises ``INVALID_ARGUMENT`` (code 2) when it meets one, after
authentication, so a malformed request gets the same clean status on every method.

The same wrapper enforces the message size cap (``grpc_max_message_bytes``): gRPC's own limit is
set higher (see ``server.TRANSPORT_MESSAGE_FACTOR``), and a message over the cap becomes a
:class:`TooLarge` marker, answered ``RESOURCE_EXHAUSTED`` with code ``76`` (BODY_TOO_LARGE) and
the usual trailer. Only a message over gRPC's own, higher limit (and request metadata over
``MAX_METADATA_BYTES``) is refused by gRPC before any handler runs, without the trailer.

Every call also gets a server-side deadline (see :mod:`.deadlines`): the wrapped handlers stop
passing messages in either direction once it has expired and end the call with
``DEADLINE_EXCEEDED`` (code 73); a handler that does not notice is cut after a grace.

The server is ``grpc.aio`` (see :mod:`.bridge`): every wrapped handler is a coroutine. Servicer
methods written as ``async def`` run on the event loop; the synchronous ones run in the server's
thread pool with a :class:`~.bridge.SyncContext`.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Executor
from contextlib import ExitStack
from typing import Any, NoReturn

import grpc

from mobiletrain.api.grpc.bridge import (
    CallEnded,
    RequestPump,
    SyncContext,
    iterate_in_pool,
    run_in_pool,
)
from mobiletrain.api.grpc.deadlines import CallDeadline, bind, current_deadline, deadline_message
from mobiletrain.core.auth import SYSTEM, Principal, acting_as
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ratelimit import RateLimiter, StreamSlots
from mobiletrain.core.storage import storage_full_error

log = logging.getLogger("mobiletrain.api.grpc")

ERROR_CODE_METADATA_KEY = "mobiletrain-error-code"
"""Trailing metadata key that carries the number of the :class:`ErrorCode`."""

SERVICE_PREFIX = "/mobiletrain."
"""Full method names of the mobiletrain services, which this interceptor wraps."""

WRAPPED_PREFIXES = (SERVICE_PREFIX, "/grpc.reflection.")
"""Full method names this interceptor wraps: the services and server reflection (which needs a
token too). Health checks keep their own handling and stay open."""


RETRY_AFTER_METADATA_KEY = "retry-after"
"""Trailing metadata key: whole seconds to wait before retrying (rate and stream limits)."""


MAX_STATUS_MESSAGE_CHARS = 1024
"""Longest status message sent; longer ones (quoting a client's huge field) are cut."""


def retry_after_seconds(error: MobiletrainError) -> int | None:
    """Whole seconds (at least 1) to wait before retrying, for errors that heal by waiting."""
    seconds = error.details.get("retry_after_seconds")
    if isinstance(seconds, (int, float)) and not isinstance(seconds, bool):
        return max(1, math.ceil(seconds))
    if error.code in (ErrorCode.RATE_LIMITED, ErrorCode.TOO_MANY_STREAMS, ErrorCode.SERVER_BUSY):
        return 1
    return None


def status_code_of(code: ErrorCode) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` member named by an error code."""
    return grpc.StatusCode[code.grpc_status]


async def abort_with_error(context: grpc.aio.ServicerContext, error: MobiletrainError) -> NoReturn:
    """End the RPC with the status, message and trailing code number of ``error``."""
    trailers = [(ERROR_CODE_METADATA_KEY, str(error.code.number))]
    retry = retry_after_seconds(error)
    if retry is not None:
        trailers.append((RETRY_AFTER_METADATA_KEY, str(retry)))
    context.set_trailing_metadata(tuple(trailers))
    message = error.message
    if len(message) > MAX_STATUS_MESSAGE_CHARS:
        # A message that quotes a huge field would overflow the client's metadata limit and
        # arrive as a bare RESOURCE_EXHAUSTED without the trailer.
        message = message[: MAX_STATUS_MESSAGE_CHARS - 1] + "…"
    await context.abort(status_code_of(error.code), message)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


async def _fail(
    context: grpc.aio.ServicerContext,
    exc: BaseException,
    method: str,
    deadline: CallDeadline | None,
) -> NoReturn:
    """Map an exception raised by a handler (see the module docstring)."""
    if isinstance(exc, TimeoutError) and deadline is not None and deadline.remaining() == 0:
        # The hard stop: the handler ignored its deadline (or, for unary calls, reached it).
        log.warning("%s cut at its %g s server deadline", method, deadline.seconds)
        await abort_with_error(
            context, MobiletrainError(ErrorCode.DEADLINE_EXCEEDED, deadline_message(deadline))
        )
    if (
        not isinstance(exc, Exception)  # cancelled (client gone), interpreter exiting
        or isinstance(exc, (grpc.RpcError, CallEnded, grpc.aio.AbortError))
        or context.done()
    ):
        # The client cancelled or the connection dropped: gRPC knows and discards this.
        raise exc
    full = storage_full_error(exc)
    if full is not None:
        # Expected, not a bug: one line, no stack trace (see core.storage).
        log.warning("%s refused: %s", method, full.message)
        await abort_with_error(context, full)
    if isinstance(exc, MobiletrainError):
        if exc.code is ErrorCode.INTERNAL:
            log.error("%s failed: %s", method, exc)
        await abort_with_error(context, exc)
    log.error("%s failed unexpectedly", method, exc_info=exc)
    await abort_with_error(context, MobiletrainError(ErrorCode.INTERNAL))


Authenticator = Callable[[str | None], Principal]
"""Turns the bearer secret of a call (None if absent) into a principal, or raises."""

AUTHORIZATION_METADATA_KEY = "authorization"


def bearer_secret(context: grpc.aio.ServicerContext | SyncContext) -> str | None:
    """The token of ``authorization: Bearer <token>`` metadata, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA_KEY and isinstance(value, str):
            scheme, _, secret = value.partition(" ")
            return secret.strip() if scheme.lower() == "bearer" else None
    return None


def peer_address(context: grpc.aio.ServicerContext) -> str:
    """The client's IP address (``ipv4:1.2.3.4:5678`` -> ``1.2.3.4``)."""
    peer = str(context.peer() or "")
    kind, _, rest = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host = rest.rsplit(":", 1)[0]
        return host.strip("[]")
    return peer


class Undecodable:
    """Stands for request bytes that are not a valid message of the method's request type."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


class TooLarge:
    """Stands for a request message longer than the server's message size cap."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


def _lenient(
    deserializer: Callable[[bytes], Any] | None, max_bytes: int | None = None
) -> Callable[[bytes], Any] | None:
    """``deserializer`` that returns :class:`Undecodable` instead of raising, and
    :class:`TooLarge` for a message over ``max_bytes``."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        if max_bytes is not None and len(data) > max_bytes:
            return TooLarge(len(data))
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, and anything else a parser raises
            return Undecodable(exc)

    return deserialize


def _decoded(request: Any) -> Any:
    """The request itself, or INVALID_ARGUMENT when its bytes could not be decoded (
    BODY_TOO_LARGE when there were too many)."""
    if isinstance(request, TooLarge):
        raise MobiletrainError(
            ErrorCode.BODY_TOO_LARGE,
            f"a request message of {request.size} bytes is over the server's message size "
            "limit; send large samples in chunks",
        )
    if isinstance(request, Undecodable):
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT,
            "the request is not a valid protobuf message of this method's request type "
            f"({type(request.error).__name__})",
        )
    return request


def _check_deadline() -> None:
    """Raise DEADLINE_EXCEEDED once the current call's server-side deadline has expired."""
    deadline = current_deadline()
    if deadline is not None and deadline.expired.is_set():
        raise MobiletrainError(ErrorCode.DEADLINE_EXCEEDED, deadline_message(deadline))


def _decoded_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        _check_deadline()
        yield _decoded(request)


async def _decoded_async_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The client stream of an ``async def`` servicer method (reflection), read on the loop."""
    async for request in requests:
        _check_deadline()
        yield _decoded(request)


class _Call:
    """What every wrapped handler does around the servicer's code."""

    def __init__(
        self, interceptor: ErrorInterceptor, method: str, stream: bool, blocking: bool
    ) -> None:
        self.interceptor = interceptor
        self.method = method
        self.stream = stream
        self.blocking = blocking  # a synchronous servicer method (runs in the pool)

    async def enter(
        self, context: grpc.aio.ServicerContext, stack: ExitStack
    ) -> tuple[Any, CallDeadline]:
        """Authenticate, limit, bind principal and deadline; returns the servicer's context."""
        i = self.interceptor
        principal = SYSTEM
        if i.authenticate is not None:
            secret = bearer_secret(context)
            try:
                principal = await run_in_pool(
                    i.executor, contextvars.copy_context(), i.authenticate, secret
                )
            except MobiletrainError:
                # Failed tokens are rate-limited per client address, as over REST.
                if i.address_limiter is not None:
                    i.address_limiter.check(f"address:{peer_address(context)}")
                raise
        if i.limiter is not None:
            i.limiter.check(principal.token_id)
        if self.stream and i.slots is not None:
            stack.enter_context(i.slots.hold(principal.token_id))
        stack.enter_context(acting_as(principal))
        deadline = CallDeadline(i.stream_seconds if self.stream else i.unary_seconds, self.stream)
        stack.callback(bind(deadline))
        loop = asyncio.get_running_loop()
        if self.stream:  # streams are told first, and cut only after the grace
            stack.callback(loop.call_later(deadline.seconds, deadline.expire).cancel)
        return (SyncContext(context) if self.blocking else context), deadline

    def timeout(self, deadline: CallDeadline) -> asyncio.Timeout:
        """The hard stop of the current call."""
        grace = self.interceptor.grace_seconds if self.stream else 0.0
        return asyncio.timeout(deadline.remaining() + grace)


def _unary_response(
    behavior: Callable[..., Any], call: _Call, decoded: Callable[[Any], Any], pump: bool
) -> Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]:
    executor = call.interceptor.executor

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        pumping: asyncio.Task[None] | None = None
        deadline: CallDeadline | None = None
        try:
            with ExitStack() as stack:
                servicer_context, deadline = await call.enter(context, stack)
                async with call.timeout(deadline):
                    if pump:  # a client stream
                        requests = RequestPump(request)
                        pumping = asyncio.create_task(requests.run())
                        request = requests
                    if not call.blocking:
                        return await behavior(decoded(request), servicer_context)
                    return await run_in_pool(
                        executor,
                        contextvars.copy_context(),
                        lambda: behavior(decoded(request), servicer_context),
                    )
        except BaseException as exc:
            await _fail(context, exc, call.method, deadline)
        finally:
            if pumping is not None:
                pumping.cancel()

    return handler


def _stream_response(
    behavior: Callable[..., Any], call: _Call, decoded: Callable[[Any], Any], pump: bool
) -> Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]:
    executor = call.interceptor.executor

    async def handler(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        pumping: asyncio.Task[None] | None = None
        deadline: CallDeadline | None = None
        try:
            with ExitStack() as stack:
                servicer_context, deadline = await call.enter(context, stack)
                async with call.timeout(deadline):
                    if pump:
                        requests = RequestPump(request)
                        pumping = asyncio.create_task(requests.run())
                        request = requests
                    responses: AsyncIterator[Any]
                    if call.blocking:
                        ctx = contextvars.copy_context()
                        items = await run_in_pool(
                            executor, ctx, lambda: behavior(decoded(request), servicer_context)
                        )
                        responses = iterate_in_pool(executor, ctx, items)
                    else:
                        responses = behavior(decoded(request), servicer_context)
                    async for response in responses:
                        _check_deadline()
                        yield response
                    # A handler that returns early because its deadline woke it (WatchJob) did
                    # not finish: tell the client to reconnect.
                    _check_deadline()
        except BaseException as exc:
            if isinstance(exc, GeneratorExit):
                raise  # the server closed the stream (client gone)
            await _fail(context, exc, call.method, deadline)
        finally:
            if pumping is not None:
                pumping.cancel()

    return handler


class ErrorInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates, rate-limits and maps errors for every handler of the mobiletrain services.

    Without an ``authenticate`` function (auth switched off) calls run as the local admin.
    Streams (either direction) also hold one of the token's stream slots while they run. Unary
    calls may run ``unary_seconds``, streams ``stream_seconds`` (then ``grace_seconds`` more
    before they are cut). Synchronous servicer methods run on ``executor``. A request message
    over ``max_message_bytes`` fails with BODY_TOO_LARGE (code 76).
    """

    def __init__(
        self,
        executor: Executor,
        authenticate: Authenticator | None = None,
        limiter: RateLimiter | None = None,
        slots: StreamSlots | None = None,
        address_limiter: RateLimiter | None = None,
        unary_seconds: float = 60.0,
        stream_seconds: float = 3600.0,
        grace_seconds: float = 5.0,
        max_message_bytes: int | None = None,
    ) -> None:
        # Wrapped handlers per method name; the servicers' handlers never change.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # type: ignore[type-arg]
        self.executor = executor
        self.authenticate = authenticate
        self.limiter = limiter
        self.slots = slots
        self.address_limiter = address_limiter
        self.unary_seconds = unary_seconds
        self.stream_seconds = stream_seconds
        self.grace_seconds = grace_seconds
        self.max_message_bytes = max_message_bytes

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],  # type: ignore[type-arg]
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
        """Return the handler of the call with its behaviour wrapped."""
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(WRAPPED_PREFIXES):
            return handler
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            wrapped = self._wrapped[method] = self._wrap(handler, method)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
        """A copy of ``handler`` whose behaviour runs as described in the module docstring."""
        kwargs: dict[str, Any] = {
            "request_deserializer": _lenient(handler.request_deserializer, self.max_message_bytes),
            "response_serializer": handler.response_serializer,
        }
        for kind, make, stream_in, stream_out in (
            ("unary_unary", grpc.unary_unary_rpc_method_handler, False, False),
            ("unary_stream", grpc.unary_stream_rpc_method_handler, False, True),
            ("stream_unary", grpc.stream_unary_rpc_method_handler, True, False),
            ("stream_stream", grpc.stream_stream_rpc_method_handler, True, True),
        ):
            behavior = getattr(handler, kind)
            if behavior is None:
                continue
            blocking = not (
                inspect.iscoroutinefunction(behavior) or inspect.isasyncgenfunction(behavior)
            )
            call = _Call(self, method, stream_in or stream_out, blocking)
            decoded: Callable[[Any], Any] = _decoded
            if stream_in:
                decoded = _decoded_stream if blocking else _decoded_async_stream
            wrap = _stream_response if stream_out else _unary_response
            # Only a synchronous servicer needs the client stream pumped into its thread.
            pump = stream_in and blocking
            return make(wrap(behavior, call, decoded, pump), **kwargs)  # type: ignore[no-any-return]
        return handler
