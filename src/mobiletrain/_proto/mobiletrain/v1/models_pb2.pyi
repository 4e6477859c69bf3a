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

class ReleaseMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RELEASE_MODE_UNSPECIFIED: _ClassVar[ReleaseMode]
    RELEASE_MODE_AUTO: _ClassVar[ReleaseMode]
    RELEASE_MODE_MANUAL: _ClassVar[ReleaseMode]

class VersionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERSION_STATUS_UNSPECIFIED: _ClassVar[VersionStatus]
    VERSION_STATUS_CURRENT: _ClassVar[VersionStatus]
    VERSION_STATUS_CANDIDATE: _ClassVar[VersionStatus]
    VERSION_STATUS_RETIRED: _ClassVar[VersionStatus]
RELEASE_MODE_UNSPECIFIED: ReleaseMode
RELEASE_MODE_AUTO: ReleaseMode
RELEASE_MODE_MANUAL: ReleaseMode
VERSION_STATUS_UNSPECIFIED: VersionStatus
VERSION_STATUS_CURRENT: VersionStatus
VERSION_STATUS_CANDIDATE: VersionStatus
VERSION_STATUS_RETIRED: VersionStatus

class MetricsSummary(_message.Message):
    __slots__ = ("accuracy", "tflite_accuracy")
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    TFLITE_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    accuracy: float
    tflite_accuracy: _containers.RepeatedCompositeFieldContainer[_common_pb2.FormatAccuracy]
    def __init__(self, accuracy: _Optional[float] = ..., tflite_accuracy: _Optional[_Iterable[_Union[_common_pb2.FormatAccuracy, _Mapping]]] = ...) -> None: ...

class ReleasePolicy(_message.Message):
    __slots__ = ("mode", "margin", "min_accuracy", "min_per_class_recall", "max_int8_drop", "rollout_percent", "rollout_hours")
    MODE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    MIN_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    MIN_PER_CLASS_RECALL_FIELD_NUMBER: _ClassVar[int]
    MAX_INT8_DROP_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_PERCENT_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_HOURS_FIELD_NUMBER: _ClassVar[int]
    mode: ReleaseMode
    margin: float
    min_accuracy: float
    min_per_class_recall: float
    max_int8_drop: float
    rollout_percent: int
    rollout_hours: float
    def __init__(self, mode: _Optional[_Union[ReleaseMode, str]] = ..., margin: _Optional[float] = ..., min_accuracy: _Optional[float] = ..., min_per_class_recall: _Optional[float] = ..., max_int8_drop: _Optional[float] = ..., rollout_percent: _Optional[int] = ..., rollout_hours: _Optional[float] = ...) -> None: ...

class Rollout(_message.Message):
    __slots__ = ("version", "previous_version", "percent", "started_at", "complete_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    previous_version: int
    percent: int
    started_at: _timestamp_pb2.Timestamp
    complete_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., previous_version: _Optional[int] = ..., percent: _Optional[int] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., complete_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ReleasePolicyState(_message.Message):
    __slots__ = ("policy", "pinned", "rollout")
    POLICY_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_FIELD_NUMBER: _ClassVar[int]
    policy: ReleasePolicy
    pinned: bool
    rollout: Rollout
    def __init__(self, policy: _Optional[_Union[ReleasePolicy, _Mapping]] = ..., pinned: _Optional[bool] = ..., rollout: _Optional[_Union[Rollout, _Mapping]] = ...) -> None: ...

class ReleaseDecision(_message.Message):
    __slots__ = ("promoted", "reason", "policy", "compared_format", "accuracy", "current_version", "current_accuracy", "checks")
    PROMOTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    COMPARED_FORMAT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CURRENT_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    promoted: bool
    reason: str
    policy: ReleasePolicy
    compared_format: _common_pb2.ModelFormat
    accuracy: float
    current_version: int
    current_accuracy: float
    checks: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, promoted: _Optional[bool] = ..., reason: _Optional[str] = ..., policy: _Optional[_Union[ReleasePolicy, _Mapping]] = ..., compared_format: _Optional[_Union[_common_pb2.ModelFormat, str]] = ..., accuracy: _Optional[float] = ..., current_version: _Optional[int] = ..., current_accuracy: _Optional[float] = ..., checks: _Optional[_Iterable[str]] = ...) -> None: ...

class ModelVersion(_message.Message):
    __slots__ = ("project_id", "version", "job_id", "created_at", "current", "metrics", "artifacts", "status", "decision", "warnings", "eval_accuracy", "eval_set_size")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    EVAL_ACCURACY_FIELD_NUMBER: _ClassVar[int]
    EVAL_SET_SIZE_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    version: int
    job_id: str
    created_at: _timestamp_pb2.Timestamp
    current: bool
    metrics: MetricsSummary
    artifacts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Artifact]
    status: VersionStatus
    decision: ReleaseDecision
    warnings: _containers.RepeatedScalarFieldContainer[str]
    eval_accuracy: _containers.RepeatedCompositeFieldContainer[_common_pb2.FormatAccuracy]
    eval_set_size: int
    def __init__(self, project_id: _Optional[str] = ..., version: _Optional[int] = ..., job_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current: _Optional[bool] = ..., metrics: _Optional[_Union[MetricsSummary, _Mapping]] = ..., artifacts: _Optional[_Iterable[_Union[_common_pb2.Artifact, _Mapping]]] = ..., status: _Optional[_Union[VersionStatus, str]] = ..., decision: _Optional[_Union[ReleaseDecision, _Mapping]] = ..., warnings: _Optional[_Iterable[str]] = ..., eval_accuracy: _Optional[_Iterable[_Union[_common_pb2.FormatAccuracy, _Mapping]]] = ..., eval_set_size: _Optional[int] = ...) -> None: ...

class RollbackVersionRequest(_message.Message):
    __slots__ = ("project", "reason")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    project: str
    reason: str
    def __init__(self, project: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class ListReleasesRequest(_message.Message):
    __slots__ = ("project", "limit")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    project: str
    limit: int
    def __init__(self, project: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ReleaseRecord(_message.Message):
    __slots__ = ("version", "previous_version", "action", "reason", "actor", "job_id", "created_at")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PREVIOUS_VERSION_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ACTOR_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    version: int
    previous_version: int
    action: str
    reason: str
    actor: str
    job_id: str
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, version: _Optional[int] = ..., previous_version: _Optional[int] = ..., action: _Optional[str] = ..., reason: _Optional[str] = ..., actor: _Optional[str] = ..., job_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListReleasesResponse(_message.Message):
    __slots__ = ("releases",)
    RELEASES_FIELD_NUMBER: _ClassVar[int]
    releases: _containers.RepeatedCompositeFieldContainer[ReleaseRecord]
    def __init__(self, releases: _Optional[_Iterable[_Union[ReleaseRecord, _Mapping]]] = ...) -> None: ...

class GetReleasePolicyRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class SetReleasePolicyRequest(_message.Message):
    __slots__ = ("project", "policy")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    project: str
    policy: ReleasePolicy
    def __init__(self, project: _Optional[str] = ..., policy: _Optional[_Union[ReleasePolicy, _Mapping]] = ...) -> None: ...

class ListModelVersionsRequest(_message.Message):
    __slots__ = ("project", "page_size", "page_token")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project: str
    page_size: int
    page_token: str
    def __init__(self, project: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListModelVersionsResponse(_message.Message):
    __slots__ = ("versions", "next_page_token", "current_version")
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedCompositeFieldContainer[ModelVersion]
    next_page_token: str
    current_version: int
    def __init__(self, versions: _Optional[_Iterable[_Union[ModelVersion, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., current_version: _Optional[int] = ...) -> None: ...

class GetManifestRequest(_message.Message):
    __slots__ = ("project", "version")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    project: str
    version: int
    def __init__(self, project: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class Manifest(_message.Message):
    __slots__ = ("project_id", "version", "labels", "input_spec", "artifacts", "manifest_json")
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SPEC_FIELD_NUMBER: _ClassVar[int]
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    project_id: str
    version: int
    labels: _containers.RepeatedScalarFieldContainer[str]
    input_spec: _common_pb2.InputSpec
    artifacts: _containers.RepeatedCompositeFieldContainer[_common_pb2.Artifact]
    manifest_json: str
    def __init__(self, project_id: _Optional[str] = ..., version: _Optional[int] = ..., labels: _Optional[_Iterable[str]] = ..., input_spec: _Optional[_Union[_common_pb2.InputSpec, _Mapping]] = ..., artifacts: _Optional[_Iterable[_Union[_common_pb2.Artifact, _Mapping]]] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class DownloadModelRequest(_message.Message):
    __slots__ = ("project", "version", "format", "offset")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    project: str
    version: int
    format: _common_pb2.ModelFormat
    offset: int
    def __init__(self, project: _Optional[str] = ..., version: _Optional[int] = ..., format: _Optional[_Union[_common_pb2.ModelFormat, str]] = ..., offset: _Optional[int] = ...) -> None: ...

class ModelFileInfo(_message.Message):
    __slots__ = ("version", "format", "size", "sha256", "file_name", "manifest_json")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    version: int
    format: _common_pb2.ModelFormat
    size: int
    sha256: str
    file_name: str
    manifest_json: str
    def __init__(self, version: _Optional[int] = ..., format: _Optional[_Union[_common_pb2.ModelFormat, str]] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., file_name: _Optional[str] = ..., manifest_json: _Optional[str] = ...) -> None: ...

class ModelChunk(_message.Message):
    __slots__ = ("info", "offset", "data")
    INFO_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    info: ModelFileInfo
    offset: int
    data: bytes
    def __init__(self, info: _Optional[_Union[ModelFileInfo, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class CheckForUpdateRequest(_message.Message):
    __slots__ = ("project", "format", "current_sha256", "current_version")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_SHA256_FIELD_NUMBER: _ClassVar[int]
    CURRENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    project: str
    format: _common_pb2.ModelFormat
    current_sha256: str
    current_version: int
    def __init__(self, project: _Optional[str] = ..., format: _Optional[_Union[_common_pb2.ModelFormat, str]] = ..., current_sha256: _Optional[str] = ..., current_version: _Optional[int] = ...) -> None: ...

class CheckForUpdateResponse(_message.Message):
    __slots__ = ("not_modified", "latest", "artifact")
    NOT_MODIFIED_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    ARTIFACT_FIELD_NUMBER: _ClassVar[int]
    not_modified: bool
    latest: ModelVersion
    artifact: _common_pb2.Artifact
    def __init__(self, not_modified: _Optional[bool] = ..., latest: _Optional[_Union[ModelVersion, _Mapping]] = ..., artifact: _Optional[_Union[_common_pb2.Artifact, _Mapping]] = ...) -> None: ...

class PromoteVersionRequest(_message.Message):
    __slots__ = ("project", "version", "pin", "reason")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PIN_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    project: str
    version: int
    pin: bool
    reason: str
    def __init__(self, project: _Optional[str] = ..., version: _Optional[int] = ..., pin: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class PredictRequest(_message.Message):
    __slots__ = ("project", "version", "image", "top_k")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    project: str
    version: int
    image: bytes
    top_k: int
    def __init__(self, project: _Optional[str] = ..., version: _Optional[int] = ..., image: _Optional[bytes] = ..., top_k: _Optional[int] = ...) -> None: ...

class Prediction(_message.Message):
    __slots__ = ("label", "index", "score")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    label: str
    index: int
    score: float
    def __init__(self, label: _Optional[str] = ..., index: _Optional[int] = ..., score: _Optional[float] = ...) -> None: ...

class PredictResponse(_message.Message):
    __slots__ = ("predictions", "version", "latency_ms")
    PREDICTIONS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    LATENCY_MS_FIELD_NUMBER: _ClassVar[int]
    predictions: _containers.RepeatedCompositeFieldContainer[Prediction]
    version: int
    latency_ms: float
    def __init__(self, predictions: _Optional[_Iterable[_Union[Prediction, _Mapping]]] = ..., version: _Optional[int] = ..., latency_ms: _Optional[float] = ...) -> None: ...
