"""Training jobs on a real mobiletrain server, watched over gRPC and Server-Sent Events.

Each watcher records, for every event, the server's ``created_at`` (taken by the worker when
the event is appended, right after the Keras callback emits it) and the client's receipt time;
both are this machine's wall clock, so their difference is the delivery latency.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bench.common import MobiletrainServer
from bench.datasets import ImageSet

TERMINAL = {"succeeded", "failed", "cancelled"}


@dataclass
class Watched:
    """One event as a watcher received it."""

    seq: int
    kind: str  # state, progress, epoch, evaluation, log
    created: float  # server time (epoch seconds)
    received: float  # client time (epoch seconds)
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def latency_ms(self) -> float:
        """Receipt minus creation, in milliseconds."""
        return (self.received - self.created) * 1000.0

    @property
    def state(self) -> str:
        """For state events, the state name in lower case (``succeeded``); else ``""``."""
        value = str(self.data.get("state", ""))
        return value.removeprefix("JOB_STATE_").lower() if self.kind == "state" else ""


def create_and_upload(server: MobiletrainServer, images: ImageSet, project: str = "bench") -> int:
    """Create a project with the set's labels and input spec, upload the set over gRPC."""
    from mobiletrain.client.sdk import LocalSample

    with server.client() as client:
        client.create_project(
            project,
            labels=images.label_names,
            width=images.width,
            height=images.height,
            color_mode=images.color_mode,
        )
        samples = [
            LocalSample(f"s{i}", label, img)
            for i, (img, label) in enumerate(zip(images.images, images.labels, strict=True))
        ]
        report = client.upload(project, samples)
    if report.accepted != len(images):
        raise RuntimeError(f"upload stored {report.accepted} of {len(images)} images")
    return int(report.accepted)


def job_hyperparameters(
    epochs: int, batch_size: int = 32, seed: int = 42, formats: list[str] | None = None
) -> dict[str, Any]:
    """Explicit hyperparameters shared by the job and the plain baseline (no augmentation)."""
    hp: dict[str, Any] = {
        "epochs": epochs,
        "batch_size": batch_size,
        "learning_rate": 1e-3,
        "validation_split": 0.2,
        "seed": seed,
        "class_weights": True,
        "dropout": 0.2,
        "early_stopping_patience": 0,
    }
    if formats is not None:
        hp["formats"] = formats
    return hp


def _grpc_event(ev: Any, received: float) -> Watched:
    from google.protobuf.json_format import MessageToDict

    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    kind = training_pb2.EventKind.Name(ev.kind).removeprefix("EVENT_KIND_").lower()
    payload = ev.WhichOneof("payload")
    data = MessageToDict(getattr(ev, payload), preserving_proto_field_name=True) if payload else {}
    created = ev.created_at.seconds + ev.created_at.nanos / 1e9
    return Watched(int(ev.seq), kind, created, received, data)


def grpc_watch(
    server: MobiletrainServer,
    job_id: str,
    timeout: float,
    on_event: Callable[[Watched], None] | None = None,
) -> list[Watched]:
    """Watch a job over gRPC ``WatchJob`` until its final state (or ``timeout`` seconds)."""
    from mobiletrain._proto.mobiletrain.v1 import training_pb2

    out: list[Watched] = []
    with server.client() as client:
        stream = client.training.WatchJob(
            training_pb2.WatchJobRequest(job_id=job_id, after_seq=0), timeout=timeout
        )
        for ev in stream:
            item = _grpc_event(ev, time.time())
            out.append(item)
            if on_event is not None:
                on_event(item)
            if item.state in TERMINAL:
                stream.cancel()
                break
    return out


def sse_watch(
    server: MobiletrainServer,
    job_id: str,
    timeout: float,
    on_event: Callable[[Watched], None] | None = None,
) -> list[Watched]:
    """Watch a job over ``GET /v1/jobs/{id}/events`` (SSE) until its final state or timeout."""
    import httpx

    out: list[Watched] = []
    deadline = time.monotonic() + timeout
    limits = httpx.Timeout(timeout, connect=10.0)
    with (
        server.http(timeout=timeout) as http,
        http.stream("GET", f"/v1/jobs/{job_id}/events", timeout=limits) as resp,
    ):
        resp.raise_for_status()
        for line in resp.iter_lines():
            if time.monotonic() > deadline:
                break
            if not line.startswith("data:"):
                continue
            received = time.time()
            body = json.loads(line[5:].strip())
            created = datetime.fromisoformat(body["created_at"]).timestamp()
            item = Watched(int(body["seq"]), str(body["kind"]), created, received, body["data"])
            out.append(item)
            if on_event is not None:
                on_event(item)
            if item.state in TERMINAL:
                break
    return out


def start_job(server: MobiletrainServer, hp: dict[str, Any], project: str = "bench") -> str:
    """StartJob over gRPC; returns the job id."""
    with server.client() as client:
        job = client.start_job(project, **hp)
    return str(job.id)


def job_hyperparameters_of(server: MobiletrainServer, job_id: str) -> dict[str, Any]:
    """The hyperparameters the server recorded for a job (to check both sides used the same)."""
    from google.protobuf.json_format import MessageToDict

    with server.client() as client:
        job = client.get_job(job_id)
    return dict(MessageToDict(job.hyperparameters, preserving_proto_field_name=True))
