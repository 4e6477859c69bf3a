"""Ingest benchmark: mobiletrain transports against the classic Flask base64 approach.

Every variant uploads the same realistic 224x224 JPEGs to a server in its own process on
loopback (the client is this process); the limit runs the same validation and storage writes in
one process with no network. Figures are images/s and ratios to the Flask baseline.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import requests

from bench.common import ServerProcess, free_port, mobiletrain_cmd, synth_photos

LABELS = ["a", "b", "c", "d"]


def _label(i: int) -> str:
    return LABELS[i % len(LABELS)]


def _measure(
    server: ServerProcess | None, images: list[bytes], run: Callable[[], None]
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
    run()
    seconds = time.perf_counter() - t0
    stop.set()
    thread.join()
    n = len(images)
    mb = sum(len(b) for b in images) / 1e6
    out: dict[str, Any] = {
        "images": n,
        "seconds": round(seconds, 3),
        "images_per_s": round(n / seconds, 1),
        "mb_per_s": round(mb / seconds, 2),
    }
    if server is not None:
        out["server_cpu_ms_per_image"] = round((server.cpu_seconds() - cpu0) * 1000 / n, 3)
        out["server_peak_rss_mib"] = round(server.peak_rss / 2**20, 1)
    return out


def bench_flask(images: list[bytes], tmp: Path) -> dict[str, Any]:
    """One base64 JSON POST per image from a requests client."""
    import sys

    port = free_port()
    here = Path(__file__).parent
    server = ServerProcess(
        [sys.executable, str(here / "flask_baseline.py"), str(port), str(tmp / "flask")], port
    )
    try:
        session = requests.Session()

        def run() -> None:
            for i, img in enumerate(images):
                r = session.post(
                    f"http://127.0.0.1:{port}/upload",
                    json={"image": base64.b64encode(img).decode(), "label": _label(i)},
                )
                r.raise_for_status()

        return _measure(server, images, run)
    finally:
        server.stop()


def _mobiletrain_server(tmp: Path, name: str) -> tuple[ServerProcess, int, int]:
    grpc_port, http_port = free_port(), free_port()
    server = ServerProcess(mobiletrain_cmd(tmp / name, grpc_port, http_port), http_port)
    from bench.common import wait_port

    wait_port(grpc_port)
    return server, grpc_port, http_port


def _create_project(http_port: int) -> None:
    r = httpx.post(
        f"http://127.0.0.1:{http_port}/v1/projects",
        json={"name": "bench", "input_spec": {"width": 224, "height": 224}},
    )
    r.raise_for_status()


def bench_grpc(images: list[bytes], tmp: Path) -> dict[str, Any]:
    """One client-streaming UploadSamples call with batched inline samples."""
    from mobiletrain.client.sdk import Client, LocalSample

    server, grpc_port, http_port = _mobiletrain_server(tmp, "grpc")
    try:
        _create_project(http_port)
        with Client(f"127.0.0.1:{grpc_port}") as client:
            samples = [LocalSample(f"s{i}", _label(i), img) for i, img in enumerate(images)]

            def run() -> None:
                report = client.upload("bench", samples)
                assert report.accepted == len(images), report

            return _measure(server, images, run)
    finally:
        server.stop()


def bench_rest_multipart(images: list[bytes], tmp: Path, batch: int = 64) -> dict[str, Any]:
    """REST multipart requests of ``batch`` files each."""
    server, _grpc_port, http_port = _mobiletrain_server(tmp, "multipart")
    try:
        _create_project(http_port)
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=300) as http:

            def run() -> None:
                for start in range(0, len(images), batch):
                    chunk = images[start : start + batch]
                    files = [
                        ("files", (f"{start + j}.jpg", b, "image/jpeg"))
                        for j, b in enumerate(chunk)
                    ]
                    data = {
                        "labels": [_label(start + j) for j in range(len(chunk))],
                        "client_ids": [f"s{start + j}" for j in range(len(chunk))],
                    }
                    r = http.post("/v1/projects/bench/samples", files=files, data=data)
                    r.raise_for_status()
                    assert r.json()["accepted"] == len(chunk)

            return _measure(server, images, run)
    finally:
        server.stop()


def bench_rest_base64(images: list[bytes], tmp: Path) -> dict[str, Any]:
    """REST JSON base64, one image per request (the simplest clients)."""
    server, _grpc_port, http_port = _mobiletrain_server(tmp, "base64")
    try:
        _create_project(http_port)
        with httpx.Client(base_url=f"http://127.0.0.1:{http_port}", timeout=300) as http:

            def run() -> None:
                for i, img in enumerate(images):
                    r = http.post(
                        "/v1/projects/bench/samples:base64",
                        json={"image": base64.b64encode(img).decode(), "label": _label(i)},
                    )
                    r.raise_for_status()

            return _measure(server, images, run)
    finally:
        server.stop()


def bench_limit(images: list[bytes], tmp: Path) -> dict[str, Any]:
    """The same validation and storage writes in this process, no network."""
    from mobiletrain.core.services import DatasetService, IncomingSample, ProjectService
    from mobiletrain.core.types import InputSpec
    from mobiletrain.core.validation import Limits
    from mobiletrain.store.blobs import LocalPackBlobStore
    from mobiletrain.store.sql import SqlMetadataStore

    store = SqlMetadataStore(f"sqlite:///{tmp}/limit.db")
    blobs = LocalPackBlobStore(tmp / "limit-blobs")
    projects = ProjectService(store, Limits())
    datasets = DatasetService(store, blobs, projects, Limits())
    projects.create("bench", input_spec=InputSpec(224, 224))

    def run() -> None:
        summary = datasets.upload(
            "bench", (IncomingSample(f"s{i}", _label(i), img) for i, img in enumerate(images))
        )
        assert summary.count(summary.results[0].status) == len(images)

    try:
        return _measure(None, images, run)
    finally:
        blobs.close()
        store.close()


def bench_file_per_image(images: list[bytes], tmp: Path) -> dict[str, Any]:
    """Calibration: one process verifying and writing one file per image (no network)."""
    import io

    from PIL import Image

    root = tmp / "files"

    def run() -> None:
        for i, img in enumerate(images):
            Image.open(io.BytesIO(img)).load()
            folder = root / _label(i)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{hashlib.sha256(img).hexdigest()}.jpg").write_bytes(img)

    return _measure(None, images, run)


def run_ingest(n: int = 2000) -> dict[str, Any]:
    """All ingest variants on the same images; ratios against the Flask baseline."""
    images = synth_photos(n)
    results: dict[str, Any] = {
        "images": n,
        "mean_image_kb": round(sum(map(len, images)) / n / 1024, 1),
    }
    with tempfile.TemporaryDirectory(prefix="mt-bench-") as tmp_str:
        tmp = Path(tmp_str)
        variants = {
            "flask_base64_per_image (baseline)": bench_flask,
            "mobiletrain_grpc_stream": bench_grpc,
            "mobiletrain_rest_multipart_64": bench_rest_multipart,
            "mobiletrain_rest_base64_per_image": bench_rest_base64,
            "limit_same_store_no_network": bench_limit,
            "calibration_file_per_image_no_network": bench_file_per_image,
        }
        for name, fn in variants.items():
            results[name] = fn(images, tmp)
    base = results["flask_base64_per_image (baseline)"]["images_per_s"]
    for name in variants:
        results[name]["ratio_vs_flask"] = round(results[name]["images_per_s"] / base, 2)
    return results


if __name__ == "__main__":
    import json

    print(json.dumps(run_ingest(), indent=2))
