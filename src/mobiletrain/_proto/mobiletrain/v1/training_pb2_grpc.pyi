# Typing stub written by scripts/gen_proto.py for the protoc-generated module. DO NOT EDIT!
from typing import Any

import grpc
import grpc.aio

import mobiletrain._proto.mobiletrain.v1.training_pb2 as _training_pb2

GRPC_GENERATED_VERSION: str
GRPC_VERSION: str


class TrainingServiceStub:
    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None: ...
    StartJob: Any
    GetJob: Any
    ListJobs: Any
    CancelJob: Any
    WatchJob: Any


class TrainingServiceServicer:
    def StartJob(self, request: _training_pb2.StartJobRequest, context: Any) -> Any: ...
    def GetJob(self, request: _training_pb2.GetJobRequest, context: Any) -> Any: ...
    def ListJobs(self, request: _training_pb2.ListJobsRequest, context: Any) -> Any: ...
    def CancelJob(self, request: _training_pb2.CancelJobRequest, context: Any) -> Any: ...
    def WatchJob(self, request: _training_pb2.WatchJobRequest, context: Any) -> Any: ...


def add_TrainingServiceServicer_to_server(
    servicer: TrainingServiceServicer, server: grpc.Server | grpc.aio.Server
) -> None: ...


class TrainingService:
    @staticmethod
    def StartJob(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def GetJob(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def ListJobs(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def CancelJob(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def WatchJob(*args: Any, **kwargs: Any) -> Any: ...
