"""Object-detection datasets through the CLI and the SDK against a real server (issue 21):
``projects create --task detection``, ``upload`` of COCO JSON, Pascal VOC XML and YOLO text
(detected, no ``--format``), ``--format images`` for unlabelled images, the stored boxes read
back over gRPC, and ``export-annotations --format coco --images`` uploading again to the
same boxes (the round trip)."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from annotation_sets import SCENES, expected, write_coco, write_voc, write_yolo
from typer.testing import CliRunner

from mobiletrain import cli
from mobiletrain.client.sdk import Client, boxes_from_proto
from mobiletrain.config import Settings
from mobiletrain.core.annotations import Box
from mobiletrain.server import start_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[list[str], Client]]:
    data = tmp_path_factory.mktemp("cli-detection")
    with contextlib.redirect_stdout(io.StringIO()):
        running = start_server(Settings(data_dir=data, grpc_port=0, http_port=0))
    try:
        admin = (data / "admin-token").read_text().strip()
        address = f"127.0.0.1:{running.grpc_port}"
        with Client(address, token=admin) as client:
            yield ["--server", address, "--token", admin], client
    finally:
        running.stop()


def _run(args: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(cli.console, "width", 200)
    result = CliRunner().invoke(cli.app, args)
    return result.exit_code, result.output


def stored(client: Client, project: str) -> dict[str, list[Box]]:
    """Boxes per image file name, as the server stores them."""
    return {
        s.client_id.rsplit("/", 1)[-1]: boxes_from_proto(s.boxes)
        for s in client.samples(project)
        if s.detection
    }


def assert_boxes(got: dict[str, list[Box]], want: dict[str, list[Box]]) -> None:
    assert set(got) == set(want)
    for name, boxes in want.items():
        assert [b.label for b in got[name]] == [b.label for b in boxes], name
        for g, w in zip(got[name], boxes, strict=True):
            for key in ("x_min", "y_min", "x_max", "y_max"):
                # The server keeps 6 decimals; YOLO text carries 6 as well.
                assert getattr(g, key) == pytest.approx(getattr(w, key), abs=2e-6), (name, key)


@pytest.mark.parametrize("fmt", ["coco", "voc", "yolo"])
def test_upload_each_format_stores_its_boxes(
    server: tuple[list[str], Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    base, client = server
    project = f"det-{fmt}"
    code, out = _run([*base, "projects", "create", project, "--task", "detection",
                      "--width", "64", "--height", "48"], monkeypatch)  # fmt: skip
    assert code == 0, out
    path = write_coco(tmp_path) if fmt == "coco" else tmp_path
    if fmt == "voc":
        write_voc(tmp_path)
    elif fmt == "yolo":
        write_yolo(tmp_path, "data.yaml")
    code, out = _run([*base, "upload", str(path), "-p", project], monkeypatch)
    assert code == 0, out
    assert f"{fmt}: 3 images, 3 boxes of 2 labels" in out and "1 without boxes" in out, out
    assert "accepted 3, duplicates 0, rejected 0" in out, out
    assert_boxes(stored(client, project), expected())
    # Labels: the box classes (open set), the images' labels derived from their boxes.
    assert sorted(client.get_project(project).labels) == ["cat", "dog"]
    counts = client.class_counts(project)
    assert counts["_no_boxes_"] == 1 and counts["cat"] + counts["dog"] == 2
    assert client.box_counts(project) == ({"cat": 1, "dog": 2}, 1)
    # Again: nothing new is sent.
    code, out = _run([*base, "upload", str(path), "-p", project], monkeypatch)
    assert code == 0 and "already on the server 3" in out, out


def test_export_then_import_gives_the_same_boxes(
    server: tuple[list[str], Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, client = server
    code, out = _run([*base, "projects", "create", "trip", "--task", "detection",
                      "--labels", "cat,dog,bird"], monkeypatch)  # fmt: skip
    assert code == 0, out
    code, out = _run([*base, "upload", str(write_coco(tmp_path / "in")), "-p", "trip"], monkeypatch)
    assert code == 0 and "accepted 3" in out, out
    # An edit after upload travels with the export.
    sample = next(s for s in client.samples("trip") if s.client_id == "c.jpg")
    edited = client.update_boxes("trip", sample.id, [Box("bird", 0.25, 0.25, 0.75, 0.5)])
    assert edited.label == "bird" and edited.detection
    before = stored(client, "trip")
    out_json, out_images = tmp_path / "out" / "export.json", tmp_path / "out" / "images"
    code, out = _run([*base, "export-annotations", "-p", "trip", "--format", "coco",
                      "-o", str(out_json), "--images", str(out_images)], monkeypatch)  # fmt: skip
    assert code == 0 and "3 images, 4 boxes, 3 categories" in out, out
    doc = json.loads(out_json.read_text())
    assert [c["name"] for c in doc["categories"]] == ["cat", "dog", "bird"]
    assert {i["file_name"] for i in doc["images"]} == set(SCENES)
    code, out = _run([*base, "projects", "create", "trip-back", "--task", "detection",
                      "--labels", "cat,dog,bird"], monkeypatch)  # fmt: skip
    assert code == 0, out
    code, out = _run(
        [*base, "upload", str(out_json), "-p", "trip-back", "--images", str(out_images)],
        monkeypatch,
    )
    assert code == 0 and "accepted 3, duplicates 0, rejected 0" in out, out
    assert_boxes(stored(client, "trip-back"), before)


def test_images_without_annotations_and_bad_boxes(
    server: tuple[list[str], Client], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, client = server
    code, out = _run([*base, "projects", "create", "raw", "--task", "detection",
                      "--labels", "cat,dog"], monkeypatch)  # fmt: skip
    assert code == 0, out
    write_coco(tmp_path)
    # A folder of images without annotations: say what to do; --format images sends them.
    code, out = _run([*base, "upload", str(tmp_path / "images"), "-p", "raw"], monkeypatch)
    assert code == 1 and "125" in out and "COCO" in out, out
    code, out = _run([*base, "upload", str(tmp_path / "images"), "-p", "raw", "--format",
                      "images"], monkeypatch)  # fmt: skip
    assert code == 0 and "accepted 3" in out, out
    assert client.box_counts("raw") == ({"cat": 0, "dog": 0}, 3)
    # A box far outside its image and a label outside the fixed set: those images are rejected
    # with the server's codes, the others stored.
    doc = json.loads((tmp_path / "instances.json").read_text())
    doc["annotations"][0]["bbox"] = [40, 20, 60, 40]  # 20 px past the right edge
    doc["categories"][1]["name"] = "horse"
    for image in doc["images"]:
        image["file_name"] = f"images/{image['file_name']}"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, out = _run([*base, "projects", "create", "strict", "--task", "detection",
                      "--labels", "cat,dog"], monkeypatch)  # fmt: skip
    assert code == 0, out
    code, out = _run([*base, "upload", str(bad), "-p", "strict", "--images", str(tmp_path)],
                     monkeypatch)  # fmt: skip
    assert code == 0 and "accepted 1, duplicates 0, rejected 2" in out, out
    assert "[121]" in out and "[123]" in out, out
    # Detection options belong to detection projects.
    code, out = _run([*base, "projects", "create", "plain"], monkeypatch)
    code, out = _run([*base, "upload", str(tmp_path), "-p", "plain", "--format", "coco"],
                     monkeypatch)  # fmt: skip
    assert code == 2 and "object-detection projects" in out, out
