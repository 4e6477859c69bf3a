import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mobiletrain._proto.mobiletrain.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATE_UNSPECIFIED: _ClassVar[SessionState]
    SESSION_STATE_PREPARING: _ClassVar[SessionState]
    SESSION_STATE_RUNNING: _ClassVar[SessionState]
    SESSION_STATE_FINISHED: _ClassVar[SessionState]
    SESSION_STATE_FAILED: _ClassVar[SessionState]
    SESSION_STATE_CANCELLED: _ClassVar[SessionState]

class FederatedStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FEDERATED_STRATEGY_UNSPECIFIED: _ClassVar[FederatedStrategy]
    FEDERATED_STRATEGY_FEDAVG: _ClassVar[FederatedStrategy]
    FEDERATED_STRATEGY_FEDPROX: _ClassVar[FederatedStrategy]
    FEDERATED_STRATEGY_MEDIAN: _ClassVar[FederatedStrategy]
    FEDERATED_STRATEGY_TRIMMED_MEAN: _ClassVar[FederatedStrategy]

class StragglerPolicy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STRAGGLER_POLICY_UNSPECIFIED: _ClassVar[StragglerPolicy]
    STRAGGLER_POLICY_DEADLINE: _ClassVar[StragglerPolicy]
    STRAGGLER_POLICY_QUORUM: _ClassVar[StragglerPolicy]

class RoundPhase(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ROUND_PHASE_UNSPECIFIED: _ClassVar[RoundPhase]
    ROUND_PHASE_OPEN: _ClassVar[RoundPhase]
    ROUND_PHASE_AGGREGATED: _ClassVar[RoundPhase]
    ROUND_PHASE_SKIPPED: _ClassVar[RoundPhase]

class TaskStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATUS_UNSPECIFIED: _ClassVar[TaskStatus]
    TASK_STATUS_TASK: _ClassVar[TaskStatus]
    TASK_STATUS_WAIT: _ClassVar[TaskStatus]
    TASK_STATUS_FINISHED: _ClassVar[TaskStatus]

class RejectReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REJECT_REASON_UNSPECIFIED: _ClassVar[RejectReason]
    REJECT_REASON_STALE_ROUND: _ClassVar[RejectReason]
    REJECT_REASON_NOT_SELECTED: _ClassVar[RejectReason]
    REJECT_REASON_DUPLICATE: _ClassVar[RejectReason]
    REJECT_REASON_SAMPLE_COUNT: _ClassVar[RejectReason]
    REJECT_REASON_SHAPE: _ClassVar[RejectReason]
    REJECT_REASON_DTYPE: _ClassVar[RejectReason]
    REJECT_REASON_NOT_FINITE: _ClassVar[RejectReason]
    REJECT_REASON_DEVICE_FAILED: _ClassVar[RejectReason]

class WeightsDtype(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEIGHTS_DTYPE_UNSPECIFIED: _ClassVar[WeightsDtype]
    WEIGHTS_DTYPE_FLOAT32: _ClassVar[WeightsDtype]
    WEIGHTS_DTYPE_FLOAT16: _ClassVar[WeightsDtype]
SESSION_STATE_UNSPECIFIED: SessionState
SESSION_STATE_PREPARING: SessionState
SESSION_STATE_RUNNING: SessionState
SESSION_STATE_FINISHED: SessionState
SESSION_STATE_FAILED: SessionState
SESSION_STATE_CANCELLED: SessionState
FEDERATED_STRATEGY_UNSPECIFIED: FederatedStrategy
FEDERATED_STRATEGY_FEDAVG: FederatedStrategy
FEDERATED_STRATEGY_FEDPROX: FederatedStrategy
FEDERATED_STRATEGY_MEDIAN: FederatedStrategy
FEDERATED_STRATEGY_TRIMMED_MEAN: FederatedStrategy
STRAGGLER_POLICY_UNSPECIFIED: StragglerPolicy
STRAGGLER_POLICY_DEADLINE: StragglerPolicy
STRAGGLER_POLICY_QUORUM: StragglerPolicy
ROUND_PHASE_UNSPECIFIED: RoundPhase
ROUND_PHASE_OPEN: RoundPhase
ROUND_PHASE_AGGREGATED: RoundPhase
ROUND_PHASE_SKIPPED: RoundPhase
TASK_STATUS_UNSPECIFIED: TaskStatus
TASK_STATUS_TASK: TaskStatus
TASK_STATUS_WAIT: TaskStatus
TASK_STATUS_FINISHED: TaskStatus
REJECT_REASON_UNSPECIFIED: RejectReason
REJECT_REASON_STALE_ROUND: RejectReason
REJECT_REASON_NOT_SELECTED: RejectReason
REJECT_REASON_DUPLICATE: RejectReason
REJECT_REASON_SAMPLE_COUNT: RejectReason
REJECT_REASON_SHAPE: RejectReason
REJECT_REASON_DTYPE: RejectReason
REJECT_REASON_NOT_FINITE: RejectReason
REJECT_REASON_DEVICE_FAILED: RejectReason
WEIGHTS_DTYPE_UNSPECIFIED: WeightsDtype
WEIGHTS_DTYPE_FLOAT32: WeightsDtype
WEIGHTS_DTYPE_FLOAT16: WeightsDtype

class HeadLayers(_message.Message):
    __slots__ = ("hidden",)
    HIDDEN_FIELD_NUMBER: _ClassVar[int]
    hidden: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, hidden: _Optional[_Iterable[int]] = ...) -> None: ...

class FederatedConfig(_message.Message):
    __slots__ = ("rounds", "min_devices", "min_available_devices", "fraction", "round_deadline_seconds", "straggler_policy", "min_completion_rate", "accept_failures", "availability_seconds", "strategy", "max_samples_per_device", "proximal_mu", "trim_fraction", "clip_norm", "noise_multiplier", "local_epochs", "learning_rate", "batch_size", "head", "base_version", "seed", "max_weight_share")
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    MIN_DEVICES_FIELD_NUMBER: _ClassVar[int]
    MIN_AVAILABLE_DEVICES_FIELD_NUMBER: _ClassVar[int]
    FRACTION_FIELD_NUMBER: _ClassVar[int]
    ROUND_DEADLINE_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STRAGGLER_POLICY_FIELD_NUMBER: _ClassVar[int]
    MIN_COMPLETION_RATE_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_FAILURES_FIELD_NUMBER: _ClassVar[int]
    AVAILABILITY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MAX_SAMPLES_PER_DEVICE_FIELD_NUMBER: _ClassVar[int]
    PROXIMAL_MU_FIELD_NUMBER: _ClassVar[int]
    TRIM_FRACTION_FIELD_NUMBER: _ClassVar[int]
    CLIP_NORM_FIELD_NUMBER: _ClassVar[int]
    NOISE_MULTIPLIER_FIELD_NUMBER: _ClassVar[int]
    LOCAL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    HEAD_FIELD_NUMBER: _ClassVar[int]
    BASE_VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MAX_WEIGHT_SHARE_FIELD_NUMBER: _ClassVar[int]
    rounds: int
    min_devices: int
    min_available_devices: int
    fraction: float
    round_deadline_seconds: float
    straggler_policy: StragglerPolicy
    min_completion_rate: float
    accept_failures: bool
    availability_seconds: float
    strategy: FederatedStrategy
    max_samples_per_device: int
    proximal_mu: float
    trim_fraction: float
    clip_norm: float
    noise_multiplier: float
    local_epochs: int
    learning_rate: float
    batch_size: int
    head: HeadLayers
    base_version: int
    seed: int
    max_weight_share: float
    def __init__(self, rounds: _Optional[int] = ..., min_devices: _Optional[int] = ..., min_available_devices: _Optional[int] = ..., fraction: _Optional[float] = ..., round_deadline_seconds: _Optional[float] = ..., straggler_policy: _Optional[_Union[StragglerPolicy, str]] = ..., min_completion_rate: _Optional[float] = ..., accept_failures: _Optional[bool] = ..., availability_seconds: _Optional[float] = ..., strategy: _Optional[_Union[FederatedStrategy, str]] = ..., max_samples_per_device: _Optional[int] = ..., proximal_mu: _Optional[float] = ..., trim_fraction: _Optional[float] = ..., clip_norm: _Optional[float] = ..., noise_multiplier: _Optional[float] = ..., local_epochs: _Optional[int] = ..., learning_rate: _Optional[float] = ..., batch_size: _Optional[int] = ..., head: _Optional[_Union[HeadLayers, _Mapping]] = ..., base_version: _Optional[int] = ..., seed: _Optional[int] = ..., max_weight_share: _Optional[float] = ...) -> None: ...

class FederatedSession(_message.Message):
    __slots__ = ("id", "project_id", "job_id", "state", "config", "labels", "current_round", "model_version", "files", "held_out_accuracy", "created_at", "finished_at", "error", "ondevice_json")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ROUND_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ONDEVICE_JSON_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    job_id: str
    state: SessionState
    config: FederatedConfig
    labels: _containers.RepeatedScalarFieldContainer[str]
    current_round: int
    model_version: int
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.Artifact]
    held_out_accuracy: float
    created_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    error: str
    ondevice_json: str
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., job_id: _Optional[str] = ..., state: _Optional[_Union[SessionState, str]] = ..., config: _Optional[_Union[FederatedConfig, _Mapping]] = ..., labels: _Optional[_Iterable[str]] = ..., current_round: _Optional[int] = ..., model_version: _Optional[int] = ..., files: _Optional[_Iterable[_Union[_common_pb2.Artifact, _Mapping]]] = ..., held_out_accuracy: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ..., ondevice_json: _Optional[str] = ...) -> None: ...

class FederatedRound(_message.Message):
    __slots__ = ("number", "phase", "selected", "accepted", "completion_rate", "noise_std", "model_version", "held_out_accuracy", "close_reason", "opened_at", "deadline", "closed_at", "result_json")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    SELECTED_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_RATE_FIELD_NUMBER: _ClassVar[int]
    NOISE_STD_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HELD_OUT_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CLOSE_REASON_FIELD_NUMBER: _ClassVar[int]
    OPENED_AT_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    CLOSED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    number: int
    phase: RoundPhase
    selected: int
    accepted: int
    completion_rate: float
    noise_std: float
    model_version: int
    held_out_accuracy: float
    close_reason: str
    opened_at: _timestamp_pb2.Timestamp
    deadline: _timestamp_pb2.Timestamp
    closed_at: _timestamp_pb2.Timestamp
    result_json: str
    def __init__(self, number: _Optional[int] = ..., phase: _Optional[_Union[RoundPhase, str]] = ..., selected: _Optional[int] = ..., accepted: _Optional[int] = ..., completion_rate: _Optional[float] = ..., noise_std: _Optional[float] = ..., model_version: _Optional[int] = ..., held_out_accuracy: _Optional[float] = ..., close_reason: _Optional[str] = ..., opened_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., closed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result_json: _Optional[str] = ...) -> None: ...

class StartSessionRequest(_message.Message):
    __slots__ = ("project", "config")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    project: str
    config: FederatedConfig
    def __init__(self, project: _Optional[str] = ..., config: _Optional[_Union[FederatedConfig, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListSessionsRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class ListSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[FederatedSession]
    def __init__(self, sessions: _Optional[_Iterable[_Union[FederatedSession, _Mapping]]] = ...) -> None: ...

class StopSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListRoundsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListRoundsResponse(_message.Message):
    __slots__ = ("rounds",)
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    rounds: _containers.RepeatedCompositeFieldContainer[FederatedRound]
    def __init__(self, rounds: _Optional[_Iterable[_Union[FederatedRound, _Mapping]]] = ...) -> None: ...

class DownloadSessionFileRequest(_message.Message):
    __slots__ = ("session_id", "format", "offset")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    format: _common_pb2.ModelFormat
    offset: int
    def __init__(self, session_id: _Optional[str] = ..., format: _Optional[_Union[_common_pb2.ModelFormat, str]] = ..., offset: _Optional[int] = ...) -> None: ...

class SessionFileChunk(_message.Message):
    __slots__ = ("info", "offset", "data")
    INFO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    info: _common_pb2.Artifact
    offset: int
    data: bytes
    def __init__(self, info: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class RegisterDeviceRequest(_message.Message):
    __slots__ = ("project", "info")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    project: str
    info: _containers.RepeatedCompositeFieldContainer[DeviceAttribute]
    def __init__(self, project: _Optional[str] = ..., info: _Optional[_Iterable[_Union[DeviceAttribute, _Mapping]]] = ...) -> None: ...

class DeviceAttribute(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: str
    def __init__(self, name: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class Metric(_message.Message):
    __slots__ = ("name", "value")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    name: str
    value: float
    def __init__(self, name: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...

class RegisterDeviceResponse(_message.Message):
    __slots__ = ("device_id", "session")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    session: FederatedSession
    def __init__(self, device_id: _Optional[str] = ..., session: _Optional[_Union[FederatedSession, _Mapping]] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("project", "device_id", "wait_seconds")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    project: str
    device_id: str
    wait_seconds: float
    def __init__(self, project: _Optional[str] = ..., device_id: _Optional[str] = ..., wait_seconds: _Optional[float] = ...) -> None: ...

class WeightTensor(_message.Message):
    __slots__ = ("name", "shape")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    name: str
    shape: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, name: _Optional[str] = ..., shape: _Optional[_Iterable[int]] = ...) -> None: ...

class FederatedTask(_message.Message):
    __slots__ = ("session_id", "round", "rounds", "deadline", "tensors", "weights_size", "learning_rate", "local_epochs", "batch_size", "mu", "labels", "files", "model_version")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ROUNDS_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_FIELD_NUMBER: _ClassVar[int]
    TENSORS_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SIZE_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    LOCAL_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MU_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    round: int
    rounds: int
    deadline: _timestamp_pb2.Timestamp
    tensors: _containers.RepeatedCompositeFieldContainer[WeightTensor]
    weights_size: int
    learning_rate: float
    local_epochs: int
    batch_size: int
    mu: float
    labels: _containers.RepeatedScalarFieldContainer[str]
    files: _containers.RepeatedCompositeFieldContainer[_common_pb2.Artifact]
    model_version: int
    def __init__(self, session_id: _Optional[str] = ..., round: _Optional[int] = ..., rounds: _Optional[int] = ..., deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tensors: _Optional[_Iterable[_Union[WeightTensor, _Mapping]]] = ..., weights_size: _Optional[int] = ..., learning_rate: _Optional[float] = ..., local_epochs: _Optional[int] = ..., batch_size: _Optional[int] = ..., mu: _Optional[float] = ..., labels: _Optional[_Iterable[str]] = ..., files: _Optional[_Iterable[_Union[_common_pb2.Artifact, _Mapping]]] = ..., model_version: _Optional[int] = ...) -> None: ...

class TaskHeader(_message.Message):
    __slots__ = ("status", "session_id", "message", "retry_after_seconds", "task", "weights")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    status: TaskStatus
    session_id: str
    message: str
    retry_after_seconds: float
    task: FederatedTask
    weights: bytes
    def __init__(self, status: _Optional[_Union[TaskStatus, str]] = ..., session_id: _Optional[str] = ..., message: _Optional[str] = ..., retry_after_seconds: _Optional[float] = ..., task: _Optional[_Union[FederatedTask, _Mapping]] = ..., weights: _Optional[bytes] = ...) -> None: ...

class WeightsChunk(_message.Message):
    __slots__ = ("offset", "data")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class TaskMessage(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: TaskHeader
    chunk: WeightsChunk
    def __init__(self, header: _Optional[_Union[TaskHeader, _Mapping]] = ..., chunk: _Optional[_Union[WeightsChunk, _Mapping]] = ...) -> None: ...

class UpdateHeader(_message.Message):
    __slots__ = ("project", "device_id", "session_id", "round", "num_samples", "dtype", "metrics", "error", "weights_size", "weights")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    NUM_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_SIZE_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    project: str
    device_id: str
    session_id: str
    round: int
    num_samples: int
    dtype: WeightsDtype
    metrics: _containers.RepeatedCompositeFieldContainer[Metric]
    error: str
    weights_size: int
    weights: bytes
    def __init__(self, project: _Optional[str] = ..., device_id: _Optional[str] = ..., session_id: _Optional[str] = ..., round: _Optional[int] = ..., num_samples: _Optional[int] = ..., dtype: _Optional[_Union[WeightsDtype, str]] = ..., metrics: _Optional[_Iterable[_Union[Metric, _Mapping]]] = ..., error: _Optional[str] = ..., weights_size: _Optional[int] = ..., weights: _Optional[bytes] = ...) -> None: ...

class ParticipateStart(_message.Message):
    __slots__ = ("project", "device_id", "info")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    project: str
    device_id: str
    info: _containers.RepeatedCompositeFieldContainer[DeviceAttribute]
    def __init__(self, project: _Optional[str] = ..., device_id: _Optional[str] = ..., info: _Optional[_Iterable[_Union[DeviceAttribute, _Mapping]]] = ...) -> None: ...

class ParticipateRequest(_message.Message):
    __slots__ = ("start", "update", "chunk")
    START_FIELD_NUMBER: _ClassVar[int]
    UPDATE_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    start: ParticipateStart
    update: UpdateHeader
    chunk: WeightsChunk
    def __init__(self, start: _Optional[_Union[ParticipateStart, _Mapping]] = ..., update: _Optional[_Union[UpdateHeader, _Mapping]] = ..., chunk: _Optional[_Union[WeightsChunk, _Mapping]] = ...) -> None: ...

class ParticipateResponse(_message.Message):
    __slots__ = ("registered", "task", "chunk", "update_result")
    REGISTERED_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_RESULT_FIELD_NUMBER: _ClassVar[int]
    registered: RegisterDeviceResponse
    task: TaskHeader
    chunk: WeightsChunk
    update_result: PushUpdateResponse
    def __init__(self, registered: _Optional[_Union[RegisterDeviceResponse, _Mapping]] = ..., task: _Optional[_Union[TaskHeader, _Mapping]] = ..., chunk: _Optional[_Union[WeightsChunk, _Mapping]] = ..., update_result: _Optional[_Union[PushUpdateResponse, _Mapping]] = ...) -> None: ...

class PushUpdateRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UpdateHeader
    chunk: WeightsChunk
    def __init__(self, header: _Optional[_Union[UpdateHeader, _Mapping]] = ..., chunk: _Optional[_Union[WeightsChunk, _Mapping]] = ...) -> None: ...

class PushUpdateResponse(_message.Message):
    __slots__ = ("accepted", "round", "reason", "message")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    ROUND_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    round: int
    reason: RejectReason
    message: str
    def __init__(self, accepted: _Optional[bool] = ..., round: _Optional[int] = ..., reason: _Optional[_Union[RejectReason, str]] = ..., message: _Optional[str] = ...) -> None: ...
