"""End to end: a real server (gRPC + HTTP), real uploads, real training, real LiteRT.

Digits go up as PNG files, half through the gRPC stream and half through REST multipart; a job
trains in a worker process; every TFLite variant is downloaded and run in LiteRT on a held-out
split the server never saw.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mobiletrain.cli.demo import digits_split, litert_accuracy, png_bytes
from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.slow


@dataclass
class Loop:
    server: RunningServer
    client: Client
    http: httpx.Client
    x_up: np.ndarray
    y_up: np.ndarray
    x_hold: np.ndarray
    y_hold: np.ndarray
    job_id: str = ""
    grpc_events: list[Any] = field(default_factory=list)
    sse_events: list[dict[str, Any]] = field(default_factory=list)
    uploads: dict[str, Any] = field(default_factory=dict)


def _samples(x: np.ndarray, y: np.ndarray, offset: int) -> list[LocalSample]:
    return [
        LocalSample(f"digit-{offset + i}", str(int(label)), png_bytes(img))
        for i, (img, label) in enumerate(zip(x, y, strict=True))
    ]


def _sse(http: httpx.Client, job_id: str, last_event_id: int | None = None) -> list[dict[str, Any]]:
    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers, timeout=600) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("id:"):
                current["id"] = int(line[3:].strip())
            elif line.startswith("event:"):
                current["event"] = line[6:].strip()
            elif line.startswith("data:"):
                current["data"] = json.loads(line[5:].strip())
            elif line == "" and current:
                events.append(current)
                current = {}
    return events


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
    x_up, y_up, x_hold, y_hold = digits_split()
    state = Loop(server, client, http, x_up, y_up, x_hold, y_hold)
    try:
        client.create_project(
            "digits",
            labels=[str(i) for i in range(10)],
            width=32,
            height=32,
            color_mode="grayscale",
        )
        half = len(x_up) // 2
        grpc_samples = _samples(x_up[:half], y_up[:half], 0)
        # One corrupt file in the middle of the gRPC stream.
        grpc_samples.insert(10, LocalSample("corrupt", "3", b"\x89PNG\r\n\x1a\n" + b"\x00" * 50))
        state.uploads["grpc"] = client.upload("digits", grpc_samples)
        rest_x, rest_y = x_up[half:], y_up[half:]

        def rest_upload() -> dict[str, int]:
            # Multipart requests of 100 files (servers cap the parts of one request).
            totals = {"accepted": 0, "duplicate": 0, "rejected": 0}
            for start in range(0, len(rest_x), 100):
                files = [
                    ("files", (f"{start + i}.png", png_bytes(img), "image/png"))
                    for i, img in enumerate(rest_x[start : start + 100])
                ]
                data = {
                    "labels": [str(int(v)) for v in rest_y[start : start + 100]],
                    "client_ids": [f"digit-{half + start + i}" for i in range(len(files))],
                }
                resp = http.post("/v1/projects/digits/samples", files=files, data=data)
                assert resp.status_code == 200, resp.text
                for key in totals:
                    totals[key] += resp.json()[key]
            return totals

        state.uploads["rest"] = rest_upload()
        state.uploads["counts_before_repeat"] = client.class_counts("digits")
        # The same samples again, through both transports.
        state.uploads["grpc_again"] = client.upload("digits", _samples(x_up[:half], y_up[:half], 0))
        state.uploads["rest_again"] = rest_upload()
        state.uploads["counts_after_repeat"] = client.class_counts("digits")

        job = client.start_job("digits", epochs=15, batch_size=32, seed=1)
        state.job_id = job.id
        sse_thread = threading.Thread(
            target=lambda: state.sse_events.extend(_sse(http, job.id)), daemon=True
        )
        sse_thread.start()
        state.grpc_events = list(client.watch_job(job.id))
        sse_thread.join(timeout=120)
        yield state
    finally:
        http.close()
        client.close()
        server.stop()


def test_upload_results(loop: Loop) -> None:
    grpc_report = loop.uploads["grpc"]
    assert grpc_report.rejected == 1
    assert grpc_report.rejections[0][0] == "corrupt"
    assert grpc_report.rejections[0][1] == 26  # CORRUPT_IMAGE
    assert grpc_report.accepted == len(loop.x_up) // 2
    assert loop.uploads["rest"]["accepted"] == len(loop.x_up) - len(loop.x_up) // 2


def test_uploading_twice_leaves_counts_unchanged(loop: Loop) -> None:
    assert loop.uploads["grpc_again"].accepted == 0
    assert loop.uploads["grpc_again"].duplicates == len(loop.x_up) // 2
    assert loop.uploads["rest_again"]["accepted"] == 0
    assert loop.uploads["rest_again"]["duplicate"] == len(loop.x_up) - len(loop.x_up) // 2
    before = loop.uploads["counts_before_repeat"]
    assert before == loop.uploads["counts_after_repeat"]
    assert sum(before.values()) == len(loop.x_up)


def test_job_succeeded_with_live_progress(loop: Loop) -> None:
    job = loop.client.get_job(loop.job_id)
    assert job.model_version == 1, job.error
    kinds = [ev.WhichOneof("payload") for ev in loop.grpc_events]
    assert kinds.count("epoch_end") >= 5
    assert "progress" in kinds and "evaluation" in kinds
    assert kinds[-1] == "state_changed"
    seqs = [ev.seq for ev in loop.grpc_events]
    assert seqs == list(range(1, len(seqs) + 1))
    # SSE watchers saw the same events with the same ids.
    assert [e["id"] for e in loop.sse_events] == seqs


def test_watchers_resume_from_a_sequence_number(loop: Loop) -> None:
    middle = len(loop.grpc_events) // 2
    resumed = list(loop.client.watch_job(loop.job_id, after_seq=middle))
    assert [ev.seq for ev in resumed] == [ev.seq for ev in loop.grpc_events[middle:]]
    sse_resumed = _sse(loop.http, loop.job_id, last_event_id=middle)
    assert [e["id"] for e in sse_resumed] == [ev.seq for ev in loop.grpc_events[middle:]]


def test_each_tflite_variant_runs_in_litert_on_held_out_digits(loop: Loop, tmp_path: Path) -> None:
    manifest = loop.client.manifest("digits")
    accuracies = {}
    for fmt in ("float32", "float16", "dynamic-int8", "int8"):
        path = tmp_path / f"model-{fmt}.tflite"
        info = loop.client.download_model("digits", path, fmt)
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == info.sha256 == manifest["files"][fmt]["sha256"]
        accuracies[fmt] = litert_accuracy(data, manifest, loop.x_hold, loop.y_hold)
    assert accuracies["float32"] >= 0.97, accuracies
    assert accuracies["float16"] >= 0.97, accuracies
    assert accuracies["int8"] >= accuracies["float32"] - 0.01, accuracies
    assert accuracies["dynamic-int8"] >= accuracies["float32"] - 0.01, accuracies


def test_rest_download_with_range_and_etag(loop: Loop) -> None:
    url = "/v1/projects/digits/models/current/download"
    full = loop.http.get(url, params={"format": "int8"})
    assert full.status_code == 200
    etag = full.headers["etag"]
    assert int(full.headers["content-length"]) == len(full.content)
    assert (
        loop.http.get(url, params={"format": "int8"}, headers={"If-None-Match": etag}).status_code
        == 304
    )
    part = loop.http.get(url, params={"format": "int8"}, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == full.content[100:200]


def test_manifest_is_embedded_and_complete(loop: Loop, tmp_path: Path) -> None:
    from mobiletrain.compute.litert import read_embedded_manifest

    path = tmp_path / "m.tflite"
    loop.client.download_model("digits", path, "int8")
    embedded = read_embedded_manifest(path.read_bytes())
    assert embedded is not None
    assert embedded["labels"] == [str(i) for i in range(10)]
    manifest = loop.client.manifest("digits")
    assert manifest["input"]["width"] == 32 and manifest["input"]["color_mode"] == "grayscale"
    int8 = manifest["formats"]["int8"]
    assert int8["input"]["dtype"] in ("uint8", "int8")
    assert int8["input"]["quantization"]["scale"]
    # Every sample either trained (training + validation split) or is in the fixed evaluation set.
    held_out = manifest["evaluation"]["eval_set"]["num_samples"]
    assert held_out > 0 and manifest["dataset"]["num_samples"] + held_out == len(loop.x_up)
    assert embedded["version"] == manifest["version"] == 1
    assert embedded["release"]["promoted"] is True
    assert "tensorflow" in manifest["library_versions"]


def test_predict_over_both_transports(loop: Loop, tmp_path: Path) -> None:
    from mobiletrain.compute.litert import LiteRTModel
    from mobiletrain.compute.preprocess import decode_image
    from mobiletrain.core.types import InputSpec

    manifest = loop.client.manifest("digits")
    path = tmp_path / "f.tflite"
    loop.client.download_model("digits", path, "float32")
    local = LiteRTModel(path.read_bytes(), InputSpec.from_dict(manifest["input"]))
    for img in loop.x_hold[:5]:
        image = png_bytes(img)
        probs = local.predict_uint8(decode_image(image, local.spec)[None])[0]
        resp = loop.client.predict("digits", image, top_k=3)
        assert len(resp.predictions) == 3
        assert resp.predictions[0].label == manifest["labels"][int(np.argmax(probs))]
        assert resp.predictions[0].score == pytest.approx(float(np.max(probs)), abs=1e-5)
        rest = loop.http.post(
            "/v1/projects/digits/predict", files={"file": ("x.png", image, "image/png")}
        )
        assert rest.status_code == 200, rest.text
        assert rest.json()["predictions"][0]["label"] == resp.predictions[0].label


def test_cli_against_the_running_server(loop: Loop, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mobiletrain.cli import app
    from mobiletrain.cli.demo import write_digits_folder

    runner = CliRunner()
    admin = (loop.server.container.settings.data_dir / "admin-token").read_text().strip()
    server = ["--server", f"127.0.0.1:{loop.server.grpc_port}", "--token", admin]

    def cli(*args: str) -> str:
        result = runner.invoke(app, [*server, *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "digits" in cli("projects", "list")
    listing = cli("models", "list", "--project", "digits")
    assert "float32" in listing and "int8" in listing
    out = tmp_path / "pulled.tflite"
    cli("models", "pull", "--project", "digits", "--format", "int8", "-o", str(out))
    manifest = json.loads(out.with_name("pulled.tflite.json").read_text())
    assert hashlib.sha256(out.read_bytes()).hexdigest() == manifest["files"]["int8"]["sha256"]
    image = tmp_path / "digit.png"
    image.write_bytes(png_bytes(loop.x_hold[0]))
    assert "version 1" in cli("predict", "--project", "digits", str(image))

    # Uploading a folder twice: the second run sends nothing new.
    folder = tmp_path / "folder"
    write_digits_folder(folder, loop.x_hold[:30], loop.y_hold[:30])
    (folder / "3" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    cli(
        "projects",
        "create",
        "cli-digits",
        "--width",
        "16",
        "--height",
        "16",
        "--color-mode",
        "grayscale",
    )
    first = cli("upload", "--project", "cli-digits", str(folder))
    assert "accepted 30" in first and "rejected 1" in first and "broken.png" in first
    second = cli("upload", "--project", "cli-digits", str(folder))
    assert "accepted 0" in second and "already on the server 30" in second
    assert sum(loop.client.class_counts("cli-digits").values()) == 30

    bad = runner.invoke(app, [*server, "models", "list", "--project", "nope"])
    assert bad.exit_code == 1 and "error 10" in bad.output
