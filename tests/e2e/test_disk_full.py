"""Disk full through the real server: the data folder is a 30 MiB tmpfs the test fills for real.

* With no reserve, uploads over gRPC and REST (and a resumable chunk) run into the real ENOSPC
  and SQLite's "database or disk is full": clients get STORAGE_FULL (code 74, gRPC
  RESOURCE_EXHAUSTED, HTTP 507), never INTERNAL, and the log gets one line per refused
  request and no stack trace. Once the test frees space, uploads are accepted again by
  themselves; every sample the server stored (so every one answered "accepted") reads back byte
  for byte over both transports, before and after a restart, and SQLite's integrity check
  passes.
* With a reserve, uploads are refused before the disk is full, health says ``degraded`` with
  the reason, metadata writes still succeed, and uploads work again once space is back.

Mounting a tmpfs needs root (CI runs as root); elsewhere the tests skip and say why.
"""

from __future__ import annotations

import io
import logging
import os
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from PIL import Image

from mobiletrain._proto.mobiletrain.v1 import datasets_pb2
from mobiletrain.api.grpc.server import DEGRADED_METADATA_KEY, STORAGE_HEALTH_SERVICE
from mobiletrain.client.sdk import Client, ClientError, LocalSample
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.slow

TMPFS_MIB = 30
STORAGE_FULL = 74


def _mount(tmp_path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted for this test (skips when mounting is not permitted)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"{options},mode=0700", "tmpfs", str(mount_point)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(
            "disk-full tests mount a tmpfs and need root (CI runs them as root): "
            + (done.stderr.strip() or f"mount exited {done.returncode}")
        )
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 30 MiB tmpfs."""
    yield from _mount(tmp_path, f"size={TMPFS_MIB}m")


@pytest.fixture
def few_inodes(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs with room for bytes but few files (so creating a folder fails with ENOSPC)."""
    yield from _mount(tmp_path, f"size={TMPFS_MIB}m,nr_inodes=400")


def _noise_png(seed: int, size: int) -> bytes:
    """An incompressible PNG (random pixels), about 3 * size**2 bytes."""
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def _fill(path: Path, leave_bytes: int) -> Path:
    """A filler file that leaves about ``leave_bytes`` free on ``path``'s file system."""
    filler = path / f"filler-{uuid.uuid4().hex}"
    size = max(0, _free_bytes(path) - leave_bytes)
    with open(filler, "wb") as fh:
        chunk = b"\0" * (1 << 20)
        while size > 0:
            fh.write(chunk[: min(size, len(chunk))])
            size -= min(size, len(chunk))
    return filler


class Server:
    """A real server on a data folder, with a gRPC SDK client and an HTTP client."""

    def __init__(self, data_dir: Path, **settings: object) -> None:
        self.running: RunningServer = start_server(
            Settings(data_dir=data_dir, grpc_port=0, http_port=0, **settings)  # type: ignore[arg-type]
        )
        token = (data_dir / "admin-token").read_text().strip()
        self.client = Client(f"127.0.0.1:{self.running.grpc_port}", token=token)
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.running.http_port}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )

    def stop(self) -> None:
        self.client.close()
        self.http.close()
        self.running.stop()

    # -- uploads: each returns the client ids the server answered "accepted" -----------------
    def upload_grpc(self, project: str, samples: dict[str, bytes]) -> list[str]:
        report = self.client.upload(
            project, [LocalSample(cid, "noise", data) for cid, data in samples.items()]
        )
        assert report.rejected == 0, report.rejections
        assert report.accepted == len(samples)
        return list(samples)

    def upload_rest(self, project: str, samples: dict[str, bytes]) -> httpx.Response:
        return self.http.post(
            f"/v1/projects/{project}/samples",
            files=[("files", (f"{cid}.png", data, "image/png")) for cid, data in samples.items()],
            data={"label": "noise", "client_ids": list(samples)},
        )

    def stored(self, project: str) -> dict[str, str]:
        """client id -> sample id of every sample the server lists."""
        out: dict[str, str] = {}
        token = ""
        while True:
            page = self.http.get(
                f"/v1/projects/{project}/samples",
                params={"page_size": 1000, "page_token": token},
            ).json()
            out.update({s["client_id"]: s["id"] for s in page["samples"]})
            token = page["next_page_token"]
            if not token:
                return out

    def read_grpc(self, project: str, sample_id: str) -> bytes:
        parts = self.client.datasets.GetSampleData(
            datasets_pb2.GetSampleDataRequest(project=project, sample_id=sample_id), timeout=30
        )
        return b"".join(p.data for p in parts)


def _assert_all_readable(server: Server, project: str, sent: dict[str, bytes], accepted: set[str]):
    stored = server.stored(project)
    assert accepted <= set(stored), f"accepted but not listed: {sorted(accepted - set(stored))}"
    for client_id, sample_id in stored.items():
        want = sent[client_id]
        got = server.http.get(f"/v1/projects/{project}/samples/{sample_id}/data")
        assert got.status_code == 200, (client_id, got.status_code, got.text[:200])
        assert got.content == want, f"REST: bytes of {client_id} differ"
        assert server.read_grpc(project, sample_id) == want, f"gRPC: bytes of {client_id} differ"
    return stored


def _integrity_ok(data_dir: Path) -> None:
    with sqlite3.connect(data_dir / "mobiletrain.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


def test_a_full_disk_refuses_uploads_with_storage_full_and_loses_nothing(
    small_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mobiletrain")
    data_dir = small_disk / "data"
    server = Server(data_dir, storage_reserve_mb=0)  # no reserve: hit the real ENOSPC
    sent: dict[str, bytes] = {}
    accepted: set[str] = set()
    seed = 0

    def batch(n: int, size: int = 160) -> dict[str, bytes]:
        nonlocal seed
        out = {}
        for _ in range(n):
            seed += 1
            out[f"s{seed}"] = _noise_png(seed, size)
        sent.update(out)
        return out

    try:
        project = "full"
        server.client.create_project(project, width=32, height=32)
        accepted |= set(server.upload_grpc(project, batch(4)))
        assert server.upload_rest(project, batch(2)).status_code == 200
        accepted |= set(list(sent)[-2:])
        big = _noise_png(10_000, 450)  # ~600 KB: never fits in what a full disk has left
        sent["big"] = big
        opened = server.http.post(
            f"/v1/projects/{project}/uploads",
            json={"client_id": "big", "label": "noise", "size": len(big)},
        )
        assert opened.status_code == 201, opened.text
        upload_id = opened.json()["id"]

        filler = _fill(small_disk, leave_bytes=3 << 20)
        refused = {"grpc": 0, "rest": 0}
        for _ in range(200):
            if refused["grpc"] and refused["rest"]:
                break
            try:
                accepted |= set(server.upload_grpc(project, batch(3)))
            except ClientError as exc:
                assert (exc.code, exc.status) == (STORAGE_FULL, "RESOURCE_EXHAUSTED"), exc
                refused["grpc"] += 1
            response = server.upload_rest(project, batch(1))
            if response.status_code == 200:
                results = response.json()["results"]
                assert results[0]["status"] == "accepted", results
                accepted.add(results[0]["client_id"])
            else:
                assert response.status_code == 507, response.text
                assert response.json()["code"] == STORAGE_FULL
                assert response.headers["X-Mobiletrain-Error-Code"] == str(STORAGE_FULL)
                refused["rest"] += 1
        assert refused["grpc"] and refused["rest"], "the disk never filled"

        chunk = server.http.patch(
            f"/v1/uploads/{upload_id}",
            content=big,
            headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        assert chunk.status_code == 507 and chunk.json()["code"] == STORAGE_FULL, chunk.text
        refused["rest"] += 1

        # One line per refused request, no stack trace, nothing "unexpected".
        refusals = [r for r in caplog.records if "refused" in r.getMessage()]
        assert len(refusals) == sum(refused.values()), [r.getMessage() for r in refusals]
        assert not [r for r in caplog.records if r.exc_info], "a stack trace was logged"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]

        filler.unlink()  # space is back: no restart, no operator action
        time.sleep(1.1)  # the free-space reading is cached for a second
        accepted |= set(server.upload_grpc(project, batch(3)))
        response = server.upload_rest(project, batch(2))
        assert response.status_code == 200, response.text
        assert [r["status"] for r in response.json()["results"]] == ["accepted"] * 2
        accepted |= set(list(sent)[-2:])
        chunk = server.http.patch(
            f"/v1/uploads/{upload_id}",
            content=big,
            headers={"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
        )
        assert chunk.status_code == 200, chunk.text
        assert chunk.json()["result"]["status"] == "accepted"
        accepted.add("big")

        stored = _assert_all_readable(server, project, sent, accepted)
    finally:
        server.stop()
    _integrity_ok(data_dir)

    server = Server(data_dir, storage_reserve_mb=0)
    try:
        assert _assert_all_readable(server, project, sent, accepted) == stored
        assert server.http.get("/healthz").json() == {"status": "ok"}
    finally:
        server.stop()
    _integrity_ok(data_dir)


def test_below_the_reserve_uploads_are_refused_early_and_health_is_degraded(
    small_disk: Path,
) -> None:
    data_dir = small_disk / "data"
    # 8 MiB reserve (the percentage allows up to 100% of the disk).
    server = Server(data_dir, storage_reserve_mb=8, storage_reserve_percent=100)
    try:
        project = "reserve"
        server.client.create_project(project, width=32, height=32)
        assert server.http.get("/healthz").json() == {"status": "ok"}
        filler = _fill(small_disk, leave_bytes=7 << 20)  # below the reserve, far from full
        time.sleep(1.1)

        with pytest.raises(ClientError) as refused:
            server.upload_grpc(project, {"a": _noise_png(1, 64)})
        assert refused.value.code == STORAGE_FULL
        assert refused.value.status == "RESOURCE_EXHAUSTED"
        assert "reserve" in refused.value.message
        response = server.upload_rest(project, {"b": _noise_png(2, 64)})
        assert response.status_code == 507 and response.json()["code"] == STORAGE_FULL

        health = server.http.get("/healthz").json()
        assert health["status"] == "degraded"
        assert any(r.startswith("storage below reserve: ") for r in health["reasons"]), health
        stub = health_pb2_grpc.HealthStub(server.client.channel)
        answer, call = stub.Check.with_call(
            health_pb2.HealthCheckRequest(service=STORAGE_HEALTH_SERVICE), timeout=10
        )
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
        reasons = [v for k, v in call.trailing_metadata() if k == DEGRADED_METADATA_KEY]
        assert reasons and reasons[0].startswith("storage below reserve")
        whole = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert whole.status == health_pb2.HealthCheckResponse.SERVING  # it still serves reads

        # The reserve is for the rest of the server: the database still takes writes.
        server.client.create_project("still-writable", width=32, height=32)
        assert server.stored(project) == {}  # nothing half-stored

        filler.unlink()
        time.sleep(1.1)
        assert server.upload_grpc(project, {"a": _noise_png(1, 64)}) == ["a"]
        response = server.upload_rest(project, {"b": _noise_png(2, 64)})
        assert response.status_code == 200, response.text
        assert server.http.get("/healthz").json() == {"status": "ok"}
        answer = stub.Check(
            health_pb2.HealthCheckRequest(service=STORAGE_HEALTH_SERVICE), timeout=10
        )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert set(server.stored(project)) == {"a", "b"}
    except grpc.RpcError as exc:  # pragma: no cover - show what the server said
        raise AssertionError(f"unexpected gRPC failure: {exc}") from exc
    finally:
        server.stop()


def test_a_job_that_finds_no_room_for_its_folder_fails_with_the_reason(few_inodes: Path) -> None:
    """The executor creates each job's folder: with no room for it the job ends at once with
    the reason and one log line, and the next job runs once space is back."""
    data_dir = few_inodes / "data"
    server = Server(data_dir, storage_reserve_mb=0)
    fillers: list[Path] = []
    try:
        server.client.create_project("jobs", width=16, height=16)
        samples = {
            f"{lab}{i}": (lab, _noise_png(100 * i + ord(lab), 16)) for lab in "ab" for i in range(3)
        }
        report = server.client.upload(
            "jobs", [LocalSample(cid, lab, data) for cid, (lab, data) in samples.items()]
        )
        assert report.accepted == len(samples)
        while True:  # use up the file system's inodes
            try:
                filler = few_inodes / f"f{len(fillers)}"
                filler.touch()
                fillers.append(filler)
            except OSError as exc:
                assert exc.errno == 28  # ENOSPC
                break
        job = server.client.start_job("jobs", epochs=1, formats=["float32"])
        deadline = time.monotonic() + 30
        while True:
            stored = server.running.container.store.get_job(job.id)
            assert stored is not None
            if stored.state.is_terminal:
                break
            assert time.monotonic() < deadline, stored
            time.sleep(0.2)
        assert stored.state.value == "failed"
        assert "storage is full" in stored.error, stored.error

        for filler in fillers:
            filler.unlink()
        job = server.client.start_job("jobs", epochs=1, formats=["float32"])
        # The executor claims the job, then creates its folder: wait for the folder itself.
        deadline = time.monotonic() + 30
        while not (data_dir / "jobs" / job.id).is_dir():
            assert time.monotonic() < deadline, server.running.container.store.get_job(job.id)
            time.sleep(0.2)
        server.client.cancel_job(job.id)
    finally:
        server.stop()
