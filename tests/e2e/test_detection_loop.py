"""End to end, object detection: a COCO-annotated set through a real server to LiteRT mAP.

Synthesised scenes (coloured circles, squares and triangles composited onto scikit-learn's
sample photos, several per image, overlapping, 8-45 % of the image side; see
``mobiletrain.tasks.detection_synth``) are written as JPEG files with one COCO
``annotations.json``; three quarters go up the way ``mobiletrain upload --format coco`` sends
them (read_annotations + upload_annotated over gRPC), the rest through REST multipart with a
``boxes`` field per file, one of them with a box outside its image (refused, 121). A job
trains the detector in a worker process; the float32 and int8 files are downloaded and run
in LiteRT on held-out scenes (another seed), fed as an app feeds them, and scored with COCO
mAP@0.5. The figures are printed for the README next to ``bench/detection_keras.py``'s plain
Keras run of the same architecture.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from mobiletrain.client.annotations import read_annotations
from mobiletrain.client.detection import upload_annotated
from mobiletrain.client.sdk import Client
from mobiletrain.compute.detection_eval import LiteRTDetector, coco_metrics
from mobiletrain.compute.preprocess import decode_image, normalize
from mobiletrain.config import Settings
from mobiletrain.core.types import DetectionSpec, InputSpec
from mobiletrain.server import RunningServer, start_server
from mobiletrain.tasks import detection_synth as synth

pytestmark = pytest.mark.slow

PROJECT = "shapes"
SIDE = 128
SPEC = InputSpec(width=SIDE, height=SIDE, task_spec=DetectionSpec(max_detections=10))
TRAIN_SCENES = 160
HELD_OUT_SCENES = 40
EPOCHS = 20


@dataclass
class Loop:
    server: RunningServer
    client: Client
    http: httpx.Client
    held_out: list[synth.Scene]
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
    scenes = synth.scenes(TRAIN_SCENES, seed=1)
    state = Loop(server, client, http, synth.scenes(HELD_OUT_SCENES, seed=2, prefix="held"))
    try:
        resp = http.post(
            "/v1/projects",
            json={
                "name": PROJECT,
                "task": "object-detection",
                "input_spec": {"width": SIDE, "height": SIDE, "detection": {"max_detections": 10}},
            },
        )
        assert resp.status_code in (200, 201), resp.text
        state.created = resp.json()
        # Three quarters as `mobiletrain upload DIR --format coco` sends them (gRPC).
        split = TRAIN_SCENES * 3 // 4
        folder = tmp_path_factory.mktemp("coco")
        synth.write_coco(folder, scenes[:split])
        _fmt, dataset = read_annotations(folder / "annotations.json", "coco", None, None)
        state.uploads["coco"] = upload_annotated(client, PROJECT, dataset)
        # The rest through REST multipart, one JSON boxes array per file; one box is outside
        # its image.
        rest = scenes[split:]
        files = [("files", (f"{s.name}.jpg", s.jpeg, "image/jpeg")) for s in rest]
        boxes = [json.dumps([b.to_dict() for b in s.boxes]) for s in rest]
        bad = synth.scenes(1, seed=99, prefix="bad")[0]
        files.append(("files", ("bad.jpg", bad.jpeg, "image/jpeg")))
        boxes.append(json.dumps([{**synth.SceneBox("circle", 0.5, 0.5, 1.3, 0.9).to_dict()}]))
        resp = http.post(f"/v1/projects/{PROJECT}/samples", files=files, data={"boxes": boxes})
        assert resp.status_code == 200, resp.text
        state.uploads["rest"] = resp.json()
        job = client.start_job(
            PROJECT,
            epochs=EPOCHS,
            batch_size=16,
            learning_rate=4e-3,
            seed=0,
            formats=["float32", "int8"],  # the other formats are exported in the unit test
        )
        list(client.watch_job(job.id))
        state.job = client.get_job(job.id)
        yield state
    finally:
        http.close()
        client.close()
        server.stop()


def test_project_and_uploads(loop: Loop) -> None:
    assert loop.created["task"] == "object-detection"
    assert loop.created["input_spec"]["detection"]["max_detections"] == 10
    coco = loop.uploads["coco"]
    assert coco.accepted == TRAIN_SCENES * 3 // 4 and coco.rejected == 0
    rest = loop.uploads["rest"]
    assert rest["accepted"] == TRAIN_SCENES - TRAIN_SCENES * 3 // 4 and rest["rejected"] == 1
    assert [r["error_code"] for r in rest["results"] if r["status"] == "rejected"] == [121]
    assert sorted(loop.client.get_project(PROJECT).labels) == sorted(synth.LABELS)


def test_detectors_find_the_held_out_objects_in_litert(loop: Loop, tmp_path: Path) -> None:
    assert loop.job.model_version == 1, loop.job.error
    manifest = loop.client.manifest(PROJECT)
    assert manifest["task"] == "object-detection"
    assert manifest["output"]["kind"] == "detection"
    assert [t["role"] for t in manifest["outputs"]] == ["boxes", "classes", "scores", "count"]
    labels = manifest["labels"]
    assert sorted(labels) == sorted(synth.LABELS)
    metrics = loop.http.get(f"/v1/projects/{PROJECT}/models/1/metrics").json()
    assert metrics["task"] == "object-detection"
    assert set(metrics["detection"]["tflite"]) == {"float32", "int8"}
    assert metrics["detection_examples"] and "ground_truth" in metrics["detection_examples"][0]
    # Held-out scenes, fed as an app feeds them (decoded, resized, normalised per the spec).
    x = normalize(np.stack([decode_image(s.jpeg, SPEC) for s in loop.held_out]), SPEC)
    index = {name: i for i, name in enumerate(labels)}
    truth = [
        np.asarray(
            [(index[b.label], b.x_min, b.y_min, b.x_max, b.y_max) for b in s.boxes], np.float32
        ).reshape(-1, 5)
        for s in loop.held_out
    ]
    scores: dict[str, dict[str, Any]] = {}
    for fmt in ("float32", "int8"):
        path = tmp_path / f"model-{fmt}.tflite"
        loop.client.download_model(PROJECT, path, fmt)
        runner = LiteRTDetector(path.read_bytes())
        scores[fmt] = coco_metrics(truth, runner.detect(x), labels, SIDE, SIDE)
    figures = {f: (s["map50"], s["map50_95"]) for f, s in scores.items()}
    val = metrics["detection"]
    print(
        f"\nheld-out scenes ({HELD_OUT_SCENES} images, "
        f"{sum(len(t) for t in truth)} boxes), LiteRT mAP@0.5, mAP@[.5:.95]: {figures}; "
        f"validation split (Keras): {val['map50']}, {val['map50_95']}"
    )
    # A detector that learned something (chance is ~0); the figures go to the README.
    assert scores["float32"]["map50"] >= 0.25, figures
    assert scores["int8"]["map50"] >= 0.1, figures
