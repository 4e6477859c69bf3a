"""The ``mobiletrain`` command line: serve, projects, upload, train, models, predict, demo."""

from __future__ import annotations

import json
import os
import signal
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from mobiletrain.client.sdk import (
    ARCHITECTURES,
    COLOR_MODES,
    DEFAULT_SERVER,
    FORMATS,
    IMAGE_SUFFIXES,
    NORMALIZATIONS,
    Client,
    ClientError,
    scan_directory,
)

if TYPE_CHECKING:
    from mobiletrain.core.integrity import IntegrityReport

QUICK_START = """Four steps from images to a model on a phone:

\b
  1. mobiletrain serve                  (--lan: reachable from phones)
  2. mobiletrain projects create digits --width 32 --height 32
  3. mobiletrain upload ./images -p digits      images/<label>/*.png
  4. mobiletrain train -p digits --watch
     then: mobiletrain models pull -p digits -o model.tflite

\b
Dashboard: http://127.0.0.1:8000 (admin token: mobiletrain-data/admin-token).
Check the install: mobiletrain doctor"""


def _usage(message: str) -> typer.Exit:
    """A command-line mistake: one line saying what to type instead, exit code 2."""
    err_console.print(f"usage error: {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=2)


class _App(typer.Typer):
    """Typer app whose entry point turns every failure into one line, never a traceback.

    Usage errors (a missing option, a bad value) exit with 2, server and connection errors with
    1; ``MOBILETRAIN_DEBUG=1`` shows the traceback of an unexpected error.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        import os
        import sys

        kwargs.setdefault("standalone_mode", False)
        try:
            rv = super().__call__(*args, **kwargs)
        except typer.TyperException as err:
            # Typer's own click: usage errors carry exit_code 2 and the context of the command.
            ctx = getattr(err, "ctx", None)
            if type(err).__name__ == "NoArgsIsHelpError" and ctx is not None:
                print(ctx.get_help())
                sys.exit(0)
            kind = "usage error" if err.exit_code == 2 else "error"
            hint = f" (see: {ctx.command_path} --help)" if ctx is not None else ""
            err_console.print(
                f"{kind}: {err.format_message()}{hint}", highlight=False, soft_wrap=True
            )
            sys.exit(err.exit_code)
        except typer.Abort:
            err_console.print("aborted")
            sys.exit(130)
        except Exception as err:
            if os.environ.get("MOBILETRAIN_DEBUG"):
                raise
            err_console.print(
                f"error: {type(err).__name__}: {err} (MOBILETRAIN_DEBUG=1 shows the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


app = _App(
    help="mobiletrain: train models for mobile apps and deliver TFLite files.\n\n" + QUICK_START,
    rich_markup_mode=None,
)
projects_app = typer.Typer(help="Create, list and delete projects.")
models_app = typer.Typer(help="List and download model versions.")
jobs_app = typer.Typer(help="Inspect, watch and cancel training jobs.")
tokens_app = typer.Typer(help="Create, list and revoke admin and device tokens.")
app.add_typer(projects_app, name="projects")
app.add_typer(tokens_app, name="tokens")
app.add_typer(models_app, name="models")
app.add_typer(jobs_app, name="jobs")

console = Console()
err_console = Console(stderr=True)

ServerOpt = Annotated[
    str,
    typer.Option("--server", envvar="MOBILETRAIN_SERVER", help="gRPC address of the server"),
]
TokenOpt = Annotated[
    str,
    typer.Option(
        "--token",
        envvar="MOBILETRAIN_TOKEN",
        help="Admin or device token (default: DATA_DIR/admin-token of a local server)",
    ),
]
ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project name or id")]

_state: dict[str, str] = {"server": DEFAULT_SERVER, "token": ""}


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context, server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = "") -> None:
    """Global options; with no command, the four steps of a first run."""
    _state["server"] = server
    _state["token"] = token
    if "://" in server:
        # grpc would try to resolve "http" as a host name; say what the option wants instead.
        address = server.split("://", 1)[1].split("/", 1)[0]
        raise _usage(
            f"--server {server} is a URL; it takes the gRPC host:port "
            f"(e.g. --server {address if ':' in address else address + ':50051'})"
        )
    if ctx.invoked_subcommand is None:
        console.print(QUICK_START.replace("\b\n", ""), highlight=False, soft_wrap=True)
        console.print("Every command: mobiletrain --help")


def _client() -> Client:
    return Client(_state["server"], token=_state["token"] or None)


def _fail(err: ClientError) -> typer.Exit:
    """One line for a failed call: what went wrong and what to type instead."""
    message = _explain(err, _state["server"])
    err_console.print(
        f"error {err.code} ({err.status}): {message}", highlight=False, soft_wrap=True
    )
    return typer.Exit(code=1)


def _explain(err: ClientError, server: str) -> str:
    """The server's message, or for transport failures the address tried and the likely cause."""
    if err.status == "UNAVAILABLE" and err.code == 0:
        detail = err.message
        if "://" in server:
            cause = "--server takes host:port (the gRPC port), not a URL"
            fix = f"--server {server.split('://', 1)[1].rstrip('/')}"
        elif "http1.x server" in detail or "HTTP/2" in detail:
            cause = (
                "that is the HTTP port (dashboard/REST); the CLI talks gRPC (default port 50051)"
            )
            fix = f"--server {server.rsplit(':', 1)[0]}:50051"
        elif "Connection refused" in detail:
            cause = "nothing listens there: is `mobiletrain serve` running, and on this port?"
            fix = f"mobiletrain serve (or --server HOST:{server.rsplit(':', 1)[-1]})"
        elif "resolv" in detail.lower() or "DNS" in detail:
            cause = "the host name does not resolve"
            fix = "--server 127.0.0.1:50051 or the server's IP address"
        elif "Socket closed" in detail or "Connection reset" in detail:
            cause = (
                "the server closed the connection; a TLS server (serve --lan) needs its certificate"
            )
            fix = "MOBILETRAIN_TLS_CA=mobiletrain-data/tls/cert.pem mobiletrain ..."
        elif "ssl" in detail.lower() or "handshake" in detail.lower() or "tls" in detail.lower():
            cause = "TLS mismatch: the server serves TLS, give its certificate"
            fix = "MOBILETRAIN_TLS_CA=DATA_DIR/tls/cert.pem mobiletrain ..."
        else:
            cause = detail.splitlines()[0] if detail else "the server did not answer"
            fix = "mobiletrain doctor"
        return f"cannot reach a mobiletrain gRPC server at {server}: {cause}; try: {fix}"
    if err.code == 60:
        return (
            f"{err.message} (the server wants a token: add --token mt_... before the command, "
            "or set MOBILETRAIN_TOKEN; a local server keeps its admin token in "
            "mobiletrain-data/admin-token)"
        )
    if err.code == 10:
        hint = "see: mobiletrain projects list; create one: mobiletrain projects create NAME"
        return f"{err.message} ({hint})"
    return err.message


def _choice(option: str, value: str | None, allowed: Any) -> None:
    """Reject an unknown choice with one line listing the allowed values."""
    if value is not None and value not in allowed:
        example = f"{option} {next(iter(allowed))}"
        raise _usage(f"{option} {value!r} is not one of: {', '.join(allowed)} (e.g. {example})")


@app.command()
def serve(
    data_dir: Annotated[Path, typer.Option(help="Data folder (SQLite + blobs)")] = Path(
        "mobiletrain-data"
    ),
    host: Annotated[
        str, typer.Option(help="Address to bind (with --lan: every interface, 0.0.0.0)")
    ] = "127.0.0.1",
    lan: Annotated[
        bool,
        typer.Option(
            "--lan",
            help="Reachable from phones: bind the LAN, serve TLS from a self-signed certificate "
            "made in DATA_DIR/tls/ and show a QR code with the address and its fingerprint",
        ),
    ] = False,
    grpc_port: Annotated[int, typer.Option(help="gRPC port")] = 50051,
    http_port: Annotated[int, typer.Option(help="HTTP port")] = 8000,
    workers: Annotated[int, typer.Option(help="Concurrent training workers")] = 1,
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Accept calls without a token (loud warning)")
    ] = False,
    tls_cert: Annotated[Path | None, typer.Option(help="PEM certificate: serve TLS")] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert")] = None,
    tls_client_ca: Annotated[
        Path | None, typer.Option(help="PEM CA: require client certificates (mutual TLS)")
    ] = None,
    database_url: Annotated[
        str,
        typer.Option(
            envvar="MOBILETRAIN_DATABASE_URL",
            help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db (default: SQLite)",
        ),
    ] = "",
    blob_url: Annotated[
        str,
        typer.Option(
            envvar="MOBILETRAIN_BLOB_URL",
            help="Blob store: a folder or s3://bucket/prefix?endpoint_url=... (default: DATA_DIR)",
        ),
    ] = "",
    executor: Annotated[
        str, typer.Option(envvar="MOBILETRAIN_EXECUTOR", help="Where jobs train: local or ray")
    ] = "local",
    ray_address: Annotated[
        str,
        typer.Option(
            envvar="MOBILETRAIN_RAY_ADDRESS",
            help="Ray cluster (host:6379 or ray://host:10001); empty starts a local Ray",
        ),
    ] = "",
) -> None:
    """Run the gRPC and HTTP servers until interrupted.

    Several replicas may share one PostgreSQL database and one S3 bucket (docs/deployment.md).
    """
    import logging

    from mobiletrain.config import Settings
    from mobiletrain.server import start_server

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    pairing = None
    if lan:
        host, tls_cert, tls_key, pairing = _lan_setup(data_dir, host, tls_cert, tls_key)
    settings = Settings(
        data_dir=data_dir,
        host=host,
        grpc_port=grpc_port,
        http_port=http_port,
        max_workers=workers,
        auth=not no_auth,
        tls_cert_file=tls_cert,
        tls_key_file=tls_key,
        tls_client_ca_file=tls_client_ca,
        database_url=database_url,
        blob_url=blob_url,
        executor=executor,
        ray_address=ray_address,
    )
    running = start_server(settings)
    console.print(
        f"mobiletrain serving: gRPC [bold]{host}:{running.grpc_port}[/bold], "
        f"HTTP [bold]{'https' if settings.tls else 'http'}://{host}:{running.http_port}[/bold] "
        "(OpenAPI at /openapi.json), "
        f"data in {data_dir}"
    )
    _print_start_notes(data_dir, host, running.http_port, running.grpc_port, settings, pairing)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    console.print("stopping…")
    running.stop()


def _lan_setup(
    data_dir: Path, host: str, tls_cert: Path | None, tls_key: Path | None
) -> tuple[str, Path | None, Path | None, Any]:
    """``serve --lan``: the address phones reach, and a pinned self-signed certificate."""
    from mobiletrain.client.pairing import PairingInfo, cert_sha256, ensure_certificate, lan_address

    address = lan_address()
    if address is None:
        raise _usage(
            "--lan: this machine has no network address besides 127.0.0.1; join the phone's "
            "Wi-Fi (or plug in Ethernet) and run mobiletrain serve --lan again"
        )
    bind = "0.0.0.0" if host == "127.0.0.1" else host  # loopback too, for the CLI on this machine
    if tls_cert is None or tls_key is None:
        tls_cert, tls_key, created = ensure_certificate(data_dir / "tls", [address, "127.0.0.1"])
        if created:
            console.print(f"created a self-signed TLS certificate in {tls_cert.parent}")
    fingerprint = cert_sha256(tls_cert.read_bytes())
    return bind, tls_cert, tls_key, PairingInfo(address, 0, 0, fingerprint)


def _print_start_notes(
    data_dir: Path, host: str, http_port: int, grpc_port: int, settings: Any, pairing: Any
) -> None:
    """Where the dashboard and token are, and how a phone connects (a QR code with --lan)."""
    from dataclasses import replace

    from mobiletrain.client.pairing import is_loopback, qr_png, qr_terminal

    scheme = "https" if settings.tls else "http"
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    console.print(f"dashboard: {scheme}://{shown}:{http_port}/", highlight=False)
    if settings.auth:
        console.print(f"admin token (the dashboard asks for it): {data_dir / 'admin-token'}")
    if pairing is not None:
        info = replace(pairing, http_port=http_port, grpc_port=grpc_port)
        text = info.payload()
        png = data_dir / "pairing-qr.png"
        qr_png(text, png)
        console.print(qr_terminal(text), highlight=False, soft_wrap=True)
        console.print(
            f"scan this with the app (also in {png}): {text}", highlight=False, soft_wrap=True
        )
        console.print(
            f"the phone must be on the same network as {info.host}; allow TCP ports {http_port} "
            f"and {grpc_port} in this machine's firewall. The CLI here: "
            f"MOBILETRAIN_TLS_CA={data_dir / 'tls' / 'cert.pem'} mobiletrain projects list",
            highlight=False,
        )
    elif is_loopback(host):
        console.print(
            f"[yellow]warning:[/yellow] only this computer can reach {host}: a phone cannot "
            "connect, and a QR code from the dashboard points at this computer. "
            "To pair a phone, run: mobiletrain serve --lan"
        )


@projects_app.command("create")
def projects_create(
    name: str,
    task: Annotated[str, typer.Option(help="Task type")] = "image-classification",
    labels: Annotated[str, typer.Option(help="Comma-separated fixed label set")] = "",
    width: Annotated[int, typer.Option(help="Model input width")] = 96,
    height: Annotated[int, typer.Option(help="Model input height")] = 96,
    color_mode: Annotated[str, typer.Option(help="rgb or grayscale")] = "rgb",
    normalization: Annotated[str, typer.Option(help="zero-one, minus-one-one or raw")] = "zero-one",
) -> None:
    """Create a project."""
    _choice("--color-mode", color_mode, COLOR_MODES)
    _choice("--normalization", normalization, NORMALIZATIONS)
    label_list = [x.strip() for x in labels.split(",") if x.strip()]
    with _client() as c:
        try:
            p = c.create_project(name, label_list, width, height, color_mode, normalization, task)
        except ClientError as err:
            raise _fail(err) from None
    console.print(f"created project [bold]{p.name}[/bold] ({p.id})")


@projects_app.command("list")
def projects_list() -> None:
    """List projects."""
    with _client() as c:
        try:
            projects = c.list_projects()
        except ClientError as err:
            raise _fail(err) from None
    table = Table("name", "id", "labels", "input")
    for p in projects:
        s = p.input_spec
        table.add_row(p.name, p.id, ", ".join(p.labels) or "(open)", f"{s.width}x{s.height}")
    console.print(table)


@projects_app.command("delete")
def projects_delete(
    name: Annotated[str, typer.Argument(help="Project name or id")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a project: samples, jobs, models, tokens. Its bytes go at the next compaction."""
    import sys

    if not yes:
        if not sys.stdin.isatty():
            raise _usage(f"deleting {name!r} cannot be undone; confirm with --yes")
        typer.confirm(f"Delete project {name!r} and everything in it?", abort=True)
    with _client() as c:
        try:
            resp = c.delete_project(name)
        except ClientError as err:
            raise _fail(err) from None
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
    with _client() as c:
        try:
            token, secret = c.create_token(kind, project, name, ttl_days)
        except ClientError as err:
            raise _fail(err) from None
    console.print(f"token {token.id} created; its secret (shown only now):")
    console.print(secret, highlight=False, soft_wrap=True)


@tokens_app.command("list")
def tokens_list(
    project: Annotated[str, typer.Option(help="Only this project's tokens")] = "",
) -> None:
    """List tokens (never their secrets)."""
    from mobiletrain._proto.mobiletrain.v1 import tokens_pb2

    with _client() as c:
        try:
            tokens = c.list_tokens(project)
        except ClientError as err:
            raise _fail(err) from None
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
    with _client() as c:
        try:
            c.revoke_token(token_id)
        except ClientError as err:
            raise _fail(err) from None
    console.print(f"token {token_id} revoked")


@app.command()
def upload(
    directory: Annotated[Path, typer.Argument(help="DIR/<label>/*.jpg|png|webp")],
    project: ProjectOpt,
) -> None:
    """Upload a folder of labelled images (resized client-side, like the phone app)."""
    if not directory.is_dir():
        raise _usage(
            f"{directory} is not a folder; give a folder with one subfolder per label "
            f"(e.g. mobiletrain upload ./images -p {project}, with images/cat/1.jpg)"
        )
    if not scan_directory(directory):
        # An upload of nothing "succeeding" hides a wrong path or layout: say which it is.
        loose = [
            p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
        ]
        layout = (
            f"{len(loose)} images lie directly in {directory}, not in label subfolders: move "
            f"them to {directory}/<label>/ (e.g. {directory}/cat/{loose[0].name})"
            if loose
            else f"no .jpg, .png or .webp images in {directory}/<label>/ subfolders"
        )
        raise _usage(f"nothing to upload: {layout}")
    with (
        _client() as c,
        Progress(
            TextColumn("uploading"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
        ) as bar,
    ):
        task = bar.add_task("upload", total=None)
        try:
            report = c.upload_directory(
                project,
                directory,
                on_total=lambda n: bar.update(task, total=n, completed=0),
                on_sent=lambda n: bar.advance(task, n),
            )
        except ClientError as err:
            raise _fail(err) from None
    console.print(
        f"accepted {report.accepted}, duplicates {report.duplicates}, "
        f"rejected {report.rejected}, already on the server {report.skipped}"
    )
    for client_id, code, reason in report.rejections or []:
        console.print(f"  [red]rejected[/red] {client_id}: [{code}] {reason}")
    if report.rejected and not (report.accepted or report.duplicates or report.skipped):
        # Nothing stored: a success exit code would hide it from scripts.
        raise typer.Exit(code=1)


def _describe(ev: Any) -> str:
    kind = ev.WhichOneof("payload")
    p: Any = getattr(ev, kind) if kind else None
    if kind == "state_changed":
        from mobiletrain._proto.mobiletrain.v1 import training_pb2

        state = training_pb2.JobState.Name(p.state).removeprefix("JOB_STATE_").lower()
        code = f"error {p.error_code}: " if p.error_code else ""
        return f"state: {state}" + (f" ({code}{p.error})" if p.error else "")
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
        return f"phase: {_phase_name(p.phase)}"
    if kind == "release":
        return _describe_release(p)
    return kind or "event"


def _phase_name(number: int) -> str:
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    name = training_pb2.JobPhase.Name(number).removeprefix("JOB_PHASE_").lower()
    return name.replace("_", " ")


def _status_name(number: int) -> str:
    from mobiletrain._proto.mobiletrain.v1 import models_pb2

    return models_pb2.VersionStatus.Name(number).removeprefix("VERSION_STATUS_").lower()


def _describe_release(p: Any) -> str:
    """The release gate's decision, as ``train --watch`` and ``jobs watch`` print it."""
    evals = ", ".join(
        f"{FORMAT_NAMES.get(a.format, a.format)} {a.accuracy:.4f}" for a in p.eval_accuracy
    )
    lines = [
        f"release gate: version {p.version} is [bold]{_status_name(p.status)}[/bold] "
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


FORMAT_NAMES = {v: k for k, v in FORMATS.items()}


def watch_with_progress(c: Client, job_id: str) -> Any:
    """Show a job's live progress; returns the final job."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("waiting", total=None, rate="")
        for ev in c.watch_job(job_id):
            kind = ev.WhichOneof("payload")
            if kind == "progress":
                p = ev.progress
                # The bar spans the whole job's batches, so the time left is the job's.
                bar.update(
                    task,
                    description=f"training: epoch {p.epoch}/{p.epochs}",
                    total=p.batches * p.epochs,
                    completed=(p.epoch - 1) * p.batches + p.batch,
                    rate=f"{p.samples_per_second:.0f} samples/s, job ends in "
                    f"~{p.job_eta_seconds:.0f}s",
                )
            elif kind == "phase":
                bar.update(task, description=_phase_name(ev.phase.phase))
                bar.console.print(_describe(ev))
            else:
                bar.console.print(_describe(ev))
    return c.get_job(job_id)


@app.command()
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
    _choice("--architecture", architecture, ARCHITECTURES)
    with _client() as c:
        try:
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
                if final.model_version:
                    _print_outcome(c, project, final.model_version)
                else:
                    raise typer.Exit(code=1)
        except ClientError as err:
            raise _fail(err) from None


JobIdArg = Annotated[
    str, typer.Argument(help="Job id, or its first characters as the dashboard shows them")
]


def _resolve_job(c: Client, job_id: str) -> str:
    """A full job id from a prefix (the dashboard shows 8 characters), searched in every project."""
    if len(job_id) == 36:
        return job_id
    matches = {
        j.id for p in c.list_projects() for j in c.list_jobs(p.id) if j.id.startswith(job_id)
    }
    if len(matches) == 1:
        return matches.pop()
    if not matches:
        raise _usage(f"no job id starts with {job_id!r}; see: mobiletrain jobs list -p PROJECT")
    raise _usage(
        f"{len(matches)} jobs start with {job_id!r} ({', '.join(sorted(matches))}); "
        "give more characters"
    )


@jobs_app.command("list")
def jobs_list(project: ProjectOpt) -> None:
    """List a project's training jobs, newest first."""
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    with _client() as c:
        try:
            jobs = c.list_jobs(project)
        except ClientError as err:
            raise _fail(err) from None
    table = Table("id", "state", "created", "epochs", "version", "error")
    for j in jobs:
        state = training_pb2.JobState.Name(j.state).removeprefix("JOB_STATE_").lower()
        table.add_row(
            j.id,
            state,
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
    with _client() as c:
        try:
            watch_with_progress(c, _resolve_job(c, job_id))
        except ClientError as err:
            raise _fail(err) from None


@jobs_app.command("cancel")
def jobs_cancel(job_id: JobIdArg) -> None:
    """Cancel a job."""
    with _client() as c:
        try:
            c.cancel_job(_resolve_job(c, job_id))
        except ClientError as err:
            raise _fail(err) from None
    console.print("cancel requested")


def _print_outcome(c: Client, project: str, version: int) -> None:
    """What a finished job produced: current or candidate (and why), and its warnings."""
    v = next((x for x in c.list_versions(project) if x.version == version), None)
    if v is None:
        console.print(f"model version [bold]{version}[/bold] published")
        return
    status = _status_name(v.status)
    colour = "green" if status == "current" else "yellow"
    console.print(f"model version [bold]{version}[/bold] is [{colour}]{status}[/{colour}]")
    if v.HasField("decision"):
        console.print(f"  release gate: {v.decision.reason}")
    for w in v.warnings:
        console.print(f"  [yellow]warning:[/yellow] {w}")


@models_app.command("list")
def models_list(project: ProjectOpt) -> None:
    """List model versions: which is current, the candidates and why the gate held them."""
    with _client() as c:
        try:
            page = c.list_versions_page(project)
        except ClientError as err:
            raise _fail(err) from None
    current = page.current_version
    console.print(f"current version: [bold]{current or 'none'}[/bold]")
    table = Table("version", "status", "eval-set accuracy", "validation", "release / warnings")
    for v in page.versions:
        evals = ", ".join(f"{FORMAT_NAMES.get(a.format)} {a.accuracy:.3f}" for a in v.eval_accuracy)
        notes = [v.decision.reason] if v.HasField("decision") else []
        notes += [f"[yellow]warning:[/yellow] {w}" for w in v.warnings]
        status = _status_name(v.status)
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
    with _client() as c:
        try:
            card = c.manifest(project, version)
        except ClientError as err:
            raise _fail(err) from None
    if as_json:
        console.print_json(json.dumps(card))
        return
    project_info = card.get("project") or {}
    console.print(
        f"[bold]{project_info.get('name', '?')}[/bold] version {card.get('version')} "
        f"(job {card.get('job_id', '?')}, {card.get('created_at', '?')})"
    )
    spec = card.get("input") or {}
    console.print(
        f"input: {spec.get('width')}x{spec.get('height')} {spec.get('color_mode')}, "
        f"value = pixel * {spec.get('scale')} + {spec.get('offset')}"
    )
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
    with _client() as c:
        try:
            v = c.promote(project, version, pin=pin, reason=reason)
        except ClientError as err:
            raise _fail(err) from None
    console.print(f"version [bold]{v.version}[/bold] is current" + (" (pinned)" if pin else ""))


@models_app.command("rollback")
def models_rollback(
    project: ProjectOpt,
    reason: Annotated[str, typer.Option(help="Why (kept in the release history)")] = "",
) -> None:
    """Make the version that was current before the current one current again."""
    with _client() as c:
        try:
            v = c.rollback(project, reason=reason)
        except ClientError as err:
            raise _fail(err) from None
    console.print(f"rolled back: version [bold]{v.version}[/bold] is current")


@models_app.command("history")
def models_history(project: ProjectOpt) -> None:
    """Which version was current when, and why."""
    with _client() as c:
        try:
            records = c.releases(project)
        except ClientError as err:
            raise _fail(err) from None
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
    with _client() as c:
        try:
            state = c.release_policy(project)
            options = (
                mode,
                margin,
                min_accuracy,
                min_per_class_recall,
                max_int8_drop,
                rollout_percent,
                rollout_hours,
            )
            if any(v is not None for v in options):
                state = c.set_release_policy(
                    project,
                    mode=mode,
                    margin=margin,
                    min_accuracy=min_accuracy,
                    min_per_class_recall=min_per_class_recall,
                    max_int8_drop=max_int8_drop,
                    rollout_percent=rollout_percent,
                    rollout_hours=rollout_hours,
                )
        except ClientError as err:
            raise _fail(err) from None
    from mobiletrain._proto.mobiletrain.v1 import models_pb2

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
        raise _usage(f"--format {fmt!r} is not one of: {', '.join(FORMATS)}")
    if not output.parent.is_dir():
        raise _usage(
            f"the folder of -o {output} does not exist; create it (mkdir -p {output.parent}) "
            f"or give another path (e.g. -o {output.name})"
        )
    if output.is_dir():
        raise _usage(f"-o {output} is a folder; give a file name (e.g. -o {output}/model.tflite)")
    with (
        _client() as c,
        Progress(
            TextColumn("downloading"), BarColumn(), DownloadColumn(), TransferSpeedColumn()
        ) as bar,
    ):
        task = bar.add_task("download", total=None)
        try:
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
        except ClientError as err:
            raise _fail(err) from None
    console.print(
        f"version {info.version} {fmt}: {output} ({info.size} bytes, sha256 {info.sha256})"
    )


@app.command()
def predict(
    image: Annotated[Path, typer.Argument(help="An image file")],
    project: ProjectOpt,
    top_k: Annotated[int, typer.Option(help="How many classes")] = 3,
) -> None:
    """Classify an image with the project's current model (server-side, LiteRT)."""
    if not image.is_file():
        what = "a folder" if image.is_dir() else "not found"
        raise _usage(
            f"{image} is {what}; give one image file "
            f"(e.g. mobiletrain predict photo.jpg -p {project})"
        )
    with _client() as c:
        try:
            resp = c.predict(project, image.read_bytes(), top_k)
        except ClientError as err:
            raise _fail(err) from None
    for p in resp.predictions:
        console.print(f"{p.label:>20}  {p.score:.4f}")
    console.print(f"(version {resp.version}, {resp.latency_ms:.1f} ms)")


@app.command()
def fsck(
    data_dir: Annotated[Path, typer.Option(help="Data folder (SQLite + blobs)")] = Path(
        "mobiletrain-data"
    ),
    database_url: Annotated[
        str, typer.Option(envvar="MOBILETRAIN_DATABASE_URL", help="As for serve")
    ] = "",
    blob_url: Annotated[str, typer.Option(envvar="MOBILETRAIN_BLOB_URL", help="As for serve")] = "",
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Mark the samples found damaged (training skips them; re-uploading the same "
            "bytes restores them) and clear the mark of those that read fine again",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
) -> None:
    """Verify every sample's bytes in the blob store against the database (reads them all).

    Lists the samples whose bytes are missing or damaged by project, label and client id.
    Exit code 0: all intact; 1: damaged samples found (marked, with --repair). Safe while the
    server runs.
    """
    from mobiletrain.config import Settings
    from mobiletrain.core.integrity import check_integrity
    from mobiletrain.store.blobs import open_blob_store
    from mobiletrain.store.sql import SqlMetadataStore

    settings = Settings(data_dir=data_dir, database_url=database_url, blob_url=blob_url)
    if not database_url and not (data_dir / "mobiletrain.db").exists():
        console.print(f"[red]no database in {data_dir}[/red] (give --data-dir or --database-url)")
        raise typer.Exit(code=2)
    store = SqlMetadataStore(settings.resolved_database_url())
    blobs = open_blob_store(settings.resolved_blob_url())
    try:
        report = check_integrity(store, blobs, full=True, repair=repair)
    finally:
        blobs.close()
        store.close()
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_fsck(report, repair)
    if report.damaged:
        raise typer.Exit(code=1)


def _print_fsck(report: IntegrityReport, repair: bool) -> None:
    console.print(report.summary())
    if report.damaged:
        table = Table("project", "label", "client id", "sample id", "problem", "marked")
        for d in report.damaged:
            marked = "yes" if d.sample.damaged or repair else "no"
            sample = d.sample
            table.add_row(d.project, sample.label, sample.client_id, sample.id, d.problem, marked)
        console.print(table)
        for (project, label), count in sorted(report.by_project_label().items()):
            console.print(f"  {project} / {label}: {count}")
    if repair:
        console.print(f"marked {report.marked} samples damaged, cleared {report.cleared}")
    elif report.unmarked:
        console.print("run again with --repair to exclude them from training")


@app.command()
def compact(
    data_dir: Annotated[Path, typer.Option(help="Data folder (SQLite + blobs)")] = Path(
        "mobiletrain-data"
    ),
    database_url: Annotated[
        str, typer.Option(envvar="MOBILETRAIN_DATABASE_URL", help="As for serve")
    ] = "",
    blob_url: Annotated[str, typer.Option(envvar="MOBILETRAIN_BLOB_URL", help="As for serve")] = "",
    grace: Annotated[
        float | None,
        typer.Option(
            help="Seconds between marking packs and rewriting them (default: as the server, "
            "longer than any upload stream lasts); 0 only when no server runs"
        ),
    ] = None,
) -> None:
    """Remove the bytes of deleted samples (and of every blob nothing refers to) now.

    The server does the same every compaction_interval_seconds; this runs one pass at once.
    Safe while the server runs, and if it is interrupted (the next pass finishes the work).
    """
    from mobiletrain.config import Settings
    from mobiletrain.store.blobs import open_blob_store
    from mobiletrain.store.compaction import compact as compact_store
    from mobiletrain.store.sql import SqlMetadataStore

    settings = Settings(data_dir=data_dir, database_url=database_url, blob_url=blob_url)
    if not database_url and not (data_dir / "mobiletrain.db").exists():
        console.print(f"[red]no database in {data_dir}[/red] (give --data-dir or --database-url)")
        raise typer.Exit(code=2)
    file_mode, dir_mode = settings.data_modes()
    store = SqlMetadataStore(settings.resolved_database_url())
    blobs = open_blob_store(settings.resolved_blob_url(), file_mode=file_mode, dir_mode=dir_mode)
    try:
        grace_s = settings.resolved_compaction_grace() if grace is None else grace
        report = compact_store(blobs, store.referenced_blobs, grace_s=grace_s)
    finally:
        blobs.close()
        store.close()
    if report.skipped:
        console.print(f"[yellow]nothing done: {report.skipped}[/yellow]")
        raise typer.Exit(code=1)
    console.print(
        f"compacted {report.packs_compacted} of {report.packs_scanned} packs: "
        f"{report.records_dropped} unreferenced records dropped, {report.bytes_freed} bytes "
        f"freed, {report.objects_deleted} objects deleted, in {report.seconds:.1f} s"
    )
    for error in report.errors:
        console.print(f"[red]not compacted[/red] {error}")
    if report.errors:
        raise typer.Exit(code=1)


@app.command()
def demo(
    epochs: Annotated[int, typer.Option(help="Training epochs")] = 15,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the demo's data here (default: temporary)")
    ] = None,
) -> None:
    """Run the whole loop on scikit-learn's digits against an embedded server."""
    from mobiletrain.client.demo import run_demo

    result = run_demo(console, epochs=epochs, data_dir=data_dir)
    if result["float32"] < 0.9:
        raise typer.Exit(code=1)


_DOCTOR_PROBE = """
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
out = {}
try:
    import tensorflow as tf
    out["tensorflow"] = tf.__version__
except Exception as err:
    out["tensorflow_error"] = f"{type(err).__name__}: {err}"
try:
    from ai_edge_litert.interpreter import Interpreter
    out["litert"] = "ok"
except Exception as err:
    out["litert_error"] = f"{type(err).__name__}: {err}"
print(json.dumps(out))
"""


def _port_state(port: int) -> str | None:
    """None when ``port`` is free; else who holds it."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("0.0.0.0", port))
            return None
        except OSError:
            pass
    import grpc
    import httpx
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
            return "a running mobiletrain server"
    except httpx.HTTPError:
        pass
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:  # the gRPC port answers the standard health check without a token
            health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
            return "a running mobiletrain server"
        except grpc.RpcError:
            pass
    return "another program"


@app.command()
def doctor(
    data_dir: Annotated[Path, typer.Option(help="Data folder serve would use")] = Path(
        "mobiletrain-data"
    ),
    grpc_port: Annotated[int, typer.Option(help="gRPC port serve would use")] = 50051,
    http_port: Annotated[int, typer.Option(help="HTTP port serve would use")] = 8000,
) -> None:
    """Check the install: TensorFlow, LiteRT, disk space, ports, dashboard, LAN address.

    Prints one line per check and what to do about a failed one; exit code 1 if any failed.
    TensorFlow is imported in a child process (this process never imports it).
    """
    import shutil
    import subprocess
    import sys

    from mobiletrain.api.rest.web import DIST_DIR
    from mobiletrain.client.pairing import lan_address

    failed = 0

    def report(ok: bool, what: str, fix: str = "") -> None:
        nonlocal failed
        failed += not ok
        mark = "[green]ok[/green]  " if ok else "[red]FAIL[/red]"
        console.print(f"{mark} {what}" + (f" -> {fix}" if fix and not ok else ""), soft_wrap=True)

    report(sys.version_info >= (3, 11), f"Python {sys.version.split()[0]}", "use Python 3.11+")
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _DOCTOR_PROBE], capture_output=True, text=True, timeout=300
        )
        found = json.loads(probe.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError) as err:
        found = {"tensorflow_error": f"the import probe failed: {err}", "litert_error": "-"}
    report(
        "tensorflow" in found,
        f"TensorFlow {found.get('tensorflow') or found.get('tensorflow_error')}",
        "make install (pip install -r requirements.lock); training needs it",
    )
    report(
        "litert" in found,
        f"LiteRT interpreter {found.get('litert') or found.get('litert_error')}",
        "pip install ai-edge-litert (verifies every .tflite file and serves predict)",
    )
    existing = next(p for p in (data_dir.resolve(), *data_dir.resolve().parents) if p.exists())
    free = shutil.disk_usage(existing).free
    report(
        free >= 2 * 1024**3,
        f"disk: {free / 1024**3:.1f} GiB free at {existing}",
        "free at least 2 GiB (samples, checkpoints and models) or give serve --data-dir elsewhere",
    )
    writable = os.access(existing, os.W_OK)
    report(writable, f"data folder {data_dir} writable", "chown or choose --data-dir")
    for name, port in (("gRPC", grpc_port), ("HTTP", http_port)):
        holder = _port_state(port)
        report(
            holder in (None, "a running mobiletrain server"),
            f"{name} port {port} " + ("free" if holder is None else f"used by {holder}"),
            f"stop that program or run mobiletrain serve --{name.lower()}-port {port + 1}",
        )
    built = (DIST_DIR / "index.html").exists()
    report(built, "dashboard " + ("built" if built else "not built"), "make web (Node.js 20.19+)")
    address = lan_address()
    report(
        address is not None,
        f"LAN address for phones: {address or 'none'}"
        + (" (pair with: mobiletrain serve --lan)" if address else ""),
        "join the phone's Wi-Fi network or plug in Ethernet; phones cannot reach 127.0.0.1",
    )
    if failed:
        console.print(f"{failed} problem(s) to fix")
        raise typer.Exit(code=1)
    console.print("all good: next, mobiletrain serve")


def _register_simulator() -> None:
    from mobiletrain.client.simulate_cli import simulate_devices

    app.command("simulate-devices")(simulate_devices)


_register_simulator()

if __name__ == "__main__":
    app()
