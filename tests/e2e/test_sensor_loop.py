"""End to end, sensor time series: BasicMotions (a real smart-watch set) through a real server.

The archive's 40 training recordings go up as CSV, half through the gRPC SDK
(``upload_directory``: DIR/<label>/*.csv) and half through REST multipart; bad recordings
are refused with their codes; a job trains in a worker process; the float32 and int8 files
are downloaded and run in LiteRT on the archive's own 40 test recordings, fed window by
window as an app would (the model normalises itself). The figure is printed for the README
next to ``bench/sensor_accuracy.py``'s plain Keras one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from sensor_sets import CHANNELS, RATE_HZ, Recording, basic_motions

from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.compute.litert import LiteRTClassifier
from mobiletrain.config import Settings
from mobiletrain.core.types import SensorSpec
from mobiletrain.server import RunningServer, start_server
from mobiletrain.tasks.sensor import decode

pytestmark = pytest.mark.slow

PROJECT = "motions"
SPEC = SensorSpec(CHANNELS, RATE_HZ, window=50, stride=25)
EPOCHS = 20


@dataclass
class Loop:
    server: RunningServer
    client: Client
    http: httpx.Client
    train: list[Recording]
    test: list[Recording]
    created: dict[str, Any] = field(default_factory=dict)
    uploads: dict[str, Any] = field(default_factory=dict)
    job: Any = None


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loop]:
    data_dir = tmp_path_factory.mktemp("server")
    server = start_server(Settings(data_dir=data_dir, grpc_port=0, http_port=0))
    admin = (data_dir / "admin-token").read_text().strip()
    client = Client(f"127.0.0.1:{server.grpc_port}", token=admin)
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{server.http_port}",
        timeout=120,
        headers={"Authorization": f"Bearer {admin}"},
    )
    state = Loop(server, client, http, basic_motions("TRAIN"), basic_motions("TEST"))
    try:
        resp = http.post(
            "/v1/projects",
            json={
                "name": PROJECT,
                "task": "sensor-classification",
                "input_spec": {"sensor": SPEC.to_dict()},
            },
        )
        assert resp.status_code in (200, 201), resp.text
        state.created = resp.json()
        # Half through gRPC, as `mobiletrain upload DIR` does.
        half = len(state.train) // 2
        folder = tmp_path_factory.mktemp("upload")
        for i, rec in enumerate(state.train[:half]):
            (folder / rec.label).mkdir(exist_ok=True)
            (folder / rec.label / f"train-{i:02d}.csv").write_bytes(rec.csv())
        state.uploads["grpc"] = client.upload_directory(PROJECT, folder)
        # Half through REST multipart, with two broken recordings.
        files = [
            ("files", (f"train-{half + i:02d}.csv", rec.csv(), "text/csv"))
            for i, rec in enumerate(state.train[half:])
        ]
        labels = [rec.label for rec in state.train[half:]]
        lines = state.train[0].csv().split(b"\n")
        lines[5] = b",".join([*lines[5].split(b",")[:-1], b"NaN"])
        files.append(("files", ("nan.csv", b"\n".join(lines), "text/csv")))
        files.append(("files", ("three.csv", b"acc_x,acc_y,acc_z\n1,2,3\n4,5,6\n", "text/csv")))
        labels += ["Standing", "Standing"]
        resp = http.post(f"/v1/projects/{PROJECT}/samples", files=files, data={"labels": labels})
        assert resp.status_code == 200, resp.text
        state.uploads["rest"] = resp.json()
        # A JSON recording through gRPC, and one without the gyroscope.
        rec = state.train[0]
        doc = {"rate_hz": RATE_HZ, "channels": list(CHANNELS), "values": rec.values.tolist()}
        partial = {**doc, "channels": list(CHANNELS[:3]), "values": rec.values[:, :3].tolist()}
        state.uploads["grpc_json"] = client.upload(
            PROJECT,
            [
                LocalSample("json-0", rec.label, json.dumps(doc).encode()),
                LocalSample("no-gyro", rec.label, json.dumps(partial).encode()),
            ],
        )
        job = client.start_job(
            PROJECT,
            epochs=EPOCHS,
            batch_size=16,
            learning_rate=3e-3,
            seed=0,
            formats=["float32", "int8"],  # the other formats are verified in the unit test
        )
        list(client.watch_job(job.id))
        state.job = client.get_job(job.id)
        yield state
    finally:
        http.close()
        client.close()
        server.stop()


def test_project_carries_the_sensor_contract(loop: Loop) -> None:
    assert loop.created["task"] == "sensor-classification"
    assert loop.created["input_spec"]["sensor"]["channels"] == list(CHANNELS)
    got = loop.client.get_project(PROJECT)
    assert got.input_spec.WhichOneof("task_spec") == "sensor"
    assert list(got.input_spec.sensor.channels) == list(CHANNELS)
    assert got.input_spec.sensor.window == SPEC.window


def test_uploads_and_refusals(loop: Loop) -> None:
    half = len(loop.train) // 2
    assert loop.uploads["grpc"].accepted == half
    rest = loop.uploads["rest"]
    assert rest["accepted"] == len(loop.train) - half and rest["rejected"] == 2
    codes = sorted(r["error_code"] for r in rest["results"] if r["status"] == "rejected")
    assert codes == [116, 117], rest["results"]  # SENSOR_CHANNELS_MISMATCH, SENSOR_MISSING_VALUE
    report = loop.uploads["grpc_json"]
    assert report.accepted == 1 and [r[1] for r in report.rejections] == [116]
    # The dashboard and apps read a sample back as it was sent, with its type.
    samples = loop.http.get(f"/v1/projects/{PROJECT}/samples", params={"page_size": 100}).json()
    first = next(s for s in samples["samples"] if s["media_type"] == "text/csv")
    data = loop.http.get(f"/v1/projects/{PROJECT}/samples/{first['id']}/data")
    assert data.headers["content-type"].startswith("text/csv")
    assert hashlib.sha256(data.content).hexdigest() == first["sha256"]


def test_tflite_files_classify_the_real_test_split_in_litert(loop: Loop, tmp_path: Path) -> None:
    assert loop.job.model_version == 1, loop.job.error
    manifest = loop.client.manifest(PROJECT)
    assert manifest["task"] == "sensor-classification"
    (tensor,) = manifest["inputs"]
    assert tensor["channels"] == list(CHANNELS) and tensor["shape"] == [1, SPEC.window, 6]
    assert tensor["layout"] == "NTC" and tensor["rate_hz"] == RATE_HZ
    assert len(manifest["task_spec"]["normalization"]["mean"]) == 6
    labels = manifest["labels"]
    accuracy = {}
    for fmt in ("float32", "int8"):
        path = tmp_path / f"model-{fmt}.tflite"
        loop.client.download_model(PROJECT, path, fmt)
        runner = LiteRTClassifier(path.read_bytes())
        hits = 0
        for rec in loop.test:
            probs = runner.predict(decode(rec.csv(), SPEC)).mean(axis=0)
            hits += int(labels[int(np.argmax(probs))] == rec.label)
        accuracy[fmt] = hits / len(loop.test)
    print(f"\nBasicMotions test split (40 recordings), LiteRT: {accuracy}")
    assert accuracy["float32"] >= 0.9, accuracy
    assert accuracy["int8"] >= accuracy["float32"] - 0.05, accuracy
