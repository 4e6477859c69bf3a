"""The one error catalog of mobiletrain.

Every failure a client can see is a :class:`MobiletrainError` carrying an :class:`ErrorCode`.
Each code maps once to a gRPC status name, an HTTP status and a numeric code that travels in
both transports (gRPC trailing metadata ``mobiletrain-error-code``, JSON field ``code``), so a
Flutter app can branch on the number without parsing messages.

Exception tree::

    MobiletrainError            (code, message, details)
      raised with ErrorCode.*   (see the catalog below)

The core never imports grpc: the gRPC status is kept as its name and resolved at the edge.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class _Spec:
    number: int
    grpc_status: str
    http_status: int
    public_message: str


class ErrorCode(Enum):
    """Stable error codes. Numbers never change meaning once published."""

    INTERNAL = _Spec(1, "INTERNAL", 500, "internal server error")
    INVALID_ARGUMENT = _Spec(2, "INVALID_ARGUMENT", 400, "invalid argument")
    NOT_FOUND = _Spec(3, "NOT_FOUND", 404, "not found")
    ALREADY_EXISTS = _Spec(4, "ALREADY_EXISTS", 409, "already exists")
    FAILED_PRECONDITION = _Spec(5, "FAILED_PRECONDITION", 409, "failed precondition")
    PROJECT_NOT_FOUND = _Spec(10, "NOT_FOUND", 404, "project not found")
    PROJECT_EXISTS = _Spec(11, "ALREADY_EXISTS", 409, "a project with this name already exists")
    INVALID_NAME = _Spec(12, "INVALID_ARGUMENT", 400, "invalid name")
    INVALID_INPUT_SPEC = _Spec(13, "INVALID_ARGUMENT", 400, "invalid input spec")
    UNSUPPORTED_TASK = _Spec(14, "INVALID_ARGUMENT", 400, "unsupported task type")
    PROJECT_BUSY = _Spec(
        15, "FAILED_PRECONDITION", 409, "the project has a queued or running job; cancel it first"
    )
    SAMPLE_NOT_FOUND = _Spec(20, "NOT_FOUND", 404, "sample not found")
    INVALID_LABEL = _Spec(21, "INVALID_ARGUMENT", 400, "invalid label")
    UNKNOWN_LABEL = _Spec(22, "INVALID_ARGUMENT", 400, "label is not in the project's label set")
    EMPTY_SAMPLE = _Spec(23, "INVALID_ARGUMENT", 400, "sample is empty")
    SAMPLE_TOO_LARGE = _Spec(24, "INVALID_ARGUMENT", 413, "sample is too large")
    UNSUPPORTED_MEDIA_TYPE = _Spec(25, "INVALID_ARGUMENT", 415, "not a JPEG, PNG or WebP image")
    CORRUPT_IMAGE = _Spec(26, "INVALID_ARGUMENT", 400, "image could not be decoded")
    IMAGE_TOO_LARGE = _Spec(27, "INVALID_ARGUMENT", 400, "image has too many pixels")
    INVALID_CLIENT_ID = _Spec(28, "INVALID_ARGUMENT", 400, "invalid client sample id")
    INCOMPLETE_SAMPLE = _Spec(29, "INVALID_ARGUMENT", 400, "sample chunks are incomplete")
    INVALID_PAGE = _Spec(30, "INVALID_ARGUMENT", 400, "invalid page token or size")
    # 500 as Google's API guide maps DATA_LOSS; clients branch on the number (re-upload restores).
    SAMPLE_DAMAGED = _Spec(
        31, "DATA_LOSS", 500, "the sample's stored bytes are missing or damaged; upload it again"
    )
    # An idempotency key reused with another payload is an error, never a silent drop.
    CLIENT_ID_CONFLICT = _Spec(
        34,
        "ALREADY_EXISTS",
        409,
        "this client id is already used by a sample with other bytes or another label",
    )
    JOB_NOT_FOUND = _Spec(40, "NOT_FOUND", 404, "training job not found")
    INVALID_HYPERPARAMETERS = _Spec(41, "INVALID_ARGUMENT", 400, "invalid hyperparameters")
    NOT_ENOUGH_DATA = _Spec(42, "FAILED_PRECONDITION", 409, "not enough samples to train")
    JOB_FINISHED = _Spec(43, "FAILED_PRECONDITION", 409, "job has already finished")
    MODEL_NOT_FOUND = _Spec(50, "NOT_FOUND", 404, "model version not found")
    FORMAT_NOT_FOUND = _Spec(51, "NOT_FOUND", 404, "model format not available")
    INVALID_FORMAT = _Spec(52, "INVALID_ARGUMENT", 400, "unknown model format")
    NO_MODEL = _Spec(53, "FAILED_PRECONDITION", 409, "project has no trained model yet")
    INVALID_RANGE = _Spec(54, "OUT_OF_RANGE", 416, "requested range not satisfiable")
    BASE_WEIGHTS_UNAVAILABLE = _Spec(
        55, "FAILED_PRECONDITION", 409, "the backbone's pretrained weights could not be loaded"
    )
    INVALID_RELEASE_POLICY = _Spec(56, "INVALID_ARGUMENT", 400, "invalid release policy")
    NO_PREVIOUS_VERSION = _Spec(
        57, "FAILED_PRECONDITION", 409, "there is no earlier current version to roll back to"
    )
    UNAUTHENTICATED = _Spec(60, "UNAUTHENTICATED", 401, "a valid token is required")
    PERMISSION_DENIED = _Spec(61, "PERMISSION_DENIED", 403, "this token may not do that")
    TOKEN_NOT_FOUND = _Spec(62, "NOT_FOUND", 404, "token not found")
    QUOTA_EXCEEDED = _Spec(70, "RESOURCE_EXHAUSTED", 429, "the project's quota is used up")
    RATE_LIMITED = _Spec(71, "RESOURCE_EXHAUSTED", 429, "too many requests")
    TOO_MANY_STREAMS = _Spec(72, "RESOURCE_EXHAUSTED", 429, "too many concurrent streams")
    DEADLINE_EXCEEDED = _Spec(
        73, "DEADLINE_EXCEEDED", 504, "the call ran past the server's deadline; retry or resume"
    )
    BODY_TOO_LARGE = _Spec(76, "RESOURCE_EXHAUSTED", 413, "request body is too large")
    HEADERS_TOO_LARGE = _Spec(77, "RESOURCE_EXHAUSTED", 431, "request headers are too large")
    REQUEST_TIMEOUT = _Spec(78, "DEADLINE_EXCEEDED", 408, "the request body arrived too slowly")
    SERVER_BUSY = _Spec(79, "UNAVAILABLE", 503, "too many requests in flight; retry shortly")
    STORAGE_FULL = _Spec(74, "RESOURCE_EXHAUSTED", 507, "the server's storage is full; retry later")
    UPLOAD_OFFSET_MISMATCH = _Spec(80, "FAILED_PRECONDITION", 409, "wrong upload offset")
    CHECKSUM_MISMATCH = _Spec(81, "INVALID_ARGUMENT", 400, "chunk checksum mismatch")
    UPLOAD_NOT_FOUND = _Spec(82, "NOT_FOUND", 404, "upload not found")
    SESSION_NOT_FOUND = _Spec(90, "NOT_FOUND", 404, "federated session not found")
    NO_ACTIVE_SESSION = _Spec(
        91, "FAILED_PRECONDITION", 409, "the project has no running federated session"
    )
    SESSION_ACTIVE = _Spec(
        92, "FAILED_PRECONDITION", 409, "the project already has a running federated session"
    )
    DEVICE_NOT_REGISTERED = _Spec(
        93, "NOT_FOUND", 404, "device is not registered with the running session"
    )
    DEVICE_NOT_OWNED = _Spec(
        94, "PERMISSION_DENIED", 403, "this device id was registered by another token"
    )
    TOO_MANY_DEVICES = _Spec(
        95, "RESOURCE_EXHAUSTED", 429, "this token has registered the most devices it may"
    )
    FIELD_TOO_LONG = _Spec(96, "INVALID_ARGUMENT", 400, "a field is longer than allowed")
    # Audio samples (110-114): WAV structure, encoding and duration, checked before storing.
    CORRUPT_AUDIO = _Spec(
        110, "INVALID_ARGUMENT", 400, "audio could not be decoded: not a well-formed WAV file"
    )
    UNSUPPORTED_AUDIO_FORMAT = _Spec(
        111,
        "INVALID_ARGUMENT",
        415,
        "unsupported audio encoding: WAV with PCM 8/16/24/32-bit integer or 32-bit float samples",
    )
    AUDIO_TOO_LONG = _Spec(112, "INVALID_ARGUMENT", 400, "audio clip is longer than allowed")
    AUDIO_TOO_SHORT = _Spec(113, "INVALID_ARGUMENT", 400, "audio clip is too short")
    UNSUPPORTED_SAMPLE_RATE = _Spec(
        114, "INVALID_ARGUMENT", 400, "audio sample rate is outside the supported range"
    )

    # Sensor time-series samples (115-119): CSV or JSON readings, checked before anything is stored.
    CORRUPT_SENSOR_DATA = _Spec(
        115,
        "INVALID_ARGUMENT",
        400,
        "sensor data could not be read: expected CSV with a header of channel names or JSON "
        '{"rate_hz", "channels", "values"}',
    )
    SENSOR_CHANNELS_MISMATCH = _Spec(
        116, "INVALID_ARGUMENT", 400, "the sample's channels are not the project's channels"
    )
    SENSOR_MISSING_VALUE = _Spec(
        117, "INVALID_ARGUMENT", 400, "sensor data has a missing, NaN or infinite value"
    )
    SENSOR_TOO_LONG = _Spec(118, "INVALID_ARGUMENT", 400, "sensor recording is longer than allowed")
    SENSOR_TOO_SHORT = _Spec(119, "INVALID_ARGUMENT", 400, "sensor recording is too short")
    # Object detection annotations (120-125): boxes checked before anything is stored.
    INVALID_ANNOTATION = _Spec(
        120,
        "INVALID_ARGUMENT",
        400,
        "boxes must be a JSON list of {label, x_min, y_min, x_max, y_max} objects",
    )
    BOX_OUT_OF_IMAGE = _Spec(
        121, "INVALID_ARGUMENT", 400, "a box coordinate is outside 0..1 of the image (or NaN)"
    )
    BOX_DEGENERATE = _Spec(
        122, "INVALID_ARGUMENT", 400, "a box has no area: max <= min, or under one pixel"
    )
    UNKNOWN_BOX_LABEL = _Spec(
        123, "INVALID_ARGUMENT", 400, "a box label is empty, reserved or not a project label"
    )
    TOO_MANY_BOXES = _Spec(124, "INVALID_ARGUMENT", 400, "an image has more boxes than allowed")
    ANNOTATION_FORMAT = _Spec(
        125, "INVALID_ARGUMENT", 400, "the annotation file is not readable COCO, VOC or YOLO"
    )
    # Task kinds (100-109): a sample or a request that does not fit the project's task.
    WRONG_TASK_SPEC = _Spec(
        100, "INVALID_ARGUMENT", 400, "the input spec does not belong to the project's task"
    )

    @property
    def number(self) -> int:
        """The numeric code that travels on the wire."""
        return self.value.number

    @property
    def grpc_status(self) -> str:
        """Name of the ``grpc.StatusCode`` member for this error."""
        return self.value.grpc_status

    @property
    def http_status(self) -> int:
        """HTTP status code for this error."""
        return self.value.http_status

    @property
    def public_message(self) -> str:
        """Short message safe to show to any client."""
        return self.value.public_message

    @property
    def slug(self) -> str:
        """Lower-case stable name, e.g. ``corrupt_image``."""
        return self.name.lower()


class MobiletrainError(Exception):
    """A failure that clients may see: a stable code plus a human message.

    ``message`` must never contain internal details (paths, SQL, tracebacks).
    """

    def __init__(self, code: ErrorCode, message: str | None = None, **details: Any) -> None:
        self.code = code
        self.message = message or code.public_message
        self.details = details
        super().__init__(f"{code.slug}: {self.message}")

    def to_dict(self) -> dict[str, Any]:
        """JSON body used by the REST adapter and CLI."""
        body: dict[str, Any] = {
            "code": self.code.number,
            "error": self.code.slug,
            "message": self.message,
        }
        if self.details:
            body["details"] = self.details
        return body


def error_by_number(number: int) -> ErrorCode | None:
    """Find the code for a wire number (used by clients)."""
    for code in ErrorCode:
        if code.number == number:
            return code
    return None
