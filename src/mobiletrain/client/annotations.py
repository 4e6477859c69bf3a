"""Object-detection annotation files on the client: COCO JSON, Pascal VOC XML, YOLO text.

:func:`read_annotations` turns a dataset in one of the three formats people already have into
:class:`AnnotatedImage` objects (an image file, its client id and its boxes normalised to
0..1), and :func:`detect_format` tells the formats apart so ``mobiletrain upload`` needs no
``--format`` when one kind of annotation is found. :func:`coco_document` writes boxes back as
COCO JSON (``mobiletrain export-annotations``).

Coordinate conventions (each file format's own, converted to the server's normalised
``x_min, y_min, x_max, y_max`` with the origin top-left):

* COCO: ``bbox = [x, y, width, height]`` in pixels of the image's ``width`` x ``height``.
* Pascal VOC: ``<bndbox>`` ``xmin, ymin, xmax, ymax`` in pixels of ``<size>`` (taken as
  continuous coordinates, as albumentations' ``pascal_voc`` format does; no 1-based shift).
* YOLO: one ``class x_center y_center width height`` line per box, already normalised; class
  indices name lines of the classes file (``classes.txt``, ``*.names`` or ``data.yaml``).

Coordinates that overshoot the image by up to one pixel (rounding in annotation tools) are
clamped to its edge; larger overshoots are sent as they are, so the server rejects that image
with BOX_OUT_OF_IMAGE (121). A file that cannot be read raises ANNOTATION_FORMAT (125).
"""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from mobiletrain.client.errors import ClientError
from mobiletrain.core.annotations import Box
from mobiletrain.core.errors import ErrorCode

FORMATS = ("coco", "voc", "yolo")
"""The annotation formats ``mobiletrain upload --format`` reads."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")
_CLASS_FILES = ("classes.txt", "obj.names", "data.yaml", "data.yml", "dataset.yaml")


@dataclass
class AnnotatedImage:
    """One image to upload with its boxes ([]: an image without boxes)."""

    client_id: str  # the image's path relative to the dataset root (posix), its upload key
    path: Path
    boxes: list[Box]


def format_error(where: Path | str, why: str) -> ClientError:
    """ANNOTATION_FORMAT (125) naming the file and what is wrong with it."""
    code = ErrorCode.ANNOTATION_FORMAT
    return ClientError(code.number, code.grpc_status, f"{where}: {why}")


# -- the shared conversion ---------------------------------------------------------------------


def _clamp(value: float, size: float) -> float:
    """A pixel coordinate → 0..1, clamping overshoots of up to one pixel."""
    if -1.0 <= value < 0.0:
        value = 0.0
    elif size < value <= size + 1.0:
        value = size
    return value / size


def pixel_box(label: str, x0: float, y0: float, x1: float, y1: float, w: float, h: float) -> Box:
    """A box in pixels of a ``w`` x ``h`` image → normalised."""
    return Box(label, _clamp(x0, w), _clamp(y0, h), _clamp(x1, w), _clamp(y1, h))


def _number(value: Any, where: Path, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise format_error(where, f"{what} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise format_error(where, f"{what} is not finite: {value!r}")
    return number


def image_size(path: Path) -> tuple[int, int]:
    """Width and height of an image file as displayed (EXIF orientation applied)."""
    try:
        with Image.open(path) as img:
            w, h = img.size
            orientation = img.getexif().get(0x0112, 1)
    except Exception as exc:  # Pillow raises many types for bad data
        raise format_error(path, f"cannot read the image ({type(exc).__name__})") from None
    return (h, w) if orientation in (5, 6, 7, 8) else (w, h)


def _rel(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


# -- COCO ----------------------------------------------------------------------------------------


def is_coco(path: Path) -> bool:
    """Whether ``path`` is a JSON file with COCO's ``images`` and ``annotations`` lists."""
    if path.suffix.lower() != ".json" or not path.is_file():
        return False
    try:
        with path.open("rb") as f:
            head = f.read(1 << 20)
        if b'"images"' not in head and path.stat().st_size > len(head):
            return False
        doc = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("images"), list) and "annotations" in doc


def read_coco(json_path: Path, images_root: Path | None = None) -> list[AnnotatedImage]:
    """A COCO detection file → its images with their boxes (images without annotations: []).

    Image ``file_name``s are relative to ``images_root`` (default: the JSON file's folder, or
    its ``images/`` subfolder when the files are there); they are the client ids.
    """
    try:
        doc = json.loads(json_path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise format_error(json_path, f"not a JSON file ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise format_error(json_path, "a COCO file needs an `images` list")
    annotations = doc.get("annotations") or []
    categories = doc.get("categories") or []
    if not isinstance(annotations, list) or not isinstance(categories, list):
        raise format_error(json_path, "`annotations` and `categories` must be lists")
    names: dict[Any, str] = {}
    for cat in categories:
        if not isinstance(cat, dict) or "id" not in cat or not isinstance(cat.get("name"), str):
            raise format_error(json_path, f"a category needs an `id` and a `name`: {cat!r}")
        names[cat["id"]] = cat["name"]
    root = images_root or _coco_root(json_path, doc["images"])
    images: dict[Any, tuple[AnnotatedImage, float, float]] = {}
    for img in doc["images"]:
        if (
            not isinstance(img, dict)
            or "id" not in img
            or not isinstance(img.get("file_name"), str)
        ):
            raise format_error(json_path, f"an image needs an `id` and a `file_name`: {img!r}")
        path = root / img["file_name"]
        if not path.is_file():
            raise format_error(json_path, f"image {img['file_name']!r} not found in {root}")
        if img.get("width") and img.get("height"):
            w = _number(img["width"], json_path, "image width")
            h = _number(img["height"], json_path, "image height")
        else:
            w, h = image_size(path)
        if w <= 0 or h <= 0:
            raise format_error(json_path, f"image {img['file_name']!r} has no size")
        images[img["id"]] = (AnnotatedImage(img["file_name"], path, []), w, h)
    for ann in annotations:
        if not isinstance(ann, dict):
            raise format_error(json_path, f"an annotation must be an object: {ann!r}")
        entry = images.get(ann.get("image_id"))
        if entry is None:
            raise format_error(
                json_path, f"annotation for unknown image_id {ann.get('image_id')!r}"
            )
        if ann.get("category_id") not in names:
            raise format_error(
                json_path, f"annotation with unknown category_id {ann.get('category_id')!r}"
            )
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise format_error(json_path, f"bbox must be [x, y, width, height]: {bbox!r}")
        x, y, bw, bh = (_number(v, json_path, "bbox value") for v in bbox)
        image, w, h = entry
        image.boxes.append(pixel_box(names[ann["category_id"]], x, y, x + bw, y + bh, w, h))
    return [image for image, _, _ in images.values()]


def _coco_root(json_path: Path, images: list[Any]) -> Path:
    """Where a COCO file's images lie: next to it, or in an ``images/`` folder beside it."""
    base = json_path.parent
    first = next((i.get("file_name") for i in images if isinstance(i, dict)), None)
    if isinstance(first, str):
        for candidate in (base, base / "images", base.parent / "images"):
            if (candidate / first).is_file():
                return candidate
    return base


def coco_document(
    images: Sequence[tuple[str, int, int, Sequence[Box]]], labels: Sequence[str]
) -> dict[str, Any]:
    """A COCO detection document: ``images`` as (file_name, width, height, boxes), category
    ids 1.. in ``labels`` order (box labels outside it are appended)."""
    names = list(labels)
    for _, _, _, boxes in images:
        names += [b.label for b in boxes if b.label not in names]
    ids = {name: i + 1 for i, name in enumerate(names)}
    out_images: list[dict[str, Any]] = []
    out_annotations: list[dict[str, Any]] = []
    for image_id, (file_name, w, h, boxes) in enumerate(images, start=1):
        out_images.append({"id": image_id, "file_name": file_name, "width": w, "height": h})
        for b in boxes:
            bw, bh = (b.x_max - b.x_min) * w, (b.y_max - b.y_min) * h
            out_annotations.append(
                {
                    "id": len(out_annotations) + 1,
                    "image_id": image_id,
                    "category_id": ids[b.label],
                    "bbox": [b.x_min * w, b.y_min * h, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
    return {
        "info": {"description": "exported by mobiletrain export-annotations"},
        "images": out_images,
        "annotations": out_annotations,
        "categories": [{"id": ids[n], "name": n, "supercategory": ""} for n in names],
    }


# -- Pascal VOC ----------------------------------------------------------------------------------


def _voc_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.xml") if p.is_file() and _is_voc(p))


def _is_voc(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return b"<annotation" in f.read(4096)
    except OSError:
        return False


def read_voc(root: Path) -> list[AnnotatedImage]:
    """Every Pascal VOC XML under ``root`` → its image with boxes.

    The image is ``<filename>`` next to the XML, in a ``JPEGImages/`` folder beside its
    ``Annotations/`` folder, or under ``root``; client ids are image paths relative to ``root``.
    """
    out = []
    for xml_path in _voc_files(root):
        try:
            tree = ET.parse(xml_path)
        except ET.ParseError as exc:
            raise format_error(xml_path, f"not well-formed XML ({exc})") from None
        ann = tree.getroot()
        if ann.tag != "annotation":
            raise format_error(xml_path, f"root element is <{ann.tag}>, not <annotation>")
        path = _voc_image(xml_path, root, (ann.findtext("filename") or "").strip())
        size = ann.find("size")
        w = _number(size.findtext("width"), xml_path, "width") if size is not None else 0.0
        h = _number(size.findtext("height"), xml_path, "height") if size is not None else 0.0
        if w <= 0 or h <= 0:  # some tools write 0: the file knows
            w, h = image_size(path)
        boxes = []
        for obj in ann.iter("object"):
            name = (obj.findtext("name") or "").strip()
            bnd = obj.find("bndbox")
            if bnd is None:
                raise format_error(xml_path, f"object {name!r} has no <bndbox>")
            x0, y0, x1, y1 = (
                _number(bnd.findtext(k), xml_path, k) for k in ("xmin", "ymin", "xmax", "ymax")
            )
            boxes.append(pixel_box(name, x0, y0, x1, y1, w, h))
        out.append(AnnotatedImage(_rel(path, root), path, boxes))
    return out


def _voc_image(xml_path: Path, root: Path, filename: str) -> Path:
    folders = [xml_path.parent, xml_path.parent.parent / "JPEGImages", root]
    names = [filename] if filename else []
    names += [xml_path.stem + s for s in IMAGE_SUFFIXES]
    for folder in folders:
        for name in names:
            if (folder / name).is_file():
                return folder / name
    raise format_error(xml_path, f"its image {filename or xml_path.stem!r} was not found")


# -- YOLO ----------------------------------------------------------------------------------------


def find_classes_file(root: Path) -> Path | None:
    """The YOLO classes file of a dataset: classes.txt, obj.names, *.names or data.yaml."""
    for name in _CLASS_FILES:
        for found in sorted(root.rglob(name)):
            return found
    names = sorted(root.rglob("*.names"))
    return names[0] if names else None


def read_classes(path: Path) -> list[str]:
    """Class names by index: one per line (``classes.txt``, ``*.names``), or ``names`` in a
    ``data.yaml`` (a list, inline or one ``- name`` per line, or ``index: name`` lines)."""
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise format_error(path, f"cannot read the classes file ({exc})") from None
    if path.suffix.lower() not in (".yaml", ".yml"):
        names = [line.strip() for line in text.splitlines() if line.strip()]
    else:
        names = _yaml_names(text, path)
    if not names:
        raise format_error(path, "no class names")
    return names


def _yaml_names(text: str, path: Path) -> list[str]:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^names\s*:\s*(.*)$", line)
        if not m:
            continue
        rest = m.group(1).strip()
        if rest.startswith("["):
            return [_unquote(v) for v in rest.strip("[]").split(",") if v.strip()]
        out: dict[int, str] = {}
        for item in lines[i + 1 :]:
            if item.strip() and not item.startswith((" ", "\t", "-")):
                break
            entry = item.strip()
            if entry.startswith("-"):
                out[len(out)] = _unquote(entry[1:])
            elif ":" in entry:
                key, _, value = entry.partition(":")
                if key.strip().isdigit():
                    out[int(key)] = _unquote(value)
        return [out[k] for k in sorted(out)]
    raise format_error(path, "no `names:` entry")


def _unquote(value: str) -> str:
    return value.strip().strip("'\"")


def _yolo_label_files(root: Path, classes: Path | None) -> list[Path]:
    skip = {classes} if classes else set()
    return sorted(
        p
        for p in root.rglob("*.txt")
        if p.is_file() and p not in skip and p.name not in ("classes.txt", "README.txt")
    )


def read_yolo(root: Path, classes_file: Path | None = None) -> list[AnnotatedImage]:
    """Every image under ``root`` with its YOLO label file (``images/x.jpg`` ↔
    ``labels/x.txt``, or ``x.txt`` beside the image); an image without one has no boxes."""
    classes_path = classes_file or find_classes_file(root)
    if classes_path is None:
        raise format_error(
            root,
            "YOLO labels need a classes file (classes.txt, obj.names, "
            "data.yaml); give it with --classes",
        )
    names = read_classes(classes_path)
    images = sorted(
        p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not images:
        raise format_error(root, "no images (.jpg, .png, .webp) found")
    out = []
    for image in images:
        label_file = _yolo_label_path(image)
        boxes: list[Box] = []
        if label_file is not None:
            boxes = _read_yolo_file(label_file, names)
        out.append(AnnotatedImage(_rel(image, root), image, boxes))
    return out


def _yolo_label_path(image: Path) -> Path | None:
    beside = image.with_suffix(".txt")
    if beside.is_file():
        return beside
    parts = list(image.parts)
    for i in range(len(parts) - 1, -1, -1):  # the last "images" folder ↔ "labels"
        if parts[i] == "images":
            candidate = Path(*parts[:i], "labels", *parts[i + 1 :]).with_suffix(".txt")
            return candidate if candidate.is_file() else None
    return None


def _read_yolo_file(path: Path, names: Sequence[str]) -> list[Box]:
    boxes = []
    for n, line in enumerate(path.read_text("utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise format_error(
                path,
                f"line {n}: expected `class x_center y_center width height`, got {line.strip()!r}",
            )
        try:
            index = int(fields[0])
        except ValueError:
            raise format_error(path, f"line {n}: class {fields[0]!r} is not an index") from None
        if not 0 <= index < len(names):
            raise format_error(
                path, f"line {n}: class {index} is not in the classes file ({len(names)} classes)"
            )
        xc, yc, bw, bh = (_number(v, path, f"line {n}") for v in fields[1:])
        boxes.append(
            pixel_box(names[index], xc - bw / 2, yc - bh / 2, xc + bw / 2, yc + bh / 2, 1.0, 1.0)
        )
    return boxes


# -- detection and dispatch ----------------------------------------------------------------------


def detect_format(path: Path) -> tuple[str, Path] | None:
    """The annotation format found at ``path`` (a COCO JSON file or a folder) and the file or
    folder to read; None when there is none. Several formats in one folder: ANNOTATION_FORMAT
    asking for ``--format``."""
    if path.is_file():
        if is_coco(path):
            return "coco", path
        raise format_error(path, "not a COCO JSON file (give a folder for VOC or YOLO)")
    found: list[tuple[str, Path]] = []
    cocos = [p for p in sorted(path.rglob("*.json")) if is_coco(p)]
    if len(cocos) > 1:
        listed = ", ".join(_rel(p, path) for p in cocos[:5])
        raise format_error(path, f"several COCO files ({listed}); give one of them as the path")
    if cocos:
        found.append(("coco", cocos[0]))
    if _voc_files(path):
        found.append(("voc", path))
    classes = find_classes_file(path)
    if classes is not None and _yolo_label_files(path, classes):
        found.append(("yolo", path))
    if len(found) > 1:
        kinds = ", ".join(k for k, _ in found)
        raise format_error(
            path, f"annotations of several formats ({kinds}); pick one with --format"
        )
    return found[0] if found else None


def read_annotations(
    path: Path, fmt: str = "", classes: Path | None = None, images_root: Path | None = None
) -> tuple[str, list[AnnotatedImage]]:
    """Read a detection dataset: ``fmt`` one of :data:`FORMATS`, or "" to detect it.

    Returns the format and the images. ANNOTATION_FORMAT (125) when nothing readable is found.
    """
    if fmt and fmt not in FORMATS:
        raise format_error(path, f"unknown format {fmt!r}; allowed: {', '.join(FORMATS)}")
    if not fmt:
        found = detect_format(path)
        if found is None:
            raise format_error(
                path, "no COCO JSON, Pascal VOC XML or YOLO labels with a classes file found"
            )
        fmt, path = found
    if fmt == "coco":
        if path.is_dir():
            cocos = [p for p in sorted(path.rglob("*.json")) if is_coco(p)]
            if len(cocos) != 1:
                raise format_error(path, f"expected one COCO JSON file, found {len(cocos)}")
            path = cocos[0]
        return fmt, read_coco(path, images_root)
    if not path.is_dir():
        raise format_error(path, f"{fmt.upper()} annotations are read from a folder")
    if fmt == "voc":
        images = read_voc(path)
        if not images:
            raise format_error(path, "no Pascal VOC XML files")
        return fmt, images
    return fmt, read_yolo(path, classes)


def labels_of(images: Iterable[AnnotatedImage]) -> list[str]:
    """Every box label, in first-seen order."""
    return list(dict.fromkeys(b.label for image in images for b in image.boxes))
