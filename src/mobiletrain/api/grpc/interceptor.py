"""The one gRPC server interceptor: every call of the mobiletrain services, step by step.

Each concern lives in its own module and is named in :class:`CallInterceptor`'s steps:
decoding (:mod:`.decoding`), admission — authentication, rate limits, stream slots —
(:mod:`.admission`), the server-side deadline (:mod:`.deadlines`), running synchronous servicer
code in the thread pool (:mod:`.bridge`) and mapping failures to statuses (:mod:`.errors`).
This module only puts them in order around the servicer's handler, for the four call shapes.

The server is ``grpc.aio``: every wrapped handler is a coroutine.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor
from contextlib import ExitStack
from typing import Any

import grpc

from mobiletrain.api.grpc.admission import Admission
from mobiletrain.api.grpc.bridge import RequestPump, SyncContext, iterate_in_pool, run_in_pool
from mobiletrain.api.grpc.deadlines import CallDeadline, DeadlinePolicy, check_deadline
from mobiletrain.api.grpc.decoding import (
    decoded,
    decoded_async_stream,
    decoded_stream,
    lenient,
)
from mobiletrain.api.grpc.errors import map_failure

SERVICE_PREFIX = "/mobiletrain."
"""Full method names of the mobiletrain services, which this interceptor wraps."""

WRAPPED_PREFIXES = (SERVICE_PREFIX, "/grpc.reflection.")
"""Full method names this interceptor wraps: the services and server reflection (which needs a
token too). Health checks keep their own handling and stay open."""


class _Call:
    """What every wrapped handler does around the servicer's code: admission, the deadline,
    and where the servicer runs (on the loop, or in the pool when it is synchronous)."""

    def __init__(
        self, interceptor: CallInterceptor, method: str, stream: bool, blocking: bool
    ) -> None:
        self.interceptor = interceptor
        self.method = method
        self.stream = stream
        self.blocking = blocking  # a synchronous servicer method (runs in the pool)

    async def enter(
        self, context: grpc.aio.ServicerContext, stack: ExitStack
    ) -> tuple[Any, CallDeadline]:
        """Admit the call and start its deadline; returns the servicer's context."""
        await self.interceptor.admission.admit(context, self.stream, stack)
        deadline = self.interceptor.deadlines.start(self.stream, stack)
        return (SyncContext(context) if self.blocking else context), deadline

    def timeout(self, deadline: CallDeadline) -> asyncio.Timeout:
        """The hard stop of the current call."""
        return self.interceptor.deadlines.hard_stop(deadline)


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
            await map_failure(context, exc, call.method, deadline)
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
                        check_deadline()
                        yield response
                    # A handler that returns early because its deadline woke it (WatchJob) did
                    # not finish: tell the client to reconnect.
                    check_deadline()
        except BaseException as exc:
            if isinstance(exc, GeneratorExit):
                raise  # the server closed the stream (client gone)
            await map_failure(context, exc, call.method, deadline)
        finally:
            if pumping is not None:
                pumping.cancel()

    return handler


def _bytes_as_is(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    """The method's response serializer, except that a handler may yield a message already
    serialised (``WatchJob`` sends one event's bytes to every watcher)."""
    if serializer is None:
        return None

    def serialize(message: Any) -> bytes:
        return message if isinstance(message, bytes) else serializer(message)

    return serialize


class CallInterceptor(grpc.aio.ServerInterceptor):
    """Runs every handler of the mobiletrain services through the same steps, in order:

    1. **decoding** (:mod:`.decoding`): undecodable or oversized request bytes become clean
       INVALID_ARGUMENT / BODY_TOO_LARGE failures instead of grpcio's;
    2. **admission** (:class:`~.admission.Admission`): the bearer token, rate limits, a
       stream's slot; the handler runs as the token's principal;
    3. **deadline** (:class:`~.deadlines.DeadlinePolicy`): the server's own time limit;
    4. **bridging** (:mod:`.bridge`): ``async def`` servicer methods run on the event loop,
       synchronous ones in the pool with a :class:`~.bridge.SyncContext`;
    5. **error mapping** (:func:`~.errors.map_failure`): every failure leaves as the catalog's
       status, message and ``mobiletrain-error-code`` trailer.
    """

    def __init__(
        self,
        executor: Executor,
        admission: Admission,
        deadlines: DeadlinePolicy,
        max_message_bytes: int | None = None,
    ) -> None:
        # Wrapped handlers per method name; the servicers' handlers never change.
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # type: ignore[type-arg]
        self.executor = executor
        self.admission = admission
        self.deadlines = deadlines
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
            "request_deserializer": lenient(handler.request_deserializer, self.max_message_bytes),
            "response_serializer": _bytes_as_is(handler.response_serializer),
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
            decode: Callable[[Any], Any] = decoded
            if stream_in:
                decode = decoded_stream if blocking else decoded_async_stream
            wrap = _stream_response if stream_out else _unary_response
            # Only a synchronous servicer needs the client stream pumped into its thread.
            pump = stream_in and blocking
            return make(wrap(behavior, call, decode, pump), **kwargs)  # type: ignore[no-any-return]
        return handler
