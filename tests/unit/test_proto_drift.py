"""The gRPC contract: generated code is current, importable, documented and aligned.

* ``scripts/gen_proto.py --check`` must pass (regenerate after editing a .proto file).
* Every generated module imports.
* Every message, field, oneof, enum, enum value, service and rpc in ``proto/`` has a
  leading ``//`` comment: the .proto files are the documentation Flutter developers read.
* The proto enums mirror the domain enums in ``mobiletrain.core`` (names, numbers of the
  error catalog, and the wire strings named in the comments).
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf.descriptor_pb2 import (
    DescriptorProto,
    EnumDescriptorProto,
    FileDescriptorProto,
    FileDescriptorSet,
)

from mobiletrain.core import release, types
from mobiletrain.core.errors import ErrorCode
from mobiletrain.federated.config import StragglerPolicy, StrategyName
from mobiletrain.federated.device import AssignmentStatus as TaskStatus
from mobiletrain.federated.records import SessionState
from mobiletrain.federated.rounds import RoundPhase
from mobiletrain.federated.validation import RejectReason

ROOT = Path(__file__).resolve().parents[2]
GEN_SCRIPT = ROOT / "scripts" / "gen_proto.py"
GENERATED_PACKAGE = "mobiletrain._proto.mobiletrain.v1"

# Field numbers inside descriptor.proto, used to build source_code_info paths.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MSG_FIELD, _MSG_NESTED, _MSG_ENUM, _MSG_ONEOF = 2, 3, 4, 8
_ENUM_VALUE = 2
_SERVICE_METHOD = 2


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gen_proto", GEN_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def generator() -> ModuleType:
    return _load_generator()


@pytest.fixture(scope="module")
def files(generator: ModuleType) -> list[FileDescriptorProto]:
    """Our .proto files as descriptors, with their comments."""
    # protoc runs in a child process: grpc_tools' protoc crashes in a process that has
    # already loaded TensorFlow (other tests in the same pytest run do).
    code = (
        "import importlib.util, sys;"
        f"spec = importlib.util.spec_from_file_location('gen_proto', {str(GEN_SCRIPT)!r});"
        "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m);"
        "sys.stdout.buffer.write(m.descriptor_set(include_source_info=True))"
    )
    data = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, cwd=ROOT
    ).stdout
    return list(FileDescriptorSet.FromString(data).file)


def _comments(file: FileDescriptorProto) -> dict[tuple[int, ...], str]:
    return {
        tuple(loc.path): loc.leading_comments.strip()
        for loc in file.source_code_info.location
        if loc.leading_comments.strip()
    }


def _enum_elements(
    enum_proto: EnumDescriptorProto, path: tuple[int, ...], prefix: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    name = f"{prefix}.{enum_proto.name}"
    yield path, f"enum {name}"
    for i, value in enumerate(enum_proto.value):
        yield (*path, _ENUM_VALUE, i), f"enum value {name}.{value.name}"


def _message_elements(
    message: DescriptorProto, path: tuple[int, ...], prefix: str
) -> Iterator[tuple[tuple[int, ...], str]]:
    name = f"{prefix}.{message.name}"
    yield path, f"message {name}"
    for i, field in enumerate(message.field):
        yield (*path, _MSG_FIELD, i), f"field {name}.{field.name}"
    synthetic = {f.oneof_index for f in message.field if f.proto3_optional}
    for i, oneof in enumerate(message.oneof_decl):
        if i not in synthetic:  # `optional` fields create hidden oneofs without source
            yield (*path, _MSG_ONEOF, i), f"oneof {name}.{oneof.name}"
    for i, nested in enumerate(message.nested_type):
        yield from _message_elements(nested, (*path, _MSG_NESTED, i), name)
    for i, nested_enum in enumerate(message.enum_type):
        yield from _enum_elements(nested_enum, (*path, _MSG_ENUM, i), name)


def _elements(file: FileDescriptorProto) -> Iterator[tuple[tuple[int, ...], str]]:
    """(source path, description) of everything in a file that needs a comment."""
    package = file.package
    for i, message in enumerate(file.message_type):
        yield from _message_elements(message, (_FILE_MESSAGE, i), package)
    for i, enum_proto in enumerate(file.enum_type):
        yield from _enum_elements(enum_proto, (_FILE_ENUM, i), package)
    for i, service in enumerate(file.service):
        name = f"{package}.{service.name}"
        yield (_FILE_SERVICE, i), f"service {name}"
        for j, method in enumerate(service.method):
            yield (_FILE_SERVICE, i, _SERVICE_METHOD, j), f"rpc {name}.{method.name}"


def _enum_value_comments(files: list[FileDescriptorProto], name: str) -> dict[str, tuple[int, str]]:
    """{value name: (number, leading comment)} of a top-level enum."""
    for file in files:
        comments = _comments(file)
        for i, enum_proto in enumerate(file.enum_type):
            if enum_proto.name == name:
                return {
                    v.name: (v.number, comments.get((_FILE_ENUM, i, _ENUM_VALUE, j), ""))
                    for j, v in enumerate(enum_proto.value)
                }
    raise AssertionError(f"enum {name} not found in proto/")


def _screaming_snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


def test_generated_code_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(GEN_SCRIPT), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, (
        "generated gRPC code differs from proto/ (run `python scripts/gen_proto.py`):\n"
        + result.stdout
        + result.stderr
    )


def test_every_generated_module_imports(files: list[FileDescriptorProto]) -> None:
    package = importlib.import_module(GENERATED_PACKAGE)
    package_dir = Path(next(iter(package.__path__)))
    modules = sorted(p.stem for p in package_dir.glob("*.py") if p.stem != "__init__")
    assert modules, "no generated modules found; run `python scripts/gen_proto.py`"
    for name in modules:
        importlib.import_module(f"{GENERATED_PACKAGE}.{name}")
    for file in files:
        stem = Path(file.name).stem
        assert f"{stem}_pb2" in modules
        if file.service:
            grpc_module = importlib.import_module(f"{GENERATED_PACKAGE}.{stem}_pb2_grpc")
            for service in file.service:
                assert hasattr(grpc_module, f"{service.name}Stub")
                assert hasattr(grpc_module, f"{service.name}Servicer")
                assert hasattr(grpc_module, f"add_{service.name}Servicer_to_server")


def test_messages_live_in_our_package(files: list[FileDescriptorProto]) -> None:
    """Message classes must be registered under mobiletrain._proto (pickling, repr)."""
    for file in files:
        if not file.message_type:
            continue
        module = importlib.import_module(f"{GENERATED_PACKAGE}.{Path(file.name).stem}_pb2")
        cls = getattr(module, file.message_type[0].name)
        assert cls.__module__ == module.__name__


def test_every_element_has_a_leading_comment(files: list[FileDescriptorProto]) -> None:
    assert files, "no .proto files found"
    missing: list[str] = []
    for file in files:
        if not file.source_code_info.location:
            pytest.fail(f"{file.name}: protoc returned no source info")
        comments = _comments(file)
        missing += [
            f"{file.name}: {what}" for path, what in _elements(file) if path not in comments
        ]
    assert not missing, (
        "every message, field, oneof, enum, enum value, service and rpc needs a `//` comment "
        "on the line(s) before it (Flutter developers read these):\n  " + "\n  ".join(missing)
    )


def test_error_codes_match_core_catalog(files: list[FileDescriptorProto]) -> None:
    values = _enum_value_comments(files, "ErrorCode")
    expected = {f"ERROR_CODE_{code.name}": code for code in ErrorCode}
    assert values.pop("ERROR_CODE_UNSPECIFIED", (None, ""))[0] == 0
    assert set(values) == set(expected), "proto ErrorCode differs from core.errors.ErrorCode"
    for name, (number, comment) in values.items():
        code = expected[name]
        assert number == code.number, f"{name} = {number}, core says {code.number}"
        assert f"[{code.grpc_status}]" in comment, (
            f"{name}: comment should name its gRPC status [{code.grpc_status}]"
        )


DOMAIN_ENUMS: list[tuple[str, type[enum.Enum]]] = [
    ("TaskType", types.TaskType),
    ("ColorMode", types.ColorMode),
    ("Normalization", types.Normalization),
    ("ModelFormat", types.ModelFormat),
    ("SampleStatus", types.SampleStatus),
    ("JobState", types.JobState),
    ("Architecture", types.Architecture),
    ("EventKind", types.EventKind),
    ("JobPhase", types.JobPhase),
    ("ReleaseMode", release.ReleaseMode),
    ("VersionStatus", release.VersionStatus),
    ("SessionState", SessionState),
    ("FederatedStrategy", StrategyName),
    ("StragglerPolicy", StragglerPolicy),
    ("RoundPhase", RoundPhase),
    ("TaskStatus", TaskStatus),
    ("RejectReason", RejectReason),
]


@pytest.mark.parametrize(("proto_name", "domain"), DOMAIN_ENUMS, ids=[n for n, _ in DOMAIN_ENUMS])
def test_enum_mirrors_domain(
    files: list[FileDescriptorProto], proto_name: str, domain: type[enum.Enum]
) -> None:
    prefix = _screaming_snake(proto_name) + "_"
    values = _enum_value_comments(files, proto_name)
    assert values.pop(prefix + "UNSPECIFIED", (None, ""))[0] == 0, (
        f"{proto_name} needs {prefix}UNSPECIFIED = 0"
    )
    assert set(values) == {prefix + member.name for member in domain}, (
        f"proto {proto_name} differs from {domain.__module__}.{domain.__name__}"
    )
    for member in domain:
        comment = values[prefix + member.name][1]
        assert f'"{member.value}"' in comment, (
            f'{prefix}{member.name}: comment should name its wire string "{member.value}"'
        )
