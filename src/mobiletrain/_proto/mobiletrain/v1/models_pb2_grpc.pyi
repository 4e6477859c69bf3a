# Typing stub written by scripts/gen_proto.py for the protoc-generated module. DO NOT EDIT!
from typing import Any

import grpc
import grpc.aio

import mobiletrain._proto.mobiletrain.v1.models_pb2 as _models_pb2

GRPC_GENERATED_VERSION: str
GRPC_VERSION: str


class ModelServiceStub:
    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None: ...
    ListModelVersions: Any
    GetManifest: Any
    DownloadModel: Any
    CheckForUpdate: Any
    PromoteVersion: Any
    Predict: Any


class ModelServiceServicer:
    def ListModelVersions(
        self, request: _models_pb2.ListModelVersionsRequest, context: Any
    ) -> Any: ...
    def GetManifest(self, request: _models_pb2.GetManifestRequest, context: Any) -> Any: ...
    def DownloadModel(self, request: _models_pb2.DownloadModelRequest, context: Any) -> Any: ...
    def CheckForUpdate(self, request: _models_pb2.CheckForUpdateRequest, context: Any) -> Any: ...
    def PromoteVersion(self, request: _models_pb2.PromoteVersionRequest, context: Any) -> Any: ...
    def Predict(self, request: _models_pb2.PredictRequest, context: Any) -> Any: ...


def add_ModelServiceServicer_to_server(
    servicer: ModelServiceServicer, server: grpc.Server | grpc.aio.Server
) -> None: ...


class ModelService:
    @staticmethod
    def ListModelVersions(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def GetManifest(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def DownloadModel(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def CheckForUpdate(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def PromoteVersion(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def Predict(*args: Any, **kwargs: Any) -> Any: ...
