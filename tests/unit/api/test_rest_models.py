"""REST model registry: versions, manifests, downloads with ETag and ranges, update checks."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mobiletrain.api.rest.app import create_app
from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.core.types import Artifact, ModelFormat, ModelVersion
from mobiletrain.wiring import build_container

SIZE = 1000


@dataclass
class Env:
    client: TestClient
    container: Container
    project_id: str
    files: dict[ModelFormat, bytes]


def add_version(container: Container, project_id: str, files: dict[ModelFormat, bytes]) -> int:
    """Store the files as blobs and a model version pointing at them; return its number."""
    artifacts = {}
    for fmt, data in files.items():
        sha = container.blobs.put(data)
        artifacts[fmt] = Artifact(format=fmt, sha256=sha, size=len(data))
    container.blobs.sync()
    model = container.store.create_model_version(
        ModelVersion(
            project_id=project_id,
            version=0,
            job_id="job-1",
            created_at=datetime.now(UTC),
            metrics={"accuracy": 0.9, "tflite": {"float32": {"accuracy": 0.875}}, "split": {}},
            manifest={"labels": ["cat", "dog"], "schema_version": 1},
            artifacts=artifacts,
        )
    )
    return model.version


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    container = build_container(Settings(data_dir=tmp_path / "data"))
    try:
        admin = container.tokens.create_bootstrap_admin()
        headers = {"Authorization": f"Bearer {admin}"}
        with TestClient(create_app(container), headers=headers) as client:
            project = client.post("/v1/projects", json={"name": "m"}).json()
            files = {ModelFormat.FLOAT32: os.urandom(SIZE), ModelFormat.KERAS: os.urandom(300)}
            add_version(container, project["id"], files)
            yield Env(client, container, project["id"], files)
    finally:
        container.close()


def assert_error(response: Any, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and response.headers["x-mobiletrain-error-code"] == str(code)
    return body


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


URL = "/v1/projects/m/models/1/download"


def test_list_and_get_versions(env: Env) -> None:
    client = env.client
    listed = client.get("/v1/projects/m/models").json()
    assert listed["current_version"] == 1 and len(listed["versions"]) == 1
    version = listed["versions"][0]
    assert version["version"] == 1 and version["current"] is True and version["job_id"] == "job-1"
    assert version["metrics"] == {"accuracy": 0.9, "tflite_accuracy": {"float32": 0.875}}
    artifacts = {a["format"]: a for a in version["artifacts"]}
    assert artifacts["float32"] == {
        "format": "float32",
        "size": SIZE,
        "sha256": sha(env.files[ModelFormat.FLOAT32]),
    }
    assert artifacts["keras"]["size"] == 300
    for ref in ("1", "0", "current"):
        assert client.get(f"/v1/projects/m/models/{ref}").json() == version
    assert client.get(f"/v1/projects/{env.project_id}/models/1").json() == version
    assert_error(client.get("/v1/projects/m/models/7"), 404, 50)
    assert_error(client.get("/v1/projects/m/models/latest"), 400, 2)
    manifest = client.get("/v1/projects/m/models/current/manifest").json()
    assert manifest["labels"] == ["cat", "dog"] and manifest["version"] == 1

    client.post("/v1/projects", json={"name": "empty"})
    assert client.get("/v1/projects/empty/models").json() == {
        "versions": [],
        "current_version": None,
        "next_page_token": "",
    }
    assert_error(client.get("/v1/projects/empty/models/current"), 409, 53)
    assert_error(client.get("/v1/projects/empty/models:check-update"), 409, 53)
    assert_error(client.get("/v1/projects/nope/models"), 404, 10)


def test_full_download_and_etag(env: Env) -> None:
    client = env.client
    data = env.files[ModelFormat.FLOAT32]
    r = client.get(URL, params={"format": "float32"})
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-length"] == str(SIZE)
    assert r.headers["etag"] == f'"{sha(data)}"'
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["x-model-version"] == "1"
    assert r.headers["x-content-sha256"] == sha(data)
    # The same name as gRPC's ModelFileInfo.file_name (ModelFormat.download_name).
    assert r.headers["content-disposition"] == 'attachment; filename="m-v1-float32.tflite"'
    assert r.headers["content-type"] == "application/octet-stream"
    assert client.get(URL).content == data  # float32 is the default format

    current = client.get("/v1/projects/m/models/current/download")
    assert current.content == data and current.headers["x-model-version"] == "1"
    keras = client.get(URL, params={"format": "keras"})
    assert keras.content == env.files[ModelFormat.KERAS]
    assert keras.headers["content-disposition"] == 'attachment; filename="m-v1-keras.keras"'

    etag = r.headers["etag"]
    for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        cached = client.get(URL, headers={"If-None-Match": header})
        assert cached.status_code == 304 and cached.content == b"", header
        assert cached.headers["etag"] == etag
    assert client.get(URL, headers={"If-None-Match": '"stale"'}).status_code == 200

    assert_error(client.get(URL, params={"format": "int8"}), 404, 51)
    assert_error(client.get(URL, params={"format": "float64"}), 400, 52)
    assert_error(client.get("/v1/projects/m/models/2/download"), 404, 50)


@pytest.mark.parametrize(
    ("header", "start", "end"),
    [
        ("bytes=10-19", 10, 19),
        ("bytes=990-", 990, 999),
        ("bytes=-5", 995, 999),
        ("bytes=0-99999", 0, 999),
        ("bytes=-5000", 0, 999),
        ("bytes=999-999", 999, 999),
    ],
)
def test_range_requests(env: Env, header: str, start: int, end: int) -> None:
    data = env.files[ModelFormat.FLOAT32]
    r = env.client.get(URL, headers={"Range": header})
    assert r.status_code == 206, r.text
    assert r.content == data[start : end + 1]
    assert r.headers["content-range"] == f"bytes {start}-{end}/{SIZE}"
    assert r.headers["content-length"] == str(end - start + 1)
    assert r.headers["etag"] == f'"{sha(data)}"'


def test_unsatisfiable_and_ignored_ranges(env: Env) -> None:
    client = env.client
    data = env.files[ModelFormat.FLOAT32]
    for header in ("bytes=1000-", "bytes=5000-6000", "bytes=-0"):
        r = client.get(URL, headers={"Range": header})
        body = assert_error(r, 416, 54)
        assert body["error"] == "invalid_range"
        assert r.headers["content-range"] == f"bytes */{SIZE}"
    # Malformed, multi-range or other units are ignored: the whole file comes back.
    for header in ("bytes=abc", "bytes=0-1,5-6", "items=0-1", "bytes=20-10"):
        r = client.get(URL, headers={"Range": header})
        assert r.status_code == 200 and r.content == data, header
    # If-Range with a stale ETag: the file changed, so send it all.
    etag = f'"{sha(data)}"'
    stale = client.get(URL, headers={"Range": "bytes=0-9", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == data
    fresh = client.get(URL, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == data[:10]


def test_check_update(env: Env) -> None:
    client = env.client
    data = env.files[ModelFormat.FLOAT32]
    url = "/v1/projects/m/models:check-update"
    same = client.get(url, params={"format": "float32", "sha256": sha(data)}).json()
    assert same["not_modified"] is True
    assert (same["version"], same["sha256"], same["size"]) == (1, sha(data), SIZE)
    assert same["format"] == "float32" and same["model"]["current"] is True
    other = client.get(url, params={"format": "float32", "sha256": "0" * 64}).json()
    assert other["not_modified"] is False
    assert client.get(url, params={"version": 1}).json()["not_modified"] is True
    assert client.get(url, params={"version": 2}).json()["not_modified"] is False
    fresh = client.get(url).json()
    assert fresh["not_modified"] is False
    downloaded = client.get(fresh["download_url"])
    assert downloaded.status_code == 200 and downloaded.content == data
    keras = client.get(url, params={"format": "keras"}).json()
    assert keras["sha256"] == sha(env.files[ModelFormat.KERAS])
    assert_error(client.get(url, params={"format": "int8"}), 404, 51)
    assert_error(client.get(url, params={"format": "nope"}), 400, 52)


def test_promote(env: Env) -> None:
    client = env.client
    newer = {ModelFormat.FLOAT32: os.urandom(50)}
    assert add_version(env.container, env.project_id, newer) == 2
    listed = client.get("/v1/projects/m/models").json()
    assert listed["current_version"] == 2
    assert [(v["version"], v["current"]) for v in listed["versions"]] == [(2, True), (1, False)]

    r = client.post("/v1/projects/m/models/1:promote")
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 1 and r.json()["current"] is True
    assert client.get("/v1/projects/m").json()["promoted_version"] == 1
    assert client.get("/v1/projects/m/models/current").json()["version"] == 1
    check = client.get(
        "/v1/projects/m/models:check-update",
        params={"sha256": sha(env.files[ModelFormat.FLOAT32])},
    ).json()
    assert check["not_modified"] is True and check["version"] == 1
    current = client.get("/v1/projects/m/models/current/download")
    assert current.headers["x-model-version"] == "1"

    back = client.post("/v1/projects/m/models/0:promote").json()
    assert back["version"] == 2 and back["current"] is True
    assert client.get("/v1/projects/m").json()["promoted_version"] is None
    assert_error(client.post("/v1/projects/m/models/9:promote"), 404, 50)
    assert_error(client.post("/v1/projects/m/models/current:promote"), 400, 2)


def test_predict_errors_without_a_usable_model(env: Env) -> None:
    client = env.client
    client.post("/v1/projects", json={"name": "empty"})
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    r = client.post("/v1/projects/empty/predict", files={"file": ("x.png", b"\x89PNG\r\n\x1a\n")})
    assert_error(r, 409, 53)
    assert_error(client.post("/v1/projects/empty/predict:base64", json={"image": png}), 409, 53)
    assert_error(client.post("/v1/projects/m/predict:base64", json={"image": "%%%"}), 400, 2)
    bad_k = {"image": png, "top_k": -1}
    assert_error(client.post("/v1/projects/m/predict:base64", json=bad_k), 400, 2)
    assert_error(client.post("/v1/projects/m/predict"), 400, 2)  # no file part


def test_metrics_route_returns_the_full_evaluation_without_training_ids(env: Env) -> None:
    files = {ModelFormat.FLOAT32: os.urandom(SIZE)}
    artifacts = {}
    for fmt, data in files.items():
        artifacts[fmt] = Artifact(format=fmt, sha256=env.container.blobs.put(data), size=SIZE)
    env.container.blobs.sync()
    metrics = {
        "accuracy": 0.5,
        "confusion_matrix": [[1, 1], [0, 2]],
        "misclassified": [{"sample_id": "s1", "label": "cat", "predicted": "dog", "score": 0.8}],
        "split": {"seed": 1, "train_ids": ["a", "b", "c"], "validation_ids": ["s1", "s2"]},
    }
    env.container.store.create_model_version(
        ModelVersion(
            project_id=env.project_id,
            version=0,
            job_id="job-2",
            created_at=datetime.now(UTC),
            metrics=metrics,
            manifest={},
            artifacts=artifacts,
        )
    )
    body = env.client.get("/v1/projects/m/models/2/metrics").json()
    assert body["confusion_matrix"] == [[1, 1], [0, 2]]
    assert body["misclassified"][0]["predicted"] == "dog"
    assert body["split"] == {"seed": 1, "validation_ids": ["s1", "s2"], "num_train": 3}
    assert env.client.get("/v1/projects/m/models/current/metrics").json()["accuracy"] == 0.5
    assert_error(env.client.get("/v1/projects/m/models/9/metrics"), 404, 50)
