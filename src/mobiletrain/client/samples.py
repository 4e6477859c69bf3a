"""Samples on the client side: what to upload from a folder, prepared as the phone app does.

:func:`scan_directory` finds ``DIR/<label>/<file>`` samples of a task (:func:`task_suffixes`),
:func:`prepare_image` resizes an image to the project's input before sending, and
:class:`UploadReport` adds up what the server said about each sample.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from mobiletrain import tasks
from mobiletrain._proto.mobiletrain.v1 import common_pb2, datasets_pb2
from mobiletrain.client.errors import ClientError
from mobiletrain.core.annotations import Box
from mobiletrain.core.errors import MobiletrainError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp"})
"""The image files ``upload`` sends (the formats the server decodes)."""


@dataclass
class LocalSample:
    """One sample to upload: its id (idempotency key), label and encoded bytes; an
    object-detection image also its boxes (None: not a detection sample; its label is then
    ignored: the server derives it from the boxes)."""

    client_id: str
    label: str
    data: bytes
    boxes: list[Box] | None = None


def boxes_to_proto(boxes: Iterable[Box]) -> list[common_pb2.BoundingBox]:
    """Boxes → ``BoundingBox`` messages."""
    return [
        common_pb2.BoundingBox(
            label=b.label, x_min=b.x_min, y_min=b.y_min, x_max=b.x_max, y_max=b.y_max
        )
        for b in boxes
    ]


def boxes_from_proto(msgs: Iterable[common_pb2.BoundingBox]) -> list[Box]:
    """``BoundingBox`` messages → boxes (float32 on the wire, rounded to 6 decimals)."""
    return [
        Box(m.label, round(m.x_min, 6), round(m.y_min, 6), round(m.x_max, 6), round(m.y_max, 6))
        for m in msgs
    ]


@dataclass
class UploadReport:
    """What an upload did, sample by sample."""

    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    skipped: int = 0
    rejections: list[tuple[str, int, str]] | None = None

    def add(self, response: datasets_pb2.UploadSamplesResponse) -> None:
        """Fold one server response in."""
        self.accepted += response.accepted
        self.duplicates += response.duplicates
        self.rejected += response.rejected
        self.rejections = self.rejections or []
        for r in response.results:
            if r.status == datasets_pb2.SAMPLE_STATUS_REJECTED:
                self.rejections.append((r.client_id, r.error_code, r.reason))


def prepare_image(data: bytes, width: int, height: int, grayscale: bool) -> bytes:
    """Resize and convert like the phone app does before sending.

    PNG stays lossless (small images, grayscale); photos go as JPEG quality 95.
    """
    img: Image.Image = Image.open(io.BytesIO(data))
    was_png = img.format == "PNG"
    img = ImageOps.exif_transpose(img) or img
    img = img.convert("L" if grayscale else "RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    buf = io.BytesIO()
    if was_png or grayscale:
        img.save(buf, format="PNG")
    else:
        img.save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def task_suffixes(task: str) -> frozenset[str]:
    """The file suffixes (lower case, with the dot) of a task's samples in DIR/<label>/:
    images, ``.wav`` (audio), ``.csv``/``.json`` (sensor time series).

    ``task`` is the task's name as the wire spells it (``image-classification``).
    """
    return frozenset(tasks.sample_extensions(_known(task)))


def client_resizes(task: str) -> bool:
    """Whether samples of ``task`` are shrunk to the project's input before upload (images)."""
    return tasks.client_resizes(_known(task))


def _known(task: str) -> str:
    # A task this SDK does not know (a newer server's) is the caller's failure, as a ClientError.
    try:
        tasks.parse_task(task)
    except MobiletrainError as err:
        raise ClientError(err.code.number, err.code.grpc_status, err.message) from None
    return task


def scan_directory(
    root: Path, suffixes: frozenset[str] = IMAGE_SUFFIXES
) -> list[tuple[str, str, Path]]:
    """(client_id, label, path) for DIR/<label>/<file>, like Keras image_dataset_from_directory.

    Only files whose suffix is in ``suffixes`` count (default: images; see :func:`task_suffixes`).
    """
    found = []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in sorted(label_dir.rglob("*")):
            if path.is_file() and path.suffix.lower() in suffixes:
                rel = path.relative_to(root).as_posix()
                found.append((rel, label_dir.name, path))
    return found
