import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mobiletrain._proto.mobiletrain.v1 import common_pb2 as _common_pb2
from mobiletrain._proto.mobiletrain.v1 import models_pb2 as _models_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATE_UNSPECIFIED: _ClassVar[JobState]
    JOB_STATE_QUEUED: _ClassVar[JobState]
    JOB_STATE_RUNNING: _ClassVar[JobState]
    JOB_STATE_SUCCEEDED: _ClassVar[JobState]
    JOB_STATE_FAILED: _ClassVar[JobState]
    JOB_STATE_CANCELLED: _ClassVar[JobState]

class Architecture(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ARCHITECTURE_UNSPECIFIED: _ClassVar[Architecture]
    ARCHITECTURE_SMALL_CNN: _ClassVar[Architecture]
    ARCHITECTURE_MOBILENET_V3_SMALL: _ClassVar[Architecture]
    ARCHITECTURE_MOBILENET_V2: _ClassVar[Architecture]

class EventKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EVENT_KIND_UNSPECIFIED: _ClassVar[EventKind]
    EVENT_KIND_STATE: _ClassVar[EventKind]
    EVENT_KIND_PROGRESS: _ClassVar[EventKind]
    EVENT_KIND_EPOCH: _ClassVar[EventKind]
    EVENT_KIND_EVALUATION: _ClassVar[EventKind]
    EVENT_KIND_LOG: _ClassVar[EventKind]
    EVENT_KIND_RELEASE: _ClassVar[EventKind]
    EVENT_KIND_PHASE: _ClassVar[EventKind]

class JobPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_PHASE_UNSPECIFIED: _ClassVar[JobPhase]
    JOB_PHASE_PREPARING_DATA: _ClassVar[JobPhase]
    JOB_PHASE_TRAINING: _ClassVar[JobPhase]
    JOB_PHASE_EXPORTING: _ClassVar[JobPhase]
    JOB_PHASE_EVALUATING: _ClassVar[JobPhase]
JOB_STATE_UNSPECIFIED: JobState
JOB_STATE_QUEUED: JobState
JOB_STATE_RUNNING: JobState
JOB_STATE_SUCCEEDED: JobState
JOB_STATE_FAILED: JobState
JOB_STATE_CANCELLED: JobState
ARCHITECTURE_UNSPECIFIED: Architecture
ARCHITECTURE_SMALL_CNN: Architecture
ARCHITECTURE_MOBILENET_V3_SMALL: Architecture
ARCHITECTURE_MOBILENET_V2: Architecture
EVENT_KIND_UNSPECIFIED: EventKind
EVENT_KIND_STATE: EventKind
EVENT_KIND_PROGRESS: EventKind
EVENT_KIND_EPOCH: EventKind
EVENT_KIND_EVALUATION: EventKind
EVENT_KIND_LOG: EventKind
EVENT_KIND_RELEASE: EventKind
EVENT_KIND_PHASE: EventKind
JOB_PHASE_UNSPECIFIED: JobPhase
JOB_PHASE_PREPARING_DATA: JobPhase
JOB_PHASE_TRAINING: JobPhase
JOB_PHASE_EXPORTING: JobPhase
JOB_PHASE_EVALUATING: JobPhase

class Hyperparameters(_message.Message):
    __slots__ = ("epochs", "batch_size", "learning_rate", "validation_split", "seed", "architecture", "base_model", "augment_flip", "augment_rotation", "augment_zoom", "augment_contrast", "early_stopping_patience", "class_weights", "dropout", "formats", "workers", "allow_random_init")
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    VALIDATION_SPLIT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_FLIP_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_ROTATION_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_ZOOM_FIELD_NUMBER: _ClassVar[int]
    AUGMENT_CONTRAST_FIELD_NUMBER: _ClassVar[int]
    EARLY_STOPPING_PATIENCE_FIELD_NUMBER: _ClassVar[int]
    CLASS_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    DROPOUT_FIELD_NUMBER: _ClassVar[int]
    FORMATS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_RANDOM_INIT_FIELD_NUMBER: _ClassVar[int]
    epochs: int
    batch_size: int
    learning_rate: float
    validation_split: float
    seed: int
    architecture: Architecture
    base_model: str
    augment_flip: bool
    augment_rotation: float
    augment_zoom: float
    augment_contrast: float
    early_stopping_patience: int
    class_weights: bool
    dropout: float
    formats: _containers.RepeatedScalarFieldContainer[_common_pb2.ModelFormat]
    workers: int
    allow_random_init: bool
    def __init__(self, epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., validation_split: _Optional[float] = ..., seed: _Optional[int] = ..., architecture: _Optional[_Union[Architecture, str]] = ..., base_model: _Optional[str] = ..., augment_flip: _Optional[bool] = ..., augment_rotation: _Optional[float] = ..., augment_zoom: _Optional[float] = ..., augment_contrast: _Optional[float] = ..., early_stopping_patience: _Optional[int] = ..., class_weights: _Optional[bool] = ..., dropout: _Optional[float] = ..., formats: _Optional[_Iterable[_Union[_common_pb2.ModelFormat, str]]] = ..., workers: _Optional[int] = ..., allow_random_init: _Optional[bool] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "project_id", "state", "hyperparameters", "created_at", "started_at", "finished_at", "attempts", "error", "cancel_requested", "model_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REQUESTED_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    state: JobState
    hyperparameters: Hyperparameters
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    attempts: int
    error: str
    cancel_requested: bool
    model_version: int
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., state: _Optional[_Union[JobState, str]] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., attempts: _Optional[int] = ..., error: _Optional[str] = ..., cancel_requested: _Optional[bool] = ..., model_version: _Optional[int] = ...) -> None: ...

class StartJobRequest(_message.Message):
    __slots__ = ("project", "hyperparameters")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    HYPERPARAMETERS_FIELD_NUMBER: _ClassVar[int]
    project: str
    hyperparameters: Hyperparameters
    def __init__(self, project: _Optional[str] = ..., hyperparameters: _Optional[_Union[Hyperparameters, _Mapping]] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("project", "page_size", "page_token")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project: str
    page_size: int
    page_token: str
    def __init__(self, project: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id",)
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    def __init__(self, job_id: _Optional[str] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("job_id", "after_seq")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQ_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    after_seq: int
    def __init__(self, job_id: _Optional[str] = ..., after_seq: _Optional[int] = ...) -> None: ...

class StateChanged(_message.Message):
    __slots__ = ("state", "error", "error_code")
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    state: JobState
    error: str
    error_code: int
    def __init__(self, state: _Optional[_Union[JobState, str]] = ..., error: _Optional[str] = ..., error_code: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("epoch", "epochs", "batch", "batches", "samples_per_second", "eta_seconds", "job_eta_seconds", "phase")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    JOB_ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    epochs: int
    batch: int
    batches: int
    samples_per_second: float
    eta_seconds: float
    job_eta_seconds: float
    phase: JobPhase
    def __init__(self, epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., batch: _Optional[int] = ..., batches: _Optional[int] = ..., samples_per_second: _Optional[float] = ..., eta_seconds: _Optional[float] = ..., job_eta_seconds: _Optional[float] = ..., phase: _Optional[_Union[JobPhase, str]] = ...) -> None: ...

class PhaseChanged(_message.Message):
    __slots__ = ("phase", "eta_seconds")
    PHASE_FIELD_NUMBER: _ClassVar[int]
    ETA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    phase: JobPhase
    eta_seconds: float
    def __init__(self, phase: _Optional[_Union[JobPhase, str]] = ..., eta_seconds: _Optional[float] = ...) -> None: ...

class ReleaseOutcome(_message.Message):
    __slots__ = ("version", "status", "decision", "warnings", "eval_accuracy", "current_eval_accuracy", "eval_set_size")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    EVAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_EVAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EVAL_SET_SIZE_FIELD_NUMBER: _ClassVar[int]
    version: int
    status: _models_pb2.VersionStatus
    decision: _models_pb2.ReleaseDecision
    warnings: _containers.RepeatedScalarFieldContainer[str]
    eval_accuracy: _containers.RepeatedCompositeFieldContainer[_common_pb2.FormatAccuracy]
    current_eval_accuracy: _containers.RepeatedCompositeFieldContainer[_common_pb2.FormatAccuracy]
    eval_set_size: int
    def __init__(self, version: _Optional[int] = ..., status: _Optional[_Union[_models_pb2.VersionStatus, str]] = ..., decision: _Optional[_Union[_models_pb2.ReleaseDecision, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., eval_accuracy: _Optional[_Iterable[_Union[_common_pb2.FormatAccuracy, _Mapping]]] = ..., current_eval_accuracy: _Optional[_Iterable[_Union[_common_pb2.FormatAccuracy, _Mapping]]] = ..., eval_set_size: _Optional[int] = ...) -> None: ...

class EpochEnd(_message.Message):
    __slots__ = ("epoch", "epochs", "loss", "accuracy", "val_loss", "val_accuracy", "seconds")
    EPOCH_FIELD_NUMBER: _ClassVar[int]
    EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    VAL_LOSS_FIELD_NUMBER: _ClassVar[int]
    VAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    epoch: int
    epochs: int
    loss: float
    accuracy: float
    val_loss: float
    val_accuracy: float
    seconds: float
    def __init__(self, epoch: _Optional[int] = ..., epochs: _Optional[int] = ..., loss: _Optional[float] = ..., accuracy: _Optional[float] = ..., val_loss: _Optional[float] = ..., val_accuracy: _Optional[float] = ..., seconds: _Optional[float] = ...) -> None: ...

class ClassMetrics(_message.Message):
    __slots__ = ("label", "precision", "recall", "f1", "support")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RECALL_FIELD_NUMBER: _ClassVar[int]
    F1_FIELD_NUMBER: _ClassVar[int]
    SUPPORT_FIELD_NUMBER: _ClassVar[int]
    label: str
    precision: float
    recall: float
    f1: float
    support: int
    def __init__(self, label: _Optional[str] = ..., precision: _Optional[float] = ..., recall: _Optional[float] = ..., f1: _Optional[float] = ..., support: _Optional[int] = ...) -> None: ...

class ConfusionRow(_message.Message):
    __slots__ = ("counts",)
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, counts: _Optional[_Iterable[int]] = ...) -> None: ...

class Evaluation(_message.Message):
    __slots__ = ("accuracy", "labels", "per_class", "confusion_matrix", "tflite_accuracy", "metrics_json")
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    PER_CLASS_FIELD_NUMBER: _ClassVar[int]
    CONFUSION_MATRIX_FIELD_NUMBER: _ClassVar[int]
    TFLITE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    METRICS_JSON_FIELD_NUMBER: _ClassVar[int]
    accuracy: float
    labels: _containers.RepeatedScalarFieldContainer[str]
    per_class: _containers.RepeatedCompositeFieldContainer[ClassMetrics]
    confusion_matrix: _containers.RepeatedCompositeFieldContainer[ConfusionRow]
    tflite_accuracy: _containers.RepeatedCompositeFieldContainer[_common_pb2.FormatAccuracy]
    metrics_json: str
    def __init__(self, accuracy: _Optional[float] = ..., labels: _Optional[_Iterable[str]] = ..., per_class: _Optional[_Iterable[_Union[ClassMetrics, _Mapping]]] = ..., confusion_matrix: _Optional[_Iterable[_Union[ConfusionRow, _Mapping]]] = ..., tflite_accuracy: _Optional[_Iterable[_Union[_common_pb2.FormatAccuracy, _Mapping]]] = ..., metrics_json: _Optional[str] = ...) -> None: ...

class Log(_message.Message):
    __slots__ = ("message", "level")
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    LEVEL_FIELD_NUMBER: _ClassVar[int]
    message: str
    level: str
    def __init__(self, message: _Optional[str] = ..., level: _Optional[str] = ...) -> None: ...

class JobEvent(_message.Message):
    __slots__ = ("job_id", "seq", "kind", "created_at", "state_changed", "progress", "epoch_end", "evaluation", "log", "release", "phase")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SEQ_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATE_CHANGED_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    EPOCH_END_FIELD_NUMBER: _ClassVar[int]
    EVALUATION_FIELD_NUMBER: _ClassVar[int]
    LOG_FIELD_NUMBER: _ClassVar[int]
    RELEASE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    seq: int
    kind: EventKind
    created_at: _timestamp_pb2.Timestamp
    state_changed: StateChanged
    progress: Progress
    epoch_end: EpochEnd
    evaluation: Evaluation
    log: Log
    release: ReleaseOutcome
    phase: PhaseChanged
    def __init__(self, job_id: _Optional[str] = ..., seq: _Optional[int] = ..., kind: _Optional[_Union[EventKind, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., state_changed: _Optional[_Union[StateChanged, _Mapping]] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., epoch_end: _Optional[_Union[EpochEnd, _Mapping]] = ..., evaluation: _Optional[_Union[Evaluation, _Mapping]] = ..., log: _Optional[_Union[Log, _Mapping]] = ..., release: _Optional[_Union[ReleaseOutcome, _Mapping]] = ..., phase: _Optional[_Union[PhaseChanged, _Mapping]] = ...) -> None: ...
