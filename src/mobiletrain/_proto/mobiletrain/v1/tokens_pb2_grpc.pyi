# Typing stub written by scripts/gen_proto.py for the protoc-generated module. DO NOT EDIT!
from typing import Any

import grpc
import grpc.aio

import mobiletrain._proto.mobiletrain.v1.tokens_pb2 as _tokens_pb2

GRPC_GENERATED_VERSION: str
GRPC_VERSION: str


class TokenServiceStub:
    def __init__(self, channel: grpc.Channel | grpc.aio.Channel) -> None: ...
    CreateToken: Any
    ListTokens: Any
    RevokeToken: Any


class TokenServiceServicer:
    def CreateToken(self, request: _tokens_pb2.CreateTokenRequest, context: Any) -> Any: ...
    def ListTokens(self, request: _tokens_pb2.ListTokensRequest, context: Any) -> Any: ...
    def RevokeToken(self, request: _tokens_pb2.RevokeTokenRequest, context: Any) -> Any: ...


def add_TokenServiceServicer_to_server(
    servicer: TokenServiceServicer, server: grpc.Server | grpc.aio.Server
) -> None: ...


class TokenService:
    @staticmethod
    def CreateToken(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def ListTokens(*args: Any, **kwargs: Any) -> Any: ...
    @staticmethod
    def RevokeToken(*args: Any, **kwargs: Any) -> Any: ...
