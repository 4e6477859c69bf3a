from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_TYPE_UNSPECIFIED: _ClassVar[TaskType]
    TASK_TYPE_IMAGE_CLASSIFICATION: _ClassVar[TaskType]
    TASK_TYPE_AUDIO_CLASSIFICATION: _ClassVar[TaskType]
    TASK_TYPE_SENSOR_CLASSIFICATION: _ClassVar[TaskType]
    TASK_TYPE_OBJECT_DETECTION: _ClassVar[TaskType]

class LongClips(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    LONG_CLIPS_UNSPECIFIED: _ClassVar[LongClips]
    LONG_CLIPS_REJECT: _ClassVar[LongClips]
    LONG_CLIPS_SPLIT: _ClassVar[LongClips]

class SensorFraming(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SENSOR_FRAMING_UNSPECIFIED: _ClassVar[SensorFraming]
    SENSOR_FRAMING_WINDOWS: _ClassVar[SensorFraming]
    SENSOR_FRAMING_PAD: _ClassVar[SensorFraming]

class ColorMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    COLOR_MODE_UNSPECIFIED: _ClassVar[ColorMode]
    COLOR_MODE_RGB: _ClassVar[ColorMode]
    COLOR_MODE_GRAYSCALE: _ClassVar[ColorMode]

class Normalization(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    NORMALIZATION_UNSPECIFIED: _ClassVar[Normalization]
    NORMALIZATION_ZERO_ONE: _ClassVar[Normalization]
    NORMALIZATION_MINUS_ONE_ONE: _ClassVar[Normalization]
    NORMALIZATION_RAW: _ClassVar[Normalization]

class ModelFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MODEL_FORMAT_UNSPECIFIED: _ClassVar[ModelFormat]
    MODEL_FORMAT_KERAS: _ClassVar[ModelFormat]
    MODEL_FORMAT_FLOAT32: _ClassVar[ModelFormat]
    MODEL_FORMAT_FLOAT16: _ClassVar[ModelFormat]
    MODEL_FORMAT_DYNAMIC_INT8: _ClassVar[ModelFormat]
    MODEL_FORMAT_INT8: _ClassVar[ModelFormat]
    MODEL_FORMAT_FEATURE_EXTRACTOR: _ClassVar[ModelFormat]
    MODEL_FORMAT_TRAIN_STEP: _ClassVar[ModelFormat]
    MODEL_FORMAT_HEAD_INFERENCE: _ClassVar[ModelFormat]
    MODEL_FORMAT_HEAD_SIGNATURES: _ClassVar[ModelFormat]
    MODEL_FORMAT_HEAD_WEIGHTS: _ClassVar[ModelFormat]

class ErrorCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ERROR_CODE_UNSPECIFIED: _ClassVar[ErrorCode]
    ERROR_CODE_INTERNAL: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_ARGUMENT: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_ALREADY_EXISTS: _ClassVar[ErrorCode]
    ERROR_CODE_FAILED_PRECONDITION: _ClassVar[ErrorCode]
    ERROR_CODE_PROJECT_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_PROJECT_EXISTS: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_NAME: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_INPUT_SPEC: _ClassVar[ErrorCode]
    ERROR_CODE_UNSUPPORTED_TASK: _ClassVar[ErrorCode]
    ERROR_CODE_PROJECT_BUSY: _ClassVar[ErrorCode]
    ERROR_CODE_SAMPLE_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_LABEL: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_LABEL: _ClassVar[ErrorCode]
    ERROR_CODE_EMPTY_SAMPLE: _ClassVar[ErrorCode]
    ERROR_CODE_SAMPLE_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_UNSUPPORTED_MEDIA_TYPE: _ClassVar[ErrorCode]
    ERROR_CODE_CORRUPT_IMAGE: _ClassVar[ErrorCode]
    ERROR_CODE_IMAGE_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_CLIENT_ID: _ClassVar[ErrorCode]
    ERROR_CODE_INCOMPLETE_SAMPLE: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_PAGE: _ClassVar[ErrorCode]
    ERROR_CODE_SAMPLE_DAMAGED: _ClassVar[ErrorCode]
    ERROR_CODE_CLIENT_ID_CONFLICT: _ClassVar[ErrorCode]
    ERROR_CODE_JOB_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_HYPERPARAMETERS: _ClassVar[ErrorCode]
    ERROR_CODE_NOT_ENOUGH_DATA: _ClassVar[ErrorCode]
    ERROR_CODE_JOB_FINISHED: _ClassVar[ErrorCode]
    ERROR_CODE_MODEL_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_FORMAT_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_FORMAT: _ClassVar[ErrorCode]
    ERROR_CODE_NO_MODEL: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_RANGE: _ClassVar[ErrorCode]
    ERROR_CODE_BASE_WEIGHTS_UNAVAILABLE: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_RELEASE_POLICY: _ClassVar[ErrorCode]
    ERROR_CODE_NO_PREVIOUS_VERSION: _ClassVar[ErrorCode]
    ERROR_CODE_UNAUTHENTICATED: _ClassVar[ErrorCode]
    ERROR_CODE_PERMISSION_DENIED: _ClassVar[ErrorCode]
    ERROR_CODE_TOKEN_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_QUOTA_EXCEEDED: _ClassVar[ErrorCode]
    ERROR_CODE_RATE_LIMITED: _ClassVar[ErrorCode]
    ERROR_CODE_TOO_MANY_STREAMS: _ClassVar[ErrorCode]
    ERROR_CODE_DEADLINE_EXCEEDED: _ClassVar[ErrorCode]
    ERROR_CODE_BODY_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_HEADERS_TOO_LARGE: _ClassVar[ErrorCode]
    ERROR_CODE_REQUEST_TIMEOUT: _ClassVar[ErrorCode]
    ERROR_CODE_SERVER_BUSY: _ClassVar[ErrorCode]
    ERROR_CODE_STORAGE_FULL: _ClassVar[ErrorCode]
    ERROR_CODE_UPLOAD_OFFSET_MISMATCH: _ClassVar[ErrorCode]
    ERROR_CODE_CHECKSUM_MISMATCH: _ClassVar[ErrorCode]
    ERROR_CODE_UPLOAD_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_SESSION_NOT_FOUND: _ClassVar[ErrorCode]
    ERROR_CODE_NO_ACTIVE_SESSION: _ClassVar[ErrorCode]
    ERROR_CODE_SESSION_ACTIVE: _ClassVar[ErrorCode]
    ERROR_CODE_DEVICE_NOT_REGISTERED: _ClassVar[ErrorCode]
    ERROR_CODE_DEVICE_NOT_OWNED: _ClassVar[ErrorCode]
    ERROR_CODE_TOO_MANY_DEVICES: _ClassVar[ErrorCode]
    ERROR_CODE_FIELD_TOO_LONG: _ClassVar[ErrorCode]
    ERROR_CODE_WRONG_TASK_SPEC: _ClassVar[ErrorCode]
    ERROR_CODE_CORRUPT_AUDIO: _ClassVar[ErrorCode]
    ERROR_CODE_UNSUPPORTED_AUDIO_FORMAT: _ClassVar[ErrorCode]
    ERROR_CODE_AUDIO_TOO_LONG: _ClassVar[ErrorCode]
    ERROR_CODE_AUDIO_TOO_SHORT: _ClassVar[ErrorCode]
    ERROR_CODE_UNSUPPORTED_SAMPLE_RATE: _ClassVar[ErrorCode]
    ERROR_CODE_CORRUPT_SENSOR_DATA: _ClassVar[ErrorCode]
    ERROR_CODE_SENSOR_CHANNELS_MISMATCH: _ClassVar[ErrorCode]
    ERROR_CODE_SENSOR_MISSING_VALUE: _ClassVar[ErrorCode]
    ERROR_CODE_SENSOR_TOO_LONG: _ClassVar[ErrorCode]
    ERROR_CODE_SENSOR_TOO_SHORT: _ClassVar[ErrorCode]
    ERROR_CODE_INVALID_ANNOTATION: _ClassVar[ErrorCode]
    ERROR_CODE_BOX_OUT_OF_IMAGE: _ClassVar[ErrorCode]
    ERROR_CODE_BOX_DEGENERATE: _ClassVar[ErrorCode]
    ERROR_CODE_UNKNOWN_BOX_LABEL: _ClassVar[ErrorCode]
    ERROR_CODE_TOO_MANY_BOXES: _ClassVar[ErrorCode]
    ERROR_CODE_ANNOTATION_FORMAT: _ClassVar[ErrorCode]
TASK_TYPE_UNSPECIFIED: TaskType
TASK_TYPE_IMAGE_CLASSIFICATION: TaskType
TASK_TYPE_AUDIO_CLASSIFICATION: TaskType
TASK_TYPE_SENSOR_CLASSIFICATION: TaskType
TASK_TYPE_OBJECT_DETECTION: TaskType
LONG_CLIPS_UNSPECIFIED: LongClips
LONG_CLIPS_REJECT: LongClips
LONG_CLIPS_SPLIT: LongClips
SENSOR_FRAMING_UNSPECIFIED: SensorFraming
SENSOR_FRAMING_WINDOWS: SensorFraming
SENSOR_FRAMING_PAD: SensorFraming
COLOR_MODE_UNSPECIFIED: ColorMode
COLOR_MODE_RGB: ColorMode
COLOR_MODE_GRAYSCALE: ColorMode
NORMALIZATION_UNSPECIFIED: Normalization
NORMALIZATION_ZERO_ONE: Normalization
NORMALIZATION_MINUS_ONE_ONE: Normalization
NORMALIZATION_RAW: Normalization
MODEL_FORMAT_UNSPECIFIED: ModelFormat
MODEL_FORMAT_KERAS: ModelFormat
MODEL_FORMAT_FLOAT32: ModelFormat
MODEL_FORMAT_FLOAT16: ModelFormat
MODEL_FORMAT_DYNAMIC_INT8: ModelFormat
MODEL_FORMAT_INT8: ModelFormat
MODEL_FORMAT_FEATURE_EXTRACTOR: ModelFormat
MODEL_FORMAT_TRAIN_STEP: ModelFormat
MODEL_FORMAT_HEAD_INFERENCE: ModelFormat
MODEL_FORMAT_HEAD_SIGNATURES: ModelFormat
MODEL_FORMAT_HEAD_WEIGHTS: ModelFormat
ERROR_CODE_UNSPECIFIED: ErrorCode
ERROR_CODE_INTERNAL: ErrorCode
ERROR_CODE_INVALID_ARGUMENT: ErrorCode
ERROR_CODE_NOT_FOUND: ErrorCode
ERROR_CODE_ALREADY_EXISTS: ErrorCode
ERROR_CODE_FAILED_PRECONDITION: ErrorCode
ERROR_CODE_PROJECT_NOT_FOUND: ErrorCode
ERROR_CODE_PROJECT_EXISTS: ErrorCode
ERROR_CODE_INVALID_NAME: ErrorCode
ERROR_CODE_INVALID_INPUT_SPEC: ErrorCode
ERROR_CODE_UNSUPPORTED_TASK: ErrorCode
ERROR_CODE_PROJECT_BUSY: ErrorCode
ERROR_CODE_SAMPLE_NOT_FOUND: ErrorCode
ERROR_CODE_INVALID_LABEL: ErrorCode
ERROR_CODE_UNKNOWN_LABEL: ErrorCode
ERROR_CODE_EMPTY_SAMPLE: ErrorCode
ERROR_CODE_SAMPLE_TOO_LARGE: ErrorCode
ERROR_CODE_UNSUPPORTED_MEDIA_TYPE: ErrorCode
ERROR_CODE_CORRUPT_IMAGE: ErrorCode
ERROR_CODE_IMAGE_TOO_LARGE: ErrorCode
ERROR_CODE_INVALID_CLIENT_ID: ErrorCode
ERROR_CODE_INCOMPLETE_SAMPLE: ErrorCode
ERROR_CODE_INVALID_PAGE: ErrorCode
ERROR_CODE_SAMPLE_DAMAGED: ErrorCode
ERROR_CODE_CLIENT_ID_CONFLICT: ErrorCode
ERROR_CODE_JOB_NOT_FOUND: ErrorCode
ERROR_CODE_INVALID_HYPERPARAMETERS: ErrorCode
ERROR_CODE_NOT_ENOUGH_DATA: ErrorCode
ERROR_CODE_JOB_FINISHED: ErrorCode
ERROR_CODE_MODEL_NOT_FOUND: ErrorCode
ERROR_CODE_FORMAT_NOT_FOUND: ErrorCode
ERROR_CODE_INVALID_FORMAT: ErrorCode
ERROR_CODE_NO_MODEL: ErrorCode
ERROR_CODE_INVALID_RANGE: ErrorCode
ERROR_CODE_BASE_WEIGHTS_UNAVAILABLE: ErrorCode
ERROR_CODE_INVALID_RELEASE_POLICY: ErrorCode
ERROR_CODE_NO_PREVIOUS_VERSION: ErrorCode
ERROR_CODE_UNAUTHENTICATED: ErrorCode
ERROR_CODE_PERMISSION_DENIED: ErrorCode
ERROR_CODE_TOKEN_NOT_FOUND: ErrorCode
ERROR_CODE_QUOTA_EXCEEDED: ErrorCode
ERROR_CODE_RATE_LIMITED: ErrorCode
ERROR_CODE_TOO_MANY_STREAMS: ErrorCode
ERROR_CODE_DEADLINE_EXCEEDED: ErrorCode
ERROR_CODE_BODY_TOO_LARGE: ErrorCode
ERROR_CODE_HEADERS_TOO_LARGE: ErrorCode
ERROR_CODE_REQUEST_TIMEOUT: ErrorCode
ERROR_CODE_SERVER_BUSY: ErrorCode
ERROR_CODE_STORAGE_FULL: ErrorCode
ERROR_CODE_UPLOAD_OFFSET_MISMATCH: ErrorCode
ERROR_CODE_CHECKSUM_MISMATCH: ErrorCode
ERROR_CODE_UPLOAD_NOT_FOUND: ErrorCode
ERROR_CODE_SESSION_NOT_FOUND: ErrorCode
ERROR_CODE_NO_ACTIVE_SESSION: ErrorCode
ERROR_CODE_SESSION_ACTIVE: ErrorCode
ERROR_CODE_DEVICE_NOT_REGISTERED: ErrorCode
ERROR_CODE_DEVICE_NOT_OWNED: ErrorCode
ERROR_CODE_TOO_MANY_DEVICES: ErrorCode
ERROR_CODE_FIELD_TOO_LONG: ErrorCode
ERROR_CODE_WRONG_TASK_SPEC: ErrorCode
ERROR_CODE_CORRUPT_AUDIO: ErrorCode
ERROR_CODE_UNSUPPORTED_AUDIO_FORMAT: ErrorCode
ERROR_CODE_AUDIO_TOO_LONG: ErrorCode
ERROR_CODE_AUDIO_TOO_SHORT: ErrorCode
ERROR_CODE_UNSUPPORTED_SAMPLE_RATE: ErrorCode
ERROR_CODE_CORRUPT_SENSOR_DATA: ErrorCode
ERROR_CODE_SENSOR_CHANNELS_MISMATCH: ErrorCode
ERROR_CODE_SENSOR_MISSING_VALUE: ErrorCode
ERROR_CODE_SENSOR_TOO_LONG: ErrorCode
ERROR_CODE_SENSOR_TOO_SHORT: ErrorCode
ERROR_CODE_INVALID_ANNOTATION: ErrorCode
ERROR_CODE_BOX_OUT_OF_IMAGE: ErrorCode
ERROR_CODE_BOX_DEGENERATE: ErrorCode
ERROR_CODE_UNKNOWN_BOX_LABEL: ErrorCode
ERROR_CODE_TOO_MANY_BOXES: ErrorCode
ERROR_CODE_ANNOTATION_FORMAT: ErrorCode

class AudioSpec(_message.Message):
    __slots__ = ("sample_rate_hz", "clip_ms", "long_clips", "clip_samples")
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    CLIP_MS_FIELD_NUMBER: _ClassVar[int]
    LONG_CLIPS_FIELD_NUMBER: _ClassVar[int]
    CLIP_SAMPLES_FIELD_NUMBER: _ClassVar[int]
    sample_rate_hz: int
    clip_ms: int
    long_clips: LongClips
    clip_samples: int
    def __init__(self, sample_rate_hz: _Optional[int] = ..., clip_ms: _Optional[int] = ..., long_clips: _Optional[_Union[LongClips, str]] = ..., clip_samples: _Optional[int] = ...) -> None: ...

class SensorSpec(_message.Message):
    __slots__ = ("channels", "rate_hz", "window", "stride", "framing")
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    STRIDE_FIELD_NUMBER: _ClassVar[int]
    FRAMING_FIELD_NUMBER: _ClassVar[int]
    channels: _containers.RepeatedScalarFieldContainer[str]
    rate_hz: float
    window: int
    stride: int
    framing: SensorFraming
    def __init__(self, channels: _Optional[_Iterable[str]] = ..., rate_hz: _Optional[float] = ..., window: _Optional[int] = ..., stride: _Optional[int] = ..., framing: _Optional[_Union[SensorFraming, str]] = ...) -> None: ...

class DetectionSpec(_message.Message):
    __slots__ = ("max_detections", "score_threshold", "iou_threshold")
    MAX_DETECTIONS_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    IOU_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    max_detections: int
    score_threshold: float
    iou_threshold: float
    def __init__(self, max_detections: _Optional[int] = ..., score_threshold: _Optional[float] = ..., iou_threshold: _Optional[float] = ...) -> None: ...

class BoundingBox(_message.Message):
    __slots__ = ("label", "x_min", "y_min", "x_max", "y_max")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    X_MIN_FIELD_NUMBER: _ClassVar[int]
    Y_MIN_FIELD_NUMBER: _ClassVar[int]
    X_MAX_FIELD_NUMBER: _ClassVar[int]
    Y_MAX_FIELD_NUMBER: _ClassVar[int]
    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    def __init__(self, label: _Optional[str] = ..., x_min: _Optional[float] = ..., y_min: _Optional[float] = ..., x_max: _Optional[float] = ..., y_max: _Optional[float] = ...) -> None: ...

class InputSpec(_message.Message):
    __slots__ = ("width", "height", "color_mode", "normalization", "channels", "scale", "offset", "audio", "sensor", "detection")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    COLOR_MODE_FIELD_NUMBER: _ClassVar[int]
    NORMALIZATION_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    SENSOR_FIELD_NUMBER: _ClassVar[int]
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    color_mode: ColorMode
    normalization: Normalization
    channels: int
    scale: float
    offset: float
    audio: AudioSpec
    sensor: SensorSpec
    detection: DetectionSpec
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., color_mode: _Optional[_Union[ColorMode, str]] = ..., normalization: _Optional[_Union[Normalization, str]] = ..., channels: _Optional[int] = ..., scale: _Optional[float] = ..., offset: _Optional[float] = ..., audio: _Optional[_Union[AudioSpec, _Mapping]] = ..., sensor: _Optional[_Union[SensorSpec, _Mapping]] = ..., detection: _Optional[_Union[DetectionSpec, _Mapping]] = ...) -> None: ...

class FormatAccuracy(_message.Message):
    __slots__ = ("format", "accuracy")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    ACCURACY_FIELD_NUMBER: _ClassVar[int]
    format: ModelFormat
    accuracy: float
    def __init__(self, format: _Optional[_Union[ModelFormat, str]] = ..., accuracy: _Optional[float] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("format", "size", "sha256")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    format: ModelFormat
    size: int
    sha256: str
    def __init__(self, format: _Optional[_Union[ModelFormat, str]] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...
