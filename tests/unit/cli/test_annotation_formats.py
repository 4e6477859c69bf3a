"""COCO JSON, Pascal VOC XML and YOLO text as ``mobiletrain upload`` reads them: real files
written here (images synthesised with Pillow), each format's coordinate convention, format
detection and the ANNOTATION_FORMAT (125) errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from annotation_sets import SCENES, H, W, expected, write_coco, write_images, write_voc, write_yolo

from mobiletrain.client.annotations import (
    coco_document,
    detect_format,
    read_annotations,
    read_classes,
)
from mobiletrain.client.errors import ClientError
from mobiletrain.core.annotations import Box


def boxes_by_name(images: list) -> dict[str, list[Box]]:  # type: ignore[type-arg]
    return {i.client_id.rsplit("/", 1)[-1]: i.boxes for i in images}


def assert_same(got: dict[str, list[Box]], want: dict[str, list[Box]]) -> None:
    assert set(got) == set(want)
    for name, boxes in want.items():
        assert [b.label for b in got[name]] == [b.label for b in boxes], name
        for g, w in zip(got[name], boxes, strict=True):
            for key in ("x_min", "y_min", "x_max", "y_max"):
                assert getattr(g, key) == pytest.approx(getattr(w, key), abs=1e-9), (name, key)


def test_coco_reads_pixels_of_the_declared_size(tmp_path: Path) -> None:
    path = write_coco(tmp_path)
    fmt, images = read_annotations(path)
    assert fmt == "coco"
    assert {i.client_id for i in images} == set(SCENES)  # file names are the client ids
    assert_same(boxes_by_name(images), expected())
    # Without width/height in the file, the image files give the size.
    _, images = read_annotations(write_coco(tmp_path / "nosize", with_sizes=False))
    assert_same(boxes_by_name(images), expected())


def test_voc_reads_the_annotations_folder_and_finds_jpegimages(tmp_path: Path) -> None:
    write_voc(tmp_path)
    fmt, images = read_annotations(tmp_path)
    assert fmt == "voc"
    assert {i.client_id for i in images} == {f"JPEGImages/{n}" for n in SCENES}
    assert_same(boxes_by_name(images), expected())


@pytest.mark.parametrize("classes", ["classes.txt", "data.yaml"])
def test_yolo_reads_labels_beside_images_and_the_classes_file(tmp_path: Path, classes: str) -> None:
    write_yolo(tmp_path, classes)
    fmt, images = read_annotations(tmp_path)
    assert fmt == "yolo"
    got = boxes_by_name(images)
    want = expected()
    # YOLO text keeps 6 decimals: the boxes agree to a millionth.
    assert set(got) == set(want)
    for name, boxes in want.items():
        assert [b.label for b in got[name]] == [b.label for b in boxes]
        for g, w in zip(got[name], boxes, strict=True):
            assert g.x_min == pytest.approx(w.x_min, abs=2e-6)
            assert g.y_max == pytest.approx(w.y_max, abs=2e-6)


def test_yaml_names_in_all_three_spellings(tmp_path: Path) -> None:
    for i, text in enumerate(
        (
            "names: ['dog', 'cat']\n",
            "names:\n  - dog\n  - cat\nnc: 2\n",
            "names:\n  0: dog\n  1: cat\n",
        )
    ):
        path = tmp_path / f"d{i}.yaml"
        path.write_text(text)
        assert read_classes(path) == ["dog", "cat"], text


def test_detection_picks_the_one_format_and_refuses_a_mix(tmp_path: Path) -> None:
    coco = write_coco(tmp_path / "coco")
    assert detect_format(tmp_path / "coco") == ("coco", coco)
    assert detect_format(coco) == ("coco", coco)
    write_voc(tmp_path / "voc")
    assert detect_format(tmp_path / "voc") == ("voc", tmp_path / "voc")
    write_yolo(tmp_path / "yolo")
    assert detect_format(tmp_path / "yolo") == ("yolo", tmp_path / "yolo")
    (tmp_path / "plain").mkdir()
    assert detect_format(tmp_path / "plain") is None
    with pytest.raises(ClientError) as err:
        detect_format(tmp_path)  # COCO, VOC and YOLO side by side
    assert err.value.code == 125 and "--format" in str(err.value)
    # --format chooses among them.
    fmt, images = read_annotations(tmp_path / "voc", "voc")
    assert fmt == "voc" and len(images) == 3


def test_overshoot_of_one_pixel_is_clamped_larger_is_left_for_the_server(tmp_path: Path) -> None:
    path = write_coco(tmp_path)
    doc = json.loads(path.read_text())
    doc["annotations"][0]["bbox"] = [-0.6, 0, 81, 60]  # 0.6 px left and right of the image
    doc["annotations"][1]["bbox"] = [40, 20, 50, 40]  # 10 px past the right edge
    path.write_text(json.dumps(doc))
    boxes = boxes_by_name(read_annotations(path)[1])["a.jpg"]
    assert (boxes[0].x_min, boxes[0].x_max) == (0.0, 1.0)
    assert boxes[1].x_max == pytest.approx(90 / W)  # > 1: the server says BOX_OUT_OF_IMAGE


@pytest.mark.parametrize(
    ("break_it", "words"),
    [
        (lambda root: (root / "instances.json").write_text("{not json"), "not a JSON"),
        (lambda root: _edit(root, lambda d: d["annotations"][0].update(bbox=[1, 2])), "bbox"),
        (lambda root: _edit(root, lambda d: d["annotations"][0].update(category_id=9)), "category"),
        (lambda root: _edit(root, lambda d: d["annotations"][0].update(image_id=99)), "image_id"),
        (lambda root: (root / "images" / "b.png").unlink(), "not found"),
    ],
)
def test_unreadable_coco_is_annotation_format(tmp_path: Path, break_it, words: str) -> None:  # type: ignore[no-untyped-def]
    write_coco(tmp_path)
    break_it(tmp_path)
    with pytest.raises(ClientError) as err:
        read_annotations(tmp_path / "instances.json", "coco")
    assert err.value.code == 125 and words in str(err.value), err.value


def _edit(root: Path, change) -> None:  # type: ignore[no-untyped-def]
    path = root / "instances.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def test_unreadable_voc_and_yolo_are_annotation_format(tmp_path: Path) -> None:
    write_voc(tmp_path / "voc")
    (tmp_path / "voc" / "Annotations" / "a.xml").write_text("<annotation><filename>a.jpg")
    with pytest.raises(ClientError) as err:
        read_annotations(tmp_path / "voc", "voc")
    assert err.value.code == 125 and "XML" in str(err.value)
    write_yolo(tmp_path / "yolo")
    (tmp_path / "yolo" / "labels" / "train" / "a.txt").write_text("7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ClientError) as err:
        read_annotations(tmp_path / "yolo", "yolo")
    assert err.value.code == 125 and "class 7" in str(err.value)
    (tmp_path / "yolo" / "labels" / "train" / "a.txt").write_text("0 0.5 0.5\n")
    with pytest.raises(ClientError) as err:
        read_annotations(tmp_path / "yolo", "yolo")
    assert err.value.code == 125 and "line 1" in str(err.value)
    (tmp_path / "yolo" / "classes.txt").unlink()
    with pytest.raises(ClientError) as err:
        read_annotations(tmp_path / "yolo", "yolo")
    assert err.value.code == 125 and "classes" in str(err.value)


def test_coco_document_reads_back_to_the_same_boxes(tmp_path: Path) -> None:
    write_images(tmp_path)
    want = expected()
    doc = coco_document([(n, W, H, want[n]) for n in SCENES], ["dog", "cat", "bird"])
    assert [c["name"] for c in doc["categories"]] == ["dog", "cat", "bird"]
    assert len(doc["annotations"]) == 3 and doc["annotations"][0]["bbox"] == [8, 6, 32, 24]
    path = tmp_path / "export.json"
    path.write_text(json.dumps(doc))
    assert_same(boxes_by_name(read_annotations(path)[1]), want)
