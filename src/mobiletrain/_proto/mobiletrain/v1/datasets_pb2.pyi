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

class SampleStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SAMPLE_STATUS_UNSPECIFIED: _ClassVar[SampleStatus]
    SAMPLE_STATUS_ACCEPTED: _ClassVar[SampleStatus]
    SAMPLE_STATUS_DUPLICATE: _ClassVar[SampleStatus]
    SAMPLE_STATUS_REJECTED: _ClassVar[SampleStatus]
SAMPLE_STATUS_UNSPECIFIED: SampleStatus
SAMPLE_STATUS_ACCEPTED: SampleStatus
SAMPLE_STATUS_DUPLICATE: SampleStatus
SAMPLE_STATUS_REJECTED: SampleStatus

class Sample(_message.Message):
    __slots__ = ("id", "project_id", "client_id", "label", "sha256", "size", "media_type", "width", "height", "created_at", "damaged", "boxes", "detection")
    ID_FIELD_NUMBER: _ClassVar[int]
    PROJECT_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DAMAGED_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    DETECTION_FIELD_NUMBER: _ClassVar[int]
    id: str
    project_id: str
    client_id: str
    label: str
    sha256: str
    size: int
    media_type: str
    width: int
    height: int
    created_at: _timestamp_pb2.Timestamp
    damaged: bool
    boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.BoundingBox]
    detection: bool
    def __init__(self, id: _Optional[str] = ..., project_id: _Optional[str] = ..., client_id: _Optional[str] = ..., label: _Optional[str] = ..., sha256: _Optional[str] = ..., size: _Optional[int] = ..., media_type: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., damaged: _Optional[bool] = ..., boxes: _Optional[_Iterable[_Union[_common_pb2.BoundingBox, _Mapping]]] = ..., detection: _Optional[bool] = ...) -> None: ...

class InlineSample(_message.Message):
    __slots__ = ("client_id", "label", "data", "sha256", "media_type", "boxes")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    label: str
    data: bytes
    sha256: str
    media_type: str
    boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.BoundingBox]
    def __init__(self, client_id: _Optional[str] = ..., label: _Optional[str] = ..., data: _Optional[bytes] = ..., sha256: _Optional[str] = ..., media_type: _Optional[str] = ..., boxes: _Optional[_Iterable[_Union[_common_pb2.BoundingBox, _Mapping]]] = ...) -> None: ...

class InlineSampleBatch(_message.Message):
    __slots__ = ("samples",)
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[InlineSample]
    def __init__(self, samples: _Optional[_Iterable[_Union[InlineSample, _Mapping]]] = ...) -> None: ...

class SampleHeader(_message.Message):
    __slots__ = ("client_id", "label", "size", "sha256", "media_type", "boxes")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    label: str
    size: int
    sha256: str
    media_type: str
    boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.BoundingBox]
    def __init__(self, client_id: _Optional[str] = ..., label: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ..., media_type: _Optional[str] = ..., boxes: _Optional[_Iterable[_Union[_common_pb2.BoundingBox, _Mapping]]] = ...) -> None: ...

class SampleChunk(_message.Message):
    __slots__ = ("client_id", "offset", "data")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    offset: int
    data: bytes
    def __init__(self, client_id: _Optional[str] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadSamplesRequest(_message.Message):
    __slots__ = ("project", "inline_batch", "header", "chunk")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    INLINE_BATCH_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    project: str
    inline_batch: InlineSampleBatch
    header: SampleHeader
    chunk: SampleChunk
    def __init__(self, project: _Optional[str] = ..., inline_batch: _Optional[_Union[InlineSampleBatch, _Mapping]] = ..., header: _Optional[_Union[SampleHeader, _Mapping]] = ..., chunk: _Optional[_Union[SampleChunk, _Mapping]] = ...) -> None: ...

class SampleResult(_message.Message):
    __slots__ = ("client_id", "status", "sample_id", "error_code", "reason")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    status: SampleStatus
    sample_id: str
    error_code: int
    reason: str
    def __init__(self, client_id: _Optional[str] = ..., status: _Optional[_Union[SampleStatus, str]] = ..., sample_id: _Optional[str] = ..., error_code: _Optional[int] = ..., reason: _Optional[str] = ...) -> None: ...

class UploadSamplesResponse(_message.Message):
    __slots__ = ("results", "accepted", "duplicates", "rejected")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    DUPLICATES_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SampleResult]
    accepted: int
    duplicates: int
    rejected: int
    def __init__(self, results: _Optional[_Iterable[_Union[SampleResult, _Mapping]]] = ..., accepted: _Optional[int] = ..., duplicates: _Optional[int] = ..., rejected: _Optional[int] = ...) -> None: ...

class ListSamplesRequest(_message.Message):
    __slots__ = ("project", "label", "page_size", "page_token")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    project: str
    label: str
    page_size: int
    page_token: str
    def __init__(self, project: _Optional[str] = ..., label: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListSamplesResponse(_message.Message):
    __slots__ = ("samples", "next_page_token")
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    samples: _containers.RepeatedCompositeFieldContainer[Sample]
    next_page_token: str
    def __init__(self, samples: _Optional[_Iterable[_Union[Sample, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetSampleDataRequest(_message.Message):
    __slots__ = ("project", "sample_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    sample_id: str
    def __init__(self, project: _Optional[str] = ..., sample_id: _Optional[str] = ...) -> None: ...

class GetSampleDataResponse(_message.Message):
    __slots__ = ("sample", "offset", "data")
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    offset: int
    data: bytes
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ..., offset: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class DeleteSampleRequest(_message.Message):
    __slots__ = ("project", "sample_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    sample_id: str
    def __init__(self, project: _Optional[str] = ..., sample_id: _Optional[str] = ...) -> None: ...

class DeleteSampleResponse(_message.Message):
    __slots__ = ("sample",)
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    sample: Sample
    def __init__(self, sample: _Optional[_Union[Sample, _Mapping]] = ...) -> None: ...

class GetClassCountsRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class ClassCount(_message.Message):
    __slots__ = ("label", "count")
    LABEL_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    label: str
    count: int
    def __init__(self, label: _Optional[str] = ..., count: _Optional[int] = ...) -> None: ...

class GetClassCountsResponse(_message.Message):
    __slots__ = ("counts", "total", "box_counts", "images_without_boxes")
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    BOX_COUNTS_FIELD_NUMBER: _ClassVar[int]
    IMAGES_WITHOUT_BOXES_FIELD_NUMBER: _ClassVar[int]
    counts: _containers.RepeatedCompositeFieldContainer[ClassCount]
    total: int
    box_counts: _containers.RepeatedCompositeFieldContainer[ClassCount]
    images_without_boxes: int
    def __init__(self, counts: _Optional[_Iterable[_Union[ClassCount, _Mapping]]] = ..., total: _Optional[int] = ..., box_counts: _Optional[_Iterable[_Union[ClassCount, _Mapping]]] = ..., images_without_boxes: _Optional[int] = ...) -> None: ...

class UpdateSampleBoxesRequest(_message.Message):
    __slots__ = ("project", "sample_id", "boxes")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    BOXES_FIELD_NUMBER: _ClassVar[int]
    project: str
    sample_id: str
    boxes: _containers.RepeatedCompositeFieldContainer[_common_pb2.BoundingBox]
    def __init__(self, project: _Optional[str] = ..., sample_id: _Optional[str] = ..., boxes: _Optional[_Iterable[_Union[_common_pb2.BoundingBox, _Mapping]]] = ...) -> None: ...

class GetUploadOffsetRequest(_message.Message):
    __slots__ = ("project", "client_id")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    project: str
    client_id: str
    def __init__(self, project: _Optional[str] = ..., client_id: _Optional[str] = ...) -> None: ...

class UploadOffset(_message.Message):
    __slots__ = ("client_id", "offset", "size", "stored", "sample_id")
    CLIENT_ID_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    STORED_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_ID_FIELD_NUMBER: _ClassVar[int]
    client_id: str
    offset: int
    size: int
    stored: bool
    sample_id: str
    def __init__(self, client_id: _Optional[str] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., stored: _Optional[bool] = ..., sample_id: _Optional[str] = ...) -> None: ...
