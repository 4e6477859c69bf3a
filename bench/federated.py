"""Federated learning against Flower 1.42, side by side in the same run on the same machine.

``python bench/federated.py [--quick]`` (or ``run_federated`` from the suite) measures:

1. **Per-round server overhead**: devices that return the weights unchanged, 10 and 50 of
   them, a 100 KB and a 10 MB model (a dense head of 25,010 and 2,621,450 float32 weights).
   A round's time is from one round's start to the next's (select, send the weights, receive
   every update, aggregate, and for mobiletrain also persist, evaluate and publish a model
   version), median over the rounds after the first (a warm-up; Flower's also waits for its
   clients to connect); and the server's peak RSS. Flower runs in its gRPC
   server mode (``start_server`` / ``start_client``) with FedAvg.
2. **Accuracy after 20 rounds** on the same non-IID digits partitions (10 devices, mostly two
   classes each), a 64-64-10 MLP, one local epoch of SGD (lr 0.3, batch 32) from the same
   initial weights: mobiletrain's devices run the exported train-step model in LiteRT (the
   simulator), Flower's clients the same SGD in numpy.

Devices run as threads of one client process per system (separate from the server). Flower
needs its own virtualenv (``.venv-flower``, made from ``bench/requirements-flower.lock`` on
first use; ``MOBILETRAIN_FLOWER_PYTHON`` points elsewhere). Writes
``bench/results/federated.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from bench.common import MobiletrainServer, Row, free_port, machine, ratio, wait_port  # noqa: E402

FLOWER_VENV = ROOT / ".venv-flower"
FLOWER_LOCK = HERE / "requirements-flower.lock"
RESULTS = HERE / "results" / "federated.json"
# (name, input side): a flattened side x side grayscale image into a 10-class dense head.
MODELS = {"100KB": 50, "10MB": 512}
CLASSES = 10
ABSOLUTE_GOAL = ("10MB", 50)
"""The configuration with issue 18's absolute goal: < 2 s per round, < 0.5 GB server RSS."""
TIME_BUDGET_S = 900.0


def flower_python() -> str:
    """The Python of Flower's virtualenv, made on first use."""
    import os

    configured = os.environ.get("MOBILETRAIN_FLOWER_PYTHON")
    if configured:
        return configured
    python = FLOWER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(FLOWER_VENV)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "-r", str(FLOWER_LOCK)], check=True
        )
    return str(python)


# --- mobiletrain ------------------------------------------------------------------------------


def _unchanged_devices(target: str, tokens: list[str], project: str) -> None:
    """Devices that send the global weights straight back (run in the client process)."""
    from mobiletrain.client.federated import StreamingFederatedClient

    def device(token: str) -> None:
        # One Participate stream per device, like Flower's one stream per client.
        with StreamingFederatedClient(target, token=token, timeout=600) as client:
            device_id, _ = client.register(project)
            while True:
                task = client.get_task(project, device_id, wait_seconds=30)
                if task.status == "finished":
                    return
                if task.status == "task":
                    client.push_update(
                        project, device_id, task.session_id, task.round, task.weights, 1
                    )

    threads = [threading.Thread(target=device, args=(token,)) for token in tokens]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def _wait_state(admin: Any, session_id: str, states: tuple[str, ...], timeout: float) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        info = admin.get_session(session_id)
        if info.state in states:
            return info
        time.sleep(0.2)
    raise TimeoutError(f"session {session_id} did not reach {states}")


def mobiletrain_overhead(side: int, devices: int, rounds: int) -> dict[str, Any]:
    """Per-round time and server peak RSS of mobiletrain with unchanged-weight devices."""
    from mobiletrain.client.federated import GrpcFederatedClient

    with tempfile.TemporaryDirectory(prefix="bench-federated-") as tmp:
        server = MobiletrainServer(Path(tmp) / "data")
        try:
            with server.client() as client:
                client.create_project(
                    "overhead",
                    labels=[str(i) for i in range(CLASSES)],
                    width=side,
                    height=side,
                    color_mode="grayscale",
                )
                # Every phone has its own device token, as in production.
                tokens = [
                    client.create_token("device", "overhead", f"phone {i}")[1]
                    for i in range(devices)
                ]
            tokens_file = Path(tmp) / "tokens.json"
            tokens_file.write_text(json.dumps(tokens))
            with GrpcFederatedClient(server.grpc_target, token=server.token, timeout=600) as admin:
                session = admin.start_session(
                    "overhead",
                    rounds=rounds,
                    min_devices=devices,
                    min_available_devices=devices,
                    round_deadline_seconds=600.0,
                    hidden=[],
                )
                _wait_state(admin, session.id, ("running",), 600)
                server.sample_rss()
                base_rss = server.peak_rss
                server.peak_rss = 0
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        str(Path(__file__)),
                        "devices",
                        "--target",
                        server.grpc_target,
                        "--tokens",
                        str(tokens_file),
                        "--project",
                        "overhead",
                    ]
                )
                while proc.poll() is None:
                    server.sample_rss()
                    time.sleep(0.05)
                info = _wait_state(admin, session.id, ("finished", "failed", "cancelled"), 60)
                records = admin.rounds(session.id)
        finally:
            server.stop()
    opened = [r["opened_at"] for r in records]
    cycles = [b - a for a, b in itertools.pairwise(opened)][1:]  # the first one warms up
    return {
        "state": info.state,
        "round_seconds": cycles,
        "median_round_seconds": statistics.median(cycles),
        "peak_rss": server.peak_rss,
        "idle_rss": base_rss,
        "accepted": [r["accepted"] for r in records],
    }


# --- Flower -----------------------------------------------------------------------------------


def _flower(data: dict[str, np.ndarray], devices: int, rounds: int, train: bool) -> dict[str, Any]:
    python = flower_python()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="bench-flower-") as tmp:
        npz, out = Path(tmp) / "data.npz", Path(tmp) / "out.json"
        np.savez(npz, **data)  # type: ignore[arg-type]
        script = str(HERE / "flower_baseline.py")
        common = ["--port", str(port), "--devices", str(devices), "--data", str(npz)]
        server = subprocess.Popen(
            [python, script, "server", *common, "--rounds", str(rounds), "--out", str(out)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(port, timeout=120)
        clients = subprocess.Popen(
            [python, script, "clients", *common, *(["--train"] if train else [])],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            server.wait(timeout=TIME_BUDGET_S)
        finally:
            clients.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                clients.wait(timeout=10)
            if server.poll() is None:
                server.kill()
        result: dict[str, Any] = json.loads(out.read_text())
    # The first round also waits for the clients to connect; the last one ends with the
    # server's shutdown.
    cycles = result["round_seconds"][1:-1]
    result["median_round_seconds"] = statistics.median(cycles) if cycles else None
    return result


def flower_overhead(side: int, devices: int, rounds: int) -> dict[str, Any]:
    """Per-round time and server peak RSS of Flower with unchanged-weight clients."""
    from mobiletrain.federated.head import HeadSpec

    head = HeadSpec(side * side, CLASSES, (), 32)
    weights = head.init_weights(0)
    return _flower({f"w{i}": w for i, w in enumerate(weights)}, devices, rounds, train=False)


# --- accuracy ---------------------------------------------------------------------------------


def accuracy_comparison(rounds: int = 20, devices: int = 10) -> dict[str, Any]:
    """Held-out accuracy after ``rounds`` on the same non-IID partitions."""
    from mobiletrain.cli.simulator import (
        FileCache,
        SimulatedDevice,
        digits,
        held_out_split,
        non_iid_partitions,
        run_devices,
    )
    from mobiletrain.client.federated import GrpcFederatedClient
    from mobiletrain.client.sdk import LocalSample
    from mobiletrain.federated.head import HeadSpec

    settings = {"lr": 0.3, "batch": 32, "epochs": 1, "seed": 42}
    pixels, labels = digits()
    train, test = held_out_split(labels, 0.2, 0)
    parts = non_iid_partitions(labels[train], devices, 2, seed=0)
    x_train, y_train = pixels[train], labels[train]

    import io

    from PIL import Image

    def png(a: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(a[..., 0]).save(buf, format="PNG")
        return buf.getvalue()

    with tempfile.TemporaryDirectory(prefix="bench-federated-") as tmp:
        server = MobiletrainServer(Path(tmp) / "data")
        try:
            with server.client() as client:
                client.create_project(
                    "digits",
                    labels=[str(d) for d in range(10)],
                    width=8,
                    height=8,
                    color_mode="grayscale",
                )
                client.upload(
                    "digits",
                    [LocalSample(f"h{i}", str(labels[i]), png(pixels[i])) for i in test],
                )
            with GrpcFederatedClient(server.grpc_target, token=server.token) as admin:
                session = admin.start_session(
                    "digits",
                    rounds=rounds,
                    min_devices=devices,
                    min_available_devices=devices,
                    learning_rate=settings["lr"],
                    local_epochs=settings["epochs"],
                    batch_size=settings["batch"],
                    hidden=[64],
                    seed=settings["seed"],
                )
                cache = FileCache()
                phones = [
                    SimulatedDevice(
                        f"phone-{i}",
                        lambda: GrpcFederatedClient(server.grpc_target, token=server.token),
                        "digits",
                        x_train[p],
                        y_train[p],
                        cache=cache,
                    )
                    for i, p in enumerate(parts)
                ]
                started = time.monotonic()
                run_devices(phones, timeout=TIME_BUDGET_S)
                elapsed = time.monotonic() - started
                info = _wait_state(admin, session.id, ("finished", "failed", "cancelled"), 60)
                ours = [r["held_out_accuracy"] for r in admin.rounds(session.id)]
        finally:
            server.stop()

    head = HeadSpec(64, 10, (64,), settings["batch"])
    data: dict[str, np.ndarray] = {
        f"w{i}": w for i, w in enumerate(head.init_weights(settings["seed"]))
    }
    flat = (pixels.reshape(len(pixels), -1) / 255.0).astype(np.float32)
    for i, p in enumerate(parts):
        data[f"x_{i}"], data[f"y_{i}"] = flat[train][p], labels[train][p]
    data["x_test"], data["y_test"] = flat[test], labels[test]
    data["lr"], data["batch"] = np.array(settings["lr"]), np.array(settings["batch"])
    started = time.monotonic()
    flower = _flower(data, devices, rounds, train=True)
    return {
        "settings": settings,
        "mobiletrain": {
            "final": info.held_out_accuracy,
            "per_round": ours,
            "seconds": round(elapsed, 1),
        },
        "flower": {
            "final": flower["accuracy"][-1] if flower["accuracy"] else None,
            "per_round": flower["accuracy"],
            "seconds": round(time.monotonic() - started, 1),
        },
    }


# --- suite ------------------------------------------------------------------------------------


def run_federated(quick: bool = False) -> dict[str, Any]:
    """Every measurement; ``quick``: 100 KB with 10 devices, 3 rounds, and 5 accuracy rounds."""
    rounds = 4 if quick else 6
    configs = [("100KB", 10)] if quick else [(m, n) for m in MODELS for n in (10, 50)]
    overhead = []
    for model, devices in configs:
        side = MODELS[model]
        # Small rounds are cheap: more of them steady the median on a busy machine.
        n = rounds if model == "10MB" else 2 * rounds
        ours = mobiletrain_overhead(side, devices, n)
        theirs = flower_overhead(side, devices, n)
        overhead.append({"model": model, "devices": devices, "mobiletrain": ours, "flower": theirs})
        print(
            f"{model} x {devices}: mobiletrain {ours['median_round_seconds'] * 1000:.0f} ms/round "
            f"(peak RSS {ours['peak_rss'] / 2**20:.0f} MiB), Flower "
            f"{theirs['median_round_seconds'] * 1000:.0f} ms/round "
            f"(peak RSS {theirs['peak_rss'] / 2**20:.0f} MiB)",
            flush=True,
        )
    if not quick:
        # glibc gives each handler thread its own malloc arena; freed multi-megabyte buffers
        # stay there. The same run with two arenas, for both servers:
        with _environment(MALLOC_ARENA_MAX="2"):
            side = MODELS["10MB"]
            ours, theirs = mobiletrain_overhead(side, 50, rounds), flower_overhead(side, 50, rounds)
        overhead.append(
            {
                "model": "10MB",
                "devices": 50,
                "environment": "MALLOC_ARENA_MAX=2",
                "mobiletrain": ours,
                "flower": theirs,
            }
        )
    accuracy = accuracy_comparison(rounds=5 if quick else 20)
    print(
        f"accuracy: mobiletrain {accuracy['mobiletrain']['final']}, "
        f"Flower {accuracy['flower']['final']}",
        flush=True,
    )
    return {"machine": machine(), "overhead": overhead, "accuracy": accuracy}


@contextlib.contextmanager
def _environment(**values: str) -> Iterator[None]:
    import os

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def rows(results: dict[str, Any]) -> list[Row]:
    """Table rows: mobiletrain against Flower."""
    out = []
    for item in results["overhead"]:
        ours, theirs = item["mobiletrain"], item["flower"]
        a, b = ours["median_round_seconds"], theirs["median_round_seconds"]
        goal, met = "less than Flower", a < b
        if (item["model"], item["devices"]) == ABSOLUTE_GOAL and not item.get("environment"):
            # Issue 18's row: an absolute goal besides the baseline.
            goal = "less than Flower; < 2 s/round and < 0.5 GB server RSS"
            met = met and a < 2.0 and ours["peak_rss"] < 0.5e9
        out.append(
            Row(
                "federated",
                f"round overhead, {item['model']} model x {item['devices']} devices"
                + (f" ({item['environment']})" if item.get("environment") else ""),
                f"{a * 1000:.0f} ms/round, server peak RSS {ours['peak_rss'] / 2**20:.0f} MiB",
                f"Flower 1.42: {b * 1000:.0f} ms/round, {theirs['peak_rss'] / 2**20:.0f} MiB",
                ratio(a, b),
                goal,
                met,
                "x Flower time",
            )
        )
    acc = results["accuracy"]
    ours_acc, theirs_acc = acc["mobiletrain"]["final"], acc["flower"]["final"]
    out.append(
        Row(
            "federated",
            "held-out accuracy after 20 rounds, non-IID digits, 10 devices",
            f"{ours_acc:.3f}",
            f"Flower 1.42: {theirs_acc:.3f}",
            ratio(ours_acc, theirs_acc),
            "at least Flower's",
            ours_acc >= theirs_acc - 1e-9,
            "x Flower accuracy",
        )
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode")
    devices = sub.add_parser("devices", help="internal: the unchanged-weights devices")
    devices.add_argument("--target", required=True)
    devices.add_argument("--tokens", required=True, help="JSON file: one token per device")
    devices.add_argument("--project", required=True)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.mode == "devices":
        _unchanged_devices(args.target, json.loads(Path(args.tokens).read_text()), args.project)
        return 0
    results = run_federated(args.quick)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    for row in rows(results):
        print(" | ".join(row.cells()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
