"""``mobiletrain models`` and ``predict``: versions, model cards, the release gate, downloads and
server-side inference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from mobiletrain._proto.mobiletrain.v1 import models_pb2
from mobiletrain.cli.common import CommandGroup, ProjectOpt, console, options, usage
from mobiletrain.cli.jobs import FORMAT_NAMES, status_name
from mobiletrain.client.samples import task_suffixes
from mobiletrain.client.sdk import FORMATS

models_app = CommandGroup(help="List and download model versions.")


@models_app.command("list")
def models_list(project: ProjectOpt) -> None:
    """List model versions: which is current, the candidates and why the gate held them."""
    with options.client() as c:
        page = c.list_versions_page(project)
    current = page.current_version
    console.print(f"current version: [bold]{current or 'none'}[/bold]")
    table = Table("version", "status", "eval-set accuracy", "validation", "release / warnings")
    for v in page.versions:
        evals = ", ".join(f"{FORMAT_NAMES.get(a.format)} {a.accuracy:.3f}" for a in v.eval_accuracy)
        notes = [v.decision.reason] if v.HasField("decision") else []
        notes += [f"[yellow]warning:[/yellow] {w}" for w in v.warnings]
        status = status_name(v.status)
        table.add_row(
            str(v.version),
            f"[bold]{status}[/bold]" if status == "current" else status,
            f"{evals} (n={v.eval_set_size})" if evals else "-",
            f"{v.metrics.accuracy:.4f}",
            "\n".join(notes),
        )
    console.print(table)


@models_app.command("show")
def models_show(
    project: ProjectOpt,
    version: Annotated[int, typer.Option(help="Version (0 = current)")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole card as JSON")] = False,
) -> None:
    """Print a version's model card (the manifest embedded in each .tflite file)."""
    with options.client() as c:
        card = c.manifest(project, version)
    if as_json:
        console.print_json(json.dumps(card))
        return
    print_card(card)


def print_card(card: dict[str, Any]) -> None:
    """A model card (manifest) as ``models show`` prints it."""
    project_info = card.get("project") or {}
    console.print(
        f"[bold]{project_info.get('name', '?')}[/bold] version {card.get('version')} "
        f"(job {card.get('job_id', '?')}, {card.get('created_at', '?')})"
    )
    console.print(f"input: {describe_card_input(card.get('input') or {})}", markup=False)
    console.print(f"labels: {', '.join(card.get('labels') or [])}")
    release = card.get("release") or {}
    if release:
        console.print(f"release gate: {release.get('action')}: {release.get('reason')}")
    evaluation = card.get("evaluation") or {}
    eval_set = evaluation.get("eval_set") or {}
    if eval_set:
        scores = ", ".join(
            f"{name} {score['accuracy']:.4f}"
            for name, score in (evaluation.get("formats") or {}).items()
        )
        console.print(
            f"evaluation set: {eval_set.get('num_samples')} samples "
            f"{eval_set.get('class_counts')}: {scores}"
        )
    metrics = card.get("metrics") or {}
    per_class = metrics.get("per_class") or []
    if per_class:
        table = Table("label", "precision", "recall", "F1", "support")
        for row in per_class:
            table.add_row(
                str(row["label"]),
                f"{row['precision']:.3f}",
                f"{row['recall']:.3f}",
                f"{row['f1']:.3f}",
                str(row["support"]),
            )
        console.print(table)
    matrix = metrics.get("confusion_matrix") or []
    if matrix:
        console.print("confusion matrix (rows = true label):")
        for label, row in zip(card.get("labels") or [], matrix, strict=False):
            console.print(f"  {label:>12}  " + " ".join(f"{n:4d}" for n in row))
    dataset = card.get("dataset") or {}
    if dataset:
        console.print(
            f"trained on {dataset.get('num_samples')} samples: {dataset.get('class_counts')}"
        )
    for warning in card.get("warnings") or []:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def describe_card_input(spec: dict[str, Any]) -> str:
    """What the model takes, from the card's input section (its ``kind`` names the task's)."""
    kind = spec.get("kind")
    if kind == "audio-waveform":
        return (
            f"float32 {spec.get('shape')} mono PCM at {spec.get('sample_rate_hz')} Hz "
            f"({spec.get('clip_ms')} ms clips, longer ones: {spec.get('long_clips')})"
        )
    if kind == "sensor-window":
        return (
            f"float32 {spec.get('shape')} ({spec.get('layout')}): "
            f"{', '.join(spec.get('channels') or [])} at {spec.get('rate_hz')} Hz, "
            f"window {spec.get('window')} every {spec.get('stride')}"
        )
    return (
        f"{spec.get('width')}x{spec.get('height')} {spec.get('color_mode')}, "
        f"value = pixel * {spec.get('scale')} + {spec.get('offset')}"
    )


@models_app.command("promote")
def models_promote(
    project: ProjectOpt,
    version: Annotated[int, typer.Argument(help="Version to make current (0 = unpin)")],
    pin: Annotated[
        bool, typer.Option(help="Hold every new version as a candidate until the next promote")
    ] = False,
    reason: Annotated[str, typer.Option(help="Why (kept in the release history)")] = "",
) -> None:
    """Make a version (a candidate too) the one phones get."""
    with options.client() as c:
        v = c.promote(project, version, pin=pin, reason=reason)
    console.print(f"version [bold]{v.version}[/bold] is current" + (" (pinned)" if pin else ""))


@models_app.command("rollback")
def models_rollback(
    project: ProjectOpt,
    reason: Annotated[str, typer.Option(help="Why (kept in the release history)")] = "",
) -> None:
    """Make the version that was current before the current one current again."""
    with options.client() as c:
        v = c.rollback(project, reason=reason)
    console.print(f"rolled back: version [bold]{v.version}[/bold] is current")


@models_app.command("history")
def models_history(project: ProjectOpt) -> None:
    """Which version was current when, and why."""
    with options.client() as c:
        records = c.releases(project)
    table = Table("when", "version", "before", "action", "by", "reason")
    for r in records:
        table.add_row(
            r.created_at.ToDatetime().isoformat(timespec="seconds"),
            str(r.version),
            str(r.previous_version or "-"),
            r.action,
            r.actor,
            r.reason,
        )
    console.print(table)


@models_app.command("policy")
def models_policy(
    project: ProjectOpt,
    mode: Annotated[str | None, typer.Option(help="auto or manual")] = None,
    margin: Annotated[
        float | None, typer.Option(help="Allowed accuracy loss against the current version")
    ] = None,
    min_accuracy: Annotated[float | None, typer.Option(help="Accuracy floor")] = None,
    min_per_class_recall: Annotated[
        float | None, typer.Option(help="Floor on every label's recall")
    ] = None,
    max_int8_drop: Annotated[
        float | None, typer.Option(help="Ceiling on float32 minus int8 accuracy")
    ] = None,
    rollout_percent: Annotated[
        int | None,
        typer.Option(help="Staged rollout: share of devices (1..100) that get a new version first"),
    ] = None,
    rollout_hours: Annotated[
        float | None,
        typer.Option(help="Hours until every device follows (default: when you promote it)"),
    ] = None,
) -> None:
    """Show the release policy, or replace it when any option is given."""
    changes = {
        "mode": mode,
        "margin": margin,
        "min_accuracy": min_accuracy,
        "min_per_class_recall": min_per_class_recall,
        "max_int8_drop": max_int8_drop,
        "rollout_percent": rollout_percent,
        "rollout_hours": rollout_hours,
    }
    with options.client() as c:
        state = c.release_policy(project)
        if any(v is not None for v in changes.values()):
            state = c.set_release_policy(project, **changes)
    print_policy(state)


def print_policy(state: models_pb2.ReleasePolicyState) -> None:
    """A release policy, its rollout and pin as ``models policy`` prints them."""
    p = state.policy
    shown = models_pb2.ReleaseMode.Name(p.mode).removeprefix("RELEASE_MODE_").lower()
    console.print(f"mode: {shown}, margin: {p.margin}")
    for name in ("min_accuracy", "min_per_class_recall", "max_int8_drop"):
        console.print(f"{name}: {getattr(p, name) if p.HasField(name) else 'none'}")
    hours = f"{p.rollout_hours} h" if p.HasField("rollout_hours") else "until promoted by hand"
    console.print(f"rollout: {p.rollout_percent}% of devices first, the rest {hours}")
    if state.HasField("rollout"):
        r = state.rollout
        console.print(
            f"rollout in progress: version {r.version} on {r.percent}% of devices, "
            f"the others keep version {r.previous_version}"
        )
    if state.pinned:
        console.print("the current version is pinned: new versions stay candidates")


@models_app.command("pull")
def models_pull(
    project: ProjectOpt,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write")],
    fmt: Annotated[str, typer.Option("--format", help=", ".join(FORMATS))] = "float32",
    version: Annotated[int, typer.Option(help="Version (0 = current)")] = 0,
    manifest: Annotated[bool, typer.Option(help="Also write <output>.json manifest")] = True,
) -> None:
    """Download a model file (sha256-checked, resumable) and its manifest."""
    if fmt not in FORMATS:
        raise usage(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    if not output.parent.is_dir():
        raise usage(
            f"the folder of -o {output} does not exist; create it (mkdir -p {output.parent}) "
            f"or give another path (e.g. -o {output.name})"
        )
    if output.is_dir():
        raise usage(f"-o {output} is a folder; give a file name (e.g. -o {output}/model.tflite)")
    with (
        options.client() as c,
        Progress(
            TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn()
        ) as bar,
    ):
        task = bar.add_task("download", total=None)
        info = c.download_model(
            project,
            output,
            fmt,
            version,
            on_progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
        if manifest:
            data = c.manifest(project, info.version)
            output.with_name(output.name + ".json").write_text(json.dumps(data, indent=2))
    console.print(
        f"version {info.version} {fmt}: {output} ({info.size} bytes, sha256 {info.sha256})"
    )


def predict(
    sample: Annotated[
        Path, typer.Argument(help="A sample file: an image, a .wav clip or a sensor .csv/.json")
    ],
    project: ProjectOpt,
    top_k: Annotated[int, typer.Option(help="How many classes")] = 3,
) -> None:
    """Classify one sample with the project's current model (server-side, LiteRT): an image,
    a WAV clip (audio projects) or a sensor recording as CSV or JSON (sensor projects)."""
    if not sample.is_file():
        what = "a folder" if sample.is_dir() else "not found"
        raise usage(
            f"{sample} is {what}; give one sample file "
            f"(e.g. mobiletrain predict photo.jpg -p {project})"
        )
    with options.client() as c:
        # The server decodes by the project's task kind; a file of another kind is a usage
        # mistake caught here with the suffixes the project takes (as `upload` picks them).
        task = c.project_task(project)
        suffixes = task_suffixes(task)
        if sample.suffix.lower() not in suffixes:
            raise usage(
                f"{sample.name}: {task} project {project} takes "
                f"{' or '.join(sorted(suffixes))} files"
            )
        resp = c.predict(project, sample.read_bytes(), top_k)
    for p in resp.predictions:
        console.print(f"{p.label:>20}  {p.score:.4f}")
    console.print(f"(version {resp.version}, {resp.latency_ms:.1f} ms)")
