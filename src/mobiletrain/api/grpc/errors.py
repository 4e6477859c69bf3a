"""How calls enter and failures leave the gRPC adapter.

Every call to a mobiletrain service is authenticated first: the bearer token in the metadata
``authorization`` is verified and the handler runs as that principal (see ``core.auth``), so
the core services can check what the caller may do.

Servicers never build statuses themselves: they (or the core services they call) raise
:class:`~mobiletrain.core.errors.MobiletrainError`. :class:`ErrorInterceptor` wraps every handler
of the mobiletrain services (unary and streaming alike) and turns

* a ``MobiletrainError`` into its gRPC status (``ErrorCode.grpc_status``), its safe message and
  the trailing metadata ``mobiletrain-error-code`` = the code's decimal number;
* any other exception into ``INTERNAL`` with code ``1`` and a generic message; the details go to
  the server log only.

A client that went away is not an error: the exception its departure causes inside the handler
is passed on to gRPC unchanged, which drops it silently.

Request bytes that do not decode as the method's message would make grpcio answer ``INTERNAL``
"Exception deserializing request!" before any handler runs. The interceptor therefore wraps
each ``request_deserializer``: a decoding failure yields an :class:`Undecodable` marker instead,
and the wrapped handler raises ``INVALID_ARGUMENT`` (code 2) when it meets one, after
authentication, so a malformed request gets the same clean status on every method.

Every call also gets a server-side deadline (see :mod:`.deadlines`): the wrapped handlers stop
passing messages in either direction once it has expired and end the call with
``DEADLINE_EXCEEDED`` (code 73); the watchdog stops handlers that do not notice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack
from typing import Any, NoReturn

import grpc

from mobiletrain.api.grpc.deadlines import (
    CallDeadline,
    Watchdog,
    bind,
    current_deadline,
    deadline_message,
)
from mobiletrain.core.auth import SYSTEM, Principal, acting_as
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ratelimit import RateLimiter, StreamSlots

log = logging.getLogger("mobiletrain.api.grpc")

ERROR_CODE_METADATA_KEY = "mobiletrain-error-code"
"""Trailing metadata key that carries the number of the :class:`ErrorCode`."""

SERVICE_PREFIX = "/mobiletrain."
"""Full method names this interceptor wraps (health and reflection keep their own handling)."""


def status_code_of(code: ErrorCode) -> grpc.StatusCode:
    """The ``grpc.StatusCode`` member named by an error code."""
    return grpc.StatusCode[code.grpc_status]


def abort_with_error(context: grpc.ServicerContext, error: MobiletrainError) -> NoReturn:
    """End the RPC with the status, message and trailing code number of ``error``."""
    context.set_trailing_metadata(((ERROR_CODE_METADATA_KEY, str(error.code.number)),))
    context.abort(status_code_of(error.code), error.message)


def _fail(context: grpc.ServicerContext, exc: Exception, method: str) -> NoReturn:
    """Map an exception raised by a handler (see the module docstring)."""
    if isinstance(exc, grpc.RpcError) or not context.is_active():
        # The client cancelled or the connection dropped: gRPC knows and discards this.
        raise exc
    if isinstance(exc, MobiletrainError):
        if exc.code is ErrorCode.INTERNAL:
            log.error("%s failed: %s", method, exc)
        abort_with_error(context, exc)
    log.error("%s failed unexpectedly", method, exc_info=exc)
    abort_with_error(context, MobiletrainError(ErrorCode.INTERNAL))


Authenticator = Callable[[str | None], Principal]
"""Turns the bearer secret of a call (None if absent) into a principal, or raises."""

AUTHORIZATION_METADATA_KEY = "authorization"


def bearer_secret(context: grpc.ServicerContext) -> str | None:
    """The token of ``authorization: Bearer <token>`` metadata, if any."""
    for key, value in context.invocation_metadata() or ():
        if key == AUTHORIZATION_METADATA_KEY and isinstance(value, str):
            scheme, _, secret = value.partition(" ")
            return secret.strip() if scheme.lower() == "bearer" else None
    return None


Scope = Callable[[grpc.ServicerContext, bool], AbstractContextManager[Any]]
"""Enters a call's context: (context, is a stream) -> the principal's scope."""


class Undecodable:
    """Stands for request bytes that are not a valid message of the method's request type."""

    __slots__ = ("error",)

    def __init__(self, error: Exception) -> None:
        self.error = error


def _lenient(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """``deserializer`` that returns :class:`Undecodable` instead of raising."""
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception as exc:  # protobuf's DecodeError, and anything else a parser raises
            return Undecodable(exc)

    return deserialize


def _decoded(request: Any) -> Any:
    """The request itself, or INVALID_ARGUMENT when its bytes could not be decoded."""
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


RequestFilter = Callable[[Any], Any]
"""Checks a handler's request argument (a message, or an iterator of them) before use."""


def _wrap_unary_response(
    behavior: Callable[[Any, grpc.ServicerContext], Any],
    method: str,
    scope: Scope,
    decoded: RequestFilter,
) -> Callable[[Any, grpc.ServicerContext], Any]:
    def handler(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            with scope(context, False):
                return behavior(decoded(request), context)
        except Exception as exc:
            _fail(context, exc, method)

    return handler


def _wrap_stream_response(
    behavior: Callable[[Any, grpc.ServicerContext], Iterator[Any]],
    method: str,
    scope: Scope,
    decoded: RequestFilter,
) -> Callable[[Any, grpc.ServicerContext], Iterator[Any]]:
    def handler(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            # The scope spans the whole stream: the generator's body runs during iteration.
            with scope(context, True):
                for response in behavior(decoded(request), context):
                    _check_deadline()
                    yield response
                # A handler that returns early because its deadline woke it (WatchJob) did
                # not finish: tell the client to reconnect.
                _check_deadline()
        except Exception as exc:
            _fail(context, exc, method)

    return handler


class ErrorInterceptor(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Authenticates, rate-limits and maps errors for every handler of the mobiletrain services.

    Without an ``authenticate`` function (auth switched off) calls run as the local admin.
    Streams (either direction) also hold one of the token's stream slots while they run.
    With a ``watchdog``, unary calls may run ``unary_seconds`` and streams ``stream_seconds``.
    """

    def __init__(
        self,
        authenticate: Authenticator | None = None,
        limiter: RateLimiter | None = None,
        slots: StreamSlots | None = None,
        watchdog: Watchdog | None = None,
        unary_seconds: float = 60.0,
        stream_seconds: float = 3600.0,
    ) -> None:
        # Wrapped handlers per method name; the servicers' handlers never change.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # type: ignore[type-arg]
        self._authenticate = authenticate
        self._limiter = limiter
        self._slots = slots
        self._watchdog = watchdog
        self._unary_seconds = unary_seconds
        self._stream_seconds = stream_seconds

    def _scope(self, context: grpc.ServicerContext, stream: bool) -> AbstractContextManager[Any]:
        """Authenticate, apply the token's request rate and stream limits, bind the caller."""
        principal = SYSTEM
        if self._authenticate is not None:
            principal = self._authenticate(bearer_secret(context))
        if self._limiter is not None:
            self._limiter.check(principal.token_id)
        stack = ExitStack()
        if self._watchdog is not None:
            deadline = CallDeadline(self._stream_seconds if stream else self._unary_seconds, stream)
            stack.callback(self._watchdog.watch(context, deadline))
            stack.callback(bind(deadline))
        if stream and self._slots is not None:
            stack.enter_context(self._slots.hold(principal.token_id))
        stack.enter_context(acting_as(principal))
        return stack

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],  # type: ignore[type-arg]
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:  # type: ignore[type-arg]
        """Return the handler of the call with its behaviour wrapped."""
        handler = continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(SERVICE_PREFIX):
            return handler
        wrapped = self._wrapped.get(method)
        if wrapped is None:
            wrapped = self._wrapped[method] = _wrap(handler, method, self._scope)
        return wrapped


def _wrap(handler: grpc.RpcMethodHandler, method: str, scope: Scope) -> grpc.RpcMethodHandler:  # type: ignore[type-arg]
    """A copy of ``handler`` whose behaviour maps exceptions to statuses."""
    kwargs: dict[str, Any] = {
        "request_deserializer": _lenient(handler.request_deserializer),
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _wrap_unary_response(handler.unary_unary, method, scope, _decoded), **kwargs
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _wrap_stream_response(handler.unary_stream, method, scope, _decoded), **kwargs
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _wrap_unary_response(handler.stream_unary, method, scope, _decoded_stream), **kwargs
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _wrap_stream_response(handler.stream_stream, method, scope, _decoded_stream),
            **kwargs,
        )
    return handler
