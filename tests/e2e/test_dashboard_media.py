"""The dashboard's dataset page for audio and sensor projects, in a real browser (issue 20).

Starts the server in-process, creates an audio project and a sensor project through its REST
API, uploads generated WAVs (numpy sines written with the stdlib ``wave`` module, 16-bit mono
and 16-bit stereo) and a three-channel CSV, then runs ``web/tests/dashboard-media.spec.mjs`` in
Debian's Chromium: per-label counts, a playable ``<audio>`` element and a waveform thumbnail per
WAV, one polyline per channel in the sensor plot, the project header describing the input
(rate and clip length, channels and window) instead of pixels, a sensor project created from
the dashboard's form with a CSV uploaded through the file input, and every page at 390 px
without sideways scroll. No training: well under 40 s.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from mobiletrain.api.rest.web import DIST_DIR
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SPEC = WEB / "tests" / "dashboard-media.spec.mjs"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard-media"
CHROMIUM = os.environ.get("MOBILETRAIN_CHROMIUM", "/usr/bin/chromium")


def _require_browser_tools() -> None:
    """Skip locally (fail in CI) without node, playwright-core, the built dashboard or Chromium."""
    missing = ""
    if shutil.which("node") is None:
        missing = "node is not installed"
    elif not (WEB / "node_modules" / "playwright-core").is_dir():
        missing = "web/node_modules is missing (run `make web`)"
    elif not (DIST_DIR / "index.html").is_file():
        missing = "the dashboard is not built (run `make web`)"
    elif not Path(CHROMIUM).exists():
        missing = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests cannot run in CI: {missing}")
        pytest.skip(missing)


def _wav(freq_hz: float, *, rate: int = 16_000, seconds: float = 1.0, channels: int = 1) -> bytes:
    """A sine as 16-bit PCM WAV (stereo: the same tone at half gain on the second channel)."""
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.6 * np.sin(2 * np.pi * freq_hz * t) * np.linspace(0.2, 1.0, t.size)  # rising envelope
    frames = np.stack([tone * (1.0 if c == 0 else 0.5) for c in range(channels)], axis=1)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((frames * 32767).astype("<i2").tobytes())
    return buf.getvalue()


def _csv(kind: str, channels: list[str], steps: int = 120, rate_hz: float = 50.0) -> bytes:
    """A recording with a timestamp column: `idle` is near-still, `shake` a fast oscillation."""
    rng = np.random.default_rng(len(kind))
    t = np.arange(steps) / rate_hz
    rows = ["timestamp," + ",".join(channels)]
    for ts in t:
        vals = [
            (0.05 if kind == "idle" else 2.0) * np.sin(2 * np.pi * (1 + c) * 3 * ts + c)
            + rng.normal(0, 0.02)
            for c in range(len(channels))
        ]
        rows.append(f"{ts:.4f}," + ",".join(f"{v:.5f}" for v in vals))
    return ("\n".join(rows) + "\n").encode()


def test_sample_preview_unit_tests() -> None:
    """``web/tests/preview.test.mjs``: WAV decoding, waveform columns, sensor CSV/JSON, lines."""
    _require_browser_tools()
    result = subprocess.run(
        ["node", "--test", "tests/preview.test.mjs"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    _require_browser_tools()
    data_dir = tmp_path_factory.mktemp("dashboard-media-server")
    running = start_server(Settings(data_dir=data_dir, grpc_port=0, http_port=0))
    try:
        yield running
    finally:
        running.stop()


def _upload(client: httpx.Client, project: str, files: list[tuple[str, str, bytes, str]]) -> None:
    """POST samples as the dashboard does (a label and client id per file); all accepted."""
    resp = client.post(
        f"/v1/projects/{project}/samples",
        files=[("files", (name, data, media)) for name, _, data, media in files],
        data={
            "labels": [label for _, label, _, _ in files],
            "client_ids": [f"{label}/{name}" for name, label, _, _ in files],
        },
    )
    assert resp.status_code == 200, resp.text
    summary = resp.json()
    assert summary["accepted"] == len(files), summary


def test_dashboard_audio_and_sensor_samples(server: RunningServer, tmp_path: Path) -> None:
    token_file = server.container.settings.data_dir / "admin-token"
    token = token_file.read_text().strip() if token_file.is_file() else "no-auth-configured"
    base = f"http://127.0.0.1:{server.http_port}"
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as client:
        audio = client.post(
            "/v1/projects",
            json={
                "name": "sounds-ui",
                "task": "audio-classification",
                "input_spec": {"audio": {"sample_rate_hz": 16000, "clip_ms": 1000}},
            },
        )
        assert audio.status_code in (200, 201), audio.text
        _upload(
            client,
            "sounds-ui",
            [
                ("low.wav", "low", _wav(220), "audio/wav"),
                ("high.wav", "high", _wav(1760), "audio/wav"),
                ("high-stereo.wav", "high", _wav(1500, channels=2), "audio/wav"),
            ],
        )
        sensor = client.post(
            "/v1/projects",
            json={
                "name": "motion-ui",
                "task": "sensor-classification",
                "input_spec": {
                    "sensor": {"channels": ["ax", "ay", "az"], "rate_hz": 50.0, "window": 100}
                },
            },
        )
        assert sensor.status_code in (200, 201), sensor.text
        _upload(
            client,
            "motion-ui",
            [
                ("idle.csv", "idle", _csv("idle", ["ax", "ay", "az"]), "text/csv"),
                ("shake.csv", "shake", _csv("shake", ["ax", "ay", "az"]), "text/csv"),
            ],
        )
    form_csv = tmp_path / "wave.csv"
    form_csv.write_bytes(_csv("shake", ["gx", "gy"]))

    env = {
        **os.environ,
        "MOBILETRAIN_URL": base,
        "MOBILETRAIN_TOKEN": token,
        "FORM_CSV": str(form_csv),
        "ARTIFACTS_DIR": str(ARTIFACTS),
        "CHROMIUM": CHROMIUM,
    }
    try:
        result = subprocess.run(
            ["node", str(SPEC)], cwd=WEB, env=env, capture_output=True, text=True, timeout=120
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the browser test timed out:\n{exc.stdout!r}\n{exc.stderr!r}")
    output = f"{result.stdout}\n{result.stderr}"
    print(output)
    assert result.returncode == 0, output
