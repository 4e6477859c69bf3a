"""Server reflection under both names: ``grpc.reflection.v1`` and ``grpc.reflection.v1alpha``.

grpcio-reflection implements only ``v1alpha``, while current tools (grpcurl, Postman, grpc-js's
reflection clients) ask ``v1`` first. The two protocols are the same messages under another
package name, so the same servicer answers both: its replies are serialised by the v1alpha
classes, and the bytes are what a v1 client expects. The v1 file descriptor is made from the
v1alpha one (package renamed) and added to the default pool, so ``v1`` can be described too.

Reflection needs a valid token like every mobiletrain call (see ``interceptor.CallInterceptor``);
only the health service is open.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection as reflection_v1alpha
from grpc_reflection.v1alpha import reflection_pb2 as v1alpha_pb2

V1ALPHA_SERVICE_NAME: str = reflection_v1alpha.SERVICE_NAME
"""``grpc.reflection.v1alpha.ServerReflection``."""

V1_PACKAGE = "grpc.reflection.v1"
V1_FILE = "grpc/reflection/v1/reflection.proto"
V1_SERVICE_NAME = f"{V1_PACKAGE}.ServerReflection"
"""``grpc.reflection.v1.ServerReflection``."""

REFLECTION_PREFIX = "/grpc.reflection."
"""Full method names of both reflection services."""


def v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The ``grpc.reflection.v1`` file: v1alpha's messages and service under the v1 package."""
    proto = descriptor_pb2.FileDescriptorProto()
    v1alpha_pb2.DESCRIPTOR.CopyToProto(proto)
    old = "." + proto.package + "."
    proto.name = V1_FILE
    proto.package = V1_PACKAGE
    new = "." + V1_PACKAGE + "."
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(old):
                field.type_name = new + field.type_name[len(old) :]
    for service in proto.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old) :]
            method.output_type = new + method.output_type[len(old) :]
    return proto


def _register_v1(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindFileByName(V1_FILE)  # a newer grpcio-reflection may have added it already
    except KeyError:
        pool.Add(v1_file_descriptor())


def enable_reflection(service_names: Iterable[str], server: grpc.aio.Server) -> None:
    """Serve reflection v1 and v1alpha on ``server``, listing ``service_names`` and both
    reflection services."""
    _register_v1(descriptor_pool.Default())
    names = (*service_names, V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME)
    servicer: Any = reflection_v1alpha.aio.ReflectionServicer(names)  # type: ignore[attr-defined]
    reflection_v1alpha.enable_server_reflection(names, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=v1alpha_pb2.ServerReflectionRequest.FromString,
        response_serializer=v1alpha_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE_NAME, {"ServerReflectionInfo": handler}),)
    )
