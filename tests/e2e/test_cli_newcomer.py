"""The first hour with the CLI (issue 17), against real servers started as a newcomer would.

- every listed mistake gets one line that says what to type instead, exit code 2 for usage
  errors, 1 for failed calls, and never a traceback;
- the README's command-line loop, typed as a newcomer types it (no --token: the CLI finds the
  local admin token), meets no traceback and no silent no-op;
- ``serve --lan``'s QR code (the PNG it writes, decoded by zxing) holds a non-loopback address,
  the ports and the sha256 of the certificate the server really serves, in the exact text the
  Dart app's ``ConnectionPayload.parse`` test reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from mobiletrain.cli.demo import digits_split, write_digits_folder
from mobiletrain.cli.pairing import PairingInfo, is_loopback

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "mobiletrain.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "COLUMNS": "200"}
for _name in ("MOBILETRAIN_TOKEN", "MOBILETRAIN_SERVER", "MOBILETRAIN_TLS_CA", "MOBILETRAIN_DEBUG"):
    ENV.pop(_name, None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run(args: list[str], cwd: Path, timeout: float = 120, **env: str) -> tuple[int, str, str]:
    done = subprocess.run(
        [*CLI, *args],
        cwd=cwd,
        env={**ENV, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return done.returncode, done.stdout, done.stderr


def _wait_http(url: str, proc: subprocess.Popen[str], verify: object = True) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        try:
            if httpx.get(f"{url}/healthz", timeout=1, verify=verify).status_code == 200:  # type: ignore[arg-type]
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not come up")


class Server:
    """``mobiletrain serve`` in its own process group, as a newcomer starts it."""

    def __init__(self, cwd: Path, *extra: str) -> None:
        self.grpc_port, self.http_port = _free_port(), _free_port()
        self.cwd = cwd
        self.log = cwd / "serve.log"
        self.proc = subprocess.Popen(
            [
                *CLI,
                "serve",
                "--grpc-port",
                str(self.grpc_port),
                "--http-port",
                str(self.http_port),
                *extra,
            ],
            cwd=cwd,
            env=ENV,
            stdout=self.log.open("w"),
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def output(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    try:
        _wait_http(f"http://127.0.0.1:{srv.http_port}", srv.proc)
        yield srv
    finally:
        srv.stop()


def _one_line(code: int, out: str, err: str, want_code: int, *needles: str) -> str:
    text = out + err
    assert "Traceback" not in text, text
    assert code == want_code, (code, text)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def test_each_cli_mistake_is_one_line_with_the_fix(server: Server, tmp_path: Path) -> None:
    cwd = tmp_path  # ./mobiletrain-data/admin-token is found like on a newcomer's machine
    s = ["--server", server.address]
    ok = _run([*s, "projects", "create", "p", "--width", "8", "--height", "8"], cwd)
    assert ok[0] == 0, ok
    (tmp_path / "empty").mkdir()
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "a.png").write_bytes(b"\x89PNG not really")
    http = f"127.0.0.1:{server.http_port}"
    cases: list[tuple[list[str], int, tuple[str, ...]]] = [
        ([*s, "projects", "create", "x", "--color-mode", "rbg"], 2, ("--color-mode", "grayscale")),
        ([*s, "projects", "create", "x", "--normalization", "0-1"], 2, ("zero-one",)),
        ([*s, "train", "-p", "p", "--architecture", "resnet"], 2, ("small-cnn",)),
        ([*s, "train"], 2, ("--project",)),
        ([*s, "train", "-p", "p", "--epochs", "many"], 2, ("--epochs",)),
        ([*s, "predict", "missing.jpg", "-p", "p"], 2, ("missing.jpg", "not found")),
        ([*s, "predict", str(tmp_path), "-p", "p"], 2, ("folder",)),
        ([*s, "models", "pull", "-p", "p", "-o", "no/such/dir/m.tflite"], 2, ("mkdir -p",)),
        ([*s, "models", "pull", "-p", "p", "-o", "m.tflite", "--format", "fp8"], 2, ("int8",)),
        ([*s, "upload", "empty", "-p", "p"], 2, ("nothing to upload", "<label>")),
        ([*s, "upload", "flat", "-p", "p"], 2, ("not in label subfolders", "flat/<label>/")),
        ([*s, "upload", "nowhere", "-p", "p"], 2, ("not a folder",)),
        ([*s, "jobs", "watch", "zzzz"], 2, ("no job id starts with", "jobs list")),
        ([*s, "bogus"], 2, ("No such command", "--help")),
        (["--server", f"http://{server.address}", "projects", "list"], 2, (server.address,)),
        (["--server", http, "projects", "list"], 1, (http, "HTTP port", "50051")),
        (["--server", f"127.0.0.1:{_free_port()}", "projects", "list"], 1, ("mobiletrain serve",)),
        ([*s, "jobs", "list", "-p", "nope"], 1, ("not found",)),
    ]
    for args, want, needles in cases:
        _one_line(*_run(args, cwd), want, *needles)
    # No token anywhere (another folder, no MOBILETRAIN_TOKEN): the message names --token.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _one_line(*_run([*s, "projects", "list"], elsewhere), 1, "--token", "admin-token")


def test_readme_quick_start_as_a_newcomer(tmp_path: Path) -> None:
    code, out, err = _run([], tmp_path)
    assert code == 0 and "Traceback" not in out + err
    for command in ("mobiletrain serve", "projects create", "upload", "train", "models pull"):
        assert command in out, out
    x, y, _, _ = digits_split()
    photos = tmp_path / "photos"
    write_digits_folder(photos, x[:400], y[:400])
    srv = Server(tmp_path, "--data-dir", "./mobiletrain-data")
    try:
        _wait_http(f"http://127.0.0.1:{srv.http_port}", srv.proc)
        s = ["--server", srv.address]
        log = srv.output()
        assert f"dashboard: http://127.0.0.1:{srv.http_port}/" in log, log
        assert "mobiletrain-data/admin-token" in log and "serve --lan" in log, log

        def step(*args: str, timeout: float = 120) -> str:
            code, out, err = _run([*s, *args], tmp_path, timeout=timeout)
            assert "Traceback" not in out + err, out + err
            assert code == 0, (args, out, err)
            return out

        step("projects", "create", "digits", "--width", "16", "--height", "16",
             "--color-mode", "grayscale")  # fmt: skip
        assert "digits" in step("projects", "list")
        uploaded = step("upload", "--project", "digits", "./photos")
        assert re.search(r"accepted 400\b", uploaded), uploaded
        again = step("upload", "--project", "digits", "./photos")
        assert "already on the server 400" in again, again
        trained = step("train", "--project", "digits", "--epochs", "2", "--watch", timeout=600)
        assert "model version 1" in trained, trained
        jobs = step("jobs", "list", "-p", "digits")
        job_id = re.search(r"([0-9a-f]{8})-[0-9a-f-]{27}", jobs)
        assert job_id and "succeeded" in jobs, jobs
        # The dashboard's 8-character id works in the CLI.
        assert "state: succeeded" in step("jobs", "watch", job_id.group(1))
        assert "current version: 1" in step("models", "list", "--project", "digits")
        assert "labels:" in step("models", "show", "--project", "digits", "--version", "1")
        step("models", "pull", "--project", "digits", "-o", "digits.tflite")
        model = tmp_path / "digits.tflite"
        assert model.stat().st_size > 1000
        assert json.loads((tmp_path / "digits.tflite.json").read_text())["version"] == 1
        image = next((photos / str(int(y[0]))).iterdir())
        predicted = step("predict", "--project", "digits", str(image))
        assert "(version 1," in predicted and len(predicted.splitlines()) == 4, predicted
    finally:
        srv.stop()


DART_PAYLOAD_TEST = REPO / "clients/dart/example/test/connection_payload_test.dart"


def test_serve_lan_qr_decodes_to_address_and_pinned_fingerprint(tmp_path: Path) -> None:
    import zxingcpp  # requirements.lock: a real QR decoder, never skipped
    from PIL import Image

    srv = Server(tmp_path, "--lan", "--data-dir", "data")
    try:
        cert = tmp_path / "data" / "tls" / "cert.pem"
        deadline = time.monotonic() + 90
        while not cert.exists():
            assert srv.proc.poll() is None and time.monotonic() < deadline, srv.output()
            time.sleep(0.2)
        ctx = ssl.create_default_context(cafile=str(cert))
        _wait_http(f"https://127.0.0.1:{srv.http_port}", srv.proc, verify=ctx)
        png = tmp_path / "data" / "pairing-qr.png"
        while not png.exists():
            assert time.monotonic() < deadline, srv.output()
            time.sleep(0.2)
        time.sleep(0.5)  # written after the HTTP server answers; let it finish
        (decoded,) = zxingcpp.read_barcodes(Image.open(png))
        payload = json.loads(decoded.text)
        host_port = payload["server"].removeprefix("https://")
        host, port = host_port.rsplit(":", 1)
        assert not is_loopback(host) and int(port) == srv.http_port, payload
        assert payload["grpc_port"] == srv.grpc_port and payload["tls"] is True
        # The fingerprint is the certificate the server really serves (TLS handshake).
        with (
            socket.create_connection(("127.0.0.1", srv.http_port), timeout=10) as raw,
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            served = tls.getpeercert(binary_form=True)
        assert served is not None
        assert payload["cert_sha256"] == hashlib.sha256(served).hexdigest()
        assert decoded.text in srv.output()
        # The CLI on the same machine reaches it with the certificate as its CA.
        ca = {"MOBILETRAIN_TLS_CA": str(cert)}
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        code, out, err = _run(
            ["--server", srv.address, "--token", token, "projects", "list"], tmp_path, **ca
        )
        assert code == 0, out + err
        # Without it, the one-line error says how to fix it.
        _one_line(
            *_run(["--server", srv.address, "--token", token, "projects", "list"], tmp_path),
            1,
            "MOBILETRAIN_TLS_CA",
        )
        # A restart keeps the certificate: a paired phone stays paired.
        srv.stop()
        before = cert.read_bytes()
        again = Server(tmp_path, "--lan", "--data-dir", "data")
        try:
            _wait_http(f"https://127.0.0.1:{again.http_port}", again.proc, verify=ctx)
        finally:
            again.stop()
        assert cert.read_bytes() == before
    finally:
        srv.stop()
    # The Dart app's parser test reads exactly this format (the same text, field for field).
    dart = DART_PAYLOAD_TEST.read_text()
    sample = re.search(r"'(\{\"server\":\"https://[^']*)'\s*'([^']*)'", dart)
    assert sample, "the Dart test has no serve --lan payload"
    dart_text = sample.group(1) + sample.group(2)
    fp = json.loads(dart_text)["cert_sha256"]
    assert dart_text == PairingInfo("192.168.1.20", 8000, 50051, fp).payload()


def test_doctor_says_what_to_fix_without_importing_tensorflow(tmp_path: Path) -> None:
    # A port held by a program that is not mobiletrain, the other one free.
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        taken = holder.getsockname()[1]
        free = _free_port()
        script = (
            "import sys\n"
            "from mobiletrain.cli import app\n"
            f"sys.argv = ['mobiletrain', 'doctor', '--grpc-port', '{taken}', "
            f"'--http-port', '{free}', '--data-dir', 'data']\n"
            "try:\n"
            "    app()\n"
            "except SystemExit as exit:\n"
            "    print('exit', exit.code)\n"
            "print('tensorflow imported:', 'tensorflow' in sys.modules)\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script],
            cwd=tmp_path,
            env=ENV,
            capture_output=True,
            text=True,
            timeout=400,
        )
    out = done.stdout + done.stderr
    assert "Traceback" not in out, out
    assert "tensorflow imported: False" in out, out
    assert "exit 1" in out, out
    assert re.search(r"ok\s+TensorFlow \d+\.\d+", out), out
    assert re.search(r"ok\s+LiteRT", out), out
    assert re.search(rf"FAIL gRPC port {taken} used by another program -> .*--grpc-port", out)
    assert re.search(rf"ok\s+HTTP port {free} free", out), out
    assert "disk:" in out and "LAN address" in out and "dashboard" in out, out


def test_server_without_dashboard_build_says_so_at_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    import mobiletrain.api.rest.web as web
    from mobiletrain.config import Settings
    from mobiletrain.server import start_server

    monkeypatch.setattr(web, "DIST_DIR", tmp_path / "no-build")  # a checkout before `make web`
    caplog.set_level(logging.WARNING)
    running = start_server(
        Settings(data_dir=tmp_path / "data", grpc_port=_free_port(), http_port=_free_port())
    )
    try:
        assert any("dashboard is not built" in r.getMessage() for r in caplog.records)
        assert any("make web" in r.getMessage() for r in caplog.records)
    finally:
        running.stop()


def test_projects_delete_removes_rows_and_compaction_removes_bytes(tmp_path: Path) -> None:
    from mobiletrain.client.sdk import Client
    from mobiletrain.store.blobs import open_blob_store

    x, y, _, _ = digits_split()
    write_digits_folder(tmp_path / "gone-photos", x[:60], y[:60])
    write_digits_folder(tmp_path / "kept-photos", x[60:120], y[60:120])
    srv = Server(tmp_path, "--data-dir", "data")
    try:
        _wait_http(f"http://127.0.0.1:{srv.http_port}", srv.proc)
        token = (tmp_path / "data" / "admin-token").read_text().strip()
        s = ["--server", srv.address, "--token", token]

        def ok(*args: str) -> str:
            code, out, err = _run([*s, *args], tmp_path)
            assert code == 0 and "Traceback" not in out + err, (args, out, err)
            return out

        for name in ("gone", "kept"):
            ok("projects", "create", name, "--width", "8", "--height", "8")
            ok("upload", f"{name}-photos", "-p", name)
        ok("tokens", "create", "--project", "gone", "--name", "phone")
        with Client(srv.address, token=token) as c:
            samples = {
                name: {sm.sha256 for sm in c.datasets.ListSamples(_list(name)).samples}
                for name in ("gone", "kept")
            }
            job = c.start_job("gone", epochs=1)
        # Not while a job is queued or running: one line saying what to do.
        busy = _one_line(*_run([*s, "projects", "delete", "gone", "--yes"], tmp_path), 1)
        assert "error 15" in busy and "cancel" in busy, busy
        # Not without a confirmation (no terminal to ask on).
        _one_line(*_run([*s, "projects", "delete", "gone"], tmp_path), 2, "--yes")
        ok("jobs", "cancel", job.id[:8])
        with Client(srv.address, token=token) as c:
            deadline = time.monotonic() + 120
            while c.get_job(job.id).state in (1, 2):
                assert time.monotonic() < deadline, "the job did not stop"
                time.sleep(0.2)
        assert "deleted project gone (60 samples)" in ok("projects", "delete", "gone", "--yes")
        listed = ok("projects", "list")
        assert "kept" in listed and "gone" not in listed
        assert "gone" not in ok("tokens", "list")
        _one_line(*_run([*s, "projects", "delete", "gone", "--yes"], tmp_path), 1, "not found")
        # REST: the same deletion (here of a project that does not exist any more).
        gone = httpx.delete(
            f"http://127.0.0.1:{srv.http_port}/v1/projects/gone",
            headers={"Authorization": f"Bearer {token}"},
        )
        assert gone.status_code == 404 and gone.json()["code"] == 10, gone.text
    finally:
        srv.stop()
    # The bytes go with the next compaction pass (here the CLI's, the server stopped).
    ok_compact = _run(["compact", "--data-dir", "data", "--grace", "0"], tmp_path)
    assert ok_compact[0] == 0, ok_compact
    blobs = open_blob_store(str(tmp_path / "data" / "blobs"))
    try:
        only_gone = samples["gone"] - samples["kept"]
        assert len(only_gone) == 60
        assert not any(blobs.exists(key) for key in only_gone)
        assert all(blobs.exists(key) for key in samples["kept"])
    finally:
        blobs.close()


def _list(project: str) -> object:
    from mobiletrain._proto.mobiletrain.v1 import datasets_pb2

    return datasets_pb2.ListSamplesRequest(project=project, page_size=1000)


def test_help_shows_the_order_of_the_steps_and_the_training_defaults(tmp_path: Path) -> None:
    code, out, err = _run(["--help"], tmp_path)
    assert code == 0 and "Traceback" not in out + err
    names = ("1. mobiletrain serve", "2. mobiletrain projects create", "3. mobiletrain upload")
    steps = [out.index(s) for s in (*names, "4. mobiletrain train")]
    assert steps == sorted(steps), out
    assert "models pull" in out and "mobiletrain doctor" in out
    code, out, err = _run(["train", "--help"], tmp_path)
    assert code == 0
    for default in ("[default: 10]", "[default: 32]", "[default: 0.001]", "[default: small-cnn]"):
        assert default in " ".join(out.split()), (default, out)
    code, out, err = _run(["jobs", "--help"], tmp_path)
    assert code == 0 and "list" in out and "watch" in out
