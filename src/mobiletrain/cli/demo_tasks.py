"""``mobiletrain demo --task audio|sensor|detection``: the whole loop for sound, motion and boxes.

Like the image demo: an embedded server, data the demo makes itself uploaded as an app would
(``DIR/<label>/*.wav`` or ``*.csv|*.json``), training with live progress, every TFLite file
downloaded and scored in LiteRT on held-out data the model never saw — keywords spoken by
held-out espeak-ng voices, motion recorded by held-out wearers, shapes in held-out scenes
(object detection, scored by COCO mAP@0.5).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from mobiletrain._proto.mobiletrain.v1 import common_pb2
from mobiletrain.cli.common import usage
from mobiletrain.cli.jobs import watch_with_progress
from mobiletrain.client.sdk import Client, audio_spec, sensor_spec

PASS_MARK = {"audio": 0.85, "sensor": 0.85, "detection": 0.3}
"""Held-out float32 score below which the demo exits with 1 (accuracy; chance: 0.2 audio, 0.25
sensor; detection: mAP@0.5, chance about 0)."""


@dataclass
class TaskDemo:
    """What one task's demo uploads, how it trains, and how it scores a downloaded model."""

    task: str
    folder: Path
    spec: common_pb2.AudioSpec | common_pb2.SensorSpec | common_pb2.DetectionSpec
    hyperparameters: dict[str, Any]
    score: Callable[[bytes, list[str]], float]
    """(model bytes, the manifest's labels) -> accuracy on the held-out data."""
    about: str
    labels: tuple[str, ...] = ()
    """The project's fixed label set (empty: open, labels come with the uploads)."""
    upload: Callable[[Client, str], Any] | None = None
    """How the data goes up (None: ``upload_directory`` of ``folder``)."""
    side: int = 96
    """Image projects: the input width and height."""
    measure: str = "accuracy"


def sensor_demo(root: Path, epochs: int | None) -> TaskDemo:
    """Synthetic idle/walk/run/shake from eight wearers; four others held out."""
    from mobiletrain.tasks.sensor_synth import DEMO_SPEC, samples, write_demo_dataset

    folder = root / "motion"
    write_demo_dataset(folder, wearer_ids=list(range(8)))
    held_out = samples(list(range(8, 12)), per_label=4, seed=0)

    def score(model: bytes, labels: list[str]) -> float:
        from mobiletrain.compute.litert import predict_samples
        from mobiletrain.core.types import InputSpec

        probs = predict_samples(model, InputSpec(task_spec=DEMO_SPEC), [s.data for s in held_out])
        expected = np.array([labels.index(s.label) for s in held_out])
        return float(np.mean(np.argmax(probs, axis=1) == expected))

    spec = sensor_spec(
        DEMO_SPEC.channels, DEMO_SPEC.rate_hz, DEMO_SPEC.window, DEMO_SPEC.stride,
        DEMO_SPEC.framing.value,
    )  # fmt: skip
    files = sum(1 for p in folder.rglob("*") if p.is_file())
    return TaskDemo(
        "sensor-classification",
        folder,
        spec,
        {"epochs": epochs or 20, "batch_size": 32, "learning_rate": 3e-3, "seed": 1},
        score,
        f"motion: {files} recordings of 8 wearers to upload, {len(held_out)} of 4 others held out",
    )


def audio_demo(root: Path, epochs: int | None) -> TaskDemo:
    """Keywords spoken by espeak-ng voices (with noise); other voices held out."""
    from mobiletrain.tasks.audio import BACKGROUND_LABEL
    from mobiletrain.tasks.audio_synth import espeak_available, litert_accuracy, make_speech_dataset

    if not espeak_available():
        raise usage(
            "demo --task audio speaks its keywords with espeak-ng, which is not installed "
            "(Debian/Ubuntu: sudo apt install espeak-ng; macOS: brew install espeak-ng)"
        )
    data = make_speech_dataset(root / "speech")
    return TaskDemo(
        "audio-classification",
        data.train_dir,
        audio_spec(16000, 1000),
        {"epochs": epochs or 30, "batch_size": 32, "learning_rate": 3e-3, "seed": 7},
        lambda model, labels: litert_accuracy(model, labels, data.held_out_dir),
        f"keywords {', '.join(data.words)}: {len(data.train_voices)} voices to upload, "
        f"{len(data.held_out_voices)} held out",
        labels=(*data.words, BACKGROUND_LABEL),
    )


def detection_demo(root: Path, epochs: int | None) -> TaskDemo:
    """Shapes composited onto scikit-learn's photos, uploaded as COCO; other scenes held out."""
    from mobiletrain.client.annotations import read_annotations
    from mobiletrain.client.detection import upload_annotated
    from mobiletrain.client.sdk import detection_spec
    from mobiletrain.tasks import detection_synth as synth

    side = 128
    folder = root / "shapes"
    synth.write_coco(folder, synth.scenes(200, seed=1))
    held_out = synth.scenes(40, seed=2, prefix="held")

    def upload(client: Client, project: str) -> Any:
        _fmt, dataset = read_annotations(folder / "annotations.json", "coco", None, None)
        return upload_annotated(client, project, dataset)

    def score(model: bytes, labels: list[str]) -> float:
        from mobiletrain.compute.detection_eval import LiteRTDetector, coco_metrics
        from mobiletrain.compute.preprocess import decode_image, normalize
        from mobiletrain.core.types import DetectionSpec, InputSpec

        spec = InputSpec(width=side, height=side, task_spec=DetectionSpec())
        x = normalize(np.stack([decode_image(s.jpeg, spec) for s in held_out]), spec)
        index = {name: i for i, name in enumerate(labels)}
        truth = [
            np.asarray(
                [(index[b.label], b.x_min, b.y_min, b.x_max, b.y_max) for b in s.boxes],
                np.float32,
            ).reshape(-1, 5)
            for s in held_out
        ]
        found = LiteRTDetector(model).detect(x)
        return float(coco_metrics(truth, found, labels, side, side)["map50"] or 0.0)

    return TaskDemo(
        "object-detection",
        folder,
        detection_spec(),
        {"epochs": epochs or 25, "batch_size": 16, "learning_rate": 4e-3, "seed": 0},
        score,
        f"shapes: 200 scenes with boxes (COCO) to upload, {len(held_out)} held out",
        upload=upload,
        side=side,
        measure="mAP@0.5",
    )


DEMOS = {"audio": audio_demo, "sensor": sensor_demo, "detection": detection_demo}


def run_task_demo(
    console: Console, task: str, epochs: int | None = None, data_dir: Path | None = None
) -> dict[str, float]:
    """Run the loop for ``task`` (audio, sensor or detection); returns the held-out accuracy
    (detection: mAP@0.5) per format."""
    from mobiletrain.config import Settings
    from mobiletrain.server import start_server

    with tempfile.TemporaryDirectory(prefix=f"mobiletrain-demo-{task}-") as tmp:
        root = data_dir or Path(tmp)
        demo = DEMOS[task](root, epochs)
        console.print(demo.about)
        settings = Settings(data_dir=root / "server", grpc_port=0, http_port=0)
        running = start_server(settings)
        try:
            console.print(
                f"embedded server: gRPC 127.0.0.1:{running.grpc_port}, "
                f"HTTP http://127.0.0.1:{running.http_port}"
            )
            admin = (settings.data_dir / "admin-token").read_text().strip()
            with Client(f"127.0.0.1:{running.grpc_port}", token=admin) as client:
                return _loop(console, client, task, demo, root)
        finally:
            running.stop()


def _loop(
    console: Console, client: Client, name: str, demo: TaskDemo, root: Path
) -> dict[str, float]:
    client.create_project(
        name, demo.labels, width=demo.side, height=demo.side, task=demo.task, task_spec=demo.spec
    )
    if demo.upload is not None:
        report = demo.upload(client, name)
    else:
        report = client.upload_directory(name, demo.folder)
    console.print(f"uploaded: {report.accepted} accepted, {report.rejected} rejected")
    job = client.start_job(name, **demo.hyperparameters)
    final = watch_with_progress(client, job.id)
    if not final.model_version:
        raise RuntimeError(f"training did not produce a model: {final.error}")
    manifest = client.manifest(name)
    labels = list(manifest["labels"])
    models_dir = root / "models"
    models_dir.mkdir(exist_ok=True)
    results: dict[str, float] = {}
    table = Table("format", "size", f"held-out {demo.measure} in LiteRT ({name})")
    for fmt in ("float32", "float16", "dynamic-int8", "int8"):
        if fmt not in (manifest.get("files") or {}):
            continue  # a format this task does not export
        path = models_dir / f"{name}-{fmt}.tflite"
        client.download_model(name, path, fmt)
        results[fmt] = demo.score(path.read_bytes(), labels)
        table.add_row(fmt, f"{path.stat().st_size / 1024:.0f} KiB", f"{results[fmt]:.4f}")
    console.print(table)
    console.print(
        f"LiteRT {demo.measure} of the downloaded float32 model: {results['float32']:.4f}"
    )
    return results
