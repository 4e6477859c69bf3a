"""``mobiletrain demo``: the whole phone-to-model loop on scikit-learn's handwritten digits
(``--task audio|sensor``: :mod:`mobiletrain.cli.demo_tasks`).

Starts an embedded server (SQLite + local folder), uploads the digits as PNG files the way an app
would, trains with live progress, downloads every TFLite variant and measures its accuracy on a
held-out split in the LiteRT interpreter — the runtime tflite_flutter uses.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer
from PIL import Image
from rich.console import Console
from rich.table import Table

from mobiletrain.cli.common import choice, console
from mobiletrain.cli.jobs import watch_with_progress
from mobiletrain.client.sdk import Client


def demo(
    task: Annotated[
        str,
        typer.Option(
            help="image (digits), audio (spoken keywords), sensor (motion) or detection (shapes)"
        ),
    ] = "image",
    epochs: Annotated[
        int | None,
        typer.Option(help="Training epochs [default: 15 image, 30 audio, 20 sensor, 25 detection]"),
    ] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Keep the demo's data here (default: temporary)")
    ] = None,
) -> None:
    """Run the whole loop against an embedded server: scikit-learn's digits, keywords spoken
    by espeak-ng voices (--task audio), synthetic motion (--task sensor) or shapes on photos
    with boxes (--task detection)."""
    from mobiletrain.cli.demo_tasks import DEMOS, PASS_MARK, run_task_demo

    choice("--task", task, ["image", *DEMOS])
    if task == "image":
        result = run_demo(console, epochs=epochs or 15, data_dir=data_dir)
        passed = result["float32"] >= 0.9
    else:
        result = run_task_demo(console, task, epochs=epochs, data_dir=data_dir)
        passed = result["float32"] >= PASS_MARK[task]
    if not passed:
        raise typer.Exit(code=1)


def digits_split(
    holdout: float = 0.15, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Digits as uint8 8x8 images (0..255), split into upload and held-out parts, stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = np.clip(digits.images * (255.0 / 16.0), 0, 255).astype(np.uint8)
    x_up, x_hold, y_up, y_hold = train_test_split(
        images, digits.target, test_size=holdout, random_state=seed, stratify=digits.target
    )
    return x_up, y_up, x_hold, y_hold


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 grayscale array as PNG."""
    buf = io.BytesIO()
    Image.fromarray(image, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def write_digits_folder(root: Path, images: np.ndarray, labels: np.ndarray) -> None:
    """DIR/<label>/<n>.png, the layout ``mobiletrain upload`` reads."""
    for i, (img, label) in enumerate(zip(images, labels, strict=True)):
        folder = root / str(int(label))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:05d}.png").write_bytes(png_bytes(img))


def litert_accuracy(
    model_bytes: bytes, manifest: dict[str, Any], images: np.ndarray, labels: np.ndarray
) -> float:
    """Accuracy of a .tflite file in LiteRT, preprocessing each PNG as the app does."""
    from mobiletrain.compute.litert import LiteRTModel
    from mobiletrain.compute.preprocess import decode_batch
    from mobiletrain.core.types import InputSpec

    spec = InputSpec.from_dict(manifest["input"])
    pixels = decode_batch([png_bytes(img) for img in images], spec)
    probs = LiteRTModel(model_bytes, spec).predict_uint8(pixels)
    label_index = {lab: i for i, lab in enumerate(manifest["labels"])}
    expected = np.array([label_index[str(int(y))] for y in labels])
    return float(np.mean(np.argmax(probs, axis=1) == expected))


def run_demo(console: Console, epochs: int = 15, data_dir: Path | None = None) -> dict[str, float]:
    """Run the loop; returns the held-out LiteRT accuracy per format."""
    from mobiletrain.config import Settings
    from mobiletrain.server import start_server

    with tempfile.TemporaryDirectory(prefix="mobiletrain-demo-") as tmp:
        root = data_dir or Path(tmp)
        settings = Settings(data_dir=root / "server", grpc_port=0, http_port=0)
        running = start_server(settings)
        try:
            console.print(
                f"embedded server: gRPC 127.0.0.1:{running.grpc_port}, "
                f"HTTP http://127.0.0.1:{running.http_port}"
            )
            x_up, y_up, x_hold, y_hold = digits_split()
            folder = root / "digits"
            write_digits_folder(folder, x_up, y_up)
            console.print(
                f"digits: {len(x_up)} images to upload, {len(x_hold)} held out for the LiteRT check"
            )
            admin = (settings.data_dir / "admin-token").read_text().strip()
            with Client(f"127.0.0.1:{running.grpc_port}", token=admin) as client:
                client.create_project(
                    "digits",
                    labels=[str(i) for i in range(10)],
                    width=32,
                    height=32,
                    color_mode="grayscale",
                )
                report = client.upload_directory("digits", folder)
                console.print(f"uploaded: {report.accepted} accepted, {report.rejected} rejected")
                job = client.start_job("digits", epochs=epochs, batch_size=32, seed=1)
                final = watch_with_progress(client, job.id)
                if not final.model_version:
                    raise RuntimeError(f"training did not produce a model: {final.error}")
                manifest = client.manifest("digits")
                results: dict[str, float] = {}
                table = Table("format", "size", "held-out accuracy in LiteRT")
                models_dir = root / "models"
                models_dir.mkdir(exist_ok=True)
                for fmt in ("float32", "float16", "dynamic-int8", "int8"):
                    path = models_dir / f"digits-{fmt}.tflite"
                    client.download_model("digits", path, fmt)
                    acc = litert_accuracy(path.read_bytes(), manifest, x_hold, y_hold)
                    results[fmt] = acc
                    table.add_row(fmt, f"{path.stat().st_size / 1024:.0f} KiB", f"{acc:.4f}")
                console.print(table)
                console.print(
                    f"LiteRT accuracy of the downloaded float32 model: {results['float32']:.4f}"
                )
                return results
        finally:
            running.stop()
