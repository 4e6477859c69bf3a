"""Small object-detection datasets in COCO JSON, Pascal VOC XML and YOLO text, written by the
tests (images synthesised with Pillow), shared by the format unit tests and the CLI end-to-end
test."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

from mobiletrain.core.annotations import Box

W, H = 80, 60
# Per image: (label, x_min, y_min, x_max, y_max) in pixels.
SCENES: dict[str, list[tuple[str, int, int, int, int]]] = {
    "a.jpg": [("cat", 8, 6, 40, 30), ("dog", 40, 20, 80, 60)],
    "b.png": [("dog", 0, 0, 20, 15)],
    "c.jpg": [],  # a background image
}


def image_bytes(name: str, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format="PNG" if name.endswith(".png") else "JPEG")
    return buf.getvalue()


def expected() -> dict[str, list[Box]]:
    return {
        name: [Box(lab, x0 / W, y0 / H, x1 / W, y1 / H) for lab, x0, y0, x1, y1 in boxes]
        for name, boxes in SCENES.items()
    }


def write_images(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for seed, name in enumerate(SCENES):
        (folder / name).write_bytes(image_bytes(name, seed))


def write_coco(root: Path, with_sizes: bool = True) -> Path:
    write_images(root / "images")
    cats = {"cat": 1, "dog": 2}
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for i, (name, boxes) in enumerate(SCENES.items(), start=10):
        entry: dict[str, object] = {"id": i, "file_name": name}
        if with_sizes:
            entry.update(width=W, height=H)
        images.append(entry)
        for lab, x0, y0, x1, y1 in boxes:
            bbox = [x0, y0, x1 - x0, y1 - y0]
            annotations.append({"id": len(annotations), "image_id": i, "category_id": cats[lab],
                                "bbox": bbox, "area": bbox[2] * bbox[3], "iscrowd": 0})  # fmt: skip
    doc = {"images": images, "annotations": annotations,
           "categories": [{"id": v, "name": k} for k, v in cats.items()]}  # fmt: skip
    path = root / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def write_voc(root: Path) -> None:
    write_images(root / "JPEGImages")
    (root / "Annotations").mkdir(parents=True)
    for name, boxes in SCENES.items():
        objects = "".join(
            f"<object><name>{lab}</name><difficult>0</difficult><bndbox><xmin>{x0}</xmin>"
            f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
            for lab, x0, y0, x1, y1 in boxes
        )
        xml = (f"<annotation><folder>JPEGImages</folder><filename>{name}</filename><size>"
               f"<width>{W}</width><height>{H}</height><depth>3</depth></size>{objects}"
               "</annotation>")  # fmt: skip
        (root / "Annotations" / f"{Path(name).stem}.xml").write_text(xml)


def write_yolo(root: Path, classes: str = "classes.txt") -> None:
    write_images(root / "images" / "train")
    (root / "labels" / "train").mkdir(parents=True)
    names = ["dog", "cat"]  # indices need not follow first appearance
    for name, boxes in SCENES.items():
        if not boxes:
            continue  # YOLO: an image without a label file has no boxes
        lines = [
            f"{names.index(lab)} {(x0 + x1) / 2 / W:.6f} {(y0 + y1) / 2 / H:.6f} "
            f"{(x1 - x0) / W:.6f} {(y1 - y0) / H:.6f}"
            for lab, x0, y0, x1, y1 in boxes
        ]
        (root / "labels" / "train" / f"{Path(name).stem}.txt").write_text("\n".join(lines) + "\n")
    if classes == "classes.txt":
        (root / "classes.txt").write_text("dog\ncat\n")
    else:
        (root / "data.yaml").write_text(
            "path: .\ntrain: images/train\nnames:\n  0: dog\n  1: cat\n"
        )
