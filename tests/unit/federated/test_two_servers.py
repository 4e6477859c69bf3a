"""A federated session on two real servers sharing one database and one blob folder (issue 19).

Both servers are ``start_server`` with gRPC and REST; each device's calls alternate between
server A over REST and server B over gRPC. Server A started the session and coordinates it; in
the middle of round 2 it is stopped, after which the devices talk to B only, B takes the
session over and it completes. The on-device files are the numpy stand-ins of test_service.
"""

from __future__ import annotations

import contextlib
import io
import itertools
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from test_service import NumpyToolkit

from mobiletrain.client.federated import GrpcFederatedClient, RestFederatedClient
from mobiletrain.client.sdk import Client
from mobiletrain.config import Settings
from mobiletrain.federated.head import HeadSpec, weights_from_bytes, weights_to_bytes
from mobiletrain.server import RunningServer, start_server


def serve(tmp_path: Path, name: str) -> RunningServer:
    settings = Settings(
        data_dir=tmp_path / name,
        database_url=f"sqlite:///{tmp_path / 'shared.db'}",
        blob_url=str(tmp_path / "blobs"),
        grpc_port=0,
        http_port=0,
    )
    with contextlib.redirect_stdout(io.StringIO()):
        server = start_server(settings)
    assert server.container.federated is not None
    server.container.federated.toolkit = NumpyToolkit()
    return server


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def test_a_session_moves_to_the_other_server_when_its_coordinator_stops(tmp_path: Path) -> None:
    a, b = serve(tmp_path, "a"), serve(tmp_path, "b")
    stopped: list[RunningServer] = []
    hold = threading.Event()
    try:
        admin_token = (tmp_path / "a" / "admin-token").read_text().strip()
        with Client(f"127.0.0.1:{a.grpc_port}", token=admin_token) as admin:
            admin.create_project(
                "digits", labels=["a", "b", "c"], width=8, height=8, color_mode="grayscale"
            )
            tokens = [admin.create_token("device", "digits", f"phone {i}")[1] for i in range(3)]
        a_admin = GrpcFederatedClient(f"127.0.0.1:{a.grpc_port}", token=admin_token)
        b_admin = GrpcFederatedClient(f"127.0.0.1:{b.grpc_port}", token=admin_token)
        session = a_admin.start_session(
            "digits", rounds=3, min_devices=3, min_available_devices=3, hidden=[4], seed=5
        )
        wait_for(lambda: b_admin.get_session(session.id).state == "running")
        assert a.container.federated is not None and b.container.federated is not None
        assert a.container.federated.sessions.get(session.id) is not None  # A coordinates

        def clients(token: str) -> list[Any]:
            return [
                RestFederatedClient(f"http://127.0.0.1:{a.http_port}", token=token),
                GrpcFederatedClient(f"127.0.0.1:{b.grpc_port}", token=token),
                RestFederatedClient(f"http://127.0.0.1:{b.http_port}", token=token),
            ]

        errors: list[BaseException] = []
        used: list[str] = []

        def device(token: str, slow: bool) -> None:
            wires = clients(token)
            turn = itertools.count()

            def next_wire() -> Any:
                live = wires[1:] if stopped else wires[:2]  # after the stop: B only
                wire = live[next(turn) % len(live)]
                used.append(type(wire).__name__ + ("@a" if wire is wires[0] else "@b"))
                return wire

            try:
                device_id = next_wire().register("digits")[0]
                head: HeadSpec | None = None
                while True:
                    work = next_wire().get_task("digits", device_id, wait_seconds=1.0)
                    if work.status == "finished":
                        return
                    if work.status != "task":
                        continue
                    if slow and work.round == 2:
                        hold.wait(60)
                    if head is None:
                        shapes = [s for _, s in work.tensors]
                        head = HeadSpec(64, 3, (shapes[0][1],), work.batch_size)
                    new = [w + 1.0 for w in weights_from_bytes(work.weights, head)]
                    result = next_wire().push_update(
                        "digits", device_id, session.id, work.round, weights_to_bytes(new), 10
                    )
                    assert result.accepted, result
            except BaseException as exc:  # reported by the test thread
                errors.append(exc)

        threads = [
            threading.Thread(target=device, args=(t, i == 2), daemon=True)
            for i, t in enumerate(tokens)
        ]
        for thread in threads:
            thread.start()

        def accepted_in_round_2() -> int:
            rounds = b_admin.rounds(session.id)
            return int(rounds[1]["accepted"]) if len(rounds) >= 2 else 0

        wait_for(lambda: accepted_in_round_2() == 2)
        stopped.append(a)
        a.stop()  # hands the session's lease back: B takes over within a scan
        wait_for(lambda: b.container.federated.sessions.get(session.id) is not None)  # type: ignore[union-attr]
        hold.set()
        for thread in threads:
            thread.join(timeout=60)
        assert not errors, errors
        wait_for(lambda: b_admin.get_session(session.id).state == "finished")
        rounds = b_admin.rounds(session.id)
        assert [r["phase"] for r in rounds] == ["aggregated"] * 3
        assert [r["accepted"] for r in rounds] == [3, 3, 3]
        final = b_admin.get_session(session.id)
        assert final.model_version == 3
        assert {"RestFederatedClient@a", "GrpcFederatedClient@b"} <= set(used)
        weights = b.container.blobs.get(
            b.container.federated.get_session(session.id).weights_sha256  # type: ignore[union-attr]
        )
        assert np.isfinite(np.frombuffer(weights, "<f4")).all()
    finally:
        hold.set()
        b.stop()
        if not stopped:
            a.stop()
