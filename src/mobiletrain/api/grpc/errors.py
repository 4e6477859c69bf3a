"""How failures leave the gRPC adapter: one mapping from exceptions to statuses.

Servicers never build statuses themselves: they (or the core services they call) raise
:class:`~mobiletrain.core.errors.MobiletrainError`. :func:`map_failure`, called by the
interceptor (:mod:`.interceptor`) for every handler of the mobiletrain services, turns

* a ``MobiletrainError`` into its gRPC status (``ErrorCode.grpc_status``), its safe message and
  the trailing metadata ``mobiletrain-error-code`` = the code's decimal number (plus
  ``retry-after`` for errors that heal by waiting);
* a full disk (``ENOSPC``, SQLite's "database or disk is full", see ``core.storage``) into
  ``RESOURCE_EXHAUSTED`` with code ``74`` (STORAGE_FULL) and one log line;
* a handler cut at its server deadline into ``DEADLINE_EXCEEDED`` with code ``73``;
* any other exception into ``INTERNAL`` with code ``1`` and a generic message; the details go to
  the server log only.

A client that went away is not an error: the exception its departure causes inside the handler
is passed on to gRPC unchanged, which drops it silently.
"""

from __future__ import annotations

import logging
import math
from typing import NoReturn

import grpc

from mobiletrain.api.grpc.bridge import CallEnded
from mobiletrain.api.grpc.deadlines import CallDeadline, deadline_message
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.storage import storage_full_error

log = logging.getLogger("mobiletrain.api.grpc")

ERROR_CODE_METADATA_KEY = "mobiletrain-error-code"
"""Trailing metadata key that carries the number of the :class:`ErrorCode`."""

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


async def map_failure(
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
