"""The SDK's errors: one class per gRPC status the server's error catalogue uses.

Every failed call raises a :class:`ClientError`; its subclass says the kind of failure (the
gRPC status, as ``mobiletrain.core.errors.ErrorCode`` maps each code), and ``code`` the server's
stable number (0 when the failure never reached the server, e.g. a refused connection)::

    try:
        client.get_project("cats")
    except NotFound:
        ...  # code 10 (PROJECT_NOT_FOUND)
    except ClientError as err:
        ...  # everything else

Building a ``ClientError(code, status, message)`` directly yields the subclass for ``status``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import grpc

from mobiletrain.core.errors import ErrorCode, error_by_number


class ClientError(Exception):
    """A call failed; ``code`` is the server's stable error number (0 if none was sent)."""

    status_name: ClassVar[str] = ""
    """The gRPC status this class stands for (empty: the base class, any status)."""

    def __new__(cls, code: int, status: str, message: str) -> ClientError:
        # ClientError(...) yields the subclass of the status, so `except NotFound` works for
        # errors built anywhere (the SDK, the federated client, a caller).
        if cls is ClientError:
            cls = _BY_STATUS.get(status, ClientError)
        return super().__new__(cls)

    def __init__(self, code: int, status: str, message: str) -> None:
        self.code = code
        self.status = status
        self.message = message
        super().__init__(f"[{code}] {status}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (ClientError, (self.code, self.status, self.message))

    @property
    def error_code(self) -> ErrorCode | None:
        """The catalogue entry of ``code`` (None for 0 or a code newer than this SDK)."""
        return error_by_number(self.code) if self.code else None

    @classmethod
    def from_rpc(cls, err: grpc.RpcError) -> ClientError:
        """Read the code from the trailing metadata ``mobiletrain-error-code``."""
        code = 0
        trailers: Any = err.trailing_metadata() if hasattr(err, "trailing_metadata") else None
        for item in trailers or ():
            if item[0] == "mobiletrain-error-code":
                code = int(item[1])
        status = err.code().name if hasattr(err, "code") and err.code() else "UNKNOWN"
        details = err.details() if hasattr(err, "details") else str(err)
        return ClientError(code, status, details or "")


class InvalidArgument(ClientError):
    """The request is malformed or a value is not allowed (a bad name, image, option)."""

    status_name = "INVALID_ARGUMENT"


class NotFound(ClientError):
    """The project, sample, job, model version or token does not exist."""

    status_name = "NOT_FOUND"


class AlreadyExists(ClientError):
    """A project of that name, or a client id with other bytes, already exists."""

    status_name = "ALREADY_EXISTS"


class FailedPrecondition(ClientError):
    """The state does not allow it now (no model yet, a job is running, not enough data)."""

    status_name = "FAILED_PRECONDITION"


class OutOfRange(ClientError):
    """A download range or offset past the end."""

    status_name = "OUT_OF_RANGE"


class Unauthenticated(ClientError):
    """No token, or an unknown, expired or revoked one."""

    status_name = "UNAUTHENTICATED"


class PermissionDenied(ClientError):
    """The token may not do this (a device token outside its project or role)."""

    status_name = "PERMISSION_DENIED"


class ResourceExhausted(ClientError):
    """A rate limit, stream limit, size limit or the server's disk reserve was hit."""

    status_name = "RESOURCE_EXHAUSTED"


class Unavailable(ClientError):
    """The server cannot be reached or is shutting down; retrying later may succeed."""

    status_name = "UNAVAILABLE"


class DeadlineExceeded(ClientError):
    """The call took longer than its deadline."""

    status_name = "DEADLINE_EXCEEDED"


class DataLoss(ClientError):
    """Stored or received bytes are missing or damaged (upload or download again)."""

    status_name = "DATA_LOSS"


class Internal(ClientError):
    """The server failed unexpectedly."""

    status_name = "INTERNAL"


_BY_STATUS: dict[str, type[ClientError]] = {
    c.status_name: c for c in ClientError.__subclasses__() if c.status_name
}
"""gRPC status name -> its class (statuses without one stay a plain ClientError)."""
