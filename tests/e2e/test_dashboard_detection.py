"""Object detection in the dashboard, in a real browser against a real server (issue 21).

Starts the server in-process, writes synthetic scenes (shapes on the scikit-learn photos, with
known boxes) as JPEG files, then runs ``web/tests/dashboard-detection.spec.mjs`` in Debian's
Chromium: a detection project made with the New project form, images uploaded through the file
input, a box drawn with mouse events, moved, resized, a second one deleted with the Delete key,
labels picked with number keys, n/p stepping, each change checked through the REST API; box
counts per label and the "no boxes" flags on the dataset page; then an annotated set uploaded
through the API, a short training started from the Train page (96x96 input, 3 epochs, float32
export only) and the evaluation page's mAP, per-class AP and example detections beside the
ground truth. Also runs the box-geometry unit tests (``web/tests/boxes.test.mjs``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from mobiletrain.api.rest.web import DIST_DIR
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server
from mobiletrain.tasks.detection_synth import scenes

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SPEC = WEB / "tests" / "dashboard-detection.spec.mjs"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard-detection"
CHROMIUM = os.environ.get("MOBILETRAIN_CHROMIUM", "/usr/bin/chromium")
FORM_IMAGES = 3
ANNOTATED = 45
EPOCHS = 3


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


def test_box_geometry_unit_tests() -> None:
    """``web/tests/boxes.test.mjs``: drag to box, move, resize, hit testing, the server's label."""
    _require_browser_tools()
    result = subprocess.run(
        ["node", "--test", "tests/boxes.test.mjs"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    _require_browser_tools()
    data_dir = tmp_path_factory.mktemp("dashboard-detection-server")
    running = start_server(Settings(data_dir=data_dir, grpc_port=0, http_port=0))
    try:
        yield running
    finally:
        running.stop()


def test_dashboard_labels_boxes_and_trains(server: RunningServer, tmp_path: Path) -> None:
    token_file = server.container.settings.data_dir / "admin-token"
    token = token_file.read_text().strip() if token_file.is_file() else "no-auth-configured"
    base = f"http://127.0.0.1:{server.http_port}"
    form_images = []
    for s in scenes(FORM_IMAGES, seed=5, prefix="form"):
        path = tmp_path / f"{s.name}.jpg"
        path.write_bytes(s.jpeg)
        form_images.append(str(path))
    annotated = []
    for s in scenes(ANNOTATED, seed=6, prefix="coco"):
        path = tmp_path / f"{s.name}.jpg"
        path.write_bytes(s.jpeg)
        annotated.append({"path": str(path), "boxes": [b.to_dict() for b in s.boxes]})
    annotated_file = tmp_path / "annotated.json"
    annotated_file.write_text(json.dumps(annotated))

    env = {
        **os.environ,
        "MOBILETRAIN_URL": base,
        "MOBILETRAIN_TOKEN": token,
        "FORM_IMAGES": json.dumps(form_images),
        "ANNOTATED": str(annotated_file),
        "EPOCHS": str(EPOCHS),
        "ARTIFACTS_DIR": str(ARTIFACTS),
        "CHROMIUM": CHROMIUM,
    }
    try:
        result = subprocess.run(
            ["node", str(SPEC)], cwd=WEB, env=env, capture_output=True, text=True, timeout=600
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the browser test timed out:\n{exc.stdout!r}\n{exc.stderr!r}")
    output = f"{result.stdout}\n{result.stderr}"
    print(output)
    assert result.returncode == 0, output
