"""Reflection v1 and v1alpha behind the token check, open health checks, and the shipped
health/reflection .proto files describing exactly what the server serves."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2
from grpc_tools import protoc

from mobiletrain.api.grpc.errors import ERROR_CODE_METADATA_KEY
from mobiletrain.api.grpc.reflection import (
    V1_SERVICE_NAME,
    V1ALPHA_SERVICE_NAME,
    v1_file_descriptor,
)
from mobiletrain.api.grpc.server import SERVICE_NAMES
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

ROOT = Path(__file__).resolve().parents[3]
Request = reflection_pb2.ServerReflectionRequest
Response = reflection_pb2.ServerReflectionResponse


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    data_dir = tmp_path_factory.mktemp("reflection") / "data"
    running = start_server(Settings(data_dir=data_dir, grpc_port=0, http_port=0, max_workers=0))
    try:
        yield running, (data_dir / "admin-token").read_text().strip()
    finally:
        running.stop()


def reflect(
    channel: grpc.Channel, service: str, requests: list[Request], token: str | None
) -> list[Response]:
    """One reflection stream on ``service`` (v1 or v1alpha: the messages are the same)."""
    call = channel.stream_stream(
        f"/{service}/ServerReflectionInfo",
        request_serializer=Request.SerializeToString,
        response_deserializer=Response.FromString,
    )
    metadata = (("authorization", f"Bearer {token}"),) if token else None
    return list(call(iter(requests), metadata=metadata, timeout=10))


@pytest.mark.parametrize("service", [V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME])
def test_reflection_v1_and_v1alpha_list_and_describe(
    server: tuple[RunningServer, str], service: str
) -> None:
    running, token = server
    with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        listed, described = reflect(
            channel,
            service,
            [
                Request(list_services=""),
                Request(file_containing_symbol="grpc.reflection.v1.ServerReflection"),
            ],
            token,
        )
    names = {s.name for s in listed.list_services_response.service}
    assert set(SERVICE_NAMES) | {
        "grpc.health.v1.Health",
        V1_SERVICE_NAME,
        V1ALPHA_SERVICE_NAME,
    } == (names)
    files = described.file_descriptor_response.file_descriptor_proto
    proto = descriptor_pb2.FileDescriptorProto.FromString(files[0])
    assert (proto.name, proto.package) == (
        "grpc/reflection/v1/reflection.proto",
        "grpc.reflection.v1",
    )


@pytest.mark.parametrize("service", [V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME])
def test_reflection_needs_a_token_and_health_does_not(
    server: tuple[RunningServer, str], service: str
) -> None:
    running, _ = server
    with grpc.insecure_channel(f"127.0.0.1:{running.grpc_port}") as channel:
        for token in (None, "mt_not_a_token"):
            with pytest.raises(grpc.RpcError) as info:
                reflect(channel, service, [Request(list_services="")], token)
            err: grpc.Call = info.value  # type: ignore[assignment]
            assert err.code() is grpc.StatusCode.UNAUTHENTICATED
            assert dict(err.trailing_metadata() or ())[ERROR_CODE_METADATA_KEY] == "60"
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        # The shipped health.proto has List; grpcio's servicer does not implement it (README).
        with pytest.raises(grpc.RpcError) as listed:
            health.List(health_pb2.HealthListRequest(), timeout=10)
        assert listed.value.code() is grpc.StatusCode.UNIMPLEMENTED  # type: ignore[attr-defined]


def _shape(proto: descriptor_pb2.FileDescriptorProto) -> list[bytes]:
    """Messages, enums and services of a file, without json names (protoc fills those in)."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.message_type.extend(proto.message_type)
    copy.enum_type.extend(proto.enum_type)
    copy.service.extend(proto.service)
    for message in copy.message_type:
        for field in message.field:
            field.ClearField("json_name")
        for nested in message.nested_type:
            for field in nested.field:
                field.ClearField("json_name")
    return [
        part.SerializeToString(deterministic=True)
        for part in (*copy.message_type, *copy.enum_type, *copy.service)
    ]


def test_the_shipped_health_and_reflection_protos_are_what_the_server_serves() -> None:
    served = descriptor_pb2.FileDescriptorProto()
    health_pb2.DESCRIPTOR.CopyToProto(served)
    expected = {
        "grpc/health/v1/health.proto": served,
        "grpc/reflection/v1/reflection.proto": v1_file_descriptor(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "set.pb"
        assert (
            protoc.main(
                [
                    "protoc",
                    f"-I{ROOT / 'proto'}",
                    f"--descriptor_set_out={out}",
                    *(str(ROOT / "proto" / name) for name in expected),
                ]
            )
            == 0
        )
        shipped = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    assert sorted(f.name for f in shipped.file) == sorted(expected)
    for file in shipped.file:
        assert _shape(file) == _shape(expected[file.name]), file.name
