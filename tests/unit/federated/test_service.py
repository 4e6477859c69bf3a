"""The federated service with numpy devices and a numpy stand-in for the LiteRT toolkit.

The rules (selection, rejection, closing, skipping, publishing, resuming) are tested here in
seconds; tests/e2e/test_federated.py runs the real .tflite files over gRPC and REST.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mobiletrain.core.auth import Principal, Role, acting_as
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.events import EventHub
from mobiletrain.core.manifest import SCHEMA_VERSION, manifest_of
from mobiletrain.core.services import ProjectService
from mobiletrain.core.types import ColorMode, EventKind, InputSpec, JobState, ModelFormat
from mobiletrain.core.validation import Limits
from mobiletrain.federated.config import FederatedConfig, StrategyName
from mobiletrain.federated.device import AssignmentStatus
from mobiletrain.federated.head import HeadSpec, weights_from_bytes, weights_to_bytes
from mobiletrain.federated.ports import OnDeviceToolkit, PreparedFiles
from mobiletrain.federated.records import SessionState
from mobiletrain.federated.rounds import RoundPhase
from mobiletrain.federated.service import FederatedService
from mobiletrain.store.blobs import open_blob_store
from mobiletrain.store.federated import SqlFederatedStore
from mobiletrain.store.sql import SqlMetadataStore

SPEC = InputSpec(width=8, height=8, color_mode=ColorMode.GRAYSCALE)


class NumpyToolkit(OnDeviceToolkit):
    """Files are placeholders; evaluation is a numpy forward pass of the head."""

    def __init__(self) -> None:
        self.prepared = 0

    def prepare(
        self,
        spec: InputSpec,
        head: dict[str, Any],
        manifest: dict[str, Any],
        base_model: bytes | None,
        seed: int,
    ) -> PreparedFiles:
        self.prepared += 1
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
        spec_head = HeadSpec.from_dict(head)
        return PreparedFiles(
            files=files,
            head=head,
            ondevice={"head": head},
            patch_sites={},
            weights=weights_to_bytes(spec_head.init_weights(seed)),
        )

    def republish(
        self,
        templates: Mapping[ModelFormat, bytes],
        patch_sites: Mapping[str, Sequence[dict[str, Any]]],
        head: dict[str, Any],
        weights: bytes,
    ) -> dict[ModelFormat, bytes]:
        return {ModelFormat.HEAD_WEIGHTS: weights, ModelFormat.FLOAT32: b"float32 " + weights}

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
        w = weights_from_bytes(weights, HeadSpec.from_dict(head))
        return {"accuracy": float(np.tanh(abs(float(w[-1][0])))), "loss": 1.0}


@dataclass
class World:
    store: SqlMetadataStore
    service: FederatedService
    projects: ProjectService
    project_id: str
    make_service: Callable[[], FederatedService]
    hub: EventHub

    def events(self, job_id: str) -> list[Any]:
        return self.store.list_events(job_id, 0, 10_000)


@pytest.fixture
def world(tmp_path: Path, make_image: Callable[..., bytes]) -> Iterator[World]:
    store = SqlMetadataStore(f"sqlite:///{tmp_path}/meta.db")
    blobs = open_blob_store(str(tmp_path / "blobs"))
    hub = EventHub(store)
    limits = Limits()
    projects = ProjectService(store, limits)
    project = projects.create("digits", labels=["a", "b", "c"], input_spec=SPEC)
    services: list[FederatedService] = []

    def make() -> FederatedService:
        service = FederatedService(
            store,
            SqlFederatedStore(store),
            blobs,
            NumpyToolkit(),
            projects,
            hub,
            tick_seconds=0.01,
        )
        services.append(service)
        service.start()
        return service

    yield World(store, make(), projects, project.id, make, hub)
    for service in services:
        service.stop()
    blobs.close()
    store.close()


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        time.sleep(0.01)


def started(world: World, **config: Any) -> str:
    session = world.service.start_session("digits", FederatedConfig(**config))
    wait_for(lambda: world.service.get_session(session.id).state is SessionState.RUNNING)
    return session.id


def device_loop(
    world: World,
    device_id: str,
    train: Callable[[list[np.ndarray]], list[np.ndarray] | None],
    num_samples: int = 10,
    stop: threading.Event | None = None,
) -> threading.Thread:
    """A numpy device: poll, 'train' (None = die without answering), push, repeat."""

    def run() -> None:
        while stop is None or not stop.is_set():
            reply = world.service.get_assignment("digits", device_id, wait_seconds=0.5)
            if reply.status is AssignmentStatus.FINISHED:
                return
            if reply.assignment is None:
                continue
            shapes = [s for _, s in reply.assignment.tensors]
            flat = np.frombuffer(reply.assignment.weights, dtype="<f4")
            tensors, start = [], 0
            for shape in shapes:
                n = int(np.prod(shape))
                tensors.append(flat[start : start + n].reshape(shape).copy())
                start += n
            new = train(tensors)
            if new is None:
                return
            world.service.push_update(
                "digits",
                device_id,
                reply.assignment.session_id,
                reply.assignment.round,
                weights_to_bytes(new),
                num_samples,
                metrics={"loss": 0.5, "accuracy": 0.9},
            )

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def register(world: World, n: int) -> list[str]:
    return [world.service.register("digits", {"platform": "test"})[1] for _ in range(n)]


def test_rounds_aggregate_publish_and_finish(world: World) -> None:
    sid = started(world, rounds=2, min_devices=3, min_available_devices=3, hidden=[4])
    devices = register(world, 3)
    initial = None

    def plus(offset: float) -> Callable[[list[np.ndarray]], list[np.ndarray]]:
        def train(ws: list[np.ndarray]) -> list[np.ndarray]:
            nonlocal initial
            if initial is None:
                initial = [w.copy() for w in ws]
            return [w + offset for w in ws]

        return train

    threads = [
        device_loop(world, d, plus(o), num_samples=n)
        for d, o, n in zip(devices, (1.0, 2.0, 4.0), (10, 10, 20), strict=True)
    ]
    for t in threads:
        t.join(timeout=20)
    session = world.service.get_session(sid)
    assert session.state is SessionState.FINISHED and session.current_round == 2
    # Devices learn of the end first; the job's final state is written right after.
    wait_for(lambda: world.store.get_job(session.job_id).state.is_terminal)  # type: ignore[union-attr]
    rounds = world.service.rounds(sid)
    assert [r.phase for r in rounds] == [RoundPhase.AGGREGATED, RoundPhase.AGGREGATED]
    assert rounds[0].result["completion_rate"] == 1.0
    # FedAvg weighted by samples: (10*1 + 10*2 + 20*4) / 40 = 2.75 per round
    final = weights_from_bytes(
        world.service.blobs.get(session.weights_sha256), HeadSpec(64, 3, (4,), 32)
    )
    assert initial is not None
    np.testing.assert_allclose(final[0], initial[0] + 5.5, atol=1e-5)
    versions = world.store.list_model_versions(world.project_id)
    assert [v.version for v in versions] == [2, 1]
    latest = versions[0]
    assert latest.manifest["federated"]["round"] == 2
    card = manifest_of(latest)  # the typed card reads what publishing wrote
    assert card.schema_version == SCHEMA_VERSION and card.labels == ["a", "b", "c"]
    assert card.job_id == session.job_id and card.project_name == "digits"
    assert card.files[ModelFormat.FLOAT32.value].file == ModelFormat.FLOAT32.file_name
    assert (
        card.files[ModelFormat.FLOAT32.value].sha256 == latest.artifacts[ModelFormat.FLOAT32].sha256
    )
    assert set(latest.artifacts) >= {
        ModelFormat.FLOAT32,
        ModelFormat.TRAIN_STEP,
        ModelFormat.HEAD_WEIGHTS,
        ModelFormat.FEATURE_EXTRACTOR,
    }
    assert latest.metrics["federated"]["strategy"] == "fedavg"
    job = world.store.get_job(session.job_id)
    assert job is not None and job.state is JobState.SUCCEEDED and job.model_version == 2
    kinds = [e.kind for e in world.events(session.job_id)]
    assert kinds[0] is EventKind.STATE and kinds[-1] is EventKind.STATE
    assert kinds.count(EventKind.EPOCH) == 2 and EventKind.EVALUATION in kinds
    epoch = next(e for e in world.events(session.job_id) if e.kind is EventKind.EPOCH)
    assert epoch.data["epoch"] == 1 and epoch.data["epochs"] == 2
    assert epoch.data["round"]["model_version"] == 1
    # A device of the finished session is told so.
    assert world.service.get_assignment("digits", devices[0]).status is AssignmentStatus.FINISHED


def test_every_kind_of_bad_update_is_rejected_and_reported(world: World) -> None:
    sid = started(world, rounds=1, min_devices=2, min_available_devices=6, fraction=0.8)
    devices = register(world, 6)
    wait_for(lambda: world.service.get_session(sid).current_round == 1)
    tasks = {d: world.service.get_assignment("digits", d).assignment for d in devices}
    chosen = [d for d, t in tasks.items() if t is not None]
    outsider = next(d for d, t in tasks.items() if t is None)
    assert len(chosen) == 5
    task = tasks[chosen[0]]
    assert task is not None
    good = task.weights

    def push(device: str, data: bytes, round_number: int = 1, n: int = 5, **kw: Any) -> Any:
        return world.service.push_update("digits", device, sid, round_number, data, n, **kw)

    nan = bytearray(good)
    nan[0:4] = np.array([np.nan], "<f4").tobytes()
    assert push(outsider, good).reason == "not-selected"
    assert push(chosen[0], good, round_number=7).reason == "stale-round"
    assert push(chosen[0], good[:-4]).reason == "shape"
    # The first counted answer of a selected device is its answer for the round.
    assert push(chosen[0], good).reason == "duplicate"
    assert push(chosen[1], good, dtype="float16").reason == "dtype"
    assert push(chosen[2], bytes(nan)).reason == "not-finite"
    assert push(chosen[3], good, n=0).reason == "sample-count"
    assert push(chosen[4], good, error="out of memory").reason == "device-failed"
    wait_for(lambda: world.service.get_session(sid).state.is_terminal)
    rnd = world.service.rounds(sid)[0]
    assert rnd.phase is RoundPhase.SKIPPED
    assert rnd.result["rejected"] == {
        chosen[0]: "shape",
        chosen[1]: "dtype",
        chosen[2]: "not-finite",
        chosen[3]: "sample-count",
        outsider: "not-selected",
    }
    assert rnd.result["failed"] == {chosen[4]: "out of memory"}
    job_id = world.service.get_session(sid).job_id
    logs = [e.data["message"] for e in world.events(job_id) if e.kind is EventKind.LOG]
    assert any("not-finite" in m for m in logs) and any("not-selected" in m for m in logs)
    with pytest.raises(MobiletrainError) as info:
        world.service.push_update("digits", "nobody", sid, 1, good, 5)
    assert info.value.code is ErrorCode.DEVICE_NOT_REGISTERED


@pytest.mark.parametrize(("min_rate", "aggregated"), [(0.5, True), (0.8, False)])
def test_killed_devices(world: World, min_rate: float, aggregated: bool) -> None:
    sid = started(
        world,
        rounds=1,
        min_devices=2,
        min_available_devices=10,
        round_deadline_seconds=0.5,
        min_completion_rate=min_rate,
    )
    devices = register(world, 10)
    threads = [
        device_loop(world, d, (lambda ws: None) if i < 4 else (lambda ws: [w + 1 for w in ws]))
        for i, d in enumerate(devices)
    ]
    for t in threads:
        t.join(timeout=10)
    wait_for(lambda: world.service.get_session(sid).state.is_terminal)
    rnd = world.service.rounds(sid)[0]
    assert len(rnd.result["accepted"]) == 6 and rnd.result["completion_rate"] == 0.6
    assert "deadline passed" in rnd.result["close_reason"]
    versions = world.store.list_model_versions(world.project_id)
    if aggregated:
        assert rnd.phase is RoundPhase.AGGREGATED and len(versions) == 1
    else:
        assert rnd.phase is RoundPhase.SKIPPED and versions == []
        assert world.service.get_session(sid).model_version is None


def test_restart_mid_round_resumes_it(world: World) -> None:
    sid = started(
        world, rounds=1, min_devices=3, min_available_devices=3, round_deadline_seconds=30
    )
    devices = register(world, 3)
    wait_for(lambda: world.service.get_session(sid).current_round == 1)
    for d in devices[:2]:
        task = world.service.get_assignment("digits", d).assignment
        assert task is not None
        ws = np.frombuffer(task.weights, "<f4") + 1.0
        assert world.service.push_update("digits", d, sid, 1, ws.tobytes(), 10).accepted
    world.service.stop()

    second = world.make_service()
    assert second.get_session(sid).state is SessionState.RUNNING
    rnd = second.rounds(sid)[0]
    assert rnd.phase is RoundPhase.OPEN and len(rnd.result["accepted"]) == 2
    world.service = second
    last = devices[2]
    task = second.get_assignment("digits", last, wait_seconds=2).assignment
    assert task is not None and task.round == 1
    ws = np.frombuffer(task.weights, "<f4") + 4.0
    assert second.push_update("digits", last, sid, 1, ws.tobytes(), 10).accepted
    wait_for(lambda: second.get_session(sid).state is SessionState.FINISHED)
    rnd = second.rounds(sid)[0]
    assert rnd.phase is RoundPhase.AGGREGATED and len(rnd.result["accepted"]) == 3
    final = np.frombuffer(second.blobs.get(second.get_session(sid).weights_sha256), "<f4")
    np.testing.assert_allclose(final, np.frombuffer(task.weights, "<f4") + 2.0, atol=1e-5)


def test_byzantine_device_fedavg_vs_median(world: World) -> None:
    results = {}
    for strategy in (StrategyName.FEDAVG, StrategyName.MEDIAN):
        sid = started(
            world, rounds=1, min_devices=5, min_available_devices=5, strategy=strategy.value
        )
        devices = register(world, 5)
        threads = [
            device_loop(
                world,
                d,
                (lambda ws: [w * 1e6 for w in ws])
                if i == 0
                else (lambda ws: [w + 0.1 for w in ws]),
            )
            for i, d in enumerate(devices)
        ]
        for t in threads:
            t.join(timeout=10)
        session = world.service.get_session(sid)
        results[strategy] = np.abs(
            np.frombuffer(world.service.blobs.get(session.weights_sha256), "<f4")
        ).max()
    assert results[StrategyName.MEDIAN] < 2.0
    assert results[StrategyName.FEDAVG] > 1e3


def test_clipping_and_noise_are_reported(world: World) -> None:
    sid = started(
        world, rounds=1, min_devices=2, min_available_devices=2, clip_norm=0.5, noise_multiplier=1.0
    )
    devices = register(world, 2)
    for t in [device_loop(world, d, lambda ws: [w + 1.0 for w in ws]) for d in devices]:
        t.join(timeout=10)
    rnd = world.service.rounds(sid)[0]
    assert rnd.result["clipped"] == 2
    assert rnd.result["noise_std"] == pytest.approx(0.25)  # 1.0 * 0.5 * (10 / 20)
    version = world.store.list_model_versions(world.project_id)[0]
    assert version.manifest["federated"]["noise_std"] == pytest.approx(0.25)


def test_cancelling_the_job_stops_the_session(world: World) -> None:
    sid = started(world, rounds=3)
    job_id = world.service.get_session(sid).job_id
    world.store.request_cancel(job_id)
    wait_for(lambda: world.store.get_job(job_id).state is JobState.CANCELLED)  # type: ignore[union-attr]
    assert world.service.get_session(sid).state is SessionState.CANCELLED


def test_one_running_session_per_project_and_permissions(world: World) -> None:
    started(world, rounds=3)
    with pytest.raises(MobiletrainError) as info:
        world.service.start_session("digits", FederatedConfig())
    assert info.value.code is ErrorCode.SESSION_ACTIVE
    other = world.projects.create("other", labels=["x", "y"], input_spec=SPEC)
    device = Principal(token_id="t", role=Role.DEVICE, project_id=world.project_id)
    stranger = Principal(token_id="s", role=Role.DEVICE, project_id=other.id)
    with acting_as(device):
        _, device_id = world.service.register("digits")
        assert world.service.get_assignment("digits", device_id).status is AssignmentStatus.WAIT
        with pytest.raises(MobiletrainError) as info:
            world.service.start_session("digits", FederatedConfig())
        assert info.value.code is ErrorCode.PERMISSION_DENIED
    with acting_as(stranger), pytest.raises(MobiletrainError) as info:
        world.service.register("digits")
    assert info.value.code is ErrorCode.PROJECT_NOT_FOUND
    with pytest.raises(MobiletrainError) as info:
        world.service.register("other")
    assert info.value.code is ErrorCode.NO_ACTIVE_SESSION
