"""The permission matrix, tested from the table itself (issue 13, finding 5).

:data:`mobiletrain.core.auth.OPERATIONS` is the role × operation matrix; the README shows it
rendered. Here every gRPC method and REST route of each row is called against a real server
with an admin token, a device token of the project and no token:

* no token: UNAUTHENTICATED (401, code 60) everywhere;
* "yes": the call is not refused for its credential (it may still fail for its arguments);
* "no": PERMISSION_DENIED (403, code 61);
* "own only": the device reaches only what it made itself: the administrator's sample,
  device and upload are "not found" or DEVICE_NOT_OWNED, and listings leave them out.

Other tests check that the table covers every route and rpc, and that the README's copy of the
table is current.
"""

from __future__ import annotations

import base64
import contextlib
import io
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest

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
from mobiletrain.api.grpc.server import SERVICE_NAMES
from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.config import Settings
from mobiletrain.core.auth import OPERATIONS, Access, Operation, Role, permission_table_markdown
from mobiletrain.core.errors import ErrorCode
from mobiletrain.core.types import InputSpec, ModelFormat
from mobiletrain.federated.head import HeadSpec, weights_to_bytes
from mobiletrain.federated.ports import OnDeviceToolkit, PreparedFiles
from mobiletrain.server import RunningServer, start_server

ADMIN_SAMPLE = "admin-0"  # the client id of the administrator's sample: never shown to a device
README = Path(__file__).resolve().parents[3] / "README.md"
DENIED = {ErrorCode.PERMISSION_DENIED.number}
NOT_YOURS = {
    ErrorCode.SAMPLE_NOT_FOUND.number,
    ErrorCode.UPLOAD_NOT_FOUND.number,
    ErrorCode.DEVICE_NOT_OWNED.number,
    ErrorCode.ALREADY_EXISTS.number,
}


class StandInToolkit(OnDeviceToolkit):
    """Placeholder session files (the TFLite export is not what is tested here)."""

    def prepare(
        self,
        spec: InputSpec,
        head: dict[str, Any],
        manifest: dict[str, Any],
        base_model: bytes | None,
        seed: int,
    ) -> PreparedFiles:
        files = {
            fmt: fmt.value.encode()
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
    server: RunningServer
    tokens: dict[str, str | None]  # "admin" / "device" / "none" -> secret
    http: str
    grpc: str
    ids: dict[str, str] = field(default_factory=dict)


def _png(seed: int) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (8, 8), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def perms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("perms") / "data"
    with contextlib.redirect_stdout(io.StringIO()):
        # No workers: nothing here may start real training.
        server = start_server(Settings(data_dir=data, grpc_port=0, http_port=0, max_workers=0))
    try:
        assert server.container.federated is not None
        server.container.federated.toolkit = StandInToolkit()
        admin = (data / "admin-token").read_text().strip()
        address = f"127.0.0.1:{server.grpc_port}"
        ids: dict[str, str] = {}
        with Client(address, token=admin) as client:
            client.create_project(
                "perm", labels=["a", "b"], width=8, height=8, color_mode="grayscale"
            )
            client.upload("perm", [LocalSample("admin-0", "a", _png(0))])
            device = client.create_token("device", "perm", "phone")[1]
            ids["admin_token_id"] = client.create_token("device", "perm", "spare")[0].id
        headers = {"Authorization": f"Bearer {admin}"}
        http = f"http://127.0.0.1:{server.http_port}"
        samples = httpx.get(f"{http}/v1/projects/perm/samples", headers=headers).json()
        ids["sample"] = samples["samples"][0]["id"]
        upload = httpx.post(
            f"{http}/v1/projects/perm/uploads",
            json={"client_id": "admin-upload", "label": "a", "size": 100},
            headers=headers,
        )
        ids["upload"] = upload.json()["id"]
        session = httpx.post(
            f"{http}/v1/projects/perm/federated/sessions",
            json={"rounds": 1, "min_devices": 50, "min_available_devices": 50, "hidden": [2]},
            headers=headers,
        ).json()
        ids["session"], ids["job"] = session["id"], session["job_id"]
        deadline = time.monotonic() + 30
        while (
            httpx.get(f"{http}/v1/federated/sessions/{ids['session']}", headers=headers).json()[
                "state"
            ]
            != "running"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        ids["device"] = httpx.post(
            f"{http}/v1/projects/perm/federated/devices", json={}, headers=headers
        ).json()["device_id"]
        yield World(server, {"admin": admin, "device": device, "none": None}, http, address, ids)
    finally:
        server.stop()


# -- the calls of every row: (REST) method, path, request keywords --------------------------------


def _rest_calls(ids: dict[str, str]) -> dict[str, tuple[str, str, dict[str, Any]]]:
    png = base64.b64encode(_png(1)).decode()
    s, u, sess, job = ids["sample"], ids["upload"], ids["session"], ids["job"]
    p = "/v1/projects/perm"
    return {
        "POST /v1/projects": ("POST", "/v1/projects", {"json": {"name": "made-here"}}),
        "GET /v1/projects": ("GET", "/v1/projects", {}),
        "GET /v1/projects/{project}": ("GET", p, {}),
        # A project that does not exist: the world stays whole; admins get 404, devices 403.
        "DELETE /v1/projects/{project}": ("DELETE", "/v1/projects/no-such-project", {}),
        "POST /v1/projects/{project}/samples": (
            "POST",
            f"{p}/samples",
            {"files": {"file": ("x.png", _png(2), "image/png")}, "data": {"label": "a"}},
        ),
        "POST /v1/projects/{project}/samples:base64": (
            "POST",
            f"{p}/samples:base64",
            {"json": {"client_id": "b64", "label": "a", "image": png}},
        ),
        "POST /v1/projects/{project}/uploads": (
            "POST",
            f"{p}/uploads",
            {"json": {"client_id": "resumable", "label": "a", "size": 10}},
        ),
        "HEAD /v1/uploads/{upload_id}": ("HEAD", f"/v1/uploads/{u}", {}),
        "GET /v1/uploads/{upload_id}": ("GET", f"/v1/uploads/{u}", {}),
        "PATCH /v1/uploads/{upload_id}": (
            "PATCH",
            f"/v1/uploads/{u}",
            {"content": b"x", "headers": {"Upload-Offset": "0"}},
        ),
        "DELETE /v1/uploads/{upload_id}": ("DELETE", f"/v1/uploads/{u}", {}),
        "GET /v1/projects/{project}/samples": ("GET", f"{p}/samples", {}),
        "GET /v1/projects/{project}/samples/{sample_id}": ("GET", f"{p}/samples/{s}", {}),
        "GET /v1/projects/{project}/samples/{sample_id}/data": (
            "GET",
            f"{p}/samples/{s}/data",
            {},
        ),
        "GET /v1/projects/{project}/class-counts": ("GET", f"{p}/class-counts", {}),
        "DELETE /v1/projects/{project}/samples/{sample_id}": (
            "DELETE",
            f"{p}/samples/no-such-sample",
            {},
        ),
        "PATCH /v1/projects/{project}/samples/{sample_id}": (
            "PATCH",
            f"{p}/samples/no-such-sample",
            {"json": {"label": "b"}},
        ),
        "PUT /v1/projects/{project}/samples/{sample_id}/boxes": (
            "PUT",
            f"{p}/samples/no-such-sample/boxes",
            {"json": {"boxes": []}},
        ),
        "POST /v1/projects/{project}/jobs": ("POST", f"{p}/jobs", {"json": {"epochs": 1}}),
        "POST /v1/jobs/{job_id}:cancel": ("POST", "/v1/jobs/no-such-job:cancel", {}),
        "GET /v1/projects/{project}/jobs": ("GET", f"{p}/jobs", {}),
        "GET /v1/jobs/{job_id}": ("GET", f"/v1/jobs/{job}", {}),
        "GET /v1/jobs/{job_id}/events": ("GET", f"/v1/jobs/{job}/events", {"stream": True}),
        "GET /v1/projects/{project}/models": ("GET", f"{p}/models", {}),
        "GET /v1/projects/{project}/models:check-update": ("GET", f"{p}/models:check-update", {}),
        "GET /v1/projects/{project}/models/{version}": ("GET", f"{p}/models/1", {}),
        "GET /v1/projects/{project}/models/{version}/manifest": (
            "GET",
            f"{p}/models/1/manifest",
            {},
        ),
        "GET /v1/projects/{project}/models/{version}/metrics": (
            "GET",
            f"{p}/models/1/metrics",
            {},
        ),
        "GET /v1/projects/{project}/models/{version}/download": (
            "GET",
            f"{p}/models/1/download",
            {},
        ),
        "POST /v1/projects/{project}/predict": (
            "POST",
            f"{p}/predict",
            {"files": {"file": ("x.png", _png(3), "image/png")}},
        ),
        "POST /v1/projects/{project}/predict:base64": (
            "POST",
            f"{p}/predict:base64",
            {"json": {"image": png}},
        ),
        "POST /v1/projects/{project}/models/{version}:promote": (
            "POST",
            f"{p}/models/1:promote",
            {},
        ),
        "POST /v1/projects/{project}/models:rollback": (
            "POST",
            f"{p}/models:rollback",
            {"json": {}},
        ),
        "PUT /v1/projects/{project}/release-policy": (
            "PUT",
            f"{p}/release-policy",
            {"json": {}},
        ),
        "GET /v1/projects/{project}/releases": ("GET", f"{p}/releases", {}),
        "GET /v1/projects/{project}/release-policy": ("GET", f"{p}/release-policy", {}),
        "POST /v1/tokens": ("POST", "/v1/tokens", {"json": {"kind": "device", "project": "perm"}}),
        "GET /v1/tokens": ("GET", "/v1/tokens", {}),
        "DELETE /v1/tokens/{token_id}": ("DELETE", "/v1/tokens/no-such-token", {}),
        "POST /v1/projects/{project}/federated/sessions": (
            "POST",
            f"{p}/federated/sessions",
            {"json": {"rounds": 1}},
        ),
        "POST /v1/federated/sessions/{session_id}:stop": (
            "POST",
            "/v1/federated/sessions/no-such-session:stop",
            {},
        ),
        "GET /v1/projects/{project}/federated/sessions": ("GET", f"{p}/federated/sessions", {}),
        "GET /v1/federated/sessions/{session_id}": ("GET", f"/v1/federated/sessions/{sess}", {}),
        "GET /v1/federated/sessions/{session_id}/files/{format}": (
            "GET",
            f"/v1/federated/sessions/{sess}/files/feature-extractor",
            {},
        ),
        "GET /v1/federated/sessions/{session_id}/rounds": (
            "GET",
            f"/v1/federated/sessions/{sess}/rounds",
            {},
        ),
        "POST /v1/projects/{project}/federated/devices": (
            "POST",
            f"{p}/federated/devices",
            {"json": {}},
        ),
        "GET /v1/projects/{project}/federated/task": (
            "GET",
            f"{p}/federated/task",
            {"params": {"device_id": ids["device"]}},
        ),
        "POST /v1/projects/{project}/federated/updates": (
            "POST",
            f"{p}/federated/updates",
            {
                "json": {
                    "device_id": ids["device"],
                    "session_id": sess,
                    "round": 1,
                    "num_samples": 1,
                    "error": "x",
                }
            },
        ),
    }


def _grpc_calls(ids: dict[str, str]) -> dict[str, Callable[[grpc.Channel, list[Any]], Any]]:
    """Each rpc called with a sensible request; streams read to their end (or first message)."""
    image = _png(4)
    sess, dev = ids["session"], ids["device"]

    def unary(stub: Any, name: str, request: Any) -> Callable[[grpc.Channel, list[Any]], Any]:
        return lambda ch, md: getattr(stub(ch), name)(request, metadata=md, timeout=20)

    def first(stub: Any, name: str, request: Any) -> Callable[[grpc.Channel, list[Any]], Any]:
        def call(ch: grpc.Channel, md: list[Any]) -> Any:
            stream = getattr(stub(ch), name)(request, metadata=md, timeout=20)
            try:
                return next(iter(stream), None)
            finally:
                stream.cancel()

        return call

    ds, ms, ts, fs = (
        datasets_pb2_grpc.DatasetServiceStub,
        models_pb2_grpc.ModelServiceStub,
        training_pb2_grpc.TrainingServiceStub,
        federated_pb2_grpc.FederatedServiceStub,
    )
    ps, ks = projects_pb2_grpc.ProjectServiceStub, tokens_pb2_grpc.TokenServiceStub
    upload = datasets_pb2.UploadSamplesRequest(
        project="perm",
        inline_batch=datasets_pb2.InlineSampleBatch(
            samples=[datasets_pb2.InlineSample(client_id="grpc-up", label="a", data=image)]
        ),
    )
    update = federated_pb2.PushUpdateRequest(
        header=federated_pb2.UpdateHeader(
            project="perm", device_id=dev, session_id=sess, round=1, num_samples=1, error="x"
        )
    )
    participate = federated_pb2.ParticipateRequest(
        start=federated_pb2.ParticipateStart(project="perm", device_id=dev)
    )
    return {
        "ProjectService/CreateProject": unary(
            ps, "CreateProject", projects_pb2.CreateProjectRequest(name="made-by-grpc")
        ),
        "ProjectService/DeleteProject": unary(
            ps, "DeleteProject", projects_pb2.DeleteProjectRequest(project="no-such-project")
        ),
        "ProjectService/GetProject": unary(
            ps, "GetProject", projects_pb2.GetProjectRequest(project="perm")
        ),
        "ProjectService/ListProjects": unary(
            ps, "ListProjects", projects_pb2.ListProjectsRequest()
        ),
        "DatasetService/UploadSamples": lambda ch, md: ds(ch).UploadSamples(
            iter([upload]), metadata=md, timeout=20
        ),
        "DatasetService/GetUploadOffset": unary(
            ds,
            "GetUploadOffset",
            datasets_pb2.GetUploadOffsetRequest(project="perm", client_id="admin-upload"),
        ),
        "DatasetService/ListSamples": unary(
            ds, "ListSamples", datasets_pb2.ListSamplesRequest(project="perm")
        ),
        "DatasetService/GetSampleData": first(
            ds,
            "GetSampleData",
            datasets_pb2.GetSampleDataRequest(project="perm", sample_id=ids["sample"]),
        ),
        "DatasetService/GetClassCounts": unary(
            ds, "GetClassCounts", datasets_pb2.GetClassCountsRequest(project="perm")
        ),
        "DatasetService/DeleteSample": unary(
            ds,
            "DeleteSample",
            datasets_pb2.DeleteSampleRequest(project="perm", sample_id="no-such-sample"),
        ),
        "DatasetService/UpdateSampleBoxes": unary(
            ds,
            "UpdateSampleBoxes",
            datasets_pb2.UpdateSampleBoxesRequest(project="perm", sample_id="no-such-sample"),
        ),
        "TrainingService/StartJob": unary(
            ts, "StartJob", training_pb2.StartJobRequest(project="perm")
        ),
        "TrainingService/CancelJob": unary(
            ts, "CancelJob", training_pb2.CancelJobRequest(job_id="no-such-job")
        ),
        "TrainingService/GetJob": unary(
            ts, "GetJob", training_pb2.GetJobRequest(job_id=ids["job"])
        ),
        "TrainingService/ListJobs": unary(
            ts, "ListJobs", training_pb2.ListJobsRequest(project="perm")
        ),
        "TrainingService/WatchJob": first(
            ts, "WatchJob", training_pb2.WatchJobRequest(job_id=ids["job"])
        ),
        "ModelService/ListModelVersions": unary(
            ms, "ListModelVersions", models_pb2.ListModelVersionsRequest(project="perm")
        ),
        "ModelService/GetManifest": unary(
            ms, "GetManifest", models_pb2.GetManifestRequest(project="perm", version=1)
        ),
        "ModelService/DownloadModel": first(
            ms, "DownloadModel", models_pb2.DownloadModelRequest(project="perm", version=1)
        ),
        "ModelService/CheckForUpdate": unary(
            ms, "CheckForUpdate", models_pb2.CheckForUpdateRequest(project="perm")
        ),
        "ModelService/Predict": unary(
            ms, "Predict", models_pb2.PredictRequest(project="perm", image=image)
        ),
        "ModelService/PromoteVersion": unary(
            ms, "PromoteVersion", models_pb2.PromoteVersionRequest(project="perm", version=1)
        ),
        "ModelService/RollbackVersion": unary(
            ms, "RollbackVersion", models_pb2.RollbackVersionRequest(project="perm")
        ),
        "ModelService/SetReleasePolicy": unary(
            ms, "SetReleasePolicy", models_pb2.SetReleasePolicyRequest(project="perm")
        ),
        "ModelService/ListReleases": unary(
            ms, "ListReleases", models_pb2.ListReleasesRequest(project="perm")
        ),
        "ModelService/GetReleasePolicy": unary(
            ms, "GetReleasePolicy", models_pb2.GetReleasePolicyRequest(project="perm")
        ),
        "TokenService/CreateToken": unary(
            ks,
            "CreateToken",
            tokens_pb2.CreateTokenRequest(kind=tokens_pb2.TOKEN_KIND_DEVICE, project="perm"),
        ),
        "TokenService/ListTokens": unary(ks, "ListTokens", tokens_pb2.ListTokensRequest()),
        "TokenService/RevokeToken": unary(
            ks, "RevokeToken", tokens_pb2.RevokeTokenRequest(id="no-such-token")
        ),
        "FederatedService/StartSession": unary(
            fs, "StartSession", federated_pb2.StartSessionRequest(project="perm")
        ),
        "FederatedService/StopSession": unary(
            fs, "StopSession", federated_pb2.StopSessionRequest(session_id="no-such-session")
        ),
        "FederatedService/GetSession": unary(
            fs, "GetSession", federated_pb2.GetSessionRequest(session_id=sess)
        ),
        "FederatedService/ListSessions": unary(
            fs, "ListSessions", federated_pb2.ListSessionsRequest(project="perm")
        ),
        "FederatedService/DownloadSessionFile": first(
            fs,
            "DownloadSessionFile",
            federated_pb2.DownloadSessionFileRequest(
                session_id=sess, format=common_pb2.MODEL_FORMAT_FEATURE_EXTRACTOR
            ),
        ),
        "FederatedService/ListRounds": unary(
            fs, "ListRounds", federated_pb2.ListRoundsRequest(session_id=sess)
        ),
        "FederatedService/RegisterDevice": unary(
            fs, "RegisterDevice", federated_pb2.RegisterDeviceRequest(project="perm")
        ),
        "FederatedService/GetTask": first(
            fs, "GetTask", federated_pb2.GetTaskRequest(project="perm", device_id=dev)
        ),
        "FederatedService/PushUpdate": lambda ch, md: fs(ch).PushUpdate(
            iter([update]), metadata=md, timeout=20
        ),
        "FederatedService/Participate": lambda ch, md: next(
            iter(fs(ch).Participate(iter([participate]), metadata=md, timeout=20))
        ),
    }


# -- the matrix ---------------------------------------------------------------------------------

CELLS = [
    pytest.param(op, role, id=f"{op.name}-{role}")
    for op in OPERATIONS
    for role in ("admin", "device", "none")
]


def _expected(op: Operation, role: str) -> Access:
    if role == "none":
        return Access.NO
    return op.access(Role(role))


def _check(
    where: str, op: Operation, role: str, status: int, code: int | None, body: bytes, sample: str
) -> None:
    expected = _expected(op, role)
    if role == "none":
        assert (status, code) == (401, ErrorCode.UNAUTHENTICATED.number), where
    elif expected is Access.NO:
        assert (status, code) == (403, ErrorCode.PERMISSION_DENIED.number), where
    elif expected is Access.OWN:
        # The administrator's things are out of reach (and listings leave them out).
        assert status in (200, 201, 403, 404, 409), where
        if status >= 400:
            assert code in NOT_YOURS | {ErrorCode.NO_ACTIVE_SESSION.number}, where
        assert sample.encode() not in body, where
    else:
        assert status not in (401, 403), (where, code, body[:200])


_GRPC_HTTP = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
}


@pytest.mark.parametrize(("op", "role"), CELLS)
def test_every_cell_of_the_matrix_over_rest(perms: World, op: Operation, role: str) -> None:
    calls = _rest_calls(perms.ids)
    secret = perms.tokens[role]
    headers = {"Authorization": f"Bearer {secret}"} if secret else {}
    for route in op.rest:
        method, path, kwargs = calls[route]
        kwargs = dict(kwargs)
        extra = dict(kwargs.pop("headers", {}))
        if kwargs.pop("stream", False):  # an endless event stream: its first bytes will do
            with httpx.stream(
                method, perms.http + path, headers={**headers, **extra}, timeout=30, **kwargs
            ) as r:
                status, content = r.status_code, next(r.iter_bytes(), b"")
                raw = r.headers.get("x-mobiletrain-error-code")
        else:
            r = httpx.request(
                method, perms.http + path, headers={**headers, **extra}, timeout=30, **kwargs
            )
            status, content, raw = (
                r.status_code,
                r.content,
                r.headers.get("x-mobiletrain-error-code"),
            )
        code = int(raw) if raw else None
        _check(f"{route} as {role}", op, role, status, code, content, ADMIN_SAMPLE)


@pytest.mark.parametrize(("op", "role"), CELLS)
def test_every_cell_of_the_matrix_over_grpc(perms: World, op: Operation, role: str) -> None:
    calls = _grpc_calls(perms.ids)
    secret = perms.tokens[role]
    metadata = [("authorization", f"Bearer {secret}")] if secret else []
    with grpc.insecure_channel(perms.grpc) as channel:
        for method in op.grpc:
            try:
                reply = calls[method](channel, metadata)
                status, code = 200, None
                body = reply.SerializeToString() if reply is not None else b""
            except grpc.RpcError as err:
                rpc: Any = err
                status = _GRPC_HTTP.get(rpc.code(), 400)
                trailers = dict(rpc.trailing_metadata() or ())
                raw = trailers.get("mobiletrain-error-code")
                code = int(raw) if raw else None
                body = b""
            _check(f"{method} as {role}", op, role, status, code, body, ADMIN_SAMPLE)


def test_a_device_reads_the_samples_it_uploaded_itself(perms: World) -> None:
    headers = {"Authorization": f"Bearer {perms.tokens['device']}"}
    p = f"{perms.http}/v1/projects/perm"
    png = base64.b64encode(_png(9)).decode()
    r = httpx.post(
        f"{p}/samples:base64",
        json={"client_id": "mine-1", "label": "b", "image": png},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    listed = httpx.get(f"{p}/samples", headers=headers).json()["samples"]
    assert [s["client_id"] for s in listed] == ["mine-1"]
    mine = listed[0]["id"]
    assert httpx.get(f"{p}/samples/{mine}/data", headers=headers).status_code == 200
    theirs = httpx.get(f"{p}/samples/{perms.ids['sample']}/data", headers=headers)
    assert (theirs.status_code, theirs.json()["code"]) == (404, ErrorCode.SAMPLE_NOT_FOUND.number)
    # The administrator sees everything, and who uploaded what.
    admin = {"Authorization": f"Bearer {perms.tokens['admin']}"}
    everything = httpx.get(f"{p}/samples", headers=admin).json()["samples"]
    assert {"admin-0", "mine-1"} <= {s["client_id"] for s in everything}
    # A device may not reuse another uploader's client id to learn about its sample.
    r = httpx.post(
        f"{p}/uploads", json={"client_id": "admin-0", "label": "a", "size": 10}, headers=headers
    )
    assert (r.status_code, r.json()["code"]) == (409, ErrorCode.ALREADY_EXISTS.number)
    # By server setting, devices read nothing of the dataset.
    datasets = perms.server.container.datasets
    datasets.device_sample_access = "none"
    try:
        r = httpx.get(f"{p}/samples", headers=headers)
        assert (r.status_code, r.json()["code"]) == (403, ErrorCode.PERMISSION_DENIED.number)
    finally:
        datasets.device_sample_access = "own"


# -- the table covers the server, and the README shows the table ----------------------------------


def _server_rpcs() -> set[str]:
    from google.protobuf import descriptor_pool

    pool = descriptor_pool.Default()
    return {
        f"{name.rsplit('.', 1)[1]}/{m.name}"
        for name in SERVICE_NAMES
        for m in pool.FindServiceByName(name).methods
    }


def test_the_table_names_every_rpc_and_route_exactly_once(perms: World) -> None:
    rpcs = [m for op in OPERATIONS for m in op.grpc]
    routes = [r for op in OPERATIONS for r in op.rest]
    assert len(rpcs) == len(set(rpcs)) and len(routes) == len(set(routes))
    assert set(rpcs) == _server_rpcs()
    openapi = httpx.get(f"{perms.http}/openapi.json").json()
    served = {
        f"{method.upper()} {path}"
        for path, item in openapi["paths"].items()
        for method in item
        if path != "/healthz"
    }
    assert set(routes) == served
    # Every row has a caller here, so every cell above was really called.
    assert set(routes) <= set(_rest_calls(perms.ids)) and set(rpcs) <= set(_grpc_calls(perms.ids))


def test_the_readme_shows_the_current_table() -> None:
    assert permission_table_markdown() in README.read_text(), (
        "README.md's permission table is stale: paste mobiletrain.core.auth."
        "permission_table_markdown() into it"
    )
