"""REST API over a real container (SQLite + blob store): projects, samples, errors, OpenAPI."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mobiletrain.api.rest.app import create_app
from mobiletrain.config import Settings
from mobiletrain.container import Container
from mobiletrain.wiring import build_container


def _make_client(tmp_path: Path, **settings: Any) -> Iterator[tuple[TestClient, Container]]:
    container = build_container(Settings(data_dir=tmp_path / "data", **settings))
    container.hub.start()  # no executor: nothing trains in these tests
    try:
        admin = container.tokens.create_bootstrap_admin()
        headers = {"Authorization": f"Bearer {admin}"}
        with TestClient(create_app(container), headers=headers) as client:
            yield client, container
    finally:
        container.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[TestClient, Container]]:
    yield from _make_client(tmp_path)


@pytest.fixture
def client(env: tuple[TestClient, Container]) -> TestClient:
    return env[0]


def assert_error(response: Any, status: int, code: int, slug: str | None = None) -> dict[str, Any]:
    """Check the catalog error shape and header; return the body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    if slug is not None:
        assert body["error"] == slug
    assert response.headers["x-mobiletrain-error-code"] == str(code)
    return body


def upload(
    client: TestClient,
    project: str,
    files: list[tuple[str, bytes]],
    **form: Any,
) -> Any:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in files]
    return client.post(f"/v1/projects/{project}/samples", files=parts, data=form)


# --- health and OpenAPI --------------------------------------------------------------------

EXPECTED_ROUTES = {
    ("get", "/healthz"),
    ("post", "/v1/projects"),
    ("get", "/v1/projects"),
    ("get", "/v1/projects/{project}"),
    ("delete", "/v1/projects/{project}"),
    ("post", "/v1/projects/{project}/samples"),
    ("post", "/v1/projects/{project}/samples:base64"),
    ("get", "/v1/projects/{project}/samples"),
    ("get", "/v1/projects/{project}/samples/{sample_id}"),
    ("get", "/v1/projects/{project}/samples/{sample_id}/data"),
    ("delete", "/v1/projects/{project}/samples/{sample_id}"),
    ("patch", "/v1/projects/{project}/samples/{sample_id}"),
    ("get", "/v1/projects/{project}/class-counts"),
    ("post", "/v1/projects/{project}/jobs"),
    ("get", "/v1/projects/{project}/jobs"),
    ("get", "/v1/jobs/{job_id}"),
    ("post", "/v1/jobs/{job_id}:cancel"),
    ("get", "/v1/jobs/{job_id}/events"),
    ("get", "/v1/projects/{project}/models"),
    ("get", "/v1/projects/{project}/models/{version}"),
    ("get", "/v1/projects/{project}/models/{version}/manifest"),
    ("get", "/v1/projects/{project}/models/{version}/metrics"),
    ("get", "/v1/projects/{project}/models/{version}/download"),
    ("get", "/v1/projects/{project}/models:check-update"),
    ("post", "/v1/projects/{project}/models/{version}:promote"),
    ("post", "/v1/projects/{project}/models:rollback"),
    ("get", "/v1/projects/{project}/releases"),
    ("get", "/v1/projects/{project}/release-policy"),
    ("put", "/v1/projects/{project}/release-policy"),
    ("post", "/v1/projects/{project}/predict"),
    ("post", "/v1/projects/{project}/predict:base64"),
    ("post", "/v1/projects/{project}/uploads"),
    ("head", "/v1/uploads/{upload_id}"),
    ("get", "/v1/uploads/{upload_id}"),
    ("patch", "/v1/uploads/{upload_id}"),
    ("delete", "/v1/uploads/{upload_id}"),
    ("put", "/v1/projects/{project}/samples/{sample_id}/boxes"),
    ("post", "/v1/tokens"),
    ("get", "/v1/tokens"),
    ("delete", "/v1/tokens/{token_id}"),
    ("post", "/v1/projects/{project}/federated/sessions"),
    ("get", "/v1/projects/{project}/federated/sessions"),
    ("get", "/v1/federated/sessions/{session_id}"),
    ("post", "/v1/federated/sessions/{session_id}:stop"),
    ("get", "/v1/federated/sessions/{session_id}/rounds"),
    ("get", "/v1/federated/sessions/{session_id}/files/{format}"),
    ("post", "/v1/projects/{project}/federated/devices"),
    ("get", "/v1/projects/{project}/federated/task"),
    ("post", "/v1/projects/{project}/federated/updates"),
}


def test_health(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_openapi_documents_every_route_and_field(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "mobiletrain" and schema["info"]["description"]
    routes = {(m, p) for p, item in schema["paths"].items() for m in item}
    assert routes == EXPECTED_ROUTES
    operation_ids = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            assert op.get("description", "").strip(), f"{method} {path} has no description"
            assert op.get("summary"), f"{method} {path} has no summary"
            assert "422" not in op["responses"], f"{method} {path} documents 422"
            operation_ids.append(op["operationId"])
            for param in op.get("parameters", []):
                assert param.get("description"), f"{method} {path}: {param['name']}"
    assert len(operation_ids) == len(set(operation_ids))
    schemas = schema["components"]["schemas"]
    assert "ErrorPublic" in schemas and "HTTPValidationError" not in schemas
    for name, model in schemas.items():
        for field, prop in model.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description"


# --- projects and errors -------------------------------------------------------------------


def test_create_get_and_list_projects(client: TestClient) -> None:
    r = client.post(
        "/v1/projects",
        json={
            "name": "flowers",
            "labels": ["rose", "tulip"],
            "input_spec": {"width": 64, "height": 48, "color_mode": "grayscale"},
        },
    )
    assert r.status_code == 201, r.text
    project = r.json()
    assert project["labels"] == ["rose", "tulip"] and project["labels_fixed"] is True
    spec = project["input_spec"]
    assert (spec["width"], spec["height"], spec["channels"]) == (64, 48, 1)
    assert spec["normalization"] == "zero-one" and spec["scale"] == pytest.approx(1 / 255)
    assert project["promoted_version"] is None and project["created_at"].endswith("Z")

    assert client.get(f"/v1/projects/{project['id']}").json() == project
    assert client.get("/v1/projects/flowers").json() == project

    for name in ("b", "c", "d"):
        assert client.post("/v1/projects", json={"name": name}).status_code == 201
    names: list[str] = []
    token = ""
    for _ in range(10):
        page = client.get("/v1/projects", params={"page_size": 3, "page_token": token}).json()
        names += [p["name"] for p in page["projects"]]
        token = page["next_page_token"]
        if not token:
            break
    assert names == ["flowers", "b", "c", "d"]
    open_project = client.get("/v1/projects/b").json()
    assert open_project["labels"] == [] and open_project["labels_fixed"] is False


def test_error_shapes_and_codes(client: TestClient) -> None:
    assert_error(client.get("/v1/projects/nope"), 404, 10, "project_not_found")
    assert client.post("/v1/projects", json={"name": "p"}).status_code == 201
    assert_error(client.post("/v1/projects", json={"name": "p"}), 409, 11, "project_exists")
    assert_error(client.post("/v1/projects", json={"name": "a/b"}), 400, 12)
    bad_spec = {"name": "q", "input_spec": {"color_mode": "cmyk"}}
    body = assert_error(client.post("/v1/projects", json=bad_spec), 400, 13)
    assert "rgb" in body["message"]
    tiny = {"name": "q", "input_spec": {"width": 4}}
    assert_error(client.post("/v1/projects", json=tiny), 400, 13)
    assert_error(client.post("/v1/projects", json={"name": "q", "task": "detect"}), 400, 14)
    assert_error(client.post("/v1/projects", json={"name": "q", "labels": ["x", "x"]}), 400, 21)
    assert_error(client.get("/v1/projects", params={"page_token": "zz"}), 400, 30)
    assert_error(client.get("/v1/projects", params={"page_size": -1}), 400, 30)
    # A page size above the server's maximum is that maximum (as over gRPC).
    assert client.get("/v1/projects", params={"page_size": 5000}).status_code == 200
    # Request-shape problems are INVALID_ARGUMENT (2) with the field in the details.
    body = assert_error(client.post("/v1/projects", json={"labels": []}), 400, 2)
    assert body["details"]["errors"][0]["loc"] == ["body", "name"]
    assert_error(
        client.post("/v1/projects", content=b"{", headers={"content-type": "application/json"}),
        400,
        2,
    )
    assert_error(client.get("/v1/projects", params={"page_size": "many"}), 400, 2)
    assert_error(client.get("/v1/no-such-route"), 404, 3)
    assert_error(client.delete("/v1/projects"), 405, 2)


def test_unexpected_errors_do_not_leak(
    env: tuple[TestClient, Container], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, container = env

    def boom(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("secret /var/lib/db password=hunter2")

    monkeypatch.setattr(container.projects, "get", boom)
    headers = {"Authorization": f"Bearer {container.tokens.create_bootstrap_admin()}"}
    with TestClient(
        create_app(container), raise_server_exceptions=False, headers=headers
    ) as client:
        r = client.get("/v1/projects/x")
    body = assert_error(r, 500, 1, "internal")
    assert "secret" not in r.text and "hunter2" not in r.text and "details" not in body


# --- samples -------------------------------------------------------------------------------


def test_multipart_upload_rejects_bad_parts_and_keeps_the_rest(
    client: TestClient, make_image: Callable[..., bytes]
) -> None:
    client.post("/v1/projects", json={"name": "pets"})
    good = [make_image(i) for i in range(3)]
    corrupt = make_image(9)[:60]  # a PNG header with truncated data
    files = [
        ("a.png", good[0]),
        ("broken.png", corrupt),
        ("b.png", good[1]),
        ("notes.txt", b"hello, not an image"),
        ("c.jpg", make_image(2, "JPEG")),
    ]
    r = upload(client, "pets", files, label="cat")
    assert r.status_code == 200, r.text
    summary = r.json()
    assert (summary["total"], summary["accepted"], summary["rejected"]) == (5, 3, 2)
    results = summary["results"]
    assert [x["index"] for x in results] == [0, 1, 2, 3, 4]
    assert [x["filename"] for x in results] == [name for name, _ in files]
    assert [x["status"] for x in results] == [
        "accepted",
        "rejected",
        "accepted",
        "rejected",
        "accepted",
    ]
    assert (results[1]["error_code"], results[1]["error"]) == (26, "corrupt_image")
    assert (results[3]["error_code"], results[3]["error"]) == (25, "unsupported_media_type")
    assert results[1]["reason"] and results[1]["sample_id"] is None
    assert results[0]["error_code"] is None and results[0]["sample_id"]
    digest = hashlib.sha256(good[0]).hexdigest()
    assert results[0]["client_id"] == f"sha256:{digest}:cat"
    counts = client.get("/v1/projects/pets/class-counts").json()
    assert counts == {"counts": {"cat": 3}, "total": 3}


def test_same_upload_twice_is_all_duplicates(
    client: TestClient, make_image: Callable[..., bytes]
) -> None:
    client.post("/v1/projects", json={"name": "pets"})
    files = [(f"{i}.png", make_image(i)) for i in range(4)]
    labels = ["cat", "dog", "cat", "dog"]
    first = upload(client, "pets", files, labels=labels).json()
    assert first["accepted"] == 4
    before = client.get("/v1/projects/pets/class-counts").json()
    assert before["counts"] == {"cat": 2, "dog": 2}
    second = upload(client, "pets", files, labels=labels).json()
    assert (second["accepted"], second["duplicate"], second["rejected"]) == (0, 4, 0)
    assert [r["sample_id"] for r in second["results"]] == [r["sample_id"] for r in first["results"]]
    assert client.get("/v1/projects/pets/class-counts").json() == before
    # Explicit client ids are idempotency keys too.
    ids = ["k1", "k2"]
    extra = [("x.png", make_image(10)), ("y.png", make_image(11))]
    a = upload(client, "pets", extra, label="dog", client_ids=ids).json()
    b = upload(client, "pets", extra, label="dog", client_ids=ids).json()
    assert [r["client_id"] for r in a["results"]] == ids
    assert a["accepted"] == 2 and b["duplicate"] == 2
    assert client.get("/v1/projects/pets/class-counts").json()["total"] == 6


def test_multipart_request_shape_errors(
    client: TestClient, make_image: Callable[..., bytes]
) -> None:
    client.post("/v1/projects", json={"name": "pets"})
    files = [("a.png", make_image(1)), ("b.png", make_image(2))]
    assert_error(upload(client, "pets", files), 400, 2)  # no label at all
    assert_error(upload(client, "pets", files, label="x", labels=["x", "y"]), 400, 2)
    assert_error(upload(client, "pets", files, labels=["x"]), 400, 2)
    assert_error(upload(client, "pets", files, label="x", client_ids=["only-one"]), 400, 2)
    assert_error(client.post("/v1/projects/pets/samples", data={"label": "x"}), 400, 2)
    assert_error(upload(client, "nope", files, label="x"), 404, 10)
    # Per-sample label problems are per-sample rejections.
    r = upload(client, "pets", files, labels=["ok", " padded "]).json()
    assert [x["status"] for x in r["results"]] == ["accepted", "rejected"]
    assert r["results"][1]["error_code"] == 21


def test_long_label_gets_a_bounded_default_client_id(
    client: TestClient, make_image: Callable[..., bytes]
) -> None:
    client.post("/v1/projects", json={"name": "long"})
    label = "a very long label " * 6
    label = label.strip()
    r = upload(client, "long", [("a.png", make_image(1))], label=label).json()
    result = r["results"][0]
    assert result["status"] == "accepted", result
    assert result["client_id"].startswith("sha256:") and len(result["client_id"]) <= 128
    again = upload(client, "long", [("a.png", make_image(1))], label=label).json()
    assert again["results"][0]["status"] == "duplicate"


def test_base64_upload(client: TestClient, make_image: Callable[..., bytes]) -> None:
    client.post("/v1/projects", json={"name": "b64"})
    png = make_image(1)
    one = {"image": base64.b64encode(png).decode(), "label": "cat"}
    r = client.post("/v1/projects/b64/samples:base64", json=one)
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1
    assert r.json()["results"][0]["client_id"] == f"sha256:{hashlib.sha256(png).hexdigest()}:cat"
    assert client.post("/v1/projects/b64/samples:base64", json=one).json()["duplicate"] == 1

    urlsafe = base64.urlsafe_b64encode(make_image(3)).decode().rstrip("=")
    batch = [
        {
            "image": "data:image/png;base64," + base64.b64encode(make_image(2)).decode(),
            "label": "dog",
            "client_id": "d2",
        },
        {"image": "***not base64***", "label": "dog", "client_id": "bad"},
        {"image": urlsafe, "label": "dog"},
        {"image": base64.b64encode(b"plain text").decode(), "label": "dog"},
    ]
    r = client.post("/v1/projects/b64/samples:base64", json=batch).json()
    assert [x["status"] for x in r["results"]] == ["accepted", "rejected", "accepted", "rejected"]
    assert r["results"][1]["client_id"] == "bad"
    assert (r["results"][1]["error_code"], r["results"][1]["error"]) == (2, "invalid_argument")
    assert r["results"][3]["error_code"] == 25
    assert client.get("/v1/projects/b64/class-counts").json()["counts"] == {"cat": 1, "dog": 2}
    assert_error(client.post("/v1/projects/b64/samples:base64", json={"label": "x"}), 400, 2)


def test_fixed_label_project_rejects_unknown_label(
    client: TestClient, make_image: Callable[..., bytes]
) -> None:
    client.post("/v1/projects", json={"name": "fixed", "labels": ["cat", "dog"]})
    files = [("a.png", make_image(1)), ("b.png", make_image(2))]
    r = upload(client, "fixed", files, labels=["cat", "bird"]).json()
    assert [x["status"] for x in r["results"]] == ["accepted", "rejected"]
    assert (r["results"][1]["error_code"], r["results"][1]["error"]) == (22, "unknown_label")
    assert "cat" in r["results"][1]["reason"]
    counts = client.get("/v1/projects/fixed/class-counts").json()
    assert counts == {"counts": {"cat": 1, "dog": 0}, "total": 1}
    assert client.get("/v1/projects/fixed").json()["labels"] == ["cat", "dog"]


def test_paging_through_samples(client: TestClient, make_image: Callable[..., bytes]) -> None:
    client.post("/v1/projects", json={"name": "paged"})
    files = [(f"{i}.png", make_image(i)) for i in range(7)]
    labels = ["a" if i % 2 == 0 else "b" for i in range(7)]
    uploaded = upload(client, "paged", files, labels=labels).json()
    expected = [r["sample_id"] for r in uploaded["results"]]

    def walk(**params: Any) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = []
        token = ""
        for _ in range(20):
            page = client.get(
                "/v1/projects/paged/samples",
                params={"page_size": 3, "page_token": token, **params},
            ).json()
            assert len(page["samples"]) <= 3
            seen += page["samples"]
            token = page["next_page_token"]
            if not token:
                return seen
        raise AssertionError("paging did not end")

    everything = walk()
    assert [s["id"] for s in everything] == expected
    only_a = walk(label="a")
    assert [s["label"] for s in only_a] == ["a"] * 4
    assert [s["id"] for s in only_a] == expected[0::2]
    sample = everything[0]
    assert sample["media_type"] == "image/png" and (sample["width"], sample["height"]) == (16, 16)
    assert sample["data_url"] == f"/v1/projects/{sample['project_id']}/samples/{sample['id']}/data"
    assert_error(client.get("/v1/projects/paged/samples", params={"page_token": "x"}), 400, 30)


def test_get_data_and_delete_sample(client: TestClient, make_image: Callable[..., bytes]) -> None:
    client.post("/v1/projects", json={"name": "del"})
    jpeg = make_image(5, "JPEG")
    files = [("a.jpg", jpeg), ("b.png", make_image(6))]
    ids = [r["sample_id"] for r in upload(client, "del", files, label="x").json()["results"]]

    meta = client.get(f"/v1/projects/del/samples/{ids[0]}").json()
    assert meta["sha256"] == hashlib.sha256(jpeg).hexdigest() and meta["size"] == len(jpeg)
    data = client.get(meta["data_url"])
    assert data.status_code == 200 and data.content == jpeg
    assert data.headers["content-type"] == "image/jpeg"
    assert data.headers["etag"] == f'"{meta["sha256"]}"'
    cached = client.get(meta["data_url"], headers={"If-None-Match": data.headers["etag"]})
    assert cached.status_code == 304 and cached.content == b""

    r = client.delete(f"/v1/projects/del/samples/{ids[0]}")
    assert r.status_code == 204 and r.content == b""
    assert_error(client.get(f"/v1/projects/del/samples/{ids[0]}"), 404, 20, "sample_not_found")
    assert_error(client.get(f"/v1/projects/del/samples/{ids[0]}/data"), 404, 20)
    assert_error(client.delete(f"/v1/projects/del/samples/{ids[0]}"), 404, 20)
    assert client.get("/v1/projects/del/class-counts").json() == {
        "counts": {"x": 1},
        "total": 1,
    }
    listed = client.get("/v1/projects/del/samples").json()["samples"]
    assert [s["id"] for s in listed] == [ids[1]]


def test_relabel_sample(client: TestClient, make_image: Callable[..., bytes]) -> None:
    client.post("/v1/projects", json={"name": "open"})
    same = make_image(7)
    results = upload(client, "open", [("a.png", same), ("b.png", same)], labels=["a", "b"])
    first, second = (r["sample_id"] for r in results.json()["results"])

    r = client.patch(f"/v1/projects/open/samples/{first}", json={"label": "c"})
    assert r.status_code == 200, r.text
    assert r.json()["label"] == "c" and r.json()["id"] == first
    assert client.get(f"/v1/projects/open/samples/{first}").json()["label"] == "c"
    assert client.get("/v1/projects/open").json()["labels"] == ["a", "b", "c"]
    assert client.get("/v1/projects/open/class-counts").json()["counts"] == {"a": 0, "b": 1, "c": 1}
    # The same image already carries "b": the (project, bytes, label) rule holds.
    assert_error(
        client.patch(f"/v1/projects/open/samples/{first}", json={"label": "b"}),
        409,
        4,
        "already_exists",
    )
    same_label = client.patch(f"/v1/projects/open/samples/{second}", json={"label": "b"})
    assert same_label.status_code == 200 and same_label.json()["label"] == "b"
    assert_error(client.patch("/v1/projects/open/samples/nope", json={"label": "x"}), 404, 20)
    assert_error(client.patch(f"/v1/projects/open/samples/{first}", json={"label": ""}), 400, 21)
    assert_error(client.patch(f"/v1/projects/open/samples/{first}", json={}), 400, 2)

    client.post("/v1/projects", json={"name": "fixed", "labels": ["x", "y"]})
    one = upload(client, "fixed", [("x.png", make_image(8))], label="x").json()["results"][0]
    url = f"/v1/projects/fixed/samples/{one['sample_id']}"
    assert_error(client.patch(url, json={"label": "z"}), 400, 22, "unknown_label")
    assert client.patch(url, json={"label": "y"}).json()["label"] == "y"
    assert client.get("/v1/projects/fixed").json()["labels"] == ["x", "y"]
    # Another project's sample is not found through this one.
    elsewhere = f"/v1/projects/open/samples/{one['sample_id']}"
    assert_error(client.patch(elsewhere, json={"label": "a"}), 404, 20)


# --- request size limits -------------------------------------------------------------------


@pytest.fixture
def small_env(tmp_path: Path) -> Iterator[tuple[TestClient, Container]]:
    # Samples up to 4000 bytes, request bodies up to 64 * 4000 bytes.
    yield from _make_client(tmp_path, max_sample_bytes=4000)


def test_request_body_limit(
    small_env: tuple[TestClient, Container], make_image: Callable[..., bytes]
) -> None:
    client, _ = small_env
    client.post("/v1/projects", json={"name": "small"})
    big = b"x" * (64 * 4000 + 1)
    r = client.post(
        "/v1/projects/small/samples:base64",
        content=big,
        headers={"content-type": "application/json"},
    )
    assert_error(r, 413, 76, "body_too_large")  # refused from Content-Length, unread

    def chunked() -> Iterator[bytes]:
        for _ in range(70):
            yield b"y" * 4000

    r = client.post(
        "/v1/projects/small/samples:base64",
        content=chunked(),
        headers={"content-type": "application/json"},
    )
    assert_error(r, 413, 76)  # counted while read, cut at the route's cap
    # Small requests still work on the same server.
    assert client.get("/v1/projects/small").status_code == 200


def test_oversized_file_is_rejected_alone(
    small_env: tuple[TestClient, Container], make_image: Callable[..., bytes]
) -> None:
    client, _ = small_env
    client.post("/v1/projects", json={"name": "small"})
    large = make_image(1, size=64)  # random pixels: a PNG well over 4000 bytes
    assert len(large) > 4000
    files = [("ok.png", make_image(2)), ("large.png", large), ("ok2.png", make_image(3))]
    r = upload(client, "small", files, label="x").json()
    assert [x["status"] for x in r["results"]] == ["accepted", "rejected", "accepted"]
    assert (r["results"][1]["error_code"], r["results"][1]["error"]) == (24, "sample_too_large")
