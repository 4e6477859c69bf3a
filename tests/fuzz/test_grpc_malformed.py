"""Malformed protobuf bytes against every gRPC method of a real server, with a valid token.

Each method (enumerated from the service descriptors, like ``tests/unit/api/test_auth.py``)
gets raw request bytes: random bytes, truncations of a valid message, every field with a wrong
wire type, length prefixes far past the end of the message, over-long varints, invalid UTF-8
in string fields, enum numbers no version of the contract has, and invalid field numbers.

Whatever a payload decodes to, the answer must be OK or a clean status carrying the trailer
``mobiletrain-error-code``; never INTERNAL or UNKNOWN (grpcio's own answer to undecodable bytes
is INTERNAL "Exception deserializing request!": the error interceptor turns it into
INVALID_ARGUMENT, code 2). After each method the server must still answer a health check and
GetProject. The payloads are derived from a fixed seed, so every run sends the same bytes.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc

from mobiletrain._proto.mobiletrain.v1 import projects_pb2, projects_pb2_grpc
from mobiletrain.api.grpc.server import SERVICE_NAMES
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.timeout(300)

SEED = 1234
PROJECT = "fuzz"
ERROR_CODE = "mobiletrain-error-code"
BAD_STATUSES = (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)

# Wire types of protobuf's encoding.
VARINT, I64, LEN, I32 = 0, 1, 2, 5


@dataclass(frozen=True)
class Method:
    name: str  # "/mobiletrain.v1.ProjectService/GetProject"
    request: Descriptor
    client_streaming: bool
    server_streaming: bool


def _methods() -> list[Method]:
    import mobiletrain.api.grpc.server  # noqa: F401 - registers every file descriptor

    pool = descriptor_pool.Default()
    out = []
    for service_name in SERVICE_NAMES:
        for m in pool.FindServiceByName(service_name).methods:
            name = f"/{service_name}/{m.name}"
            out.append(Method(name, m.input_type, m.client_streaming, m.server_streaming))
    return out


METHODS = _methods()


# --- payloads ---------------------------------------------------------------------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return varint((number << 3) | wire_type)


LENGTH_DELIMITED = (
    FieldDescriptor.TYPE_STRING,
    FieldDescriptor.TYPE_BYTES,
    FieldDescriptor.TYPE_MESSAGE,
)


def _wire_type(field: FieldDescriptor) -> int:
    """The wire type a proto3 encoder uses (repeated numbers are packed: length-delimited)."""
    if field.type in LENGTH_DELIMITED or field.is_repeated:
        return LEN
    if field.type in (
        FieldDescriptor.TYPE_DOUBLE,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    ):
        return I64
    if field.type in (
        FieldDescriptor.TYPE_FLOAT,
        FieldDescriptor.TYPE_FIXED32,
        FieldDescriptor.TYPE_SFIXED32,
    ):
        return I32
    return VARINT


def _fill(message: Message, depth: int = 0) -> Message:
    """Set every field (the first of each oneof) to a plausible non-default value."""
    seen_oneofs: set[str] = set()
    for field in message.DESCRIPTOR.fields:
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in seen_oneofs:
                continue
            seen_oneofs.add(oneof.name)
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            message_type = field.message_type
            if depth >= 3 or message_type is None or message_type.GetOptions().map_entry:
                continue
            target = getattr(message, field.name)
            child = target.add() if field.is_repeated else target
            _fill(child, depth + 1)
            continue
        if field.type == FieldDescriptor.TYPE_STRING:
            value: Any = PROJECT
        elif field.type == FieldDescriptor.TYPE_BYTES:
            value = b"\x89PNG\r\n\x1a\n not really"
        elif field.type == FieldDescriptor.TYPE_BOOL:
            value = True
        elif field.type == FieldDescriptor.TYPE_ENUM:
            values = field.enum_type.values if field.enum_type is not None else []
            numbers = [v.number for v in values if v.number]
            value = numbers[0] if numbers else 0
        elif field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
            value = 0.5
        else:
            value = 3
        if field.is_repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)
    return message


def payloads(method: Method, rng: random.Random) -> list[tuple[str, bytes]]:
    """(kind, request bytes) for one method."""
    cls = GetMessageClass(method.request)
    valid = _fill(cls()).SerializeToString()
    out: list[tuple[str, bytes]] = [("valid", valid), ("empty", b"")]
    for size in (1, 2, 7, 64, 1024):
        out.append(("random", rng.randbytes(size)))
    cuts = sorted({1, len(valid) // 3, len(valid) // 2, len(valid) - 1} - {0, len(valid)})
    out += [("truncated", valid[:cut]) for cut in cuts if 0 < cut < len(valid)]
    for field in method.request.fields:
        right = _wire_type(field)
        for wrong in (VARINT, I64, LEN, I32):
            if wrong == right:
                continue
            body = {VARINT: varint(1), I64: b"\x01" * 8, LEN: varint(3) + b"abc", I32: b"\x01" * 4}
            out.append(("wrong-type", tag(field.number, wrong) + body[wrong]))
        # A wire type of right kind, cut short.
        out.append(("short-value", tag(field.number, I64) + b"\x01\x02"))
        if right == LEN:
            for length in (2**31, 2**63, 2**64 - 1):
                out.append(("huge-length", tag(field.number, LEN) + varint(length) + b"xy"))
        if field.type == FieldDescriptor.TYPE_STRING:
            out.append(("bad-utf8", tag(field.number, LEN) + varint(3) + b"\xc3\x28\xff"))
        if field.type == FieldDescriptor.TYPE_ENUM and not field.is_repeated:
            out.append(("unknown-enum", valid + tag(field.number, VARINT) + varint(999)))
            out.append(("negative-enum", valid + tag(field.number, VARINT) + varint(-5)))
        if right == VARINT and field.type != FieldDescriptor.TYPE_ENUM:
            # The largest 64-bit values, into fields of every integer width.
            out.append(("extreme-int", valid + tag(field.number, VARINT) + varint(2**64 - 1)))
            out.append(("extreme-int", valid + tag(field.number, VARINT) + varint(2**63)))
    out.append(("overlong-varint", tag(1, VARINT) + b"\xff" * 11 + b"\x01"))
    out.append(("field-zero", tag(0, VARINT) + varint(1)))
    out.append(("wire-type-6", varint((1 << 3) | 6) + b"\x00"))
    out.append(("wire-type-7", varint((1 << 3) | 7) + b"\x00"))
    out.append(("group-end", varint((1 << 3) | 4)))
    return out


# --- calls ------------------------------------------------------------------------------------


@dataclass
class Live:
    server: RunningServer
    channel: grpc.Channel
    metadata: tuple[tuple[str, str], ...]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    data_dir: Path = tmp_path_factory.mktemp("grpc-fuzz") / "data"
    # No training worker: a payload that happens to start a job only queues it. Rate limits
    # off: this test sends a few hundred calls a second with one token.
    settings = Settings(
        data_dir=data_dir, grpc_port=0, http_port=0, max_workers=0, rate_limit_per_second=0
    )
    server = start_server(settings)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    try:
        admin = (data_dir / "admin-token").read_text().strip()
        metadata = (("authorization", f"Bearer {admin}"),)
        projects_pb2_grpc.ProjectServiceStub(channel).CreateProject(
            projects_pb2.CreateProjectRequest(name=PROJECT), metadata=metadata
        )
        yield Live(server, channel, metadata)
    finally:
        channel.close()
        server.stop()


def _identity(data: bytes) -> bytes:
    return data


def call(live: Live, method: Method, messages: list[bytes]) -> tuple[grpc.StatusCode, str | None]:
    """Send raw request bytes; return the status and the mobiletrain error code trailer."""
    kwargs: dict[str, Any] = {
        "request_serializer": _identity,
        "response_deserializer": _identity,
    }
    ch = live.channel
    stub: Callable[..., Any]
    if method.client_streaming and method.server_streaming:
        stub = ch.stream_stream(method.name, **kwargs)
    elif method.client_streaming:
        stub = ch.stream_unary(method.name, **kwargs)
    elif method.server_streaming:
        stub = ch.unary_stream(method.name, **kwargs)
    else:
        stub = ch.unary_unary(method.name, **kwargs)
    request: Any = iter(messages) if method.client_streaming else messages[0]
    try:
        result = stub(request, metadata=live.metadata, timeout=20)
        if method.server_streaming:
            for _ in result:
                pass
        return grpc.StatusCode.OK, None
    except grpc.RpcError as err:
        e: Any = err
        trailers = dict(e.trailing_metadata() or ())
        return e.code(), trailers.get(ERROR_CODE)


def assert_still_serving(live: Live) -> None:
    health = health_pb2_grpc.HealthStub(live.channel)
    reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
    project = projects_pb2_grpc.ProjectServiceStub(live.channel).GetProject(
        projects_pb2.GetProjectRequest(project=PROJECT), metadata=live.metadata, timeout=10
    )
    assert project.name == PROJECT


def test_every_method_is_enumerated() -> None:
    assert len(METHODS) >= 22
    assert any(m.client_streaming for m in METHODS)
    assert any(m.server_streaming for m in METHODS)


@pytest.mark.parametrize("method", METHODS, ids=[m.name.rsplit(".", 1)[-1] for m in METHODS])
def test_malformed_requests_get_clean_errors(live: Live, method: Method) -> None:
    rng = random.Random(f"{SEED}:{method.name}")
    cases = payloads(method, rng)
    if method.client_streaming:
        # Also after a valid first message (e.g. a sample header, then a broken chunk).
        valid = cases[0][1]
        cases += [(f"after-valid/{kind}", data) for kind, data in cases[2:12]]
        sequences = [[data] if "/" not in kind else [valid, data] for kind, data in cases]
    else:
        sequences = [[data] for _, data in cases]
    bad: list[str] = []
    outcomes: Counter[str] = Counter()
    for (kind, data), messages in zip(cases, sequences, strict=True):
        status, code = call(live, method, messages)
        outcomes[status.name] += 1
        clean = status is grpc.StatusCode.OK or code is not None
        if status in BAD_STATUSES or not clean:
            bad.append(f"{kind} {data[:40]!r}: {status.name} (error code {code})")
    assert not bad, f"{method.name}:\n" + "\n".join(bad)
    assert outcomes["INVALID_ARGUMENT"] > 0, outcomes  # the undecodable ones at least
    if method.name.endswith("/DeleteProject"):
        # Its valid payload deleted the project the other methods' payloads name: make it again.
        projects_pb2_grpc.ProjectServiceStub(live.channel).CreateProject(
            projects_pb2.CreateProjectRequest(name=PROJECT), metadata=live.metadata
        )
    assert_still_serving(live)


def test_oversized_message_gets_code_76_and_past_the_transport_cap_no_trailer(live: Live) -> None:
    """A message over the server's message cap is refused by the interceptor with
    RESOURCE_EXHAUSTED and code 76 (BODY_TOO_LARGE) in the trailer, on a unary call and inside a
    client stream; only past gRPC's own, higher limit (TRANSPORT_MESSAGE_FACTOR × the cap) does
    gRPC answer by itself, without the trailer (the documented exception). The server goes on
    serving."""
    from mobiletrain.api.grpc.server import TRANSPORT_MESSAGE_FACTOR

    cap = live.server.container.settings.grpc_max_message_bytes
    unary = next(m for m in METHODS if m.name.endswith("/GetProject"))
    stream = next(m for m in METHODS if m.name.endswith("/UploadSamples"))
    payload = tag(1, LEN) + varint(cap + 16) + b"x" * (cap + 16)
    for method in (unary, stream):
        status, code = call(live, method, [payload])
        assert (status, code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "76"), method.name
    # Exactly at the cap the message is let through (and then judged on its content).
    n = cap - 1 - len(varint(cap))
    at_cap = tag(1, LEN) + varint(n) + b"x" * n
    assert len(at_cap) == cap
    status, code = call(live, unary, [at_cap])
    assert code not in ("76", None), (status, code)
    huge = cap * TRANSPORT_MESSAGE_FACTOR + 16
    payload = tag(1, LEN) + varint(huge) + b"x" * huge
    status, code = call(live, unary, [payload])
    assert (status, code) == (grpc.StatusCode.RESOURCE_EXHAUSTED, None)
    assert_still_serving(live)
