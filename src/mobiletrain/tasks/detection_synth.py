"""Synthetic detection scenes: coloured shapes composited onto real photos, with known boxes.

Used by ``mobiletrain demo --task detection``, the tests and the benchmark. Backgrounds are
random crops (random position and zoom, sometimes mirrored) of the photos that ship with
scikit-learn (``sklearn.datasets.load_sample_images``: a temple and a flower), so a detector
must find objects on busy, real textures. Each scene holds 0–5 objects of the :data:`LABELS`
classes at sizes from about 8 % to 45 % of the image side, in random saturated colours with
a darker outline, placed so that they may overlap (occlusion: a later shape is drawn over an
earlier one; the boxes stay the full extent of each shape, as COCO boxes do). Scene sizes vary
(landscape, portrait, square), so the stored images are resized by the trainer like phone
photos. Held-out scenes come from another seed.

NumPy and Pillow only; :func:`write_coco` writes a folder of JPEG files with one COCO
``annotations.json`` (the format ``mobiletrain upload --format coco`` reads).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

LABELS = ("circle", "square", "triangle")
SIZES = ((256, 256), (320, 240), (240, 320), (288, 224))
"""Scene sizes (width, height) drawn at random."""
MAX_OBJECTS = 5


@dataclass(frozen=True)
class SceneBox:
    """One object's box, normalised 0..1 (x right, y down, origin top-left)."""

    label: str
    x_min: float
    y_min: float
    x_max: float
    y_max: float

    def to_dict(self) -> dict[str, float | str]:
        """The wire's JSON box."""
        return {
            "label": self.label,
            "x_min": self.x_min,
            "y_min": self.y_min,
            "x_max": self.x_max,
            "y_max": self.y_max,
        }


@dataclass(frozen=True)
class Scene:
    """One synthetic photo (JPEG bytes) and its boxes."""

    name: str
    jpeg: bytes
    width: int
    height: int
    boxes: tuple[SceneBox, ...]


@cache
def _photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(img, dtype=np.uint8) for img in load_sample_images().images)


def _background(rng: np.random.Generator, width: int, height: int) -> Image.Image:
    photo = _photos()[int(rng.integers(len(_photos())))]
    ph, pw = photo.shape[:2]
    # A crop covering 35..100 % of the photo's smaller side, with the scene's aspect ratio.
    scale = rng.uniform(0.35, 1.0)
    ch = int(min(ph, pw * height / width) * scale)
    cw = int(ch * width / height)
    y0 = int(rng.integers(0, ph - ch + 1))
    x0 = int(rng.integers(0, pw - cw + 1))
    crop = Image.fromarray(photo[y0 : y0 + ch, x0 : x0 + cw])
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return crop.resize((width, height), Image.Resampling.BILINEAR)


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    # A saturated hue: one channel high, one low, one anywhere.
    values = [int(rng.integers(200, 256)), int(rng.integers(0, 60)), int(rng.integers(0, 256))]
    order = rng.permutation(3)
    return (values[order[0]], values[order[1]], values[order[2]])


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _draw(
    draw: ImageDraw.ImageDraw,
    label: str,
    box: tuple[int, int, int, int],
    fill: tuple[int, int, int],
) -> None:
    outline = tuple(int(c * 0.4) for c in fill)
    x0, y0, x1, y1 = box
    width = max(1, (x1 - x0) // 16)
    if label == "circle":
        draw.ellipse(box, fill=fill, outline=outline, width=width)
    elif label == "square":
        draw.rectangle(box, fill=fill, outline=outline, width=width)
    else:
        draw.polygon([((x0 + x1) / 2, y0), (x1, y1), (x0, y1)], fill=fill, outline=outline)


def scene(rng: np.random.Generator, name: str, max_objects: int = MAX_OBJECTS) -> Scene:
    """One scene: a background crop and 0..``max_objects`` shapes (about 1 in 20 empty)."""
    width, height = SIZES[int(rng.integers(len(SIZES)))]
    image = _background(rng, width, height)
    draw = ImageDraw.Draw(image)
    count = 0 if rng.random() < 0.05 else int(rng.integers(1, max_objects + 1))
    placed: list[tuple[float, float, float, float]] = []
    boxes: list[SceneBox] = []
    side = min(width, height)
    for _ in range(count):
        for _attempt in range(20):
            label = LABELS[int(rng.integers(len(LABELS)))]
            # Log-uniform sizes: as many small objects as large ones.
            size = side * float(np.exp(rng.uniform(np.log(0.08), np.log(0.45))))
            w = size * (1.0 if label == "circle" else rng.uniform(0.8, 1.25))
            h = size * (1.0 if label == "circle" else rng.uniform(0.8, 1.25))
            w, h = min(w, width - 2), min(h, height - 2)
            x0 = rng.uniform(0, width - w)
            y0 = rng.uniform(0, height - h)
            norm = (x0 / width, y0 / height, (x0 + w) / width, (y0 + h) / height)
            # Overlap allowed (occlusion) but never hiding most of an earlier object.
            if all(_iou(norm, other) < 0.3 for other in placed):
                break
        else:
            continue
        placed.append(norm)
        _draw(draw, label, (int(x0), int(y0), int(x0 + w), int(y0 + h)), _colour(rng))
        x_min, y_min = int(x0) / width, int(y0) / height
        x_max, y_max = (int(x0 + w) + 1) / width, (int(y0 + h) + 1) / height
        boxes.append(SceneBox(label, x_min, y_min, min(x_max, 1.0), min(y_max, 1.0)))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90)
    return Scene(name, out.getvalue(), width, height, tuple(boxes))


def scenes(count: int, seed: int, prefix: str = "scene") -> list[Scene]:
    """``count`` scenes (the same ones for the same seed); another seed gives held-out ones."""
    rng = np.random.default_rng(seed)
    return [scene(rng, f"{prefix}-{seed}-{i:04d}") for i in range(count)]


def coco_document(items: list[Scene]) -> dict[str, object]:
    """The COCO annotation document of ``items`` (pixel boxes ``[x, y, width, height]``)."""
    categories = [{"id": i + 1, "name": name} for i, name in enumerate(LABELS)]
    category = {name: i + 1 for i, name in enumerate(LABELS)}
    images: list[dict[str, object]] = []
    annotations: list[dict[str, object]] = []
    for image_id, item in enumerate(items, start=1):
        images.append(
            {
                "id": image_id,
                "file_name": f"{item.name}.jpg",
                "width": item.width,
                "height": item.height,
            }
        )
        for box in item.boxes:
            x, y = box.x_min * item.width, box.y_min * item.height
            w, h = (box.x_max - box.x_min) * item.width, (box.y_max - box.y_min) * item.height
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": category[box.label],
                    "bbox": [round(x, 2), round(y, 2), round(w, 2), round(h, 2)],
                    "area": round(w * h, 2),
                    "iscrowd": 0,
                }
            )
    return {"images": images, "annotations": annotations, "categories": categories}


def write_coco(directory: Path, items: list[Scene]) -> Path:
    """Write ``items`` as JPEG files plus ``annotations.json`` (COCO) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for item in items:
        (directory / f"{item.name}.jpg").write_bytes(item.jpeg)
    path = directory / "annotations.json"
    path.write_text(json.dumps(coco_document(items)))
    return path
