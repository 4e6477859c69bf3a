"""Transport parity: the same cases through gRPC and REST against one real server (issue 15).

Every row of :data:`CASES` is one operation called once through the generated gRPC stubs and
once through plain HTTP, with the same token. Both answers are turned into the same plain
shape (a success's fields that both wires carry, or a failure's catalog code) and must be
equal; a failure must also carry the gRPC status and HTTP status the catalog gives its code.

Adding an operation is one row: a name, the rpc it covers, a gRPC call, a REST call and (for
successes) a ``view`` that picks what both wires must agree on. The suite checks that every
rpc both wires offer has a row (:data:`mobiletrain.core.auth.OPERATIONS` lists them).

One small digits job is trained once for the module (8x8 images, 2 epochs, float32 only).
Federated sessions use placeholder on-device files, as the permission test does: the export
is not what is compared here, the adapters are.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import io
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from mobiletrain._proto.mobiletrain.v1 import (
    common_pb2,
    datasets_pb2,
    datasets_pb2_grpc,
    federated_pb2,
    federated_pb2_grpc,
    models_pb2,
    models_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
    tokens_pb2,
    tokens_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from mobiletrain.cli.demo import digits_split, png_bytes
from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.config import Settings
from mobiletrain.core.annotations import Box
from mobiletrain.core.auth import OPERATIONS
from mobiletrain.core.errors import ErrorCode, error_by_number
from mobiletrain.core.services import DEFAULT_TOP_K
from mobiletrain.core.types import InputSpec, ModelFormat
from mobiletrain.federated.head import HeadSpec, weights_to_bytes
from mobiletrain.federated.ports import OnDeviceToolkit, PreparedFiles
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.slow

DET_SAMPLES = ("det_g", "det_r", "det_g2", "det_r2")
PROJECT = "parity"
DET_PROJECT = "parity-det"
FED_PROJECT = "parity-fed"
EMPTY_PROJECT = "parity-empty"

# gRPC methods with no REST twin, and why (the suite checks this list stays true).
GRPC_ONLY = {
    # One bidirectional stream doing what GetTask + PushUpdate do over REST; covered there.
    "FederatedService/Participate",
}

# REST routes of operations both wires offer that have no gRPC twin, and why (the suite checks
# every other such route is called by some case, and that this list names real routes).
REST_ONLY = {
    # Relabelling a sample: gRPC has no UpdateSample (the proto keeps samples immutable).
    "PATCH /v1/projects/{project}/samples/{sample_id}",
    # One sample's metadata: gRPC lists samples (ListSamples) but has no GetSample.
    "GET /v1/projects/{project}/samples/{sample_id}",
    # A version's full metrics JSON: gRPC carries the summary in ModelVersion and the
    # evaluation in WatchJob's EVALUATION event.
    "GET /v1/projects/{project}/models/{version}/metrics",
    # One version: gRPC reads it from ListModelVersions.
    "GET /v1/projects/{project}/models/{version}",
    # REST's resumable upload resource; gRPC resumes a chunked stream by client id
    # (GetUploadOffset) and is compared with it in the chunked-upload cases.
    "DELETE /v1/uploads/{upload_id}",
}

# "METHOD /template" of every REST route the cases called, by case name (filled as they run).
_ROUTES_BY_CASE: dict[str, set[str]] = {}
_REST_CALLS: list[tuple[str, str]] = []


def _record_request(request: httpx.Request) -> None:
    _REST_CALLS.append((request.method, request.url.path))


def _route_of(method: str, path: str) -> str | None:
    """The OPERATIONS route template a concrete request path matches (None: no route)."""
    for op in OPERATIONS:
        for route in op.rest:
            verb, template = route.split(" ", 1)
            pattern = re.sub(r"\\{[a-z_]+\\}", "[^/]+", re.escape(template))
            if verb == method and re.fullmatch(pattern, path):
                return route
    return None


class PlaceholderToolkit(OnDeviceToolkit):
    """Placeholder session files: the TFLite export is not what is compared here."""

    def prepare(
        self,
        spec: InputSpec,
        head: dict[str, Any],
        manifest: dict[str, Any],
        base_model: bytes | None,
        seed: int,
    ) -> PreparedFiles:
        files = {
            fmt: f"{fmt.value}-file".encode()
            for fmt in (
                ModelFormat.FEATURE_EXTRACTOR,
                ModelFormat.TRAIN_STEP,
                ModelFormat.HEAD_INFERENCE,
                ModelFormat.HEAD_SIGNATURES,
                ModelFormat.FLOAT32,
            )
        }
        weights = weights_to_bytes(HeadSpec.from_dict(head).init_weights(seed))
        return PreparedFiles(files, head, {"head": head}, {}, weights)

    def republish(self, *args: Any) -> dict[ModelFormat, bytes]:
        return {}

    def evaluate(self, *args: Any) -> dict[str, Any]:
        return {}


@dataclass
class World:
    """The running server, its two wires and what the fixture made."""

    server: RunningServer
    channel: grpc.Channel
    http: httpx.Client
    tokens: dict[str, str]  # "admin", "device" (of PROJECT), "fed-device" (of FED_PROJECT)
    ids: dict[str, Any] = field(default_factory=dict)

    def stub(self, cls: Any) -> Any:
        return cls(self.channel)

    def meta(self, who: str = "admin") -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.tokens[who]}"),)

    def hdr(self, who: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


# -- normalising both wires to one shape -----------------------------------------------------------

_ENUM_PREFIXES = (
    "job_state_",
    "model_format_",
    "version_status_",
    "token_kind_",
    "session_state_",
    "task_type_",
    "color_mode_",
    "event_kind_",
    "sample_status_",
    "task_kind_",
    "release_mode_",
    "task_status_",
    "round_phase_",
    "release_action_",
)


def _e(value: Any) -> str:
    """An enum value on either wire (``JOB_STATE_SUCCEEDED`` / ``succeeded``) as one string."""
    text = str(value).lower().replace("-", "_")
    for prefix in _ENUM_PREFIXES:
        if text.startswith(prefix):
            return text[len(prefix) :]
    return text


def _t(value: Any) -> datetime | None:
    """A timestamp on either wire (RFC 3339 text), or None when unset."""
    if not value or value == "1970-01-01T00:00:00Z":
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def _i(value: Any) -> int:
    """An integer on either wire (int64 is a string in proto JSON; unset is 0 or null)."""
    return int(value or 0)


def _proto_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


@dataclass(frozen=True)
class Outcome:
    """What one wire answered: a view of the success, or the catalog code of the failure."""

    ok: bool
    value: Any


def _code_of(err: grpc.RpcError) -> int:
    trailers = dict(err.trailing_metadata() or ())  # type: ignore[attr-defined]
    return int(trailers["mobiletrain-error-code"])


def run_grpc(call: Callable[[], Any], view: Callable[[Any], Any]) -> Outcome:
    try:
        answer = call()
        if isinstance(answer, Message):
            value = view(_proto_dict(answer))
        else:  # a server stream: the list of its messages
            value = view([_proto_dict(m) for m in answer])
    except grpc.RpcError as err:
        code = _code_of(err)
        known = error_by_number(code)
        assert known is not None and err.code().name == known.grpc_status, err  # type: ignore[attr-defined]
        return Outcome(False, code)
    return Outcome(True, value)


def run_rest(call: Callable[[], httpx.Response], view: Callable[[Any], Any]) -> Outcome:
    r = call()
    if r.status_code >= 400:
        code = int(r.json()["code"])
        known = error_by_number(code)
        assert known is not None and r.status_code == known.http_status, r.text
        assert r.headers["x-mobiletrain-error-code"] == str(code)
        return Outcome(False, code)
    kind = r.headers.get("content-type", "")
    if kind.startswith("application/json"):
        body: Any = r.json()
    elif kind.startswith("text/event-stream"):
        body = _sse(r.text)
    else:
        body = r
    return Outcome(True, view(body))


def _sse(text: str) -> list[dict[str, Any]]:
    events, current = [], {}
    for line in text.splitlines():
        if line.startswith("id:"):
            current["id"] = int(line[3:].strip())
        elif line.startswith("event:"):
            current["event"] = line[6:].strip()
        elif line.startswith("data:"):
            current["data"] = json.loads(line[5:].strip())
        elif line == "" and current:
            events.append(current)
            current = {}
    return events


# -- views: the fields both wires carry ------------------------------------------------------------


def v_project(d: dict[str, Any]) -> Any:
    spec = d["input_spec"]
    return (
        d["id"],
        d["name"],
        _e(d["task"]),
        d["labels"],
        d["labels_fixed"],
        _i(spec["width"]),
        _i(spec["height"]),
        _e(spec["color_mode"]),
        _t(d["created_at"]),
        _i(d["promoted_version"]),
    )


def v_new_project(d: dict[str, Any]) -> Any:
    return v_project(d)[2:8]  # not id, name or time: each wire made its own


def v_sample(d: dict[str, Any]) -> Any:
    return (
        d["id"],
        d["project_id"],
        d["client_id"],
        d["label"],
        d["sha256"],
        _i(d["size"]),
        d["media_type"],
        _i(d["width"]),
        _i(d["height"]),
        _t(d["created_at"]),
        d["damaged"],
    )


def v_job(d: dict[str, Any]) -> Any:
    hp = d["hyperparameters"]
    return (
        d["id"],
        d["project_id"],
        _e(d["state"]),
        _t(d["created_at"]),
        _t(d["started_at"]),
        _t(d["finished_at"]),
        _i(d["attempts"]),
        d["error"],
        d["cancel_requested"],
        _i(d["model_version"]),
        _i(hp["epochs"]),
        _i(hp["batch_size"]),
        _i(hp["seed"]),
    )


def v_version(d: dict[str, Any]) -> Any:
    return (
        d["project_id"],
        _i(d["version"]),
        d["job_id"],
        _t(d["created_at"]),
        d["current"],
        _e(d["status"]),
        sorted((_e(a["format"]), _i(a["size"]), a["sha256"]) for a in d["artifacts"]),
        round(float(d["metrics"]["accuracy"] or 0), 6),
    )


def v_token(d: dict[str, Any]) -> Any:
    return (_e(d["kind"]), d["name"], d.get("project_id") or "", _t(d.get("revoked_at")))


def v_session(d: dict[str, Any]) -> Any:
    return (
        d["id"],
        d["project_id"],
        d["job_id"],
        _e(d["state"]),
        d["labels"],
        _i(d["current_round"]),
        _i(d["config"]["rounds"]),
        sorted((_e(a["format"]), _i(a["size"]), a["sha256"]) for a in d["files"]),
        _t(d["created_at"]),
    )


def v_list(key: str, item: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    return lambda d: ([item(x) for x in d[key]], bool(d.get("next_page_token")))


def v_none(_: Any) -> Any:
    return None


# -- gRPC and REST callers ---------------------------------------------------------------------


Stubs = {
    "projects": projects_pb2_grpc.ProjectServiceStub,
    "datasets": datasets_pb2_grpc.DatasetServiceStub,
    "training": training_pb2_grpc.TrainingServiceStub,
    "models": models_pb2_grpc.ModelServiceStub,
    "tokens": tokens_pb2_grpc.TokenServiceStub,
    "federated": federated_pb2_grpc.FederatedServiceStub,
}


def g(service: str, method: str, request: Any) -> Callable[[World, str], Any]:
    """A unary or server-streaming gRPC call."""

    def call(w: World, who: str) -> Any:
        rpc = getattr(w.stub(Stubs[service]), method)
        answer = rpc(request(w) if callable(request) else request, metadata=w.meta(who), timeout=60)
        return answer if isinstance(answer, Message) else list(answer)

    return call


def gs(service: str, method: str, requests: Callable[[World], list[Any]]) -> Callable[..., Any]:
    """A client-streaming gRPC call."""

    def call(w: World, who: str) -> Any:
        rpc = getattr(w.stub(Stubs[service]), method)
        return rpc(iter(requests(w)), metadata=w.meta(who), timeout=60)

    return call


def r(method: str, path: str | Callable[[World], str], **kw: Any) -> Callable[[World, str], Any]:
    """A REST call; ``path`` and keyword values may depend on the world."""

    def call(w: World, who: str) -> httpx.Response:
        url = path(w) if callable(path) else path
        args = {k: (v(w) if callable(v) else v) for k, v in kw.items()}
        headers = {**w.hdr(who), **args.pop("headers", {})}
        return w.http.request(method, url, headers=headers, **args)

    return call


@dataclass(frozen=True)
class Case:
    """One operation, the same case on both wires."""

    name: str
    rpc: str  # "Service/Method" this row covers
    grpc: Callable[[World, str], Any]
    rest: Callable[[World, str], Any]
    view: Callable[[Any], Any] = v_none  # for successes; errors compare their code
    grpc_view: Callable[[Any], Any] | None = None  # when the wires' shapes differ
    rest_view: Callable[[Any], Any] | None = None
    who: str = "admin"
    expect: int | None = None  # the error code both must give; None = both succeed


def _png(seed: int, size: int = 8) -> bytes:
    rng = np.random.default_rng(seed)
    return png_bytes(rng.integers(0, 255, (size, size), dtype=np.uint8))


P = f"/v1/projects/{PROJECT}"
CORRUPT = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
FLOAT32 = common_pb2.MODEL_FORMAT_FLOAT32
INT8 = common_pb2.MODEL_FORMAT_INT8


Data = bytes | Callable[["World"], bytes]


def _data(w: World, data: Data) -> bytes:
    return data(w) if callable(data) else data


def _inline_upload(client_id: str, label: str, data: Data) -> Callable[[World], list[Any]]:
    return lambda w: [
        datasets_pb2.UploadSamplesRequest(
            project=PROJECT,
            inline_batch=datasets_pb2.InlineSampleBatch(
                samples=[
                    datasets_pb2.InlineSample(client_id=client_id, label=label, data=_data(w, data))
                ]
            ),
        )
    ]


def _rest_upload(client_id: str, label: str, data: Data) -> dict[str, Any]:
    return {
        "json": lambda w: {
            "client_id": client_id,
            "label": label,
            "image": base64.b64encode(_data(w, data)).decode(),
        }
    }


BIG = _png(500, size=48)
"""A sample sent in chunks (gRPC header + chunks; REST's resumable upload resource); each wire
sends it with its own label, so neither is a duplicate of the other."""


def _chunked_grpc(client_id: str, label: str, sha256: str) -> Callable[[World], list[Any]]:
    def requests(w: World) -> list[Any]:
        header = datasets_pb2.SampleHeader(
            client_id=client_id, label=label, size=len(BIG), sha256=sha256
        )
        out = [datasets_pb2.UploadSamplesRequest(project=PROJECT, header=header)]
        for offset in range(0, len(BIG), 1000):
            chunk = datasets_pb2.SampleChunk(
                client_id=client_id, offset=offset, data=BIG[offset : offset + 1000]
            )
            out.append(datasets_pb2.UploadSamplesRequest(project=PROJECT, chunk=chunk))
        return out

    return requests


def _chunked_rest(
    client_id: str, label: str, sha256: str
) -> Callable[[World, str], httpx.Response]:
    """Open an upload, then PATCH the bytes in chunks; the answer is the last PATCH's."""

    def call(w: World, who: str) -> httpx.Response:
        opened = w.http.post(
            f"{P}/uploads",
            json={"client_id": client_id, "label": label, "size": len(BIG), "sha256": sha256},
            headers=w.hdr(who),
        )
        if opened.status_code >= 400:
            return opened
        upload = opened.json()["id"]
        answer = opened
        for offset in range(0, len(BIG), 1000):
            answer = w.http.patch(
                f"/v1/uploads/{upload}",
                content=BIG[offset : offset + 1000],
                headers={
                    **w.hdr(who),
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                },
            )
            if answer.status_code >= 400:
                break
        return answer

    return call


def _interrupted_grpc(client_id: str) -> Callable[[World, str], Any]:
    """Send a header and the first 1,000 bytes of BIG, end the stream, then ask where the
    upload stands (GetUploadOffset)."""

    def call(w: World, who: str) -> Any:
        header = datasets_pb2.SampleHeader(client_id=client_id, label="5", size=len(BIG))
        first = datasets_pb2.SampleChunk(client_id=client_id, offset=0, data=BIG[:1000])
        stub = w.stub(Stubs["datasets"])
        stub.UploadSamples(
            iter(
                [
                    datasets_pb2.UploadSamplesRequest(project=PROJECT, header=header),
                    datasets_pb2.UploadSamplesRequest(project=PROJECT, chunk=first),
                ]
            ),
            metadata=w.meta(who),
            timeout=60,
        )
        request = datasets_pb2.GetUploadOffsetRequest(project=PROJECT, client_id=client_id)
        return stub.GetUploadOffset(request, metadata=w.meta(who), timeout=60)

    return call


def _interrupted_rest(client_id: str, method: str) -> Callable[[World, str], httpx.Response]:
    """Open an upload of BIG, PATCH its first 1,000 bytes, then ask where it stands with
    ``method`` (GET: JSON; HEAD: the tus headers)."""

    def call(w: World, who: str) -> httpx.Response:
        opened = w.http.post(
            f"{P}/uploads",
            json={"client_id": client_id, "label": "5", "size": len(BIG)},
            headers=w.hdr(who),
        ).json()
        w.http.patch(
            f"/v1/uploads/{opened['id']}",
            content=BIG[:1000],
            headers={
                **w.hdr(who),
                "Upload-Offset": "0",
                "Content-Type": "application/offset+octet-stream",
            },
        )
        return w.http.request(method, f"/v1/uploads/{opened['id']}", headers=w.hdr(who))

    return call


def v_upload_headers(resp: httpx.Response) -> Any:
    """HEAD /v1/uploads/{id}: an open upload is never complete; offset and size as headers."""
    return (False, int(resp.headers["upload-offset"]), int(resp.headers["upload-length"]))


def _multipart_grpc(samples: list[tuple[str, str, bytes]]) -> Callable[[World], list[Any]]:
    def requests(w: World) -> list[Any]:
        batch = datasets_pb2.InlineSampleBatch(
            samples=[
                datasets_pb2.InlineSample(client_id=c, label=lab, data=d) for c, lab, d in samples
            ]
        )
        return [datasets_pb2.UploadSamplesRequest(project=PROJECT, inline_batch=batch)]

    return requests


def _multipart_rest(samples: list[tuple[str, str, bytes]]) -> Callable[[World, str], Any]:
    return r(
        "POST",
        f"{P}/samples",
        files=[("files", (f"{c}.png", d, "image/png")) for c, _, d in samples],
        data={"labels": [lab for _, lab, _ in samples], "client_ids": [c for c, _, _ in samples]},
    )


def v_chunked(d: dict[str, Any]) -> Any:
    result = d["results"][0] if "results" in d else d["result"]
    return (_e(result["status"]), _i(result.get("error_code")))


def v_stored_upload(d: dict[str, Any]) -> Any:
    if "stored" in d:  # gRPC UploadOffset
        return (d["stored"], _i(d["offset"]), _i(d["size"]))
    return (d["complete"], _i(d["offset"]), _i(d["size"]))


def v_upload_results(d: dict[str, Any]) -> Any:
    return [(_e(x["status"]), _i(x.get("error_code"))) for x in d["results"]]


def v_download(chunks: Any) -> Any:
    """gRPC: info + data chunks; REST: the response with headers."""
    if isinstance(chunks, list):
        info = chunks[0]["info"]
        data = b"".join(base64.b64decode(c["data"]) for c in chunks[1:])
        return (
            _i(info["version"]),
            _e(info["format"]),
            info["sha256"],
            hashlib.sha256(data).hexdigest(),
            info["file_name"],
        )
    resp: httpx.Response = chunks
    name = re.search(r'filename="([^"]+)"', resp.headers["content-disposition"])
    return (
        int(resp.headers["x-model-version"]),
        _e(resp.headers["x-model-format"]),
        resp.headers["x-content-sha256"],
        hashlib.sha256(resp.content).hexdigest(),
        name.group(1) if name else "",
    )


def v_sample_data(value: Any) -> Any:
    if isinstance(value, list):
        data = b"".join(base64.b64decode(c.get("data", "")) for c in value)
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha256(value.content).hexdigest()


def v_events(value: Any) -> Any:
    if isinstance(value, list) and value and "event" in value[0]:
        return [(e["id"], _e(e["event"])) for e in value]  # SSE
    if not isinstance(value, list):  # 204: nothing more to send
        return []
    return [(_i(e["seq"]), _e(e["kind"])) for e in value]


def v_predict(d: dict[str, Any]) -> Any:
    return (
        _i(d["version"]),
        [(p["label"], _i(p["index"]), round(float(p["score"]), 5)) for p in d["predictions"]],
    )


def v_update_check(d: dict[str, Any]) -> Any:
    if "latest" in d:  # gRPC
        return (d["not_modified"], _i(d["latest"]["version"]), d["artifact"]["sha256"])
    return (d["not_modified"], _i(d["version"]), d["sha256"])


def v_class_counts(d: dict[str, Any]) -> Any:
    if isinstance(d.get("counts"), list):  # gRPC: a list of (label, count)
        return {c["label"]: _i(c["count"]) for c in d["counts"]}
    return {k: _i(v) for k, v in d["counts"].items()}


def v_policy(d: dict[str, Any]) -> Any:
    policy = d["policy"]
    return (_e(policy["mode"]), round(float(policy["margin"]), 6), d["pinned"])


def v_releases(d: dict[str, Any]) -> Any:
    return [(_i(x["version"]), _e(x["action"])) for x in d["releases"]]


def v_manifest(d: dict[str, Any]) -> Any:
    if "manifest_json" in d:  # gRPC wraps the document
        d = json.loads(d["manifest_json"])
    return (d["labels"], d.get("version"), sorted(d.get("files", {})))


def v_register(d: dict[str, Any]) -> Any:
    return (bool(d["device_id"]), d["session"]["id"])


def v_task(value: Any) -> Any:
    header = value[0]["header"] if isinstance(value, list) else value  # gRPC: header, chunks
    return _e(header["status"]), header["session_id"], bool(header.get("task"))


def v_rounds(d: dict[str, Any]) -> Any:
    return [(_i(x["round"]), _e(x["state"])) for x in d["rounds"]]


def v_tokens(d: dict[str, Any]) -> Any:
    return sorted(t["id"] for t in d["tokens"])


# -- object detection (issue 21) --------------------------------------------------------------

D = f"/v1/projects/{DET_PROJECT}"
CAT = {"label": "cat", "x_min": 0.1, "y_min": 0.2, "x_max": 0.5, "y_max": 0.6}
DOG = {"label": "dog", "x_min": 0.5, "y_min": 0.5, "x_max": 1.0, "y_max": 1.0}


def _box(**change: Any) -> dict[str, Any]:
    return {**CAT, **change}


# One upload's boxes per sample: stored, outside the image (121), no area (122), a label
# outside the fixed set (123), none at all (stored without boxes).
DET_BATCH: list[list[dict[str, Any]]] = [
    [CAT, DOG, CAT],
    [_box(x_max=1.25)],
    [_box(y_max=0.2)],
    [_box(label="horse")],
    [],
]


def _pb_boxes(boxes: list[dict[str, Any]]) -> list[common_pb2.BoundingBox]:
    return [common_pb2.BoundingBox(**b) for b in boxes]


def _det_grpc(
    project: str, prefix: str, batch: list[list[dict[str, Any]]], seed: int
) -> Callable[[World], list[Any]]:
    return lambda w: [
        datasets_pb2.UploadSamplesRequest(
            project=project,
            inline_batch=datasets_pb2.InlineSampleBatch(
                samples=[
                    datasets_pb2.InlineSample(
                        client_id=f"{prefix}{i}", data=_png(seed + i, 32), boxes=_pb_boxes(b)
                    )
                    for i, b in enumerate(batch)
                ]
            ),
        )
    ]


def _det_multipart(
    project_path: str, prefix: str, batch: list[list[dict[str, Any]]], seed: int
) -> Callable[[World, str], Any]:
    return r(
        "POST",
        f"{project_path}/samples",
        files=[
            ("files", (f"{prefix}{i}.png", _png(seed + i, 32), "image/png"))
            for i in range(len(batch))
        ],
        data={
            "client_ids": [f"{prefix}{i}" for i in range(len(batch))],
            "boxes": [json.dumps(b) for b in batch],
            # An image project needs labels; a detection project ignores them.
            "labels": ["1"] * len(batch),
        },
    )


def _det_base64(prefix: str, batch: list[Any], seed: int) -> Callable[[World, str], Any]:
    return r(
        "POST",
        f"{D}/samples:base64",
        json=[
            {
                "client_id": f"{prefix}{i}",
                "image": base64.b64encode(_png(seed + i, 32)).decode(),
                "boxes": b,
            }
            for i, b in enumerate(batch)
        ],
    )


def _update_grpc(sample: str, boxes: list[dict[str, Any]], project: str = DET_PROJECT) -> Any:
    return g(
        "datasets",
        "UpdateSampleBoxes",
        lambda w: datasets_pb2.UpdateSampleBoxesRequest(
            project=project, sample_id=w.ids.get(sample, sample), boxes=_pb_boxes(boxes)
        ),
    )


def _update_rest(sample: str, boxes: list[dict[str, Any]], project: str = DET_PROJECT) -> Any:
    return r(
        "PUT",
        lambda w: f"/v1/projects/{project}/samples/{w.ids.get(sample, sample)}/boxes",
        json={"boxes": boxes},
    )


def _v_boxes(boxes: list[dict[str, Any]] | None) -> Any:
    return [
        (
            b["label"],
            *(round(float(b.get(k, 0.0)), 6) for k in ("x_min", "y_min", "x_max", "y_max")),
        )
        for b in boxes or []
    ]


def v_det_sample(d: dict[str, Any]) -> Any:
    """A detection sample: its derived label, whether it is one, its boxes (6 decimals)."""
    detection = d["detection"] if "detection" in d else d.get("boxes") is not None
    return (d["label"], detection, _v_boxes(d.get("boxes")))


def v_det_counts(d: dict[str, Any]) -> Any:
    if isinstance(d.get("counts"), list):  # gRPC: lists of (label, count)
        boxes = {c["label"]: _i(c["count"]) for c in d["box_counts"]}
    else:
        boxes = {k: _i(v) for k, v in d["box_counts"].items()}
    return (v_class_counts(d), boxes, _i(d["images_without_boxes"]))


DETECTION_CASES: list[Case] = [
    Case(
        "upload detection images with boxes: stored, 121, 122, 123, none",
        "DatasetService/UploadSamples",
        gs("datasets", "UploadSamples", _det_grpc(DET_PROJECT, "dg", DET_BATCH, 600)),
        _det_multipart(D, "dr", DET_BATCH, 620),
        v_upload_results,
    ),
    Case(
        "upload detection images as base64; a malformed box is 120",
        "DatasetService/UploadSamples",
        gs(
            "datasets",
            "UploadSamples",
            _det_grpc(DET_PROJECT, "bg", [[CAT], [_box(label="")]], 640),
        ),
        _det_base64("br", [[CAT], [{"label": "cat", "x_min": "left"}]], 660),
        # gRPC cannot send a malformed box: its second sample has an empty label (123).
        grpc_view=lambda d: v_upload_results(d)[0],
        rest_view=lambda d: (
            v_upload_results(d)[1] == ("rejected", ErrorCode.INVALID_ANNOTATION.number)
            and v_upload_results(d)[0]
        ),
    ),
    Case(
        "upload more than 100 boxes on one image: 124",
        "DatasetService/UploadSamples",
        gs("datasets", "UploadSamples", _det_grpc(DET_PROJECT, "mg", [[CAT] * 101], 680)),
        _det_base64("mr", [[CAT] * 101], 690),
        v_upload_results,
    ),
    Case(
        "upload boxes to an image-classification project: 120",
        "DatasetService/UploadSamples",
        gs("datasets", "UploadSamples", _det_grpc(PROJECT, "ig", [[CAT]], 700)),
        _det_multipart(P, "ir", [[CAT]], 710),
        v_upload_results,
    ),
    Case(
        "replace an image's boxes: the label follows",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("det_g", [DOG, CAT, DOG]),
        _update_rest("det_r", [DOG, CAT, DOG]),
        v_det_sample,
    ),
    Case(
        "replace an image's boxes with none",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("det_g2", []),
        _update_rest("det_r2", []),
        v_det_sample,
    ),
    Case(
        "replace boxes: a box outside the image",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("det_g", [_box(y_min=-0.5)]),
        _update_rest("det_r", [_box(y_min=-0.5)]),
        expect=ErrorCode.BOX_OUT_OF_IMAGE.number,
    ),
    Case(
        "replace boxes: a box with no area",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("det_g", [_box(x_min=0.5)]),
        _update_rest("det_r", [_box(x_min=0.5)]),
        expect=ErrorCode.BOX_DEGENERATE.number,
    ),
    Case(
        "replace boxes: a box under one pixel",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("det_g", [_box(x_max=0.11)]),  # 0.32 px of a 32 px image
        _update_rest("det_r", [_box(x_max=0.11)]),
        expect=ErrorCode.BOX_DEGENERATE.number,
    ),
    Case(
        "replace boxes: a label outside the fixed set",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("det_g", [_box(label="horse")]),
        _update_rest("det_r", [_box(label="horse")]),
        expect=ErrorCode.UNKNOWN_BOX_LABEL.number,
    ),
    Case(
        "replace boxes: the reserved label",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("det_g", [_box(label="_no_boxes_")]),
        _update_rest("det_r", [_box(label="_no_boxes_")]),
        expect=ErrorCode.UNKNOWN_BOX_LABEL.number,
    ),
    Case(
        "replace boxes: 101 boxes",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("det_g", [CAT] * 101),
        _update_rest("det_r", [CAT] * 101),
        expect=ErrorCode.TOO_MANY_BOXES.number,
    ),
    Case(
        "replace boxes of an image-classification sample",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("sample", [CAT], PROJECT),
        _update_rest("sample", [CAT], PROJECT),
        expect=ErrorCode.INVALID_ANNOTATION.number,
    ),
    Case(
        "replace boxes of another project's sample",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("sample", [CAT]),
        _update_rest("sample", [CAT]),
        expect=ErrorCode.SAMPLE_NOT_FOUND.number,
    ),
    Case(
        "replace boxes of a missing sample",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("no-such-sample", [CAT]),
        _update_rest("no-such-sample", [CAT]),
        expect=ErrorCode.SAMPLE_NOT_FOUND.number,
    ),
    Case(
        "replace boxes as a device",
        "DatasetService/UpdateSampleBoxes",
        _update_grpc("sample", [CAT], PROJECT),
        _update_rest("sample", [CAT], PROJECT),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    Case(
        "class and box counts of a detection project",
        "DatasetService/GetClassCounts",
        g("datasets", "GetClassCounts", datasets_pb2.GetClassCountsRequest(project=DET_PROJECT)),
        r("GET", f"{D}/class-counts"),
        v_det_counts,
    ),
    Case(
        "list detection samples with their boxes",
        "DatasetService/ListSamples",
        g(
            "datasets",
            "ListSamples",
            datasets_pb2.ListSamplesRequest(project=DET_PROJECT, page_size=1000),
        ),
        r("GET", f"{D}/samples", params={"page_size": 1000}),
        v_list("samples", lambda d: (d["client_id"], *v_det_sample(d))),
    ),
]


# Many epochs: a job the cancel reaches late must still be far from making a model version
# (later rows compare the version list).
def _start_and_cancel_grpc(w: World, who: str) -> Any:
    hp = training_pb2.Hyperparameters(epochs=50, seed=3, formats=[FLOAT32])
    stub = w.stub(Stubs["training"])
    job = stub.StartJob(
        training_pb2.StartJobRequest(project=PROJECT, hyperparameters=hp), metadata=w.meta(who)
    )
    return stub.CancelJob(training_pb2.CancelJobRequest(job_id=job.id), metadata=w.meta(who))


def _start_and_cancel_rest(w: World, who: str) -> httpx.Response:
    hp = {"epochs": 50, "seed": 3, "formats": ["float32"]}
    job = w.http.post(f"{P}/jobs", json=hp, headers=w.hdr(who)).json()
    return w.http.post(f"/v1/jobs/{job['id']}:cancel", headers=w.hdr(who))


def v_cancelled_job(d: dict[str, Any]) -> Any:
    """Queued jobs are cancelled at once, running ones asked to stop: either way, asked."""
    hp = d["hyperparameters"]
    return (d["project_id"], d["cancel_requested"], _i(hp["epochs"]), _i(hp["seed"]))


def _version(w: World) -> int:
    return int(w.ids["version"])


CASES: list[Case] = [
    # -- projects --
    Case(
        "get project",
        "ProjectService/GetProject",
        g("projects", "GetProject", projects_pb2.GetProjectRequest(project=PROJECT)),
        r("GET", P),
        v_project,
    ),
    Case(
        "get project by id",
        "ProjectService/GetProject",
        g("projects", "GetProject", lambda w: projects_pb2.GetProjectRequest(project=w.ids["pid"])),
        r("GET", lambda w: f"/v1/projects/{w.ids['pid']}"),
        v_project,
    ),
    Case(
        "get missing project",
        "ProjectService/GetProject",
        g("projects", "GetProject", projects_pb2.GetProjectRequest(project="nope")),
        r("GET", "/v1/projects/nope"),
        expect=ErrorCode.PROJECT_NOT_FOUND.number,
    ),
    Case(
        "list projects, one a page",
        "ProjectService/ListProjects",
        g("projects", "ListProjects", projects_pb2.ListProjectsRequest(page_size=1)),
        r("GET", "/v1/projects", params={"page_size": 1}),
        v_list("projects", v_project),
    ),
    Case(
        "list projects, second page",
        "ProjectService/ListProjects",
        g(
            "projects",
            "ListProjects",
            projects_pb2.ListProjectsRequest(page_size=2, page_token="1"),
        ),
        r("GET", "/v1/projects", params={"page_size": 2, "page_token": "1"}),
        v_list("projects", v_project),
    ),
    Case(
        "list projects, bad page token",
        "ProjectService/ListProjects",
        g("projects", "ListProjects", projects_pb2.ListProjectsRequest(page_token="abc")),
        r("GET", "/v1/projects", params={"page_token": "abc"}),
        expect=ErrorCode.INVALID_PAGE.number,
    ),
    Case(
        "list projects as a device: its own",
        "ProjectService/ListProjects",
        g("projects", "ListProjects", projects_pb2.ListProjectsRequest()),
        r("GET", "/v1/projects"),
        v_list("projects", v_project),
        who="device",
    ),
    Case(
        "create project",
        "ProjectService/CreateProject",
        g(
            "projects",
            "CreateProject",
            projects_pb2.CreateProjectRequest(name="made-by-grpc", labels=["x", "y"]),
        ),
        r("POST", "/v1/projects", json={"name": "made-by-rest", "labels": ["x", "y"]}),
        v_new_project,
    ),
    Case(
        "create project, name taken",
        "ProjectService/CreateProject",
        g("projects", "CreateProject", projects_pb2.CreateProjectRequest(name=PROJECT)),
        r("POST", "/v1/projects", json={"name": PROJECT}),
        expect=ErrorCode.PROJECT_EXISTS.number,
    ),
    Case(
        "create project, bad name",
        "ProjectService/CreateProject",
        g("projects", "CreateProject", projects_pb2.CreateProjectRequest(name="a/b")),
        r("POST", "/v1/projects", json={"name": "a/b"}),
        expect=ErrorCode.INVALID_NAME.number,
    ),
    Case(
        "create project as a device",
        "ProjectService/CreateProject",
        g("projects", "CreateProject", projects_pb2.CreateProjectRequest(name="by-device")),
        r("POST", "/v1/projects", json={"name": "by-device"}),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    Case(
        "delete a project with its samples",
        "ProjectService/DeleteProject",
        g("projects", "DeleteProject", projects_pb2.DeleteProjectRequest(project="gone-g")),
        r("DELETE", "/v1/projects/gone-r"),
        lambda d: (v_new_project(d["project"]), _i(d["samples_deleted"])),
    ),
    Case(
        "delete a missing project",
        "ProjectService/DeleteProject",
        g("projects", "DeleteProject", projects_pb2.DeleteProjectRequest(project="nope")),
        r("DELETE", "/v1/projects/nope"),
        expect=ErrorCode.PROJECT_NOT_FOUND.number,
    ),
    Case(
        "delete a project as a device",
        "ProjectService/DeleteProject",
        g("projects", "DeleteProject", projects_pb2.DeleteProjectRequest(project=PROJECT)),
        r("DELETE", P),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    # -- samples --
    Case(
        "upload a sample twice: duplicate",
        "DatasetService/UploadSamples",
        gs("datasets", "UploadSamples", _inline_upload("dup", "0", _png(300))),
        r("POST", f"{P}/samples:base64", **_rest_upload("dup", "0", _png(300))),
        v_upload_results,
    ),
    Case(
        "upload a corrupt image",
        "DatasetService/UploadSamples",
        gs("datasets", "UploadSamples", _inline_upload("corrupt-g", "3", CORRUPT)),
        r("POST", f"{P}/samples:base64", **_rest_upload("corrupt-r", "3", CORRUPT)),
        v_upload_results,
    ),
    Case(
        "upload with an unknown label (fixed label set)",
        "DatasetService/UploadSamples",
        gs("datasets", "UploadSamples", _inline_upload("odd-g", "eleven", _png(7))),
        r("POST", f"{P}/samples:base64", **_rest_upload("odd-r", "eleven", _png(7))),
        v_upload_results,
    ),
    Case(
        "upload to a missing project",
        "DatasetService/UploadSamples",
        gs(
            "datasets",
            "UploadSamples",
            lambda w: [
                datasets_pb2.UploadSamplesRequest(
                    project="nope",
                    inline_batch=datasets_pb2.InlineSampleBatch(
                        samples=[datasets_pb2.InlineSample(client_id="a", label="1", data=_png(1))]
                    ),
                )
            ],
        ),
        r("POST", "/v1/projects/nope/samples:base64", **_rest_upload("a", "1", _png(1))),
        expect=ErrorCode.PROJECT_NOT_FOUND.number,
    ),
    Case(
        "list samples, a page",
        "DatasetService/ListSamples",
        g("datasets", "ListSamples", datasets_pb2.ListSamplesRequest(project=PROJECT, page_size=5)),
        r("GET", f"{P}/samples", params={"page_size": 5}),
        v_list("samples", v_sample),
    ),
    Case(
        "list samples of a label, second page",
        "DatasetService/ListSamples",
        g(
            "datasets",
            "ListSamples",
            lambda w: datasets_pb2.ListSamplesRequest(
                project=PROJECT, label="3", page_size=3, page_token=w.ids["label3_page2"]
            ),
        ),
        r(
            "GET",
            f"{P}/samples",
            params=lambda w: {"label": "3", "page_size": 3, "page_token": w.ids["label3_page2"]},
        ),
        v_list("samples", v_sample),
    ),
    Case(
        "list samples, bad page token",
        "DatasetService/ListSamples",
        g(
            "datasets",
            "ListSamples",
            datasets_pb2.ListSamplesRequest(project=PROJECT, page_token="not-a-token"),
        ),
        r("GET", f"{P}/samples", params={"page_token": "not-a-token"}),
        expect=ErrorCode.INVALID_PAGE.number,
    ),
    Case(
        "list samples, negative page size",
        "DatasetService/ListSamples",
        g(
            "datasets",
            "ListSamples",
            datasets_pb2.ListSamplesRequest(project=PROJECT, page_size=-1),
        ),
        r("GET", f"{P}/samples", params={"page_size": -1}),
        expect=ErrorCode.INVALID_PAGE.number,
    ),
    Case(
        "sample bytes",
        "DatasetService/GetSampleData",
        g(
            "datasets",
            "GetSampleData",
            lambda w: datasets_pb2.GetSampleDataRequest(project=PROJECT, sample_id=w.ids["sample"]),
        ),
        r("GET", lambda w: f"{P}/samples/{w.ids['sample']}/data"),
        v_sample_data,
    ),
    Case(
        "missing sample's bytes",
        "DatasetService/GetSampleData",
        g(
            "datasets",
            "GetSampleData",
            datasets_pb2.GetSampleDataRequest(project=PROJECT, sample_id="nope"),
        ),
        r("GET", f"{P}/samples/nope/data"),
        expect=ErrorCode.SAMPLE_NOT_FOUND.number,
    ),
    Case(
        "delete a sample",
        "DatasetService/DeleteSample",
        g(
            "datasets",
            "DeleteSample",
            lambda w: datasets_pb2.DeleteSampleRequest(project=PROJECT, sample_id=w.ids["del_g"]),
        ),
        r("DELETE", lambda w: f"{P}/samples/{w.ids['del_r']}"),
        # REST answers 204 without a body; both must have deleted it (checked below).
        grpc_view=lambda d: None,
        rest_view=lambda resp: resp.status_code == 204 and None,
    ),
    Case(
        "a deleted sample is gone",
        "DatasetService/GetSampleData",
        g(
            "datasets",
            "GetSampleData",
            lambda w: datasets_pb2.GetSampleDataRequest(project=PROJECT, sample_id=w.ids["del_g"]),
        ),
        r("GET", lambda w: f"{P}/samples/{w.ids['del_r']}/data"),
        expect=ErrorCode.SAMPLE_NOT_FOUND.number,
    ),
    Case(
        "delete a missing sample",
        "DatasetService/DeleteSample",
        g(
            "datasets",
            "DeleteSample",
            datasets_pb2.DeleteSampleRequest(project=PROJECT, sample_id="x"),
        ),
        r("DELETE", f"{P}/samples/x"),
        expect=ErrorCode.SAMPLE_NOT_FOUND.number,
    ),
    Case(
        "delete a sample as a device",
        "DatasetService/DeleteSample",
        g(
            "datasets",
            "DeleteSample",
            lambda w: datasets_pb2.DeleteSampleRequest(project=PROJECT, sample_id=w.ids["sample"]),
        ),
        r("DELETE", lambda w: f"{P}/samples/{w.ids['sample']}"),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    Case(
        "class counts",
        "DatasetService/GetClassCounts",
        g("datasets", "GetClassCounts", datasets_pb2.GetClassCountsRequest(project=PROJECT)),
        r("GET", f"{P}/class-counts"),
        v_class_counts,
    ),
    Case(
        "upload a large sample in chunks",
        "DatasetService/UploadSamples",
        gs(
            "datasets",
            "UploadSamples",
            _chunked_grpc("big-g", "7", hashlib.sha256(BIG).hexdigest()),
        ),
        _chunked_rest("big-r", "8", hashlib.sha256(BIG).hexdigest()),
        v_chunked,
    ),
    Case(
        "upload a batch: multipart on REST, an inline batch on gRPC",
        "DatasetService/UploadSamples",
        gs(
            "datasets",
            "UploadSamples",
            _multipart_grpc([("mp-g1", "2", _png(410)), ("mp-g2", "2", CORRUPT)]),
        ),
        _multipart_rest([("mp-r1", "2", _png(411)), ("mp-r2", "2", CORRUPT)]),
        v_upload_results,
    ),
    Case(
        "where an interrupted chunked upload stands (JSON)",
        "DatasetService/GetUploadOffset",
        _interrupted_grpc("cut-g"),
        _interrupted_rest("cut-r", "GET"),
        v_stored_upload,
    ),
    Case(
        "where an interrupted chunked upload stands (tus HEAD)",
        "DatasetService/GetUploadOffset",
        _interrupted_grpc("cut-g2"),
        _interrupted_rest("cut-r2", "HEAD"),
        v_stored_upload,
        rest_view=v_upload_headers,
    ),
    Case(
        "upload in chunks with a wrong sha256",
        "DatasetService/UploadSamples",
        gs("datasets", "UploadSamples", _chunked_grpc("bad-g", "7", "0" * 64)),
        _chunked_rest("bad-r", "7", "0" * 64),
        v_chunked,
    ),
    Case(
        "where a chunked upload stands once stored",
        "DatasetService/GetUploadOffset",
        g(
            "datasets",
            "GetUploadOffset",
            datasets_pb2.GetUploadOffsetRequest(project=PROJECT, client_id="big-g"),
        ),
        r("POST", f"{P}/uploads", json={"client_id": "big-r", "label": "8", "size": len(BIG)}),
        v_stored_upload,
    ),
    Case(
        # gRPC resumes by client id (GetUploadOffset), REST by an upload resource it opens
        # first; what they share is the project lookup and its error.
        "resumable upload into a missing project",
        "DatasetService/GetUploadOffset",
        g(
            "datasets",
            "GetUploadOffset",
            datasets_pb2.GetUploadOffsetRequest(project="nope", client_id="never-sent"),
        ),
        r(
            "POST",
            "/v1/projects/nope/uploads",
            json={"client_id": "never-sent", "label": "1", "size": 10},
        ),
        expect=ErrorCode.PROJECT_NOT_FOUND.number,
    ),
    # -- jobs --
    Case(
        "get the trained job",
        "TrainingService/GetJob",
        g("training", "GetJob", lambda w: training_pb2.GetJobRequest(job_id=w.ids["job"])),
        r("GET", lambda w: f"/v1/jobs/{w.ids['job']}"),
        v_job,
    ),
    Case(
        "get a missing job",
        "TrainingService/GetJob",
        g("training", "GetJob", training_pb2.GetJobRequest(job_id="nope")),
        r("GET", "/v1/jobs/nope"),
        expect=ErrorCode.JOB_NOT_FOUND.number,
    ),
    Case(
        "list jobs, one a page",
        "TrainingService/ListJobs",
        g("training", "ListJobs", training_pb2.ListJobsRequest(project=PROJECT, page_size=1)),
        r("GET", f"{P}/jobs", params={"page_size": 1}),
        v_list("jobs", v_job),
    ),
    Case(
        "list jobs, bad page token",
        "TrainingService/ListJobs",
        g("training", "ListJobs", training_pb2.ListJobsRequest(project=PROJECT, page_token="-4")),
        r("GET", f"{P}/jobs", params={"page_token": "-4"}),
        expect=ErrorCode.INVALID_PAGE.number,
    ),
    Case(
        "start a job, bad hyperparameters",
        "TrainingService/StartJob",
        g(
            "training",
            "StartJob",
            training_pb2.StartJobRequest(
                project=PROJECT, hyperparameters=training_pb2.Hyperparameters(epochs=0)
            ),
        ),
        r("POST", f"{P}/jobs", json={"epochs": 0}),
        expect=ErrorCode.INVALID_HYPERPARAMETERS.number,
    ),
    Case(
        "start a job without data",
        "TrainingService/StartJob",
        g("training", "StartJob", training_pb2.StartJobRequest(project=EMPTY_PROJECT)),
        r("POST", f"/v1/projects/{EMPTY_PROJECT}/jobs"),
        expect=ErrorCode.NOT_ENOUGH_DATA.number,
    ),
    Case(
        "start a job as a device",
        "TrainingService/StartJob",
        g("training", "StartJob", training_pb2.StartJobRequest(project=PROJECT)),
        r("POST", f"{P}/jobs"),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    Case(
        "start a job, then cancel it",
        "TrainingService/StartJob",
        _start_and_cancel_grpc,
        _start_and_cancel_rest,
        v_cancelled_job,
    ),
    Case(
        "cancel a finished job",
        "TrainingService/CancelJob",
        g("training", "CancelJob", lambda w: training_pb2.CancelJobRequest(job_id=w.ids["job"])),
        r("POST", lambda w: f"/v1/jobs/{w.ids['job']}:cancel"),
        expect=ErrorCode.JOB_FINISHED.number,
    ),
    Case(
        "cancel a missing job",
        "TrainingService/CancelJob",
        g("training", "CancelJob", training_pb2.CancelJobRequest(job_id="nope")),
        r("POST", "/v1/jobs/nope:cancel"),
        expect=ErrorCode.JOB_NOT_FOUND.number,
    ),
    Case(
        "watch a finished job from the start",
        "TrainingService/WatchJob",
        g("training", "WatchJob", lambda w: training_pb2.WatchJobRequest(job_id=w.ids["job"])),
        r("GET", lambda w: f"/v1/jobs/{w.ids['job']}/events"),
        v_events,
    ),
    Case(
        "watch a finished job after its last event",
        "TrainingService/WatchJob",
        g(
            "training",
            "WatchJob",
            lambda w: training_pb2.WatchJobRequest(
                job_id=w.ids["job"], after_seq=w.ids["last_seq"]
            ),
        ),
        r(
            "GET",
            lambda w: f"/v1/jobs/{w.ids['job']}/events",
            params=lambda w: {"after_seq": w.ids["last_seq"]},
        ),
        v_events,
    ),
    Case(
        "watch a finished job from the middle",
        "TrainingService/WatchJob",
        g(
            "training",
            "WatchJob",
            lambda w: training_pb2.WatchJobRequest(job_id=w.ids["job"], after_seq=3),
        ),
        r("GET", lambda w: f"/v1/jobs/{w.ids['job']}/events", headers={"Last-Event-ID": "3"}),
        v_events,
    ),
    Case(
        "watch a missing job",
        "TrainingService/WatchJob",
        g("training", "WatchJob", training_pb2.WatchJobRequest(job_id="nope")),
        r("GET", "/v1/jobs/nope/events"),
        expect=ErrorCode.JOB_NOT_FOUND.number,
    ),
    # -- models --
    Case(
        "list versions",
        "ModelService/ListModelVersions",
        g("models", "ListModelVersions", models_pb2.ListModelVersionsRequest(project=PROJECT)),
        r("GET", f"{P}/models"),
        lambda d: ([v_version(x) for x in d["versions"]], _i(d["current_version"])),
    ),
    Case(
        "list versions, one a page",
        "ModelService/ListModelVersions",
        g(
            "models",
            "ListModelVersions",
            models_pb2.ListModelVersionsRequest(project=PROJECT, page_size=1),
        ),
        r("GET", f"{P}/models", params={"page_size": 1}),
        lambda d: ([v_version(x) for x in d["versions"]], d.get("next_page_token") or ""),
    ),
    Case(
        "list versions, bad page token",
        "ModelService/ListModelVersions",
        g(
            "models",
            "ListModelVersions",
            models_pb2.ListModelVersionsRequest(project=PROJECT, page_token="zz"),
        ),
        r("GET", f"{P}/models", params={"page_token": "zz"}),
        expect=ErrorCode.INVALID_PAGE.number,
    ),
    Case(
        "list versions of a missing project",
        "ModelService/ListModelVersions",
        g("models", "ListModelVersions", models_pb2.ListModelVersionsRequest(project="nope")),
        r("GET", "/v1/projects/nope/models"),
        expect=ErrorCode.PROJECT_NOT_FOUND.number,
    ),
    Case(
        "manifest of the current version",
        "ModelService/GetManifest",
        g("models", "GetManifest", models_pb2.GetManifestRequest(project=PROJECT)),
        r("GET", f"{P}/models/current/manifest"),
        v_manifest,
    ),
    Case(
        "manifest of a missing version",
        "ModelService/GetManifest",
        g("models", "GetManifest", models_pb2.GetManifestRequest(project=PROJECT, version=99)),
        r("GET", f"{P}/models/99/manifest"),
        expect=ErrorCode.MODEL_NOT_FOUND.number,
    ),
    Case(
        "manifest while there is no model",
        "ModelService/GetManifest",
        g("models", "GetManifest", models_pb2.GetManifestRequest(project=EMPTY_PROJECT)),
        r("GET", f"/v1/projects/{EMPTY_PROJECT}/models/current/manifest"),
        expect=ErrorCode.NO_MODEL.number,
    ),
    Case(
        "download float32",
        "ModelService/DownloadModel",
        g(
            "models",
            "DownloadModel",
            lambda w: models_pb2.DownloadModelRequest(
                project=PROJECT, version=_version(w), format=FLOAT32
            ),
        ),
        r("GET", lambda w: f"{P}/models/{_version(w)}/download", params={"format": "float32"}),
        v_download,
    ),
    Case(
        "download a format the version lacks",
        "ModelService/DownloadModel",
        g(
            "models",
            "DownloadModel",
            models_pb2.DownloadModelRequest(project=PROJECT, format=INT8),
        ),
        r("GET", f"{P}/models/current/download", params={"format": "int8"}),
        expect=ErrorCode.FORMAT_NOT_FOUND.number,
    ),
    Case(
        "download from past the end",
        "ModelService/DownloadModel",
        g(
            "models",
            "DownloadModel",
            lambda w: models_pb2.DownloadModelRequest(
                project=PROJECT, format=FLOAT32, offset=w.ids["float32_size"] + 1
            ),
        ),
        r(
            "GET",
            f"{P}/models/current/download",
            headers=lambda w: {"Range": f"bytes={w.ids['float32_size'] + 1}-"},
        ),
        expect=ErrorCode.INVALID_RANGE.number,
    ),
    Case(
        "check for an update, app has the current file",
        "ModelService/CheckForUpdate",
        g(
            "models",
            "CheckForUpdate",
            lambda w: models_pb2.CheckForUpdateRequest(
                project=PROJECT, format=FLOAT32, current_sha256=w.ids["float32_sha"]
            ),
        ),
        r(
            "GET",
            f"{P}/models:check-update",
            params=lambda w: {"format": "float32", "sha256": w.ids["float32_sha"]},
        ),
        v_update_check,
    ),
    Case(
        "check for an update, app has nothing",
        "ModelService/CheckForUpdate",
        g("models", "CheckForUpdate", models_pb2.CheckForUpdateRequest(project=PROJECT)),
        r("GET", f"{P}/models:check-update"),
        v_update_check,
    ),
    Case(
        "check for an update while there is no model",
        "ModelService/CheckForUpdate",
        g("models", "CheckForUpdate", models_pb2.CheckForUpdateRequest(project=EMPTY_PROJECT)),
        r("GET", f"/v1/projects/{EMPTY_PROJECT}/models:check-update"),
        expect=ErrorCode.NO_MODEL.number,
    ),
    Case(
        "promote a version",
        "ModelService/PromoteVersion",
        g(
            "models",
            "PromoteVersion",
            lambda w: models_pb2.PromoteVersionRequest(project=PROJECT, version=_version(w)),
        ),
        r("POST", lambda w: f"{P}/models/{_version(w)}:promote"),
        lambda d: v_version(d)[:6],
    ),
    Case(
        "promote version 0: unpin",
        "ModelService/PromoteVersion",
        g("models", "PromoteVersion", models_pb2.PromoteVersionRequest(project=PROJECT, version=0)),
        r("POST", f"{P}/models/0:promote"),
        lambda d: v_version(d)[:6],
    ),
    Case(
        "promote a missing version",
        "ModelService/PromoteVersion",
        g(
            "models",
            "PromoteVersion",
            models_pb2.PromoteVersionRequest(project=PROJECT, version=99),
        ),
        r("POST", f"{P}/models/99:promote"),
        expect=ErrorCode.MODEL_NOT_FOUND.number,
    ),
    Case(
        "promote a negative version",
        "ModelService/PromoteVersion",
        g(
            "models",
            "PromoteVersion",
            models_pb2.PromoteVersionRequest(project=PROJECT, version=-1),
        ),
        r("POST", f"{P}/models/-1:promote"),
        expect=ErrorCode.INVALID_ARGUMENT.number,
    ),
    Case(
        "promote as a device",
        "ModelService/PromoteVersion",
        g("models", "PromoteVersion", models_pb2.PromoteVersionRequest(project=PROJECT, version=1)),
        r("POST", f"{P}/models/1:promote"),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    Case(
        "roll back with no model",
        "ModelService/RollbackVersion",
        g("models", "RollbackVersion", models_pb2.RollbackVersionRequest(project=EMPTY_PROJECT)),
        r("POST", f"/v1/projects/{EMPTY_PROJECT}/models:rollback"),
        expect=ErrorCode.NO_PREVIOUS_VERSION.number,
    ),
    Case(
        "roll back as a device",
        "ModelService/RollbackVersion",
        g("models", "RollbackVersion", models_pb2.RollbackVersionRequest(project=PROJECT)),
        r("POST", f"{P}/models:rollback"),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    Case(
        "release history",
        "ModelService/ListReleases",
        g("models", "ListReleases", models_pb2.ListReleasesRequest(project=PROJECT, limit=10)),
        r("GET", f"{P}/releases", params={"limit": 10}),
        v_releases,
    ),
    Case(
        "release history with the limit unset: core's default",
        "ModelService/ListReleases",
        g("models", "ListReleases", models_pb2.ListReleasesRequest(project=PROJECT, limit=0)),
        r("GET", f"{P}/releases", params={"limit": 0}),
        v_releases,
    ),
    Case(
        "release history over the largest limit",
        "ModelService/ListReleases",
        g("models", "ListReleases", models_pb2.ListReleasesRequest(project=PROJECT, limit=5000)),
        r("GET", f"{P}/releases", params={"limit": 5000}),
        expect=ErrorCode.INVALID_PAGE.number,
    ),
    Case(
        "release policy",
        "ModelService/GetReleasePolicy",
        g("models", "GetReleasePolicy", models_pb2.GetReleasePolicyRequest(project=PROJECT)),
        r("GET", f"{P}/release-policy"),
        v_policy,
    ),
    Case(
        "set a release policy out of range",
        "ModelService/SetReleasePolicy",
        g(
            "models",
            "SetReleasePolicy",
            models_pb2.SetReleasePolicyRequest(
                project=PROJECT, policy=models_pb2.ReleasePolicy(margin=2.0)
            ),
        ),
        r("PUT", f"{P}/release-policy", json={"margin": 2.0}),
        expect=ErrorCode.INVALID_RELEASE_POLICY.number,
    ),
    Case(
        "predict with the default top_k",
        "ModelService/Predict",
        g("models", "Predict", models_pb2.PredictRequest(project=PROJECT, image=_png(11))),
        r("POST", f"{P}/predict", files={"file": ("x.png", _png(11), "image/png")}),
        v_predict,
    ),
    Case(
        "predict, top 2, base64, as a device",
        "ModelService/Predict",
        g("models", "Predict", models_pb2.PredictRequest(project=PROJECT, image=_png(12), top_k=2)),
        r(
            "POST",
            f"{P}/predict:base64",
            json={"image": base64.b64encode(_png(12)).decode(), "top_k": 2},
        ),
        v_predict,
        who="device",
    ),
    Case(
        "predict, negative top_k",
        "ModelService/Predict",
        g("models", "Predict", models_pb2.PredictRequest(project=PROJECT, image=_png(1), top_k=-1)),
        r(
            "POST",
            f"{P}/predict",
            files={"file": ("x.png", _png(1), "image/png")},
            data={"top_k": -1},
        ),
        expect=ErrorCode.INVALID_ARGUMENT.number,
    ),
    Case(
        "predict a corrupt image",
        "ModelService/Predict",
        g("models", "Predict", models_pb2.PredictRequest(project=PROJECT, image=CORRUPT)),
        r("POST", f"{P}/predict", files={"file": ("x.png", CORRUPT, "image/png")}),
        expect=ErrorCode.CORRUPT_IMAGE.number,
    ),
    Case(
        "predict with a missing version",
        "ModelService/Predict",
        g(
            "models",
            "Predict",
            models_pb2.PredictRequest(project=PROJECT, image=_png(1), version=99),
        ),
        r(
            "POST",
            f"{P}/predict",
            files={"file": ("x.png", _png(1), "image/png")},
            data={"version": 99},
        ),
        expect=ErrorCode.MODEL_NOT_FOUND.number,
    ),
    # -- tokens --
    Case(
        "create a device token",
        "TokenService/CreateToken",
        g(
            "tokens",
            "CreateToken",
            tokens_pb2.CreateTokenRequest(
                kind=tokens_pb2.TOKEN_KIND_DEVICE, project=PROJECT, name="phone-x"
            ),
        ),
        r("POST", "/v1/tokens", json={"kind": "device", "project": PROJECT, "name": "phone-x"}),
        # gRPC: {token, secret}; REST: the token's fields and the secret as `token`.
        grpc_view=lambda d: (v_token(d["token"]), d["secret"].startswith("mt_")),
        rest_view=lambda d: (v_token(d), d["token"].startswith("mt_")),
    ),
    Case(
        "create a token for a missing project",
        "TokenService/CreateToken",
        g(
            "tokens",
            "CreateToken",
            tokens_pb2.CreateTokenRequest(kind=tokens_pb2.TOKEN_KIND_DEVICE, project="nope"),
        ),
        r("POST", "/v1/tokens", json={"kind": "device", "project": "nope"}),
        expect=ErrorCode.PROJECT_NOT_FOUND.number,
    ),
    Case(
        "list tokens",
        "TokenService/ListTokens",
        g("tokens", "ListTokens", tokens_pb2.ListTokensRequest(project=FED_PROJECT)),
        r("GET", "/v1/tokens", params={"project": FED_PROJECT}),
        v_tokens,
    ),
    Case(
        "list tokens as a device",
        "TokenService/ListTokens",
        g("tokens", "ListTokens", tokens_pb2.ListTokensRequest()),
        r("GET", "/v1/tokens"),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    Case(
        "revoke a missing token",
        "TokenService/RevokeToken",
        g("tokens", "RevokeToken", tokens_pb2.RevokeTokenRequest(id="nope")),
        r("DELETE", "/v1/tokens/nope"),
        expect=ErrorCode.TOKEN_NOT_FOUND.number,
    ),
    Case(
        "revoke a token",
        "TokenService/RevokeToken",
        g("tokens", "RevokeToken", lambda w: tokens_pb2.RevokeTokenRequest(id=w.ids["spare_g"])),
        r("DELETE", lambda w: f"/v1/tokens/{w.ids['spare_r']}"),
        lambda d: (v_token(d)[:3], v_token(d)[3] is not None),
    ),
    # -- federated: sessions (admin) --
    Case(
        "get a session",
        "FederatedService/GetSession",
        g(
            "federated",
            "GetSession",
            lambda w: federated_pb2.GetSessionRequest(session_id=w.ids["session"]),
        ),
        r("GET", lambda w: f"/v1/federated/sessions/{w.ids['session']}"),
        v_session,
    ),
    Case(
        "get a missing session",
        "FederatedService/GetSession",
        g("federated", "GetSession", federated_pb2.GetSessionRequest(session_id="nope")),
        r("GET", "/v1/federated/sessions/nope"),
        expect=ErrorCode.SESSION_NOT_FOUND.number,
    ),
    Case(
        "list sessions",
        "FederatedService/ListSessions",
        g("federated", "ListSessions", federated_pb2.ListSessionsRequest(project=FED_PROJECT)),
        r("GET", f"/v1/projects/{FED_PROJECT}/federated/sessions"),
        lambda d: [v_session(s) for s in d["sessions"]],
    ),
    Case(
        "start a second session while one runs",
        "FederatedService/StartSession",
        g(
            "federated",
            "StartSession",
            federated_pb2.StartSessionRequest(
                project=FED_PROJECT, config=federated_pb2.FederatedConfig(rounds=1)
            ),
        ),
        r("POST", f"/v1/projects/{FED_PROJECT}/federated/sessions", json={"rounds": 1}),
        expect=ErrorCode.SESSION_ACTIVE.number,
    ),
    Case(
        "start a session as a device",
        "FederatedService/StartSession",
        g("federated", "StartSession", federated_pb2.StartSessionRequest(project=PROJECT)),
        r("POST", f"{P}/federated/sessions", json={}),
        who="device",
        expect=ErrorCode.PERMISSION_DENIED.number,
    ),
    Case(
        "stop a missing session",
        "FederatedService/StopSession",
        g("federated", "StopSession", federated_pb2.StopSessionRequest(session_id="nope")),
        r("POST", "/v1/federated/sessions/nope:stop"),
        expect=ErrorCode.SESSION_NOT_FOUND.number,
    ),
    Case(
        "list rounds",
        "FederatedService/ListRounds",
        g(
            "federated",
            "ListRounds",
            lambda w: federated_pb2.ListRoundsRequest(session_id=w.ids["session"]),
        ),
        r("GET", lambda w: f"/v1/federated/sessions/{w.ids['session']}/rounds"),
        v_rounds,
    ),
    Case(
        "download a session file",
        "FederatedService/DownloadSessionFile",
        g(
            "federated",
            "DownloadSessionFile",
            lambda w: federated_pb2.DownloadSessionFileRequest(
                session_id=w.ids["session"], format=common_pb2.MODEL_FORMAT_FEATURE_EXTRACTOR
            ),
        ),
        r("GET", lambda w: f"/v1/federated/sessions/{w.ids['session']}/files/feature-extractor"),
        grpc_view=lambda chunks: hashlib.sha256(
            b"".join(base64.b64decode(c.get("data", "")) for c in chunks)
        ).hexdigest(),
        rest_view=lambda resp: hashlib.sha256(resp.content).hexdigest(),
    ),
    Case(
        "download a file of a missing session",
        "FederatedService/DownloadSessionFile",
        g(
            "federated",
            "DownloadSessionFile",
            federated_pb2.DownloadSessionFileRequest(
                session_id="nope", format=common_pb2.MODEL_FORMAT_FEATURE_EXTRACTOR
            ),
        ),
        r("GET", "/v1/federated/sessions/nope/files/feature-extractor"),
        expect=ErrorCode.SESSION_NOT_FOUND.number,
    ),
    # -- federated: the device protocol --
    Case(
        "register a device",
        "FederatedService/RegisterDevice",
        g("federated", "RegisterDevice", federated_pb2.RegisterDeviceRequest(project=FED_PROJECT)),
        r("POST", f"/v1/projects/{FED_PROJECT}/federated/devices", json={}),
        v_register,
        who="fed-device",
    ),
    Case(
        "register where no session runs",
        "FederatedService/RegisterDevice",
        g("federated", "RegisterDevice", federated_pb2.RegisterDeviceRequest(project=PROJECT)),
        r("POST", f"{P}/federated/devices", json={}),
        expect=ErrorCode.NO_ACTIVE_SESSION.number,
    ),
    Case(
        "get work for an unknown device",
        "FederatedService/GetTask",
        g(
            "federated",
            "GetTask",
            federated_pb2.GetTaskRequest(project=FED_PROJECT, device_id="nope"),
        ),
        r("GET", f"/v1/projects/{FED_PROJECT}/federated/task", params={"device_id": "nope"}),
        expect=ErrorCode.DEVICE_NOT_REGISTERED.number,
    ),
    Case(
        "get work while the round waits for devices",
        "FederatedService/GetTask",
        g(
            "federated",
            "GetTask",
            lambda w: federated_pb2.GetTaskRequest(project=FED_PROJECT, device_id=w.ids["device"]),
        ),
        r(
            "GET",
            f"/v1/projects/{FED_PROJECT}/federated/task",
            params=lambda w: {"device_id": w.ids["device"], "wait_seconds": 0},
        ),
        v_task,
        who="fed-device",
    ),
    Case(
        "push an update for an unknown device",
        "FederatedService/PushUpdate",
        gs(
            "federated",
            "PushUpdate",
            lambda w: [
                federated_pb2.PushUpdateRequest(
                    header=federated_pb2.UpdateHeader(
                        project=FED_PROJECT,
                        device_id="nope",
                        session_id=w.ids["session"],
                        round=1,
                        num_samples=1,
                        weights=b"\x00" * 8,
                    )
                )
            ],
        ),
        r(
            "POST",
            f"/v1/projects/{FED_PROJECT}/federated/updates",
            json=lambda w: {
                "device_id": "nope",
                "session_id": w.ids["session"],
                "round": 1,
                "num_samples": 1,
                "weights": base64.b64encode(b"\x00" * 8).decode(),
            },
        ),
        expect=ErrorCode.DEVICE_NOT_REGISTERED.number,
    ),
    *DETECTION_CASES,
]


# -- the world ---------------------------------------------------------------------------------


def _wait(check: Callable[[], bool], what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("parity") / "data"
    with contextlib.redirect_stdout(io.StringIO()):
        server = start_server(Settings(data_dir=data, grpc_port=0, http_port=0, max_workers=1))
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{server.http_port}",
        timeout=120,
        event_hooks={"request": [_record_request]},
    )
    try:
        assert server.container.federated is not None
        server.container.federated.toolkit = PlaceholderToolkit()
        admin = (data / "admin-token").read_text().strip()
        with Client(f"127.0.0.1:{server.grpc_port}", token=admin) as client:
            world = _build(server, channel, http, admin, client)
        yield world
    finally:
        http.close()
        channel.close()
        server.stop()


def _build(
    server: RunningServer, channel: grpc.Channel, http: httpx.Client, admin: str, client: Client
) -> World:
    labels = [str(i) for i in range(10)]
    project = client.create_project(
        PROJECT, labels=labels, width=8, height=8, color_mode="grayscale"
    )
    client.create_project(
        EMPTY_PROJECT, labels=["a", "b"], width=8, height=8, color_mode="grayscale"
    )
    client.create_project(FED_PROJECT, labels=["a", "b"], width=8, height=8, color_mode="grayscale")
    x, y, _, _ = digits_split()
    n = 300
    report = client.upload(
        PROJECT,
        [LocalSample(f"digit-{i}", str(int(y[i])), png_bytes(x[i])) for i in range(n)],
    )
    assert report.accepted == n, report
    client.upload(
        FED_PROJECT, [LocalSample(f"f-{i}", "ab"[i % 2], _png(100 + i)) for i in range(4)]
    )
    device = client.create_token("device", PROJECT, "phone")[1]
    fed_device = client.create_token("device", FED_PROJECT, "fed-phone")[1]
    w = World(server, channel, http, {"admin": admin, "device": device, "fed-device": fed_device})
    w.ids["pid"] = project.id
    # The case "upload a sample twice" sends this one again: the same bytes and label.
    client.upload(PROJECT, [LocalSample("dup", "0", _png(300))])
    hdr = w.hdr()
    # A detection project: images whose boxes each wire replaces.
    client.create_project(DET_PROJECT, labels=["cat", "dog"], width=32, height=32, task="detection")
    cat = [Box("cat", 0.1, 0.2, 0.5, 0.6)]
    client.upload(
        DET_PROJECT,
        [LocalSample(name, "", _png(560 + i, 32), cat) for i, name in enumerate(DET_SAMPLES)],
    )
    det_rows = http.get(f"{D}/samples", headers=hdr).json()["samples"]
    w.ids.update({s["client_id"]: s["id"] for s in det_rows})
    # Projects each wire deletes, with two samples each.
    for name in ("gone-g", "gone-r"):
        client.create_project(name, labels=["a", "b"], width=8, height=8, color_mode="grayscale")
        client.upload(name, [LocalSample(f"s{i}", "ab"[i], _png(400 + i)) for i in range(2)])
    # Samples each wire deletes.
    for seed, suffix in enumerate(("-g", "-r")):
        client.upload(PROJECT, [LocalSample(f"gone{suffix}", "5", _png(200 + seed))])
    rows = http.get(f"{P}/samples", params={"page_size": 1000}, headers=hdr).json()["samples"]
    by_client = {s["client_id"]: s for s in rows}
    w.ids["sample"] = by_client["digit-1"]["id"]
    w.ids["del_g"], w.ids["del_r"] = by_client["gone-g"]["id"], by_client["gone-r"]["id"]
    page1 = http.get(f"{P}/samples", params={"label": "3", "page_size": 3}, headers=hdr).json()
    w.ids["label3_page2"] = page1["next_page_token"]
    # One small job, trained once.
    job = client.start_job(PROJECT, epochs=2, batch_size=32, seed=1, formats=["float32"])
    events = list(client.watch_job(job.id))
    finished = client.get_job(job.id)
    assert finished.state == training_pb2.JOB_STATE_SUCCEEDED, finished.error
    w.ids["job"], w.ids["last_seq"] = job.id, events[-1].seq
    w.ids["version"] = finished.model_version
    model = http.get(f"{P}/models/{finished.model_version}", headers=hdr).json()
    art = next(a for a in model["artifacts"] if a["format"] == "float32")
    w.ids["float32_size"], w.ids["float32_sha"] = art["size"], art["sha256"]
    # Tokens each wire revokes.
    w.ids["spare_g"] = client.create_token("device", PROJECT, "spare")[0].id
    w.ids["spare_r"] = client.create_token("device", PROJECT, "spare")[0].id
    # A federated session waiting for devices, and a device registered with it.
    session = http.post(
        f"/v1/projects/{FED_PROJECT}/federated/sessions",
        json={"rounds": 1, "min_devices": 50, "min_available_devices": 50, "hidden": [2]},
        headers=hdr,
    ).json()
    w.ids["session"] = session["id"]
    _wait(
        lambda: (
            http.get(f"/v1/federated/sessions/{session['id']}", headers=hdr).json()["state"]
            == "running"
        ),
        "the session to run",
    )
    w.ids["device"] = http.post(
        f"/v1/projects/{FED_PROJECT}/federated/devices", json={}, headers=w.hdr("fed-device")
    ).json()["device_id"]
    return w


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_both_wires_agree(world: World, case: Case) -> None:
    _REST_CALLS.clear()
    got_grpc = run_grpc(lambda: case.grpc(world, case.who), case.grpc_view or case.view)
    got_rest = run_rest(lambda: case.rest(world, case.who), case.rest_view or case.view)
    _ROUTES_BY_CASE[case.name] = {r for r in (_route_of(*c) for c in _REST_CALLS) if r}
    if case.expect is not None:
        assert got_grpc == Outcome(False, case.expect), f"gRPC: {got_grpc}"
        assert got_rest == Outcome(False, case.expect), f"REST: {got_rest}"
    else:
        assert got_grpc.ok, f"gRPC failed with code {got_grpc.value}"
        assert got_rest.ok, f"REST failed with code {got_rest.value}"
        assert got_grpc.value == got_rest.value


def test_predict_without_top_k_gives_the_cores_default_on_both_wires(world: World) -> None:
    case = next(c for c in CASES if c.name == "predict with the default top_k")
    for outcome in (
        run_grpc(lambda: case.grpc(world, "admin"), v_predict),
        run_rest(lambda: case.rest(world, "admin"), v_predict),
    ):
        assert outcome.ok and len(outcome.value[1]) == DEFAULT_TOP_K


def test_every_rpc_both_wires_offer_has_a_case() -> None:
    both = {m for op in OPERATIONS if op.grpc and op.rest for m in op.grpc}
    covered = {c.rpc for c in CASES}
    assert both - GRPC_ONLY - covered == set(), "rpcs without a parity case"
    assert both >= GRPC_ONLY  # the exceptions still name real rpcs


def test_every_rest_route_both_wires_offer_is_called_by_a_case(world: World) -> None:
    """Route level: an operation both wires offer may have several REST routes (multipart and
    base64 bodies, the upload resource); each is compared with gRPC by some case."""
    for case in CASES:  # cases a -k selection left out run here, in their order
        if case.name not in _ROUTES_BY_CASE:
            test_both_wires_agree(world, case)
    routes = {r for op in OPERATIONS if op.grpc and op.rest for r in op.rest}
    called = set().union(*_ROUTES_BY_CASE.values())
    assert routes - REST_ONLY - called == set(), "REST routes no parity case calls"
    assert routes >= REST_ONLY  # the exceptions still name real routes
