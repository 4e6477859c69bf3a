"""Who is calling, and what they may do.

Adapters authenticate every call (a bearer token in gRPC metadata or the HTTP ``Authorization``
header) and run the core service call inside :func:`acting_as`. The core services then check
authorisation themselves, so no transport can forget it:

* :func:`require` refuses an action the caller's role does not allow (PERMISSION_DENIED);
* :func:`can_see` hides every project but its own from a device token: the services answer
  "not found", giving no hint that another project exists.

:data:`OPERATIONS` is the permission matrix (role × operation) with the gRPC methods and REST
routes of each operation; the README's table is rendered from it
(:func:`permission_table_markdown`) and tests/unit/api/test_permissions.py calls every
operation with an admin token, a device token and no token against a real server.

Code that runs in-process without an adapter (the worker, the demo, unit tests) acts as
:data:`SYSTEM`, the trusted local administrator.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

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
    READ_SAMPLES = "read_samples"  # list and fetch samples (devices: their own only)
    MONITOR = "monitor"  # views of everyone's activity: class counts, rounds with device ids


# What a phone app does; everything else is for administrators.
DEVICE_ACTIONS = frozenset(
    {
        Action.READ,
        Action.UPLOAD,
        Action.WATCH,
        Action.DOWNLOAD,
        Action.PREDICT,
        Action.FEDERATE,
        Action.READ_SAMPLES,
    }
)
# Allowed to a device token on what it created itself only (samples it uploaded, or none
# by the server's ``device_sample_access`` setting; devices it registered).
DEVICE_OWN_ACTIONS = frozenset({Action.READ_SAMPLES, Action.FEDERATE})


class Access(enum.StrEnum):
    """A cell of the permission matrix."""

    YES = "yes"
    OWN = "own only"
    NO = "no"


@dataclass(frozen=True)
class Operation:
    """One row of the permission matrix: what it is, the action it needs, where it is called."""

    name: str
    action: Action
    grpc: tuple[str, ...] = ()  # "Service/Method"
    rest: tuple[str, ...] = ()  # "METHOD /v1/path"
    note: str = field(default="", compare=False)

    def access(self, role: Role) -> Access:
        """What ``role`` may do: yes, on its own things only, or no."""
        if role is Role.ADMIN:
            return Access.YES
        if self.action not in DEVICE_ACTIONS:
            return Access.NO
        return Access.OWN if self.action in DEVICE_OWN_ACTIONS else Access.YES


OPERATIONS: tuple[Operation, ...] = (
    Operation(
        "create project",
        Action.CREATE_PROJECT,
        ("ProjectService/CreateProject",),
        ("POST /v1/projects",),
    ),
    Operation(
        "delete project",
        Action.CREATE_PROJECT,
        ("ProjectService/DeleteProject",),
        ("DELETE /v1/projects/{project}",),
    ),
    Operation(
        "read projects",
        Action.READ,
        ("ProjectService/GetProject", "ProjectService/ListProjects"),
        ("GET /v1/projects", "GET /v1/projects/{project}"),
        "a device token sees its own project only",
    ),
    Operation(
        "upload samples",
        Action.UPLOAD,
        ("DatasetService/UploadSamples", "DatasetService/GetUploadOffset"),
        (
            "POST /v1/projects/{project}/samples",
            "POST /v1/projects/{project}/samples:base64",
            "POST /v1/projects/{project}/uploads",
            "HEAD /v1/uploads/{upload_id}",
            "GET /v1/uploads/{upload_id}",
            "PATCH /v1/uploads/{upload_id}",
            "DELETE /v1/uploads/{upload_id}",
        ),
        "resumable uploads belong to the token that opened them",
    ),
    Operation(
        "read samples",
        Action.READ_SAMPLES,
        ("DatasetService/ListSamples", "DatasetService/GetSampleData"),
        (
            "GET /v1/projects/{project}/samples",
            "GET /v1/projects/{project}/samples/{sample_id}",
            "GET /v1/projects/{project}/samples/{sample_id}/data",
        ),
        "a device token: the samples it uploaded (or none: device_sample_access=none)",
    ),
    Operation(
        "dataset statistics",
        Action.MONITOR,
        ("DatasetService/GetClassCounts",),
        ("GET /v1/projects/{project}/class-counts",),
    ),
    Operation(
        "delete or relabel samples, edit boxes",
        Action.DELETE_SAMPLE,
        ("DatasetService/DeleteSample", "DatasetService/UpdateSampleBoxes"),
        (
            "DELETE /v1/projects/{project}/samples/{sample_id}",
            "PATCH /v1/projects/{project}/samples/{sample_id}",
            "PUT /v1/projects/{project}/samples/{sample_id}/boxes",
        ),
    ),
    Operation(
        "start training",
        Action.TRAIN,
        ("TrainingService/StartJob",),
        ("POST /v1/projects/{project}/jobs",),
    ),
    Operation(
        "cancel training",
        Action.CANCEL,
        ("TrainingService/CancelJob",),
        ("POST /v1/jobs/{job_id}:cancel",),
    ),
    Operation(
        "watch jobs",
        Action.WATCH,
        ("TrainingService/GetJob", "TrainingService/ListJobs", "TrainingService/WatchJob"),
        (
            "GET /v1/projects/{project}/jobs",
            "GET /v1/jobs/{job_id}",
            "GET /v1/jobs/{job_id}/events",
        ),
    ),
    Operation(
        "download models",
        Action.DOWNLOAD,
        (
            "ModelService/ListModelVersions",
            "ModelService/GetManifest",
            "ModelService/DownloadModel",
            "ModelService/CheckForUpdate",
        ),
        (
            "GET /v1/projects/{project}/models",
            "GET /v1/projects/{project}/models:check-update",
            "GET /v1/projects/{project}/models/{version}",
            "GET /v1/projects/{project}/models/{version}/manifest",
            "GET /v1/projects/{project}/models/{version}/metrics",
            "GET /v1/projects/{project}/models/{version}/download",
        ),
    ),
    Operation(
        "predict",
        Action.PREDICT,
        ("ModelService/Predict",),
        ("POST /v1/projects/{project}/predict", "POST /v1/projects/{project}/predict:base64"),
    ),
    Operation(
        "promote a version",
        Action.PROMOTE,
        ("ModelService/PromoteVersion",),
        ("POST /v1/projects/{project}/models/{version}:promote",),
    ),
    Operation(
        "roll back or set the release policy",
        Action.PROMOTE,
        ("ModelService/RollbackVersion", "ModelService/SetReleasePolicy"),
        (
            "POST /v1/projects/{project}/models:rollback",
            "PUT /v1/projects/{project}/release-policy",
        ),
    ),
    Operation(
        "read the release history and policy",
        Action.READ,
        ("ModelService/ListReleases", "ModelService/GetReleasePolicy"),
        ("GET /v1/projects/{project}/releases", "GET /v1/projects/{project}/release-policy"),
    ),
    Operation(
        "manage tokens",
        Action.MANAGE_TOKENS,
        ("TokenService/CreateToken", "TokenService/ListTokens", "TokenService/RevokeToken"),
        ("POST /v1/tokens", "GET /v1/tokens", "DELETE /v1/tokens/{token_id}"),
    ),
    Operation(
        "run federated sessions",
        Action.TRAIN,
        ("FederatedService/StartSession", "FederatedService/StopSession"),
        (
            "POST /v1/projects/{project}/federated/sessions",
            "POST /v1/federated/sessions/{session_id}:stop",
        ),
    ),
    Operation(
        "read federated sessions",
        Action.READ,
        (
            "FederatedService/GetSession",
            "FederatedService/ListSessions",
            "FederatedService/DownloadSessionFile",
        ),
        (
            "GET /v1/projects/{project}/federated/sessions",
            "GET /v1/federated/sessions/{session_id}",
            "GET /v1/federated/sessions/{session_id}/files/{format}",
        ),
    ),
    Operation(
        "federated rounds (every device's answers)",
        Action.MONITOR,
        ("FederatedService/ListRounds",),
        ("GET /v1/federated/sessions/{session_id}/rounds",),
    ),
    Operation(
        "take part in federated rounds",
        Action.FEDERATE,
        (
            "FederatedService/RegisterDevice",
            "FederatedService/GetTask",
            "FederatedService/PushUpdate",
            "FederatedService/Participate",
        ),
        (
            "POST /v1/projects/{project}/federated/devices",
            "GET /v1/projects/{project}/federated/task",
            "POST /v1/projects/{project}/federated/updates",
        ),
        "a device token: the devices it registered (at most federated_devices_per_token)",
    ),
)
"""The permission matrix; every gRPC method and REST route (but /healthz) is in one row."""


def permission_table_markdown() -> str:
    """The matrix as the Markdown table in the README (the test checks they agree)."""
    lines = [
        "| Operation | gRPC | REST | Admin | Device | No token |",
        "|---|---|---|---|---|---|",
    ]
    for op in OPERATIONS:
        grpc = ", ".join(m.split("/")[1] for m in op.grpc)
        rest = "<br>".join(f"`{r}`" for r in op.rest)
        device = op.access(Role.DEVICE).value
        if op.note and device != Access.NO.value:
            device += f": {op.note}"
        lines.append(f"| {op.name} | {grpc} | {rest} | yes | {device} | no |")
    return "\n".join(lines) + "\n"


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
        # Closed from another context (the event loop finalising an abandoned gRPC stream's
        # generator) the reset fails: that context is discarded, there is nothing to restore.
        with contextlib.suppress(ValueError):
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
