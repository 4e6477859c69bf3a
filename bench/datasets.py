"""Labelled image sets for the benchmarks, as the encoded bytes an app would upload.

* ``digits``: scikit-learn's 1,797 handwritten digits, scaled to 32x32 grayscale PNG (what the
  SDK sends for a 32x32 grayscale project).
* ``shapes``: procedurally drawn shapes (one class per shape) in random colours, sizes, positions
  and rotations on tinted crops of scikit-learn's sample photos, as 96x96 RGB JPEG. Learnable by
  the small CNN in a few epochs but not trivially.

Photos for the ingest benchmark come from :func:`bench.common.synth_photos`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPE_CLASSES = ["circle", "square", "triangle", "cross", "ring", "star"]


@dataclass
class ImageSet:
    """Encoded images with their labels and the project input spec they are meant for."""

    name: str
    images: list[bytes]
    labels: list[str]
    label_names: list[str]
    width: int
    height: int
    color_mode: str  # "rgb" or "grayscale"

    def __len__(self) -> int:
        return len(self.images)

    @property
    def megabytes(self) -> float:
        """Total encoded size in MB (10^6 bytes)."""
        return sum(map(len, self.images)) / 1e6

    def label_indices(self) -> np.ndarray:
        """Labels as indices into ``label_names`` (int64)."""
        index = {name: i for i, name in enumerate(self.label_names)}
        return np.asarray([index[label] for label in self.labels], dtype=np.int64)


def _dedupe(images: list[bytes], labels: list[str]) -> tuple[list[bytes], list[str]]:
    """Drop repeated (bytes, label) pairs: the server stores them once, so every side must."""
    seen: set[tuple[bytes, str]] = set()
    out_i, out_l = [], []
    for img, label in zip(images, labels, strict=True):
        if (img, label) not in seen:
            seen.add((img, label))
            out_i.append(img)
            out_l.append(label)
    return out_i, out_l


def digits_png(side: int = 32, limit: int | None = None) -> ImageSet:
    """scikit-learn digits as ``side`` x ``side`` grayscale PNG (bilinear upscale, like the SDK)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    pixels = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    images, labels = [], []
    for img, target in zip(pixels, digits.target, strict=True):
        pil = Image.fromarray(img, mode="L").resize((side, side), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        pil.save(buf, format="PNG")
        images.append(buf.getvalue())
        labels.append(str(int(target)))
    images, labels = _dedupe(images, labels)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return ImageSet(
        "digits 32x32 PNG",
        images,
        labels,
        [str(i) for i in range(10)],
        side,
        side,
        "grayscale",
    )


def _polygon(cx: float, cy: float, radius: float, points: int, angle: float) -> list[tuple]:
    return [
        (
            cx + radius * math.cos(angle + 2 * math.pi * k / points),
            cy + radius * math.sin(angle + 2 * math.pi * k / points),
        )
        for k in range(points)
    ]


def _draw_shape(
    draw: ImageDraw.ImageDraw, kind: str, cx: float, cy: float, r: float, angle: float, color: tuple
) -> None:
    if kind == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color)
    elif kind == "ring":
        width = max(2, int(r * 0.35))
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), outline=color, width=width)
    elif kind == "square":
        draw.polygon(_polygon(cx, cy, r * 1.1, 4, angle), fill=color)
    elif kind == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.15, 3, angle), fill=color)
    elif kind == "cross":
        arm = r * 0.35
        for a in (angle, angle + math.pi / 2):
            dx, dy = math.cos(a), math.sin(a)
            px, py = -dy * arm, dx * arm
            draw.polygon(
                [
                    (cx - dx * r + px, cy - dy * r + py),
                    (cx + dx * r + px, cy + dy * r + py),
                    (cx + dx * r - px, cy + dy * r - py),
                    (cx - dx * r - px, cy - dy * r - py),
                ],
                fill=color,
            )
    elif kind == "star":
        outer = _polygon(cx, cy, r * 1.15, 5, angle)
        inner = _polygon(cx, cy, r * 0.5, 5, angle + math.pi / 5)
        draw.polygon([p for pair in zip(outer, inner, strict=True) for p in pair], fill=color)
    else:  # pragma: no cover - SHAPE_CLASSES is closed
        raise ValueError(kind)


def shapes(n: int, side: int = 96, quality: int = 90, seed: int = 0) -> ImageSet:
    """``n`` JPEGs of ``side`` x ``side``: one shape per image, the class is the shape.

    Backgrounds are blurred, tinted crops of scikit-learn's sample photos; shape colour, size,
    position and rotation are random, so the class is only in the outline.
    """
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        kind = SHAPE_CLASSES[i % len(SHAPE_CLASSES)]
        src = photos[int(rng.integers(len(photos)))]
        h, w = src.shape[:2]
        crop_side = int(rng.integers(side, min(h, w) // 2))
        y, x = int(rng.integers(0, h - crop_side)), int(rng.integers(0, w - crop_side))
        crop = src[y : y + crop_side, x : x + crop_side].astype(np.float32)
        crop = crop * rng.uniform(0.6, 1.1, size=3) * 0.8
        bg = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((side, side))
        bg = bg.filter(ImageFilter.GaussianBlur(1.5))
        draw = ImageDraw.Draw(bg)
        r = float(rng.uniform(0.18, 0.36) * side)
        cx = float(rng.uniform(r, side - r))
        cy = float(rng.uniform(r, side - r))
        color = tuple(int(c) for c in rng.integers(90, 256, size=3))
        _draw_shape(draw, kind, cx, cy, r, float(rng.uniform(0, 2 * math.pi)), color)
        buf = io.BytesIO()
        bg.save(buf, format="JPEG", quality=quality)
        images.append(buf.getvalue())
        labels.append(kind)
    images, labels = _dedupe(images, labels)
    return ImageSet(
        f"shapes {side}x{side} JPEG", images, labels, list(SHAPE_CLASSES), side, side, "rgb"
    )
