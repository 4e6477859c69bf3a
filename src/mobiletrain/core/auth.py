"""Who is calling, and what they may do.

Adapters authenticate every call (a bearer token in gRPC metadata or the HTTP ``Authorization``
header) and run the core service call inside :func:`acting_as`. The core services then check
authorisation themselves, so no transport can forget it:

* :func:`require` refuses an action the caller's role does not allow (PERMISSION_DENIED);
* :func:`can_see` hides every project but its own from a device token: the services answer
  "not found", giving no hint that another project exists.

Code that runs in-process without an adapter (the worker, the demo, unit tests) acts as
:data:`SYSTEM`, the trusted local administrator.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from mobiletrain.core.errors import ErrorCode, MobiletrainError


class Role(enum.StrEnum):
    """The two kinds of credential."""

    ADMIN = "admin"
    DEVICE = "device"


class Action(enum.StrEnum):
    """Operations that need a permission."""

    READ = "read"
    CREATE_PROJECT = "create_project"
    UPLOAD = "upload"
    DELETE_SAMPLE = "delete_sample"
    RELABEL = "relabel"
    TRAIN = "train"
    CANCEL = "cancel"
    WATCH = "watch"
    DOWNLOAD = "download"
    PREDICT = "predict"
    PROMOTE = "promote"
    MANAGE_TOKENS = "manage_tokens"
    FEDERATE = "federate"  # take part in federated rounds (devices)


# What a phone app does; everything else is for administrators.
DEVICE_ACTIONS = frozenset(
    {
        Action.READ,
        Action.UPLOAD,
        Action.WATCH,
        Action.DOWNLOAD,
        Action.PREDICT,
        Action.FEDERATE,
    }
)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    token_id: str
    role: Role
    project_id: str | None = None

    def may(self, action: Action) -> bool:
        """True when the role allows ``action``."""
        return self.role is Role.ADMIN or action in DEVICE_ACTIONS


SYSTEM = Principal(token_id="system", role=Role.ADMIN)

_current: ContextVar[Principal] = ContextVar("mobiletrain_principal", default=SYSTEM)


def current() -> Principal:
    """The caller of the operation in progress."""
    return _current.get()


@contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Run the enclosed core calls on behalf of ``principal``."""
    token = _current.set(principal)
    try:
        yield principal
    finally:
        _current.reset(token)


def bind(principal: Principal) -> None:
    """Set the caller for the rest of the current context (a request's own task)."""
    _current.set(principal)


def require(action: Action) -> Principal:
    """Raise PERMISSION_DENIED unless the current caller may do ``action``."""
    principal = current()
    if not principal.may(action):
        raise MobiletrainError(
            ErrorCode.PERMISSION_DENIED, f"a {principal.role.value} token may not {action.value}"
        )
    return principal


def can_see(project_id: str) -> bool:
    """Device tokens see their own project only."""
    principal = current()
    return principal.role is Role.ADMIN or principal.project_id == project_id
