"""Object-detection datasets through the SDK: upload annotated images, export them as COCO.

:func:`upload_annotated` sends what :func:`mobiletrain.client.annotations.read_annotations`
read (images resized like the phone app when the task says so: a stretch to the input size
keeps normalised boxes right), skipping images the project already holds, and
:func:`export_coco` writes a project's boxes back as one COCO JSON document (with the stored
images, when asked), so an export reads back with ``mobiletrain upload --format coco``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from mobiletrain._proto.mobiletrain.v1 import common_pb2
from mobiletrain.client.annotations import AnnotatedImage, coco_document
from mobiletrain.client.errors import ClientError
from mobiletrain.client.samples import (
    LocalSample,
    UploadReport,
    boxes_from_proto,
    prepare_image,
)
from mobiletrain.client.sdk import Client

_EXTENSIONS = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


def upload_annotated(
    client: Client,
    project: str,
    images: Sequence[AnnotatedImage],
    on_total: Callable[[int], None] | None = None,
    on_sent: Callable[[int], None] | None = None,
    retries: int = 5,
) -> UploadReport:
    """Upload images with their boxes; client ids are the images' paths in the dataset, so
    running it again sends nothing new (a stored image keeps its boxes: edit them with
    :meth:`Client.update_boxes <mobiletrain.client.sdk.Client.update_boxes>`)."""
    info = client.get_project(project)
    spec = info.input_spec
    grayscale = spec.color_mode == common_pb2.COLOR_MODE_GRAYSCALE
    report = UploadReport(rejections=[])
    for attempt in range(retries + 1):
        try:
            have = client.existing_client_ids(info.id)
            todo = [image for image in images if image.client_id not in have]
            report.skipped = len(images) - len(todo) - report.accepted
            if on_total is not None:
                on_total(len(todo))
            if not todo:
                return report
            part = client.upload(info.id, _prepared(todo, spec, grayscale), on_sent=on_sent)
        except ClientError as err:
            # A dropped connection or a restarting server: ask what arrived, send the rest.
            if err.status != "UNAVAILABLE" or attempt == retries:
                raise
            time.sleep(min(2**attempt * 0.5, 10))
            continue
        report.accepted += part.accepted
        report.duplicates += part.duplicates
        report.rejected += part.rejected
        report.rejections = (report.rejections or []) + (part.rejections or [])
        return report
    return report


def _prepared(
    todo: Sequence[AnnotatedImage], spec: common_pb2.InputSpec, grayscale: bool
) -> Iterator[LocalSample]:
    for image in todo:
        raw = image.path.read_bytes()
        try:
            data = prepare_image(raw, spec.width, spec.height, grayscale)
        except Exception:
            data = raw  # let the server say precisely what is wrong with it
        yield LocalSample(image.client_id, "", data, list(image.boxes))


def export_coco(client: Client, project: str, images_dir: Path | None = None) -> dict[str, Any]:
    """A project's detection samples as a COCO document (categories: the project's labels).

    ``file_name`` is the sample's client id when it is a safe relative path (what
    ``mobiletrain upload`` gives), else ``<sample id><extension>``; with ``images_dir`` each
    stored image is written there under that name, so the export uploads again as it is.
    """
    info = client.get_project(project)
    rows: list[tuple[str, int, int, Sequence[Any]]] = []
    for sample in client.samples(info.id):
        if not sample.detection:
            continue
        name = _file_name(sample.client_id, sample.id, sample.media_type)
        if images_dir is not None:
            target = images_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(client.sample_data(info.id, sample.id))
        rows.append((name, sample.width, sample.height, boxes_from_proto(sample.boxes)))
    return coco_document(rows, list(info.labels))


def _file_name(client_id: str, sample_id: str, media_type: str) -> str:
    path = PurePosixPath(client_id)
    ext = _EXTENSIONS.get(media_type, ".img")
    safe = (
        client_id
        and not path.is_absolute()
        and ".." not in path.parts
        and "\\" not in client_id
        and ":" not in client_id
    )
    if not safe:
        return f"{sample_id}{ext}"
    known = path.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp")
    return client_id if known else f"{client_id}{ext}"
