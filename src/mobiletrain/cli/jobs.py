"""``mobiletrain train`` and ``mobiletrain jobs``: start, list, watch and cancel training jobs,
and the live progress bar both show."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from mobiletrain._proto.mobiletrain.v1 import models_pb2, training_pb2
from mobiletrain.cli.common import CommandGroup, ProjectOpt, choice, console, options, usage
from mobiletrain.client.sdk import ARCHITECTURES, FORMATS, Client

jobs_app = CommandGroup(help="Inspect, watch and cancel training jobs.")

FORMAT_NAMES = {v: k for k, v in FORMATS.items()}
"""Model format number -> its CLI name (``float32``, ``int8`` ...)."""


def state_name(number: int) -> str:
    """``JOB_STATE_SUCCEEDED`` -> ``succeeded``."""
    return training_pb2.JobState.Name(number).removeprefix("JOB_STATE_").lower()


def phase_name(number: int) -> str:
    """``JOB_PHASE_PREPARING_DATA`` -> ``preparing data``."""
    name = training_pb2.JobPhase.Name(number).removeprefix("JOB_PHASE_").lower()
    return name.replace("_", " ")


def status_name(number: int) -> str:
    """``VERSION_STATUS_CURRENT`` -> ``current``."""
    return models_pb2.VersionStatus.Name(number).removeprefix("VERSION_STATUS_").lower()


def describe(ev: training_pb2.JobEvent) -> str:
    """One job event as ``train --watch`` and ``jobs watch`` print it."""
    kind = ev.WhichOneof("payload")
    p: Any = getattr(ev, kind) if kind else None
    if kind == "state_changed":
        code = f"error {p.error_code}: " if p.error_code else ""
        return f"state: {state_name(p.state)}" + (f" ({code}{p.error})" if p.error else "")
    if kind == "epoch_end":
        return (
            f"epoch {p.epoch}/{p.epochs}: loss {p.loss:.4f} acc {p.accuracy:.4f} "
            f"val_loss {p.val_loss:.4f} val_acc {p.val_accuracy:.4f} ({p.seconds:.1f}s)"
        )
    if kind == "evaluation":
        accs = ", ".join(
            f"{FORMAT_NAMES.get(a.format, a.format)} {a.accuracy:.4f}" for a in p.tflite_accuracy
        )
        return f"evaluation: keras accuracy {p.accuracy:.4f}; TFLite in LiteRT: {accs}"
    if kind == "log":
        if p.level == "warning":
            return f"[yellow]warning:[/yellow] {p.message}"
        return str(p.message)
    if kind == "phase":
        return f"phase: {phase_name(p.phase)}"
    if kind == "release":
        return describe_release(p)
    return kind or "event"


def describe_release(p: training_pb2.ReleaseOutcome) -> str:
    """The release gate's decision, as ``train --watch`` and ``jobs watch`` print it."""
    evals = ", ".join(
        f"{FORMAT_NAMES.get(a.format, a.format)} {a.accuracy:.4f}" for a in p.eval_accuracy
    )
    lines = [
        f"release gate: version {p.version} is [bold]{status_name(p.status)}[/bold] "
        f"({p.decision.reason})",
        f"  evaluation set ({p.eval_set_size} samples): {evals or 'no .tflite file'}",
    ]
    if p.current_eval_accuracy:
        cur = ", ".join(
            f"{FORMAT_NAMES.get(a.format, a.format)} {a.accuracy:.4f}"
            for a in p.current_eval_accuracy
        )
        lines.append(f"  current version {p.decision.current_version} on the same set: {cur}")
    lines += [f"  [yellow]warning:[/yellow] {w}" for w in p.warnings]
    return "\n".join(lines)


TERMINAL = {
    training_pb2.JOB_STATE_SUCCEEDED,
    training_pb2.JOB_STATE_FAILED,
    training_pb2.JOB_STATE_CANCELLED,
}


@dataclass
class BarState:
    """What the progress bar shows, folded from the job's events (pure: no console)."""

    description: str = "waiting"
    total: int | None = None
    completed: int = 0
    rate: str = ""
    print_lines: list[str] = field(default_factory=list)

    def apply(self, ev: training_pb2.JobEvent) -> None:
        """Fold one event in; lines to print above the bar go to ``print_lines``."""
        kind = ev.WhichOneof("payload")
        if kind == "progress":
            p = ev.progress
            if p.phase == training_pb2.JOB_PHASE_PREPARING_DATA:
                # Reading samples: batch/batches count samples read; there is no epoch yet.
                self.description = "preparing data"
                self.total, self.completed = p.batches, p.batch
                self.rate = f"{p.samples_per_second:.0f} samples/s read"
                return
            # The bar spans the whole job's batches, so the time left is the job's.
            self.description = f"training: epoch {p.epoch}/{p.epochs}"
            self.total = p.batches * p.epochs
            self.completed = (p.epoch - 1) * p.batches + p.batch
            self.rate = (
                f"{p.samples_per_second:.0f} samples/s, job ends in ~{p.job_eta_seconds:.0f}s"
            )
            return
        if kind == "phase":
            self.description = phase_name(ev.phase.phase)
            # The estimate came from the last training batch; it would stand still from here.
            self.rate = ""
        elif kind == "state_changed" and ev.state_changed.state in TERMINAL:
            # The job is over: no estimate of when it ends may stay on screen.
            self.description = state_name(ev.state_changed.state)
            self.rate = ""
            if ev.state_changed.state == training_pb2.JOB_STATE_SUCCEEDED and self.total:
                self.completed = self.total
        self.print_lines.append(describe(ev))


def watch_with_progress(c: Client, job_id: str) -> training_pb2.Job:
    """Show a job's live progress; returns the final job."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        state = BarState()
        task = bar.add_task(state.description, total=None, rate="")
        for ev in c.watch_job(job_id):
            state.apply(ev)
            bar.update(
                task,
                description=state.description,
                total=state.total,
                completed=state.completed,
                rate=state.rate,
            )
            for line in state.print_lines:
                bar.console.print(line)
            state.print_lines.clear()
    return c.get_job(job_id)


def train(
    project: ProjectOpt,
    # The server fills in what is not given; the help states its defaults (core TrainingConfig).
    epochs: Annotated[int | None, typer.Option(help="Epochs [default: 10]")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Batch size [default: 32]")] = None,
    learning_rate: Annotated[
        float | None, typer.Option(help="Learning rate [default: 0.001]")
    ] = None,
    architecture: Annotated[
        str | None,
        typer.Option(help="small-cnn, mobilenet-v3-small or mobilenet-v2 [default: small-cnn]"),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed [default: 42]")] = None,
    early_stopping: Annotated[
        int | None, typer.Option(help="Early stopping patience in epochs, 0 = off [default: 0]")
    ] = None,
    augment_flip: Annotated[
        bool | None, typer.Option(help="Random horizontal flips [default: no]")
    ] = None,
    allow_random_init: Annotated[
        bool | None,
        typer.Option(
            help="Train a MobileNet from random initialisation when its pretrained weights "
            "cannot be loaded (otherwise the job fails with error 55)"
        ),
    ] = None,
    watch: Annotated[bool, typer.Option("--watch/--no-watch", help="Show live progress")] = False,
) -> None:
    """Start a training job (and watch it with --watch)."""
    choice("--architecture", architecture, ARCHITECTURES)
    with options.client() as c:
        job = c.start_job(
            project,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            architecture=architecture,
            seed=seed,
            early_stopping_patience=early_stopping,
            augment_flip=augment_flip,
            allow_random_init=allow_random_init,
        )
        console.print(f"job [bold]{job.id}[/bold] queued")
        if watch:
            final = watch_with_progress(c, job.id)
            if final.error:
                console.print(f"[red]{final.error}[/red]")
            if not final.model_version:
                raise typer.Exit(code=1)
            print_outcome(c, project, final.model_version)


def print_outcome(c: Client, project: str, version: int) -> None:
    """What a finished job produced: current or candidate (and why), and its warnings."""
    v = next((x for x in c.list_versions(project) if x.version == version), None)
    if v is None:
        console.print(f"model version [bold]{version}[/bold] published")
        return
    status = status_name(v.status)
    colour = "green" if status == "current" else "yellow"
    console.print(f"model version [bold]{version}[/bold] is [{colour}]{status}[/{colour}]")
    if v.HasField("decision"):
        console.print(f"  release gate: {v.decision.reason}")
    for w in v.warnings:
        console.print(f"  [yellow]warning:[/yellow] {w}")


JobIdArg = Annotated[
    str, typer.Argument(help="Job id, or its first characters as the dashboard shows them")
]


def resolve_job(c: Client, job_id: str) -> str:
    """A full job id from a prefix (the dashboard shows 8 characters), searched in every project."""
    if len(job_id) == 36:
        return job_id
    matches = {
        j.id for p in c.list_projects() for j in c.list_jobs(p.id) if j.id.startswith(job_id)
    }
    if len(matches) == 1:
        return matches.pop()
    if not matches:
        raise usage(f"no job id starts with {job_id!r}; see: mobiletrain jobs list -p PROJECT")
    raise usage(
        f"{len(matches)} jobs start with {job_id!r} ({', '.join(sorted(matches))}); "
        "give more characters"
    )


@jobs_app.command("list")
def jobs_list(project: ProjectOpt) -> None:
    """List a project's training jobs, newest first."""
    with options.client() as c:
        jobs = c.list_jobs(project)
    table = Table("id", "state", "created", "epochs", "version", "error")
    for j in jobs:
        table.add_row(
            j.id,
            state_name(j.state),
            j.created_at.ToDatetime().isoformat(timespec="seconds"),
            str(j.hyperparameters.epochs),
            str(j.model_version or "-"),
            j.error,
        )
    console.print(table)
    if not jobs:
        console.print(f"no jobs yet; start one with: mobiletrain train -p {project} --watch")


@jobs_app.command("watch")
def jobs_watch(job_id: JobIdArg) -> None:
    """Watch a job's progress until it ends."""
    with options.client() as c:
        watch_with_progress(c, resolve_job(c, job_id))


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobIdArg) -> None:
    """Cancel a job."""
    with options.client() as c:
        c.cancel_job(resolve_job(c, job_id))
    console.print("cancel requested")
