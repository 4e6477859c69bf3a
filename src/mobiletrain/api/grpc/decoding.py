"""Request bytes that do not decode, or are too many: clean statuses instead of grpcio's.

Request bytes that do not decode as the method's message would make grpcio answer ``INTERNAL``
"Exception deserializing request!" before any handler runs. The interceptor therefore wraps
each ``request_deserializer`` (:func:`lenient`): a decoding failure yields an
:class:`Undecodable` marker instead, and the wrapped handler raises ``INVALID_ARGUMENT``
(code 2) when it meets one, after authentication, so a malformed request gets the same clean
status on every method.

The same wrapper enforces the message size cap (``grpc_max_message_bytes``): gRPC's own limit is
set higher (see ``server.TRANSPORT_MESSAGE_FACTOR``), and a message over the cap becomes a
:class:`TooLarge` marker, answered ``RESOURCE_EXHAUSTED`` with code ``76`` (BODY_TOO_LARGE) and
the usual trailer. Only a message over gRPC's own, higher limit (and request metadata over
``MAX_METADATA_BYTES``) is refused by gRPC before any handler runs, without the trailer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from mobiletrain.api.grpc.deadlines import check_deadline
from mobiletrain.core.errors import ErrorCode, MobiletrainError


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


def lenient(
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


def decoded(request: Any) -> Any:
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


def decoded_stream(requests: Iterator[Any]) -> Iterator[Any]:
    for request in requests:
        check_deadline()
        yield decoded(request)


async def decoded_async_stream(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The client stream of an ``async def`` servicer method (reflection), read on the loop."""
    async for request in requests:
        check_deadline()
        yield decoded(request)
