"""Simulated phones for federated learning and on-device personalisation.

Each simulated device does exactly what the Flutter app does, with the same files: it
registers, downloads the session's ``feature-extractor``, ``train-step`` and
``head-inference`` .tflite files, computes the features of its local images once (the
extractor is frozen), then repeats: ask for a task, run the train-step model over its data in
LiteRT, send the new weights. No TensorFlow is imported here (LiteRT and numpy only), so this
is also the reference for a port to Dart.

Devices can misbehave on purpose (a Byzantine device that scales its update, a device that
dies mid-round) for tests and demonstrations. :func:`personalize` fine-tunes the head on one
user's data with the same train-step model, without any server round.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from mobiletrain.client.federated import DeviceTransport, SessionInfo, TaskInfo, UpdateResult
from mobiletrain.client.sdk import ClientError
from mobiletrain.compute.ondevice import (
    FeatureExtractor,
    HeadInference,
    HeadSpec,
    TrainStep,
    accuracy,
    weights_from_bytes,
    weights_to_bytes,
)
from mobiletrain.compute.split import stratified_split
from mobiletrain.core.errors import ErrorCode
from mobiletrain.core.types import InputSpec

RETRYABLE_CODES = frozenset(
    {
        0,  # the network failed
        ErrorCode.RATE_LIMITED.number,  # the token sent too many requests: slow down
        ErrorCode.TOO_MANY_STREAMS.number,
        ErrorCode.DEADLINE_EXCEEDED.number,  # the server ended a stream at its maximum age
    }
)
"""Failures a device retries after a pause; anything else ends its run."""

DEVICE_FILES = ("feature-extractor", "train-step", "head-inference")
"""The files a device downloads (by format name)."""


# --- data ------------------------------------------------------------------------------------


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as ``uint8 (N, 8, 8, 1)`` pixels and labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    pixels = np.round(data.images * (255.0 / 16.0)).astype(np.uint8)[..., np.newaxis]
    return pixels, data.target.astype(np.int64)


def held_out_split(
    labels: np.ndarray, fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified ``(train indices, held-out indices)``."""
    return stratified_split([int(v) for v in labels], fraction, seed)


def non_iid_partitions(
    labels: np.ndarray,
    devices: int,
    classes_per_device: int = 2,
    seed: int = 0,
    dominant_share: float = 0.9,
) -> list[np.ndarray]:
    """Indices per device; each device holds mostly ``classes_per_device`` classes.

    A ``1 - dominant_share`` fraction of the samples is dealt uniformly at random; the rest
    goes by class: device ``i`` holds classes ``i, i+1, ...`` (mod the number of classes) and
    every class is split evenly between the devices that hold it. Every sample is used once.
    """
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    order = rng.permutation(len(labels))
    n_random = round((1.0 - dominant_share) * len(labels))
    scattered, by_class = order[:n_random], order[n_random:]
    parts: list[list[int]] = [[] for _ in range(devices)]
    for i, idx in enumerate(scattered):
        parts[int(rng.integers(devices)) if i >= devices else i].append(int(idx))
    classes = sorted({int(v) for v in labels})
    holders: dict[int, list[int]] = {c: [] for c in classes}
    for d in range(devices):
        for k in range(classes_per_device):
            holders[classes[(d + k) % len(classes)]].append(d)
    for c in classes:
        idx = by_class[labels[by_class] == c]
        owners = holders[c] or [int(rng.integers(devices))]
        for owner, chunk in zip(owners, np.array_split(idx, len(owners)), strict=True):
            parts[owner].extend(int(i) for i in chunk)
    return [np.array(sorted(p), dtype=np.int64) for p in parts]


# --- devices ---------------------------------------------------------------------------------


@dataclass
class Behaviour:
    """How a simulated device (mis)behaves."""

    update_scale: float = 1.0  # its update (new - global weights) is multiplied by this
    die_at_round: int = 0  # it stops answering once given this round's task (0 = never)
    slow_seconds: float = 0.0  # extra time per round (stragglers)


@dataclass
class DeviceReport:
    """What one simulated device did."""

    name: str
    device_id: str = ""
    num_samples: int = 0
    rounds: list[int] = field(default_factory=list)
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    died: bool = False
    error: str = ""
    session: SessionInfo | None = None


class FileCache:
    """Downloaded files by sha256, shared by the devices of one simulation (a real phone
    keeps its own; sharing only saves the simulation time)."""

    def __init__(self) -> None:
        self._files: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def get(self, sha256: str, download: Callable[[], bytes]) -> bytes:
        """The file, downloaded on first use."""
        with self._lock:
            data = self._files.get(sha256)
            if data is None:
                data = self._files[sha256] = download()
            return data


class SimulatedDevice:
    """One phone: its local data, its transport, its behaviour."""

    def __init__(
        self,
        name: str,
        transport: Callable[[], DeviceTransport],
        project: str,
        images: np.ndarray,
        labels: np.ndarray,
        behaviour: Behaviour | None = None,
        cache: FileCache | None = None,
        wait_seconds: float = 5.0,
        seed: int = 0,
    ) -> None:
        self.name = name
        self.transport = transport
        self.project = project
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)
        self.behaviour = behaviour or Behaviour()
        self.cache = cache or FileCache()
        self.wait_seconds = wait_seconds
        self.seed = seed
        self.report = DeviceReport(name, num_samples=len(self.labels))

    def run(
        self, stop: threading.Event | None = None, deadline: float | None = None
    ) -> DeviceReport:
        """Take part until the session finishes (or ``stop`` is set / ``deadline`` passes)."""
        transport = _Retrying(self.transport(), stop, deadline)
        try:
            self._run(transport, stop, deadline)
        except ClientError as exc:
            self.report.error = str(exc)
        finally:
            transport.close()
        return self.report

    def _run(
        self, transport: DeviceTransport, stop: threading.Event | None, deadline: float | None
    ) -> None:
        report = self.report
        # Declaring the local dataset size bounds what this device's updates may claim.
        info = {"platform": "simulator", "num_samples": str(max(len(self.labels), 1))}
        device_id, session = transport.register(self.project, info)
        report.device_id, report.session = device_id, session
        while "train-step" not in session.files:  # the server is still exporting them
            if (stop is not None and stop.is_set()) or (deadline and time.time() > deadline):
                return
            time.sleep(0.2)
            session = transport.get_session(session.id)
            if session.state in ("finished", "failed", "cancelled"):
                return
        runtime = DeviceRuntime.load(transport, session, self.cache)
        features = runtime.extractor.features(self.images)
        rounds_seed = zlib.crc32(self.name.encode()) + self.seed
        while not (stop is not None and stop.is_set()):
            if deadline and time.time() > deadline:
                return
            task = transport.get_task(self.project, device_id, self.wait_seconds)
            if task.status == "finished":
                return
            if task.status != "task":
                continue
            if self.behaviour.die_at_round and task.round >= self.behaviour.die_at_round:
                report.died = True
                return  # killed mid-round: the server never hears from it again
            weights = weights_from_bytes(task.weights, runtime.head)
            result = runtime.step.fit(
                features,
                self.labels,
                weights,
                task.learning_rate,
                task.local_epochs,
                task.mu,
                seed=rounds_seed + task.round,
            )
            new = result.weights
            if self.behaviour.update_scale != 1.0:
                scale = np.float32(self.behaviour.update_scale)
                new = [w + scale * (n - w) for w, n in zip(weights, new, strict=True)]
            local = accuracy(runtime.inference.predict(features, new), self.labels)
            if self.behaviour.slow_seconds:
                time.sleep(self.behaviour.slow_seconds)
            reply = transport.push_update(
                self.project,
                device_id,
                task.session_id,
                task.round,
                weights_to_bytes(new),
                len(self.labels),
                {"loss": result.loss, "accuracy": local},
            )
            report.rounds.append(task.round)
            report.losses.append(result.loss)
            if reply.accepted:
                report.accepted += 1
            else:
                report.rejected[reply.reason] = report.rejected.get(reply.reason, 0) + 1


class _Retrying:
    """A transport that retries calls the network failed (the server restarting, a dropped
    connection), as an app on a phone does; answers with an error code are not retried."""

    def __init__(
        self,
        inner: DeviceTransport,
        stop: threading.Event | None,
        deadline: float | None,
        pause: float = 0.5,
    ) -> None:
        self.inner = inner
        self.stop = stop
        self.deadline = deadline
        self.pause = pause

    def _retry(self, fn: Callable[[], Any]) -> Any:
        while True:
            try:
                return fn()
            except ClientError as exc:
                if exc.code not in RETRYABLE_CODES or exc.status == "DATA_LOSS":
                    raise
                error: Exception = exc
            except httpx.TransportError as exc:
                error = exc
            if (self.stop is not None and self.stop.is_set()) or (
                self.deadline is not None and time.time() > self.deadline
            ):
                raise ClientError(0, "UNAVAILABLE", f"gave up: {error}")
            time.sleep(self.pause)

    def register(self, project: str, info: dict[str, str] | None = None) -> tuple[str, SessionInfo]:
        return self._retry(lambda: self.inner.register(project, info))  # type: ignore[no-any-return]

    def get_task(self, project: str, device_id: str, wait_seconds: float = 0.0) -> TaskInfo:
        return self._retry(lambda: self.inner.get_task(project, device_id, wait_seconds))  # type: ignore[no-any-return]

    def push_update(self, *args: Any, **kwargs: Any) -> UpdateResult:
        return self._retry(lambda: self.inner.push_update(*args, **kwargs))  # type: ignore[no-any-return]

    def download(self, session_id: str, fmt: str) -> bytes:
        return self._retry(lambda: self.inner.download(session_id, fmt))  # type: ignore[no-any-return]

    def get_session(self, session_id: str) -> SessionInfo:
        return self._retry(lambda: self.inner.get_session(session_id))  # type: ignore[no-any-return]

    def close(self) -> None:
        self.inner.close()


@dataclass
class DeviceRuntime:
    """The three LiteRT interpreters of a device."""

    head: HeadSpec
    spec: InputSpec
    extractor: FeatureExtractor
    step: TrainStep
    inference: HeadInference

    @classmethod
    def from_files(cls, files: dict[str, bytes], ondevice: dict[str, Any]) -> DeviceRuntime:
        """Load the files (format name → bytes) described by a manifest's ondevice section."""
        head = HeadSpec.from_dict(ondevice["head"])
        spec = InputSpec.from_dict(ondevice["input"])
        return cls(
            head,
            spec,
            FeatureExtractor(files["feature-extractor"], spec),
            TrainStep(files["train-step"], head),
            HeadInference(files["head-inference"], head),
        )

    @classmethod
    def load(
        cls, transport: DeviceTransport, session: SessionInfo, cache: FileCache
    ) -> DeviceRuntime:
        """Download (or reuse) the session's files and load them."""
        files = {
            fmt: cache.get(session.files[fmt], lambda f=fmt: transport.download(session.id, f))  # type: ignore[misc]
            for fmt in DEVICE_FILES
        }
        return cls.from_files(files, session.ondevice)


def run_devices(devices: Sequence[SimulatedDevice], timeout: float = 600.0) -> list[DeviceReport]:
    """Run every device in its own thread until the session ends; their reports."""
    stop = threading.Event()
    deadline = time.time() + timeout
    threads = [
        threading.Thread(target=d.run, args=(stop, deadline), name=f"device-{d.name}", daemon=True)
        for d in devices
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0.0, deadline - time.time()) + 5)
    stop.set()
    return [d.report for d in devices]


# --- personalisation -------------------------------------------------------------------------


@dataclass
class PersonalizationResult:
    """Accuracy on a user's own held-out samples before and after fine-tuning the head."""

    before: float
    after: float
    train_samples: int
    test_samples: int
    losses: list[float]


def personalize(
    runtime: DeviceRuntime,
    weights: Sequence[np.ndarray],
    images: np.ndarray,
    labels: np.ndarray,
    epochs: int = 5,
    learning_rate: float = 0.05,
    test_fraction: float = 0.3,
    seed: int = 0,
) -> PersonalizationResult:
    """Fine-tune the head on one user's data, on the device, with no server involved."""
    labels = np.asarray(labels, dtype=np.int64)
    train, test = held_out_split(labels, test_fraction, seed)
    features = runtime.extractor.features(images)
    before = accuracy(runtime.inference.predict(features[test], weights), labels[test])
    result = runtime.step.fit(
        features[train], labels[train], weights, learning_rate, epochs, seed=seed
    )
    after = accuracy(runtime.inference.predict(features[test], result.weights), labels[test])
    return PersonalizationResult(before, after, len(train), len(test), result.losses)
