# Typing stub written by scripts/gen_proto.py for the protoc-generated module. DO NOT EDIT!
from typing import Any

import grpc
import grpc.aio

import mobiletrain._proto.mobiletrain.v1.projects_pb2 as _projects_pb2

GRPC_GENERATED_VERSION: str
GRPC_VERSION: str


class ProjectServiceStub:
    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None: ...
    CreateProject: Any
    GetProject: Any
    ListProjects: Any
    DeleteProject: Any


class ProjectServiceServicer:
    def CreateProject(self, request: _projects_pb2.CreateProjectRequest, context: Any) -> Any: ...
    def GetProject(self, request: _projects_pb2.GetProjectRequest, context: Any) -> Any: ...
    def ListProjects(self, request: _projects_pb2.ListProjectsRequest, context: Any) -> Any: ...
    def DeleteProject(self, request: _projects_pb2.DeleteProjectRequest, context: Any) -> Any: ...


def add_ProjectServiceServicer_to_server(
    servicer: ProjectServiceServicer, server: grpc.Server | grpc.aio.Server
) -> None: ...


class ProjectService:
    @staticmethod
    def CreateProject(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def GetProject(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def ListProjects(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def DeleteProject(*args: Any, **kwargs: Any) -> Any: ...
