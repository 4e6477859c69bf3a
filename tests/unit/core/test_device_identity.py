"""Device identity in federated rounds (issue 13, finding 2), replayed against a real server.

Device B's token pushes poisoned weights under device A's id with num_samples = 10⁹ over both
transports: refused with DEVICE_NOT_OWNED (94). The real device A's update is then accepted and
the published model equals the aggregate of the honest updates alone, computed here by hand.

The server is the real one (gRPC + REST, SQLite, packed blobs, the federated coordinator); only
the on-device toolkit is a numpy stand-in, because exporting the TFLite files (tested in
tests/e2e/test_federated.py) has nothing to do with who may name a device.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest

from mobiletrain._proto.mobiletrain.v1 import federated_pb2, federated_pb2_grpc
from mobiletrain.client.federated import GrpcFederatedClient, RestFederatedClient
from mobiletrain.client.sdk import Client, ClientError
from mobiletrain.config import Settings
from mobiletrain.core.auth import SYSTEM, acting_as
from mobiletrain.core.errors import ErrorCode
from mobiletrain.core.types import InputSpec, ModelFormat
from mobiletrain.federated.head import HeadSpec, weights_from_bytes, weights_to_bytes
from mobiletrain.federated.ports import OnDeviceToolkit, PreparedFiles
from mobiletrain.federated.strategy import cap_weight_shares
from mobiletrain.server import RunningServer, start_server

NOT_OWNED = ErrorCode.DEVICE_NOT_OWNED.number


class StandInToolkit(OnDeviceToolkit):
    """Placeholder files and a numpy head: no TensorFlow child process."""

    def prepare(
        self,
        spec: InputSpec,
        head: dict[str, Any],
        manifest: dict[str, Any],
        base_model: bytes | None,
        seed: int,
    ) -> PreparedFiles:
        files = {
            fmt: f"file {fmt.value}".encode()
            for fmt in (
                ModelFormat.FEATURE_EXTRACTOR,
                ModelFormat.TRAIN_STEP,
                ModelFormat.HEAD_INFERENCE,
                ModelFormat.HEAD_SIGNATURES,
                ModelFormat.FLOAT32,
            )
        }
        weights = weights_to_bytes(HeadSpec.from_dict(head).init_weights(seed))
        return PreparedFiles(files, head, {"head": head}, {}, weights)

    def republish(
        self,
        templates: Mapping[ModelFormat, bytes],
        patch_sites: Mapping[str, Sequence[dict[str, Any]]],
        head: dict[str, Any],
        weights: bytes,
    ) -> dict[ModelFormat, bytes]:
        return {ModelFormat.HEAD_WEIGHTS: weights}

    def evaluate(
        self,
        cache_key: str,
        extractor: bytes,
        head_inference: bytes,
        head: dict[str, Any],
        spec: InputSpec,
        load_images: Callable[[], Sequence[bytes]],
        labels: Sequence[int],
        label_names: Sequence[str],
        weights: bytes,
    ) -> dict[str, Any]:
        return {}


@dataclass
class Env:
    server: RunningServer
    admin: str
    grpc: str
    http: str

    def token(self, name: str) -> str:
        with Client(self.grpc, token=self.admin) as admin:
            return str(admin.create_token("device", "digits", name)[1])


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with contextlib.redirect_stdout(io.StringIO()):
        server = start_server(Settings(data_dir=tmp_path / "data", grpc_port=0, http_port=0))
    try:
        assert server.container.federated is not None
        server.container.federated.toolkit = StandInToolkit()
        admin = (tmp_path / "data" / "admin-token").read_text().strip()
        with Client(f"127.0.0.1:{server.grpc_port}", token=admin) as client:
            client.create_project(
                "digits", labels=["a", "b", "c"], width=8, height=8, color_mode="grayscale"
            )
        yield Env(
            server, admin, f"127.0.0.1:{server.grpc_port}", f"http://127.0.0.1:{server.http_port}"
        )
    finally:
        server.stop()


def _wait_for_task(client: Any, device_id: str) -> Any:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task = client.get_task("digits", device_id, wait_seconds=1.0)
        if task.status == "task":
            return task
    raise AssertionError("no task within 30 s")


def test_impersonation_is_refused_and_the_round_equals_the_honest_aggregate(env: Env) -> None:
    admin = GrpcFederatedClient(env.grpc, token=env.admin)
    session = admin.start_session(
        "digits",
        rounds=1,
        min_devices=2,
        min_available_devices=3,
        round_deadline_seconds=60.0,
        hidden=[3],
    )
    a_secret, b_secret, c_secret = env.token("phone a"), env.token("phone b"), env.token("c")
    a = RestFederatedClient(env.http, token=a_secret)
    c = GrpcFederatedClient(env.grpc, token=c_secret)
    d = RestFederatedClient(env.http, token=env.token("phone d"))  # sends a broken update
    b_rest = RestFederatedClient(env.http, token=b_secret)
    b_grpc = GrpcFederatedClient(env.grpc, token=b_secret)
    try:
        device_a, _ = a.register("digits", {"platform": "android", "num_samples": "50"})
        device_c, _ = c.register("digits", {"platform": "ios", "num_samples": "30"})
        device_d, _ = d.register("digits")
        # Registering again with the same token is the same device (one device per token).
        assert a.register("digits", {"platform": "android"})[0] == device_a
        task_a, task_c = _wait_for_task(a, device_a), _wait_for_task(c, device_c)
        task_d = _wait_for_task(d, device_d)
        head = HeadSpec(64, 3, (3,), 32)
        initial = weights_from_bytes(task_a.weights, head)
        poisoned = weights_to_bytes([np.full_like(w, 1000.0) for w in initial])

        # The attack: B's token names A's device, over both transports, for every call.
        for attempt in (
            lambda: b_rest.get_task("digits", device_a),
            lambda: b_grpc.get_task("digits", device_a),
            lambda: b_rest.push_update(
                "digits", device_a, session.id, task_a.round, poisoned, 10**9
            ),
            lambda: b_grpc.push_update(
                "digits", device_a, session.id, task_a.round, poisoned, 10**9
            ),
        ):
            with pytest.raises(ClientError) as refused:
                attempt()
            assert refused.value.code == NOT_OWNED, refused.value
        r = httpx.get(
            f"{env.http}/v1/projects/digits/federated/task",
            params={"device_id": device_a},
            headers={"Authorization": f"Bearer {b_secret}"},
        )
        assert (r.status_code, r.json()["code"], r.json()["error"]) == (
            403,
            NOT_OWNED,
            "device_not_owned",
        )
        with grpc.insecure_channel(env.grpc) as channel:
            stub = federated_pb2_grpc.FederatedServiceStub(channel)
            with pytest.raises(grpc.RpcError) as rpc:
                list(
                    stub.GetTask(
                        federated_pb2.GetTaskRequest(project="digits", device_id=device_a),
                        metadata=[("authorization", f"Bearer {b_secret}")],
                    )
                )
            assert rpc.value.code() is grpc.StatusCode.PERMISSION_DENIED
            trailers = dict(rpc.value.trailing_metadata() or ())
            assert trailers["mobiletrain-error-code"] == str(NOT_OWNED)
        # Device tokens do not see the rounds (they name every device) ...
        with pytest.raises(ClientError) as denied:
            b_grpc.rounds(session.id)
        assert denied.value.code == ErrorCode.PERMISSION_DENIED.number

        # ... and the real device A is not locked out: its update counts.
        honest = {device_a: (1.0, 50), device_c: (3.0, 30)}
        result_a = a.push_update(
            "digits",
            device_a,
            session.id,
            task_a.round,
            weights_to_bytes([w + 1.0 for w in initial]),
            50,
        )
        result_c = c.push_update(
            "digits",
            device_c,
            session.id,
            task_c.round,
            weights_to_bytes([w + 3.0 for w in initial]),
            30,
        )
        assert result_a.accepted and result_c.accepted, (result_a, result_c)
        nan = weights_to_bytes([np.full_like(w, np.nan) for w in initial])
        result_d = d.push_update("digits", device_d, session.id, task_d.round, nan, 10)
        assert (result_d.accepted, result_d.reason) == (False, "not-finite")

        deadline = time.monotonic() + 30
        while admin.get_session(session.id).state != "finished":
            assert time.monotonic() < deadline, admin.get_session(session.id)
            time.sleep(0.1)
        published = env.server.container.federated
        assert published is not None
        with acting_as(SYSTEM):
            final_session = published.get_session(session.id)
        final = weights_from_bytes(
            env.server.container.blobs.get(final_session.weights_sha256), head
        )
        # The honest aggregate by hand: FedAvg over A (50 samples, +1) and C (30, +3), with
        # no update above max_weight_share = 0.5 of the round: A's 50 of 80 is lowered to C's
        # 30, so both count equally: +2.0 (the uncapped mean would be +1.75).
        shifts = [s for s, _ in honest.values()]
        assert cap_weight_shares([50.0, 30.0], 0.5) == [30.0, 30.0]
        expected_shift = float(np.mean(shifts))
        assert expected_shift == 2.0
        for got, start in zip(final, initial, strict=True):
            np.testing.assert_allclose(got, start + expected_shift, rtol=0, atol=1e-5)
        rounds = admin.rounds(session.id)
        assert rounds[0]["accepted"] == 2
        assert device_d in rounds[0]["result"]["rejected"]  # administrators see who it was
        # What a device token may read about the round names no device.
        b_headers = {"Authorization": f"Bearer {b_secret}"}
        events = httpx.get(
            f"{env.http}/v1/jobs/{session.job_id}/events", headers=b_headers, timeout=30
        )
        metrics = httpx.get(f"{env.http}/v1/projects/digits/models/1/metrics", headers=b_headers)
        assert events.status_code == 200 and metrics.status_code == 200
        assert "round" in events.text and "federated" in metrics.text
        for device_id in (device_a, device_c, device_d):
            assert device_id not in events.text and device_id not in metrics.text
    finally:
        for client in (a, c, d, b_rest, b_grpc, admin):
            client.close()


def test_registrations_per_token_are_capped_and_info_is_bounded(env: Env) -> None:
    admin = GrpcFederatedClient(env.grpc, token=env.admin)
    admin.start_session("digits", rounds=1, hidden=[3])
    phone = GrpcFederatedClient(env.grpc, token=env.token("phone"))
    try:
        first, _ = phone.register("digits", {"platform": "android"})
        # The same token again: the same device, not a second vote.
        assert {phone.register("digits")[0] for _ in range(5)} == {first}
        rest = RestFederatedClient(env.http, token=env.token("other"))
        for info, code in (
            ({"k": "x" * 257}, ErrorCode.FIELD_TOO_LONG),
            ({"k" * 65: "x"}, ErrorCode.FIELD_TOO_LONG),
            ({f"k{i}": "x" for i in range(17)}, ErrorCode.FIELD_TOO_LONG),
            ({"num_samples": "many"}, ErrorCode.INVALID_ARGUMENT),
            ({"num_samples": "0"}, ErrorCode.INVALID_ARGUMENT),
        ):
            with pytest.raises(ClientError) as refused:
                rest.register("digits", info)
            assert refused.value.code == code.number, (info, refused.value)
        rest.close()
        # An admin token (operators, simulators) registers as many devices as it likes.
        assert len({admin.register("digits")[0] for _ in range(3)}) == 3
    finally:
        phone.close()
        admin.close()


def test_an_update_may_not_claim_more_samples_than_its_device_declared(env: Env) -> None:
    admin = GrpcFederatedClient(env.grpc, token=env.admin)
    session = admin.start_session(
        "digits", rounds=1, min_devices=1, min_available_devices=1, hidden=[3]
    )
    phone = RestFederatedClient(env.http, token=env.token("phone"))
    try:
        device, _ = phone.register("digits", {"num_samples": "5"})
        task = _wait_for_task(phone, device)
        result = phone.push_update("digits", device, session.id, task.round, task.weights, 6)
        assert (result.accepted, result.reason) == (False, "sample-count"), result
        assert "declared" in result.message
    finally:
        phone.close()
        admin.close()


@pytest.mark.parametrize(
    ("weights", "share", "expected"),
    [
        ([10.0, 10.0, 20.0], 0.5, [10.0, 10.0, 20.0]),  # 20 of 40 is exactly the share
        ([100.0, 1e9], 0.5, [100.0, 100.0]),
        ([100.0, 100.0, 1e9], 0.5, [100.0, 100.0, 200.0]),
        ([5.0, 1.0, 1.0, 1.0], 0.3, [9 / 7, 1.0, 1.0, 1.0]),  # T = 0.3 (T + 3)
        ([100.0, 200.0, 300.0, 1e9], 0.1, [100.0] * 4),  # below 1/n: all equal
        ([7.0], 0.5, [7.0]),
    ],
)
def test_weight_shares_are_capped_by_water_filling(
    weights: list[float], share: float, expected: list[float]
) -> None:
    capped = cap_weight_shares(weights, share)
    np.testing.assert_allclose(capped, expected, rtol=1e-12)


def test_no_capped_weight_passes_its_share() -> None:
    rng = np.random.default_rng(7)
    for _ in range(500):
        n = int(rng.integers(1, 12))
        weights = list(rng.pareto(0.8, n) * 100 + 1)
        share = float(rng.uniform(0.05, 1.0))
        capped = cap_weight_shares(weights, share)
        limit = max(share, 1 / n)
        assert max(capped) <= limit * sum(capped) * (1 + 1e-9)
        # Only weights above the threshold change, and none grows.
        assert all(c <= w * (1 + 1e-12) for c, w in zip(capped, weights, strict=True))
        if max(weights) <= limit * sum(weights):
            assert capped == weights


def test_update_error_and_metrics_are_bounded(env: Env) -> None:
    admin = GrpcFederatedClient(env.grpc, token=env.admin)
    session = admin.start_session(
        "digits", rounds=1, min_devices=1, min_available_devices=1, hidden=[3]
    )
    phone = RestFederatedClient(env.http, token=env.token("phone"))
    try:
        device, _ = phone.register("digits")
        task = _wait_for_task(phone, device)
        for kwargs in (
            {"error": "e" * 1001},
            {"metrics": {f"m{i}": 1.0 for i in range(17)}},
            {"metrics": {"m" * 65: 1.0}},
        ):
            with pytest.raises(ClientError) as refused:
                phone.push_update(
                    "digits", device, session.id, task.round, task.weights, 1, **kwargs
                )
            assert refused.value.code == ErrorCode.FIELD_TOO_LONG.number, kwargs
        # Within the limits the same update counts.
        result = phone.push_update(
            "digits", device, session.id, task.round, task.weights, 1, {"loss": 0.5}
        )
        assert result.accepted, result
    finally:
        phone.close()
        admin.close()


def test_ownership_survives_a_server_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"

    def start() -> RunningServer:
        with contextlib.redirect_stdout(io.StringIO()):
            server = start_server(Settings(data_dir=data, grpc_port=0, http_port=0))
        assert server.container.federated is not None
        server.container.federated.toolkit = StandInToolkit()
        return server

    server = start()
    try:
        admin = (data / "admin-token").read_text().strip()
        grpc_address = f"127.0.0.1:{server.grpc_port}"
        with Client(grpc_address, token=admin) as client:
            client.create_project("digits", labels=["a", "b"], width=8, height=8)
            owner = client.create_token("device", "digits", "owner")[1]
            thief = client.create_token("device", "digits", "thief")[1]
        with GrpcFederatedClient(grpc_address, token=admin) as sessions:
            session = sessions.start_session("digits", rounds=3, min_devices=2, hidden=[2])
            deadline = time.monotonic() + 30
            while sessions.get_session(session.id).state != "running":
                assert time.monotonic() < deadline
                time.sleep(0.1)
        with RestFederatedClient(f"http://127.0.0.1:{server.http_port}", token=owner) as phone:
            device, _ = phone.register("digits", {"num_samples": "7"})
    finally:
        server.stop()

    server = start()  # the session resumes from the store: owners and declarations with it
    try:
        http = f"http://127.0.0.1:{server.http_port}"
        with RestFederatedClient(http, token=thief) as other:
            with pytest.raises(ClientError) as refused:
                other.get_task("digits", device)
            assert refused.value.code == NOT_OWNED
        with RestFederatedClient(http, token=owner) as phone:
            assert phone.get_task("digits", device).status == "wait"
            assert phone.register("digits")[0] == device  # still its one device
        federated = server.container.federated
        assert federated is not None
        stored = {d.device_id: d for d in federated.fstore.list_devices(session.id)}
        assert stored[device].declared_samples == 7  # read back by whichever replica answers
    finally:
        server.stop()
