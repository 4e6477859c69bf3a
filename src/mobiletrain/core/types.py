"""Domain types: plain dataclasses shared by every layer.

No transport, storage or TensorFlow types appear here; adapters convert at the edge.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING, Any

from mobiletrain.core.annotations import Box as Box
from mobiletrain.core.auth import Role
from mobiletrain.core.errors import ErrorCode, MobiletrainError

# The task kinds' settings live in core/task_specs.py; re-exported so domain types have one path.
from mobiletrain.core.task_specs import AudioSpec as AudioSpec
from mobiletrain.core.task_specs import DetectionSpec as DetectionSpec
from mobiletrain.core.task_specs import LongClips as LongClips
from mobiletrain.core.task_specs import SensorFraming as SensorFraming
from mobiletrain.core.task_specs import SensorSpec as SensorSpec
from mobiletrain.core.task_specs import TaskSpec as TaskSpec

if TYPE_CHECKING:
    from mobiletrain.core.release import Evaluation, ReleaseDecision, ReleasePolicy, Rollout


class TaskType(enum.StrEnum):
    """What a project learns."""

    IMAGE_CLASSIFICATION = "image-classification"
    AUDIO_CLASSIFICATION = "audio-classification"
    SENSOR_CLASSIFICATION = "sensor-classification"
    OBJECT_DETECTION = "object-detection"


class ColorMode(enum.StrEnum):
    """Colour mode the model expects; apps convert before inference."""

    RGB = "rgb"
    GRAYSCALE = "grayscale"


class Normalization(enum.StrEnum):
    """How raw 0..255 pixel values map to the float model input.

    - ``zero-one``: ``x / 255``
    - ``minus-one-one``: ``x / 127.5 - 1``
    - ``raw``: ``x`` unchanged (float 0..255)
    """

    ZERO_ONE = "zero-one"
    MINUS_ONE_ONE = "minus-one-one"
    RAW = "raw"

    def scale_offset(self) -> tuple[float, float]:
        """Return (scale, offset) so that ``input = pixel * scale + offset``."""
        if self is Normalization.ZERO_ONE:
            return 1.0 / 255.0, 0.0
        if self is Normalization.MINUS_ONE_ONE:
            return 1.0 / 127.5, -1.0
        return 1.0, 0.0


class ModelFormat(enum.StrEnum):
    """Export formats; the same names are used by the CLI, both APIs and the manifest."""

    KERAS = "keras"
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    DYNAMIC_INT8 = "dynamic-int8"
    INT8 = "int8"
    # On-device training files (see compute/ondevice.py): a frozen feature extractor, a
    # trainable dense head as a stateless train-step model, its inference model, the
    # signature-based variant, and the head's weights.
    FEATURE_EXTRACTOR = "feature-extractor"
    TRAIN_STEP = "train-step"
    HEAD_INFERENCE = "head-inference"
    HEAD_SIGNATURES = "head-signatures"
    HEAD_WEIGHTS = "head-weights"

    @property
    def is_tflite(self) -> bool:
        """True for the formats that are .tflite files."""
        return self not in (ModelFormat.KERAS, ModelFormat.HEAD_WEIGHTS)

    @property
    def is_on_device(self) -> bool:
        """True for the on-device training files (not classifiers an app runs as is)."""
        return self in ON_DEVICE_FORMATS

    @property
    def file_extension(self) -> str:
        """File name extension of this format."""
        if self is ModelFormat.KERAS:
            return ".keras"
        return ".bin" if self is ModelFormat.HEAD_WEIGHTS else ".tflite"

    @property
    def file_name(self) -> str:
        """The file's name inside a model version, as its manifest lists it."""
        return f"model-{self.value}{self.file_extension}"

    def download_name(self, project_name: str, version: int) -> str:
        """The name a downloaded file is saved under, on every wire:
        ``<project>-v<version>-<format><extension>``."""
        return f"{project_name}-v{version}-{self.value}{self.file_extension}"

    @classmethod
    def parse(cls, value: str) -> ModelFormat:
        """Parse a format name, quoting the allowed names on failure."""
        try:
            return cls(value)
        except ValueError:
            allowed = ", ".join(f.value for f in cls)
            raise MobiletrainError(
                ErrorCode.INVALID_FORMAT, f"unknown model format {value!r}; allowed: {allowed}"
            ) from None


DEFAULT_MODEL_FORMAT = ModelFormat.FLOAT32
"""The format a download or update check gets when the request names none (every wire)."""

ON_DEVICE_FORMATS: tuple[ModelFormat, ...] = (
    ModelFormat.FEATURE_EXTRACTOR,
    ModelFormat.TRAIN_STEP,
    ModelFormat.HEAD_INFERENCE,
    ModelFormat.HEAD_SIGNATURES,
    ModelFormat.HEAD_WEIGHTS,
)
CLASSIFIER_FORMATS: tuple[ModelFormat, ...] = tuple(
    f for f in ModelFormat if f not in ON_DEVICE_FORMATS
)
"""The formats of the whole classifier (what a training job exports by default)."""
TFLITE_FORMATS: tuple[ModelFormat, ...] = tuple(f for f in CLASSIFIER_FORMATS if f.is_tflite)
"""The classifier formats that are .tflite files."""


_TASK_SPEC_KEYS: dict[type, tuple[str, TaskType]] = {
    AudioSpec: ("audio", TaskType.AUDIO_CLASSIFICATION),
    SensorSpec: ("sensor", TaskType.SENSOR_CLASSIFICATION),
    DetectionSpec: ("detection", TaskType.OBJECT_DETECTION),
}


@dataclass(frozen=True)
class InputSpec:
    """The model input contract: apps preprocess exactly like this before inference.

    ``width``/``height``/``color_mode``/``normalization`` describe images; a project of
    another task kind carries its contract in ``task_spec`` (one :data:`TaskSpec`), and
    :attr:`task` names the task kind the spec belongs to. Stored and sent as one object, so
    stores and transports need not know the kinds.
    """

    width: int = 96
    height: int = 96
    color_mode: ColorMode = ColorMode.RGB
    normalization: Normalization = Normalization.ZERO_ONE
    task_spec: TaskSpec | None = None

    @property
    def task(self) -> TaskType:
        """The task kind this contract is for."""
        if self.task_spec is None:
            return TaskType.IMAGE_CLASSIFICATION
        return _TASK_SPEC_KEYS[type(self.task_spec)][1]

    @property
    def channels(self) -> int:
        """Number of channels (3 for RGB, 1 for grayscale)."""
        return 3 if self.color_mode is ColorMode.RGB else 1

    def validate(self) -> None:
        """Raise INVALID_INPUT_SPEC unless the sizes are sensible for a mobile model."""
        for name, value in (("width", self.width), ("height", self.height)):
            if not 8 <= value <= 1024:
                raise MobiletrainError(
                    ErrorCode.INVALID_INPUT_SPEC, f"{name} must be between 8 and 1024, got {value}"
                )
        if self.task_spec is not None:
            self.task_spec.validate()

    def to_dict(self) -> dict[str, Any]:
        """JSON form used in manifests and REST."""
        scale, offset = self.normalization.scale_offset()
        out: dict[str, Any] = {
            "width": self.width,
            "height": self.height,
            "channels": self.channels,
            "color_mode": self.color_mode.value,
            "normalization": self.normalization.value,
            "scale": scale,
            "offset": offset,
        }
        if self.task_spec is not None:
            out[_TASK_SPEC_KEYS[type(self.task_spec)][0]] = self.task_spec.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        """Inverse of :meth:`to_dict` (extra keys ignored)."""
        task_spec: TaskSpec | None = None
        if isinstance(data.get("audio"), dict):
            task_spec = AudioSpec.from_dict(data["audio"])
        elif isinstance(data.get("sensor"), dict):
            task_spec = SensorSpec.from_dict(data["sensor"])
        elif isinstance(data.get("detection"), dict):
            task_spec = DetectionSpec.from_dict(data["detection"])
        return cls(
            width=int(data["width"]),
            height=int(data["height"]),
            color_mode=ColorMode(data["color_mode"]),
            normalization=Normalization(data["normalization"]),
            task_spec=task_spec,
        )


@dataclass
class Project:
    """A model to train: its task, labels and input contract."""

    id: str
    name: str
    task: TaskType
    labels: list[str]
    labels_fixed: bool
    input_spec: InputSpec
    created_at: datetime
    promoted_version: int | None = None
    # The release gate's rules (None: the defaults) and whether people pinned the current
    # version (then the gate keeps every new version a candidate).
    release_policy: ReleasePolicy | None = None
    release_pinned: bool = False
    # A staged rollout of the current version in progress (None: every device gets it).
    rollout: Rollout | None = None


class SampleStatus(enum.StrEnum):
    """Outcome of one uploaded sample."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


@dataclass
class Sample:
    """One labelled image stored in a project's dataset."""

    id: str
    project_id: str
    client_id: str
    label: str
    sha256: str
    size: int
    media_type: str
    width: int
    height: int
    created_at: datetime
    uploaded_by: str | None = None  # id of the token that uploaded it (None: unknown)
    # In the project's fixed evaluation set (never trains); None: not assigned yet.
    in_eval_set: bool | None = None
    # Its stored bytes were found missing or damaged (``mobiletrain fsck --repair``): excluded
    # from training until the same bytes are uploaded again.
    damaged: bool = False
    # Object detection: the image's boxes (None: not a detection sample; []: an image with no
    # boxes, a background image). ``label`` is then derived from them (core.annotations).
    boxes: list[Box] | None = None


@dataclass
class SampleResult:
    """Per-sample reply of an upload."""

    client_id: str
    status: SampleStatus
    sample_id: str | None = None
    error_code: ErrorCode | None = None
    reason: str = ""


@dataclass
class UploadSummary:
    """Reply of a whole upload: one result per sample, in arrival order."""

    results: list[SampleResult] = field(default_factory=list)

    def count(self, status: SampleStatus) -> int:
        """How many samples ended with ``status``."""
        return sum(1 for r in self.results if r.status is status)


class JobState(enum.StrEnum):
    """Life cycle of a training job."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        """True when the job will never change state again."""
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


class Architecture(enum.StrEnum):
    """Model families the trainer can build."""

    SMALL_CNN = "small-cnn"
    MOBILENET_V3_SMALL = "mobilenet-v3-small"
    MOBILENET_V2 = "mobilenet-v2"


@dataclass
class Hyperparameters:
    """Training settings; every field has a sensible default."""

    epochs: int = 10
    batch_size: int = 32
    learning_rate: float = 1e-3
    validation_split: float = 0.2
    seed: int = 42
    architecture: Architecture = Architecture.SMALL_CNN
    # Path or blob sha256 of a user-supplied .keras base model (transfer learning).
    base_model: str = ""
    augment_flip: bool = False
    augment_rotation: float = 0.0
    augment_zoom: float = 0.0
    augment_contrast: float = 0.0
    early_stopping_patience: int = 0
    class_weights: bool = True
    dropout: float = 0.2
    formats: list[ModelFormat] = field(default_factory=lambda: list(CLASSIFIER_FORMATS))
    # Data-parallel training processes (executors that support it: Ray); batch_size is global.
    workers: int = 1
    # Train a MobileNet from random initialisation when its pretrained weights cannot be
    # loaded (the version then carries a warning); otherwise such a job fails.
    allow_random_init: bool = False

    def validate(self) -> None:
        """Raise INVALID_HYPERPARAMETERS with the offending value quoted."""

        def bad(msg: str) -> MobiletrainError:
            return MobiletrainError(ErrorCode.INVALID_HYPERPARAMETERS, msg)

        if not 1 <= self.epochs <= 1000:
            raise bad(f"epochs must be in 1..1000, got {self.epochs}")
        if not 1 <= self.batch_size <= 4096:
            raise bad(f"batch_size must be in 1..4096, got {self.batch_size}")
        if not 0 < self.learning_rate <= 1:
            raise bad(f"learning_rate must be in (0, 1], got {self.learning_rate}")
        if not 0 < self.validation_split < 1:
            raise bad(f"validation_split must be in (0, 1), got {self.validation_split}")
        if not 0 <= self.dropout < 1:
            raise bad(f"dropout must be in [0, 1), got {self.dropout}")
        for name in ("augment_rotation", "augment_zoom", "augment_contrast"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise bad(f"{name} must be in [0, 1], got {value}")
        # Both travel as int32 on the gRPC wire; a seed also seeds NumPy (0..2**32-1).
        if not 0 <= self.seed <= 2**31 - 1:
            raise bad(f"seed must be in 0..2147483647, got {self.seed}")
        if not 0 <= self.early_stopping_patience <= 1000:
            raise bad(
                f"early_stopping_patience must be in 0..1000, got {self.early_stopping_patience}"
            )
        if not 1 <= self.workers <= 64:
            raise bad(f"workers must be in 1..64, got {self.workers}")
        if ModelFormat.KERAS not in self.formats:
            self.formats.insert(0, ModelFormat.KERAS)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (enums as their string values)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, list):
                value = [v.value if isinstance(v, enum.Enum) else v for v in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Hyperparameters:
        """Build from JSON, rejecting unknown keys and bad enum values."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise MobiletrainError(
                ErrorCode.INVALID_HYPERPARAMETERS,
                f"unknown hyperparameters: {sorted(unknown)}; allowed: {sorted(known)}",
            )
        kwargs = dict(data)
        try:
            if "architecture" in kwargs:
                kwargs["architecture"] = Architecture(kwargs["architecture"])
            if "formats" in kwargs:
                kwargs["formats"] = [ModelFormat.parse(str(v)) for v in kwargs["formats"]]
        except ValueError:
            allowed = ", ".join(a.value for a in Architecture)
            raise MobiletrainError(
                ErrorCode.INVALID_HYPERPARAMETERS,
                f"unknown architecture {kwargs['architecture']!r}; allowed: {allowed}",
            ) from None
        return cls(**kwargs)


@dataclass
class Job:
    """A training job and its life cycle."""

    id: str
    project_id: str
    state: JobState
    hyperparameters: Hyperparameters
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    attempts: int = 0
    error: str = ""
    cancel_requested: bool = False
    model_version: int | None = None


class EventKind(enum.StrEnum):
    """Kinds of progress events a job emits."""

    STATE = "state"  # data: {state, error?}
    PROGRESS = "progress"  # data: {epoch, epochs, batch, batches, samples_per_second, eta_seconds}
    EPOCH = "epoch"  # data: {epoch, epochs, loss, accuracy, val_loss, val_accuracy, ...}
    EVALUATION = "evaluation"  # data: final metrics
    LOG = "log"  # data: {message, level?: "warning"}
    RELEASE = "release"  # data: ReleaseDecision.to_dict() plus {version, status, warnings}
    PHASE = "phase"  # data: {phase, eta_seconds}


class JobPhase(enum.StrEnum):
    """What a running job is doing now (PHASE events switch when it changes)."""

    PREPARING_DATA = "preparing data"
    TRAINING = "training"
    EXPORTING = "exporting"
    EVALUATING = "evaluating"


@dataclass
class JobEvent:
    """One progress event; ``seq`` starts at 1 and increases by one per job."""

    job_id: str
    seq: int
    kind: EventKind
    data: dict[str, Any]
    created_at: datetime


@dataclass
class Artifact:
    """One exported file of a model version."""

    format: ModelFormat
    sha256: str
    size: int


@dataclass
class ModelVersion:
    """A trained model: its artifacts, metrics and manifest."""

    project_id: str
    version: int
    job_id: str
    created_at: datetime
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    artifacts: dict[ModelFormat, Artifact]
    # "candidate" until it is first made current, then "released" (see core.release).
    status: str = "released"
    decision: ReleaseDecision | None = None
    evaluation: Evaluation | None = None
    warnings: list[str] = field(default_factory=list)


@dataclass
class Page:
    """A page of results plus the token of the next page ("" at the end)."""

    items: list[Any]
    next_page_token: str = ""


@dataclass
class Token:
    """A stored credential (never the secret itself)."""

    id: str
    role: Role
    project_id: str | None
    name: str
    token_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None

    def is_valid(self, now: datetime) -> bool:
        """Not revoked and not expired."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass
class UploadSession:
    """A large sample arriving in chunks that can resume after any interruption."""

    id: str
    project_id: str
    client_id: str
    label: str
    size: int
    sha256: str  # declared digest of the whole sample ("" if none)
    offset: int  # bytes received so far
    chunks: list[str]  # blob keys of the received chunks, in order
    created_at: datetime
    expires_at: datetime
    uploaded_by: str | None = None  # id of the token that opened it
