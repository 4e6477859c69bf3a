"""Server-side Predict for a sensor project (issue 20), through a real server: a tiny model
trained on synthetic recordings answers the same ranking over gRPC, REST multipart, REST
base64 and ``mobiletrain predict FILE``, equal to LiteRT run here on the downloaded file; a
corrupt or incomplete recording gets the sensor kind's stable error code on both wires."""

from __future__ import annotations

import base64
import contextlib
import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from mobiletrain import cli
from mobiletrain.client.errors import ClientError
from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.compute.litert import predict_samples
from mobiletrain.config import Settings
from mobiletrain.core.types import InputSpec, TaskType
from mobiletrain.server import RunningServer, start_server
from mobiletrain.tasks.sensor_synth import DEMO_SPEC, LABELS, samples

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

PROJECT = "motion"


@dataclass
class Served:
    server: RunningServer
    client: Client
    http: httpx.Client
    admin: str
    unseen: list[bytes]
    version: int


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data = tmp_path_factory.mktemp("predict-tasks")
    with contextlib.redirect_stdout(io.StringIO()):
        server = start_server(Settings(data_dir=data, grpc_port=0, http_port=0))
    admin = (data / "admin-token").read_text().strip()
    client = Client(f"127.0.0.1:{server.grpc_port}", token=admin)
    http = httpx.Client(
        base_url=f"http://127.0.0.1:{server.http_port}",
        timeout=60,
        headers={"Authorization": f"Bearer {admin}"},
    )
    try:
        resp = http.post(
            "/v1/projects",
            json={
                "name": PROJECT,
                "task": "sensor-classification",
                "input_spec": {"sensor": DEMO_SPEC.to_dict()},
            },
        )
        assert resp.status_code in (200, 201), resp.text
        train = samples([0, 1], per_label=3, seed=0)
        report = client.upload(PROJECT, [LocalSample(s.name, s.label, s.data) for s in train])
        assert report.accepted == len(train), report
        job = client.start_job(
            PROJECT, epochs=4, batch_size=16, learning_rate=3e-3, seed=0, formats=["float32"]
        )
        list(client.watch_job(job.id))
        done = client.get_job(job.id)
        assert done.model_version == 1, done.error
        # A wearer the model never saw; per label a CSV, a timestamped CSV and a JSON recording.
        unseen = [s.data for s in samples([5], per_label=3, seed=0)]
        yield Served(server, client, http, admin, unseen, done.model_version)
    finally:
        http.close()
        client.close()
        server.stop()


def test_both_wires_and_the_cli_rank_like_litert_on_the_downloaded_file(
    served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.tflite"
    served.client.download_model(PROJECT, path, "float32")
    spec = InputSpec(task_spec=DEMO_SPEC)
    assert spec.task is TaskType.SENSOR_CLASSIFICATION
    expected = predict_samples(path.read_bytes(), spec, served.unseen)
    labels = served.client.manifest(PROJECT)["labels"]
    assert sorted(labels) == sorted(LABELS)
    for sample, probs in zip(served.unseen, expected, strict=True):
        best = labels[int(np.argmax(probs))]
        grpc = served.client.predict(PROJECT, sample, top_k=len(labels))
        assert grpc.version == served.version
        assert grpc.predictions[0].label == best
        # Windows are averaged into one distribution over every label.
        assert math.isclose(sum(p.score for p in grpc.predictions), 1.0, abs_tol=1e-3)
        ref = {labels[i]: float(p) for i, p in enumerate(probs)}
        for p in grpc.predictions:
            assert math.isclose(p.score, ref[p.label], abs_tol=1e-5), (p, ref)
        media = "application/json" if sample.lstrip().startswith(b"{") else "text/csv"
        rest = served.http.post(
            f"/v1/projects/{PROJECT}/predict",
            files={"file": ("rec", sample, media)},
            data={"top_k": "2"},
        )
        assert rest.status_code == 200, rest.text
        got = rest.json()["predictions"]
        assert [p["label"] for p in got] == [p.label for p in grpc.predictions[:2]]
        b64 = served.http.post(
            f"/v1/projects/{PROJECT}/predict:base64",
            json={"image": base64.b64encode(sample).decode(), "top_k": 1},
        )
        assert b64.status_code == 200 and b64.json()["predictions"][0]["label"] == best, b64.text
    # The CLI sends the recording file as it is and refuses another kind's file.
    monkeypatch.setattr(cli.console, "width", 200)
    base = ["--server", f"127.0.0.1:{served.server.grpc_port}", "--token", served.admin]
    for name, sample in (("rec.csv", served.unseen[0]), ("rec.json", served.unseen[2])):
        (tmp_path / name).write_bytes(sample)
        result = CliRunner().invoke(
            cli.app, [*base, "predict", str(tmp_path / name), "-p", PROJECT]
        )
        assert result.exit_code == 0, result.output
        top = labels[int(np.argmax(predict_samples(path.read_bytes(), spec, [sample])[0]))]
        assert result.output.split()[0] == top, result.output
    (tmp_path / "photo.png").write_bytes(b"\x89PNG")
    result = CliRunner().invoke(
        cli.app, [*base, "predict", str(tmp_path / "photo.png"), "-p", PROJECT]
    )
    assert result.exit_code == 2 and ".csv or .json" in result.output, result.output


def test_bad_recordings_get_the_sensor_codes_on_both_wires(served: Served) -> None:
    good = served.unseen[0]
    lines = good.split(b"\n")
    lines[5] = b",".join([*lines[5].split(b",")[:-1], b"NaN"])
    cases = {
        115: b"\x00\x01 not a recording \xff",  # CORRUPT_SENSOR_DATA
        116: b"ax,ay\n1,2\n3,4\n",  # SENSOR_CHANNELS_MISMATCH (the project has ax,ay,az)
        117: b"\n".join(lines),  # SENSOR_MISSING_VALUE
    }
    for code, data in cases.items():
        with pytest.raises(ClientError) as err:
            served.client.predict(PROJECT, data)
        assert err.value.code == code, err.value
        rest = served.http.post(
            f"/v1/projects/{PROJECT}/predict", files={"file": ("rec.csv", data, "text/csv")}
        )
        assert rest.status_code in (400, 415, 422) and rest.json()["code"] == code, rest.text
