"""Object detection on the command line: annotated uploads and ``export-annotations``.

``mobiletrain upload`` hands an object-detection project's dataset to
:func:`upload_detection`, which reads COCO JSON, Pascal VOC XML or YOLO text (detected, or
named with ``--format``; ``--format images`` sends the images without boxes, to label in the
dashboard). :func:`export_annotations` writes a project's boxes as COCO JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from mobiletrain.cli.common import ProjectOpt, choice, console, options, usage
from mobiletrain.client.annotations import (
    FORMATS,
    IMAGE_SUFFIXES,
    AnnotatedImage,
    labels_of,
    read_annotations,
)
from mobiletrain.client.detection import export_coco, upload_annotated
from mobiletrain.client.samples import UploadReport
from mobiletrain.client.sdk import Client

UPLOAD_FORMATS = (*FORMATS, "images")
"""``--format`` values of ``mobiletrain upload`` for detection projects."""


def read_dataset(
    path: Path, fmt: str, classes: Path | None, images: Path | None
) -> tuple[str, list[AnnotatedImage]]:
    """The images (and boxes) to upload from ``path`` in ``fmt`` ("" = detect)."""
    choice("--format", fmt or None, UPLOAD_FORMATS)
    if fmt == "images":
        if not path.is_dir():
            raise usage(f"--format images takes a folder of images, not {path}")
        found = sorted(
            p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        )
        if not found:
            raise usage(f"nothing to upload: no .jpg, .png or .webp images under {path}")
        return fmt, [AnnotatedImage(p.relative_to(path).as_posix(), p, []) for p in found]
    return read_annotations(path, fmt, classes, images)


def upload_detection(
    client: Client, project: str, path: Path, fmt: str, classes: Path | None, images: Path | None
) -> UploadReport:
    """Read a detection dataset and upload it with a progress bar; prints what was found."""
    found_fmt, dataset = read_dataset(path, fmt, classes, images)
    boxes = sum(len(i.boxes) for i in dataset)
    empty = sum(1 for i in dataset if not i.boxes)
    labels = labels_of(dataset)
    console.print(
        f"{found_fmt}: {len(dataset)} images, {boxes} boxes of {len(labels)} labels "
        f"({', '.join(labels[:8])}{', ...' if len(labels) > 8 else ''}), {empty} without boxes",
        highlight=False,
    )
    with Progress(
        TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("upload", total=None)
        return upload_annotated(
            client,
            project,
            dataset,
            on_total=lambda n: bar.update(task, total=n, completed=0),
            on_sent=lambda n: bar.advance(task, n),
        )


def export_annotations(
    project: ProjectOpt,
    output: Annotated[Path, typer.Option("--output", "-o", help="COCO JSON file to write")] = Path(
        "annotations.json"
    ),
    fmt: Annotated[str, typer.Option("--format", help="Annotation format: coco")] = "coco",
    images: Annotated[
        Path | None,
        typer.Option(help="Also save the stored images here (file names as in the JSON)"),
    ] = None,
) -> None:
    """Write an object-detection project's boxes as COCO JSON (reads back with `mobiletrain
    upload FILE --format coco`)."""
    choice("--format", fmt, ("coco",))
    with options.client() as c:
        doc = export_coco(c, project, images)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(doc, indent=1) + "\n", "utf-8")
    console.print(
        f"wrote {output}: {len(doc['images'])} images, {len(doc['annotations'])} boxes, "
        f"{len(doc['categories'])} categories" + (f"; images in {images}" if images else ""),
        highlight=False,
    )
    if images is None and doc["images"]:
        console.print("(add --images DIR to save the images too)")


def need_detection(task: str, given: Mapping[str, object]) -> None:
    """Refuse the detection-only upload options on other projects."""
    used = [flag for flag, value in given.items() if value not in (None, "")]
    if used and task != "object-detection":
        raise usage(f"{', '.join(used)} apply to object-detection projects ({task} here)")
