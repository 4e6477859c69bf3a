"""Ingest benchmark: mobiletrain transports against the classic Flask base64 approach.

Every variant uploads the same labelled images to a server in its own process on loopback (the
client is this process): realistic 224x224 JPEG photos, and the digits as 32x32 PNG. The
baseline is a Flask app taking one base64 JSON POST per image from a ``requests`` client and
storing one file per image (``bench/flask_baseline.py``); the limit runs mobiletrain's own
validation and storage writes in one process with no network. Figures are images/s, MB/s,
server CPU time per accepted image and server peak RSS; ratios are against the Flask baseline.
Every variant verifies every image (a full decode on the Flask side, mobiletrain's own checks on
the other) and every variant is checked to have stored all of them.
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from bench.common import (
    MobiletrainServer,
    Row,
    ServerProcess,
    free_port,
    ratio,
    settle,
    synth_photos,
)
from bench.datasets import ImageSet, digits_png

# Goals of issue 18 for gRPC streaming of ~30 KB 224x224 JPEGs, every image verified: at least
# 10x the images/s of the Flask approach (the core issue asked 8x), at most 0.25 ms of server
# CPU per image; and REST base64, one image per request, at least 2x Flask on its own protocol.
GRPC_GOAL = 10.0
GRPC_CPU_GOAL_MS = 0.25
BASE64_GOAL = 2.0
PHOTO_LABELS = ["a", "b", "c", "d"]
BASELINE = "flask_base64_per_image"


def photo_set(n: int) -> ImageSet:
    """``n`` realistic 224x224 JPEG photos with four labels in turn."""
    images = synth_photos(n)
    labels = [PHOTO_LABELS[i % len(PHOTO_LABELS)] for i in range(n)]
    return ImageSet("photos 224x224 JPEG", images, labels, PHOTO_LABELS, 224, 224, "rgb")


def _measure(
    server: ServerProcess | None, images: ImageSet, run: Callable[[], None]
) -> dict[str, Any]:
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(0.05):
            if server is not None:
                server.sample_rss()

    thread = threading.Thread(target=sampler, daemon=True)
    thread.start()
    cpu0 = server.cpu_seconds() if server else 0.0
    t0 = time.perf_counter()
    try:
        run()
    finally:
        seconds = time.perf_counter() - t0
        stop.set()
        thread.join()
    n = len(images)
    out: dict[str, Any] = {
        "images": n,
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1),
        "mb_per_s": round(images.megabytes / seconds, 2),
    }
    if server is not None:
        server.sample_rss()
        out["server_cpu_ms_per_image"] = round((server.cpu_seconds() - cpu0) * 1000 / n, 3)
        out["server_peak_rss_mib"] = round(server.peak_rss / 2**20, 1)
    return out


def bench_flask(images: ImageSet, tmp: Path) -> dict[str, Any]:
    """One base64 JSON POST per image from a requests client."""
    port = free_port()
    here = Path(__file__).parent
    server = ServerProcess(
        [sys.executable, str(here / "flask_baseline.py"), str(port), str(tmp / "flask")], port
    )
    try:
        session = requests.Session()
        url = f"http://127.0.0.1:{port}/upload"

        def run() -> None:
            for img, label in zip(images.images, images.labels, strict=True):
                r = session.post(
                    url, json={"image": base64.b64encode(img).decode(), "label": label}, timeout=60
                )
                r.raise_for_status()

        result = _measure(server, images, run)
        stored = sum(1 for p in (tmp / "flask").rglob("*") if p.is_file())
        assert stored == len(images), f"Flask stored {stored} of {len(images)} images"
        return result
    finally:
        server.stop()


def _start_mobiletrain(images: ImageSet, tmp: Path, name: str) -> MobiletrainServer:
    server = MobiletrainServer(tmp / name)
    with server.http() as http:
        r = http.post(
            "/v1/projects",
            json={
                "name": "bench",
                "labels": images.label_names,
                "input_spec": {
                    "width": images.width,
                    "height": images.height,
                    "color_mode": images.color_mode,
                },
            },
        )
        r.raise_for_status()
    settle(server)
    return server


def bench_grpc(images: ImageSet, tmp: Path) -> dict[str, Any]:
    """One client-streaming UploadSamples call with batched inline samples (the SDK's upload)."""
    from mobiletrain.client.sdk import LocalSample

    server = _start_mobiletrain(images, tmp, "grpc")
    try:
        with server.client() as client:
            samples = [
                LocalSample(f"s{i}", label, img)
                for i, (img, label) in enumerate(zip(images.images, images.labels, strict=True))
            ]

            def run() -> None:
                report = client.upload("bench", samples)
                assert report.accepted == len(samples), report

            return _measure(server, images, run)
    finally:
        server.stop()


def bench_rest_multipart(images: ImageSet, tmp: Path, batch: int = 64) -> dict[str, Any]:
    """REST multipart requests of ``batch`` files each."""
    server = _start_mobiletrain(images, tmp, "multipart")
    suffix = ".png" if images.images[0][:4] == b"\x89PNG" else ".jpg"
    media_type = "image/png" if suffix == ".png" else "image/jpeg"
    try:
        with server.http() as http:

            def run() -> None:
                for start in range(0, len(images), batch):
                    chunk = images.images[start : start + batch]
                    files = [
                        ("files", (f"{start + j}{suffix}", b, media_type))
                        for j, b in enumerate(chunk)
                    ]
                    data = {
                        "labels": images.labels[start : start + batch],
                        "client_ids": [f"s{start + j}" for j in range(len(chunk))],
                    }
                    r = http.post("/v1/projects/bench/samples", files=files, data=data)
                    r.raise_for_status()
                    assert r.json()["accepted"] == len(chunk), r.json()

            return _measure(server, images, run)
    finally:
        server.stop()


def bench_rest_base64(images: ImageSet, tmp: Path) -> dict[str, Any]:
    """REST JSON base64, one image per request (the simplest clients)."""
    server = _start_mobiletrain(images, tmp, "base64")
    try:
        with server.http() as http:

            def run() -> None:
                for img, label in zip(images.images, images.labels, strict=True):
                    r = http.post(
                        "/v1/projects/bench/samples:base64",
                        json={"image": base64.b64encode(img).decode(), "label": label},
                    )
                    r.raise_for_status()

            return _measure(server, images, run)
    finally:
        server.stop()


def bench_limit(images: ImageSet, tmp: Path) -> dict[str, Any]:
    """The same validation and storage writes in this process, no network."""
    from mobiletrain.core.services import DatasetService, IncomingSample, ProjectService
    from mobiletrain.core.types import ColorMode, InputSpec, SampleStatus
    from mobiletrain.core.validation import Limits
    from mobiletrain.store.blobs import LocalPackBlobStore
    from mobiletrain.store.sql import SqlMetadataStore

    store = SqlMetadataStore(f"sqlite:///{tmp}/limit.db")
    blobs = LocalPackBlobStore(tmp / "limit-blobs")
    projects = ProjectService(store, Limits())
    datasets = DatasetService(store, blobs, projects, Limits())
    spec = InputSpec(images.width, images.height, ColorMode(images.color_mode))
    projects.create("bench", labels=images.label_names, input_spec=spec)

    def run() -> None:
        summary = datasets.upload(
            "bench",
            (
                IncomingSample(f"s{i}", label, img)
                for i, (img, label) in enumerate(zip(images.images, images.labels, strict=True))
            ),
        )
        assert summary.count(SampleStatus.ACCEPTED) == len(images)

    try:
        return _measure(None, images, run)
    finally:
        blobs.close()
        store.close()


def bench_file_per_image(images: ImageSet, tmp: Path) -> dict[str, Any]:
    """Calibration: one process verifying and writing one file per image (no network)."""
    import io

    from PIL import Image

    root = tmp / "files"

    def run() -> None:
        for img, label in zip(images.images, images.labels, strict=True):
            Image.open(io.BytesIO(img)).load()
            folder = root / label
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{hashlib.sha256(img).hexdigest()}.img").write_bytes(img)

    return _measure(None, images, run)


VARIANTS: dict[str, Callable[[ImageSet, Path], dict[str, Any]]] = {
    BASELINE: bench_flask,
    "mobiletrain_grpc_stream": bench_grpc,
    "mobiletrain_rest_multipart_64": bench_rest_multipart,
    "mobiletrain_rest_base64_per_image": bench_rest_base64,
    "limit_same_store_no_network": bench_limit,
    "calibration_file_per_image_no_network": bench_file_per_image,
}


def run_set(images: ImageSet, rounds: int = 2) -> dict[str, Any]:
    """All variants on one image set, ``rounds`` times in turn; each variant's best round.

    Rounds go through every variant before the next begins, so a burst of other work on the
    machine does not hit all measurements of one variant. Ratios are against the Flask baseline.
    """
    results: dict[str, Any] = {
        "set": images.name,
        "images": len(images),
        "mean_image_kb": round(images.megabytes * 1e6 / len(images) / 1024, 1),
        "rounds": rounds,
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory(prefix="mt-bench-ingest-") as tmp_str:
        for round_ in range(rounds):
            for name, fn in VARIANTS.items():
                tmp = Path(tmp_str) / f"{name}-{round_}"
                tmp.mkdir()
                runs[name].append(fn(images, tmp))
                shutil.rmtree(tmp, ignore_errors=True)
    for name, measured in runs.items():
        best = max(measured, key=lambda r: float(r["images_per_s"]))
        results[name] = {**best, "rounds_images_per_s": [r["images_per_s"] for r in measured]}
    base = results[BASELINE]["images_per_s"]
    for name in VARIANTS:
        results[name]["ratio_vs_flask"] = ratio(results[name]["images_per_s"], base)
    limit = results["limit_same_store_no_network"]["images_per_s"]
    for name in VARIANTS:
        results[name]["fraction_of_limit"] = ratio(results[name]["images_per_s"], limit)
    return results


def run_ingest(
    n_photos: int = 2000, n_digits: int | None = None, rounds: int = 2
) -> dict[str, Any]:
    """Both image sets through every variant."""
    return {
        "photos": run_set(photo_set(n_photos), rounds),
        "digits": run_set(digits_png(limit=n_digits), rounds),
    }


def _figure(r: dict[str, Any]) -> str:
    parts = [f"{r['images_per_s']:,.0f} img/s", f"{r['mb_per_s']:.1f} MB/s"]
    if "server_cpu_ms_per_image" in r:
        parts.append(f"{r['server_cpu_ms_per_image']:.2f} ms server CPU/img")
        parts.append(f"peak RSS {r['server_peak_rss_mib']:.0f} MiB")
    return ", ".join(parts)


LABELS = {
    BASELINE: "Flask + requests, base64 JSON per image (baseline)",
    "mobiletrain_grpc_stream": "gRPC UploadSamples stream",
    "mobiletrain_rest_multipart_64": "REST multipart, 64 files/request",
    "mobiletrain_rest_base64_per_image": "REST base64 JSON per image",
    "limit_same_store_no_network": "limit: same validation + store, in-process",
    "calibration_file_per_image_no_network": "calibration: verify + file per image, in-process",
}


def rows(results: dict[str, Any]) -> list[Row]:
    """Table rows: every variant against the Flask baseline, the gRPC goal on photos."""
    out: list[Row] = []
    for key in ("photos", "digits"):
        res = results[key]
        base = res[BASELINE]
        best = f", best of {res['rounds']}" if res.get("rounds", 1) > 1 else ""
        bench = (
            f"1. ingest: {res['images']:,} {res['set']} ({res['mean_image_kb']:.0f} KB avg{best})"
        )
        for name in VARIANTS:
            r = res[name]
            goal, met = "", None
            ratio_ = r.get("ratio_vs_flask")
            if name == "mobiletrain_grpc_stream" and key == "photos":
                goal = f"≥ {GRPC_GOAL:.0f}× Flask img/s, ≤ {GRPC_CPU_GOAL_MS} ms server CPU/img"
                cpu = r.get("server_cpu_ms_per_image")
                met = bool(
                    ratio_ is not None
                    and ratio_ >= GRPC_GOAL
                    and cpu is not None
                    and cpu <= GRPC_CPU_GOAL_MS
                )
            elif name == "mobiletrain_rest_base64_per_image" and key == "photos":
                goal = f"≥ {BASE64_GOAL:.0f}× Flask img/s"
                met = bool(ratio_ is not None and ratio_ >= BASE64_GOAL)
            out.append(
                Row(
                    bench,
                    LABELS[name],
                    _figure(r),
                    "" if name == BASELINE else _figure(base),
                    None if name == BASELINE else r["ratio_vs_flask"],
                    goal,
                    met,
                    "" if name == BASELINE else "Flask img/s",
                )
            )
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(run_ingest(200, 200, rounds=1), indent=2))
