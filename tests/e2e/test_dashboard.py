"""The web dashboard in a real browser against a real server (and its event-stream client in Node).

Starts the server in-process (gRPC + HTTP, serving the dashboard built by ``make web``), writes
300 digits as PNG files in one folder per label, and runs ``web/tests/dashboard.spec.mjs``: it
drives Debian's Chromium (headless, through playwright-core) to sign in, create a project, upload
the folder through the file input, relabel and delete samples, train while the curves update
from Server-Sent Events (surviving a network drop), read the confusion matrix, download a
model, create a device token with its QR code and classify images on the "Try it" page. Also
(issue 17): the first-run steps on an empty Projects page, sign-in shared by tabs and sign-out
in every tab, the pager's total, the file name as a sample's client id, the Evaluation tab,
relabelling a misclassified image from the evaluation, Cancel asking first, deleting the project,
and at 390 px every page without sideways scroll and with every button on screen.

Screenshots go to ``test-artifacts/dashboard/`` (the phone layout as ``phone-*.png``). With
``MOBILETRAIN_UPDATE_SCREENSHOT=1`` the live training view is also copied to
``docs/images/training.png`` (the README's picture).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from mobiletrain.api.rest.web import DIST_DIR
from mobiletrain.cli.demo import digits_split, png_bytes, write_digits_folder
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web"
SPEC = WEB / "tests" / "dashboard.spec.mjs"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
CHROMIUM = os.environ.get("MOBILETRAIN_CHROMIUM", "/usr/bin/chromium")
PER_LABEL = 30
EPOCHS = 10


def _missing() -> str:
    if shutil.which("node") is None:
        return "node is not installed"
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        return "web/node_modules is missing (run `make web`)"
    if not (DIST_DIR / "index.html").is_file():
        return "the dashboard is not built (run `make web`)"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium)"
    return ""


def _require_browser_tools() -> None:
    missing = _missing()
    if missing:
        if os.environ.get("CI"):
            pytest.fail(f"the browser tests cannot run in CI: {missing}")
        pytest.skip(missing)


def test_event_stream_client_unit_tests() -> None:
    """``web/tests/sse.test.mjs``: the SSE parser and the reconnecting watcher, in Node."""
    _require_browser_tools()
    result = subprocess.run(
        ["node", "--test", "tests/sse.test.mjs"],
        cwd=WEB,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    _require_browser_tools()
    data_dir = tmp_path_factory.mktemp("dashboard-server")
    running = start_server(Settings(data_dir=data_dir, grpc_port=0, http_port=0))
    try:
        yield running
    finally:
        running.stop()


def _pick(x: np.ndarray, y: np.ndarray, per_label: int) -> tuple[np.ndarray, np.ndarray]:
    keep = np.concatenate([np.flatnonzero(y == d)[:per_label] for d in range(10)])
    return x[keep], y[keep]


def test_dashboard_in_chromium(server: RunningServer, tmp_path: Path) -> None:
    x_up, y_up, x_hold, y_hold = digits_split()
    x, y = _pick(x_up, y_up, PER_LABEL)
    digits = tmp_path / "digits"
    write_digits_folder(digits, x, y)
    loose = []
    for name, digit in (("one.png", 1), ("seven.png", 7)):
        path = tmp_path / name
        path.write_bytes(png_bytes(x_hold[np.flatnonzero(y_hold == digit)[0]]))
        loose.append(str(path))
    try_image = tmp_path / "try.png"
    try_image.write_bytes(png_bytes(x_hold[np.flatnonzero(y_hold == 3)[1]]))

    token_file = server.container.settings.data_dir / "admin-token"
    auth = token_file.is_file()
    token = token_file.read_text().strip() if auth else "no-auth-configured"
    if ARTIFACTS.exists():
        shutil.rmtree(ARTIFACTS)
    env = {
        **os.environ,
        "MOBILETRAIN_URL": f"http://127.0.0.1:{server.http_port}",
        "MOBILETRAIN_TOKEN": token,
        "MOBILETRAIN_AUTH": "1" if auth else "0",
        "DIGITS_DIR": str(digits),
        "LOOSE_FILES": ":".join(loose),
        "TRY_IMAGE": str(try_image),
        "ARTIFACTS_DIR": str(ARTIFACTS),
        "EPOCHS": str(EPOCHS),
        "CHROMIUM": CHROMIUM,
    }
    try:
        result = subprocess.run(
            ["node", str(SPEC)],
            cwd=WEB,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"the browser test timed out:\n{exc.stdout}\n{exc.stderr}")
    output = f"{result.stdout}\n{result.stderr}"
    print(output)
    assert result.returncode == 0, output
    assert (ARTIFACTS / "training.png").is_file()
    if os.environ.get("MOBILETRAIN_UPDATE_SCREENSHOT") == "1":
        target = ROOT / "docs" / "images" / "training.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ARTIFACTS / "training.png", target)
