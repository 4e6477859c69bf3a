"""Federated learning end to end: a real server, simulated phones running the exported
.tflite files in LiteRT, over gRPC and REST.

The digits data (scikit-learn) is split into a held-out part, uploaded to the project (the
server evaluates every round on it), and a training part dealt non-IID to 10 devices (each
holds mostly two classes). The rules behind these scenarios are tested in seconds with numpy
devices in tests/unit/federated/test_service.py; here the real files and transports run.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from mobiletrain.cli.simulator import (
    Behaviour,
    DeviceRuntime,
    FileCache,
    SimulatedDevice,
    digits,
    held_out_split,
    non_iid_partitions,
    personalize,
    run_devices,
)
from mobiletrain.client.federated import (
    GrpcFederatedClient,
    RestFederatedClient,
    StreamingFederatedClient,
)
from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.compute.ondevice import weights_from_bytes
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.slow

DEVICES = 10
# One hidden layer of 64 on the 64 pixels: the 64-64-10 MLP of the Flower baseline.
SESSION = {
    "min_devices": 2,
    "min_available_devices": DEVICES,
    "learning_rate": 0.3,
    "local_epochs": 2,
    "round_deadline_seconds": 30.0,
    "hidden": [64],
}


def _png(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels[..., 0]).save(buf, format="PNG")
    return buf.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Env:
    server: RunningServer
    settings: Settings
    admin: str
    pixels: np.ndarray
    labels: np.ndarray
    train: np.ndarray
    parts: list[np.ndarray]
    cache: FileCache

    @property
    def grpc(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    def admin_client(self) -> GrpcFederatedClient:
        return GrpcFederatedClient(self.grpc, token=self.admin)

    def devices(
        self,
        behaviours: dict[int, Behaviour] | None = None,
        transport_kind: str = "grpc",
        count: int = DEVICES,
    ) -> list[SimulatedDevice]:
        def transport() -> Any:
            if transport_kind == "rest":
                return RestFederatedClient(self.http, token=self.admin)
            if transport_kind == "stream":
                return StreamingFederatedClient(self.grpc, token=self.admin)
            return GrpcFederatedClient(self.grpc, token=self.admin)

        x, y = self.pixels[self.train], self.labels[self.train]
        return [
            SimulatedDevice(
                f"phone-{i}",
                transport,
                "digits",
                x[part],
                y[part],
                (behaviours or {}).get(i),
                self.cache,
                wait_seconds=5.0,
            )
            for i, part in enumerate(self.parts[:count])
        ]

    def restart(self) -> None:
        self.server.stop()
        with contextlib.redirect_stdout(io.StringIO()):
            self.server = start_server(self.settings)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data = tmp_path_factory.mktemp("federated") / "data"
    settings = Settings(data_dir=data, grpc_port=_free_port(), http_port=_free_port())
    with contextlib.redirect_stdout(io.StringIO()):
        server = start_server(settings)
    admin = (data / "admin-token").read_text().strip()
    pixels, labels = digits()
    train, test = held_out_split(labels, 0.2, seed=0)
    with Client(f"127.0.0.1:{server.grpc_port}", token=admin) as client:
        client.create_project(
            "digits", labels=[str(d) for d in range(10)], width=8, height=8, color_mode="grayscale"
        )
        samples = [LocalSample(f"held-out-{i}", str(labels[i]), _png(pixels[i])) for i in test]
        assert client.upload("digits", samples).accepted == len(test)
    parts = non_iid_partitions(labels[train], DEVICES, classes_per_device=2, seed=0)
    environment = Env(server, settings, admin, pixels, labels, train, parts, FileCache())
    yield environment
    environment.server.stop()


def _wait(predicate: Callable[[], bool], timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def run_session(env: Env, devices: list[SimulatedDevice], **config: Any) -> tuple[Any, list[Any]]:
    """Start a session, run the devices until it ends; (session, rounds)."""
    admin = env.admin_client()
    try:
        session = admin.start_session("digits", **{**SESSION, **config})
        reports = run_devices(devices, timeout=240)
        _wait(lambda: admin.get_session(session.id).state in ("finished", "cancelled", "failed"))
        final = admin.get_session(session.id)
        assert final.state == "finished", (final, [r.error for r in reports])
        return final, admin.rounds(session.id)
    finally:
        admin.close()


def test_fedavg_on_non_iid_digits_reaches_90_percent(env: Env) -> None:
    assert all(len(set(env.labels[env.train][p].tolist())) > 2 for p in env.parts)
    for part in env.parts:  # each device holds mostly two classes
        counts = np.bincount(env.labels[env.train][part], minlength=10)
        assert np.sort(counts)[-2:].sum() >= 0.85 * len(part)
    started = time.monotonic()
    session, rounds = run_session(env, env.devices(), rounds=20)
    elapsed = time.monotonic() - started
    accuracies = [r["held_out_accuracy"] for r in rounds]
    print(f"\nFedAvg, 10 non-IID devices, 20 rounds in {elapsed:.1f} s: {accuracies}")
    assert len(rounds) == 20 and all(r["phase"] == "aggregated" for r in rounds)
    assert all(r["accepted"] == DEVICES for r in rounds)
    assert session.held_out_accuracy is not None and session.held_out_accuracy >= 0.90
    assert accuracies[-1] > accuracies[0]

    # Every round is a model version; the float32 classifier is a normal download.
    with Client(env.grpc, token=env.admin) as client:
        versions = client.list_versions("digits")
        assert versions[0].version == session.model_version == rounds[-1]["model_version"]
        manifest = client.manifest("digits")
        assert manifest["federated"]["round"] == 20
        assert manifest["ondevice"]["train_step"]["inputs"][0]["name"] == "x"
        events = list(client.watch_job(session.job_id))
    epochs = [e for e in events if e.HasField("epoch_end")]
    assert [e.epoch_end.epoch for e in epochs] == list(range(1, 21))
    assert epochs[-1].epoch_end.val_accuracy == pytest.approx(session.held_out_accuracy)
    # The same events over REST (JSON polling of the SSE endpoint).
    r = httpx.get(
        f"{env.http}/v1/jobs/{session.job_id}/events",
        params={"stream": "false"},
        headers={"Authorization": f"Bearer {env.admin}"},
    )
    assert r.status_code == 200, r.text
    assert sum(1 for e in r.json()["events"] if e["kind"] == "epoch") == 20

    # Personalisation: one user fine-tunes the federated head on the phone, no server round.
    with env.admin_client() as admin:
        weights_file = admin.download(session.id, "head-weights")
        files = {
            f: admin.download(session.id, f)
            for f in ("feature-extractor", "train-step", "head-inference")
        }
    runtime = DeviceRuntime.from_files(files, session.ondevice)
    weights = weights_from_bytes(weights_file, runtime.head)
    part = env.parts[3]
    result = personalize(
        runtime, weights, env.pixels[env.train][part], env.labels[env.train][part], epochs=5
    )
    print(f"personalisation on phone-3: {result.before:.3f} -> {result.after:.3f}")
    assert result.after > result.before


def test_a_byzantine_device_damages_fedavg_but_not_median_or_trimmed_mean(env: Env) -> None:
    rounds = 5
    byzantine = {0: Behaviour(update_scale=1e6)}
    # Every device transport is used: the Participate stream, unary gRPC calls and REST.
    honest, _ = run_session(env, env.devices(transport_kind="stream"), rounds=rounds)
    results = {}
    for strategy in ("fedavg", "median", "trimmed-mean"):
        devices = env.devices(byzantine, "grpc" if strategy == "fedavg" else "rest")
        session, _ = run_session(env, devices, rounds=rounds, strategy=strategy)
        results[strategy] = session.held_out_accuracy
    print(
        f"\nhonest FedAvg {honest.held_out_accuracy:.3f}; with a device scaling by 1e6: {results}"
    )
    assert honest.held_out_accuracy is not None and honest.held_out_accuracy > 0.7
    assert results["fedavg"] is not None and results["fedavg"] < 0.5
    for robust in ("median", "trimmed-mean"):
        assert results[robust] is not None
        assert results[robust] >= honest.held_out_accuracy - 0.12, robust


@pytest.mark.parametrize(("min_completion_rate", "aggregated"), [(0.5, True), (0.8, False)])
def test_forty_percent_of_devices_killed_mid_round(
    env: Env, min_completion_rate: float, aggregated: bool
) -> None:
    killed = {i: Behaviour(die_at_round=2) for i in range(4)}
    session, rounds = run_session(
        env,
        env.devices(killed),
        rounds=2,
        round_deadline_seconds=3.0,
        min_completion_rate=min_completion_rate,
    )
    first, second = rounds
    assert first["phase"] == "aggregated" and first["accepted"] == DEVICES
    assert second["accepted"] == 6 and "deadline passed" in second["close_reason"]
    if aggregated:
        assert second["phase"] == "aggregated"
        assert session.model_version == second["model_version"] == first["model_version"] + 1
    else:
        assert second["phase"] == "skipped" and second["model_version"] == 0
        assert session.model_version == first["model_version"]  # the previous model is kept


def test_server_restart_mid_round_resumes_the_round(env: Env) -> None:
    slow = {i: Behaviour(slow_seconds=3.0) for i in range(2)}
    admin = env.admin_client()
    session = admin.start_session("digits", **{**SESSION, "rounds": 2, "min_available_devices": 4})
    admin.close()
    reports: list[Any] = []
    runner = threading.Thread(
        target=lambda: reports.extend(run_devices(env.devices(slow, count=4), 240))
    )
    runner.start()

    def accepted_in_round_one() -> int:
        with env.admin_client() as a:
            rounds = a.rounds(session.id)
        return rounds[0]["accepted"] if rounds and rounds[0]["phase"] == "open" else -1

    _wait(lambda: accepted_in_round_one() >= 2)  # the fast devices answered, the slow train
    env.restart()
    runner.join(timeout=240)
    with env.admin_client() as a:
        final = a.get_session(session.id)
        rounds = a.rounds(session.id)
    assert final.state == "finished", [r.error for r in reports]
    assert [r["phase"] for r in rounds] == ["aggregated", "aggregated"]
    assert rounds[0]["accepted"] == 4  # two before the restart, two after
    assert all(r.accepted == 2 and not r.rejected for r in reports), reports


def test_simulate_devices_command(env: Env) -> None:
    from typer.testing import CliRunner

    from mobiletrain.cli import app

    result = CliRunner().invoke(
        app,
        [
            "--server",
            env.grpc,
            "--token",
            env.admin,
            "simulate-devices",
            "--project",
            "digits",
            "--setup",
            "--start",
            "--rounds",
            "2",
            "--devices",
            "4",
            "--personalize",
            "3",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "session finished" in result.output
    assert "phone-3" in result.output and "before" in result.output
