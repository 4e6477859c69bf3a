"""The dashboard's static files at /: index fallback for its routes, assets, API paths untouched."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mobiletrain.api.rest import web
from mobiletrain.api.rest.app import create_app
from mobiletrain.config import Settings
from mobiletrain.wiring import build_container

INDEX = "<!doctype html><title>dashboard</title>"


def _client(tmp_path: Path, dist: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setattr(web, "DIST_DIR", dist)
    container = build_container(Settings(data_dir=tmp_path / "data"))
    try:
        with TestClient(create_app(container)) as client:
            yield client
    finally:
        container.close()


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    folder = tmp_path / "dist"
    (folder / "assets").mkdir(parents=True)
    (folder / "index.html").write_text(INDEX)
    (folder / "assets" / "index-abc.js").write_text("console.log(1)")
    (tmp_path / "secret.txt").write_text("not served")
    return folder


@pytest.fixture
def client(tmp_path: Path, dist: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    yield from _client(tmp_path, dist, monkeypatch)


def test_index_and_client_side_routes(client: TestClient) -> None:
    for path in ("/", "/projects/digits/train", "/projects/a.b/models/3", "/index.html"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.text == INDEX and r.headers["content-type"].startswith("text/html")
        assert r.headers["cache-control"] == "no-cache"
    assert client.head("/projects/x").status_code == 200


def test_assets_are_cached_and_missing_ones_are_404(client: TestClient) -> None:
    r = client.get("/assets/index-abc.js")
    assert r.status_code == 200 and r.text == "console.log(1)"
    assert "immutable" in r.headers["cache-control"]
    assert "javascript" in r.headers["content-type"]
    assert client.get("/assets/index-old.js").status_code == 404


def test_no_file_outside_the_build(dist: Path) -> None:
    assert web._resolve(dist.resolve(), "../secret.txt") is None
    assert web._resolve(dist.resolve(), "assets/../../secret.txt") is None
    assert web._resolve(dist.resolve(), "assets") is None  # a folder
    assert web._resolve(dist.resolve(), "assets/index-abc.js") is not None


def test_api_paths_keep_their_answers(client: TestClient) -> None:
    # Every /v1 path needs a token before anything else, known route or not.
    r = client.get("/v1/no-such-route")
    assert r.status_code == 401 and r.json()["code"] == 60
    assert client.get("/v1").status_code == 401
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/openapi.json").json()["info"]["title"] == "mobiletrain"
    assert "swagger" in client.get("/docs").text.lower()
    # The dashboard is GET only: other methods on other paths still get the catalog's 404.
    r = client.post("/projects/x")
    assert r.status_code == 404 and r.json()["code"] == 3
    paths = client.get("/openapi.json").json()["paths"]
    assert not any(not p.startswith(("/v1", "/healthz")) for p in paths)


def test_without_a_build_the_root_says_how_to_make_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for client in _client(tmp_path, tmp_path / "missing", monkeypatch):
        r = client.get("/")
        assert r.status_code == 503 and "make web" in r.text
