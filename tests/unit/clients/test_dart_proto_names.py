"""The names the Dart client uses from its generated gRPC stubs exist in the .proto files.

The stubs (``lib/src/generated``) are made by ``scripts/gen_dart.sh`` with protoc's Dart plugin,
which cannot run here, so the Dart code that uses them is checked against the service and message
descriptors instead (the Python modules generated from the same .proto files, kept in step by the
drift test). The Dart code imports the generated libraries with the prefix ``pb``; the check
follows protoc_plugin's naming and covers

* every ``pb.Name``: a message, enum, oneof enum or service client (``FooService`` →
  ``FooServiceClient``), and every ``pb.Enum.VALUE`` / ``pb.Message_Oneof.field``;
* every rpc called on a stub (``_training.watchJob(``: rpc ``WatchJob`` of ``TrainingService``);
* the named arguments and cascade setters of every ``pb.Message(...)``;
* member chains on variables whose message type is known (declared as ``pb.Type name``,
  assigned from ``pb.Type(...)`` or an rpc's reply, or a loop over a repeated field), such as
  ``event.epochEnd.valAccuracy``: every link must be a field accessor of the type before it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from dart_source import PACKAGE, code_only, dart_files
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from mobiletrain._proto.mobiletrain.v1 import (
    common_pb2,
    datasets_pb2,
    federated_pb2,
    models_pb2,
    projects_pb2,
    tokens_pb2,
    training_pb2,
)

MODULES = (
    common_pb2,
    datasets_pb2,
    federated_pb2,
    models_pb2,
    projects_pb2,
    tokens_pb2,
    training_pb2,
)

# Members every generated message or enum has (GeneratedMessage / ProtobufEnum).
MESSAGE_MEMBERS = {
    "writeToBuffer",
    "writeToJson",
    "writeToJsonMap",
    "toProto3Json",
    "mergeFromProto3Json",
    "mergeFromBuffer",
    "mergeFromMessage",
    "clone",
    "deepCopy",
    "freeze",
    "rebuild",
    "copyWith",
    "toDebugString",
    "toString",
    "isInitialized",
    "hashCode",
    "runtimeType",
    "info_",
    "clear",
    "createEmptyInstance",
    "unknownFields",
    "hasRequiredFields",
    "getField",
    "setField",
    "hasField",
    "clearField",
    "isFrozen",
}
ENUM_MEMBERS = {"values", "valueOf", "name", "value", "toString"}
# protoc_plugin renames fields that clash with GeneratedMessage members: name + "_" + number.
RESERVED = MESSAGE_MEMBERS | {
    "extensionsAreInitialized",
    "fromBuffer",
    "fromJson",
    "check",
    "getTagNumber",
    "noSuchMethod",
    "toBuilder",
    "toProto3Json",
}


def camel(name: str, upper: bool = False) -> str:
    """protoc_plugin's lowerCamelCase (or UpperCamelCase) of a snake_case name."""
    parts = name.split("_")
    text = parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])
    return text[:1].upper() + text[1:] if upper else text


def accessor(f: FieldDescriptor) -> str:
    name = camel(f.name)
    return f"{name}_{f.number}" if name in RESERVED else name


@dataclass
class Message:
    """What Dart code may do with one generated message class."""

    members: dict[str, str | None] = field(default_factory=dict)  # accessor → message type
    setters: set[str] = field(default_factory=set)
    element: dict[str, str] = field(default_factory=dict)  # repeated field → element type


@dataclass
class Schema:
    messages: dict[str, Message] = field(default_factory=dict)
    enums: dict[str, set[str]] = field(default_factory=dict)  # enum or oneof enum → values
    clients: dict[str, dict[str, str]] = field(default_factory=dict)  # client → rpc → reply


def dart_name(full_name: str) -> str:
    """``mobiletrain.v1.Outer.Inner`` → ``Outer_Inner`` (google types keep their own names)."""
    return (
        full_name.split(".", 2)[-1].replace(".", "_")
        if full_name.startswith("mobiletrain.")
        else full_name
    )


def _add_message(schema: Schema, d: Descriptor) -> None:
    message = Message(members={m: None for m in MESSAGE_MEMBERS})
    for f in d.fields:
        name, cap = accessor(f), camel(f.name, upper=True)
        is_message = f.type == FieldDescriptor.TYPE_MESSAGE
        repeated = f.is_repeated
        target = dart_name(f.message_type.full_name) if is_message else None
        message.members[name] = target if is_message and not repeated else None
        message.setters.add(name)
        if repeated and is_message and target is not None:
            message.element[name] = target
        if not repeated:
            message.members[f"has{cap}"] = None
            message.members[f"clear{cap}"] = None
            if is_message:
                message.members[f"ensure{cap}"] = target
    for oneof in d.oneofs:
        cap = camel(oneof.name, upper=True)
        message.members[f"which{cap}"] = None
        message.members[f"clear{cap}"] = None
        schema.enums[f"{dart_name(d.full_name)}_{cap}"] = {
            "notSet",
            *(accessor(f) for f in oneof.fields),
        }
    schema.messages[dart_name(d.full_name)] = message
    for nested in d.nested_types:
        _add_message(schema, nested)
    for enum in d.enum_types:
        _add_enum(schema, enum)


def _add_enum(schema: Schema, e: EnumDescriptor) -> None:
    schema.enums[dart_name(e.full_name)] = {v.name for v in e.values} | ENUM_MEMBERS


def load_schema() -> Schema:
    schema = Schema()
    for module in MODULES:
        file = module.DESCRIPTOR
        for d in file.message_types_by_name.values():
            _add_message(schema, d)
        for e in file.enum_types_by_name.values():
            _add_enum(schema, e)
        for service in file.services_by_name.values():
            schema.clients[f"{service.name}Client"] = {
                m.name[:1].lower() + m.name[1:]: dart_name(m.output_type.full_name)
                for m in service.methods
            }
    return schema


SCHEMA = load_schema()
IDENT = r"[A-Za-z_$][A-Za-z0-9_$]*"


def balanced(code: str, open_at: int) -> int:
    """Index just past the bracket that closes the one at ``open_at``."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    stack = [pairs[code[open_at]]]
    i = open_at + 1
    while stack:
        ch = code[i]
        if ch in pairs:
            stack.append(pairs[ch])
        elif stack and ch == stack[-1]:
            stack.pop()
        i += 1
    return i


def top_level_names(args: str) -> Iterator[str]:
    """The ``name:`` of each top-level named argument in an argument list's text."""
    depth = 0
    start = 0
    for i, ch in enumerate(args + ","):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            m = re.match(rf"\s*({IDENT})\s*:(?!:)", args[start:i])
            if m:
                yield m.group(1)
            start = i + 1


@dataclass
class Finding:
    path: Path
    line: int
    problem: str

    def __str__(self) -> str:
        where = (
            self.path.relative_to(PACKAGE.parent)
            if self.path.is_relative_to(PACKAGE.parent)
            else self.path.name
        )
        return f"{where}:{self.line}: {self.problem}"


def check_file(path: Path, schema: Schema = SCHEMA) -> tuple[list[Finding], int]:
    """Problems found in one file, and how many uses of generated names were checked."""
    code = code_only(path)
    problems: list[Finding] = []
    checked = 0

    def line_of(pos: int) -> int:
        return code.count("\n", 0, pos) + 1

    def bad(pos: int, problem: str) -> None:
        problems.append(Finding(path, line_of(pos), problem))

    # 1. pb.Name and pb.Enum.VALUE
    known = set(schema.messages) | set(schema.enums) | set(schema.clients)
    for m in re.finditer(rf"\bpb\.({IDENT})(?:\.({IDENT}))?", code):
        name, member = m.group(1), m.group(2)
        checked += 1
        if name not in known:
            bad(m.start(), f"pb.{name} is not a generated message, enum or service client")
        elif member is not None and name in schema.enums and member not in schema.enums[name]:
            bad(m.start(), f"pb.{name}.{member} is not a value of {name}")

    # 2. Variables of known types: declarations, construction, rpc replies, loops.
    types: dict[str, set[str]] = {}
    for m in re.finditer(rf"\bpb\.({IDENT})\??\s+({IDENT})\s*[,;=)]", code):
        types.setdefault(m.group(2), set()).add(m.group(1))
    for m in re.finditer(rf"\b(?:final|var)\s+({IDENT})\s*=\s*(?:await\s+)?pb\.({IDENT})\(", code):
        types.setdefault(m.group(1), set()).add(m.group(2))
    stubs = {v: next(iter(t)) for v, t in types.items() if any(x in schema.clients for x in t)}
    for m in re.finditer(
        rf"\b(?:final|var)\s+({IDENT})\s*=\s*(?:await\s+)?({IDENT})\.({IDENT})\(", code
    ):
        rpcs = schema.clients.get(stubs.get(m.group(2), ""), {})
        if m.group(3) in rpcs:
            types.setdefault(m.group(1), set()).add(rpcs[m.group(3)])
    for m in re.finditer(rf"\bfor\s*\(\s*final\s+({IDENT})\s+in\s+({IDENT})\.({IDENT})\(", code):
        rpcs = schema.clients.get(stubs.get(m.group(2), ""), {})
        if m.group(3) in rpcs:  # await for (final e in _training.watchJob(...))
            types.setdefault(m.group(1), set()).add(rpcs[m.group(3)])

    # 3. rpc calls on stubs
    for var, client in stubs.items():
        for m in re.finditer(rf"(?<![\w.$]){re.escape(var)}\.({IDENT})\s*[(<]", code):
            checked += 1
            if m.group(1) not in schema.clients[client]:
                bad(m.start(), f"{client} has no rpc {m.group(1)}")

    # 4. named arguments and cascades of pb.Message(...)
    for m in re.finditer(rf"\bpb\.({IDENT})\s*\(", code):
        message = schema.messages.get(m.group(1))
        if message is None:
            continue
        end = balanced(code, m.end() - 1)
        for name in top_level_names(code[m.end() : end - 1]):
            checked += 1
            if name not in message.setters:
                bad(m.start(), f"{m.group(1)} has no field {name}")
        cascade = re.compile(rf"\s*\.\.({IDENT})")
        while (c := cascade.match(code, end)) is not None:
            checked += 1
            if c.group(1) not in message.setters and c.group(1) not in message.members:
                bad(end, f"{m.group(1)} has no field {c.group(1)}")
            end = c.end()
            # Skip the cascade's value (up to the next top-level `..`, `,`, `;` or bracket).
            while end < len(code) and code[end] not in ",;)]}":
                if code[end] in "([{":
                    end = balanced(code, end)
                elif code.startswith("..", end):
                    break
                else:
                    end += 1

    # 5. member chains on typed variables, and loops over their repeated fields
    loops = re.compile(rf"\bfor\s*\(\s*final\s+({IDENT})\s+in\s+({IDENT})((?:\.{IDENT})*)\s*\)")
    for _ in range(3):  # loop variables found in one pass may type loops in the next
        for m in loops.finditer(code):
            links = re.findall(IDENT, m.group(3))
            for t in list(types.get(m.group(2), set())):
                if not links:  # a stream variable: `final s = _models.downloadModel(...)`
                    types.setdefault(m.group(1), set()).add(t)
                    continue
                current: str | None = t
                for link in links[:-1]:
                    current = schema.messages.get(current or "", Message()).members.get(link)
                element = schema.messages.get(current or "", Message()).element.get(links[-1])
                if element:
                    types.setdefault(m.group(1), set()).add(element)
    for var, candidates in types.items():
        messages = [t for t in candidates if t in schema.messages]
        if not messages:
            continue
        for m in re.finditer(rf"(?<![\w.$]){re.escape(var)}((?:\??\.{IDENT})+)", code):
            chain = re.findall(IDENT, m.group(1))
            chain_types: list[str | None] = list(messages)
            for link in chain:
                options = [schema.messages[t] for t in chain_types if t in schema.messages]
                if not options:
                    break
                checked += 1
                if not any(link in o.members for o in options):
                    bad(m.start(), f"{'/'.join(str(t) for t in chain_types)} has no member {link}")
                    break
                chain_types = [o.members.get(link) for o in options if link in o.members]
    return problems, checked


def files_using_stubs() -> list[Path]:
    return [p for p in dart_files() if re.search(r"generated/mobiletrain/v1/", p.read_text())]


def test_some_dart_code_uses_the_generated_stubs() -> None:
    assert PACKAGE / "lib/src/grpc/grpc_transport.dart" in files_using_stubs()


@pytest.mark.parametrize("path", files_using_stubs(), ids=lambda p: p.name)
def test_generated_names_used_by_dart_exist_in_the_protos(path: Path) -> None:
    problems, checked = check_file(path)
    assert checked > 50, f"only {checked} uses of generated names found: is the import prefix pb?"
    assert not problems, "\n".join(str(p) for p in problems)


def test_every_rpc_a_device_needs_is_called_from_dart() -> None:
    code = "\n".join(code_only(p) for p in files_using_stubs())
    for rpc in (
        "getProject",
        "uploadSamples",
        "getUploadOffset",
        "startJob",
        "getJob",
        "cancelJob",
        "watchJob",
        "listModelVersions",
        "getManifest",
        "checkForUpdate",
        "downloadModel",
        "predict",
    ):
        assert re.search(rf"\.{rpc}\(", code), f"the Dart client never calls {rpc}"


def test_the_check_finds_wrong_names(tmp_path: Path) -> None:
    # The check is only worth something if it fails on names the protos do not have.
    source = tmp_path / "wrong.dart"
    source.write_text(
        "import '../generated/mobiletrain/v1/training.pbgrpc.dart' as pb;\n"
        "class T {\n"
        "  final pb.TrainingServiceClient _training;\n"
        "  T(this._training);\n"
        "  Future<void> f() async {\n"
        "    final job = await _training.startJob(pb.StartJobRequest(projectName: 'x'));\n"
        "    print(job.modelVersion + job.modelVersions);\n"
        "    final r = pb.WatchJobRequest()..afterSequence = 1;\n"
        "    await for (final e in _training.watchJobs(r)) {}\n"
        "    await for (final e in _training.watchJob(pb.WatchJobRequest(jobId: job.id))) {\n"
        "      print(e.epochEnd.valAccuracy + e.epochEnd.valAcc);\n"
        "    }\n"
        "    print(pb.JobState.JOB_STATE_DONE);\n"
        "    print(pb.TrainingJob);\n"
        "  }\n"
        "}\n"
    )
    problems, _ = check_file(source)
    text = "\n".join(str(p) for p in problems)
    for wrong in (
        "projectName",
        "modelVersions",
        "watchJobs",
        "afterSequence",
        "valAcc",
        "JOB_STATE_DONE",
        "pb.TrainingJob",
    ):
        assert wrong in text, f"{wrong} was not reported:\n{text}"
    assert len(problems) == 7, text


def test_the_dart_error_codes_mirror_the_servers() -> None:
    from mobiletrain.core.errors import ErrorCode

    code = code_only(PACKAGE / "lib/src/errors.dart")
    numbers = {m[0]: int(m[1]) for m in re.findall(rf"static const int ({IDENT}) = (-?\d+);", code)}
    # The names map is made of string literals, which code_only blanks: read the raw text.
    raw = (PACKAGE / "lib/src/errors.dart").read_text()
    names = dict(re.findall(rf"^\s*({IDENT}): '([a-z0-9_]+)',$", raw, re.MULTILINE))
    dart = {numbers[k]: names.get(k) for k in numbers if numbers[k] > 0}
    server = {c.number: c.name.lower() for c in ErrorCode}
    assert dart == server
