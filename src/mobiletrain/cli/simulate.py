"""``mobiletrain simulate-devices``: simulated phones taking part in a federated session.

Registered on the CLI by :mod:`mobiletrain.cli.main`. Every device runs the session's .tflite
files in LiteRT on its own share of scikit-learn's digits (non-IID: mostly two classes per
device); this process never imports TensorFlow.
"""

from __future__ import annotations

import io
import time
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from PIL import Image
from rich.table import Table

from mobiletrain.cli.common import console, options
from mobiletrain.client.federated import GrpcFederatedClient, RestFederatedClient
from mobiletrain.client.sdk import Client, ClientError, LocalSample

if TYPE_CHECKING:
    from mobiletrain.cli.simulator import SimulatedDevice


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0]).save(buf, format="PNG")
    return buf.getvalue()


def _setup(
    client: Client, project: str, pixels: np.ndarray, labels: np.ndarray, test: np.ndarray
) -> None:
    """Create the digits project if needed and upload the held-out part (server evaluation)."""
    try:
        client.get_project(project)
    except ClientError:
        client.create_project(
            project, labels=[str(d) for d in range(10)], width=8, height=8, color_mode="grayscale"
        )
    samples = [LocalSample(f"held-out-{i}", str(labels[i]), _png(pixels[i])) for i in test]
    report = client.upload(project, samples)
    console.print(f"held-out samples on the server: {report.accepted} new, {len(test)} in all")


def simulate_devices(
    project: Annotated[str, typer.Option("--project", "-p", help="Project name or id")],
    devices: Annotated[int, typer.Option(help="Number of simulated phones")] = 10,
    classes_per_device: Annotated[int, typer.Option(help="Dominant classes per phone")] = 2,
    held_out: Annotated[float, typer.Option(help="Share of digits kept for evaluation")] = 0.2,
    setup: Annotated[
        bool, typer.Option(help="Create the digits project and upload the held-out part")
    ] = False,
    start: Annotated[bool, typer.Option(help="Start a session first (admin token)")] = False,
    rounds: Annotated[int, typer.Option(help="With --start: rounds")] = 20,
    strategy: Annotated[
        str, typer.Option(help="With --start: fedavg, fedprox, median or trimmed-mean")
    ] = "fedavg",
    learning_rate: Annotated[float, typer.Option(help="With --start: local learning rate")] = 0.3,
    local_epochs: Annotated[int, typer.Option(help="With --start: local epochs")] = 2,
    deadline: Annotated[float, typer.Option(help="With --start: round deadline (s)")] = 30.0,
    min_completion_rate: Annotated[float, typer.Option(help="With --start")] = 0.5,
    byzantine: Annotated[int, typer.Option(help="Phones that scale their update by 1e6")] = 0,
    kill: Annotated[int, typer.Option(help="Phones that die mid-round")] = 0,
    kill_at_round: Annotated[int, typer.Option(help="The round they die in")] = 2,
    rest: Annotated[
        str, typer.Option(help="Use REST at this base URL (e.g. http://127.0.0.1:8000)")
    ] = "",
    personalize_epochs: Annotated[
        int, typer.Option("--personalize", help="Afterwards, fine-tune on each phone (epochs)")
    ] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the data split")] = 0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds")] = 1800.0,
) -> None:
    """Simulate phones taking part in the project's federated session (LiteRT, no TF)."""
    # LiteRT and the simulator load only when the command runs (a fast CLI start).
    from mobiletrain.cli.simulator import (
        Behaviour,
        FileCache,
        SimulatedDevice,
        digits,
        held_out_split,
        non_iid_partitions,
        run_devices,
    )

    server, token = options.server, options.token or None
    pixels, labels = digits()
    train, test = held_out_split(labels, held_out, seed)
    if setup:
        with Client(server, token=token) as client:
            _setup(client, project, pixels, labels, test)
    admin = GrpcFederatedClient(server, token=token)
    try:
        session_id = ""
        if start:
            session = admin.start_session(
                project,
                rounds=rounds,
                strategy=strategy,
                learning_rate=learning_rate,
                local_epochs=local_epochs,
                round_deadline_seconds=deadline,
                min_completion_rate=min_completion_rate,
                min_available_devices=devices,
            )
            session_id = session.id
            console.print(f"session {session.id} started (job {session.job_id})")

        tokens = _device_tokens(server, token, project, devices)

        def transport_for(secret: str | None) -> Any:
            def transport() -> Any:
                if rest:
                    return RestFederatedClient(rest, token=secret)
                return GrpcFederatedClient(server, token=secret)

            return transport

        x, y = pixels[train], labels[train]
        parts = non_iid_partitions(y, devices, classes_per_device, seed)
        behaviours = {i: Behaviour(update_scale=1e6) for i in range(byzantine)}
        behaviours |= {
            i: Behaviour(die_at_round=kill_at_round) for i in range(byzantine, byzantine + kill)
        }
        cache = FileCache()
        phones = [
            SimulatedDevice(
                f"phone-{i}",
                transport_for(tokens[i]),
                project,
                x[p],
                y[p],
                behaviours.get(i),
                cache,
                seed=seed,
            )
            for i, p in enumerate(parts)
        ]
        began = time.monotonic()
        reports = run_devices(phones, timeout)
        table = Table("phone", "samples", "classes", "rounds", "accepted", "rejected", "note")
        for report, part in zip(reports, parts, strict=True):
            top = np.argsort(np.bincount(y[part], minlength=10))[-classes_per_device:]
            note = "died" if report.died else report.error
            if report.name in {f"phone-{i}" for i in range(byzantine)}:
                note = "byzantine " + note
            table.add_row(
                report.name,
                str(report.num_samples),
                ",".join(str(int(c)) for c in sorted(top)),
                str(len(report.rounds)),
                str(report.accepted),
                ", ".join(f"{k}: {v}" for k, v in report.rejected.items()),
                note,
            )
        console.print(table)
        session_id = session_id or next(
            (r.session.id for r in reports if r.session is not None), ""
        )
        if not session_id:
            raise typer.Exit(code=1)
        _print_rounds(admin, session_id, time.monotonic() - began)
        if personalize_epochs:
            _personalize(admin, session_id, phones, personalize_epochs)
    finally:
        admin.close()


def _device_tokens(server: str, token: str | None, project: str, devices: int) -> list[str | None]:
    """One device token per phone, as in production (an admin token can make them); the
    given token for all when it cannot (it is a device token itself)."""
    try:
        with Client(server, token=token) as client:
            return [
                client.create_token("device", project, f"simulated phone {i}", ttl_days=1)[1]
                for i in range(devices)
            ]
    except ClientError:
        return [token] * devices


def _print_rounds(admin: GrpcFederatedClient, session_id: str, seconds: float) -> None:
    info = admin.get_session(session_id)
    table = Table("round", "phase", "accepted", "held-out accuracy", "version", "why")
    for r in admin.rounds(session_id):
        acc = r["held_out_accuracy"]
        table.add_row(
            str(r["number"]),
            r["phase"],
            f"{r['accepted']}/{r['selected']}",
            f"{acc:.4f}" if acc is not None else "-",
            str(r["model_version"] or "-"),
            r["close_reason"],
        )
    console.print(table)
    console.print(
        f"session {info.state} after {seconds:.1f} s; model version {info.model_version}, "
        f"held-out accuracy {info.held_out_accuracy}"
    )


def _personalize(
    admin: GrpcFederatedClient, session_id: str, phones: list[SimulatedDevice], epochs: int
) -> None:
    """Each phone fine-tunes the final head on its own data (no server round)."""
    from mobiletrain.cli.simulator import DeviceRuntime, personalize
    from mobiletrain.compute.ondevice import weights_from_bytes

    session = admin.get_session(session_id)
    files = {
        f: admin.download(session_id, f)
        for f in ("feature-extractor", "train-step", "head-inference")
    }
    runtime = DeviceRuntime.from_files(files, session.ondevice)
    weights = weights_from_bytes(admin.download(session_id, "head-weights"), runtime.head)
    table = Table("phone", "accuracy on its own held-out data: before", "after")
    for phone in phones:
        result = personalize(runtime, weights, phone.images, phone.labels, epochs=epochs)
        table.add_row(phone.name, f"{result.before:.3f}", f"{result.after:.3f}")
    console.print(table)
