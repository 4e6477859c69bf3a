"""``mobiletrain projects``, ``tokens`` and ``upload``: the project's set-up and its data."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mobiletrain._proto.mobiletrain.v1 import common_pb2, projects_pb2, tokens_pb2
from mobiletrain.cli import detection
from mobiletrain.cli.common import CommandGroup, ProjectOpt, choice, console, options, usage
from mobiletrain.client.samples import UploadReport
from mobiletrain.client.sdk import (
    COLOR_MODES,
    LONG_CLIPS,
    NORMALIZATIONS,
    SENSOR_FRAMINGS,
    TASKS,
    Client,
    audio_spec,
    detection_spec,
    scan_directory,
    sensor_spec,
    task_suffixes,
)

projects_app = CommandGroup(help="Create, list and delete projects.")
tokens_app = CommandGroup(help="Create, list and revoke admin and device tokens.")


@projects_app.command("create")
def projects_create(
    name: str,
    task: Annotated[
        str,
        typer.Option(
            help="Task type: image-classification, audio-classification, "
            "sensor-classification or object-detection (or image, audio, sensor, detection)"
        ),
    ] = "image-classification",
    labels: Annotated[str, typer.Option(help="Comma-separated fixed label set")] = "",
    width: Annotated[int, typer.Option(help="Model input width")] = 96,
    height: Annotated[int, typer.Option(help="Model input height")] = 96,
    color_mode: Annotated[str, typer.Option(help="rgb or grayscale")] = "rgb",
    normalization: Annotated[str, typer.Option(help="zero-one, minus-one-one or raw")] = "zero-one",
    sample_rate: Annotated[
        int | None, typer.Option(help="Audio: sample rate the model hears, Hz [default: 16000]")
    ] = None,
    clip_ms: Annotated[
        int | None, typer.Option(help="Audio: clip length in ms [default: 1000]")
    ] = None,
    long_clips: Annotated[
        str,
        typer.Option(help="Audio: reject or split clips longer than --clip-ms [default: reject]"),
    ] = "",
    channels: Annotated[
        str, typer.Option(help="Sensor: comma-separated channel names in order [default: x,y,z]")
    ] = "",
    rate_hz: Annotated[
        float | None, typer.Option(help="Sensor: sampling rate, Hz [default: 50]")
    ] = None,
    window: Annotated[
        int | None, typer.Option(help="Sensor: window length in readings [default: 100]")
    ] = None,
    stride: Annotated[
        int | None, typer.Option(help="Sensor: step between windows [default: 50]")
    ] = None,
    framing: Annotated[
        str, typer.Option(help="Sensor: windows (cut recordings) or pad [default: windows]")
    ] = "",
    max_detections: Annotated[
        int | None, typer.Option(help="Detection: most boxes per image, 1..100 [default: 10]")
    ] = None,
    score_threshold: Annotated[
        float | None, typer.Option(help="Detection: lowest score kept [default: 0.25]")
    ] = None,
    iou_threshold: Annotated[
        float | None, typer.Option(help="Detection: NMS IoU threshold [default: 0.5]")
    ] = None,
) -> None:
    """Create a project."""
    choice("--task", _full_task(task), TASKS)
    task = _full_task(task)
    choice("--color-mode", color_mode, COLOR_MODES)
    choice("--normalization", normalization, NORMALIZATIONS)
    audio = {"--sample-rate": sample_rate, "--clip-ms": clip_ms, "--long-clips": long_clips}
    sensor = {
        "--channels": channels,
        "--rate-hz": rate_hz,
        "--window": window,
        "--stride": stride,
        "--framing": framing,
    }
    det = {
        "--max-detections": max_detections,
        "--score-threshold": score_threshold,
        "--iou-threshold": iou_threshold,
    }
    _only_for(task, "audio-classification", audio)
    _only_for(task, "sensor-classification", sensor)
    _only_for(task, "object-detection", det)
    spec: common_pb2.AudioSpec | common_pb2.SensorSpec | common_pb2.DetectionSpec | None = None
    if task == "audio-classification":
        choice("--long-clips", long_clips or None, LONG_CLIPS)
        spec = audio_spec(sample_rate or 0, clip_ms or 0, long_clips)
    elif task == "sensor-classification":
        choice("--framing", framing or None, SENSOR_FRAMINGS)
        names = [c.strip() for c in channels.split(",") if c.strip()]
        spec = sensor_spec(names, rate_hz or 0.0, window or 0, stride or 0, framing)
    elif task == "object-detection":
        spec = detection_spec(max_detections or 0, score_threshold or 0.0, iou_threshold or 0.0)
    label_list = [x.strip() for x in labels.split(",") if x.strip()]
    with options.client() as c:
        p = c.create_project(
            name, label_list, width, height, color_mode, normalization, task, task_spec=spec
        )
    console.print(f"created project [bold]{p.name}[/bold] ({p.id})")


def _full_task(task: str) -> str:
    """``audio`` -> ``audio-classification``, ``detection`` -> ``object-detection`` (the wire
    names); other text as given."""
    for name in (f"{task}-classification", f"object-{task}"):
        if name in TASKS:
            return name
    return task


def _only_for(task: str, owner: str, given: Mapping[str, object]) -> None:
    """Refuse another task's settings rather than ignore them."""
    used = [flag for flag, value in given.items() if value not in (None, "")]
    if used and task != owner:
        short = owner.removesuffix("-classification")
        short = short.removeprefix("object-")
        raise usage(f"{', '.join(used)} apply to {short} projects (add --task {short})")


def describe_input(p: projects_pb2.Project) -> str:
    """A project's input in a few words, by its task (as ``projects list`` shows it)."""
    s = p.input_spec
    which = s.WhichOneof("task_spec")
    if which == "audio":
        return f"audio {s.audio.sample_rate_hz} Hz, {s.audio.clip_ms} ms"
    if which == "sensor":
        sensor = s.sensor
        return f"{','.join(sensor.channels)} @ {sensor.rate_hz:g} Hz, window {sensor.window}"
    if which == "detection":
        return f"{s.width}x{s.height}, up to {s.detection.max_detections} boxes"
    return f"{s.width}x{s.height}"


@projects_app.command("list")
def projects_list() -> None:
    """List projects."""
    with options.client() as c:
        projects = c.list_projects()
    table = Table("name", "id", "labels", "input")
    for p in projects:
        table.add_row(p.name, p.id, ", ".join(p.labels) or "(open)", describe_input(p))
    console.print(table)


@projects_app.command("delete")
def projects_delete(
    name: Annotated[str, typer.Argument(help="Project name or id")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a project: samples, jobs, models, tokens. Its bytes go at the next compaction."""
    if not yes:
        if not sys.stdin.isatty():
            raise usage(f"deleting {name!r} cannot be undone; confirm with --yes")
        typer.confirm(f"Delete project {name!r} and everything in it?", abort=True)
    with options.client() as c:
        resp = c.delete_project(name)
    console.print(
        f"deleted project [bold]{resp.project.name}[/bold] ({resp.samples_deleted} samples); "
        "the server frees their bytes at its next compaction pass (now: mobiletrain compact)"
    )


@tokens_app.command("create")
def tokens_create(
    kind: Annotated[str, typer.Option(help="admin or device")] = "device",
    project: Annotated[str, typer.Option(help="Project of a device token")] = "",
    name: Annotated[str, typer.Option(help="A name to recognise it by")] = "",
    ttl_days: Annotated[int, typer.Option(help="Lifetime in days (0 = no expiry)")] = 0,
) -> None:
    """Create a token and print its secret (shown only now)."""
    with options.client() as c:
        token, secret = c.create_token(kind, project, name, ttl_days)
    console.print(f"token {token.id} created; its secret (shown only now):")
    console.print(secret, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def tokens_list(
    project: Annotated[str, typer.Option(help="Only this project's tokens")] = "",
) -> None:
    """List tokens (never their secrets)."""
    with options.client() as c:
        tokens = c.list_tokens(project)
    table = Table("id", "kind", "project", "name", "expires", "revoked")
    for t in tokens:
        kind = tokens_pb2.TokenKind.Name(t.kind).removeprefix("TOKEN_KIND_").lower()
        expires = t.expires_at.ToDatetime().isoformat() if t.HasField("expires_at") else "never"
        revoked = t.revoked_at.ToDatetime().isoformat() if t.HasField("revoked_at") else ""
        table.add_row(t.id, kind, t.project_id, t.name, expires, revoked)
    console.print(table)


@tokens_app.command("revoke")
def tokens_revoke(token_id: str) -> None:
    """Revoke a token at once."""
    with options.client() as c:
        c.revoke_token(token_id)
    console.print(f"token {token_id} revoked")


def _suffix_list(suffixes: frozenset[str]) -> str:
    """``.jpg, .png or .webp`` (``.jpeg`` goes without saying next to ``.jpg``)."""
    shown = sorted(s for s in suffixes if s != ".jpeg" or ".jpg" not in suffixes)
    return shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"


def upload(
    directory: Annotated[
        Path,
        typer.Argument(
            help="DIR/<label>/*.jpg|png|webp (audio: *.wav; sensor: *.csv|json); object "
            "detection: a COCO JSON file or a folder with COCO, Pascal VOC or YOLO annotations"
        ),
    ],
    project: ProjectOpt,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help="Object detection: coco, voc, yolo, or images (no boxes, to label in the "
            "dashboard) [default: detected]",
        ),
    ] = "",
    classes: Annotated[
        Path | None,
        typer.Option(help="Object detection, YOLO: the classes file [default: found]"),
    ] = None,
    images: Annotated[
        Path | None,
        typer.Option(help="Object detection, COCO: the images folder [default: found]"),
    ] = None,
) -> None:
    """Upload a folder of labelled samples: the files of the project's task (images are
    resized client-side, like the phone app); object detection: images with their boxes."""
    with options.client() as c:
        task_type = c.project_task(project)
        given = {"--format": fmt, "--classes": classes, "--images": images}
        detection.need_detection(task_type, given)
        if task_type == "object-detection":
            if not directory.exists():
                raise usage(f"{directory} does not exist")
            report = detection.upload_detection(c, project, directory, fmt, classes, images)
        else:
            report = _upload_folder(c, project, directory, task_type)
    _print_report(report)


def _upload_folder(c: Client, project: str, directory: Path, task_type: str) -> UploadReport:
    if not directory.is_dir():
        raise usage(
            f"{directory} is not a folder; give a folder with one subfolder per label "
            f"(e.g. mobiletrain upload ./images -p {project}, with images/cat/1.jpg)"
        )
    # Which files count as samples depends on the project's task (images, WAV, CSV/JSON).
    suffixes = task_suffixes(task_type)
    if not scan_directory(directory, suffixes):
        raise usage(f"nothing to upload: {_layout_problem(directory, suffixes)}")
    with Progress(
        TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    ) as bar:
        task = bar.add_task("upload", total=None)
        return c.upload_directory(
            project,
            directory,
            on_total=lambda n: bar.update(task, total=n, completed=0),
            on_sent=lambda n: bar.advance(task, n),
        )


def _print_report(report: UploadReport) -> None:
    console.print(
        f"accepted {report.accepted}, duplicates {report.duplicates}, "
        f"rejected {report.rejected}, already on the server {report.skipped}"
    )
    for client_id, code, reason in report.rejections or []:
        console.print(f"  [red]rejected[/red] {client_id}: [{code}] {reason}")
    if report.rejected and not (report.accepted or report.duplicates or report.skipped):
        # Nothing stored: a success exit code would hide it from scripts.
        raise typer.Exit(code=1)


def _layout_problem(directory: Path, suffixes: frozenset[str]) -> str:
    """Why a folder holds nothing to upload: a wrong layout, or no files of the task's kind."""
    # An upload of nothing "succeeding" hides a wrong path or layout: say which it is.
    loose = [p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if loose:
        noun = "images" if ".png" in suffixes else "samples"
        return (
            f"{len(loose)} {noun} lie directly in {directory}, not in label subfolders: move "
            f"them to {directory}/<label>/ (e.g. {directory}/cat/{loose[0].name})"
        )
    kind = " images" if ".png" in suffixes else " files"
    return f"no {_suffix_list(suffixes)}{kind} in {directory}/<label>/ subfolders"
