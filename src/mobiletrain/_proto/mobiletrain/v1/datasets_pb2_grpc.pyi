# Typing stub written by scripts/gen_proto.py for the protoc-generated module. DO NOT EDIT!
from typing import Any

import grpc
import grpc.aio

import mobiletrain._proto.mobiletrain.v1.datasets_pb2 as _datasets_pb2

GRPC_GENERATED_VERSION: str
GRPC_VERSION: str


class DatasetServiceStub:
    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None: ...
    UploadSamples: Any
    ListSamples: Any
    GetSampleData: Any
    DeleteSample: Any
    GetClassCounts: Any
    UpdateSampleBoxes: Any
    GetUploadOffset: Any


class DatasetServiceServicer:
    # request_iterator yields _datasets_pb2.UploadSamplesRequest
    def UploadSamples(self, request_iterator: Any, context: Any) -> Any: ...
    def ListSamples(self, request: _datasets_pb2.ListSamplesRequest, context: Any) -> Any: ...
    def GetSampleData(self, request: _datasets_pb2.GetSampleDataRequest, context: Any) -> Any: ...
    def DeleteSample(self, request: _datasets_pb2.DeleteSampleRequest, context: Any) -> Any: ...
    def GetClassCounts(
        self, request: _datasets_pb2.GetClassCountsRequest, context: Any
    ) -> Any: ...
    def UpdateSampleBoxes(
        self, request: _datasets_pb2.UpdateSampleBoxesRequest, context: Any
    ) -> Any: ...
    def GetUploadOffset(
        self, request: _datasets_pb2.GetUploadOffsetRequest, context: Any
    ) -> Any: ...


def add_DatasetServiceServicer_to_server(
    servicer: DatasetServiceServicer, server: grpc.Server | grpc.aio.Server
) -> None: ...


class DatasetService:
    @staticmethod
    def UploadSamples(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def ListSamples(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def GetSampleData(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def DeleteSample(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def GetClassCounts(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def UpdateSampleBoxes(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def GetUploadOffset(*args: Any, **kwargs: Any) -> Any: ...
