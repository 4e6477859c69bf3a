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
from dataclasses import asdict, dataclass
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
    """argv of a mobiletrain server (``mobiletrain serve``; the package has no ``__main__``)."""
    return [
        sys.executable,
        "-c",
        "from mobiletrain.cli import app; app()",
        "serve",
        "--data-dir",
        str(data_dir),
        "--grpc-port",
        str(grpc_port),
        "--http-port",
        str(http_port),
    ]


def admin_token(data_dir: Path) -> str | None:
    """The admin token a server wrote on its first start, or None (authentication off/absent)."""
    path = data_dir / "admin-token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


class MobiletrainServer(ServerProcess):
    """``mobiletrain serve`` in a subprocess on free loopback ports, with its admin token.

    Authentication stays at the server's default; when the server wrote an admin token, every
    client made here sends it, as a real app sends its token. The per-token rate limit is off.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.grpc_port, self.http_port = free_port(), free_port()
        # The per-token request rate limit (a policy for phones, 100/s by default) is off, so
        # one benchmark client measures what the server can do, not the policy.
        env = {"TF_CPP_MIN_LOG_LEVEL": "2", "MOBILETRAIN_RATE_LIMIT_PER_SECOND": "0"}
        super().__init__(
            mobiletrain_cmd(data_dir, self.grpc_port, self.http_port), self.http_port, env
        )
        wait_port(self.grpc_port)
        self.token = admin_token(data_dir)

    @property
    def grpc_target(self) -> str:
        """host:port of the gRPC server."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def base_url(self) -> str:
        """Root URL of the HTTP server."""
        return f"http://127.0.0.1:{self.http_port}"

    def headers(self) -> dict[str, str]:
        """HTTP headers carrying the token (none when the server has no token)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self) -> Any:
        """A gRPC SDK client for this server."""
        from mobiletrain.client.sdk import Client

        if self.token:
            return Client(self.grpc_target, token=self.token)
        return Client(self.grpc_target)

    def http(self, timeout: float = 300.0) -> Any:
        """An ``httpx.Client`` for this server's REST API, token included."""
        import httpx

        return httpx.Client(base_url=self.base_url, headers=self.headers(), timeout=timeout)


@dataclass
class Row:
    """One line of the results table: a figure against its baseline, and a goal if any."""

    benchmark: str
    variant: str
    figure: str
    baseline: str = ""
    ratio: float | None = None
    goal: str = ""
    met: bool | None = None
    # How to read the ratio, e.g. "x Flask images/s" or "x plain Keras wall time".
    ratio_unit: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return asdict(self)

    def cells(self) -> list[str]:
        """The row as table cells."""
        ratio = "" if self.ratio is None else f"{format_ratio(self.ratio)}×"
        if ratio and self.ratio_unit:
            ratio += f" {self.ratio_unit}"
        met = {None: "", True: "yes", False: "**no (missed)**"}[self.met]
        return [self.benchmark, self.variant, self.figure, self.baseline, ratio, self.goal, met]


TABLE_HEADER = ["benchmark", "variant", "figure", "baseline", "ratio", "goal", "met?"]


def ratio(value: float, base: float) -> float | None:
    """value / base to 4 significant digits, or None when the base is zero."""
    return float(f"{value / base:.4g}") if base else None


def format_ratio(value: float) -> str:
    """A ratio for the table: 2 decimals, or 2 significant digits below 0.1."""
    if value >= 100:
        return f"{value:.0f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.2g}"


def git_commit() -> str:
    """The checked-out commit, with ``-dirty`` when the work tree has changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + ("-dirty" if dirty else "")


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages (other work on the machine makes figures noisy)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


class Deadline:
    """A time budget for a bounded loop."""

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def expired(self) -> bool:
        """True once the budget is spent."""
        return time.monotonic() >= self.end

    def left(self) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.end - time.monotonic())


def settle(server: ServerProcess, timeout: float = 90.0) -> None:
    """Wait until the server's child processes are idle.

    Its warm training worker imports TensorFlow at start and again after each job (the next
    job's worker): ~10 s of CPU that a server in use paid long before, and that would otherwise
    take one of the two cores from what is being measured. Quiet = under 20 ms of child CPU in
    each of 3 half-seconds (or no child at all after 5 s: a server without training workers).
    """
    t0 = time.monotonic()
    quiet = 0
    while time.monotonic() - t0 < timeout and quiet < 3:
        children, before = children_cpu(server.ps)
        time.sleep(0.5)
        _, after = children_cpu(server.ps)
        busy = after - before >= 0.02 or (not children and time.monotonic() - t0 < 5)
        quiet = 0 if busy else quiet + 1


def children_cpu(ps: Any) -> tuple[int, float]:
    """(number of child processes, their CPU seconds so far)."""
    children, total = 0, 0.0
    for child in ps.children(recursive=True):
        try:
            t = child.cpu_times()
        except psutil.Error:
            continue
        children += 1
        total += t.user + t.system
    return children, total
