import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from mobiletrain._proto.mobiletrain.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DeleteProjectRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class DeleteProjectResponse(_message.Message):
    __slots__ = ("project", "samples_deleted")
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_DELETED_FIELD_NUMBER: _ClassVar[int]
    project: Project
    samples_deleted: int
    def __init__(self, project: _Optional[_Union[Project, _Mapping]] = ..., samples_deleted: _Optional[int] = ...) -> None: ...

class Project(_message.Message):
    __slots__ = ("id", "name", "task", "labels", "labels_fixed", "input_spec", "created_at", "promoted_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIXED_FIELD_NUMBER: _ClassVar[int]
    INPUT_SPEC_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    PROMOTED_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    task: _common_pb2.TaskType
    labels: _containers.RepeatedScalarFieldContainer[str]
    labels_fixed: bool
    input_spec: _common_pb2.InputSpec
    created_at: _timestamp_pb2.Timestamp
    promoted_version: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., labels: _Optional[_Iterable[str]] = ..., labels_fixed: _Optional[bool] = ..., input_spec: _Optional[_Union[_common_pb2.InputSpec, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., promoted_version: _Optional[int] = ...) -> None: ...

class CreateProjectRequest(_message.Message):
    __slots__ = ("name", "task", "labels", "input_spec")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    INPUT_SPEC_FIELD_NUMBER: _ClassVar[int]
    name: str
    task: _common_pb2.TaskType
    labels: _containers.RepeatedScalarFieldContainer[str]
    input_spec: _common_pb2.InputSpec
    def __init__(self, name: _Optional[str] = ..., task: _Optional[_Union[_common_pb2.TaskType, str]] = ..., labels: _Optional[_Iterable[str]] = ..., input_spec: _Optional[_Union[_common_pb2.InputSpec, _Mapping]] = ...) -> None: ...

class GetProjectRequest(_message.Message):
    __slots__ = ("project",)
    PROJECT_FIELD_NUMBER: _ClassVar[int]
    project: str
    def __init__(self, project: _Optional[str] = ...) -> None: ...

class ListProjectsRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListProjectsResponse(_message.Message):
    __slots__ = ("projects", "next_page_token")
    PROJECTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    projects: _containers.RepeatedCompositeFieldContainer[Project]
    next_page_token: str
    def __init__(self, projects: _Optional[_Iterable[_Union[Project, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...
