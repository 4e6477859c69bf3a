"""Shared helpers for benchmarks: realistic synthetic photos, servers in subprocesses, stats."""

from __future__ import annotations

import io
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image


def synth_photos(n: int, size: int = 224, quality: int = 97, seed: int = 0) -> list[bytes]:
    """n distinct JPEGs (about 30 KB at 224x224): crops of sklearn's photos, flipped, tinted."""
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        src = photos[int(rng.integers(len(photos)))]
        h, w = src.shape[:2]
        side = int(rng.integers(160, min(h, w)))
        y, x = int(rng.integers(0, h - side)), int(rng.integers(0, w - side))
        crop = src[y : y + side, x : x + side].astype(np.float32)
        crop *= rng.uniform(0.8, 1.2, size=3)  # colour tint keeps every image distinct
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        img = Image.fromarray(np.clip(crop, 0, 255).astype(np.uint8)).resize((size, size))
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=quality)
        out.append(buf.getvalue())
    return out


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 60) -> None:
    """Block until something listens on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


class ServerProcess:
    """A server in a subprocess, with CPU time and peak RSS sampling."""

    def __init__(self, argv: Sequence[str], port: int, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(port)
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far."""
        t = self.ps.cpu_times()
        return float(t.user + t.system)

    def sample_rss(self) -> None:
        """Record the current RSS into the peak."""
        self.peak_rss = max(self.peak_rss, self.ps.memory_info().rss)

    def stop(self) -> None:
        """Terminate the server."""
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def percentiles(values: Sequence[float]) -> dict[str, float]:
    """p50 and p99 of a list of numbers."""
    arr = np.asarray(values, dtype=np.float64)
    return {"p50": float(np.percentile(arr, 50)), "p99": float(np.percentile(arr, 99))}


def machine() -> dict[str, Any]:
    """A description of the machine the figures come from."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
    }


def mobiletrain_cmd(data_dir: Path, grpc_port: int, http_port: int) -> list[str]:
    """argv of a mobiletrain server."""
    return [
        sys.executable,
        "-m",
        "mobiletrain.client.cli",
        "serve",
        "--data-dir",
        str(data_dir),
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
    ]
