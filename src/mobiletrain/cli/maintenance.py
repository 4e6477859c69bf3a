"""``mobiletrain fsck``, ``compact`` and ``doctor``: checks and upkeep on this machine's data
folder and install (no server needed)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from mobiletrain.cli.common import console

if TYPE_CHECKING:
    from mobiletrain.core.integrity import IntegrityReport


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
    from mobiletrain.cli.pairing import lan_address

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
