"""Hostile clients against a real server (issue 13, findings 1, 4 and 6).

Each test replays an attack over real sockets against a server started in this process by
``start_server`` (real uvicorn, real grpc.aio, SQLite and the blob store in a temporary folder):
huge bodies without a token, a 100 MiB header, bodies that stall, many requests from one
address, long polls that used to hold a worker thread each, and the smaller findings.
"""

from __future__ import annotations

import asyncio
import io
import os
import queue
import select
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import psutil
import pytest
import uvicorn
from PIL import Image
from uvicorn.server import ServerState

from mobiletrain._proto.mobiletrain.v1 import (
    datasets_pb2,
    datasets_pb2_grpc,
    federated_pb2,
    federated_pb2_grpc,
    projects_pb2,
    projects_pb2_grpc,
)
from mobiletrain.api.rest.limits import header_limited_protocol
from mobiletrain.config import Settings
from mobiletrain.core.types import (
    Artifact,
    EventKind,
    Hyperparameters,
    Job,
    JobState,
    ModelFormat,
    ModelVersion,
)
from mobiletrain.federated.head import HeadSpec, weights_to_bytes
from mobiletrain.federated.ports import OnDeviceToolkit, PreparedFiles
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.timeout(300)

MB = 1024 * 1024


@dataclass
class Live:
    server: RunningServer
    admin: str
    port: int
    grpc_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin}"}


def _start(tmp_path: Path, **settings: Any) -> Live:
    data_dir = tmp_path / "data"
    defaults: dict[str, Any] = {"grpc_port": 0, "http_port": 0, "max_workers": 0}
    server = start_server(Settings(data_dir=data_dir, **(defaults | settings)))
    admin = (data_dir / "admin-token").read_text().strip()
    return Live(server, admin, server.http_port, server.grpc_port)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    server = _start(
        tmp_path_factory.mktemp("hostile"),
        body_idle_timeout_seconds=1.0,
        max_requests_per_address=6,
        max_labels_per_project=3,
        rate_limit_per_second=0,
    )
    try:
        yield server
    finally:
        server.server.stop()


# --- raw HTTP --------------------------------------------------------------------------------


@dataclass
class RawAnswer:
    status: int
    head: str
    body: bytes
    sent: int
    seconds: float


def _read_answer(sock: socket.socket, timeout: float) -> tuple[int, str, bytes]:
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    text = head.decode("latin-1")
    status = int(text.split(" ", 2)[1]) if text.startswith("HTTP/") else 0
    for line in text.split("\r\n"):
        if line.lower().startswith("content-length:"):
            want = int(line.split(":", 1)[1])
            while len(body) < want:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                body += chunk
    return status, text, body


def raw_request(
    port: int,
    head: bytes,
    body_size: int = 0,
    chunk: int = MB,
    chunked: bool = False,
    timeout: float = 30.0,
) -> RawAnswer:
    """Send ``head``, then up to ``body_size`` bytes as long as the server reads them; stop
    sending once the server answers or closes. Never holds more than one chunk."""
    start = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        block = b"x" * chunk
        try:
            sock.sendall(head)
            sock.settimeout(2.0)
            while sent < body_size and time.monotonic() - start < timeout:
                if select.select([sock], [], [], 0)[0]:
                    break  # an answer (or the close) is waiting: the server refused
                piece = block[: min(chunk, body_size - sent)]
                frame = b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece
                sock.sendall(frame)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the server stopped reading
        try:
            status, text, body = _read_answer(sock, timeout)
        except (ConnectionResetError, TimeoutError):
            status, text, body = 0, "", b""
    return RawAnswer(status, text, body, sent, time.monotonic() - start)


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class PeakRss:
    """Samples this process's RSS (the server runs in it) every 10 ms."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.base = self.process.memory_info().rss
        self.peak = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.base) / MB


def _operations(live: Live) -> list[tuple[str, str]]:
    openapi = httpx.get(f"{live.url}/openapi.json").json()
    ops = []
    for template, item in openapi["paths"].items():
        path = template.replace("{", "x").replace("}", "")
        ops += [(method.upper(), path) for method in item if path != "/healthz"]
    return ops


# --- finding 1: memory exhaustion before auth -------------------------------------------------


def test_every_route_refuses_a_200mb_body_without_a_token_in_bounded_memory(live: Live) -> None:
    operations = _operations(live)
    assert len(operations) >= 28
    with PeakRss() as rss:
        for method, path in operations:
            for chunked in (False, True):
                headers = {"Content-Type": "application/json"}
                headers |= (
                    {"Transfer-Encoding": "chunked"}
                    if chunked
                    else {"Content-Length": str(200 * MB)}
                )
                answer = raw_request(
                    live.port, _head(method, path, headers), 200 * MB, chunked=chunked
                )
                assert answer.status == 401, (method, path, chunked, answer.head)
                assert "x-mobiletrain-error-code: 60" in answer.head.lower()
                # Refused from the headers: the body was not read (a socket buffer at most).
                assert answer.sent < 64 * MB, (method, path, answer.sent)
                assert answer.seconds < 10
    assert rss.growth_mb < 100, f"server grew {rss.growth_mb:.0f} MB"


def test_bodies_over_the_route_cap_are_refused_while_streaming(live: Live) -> None:
    auth = {**live.auth, "Content-Type": "application/json"}
    with PeakRss() as rss:
        # Declared too large: refused before a byte of the body is read.
        declared = raw_request(
            live.port,
            _head("POST", "/v1/projects", auth | {"Content-Length": str(300 * MB)}),
            300 * MB,
        )
        # Chunked: counted while read, cut once past the cap (1 MiB for this route).
        streamed = raw_request(
            live.port,
            _head("POST", "/v1/projects", auth | {"Transfer-Encoding": "chunked"}),
            300 * MB,
            chunk=64 * 1024,
            chunked=True,
        )
        # A sample route's cap is larger (twice the sample size), still far below 300 MB.
        base64 = raw_request(
            live.port,
            _head("POST", "/v1/projects/p/samples:base64", auth | {"Transfer-Encoding": "chunked"}),
            300 * MB,
            chunked=True,
        )
    for answer in (declared, streamed, base64):
        assert answer.status == 413, answer.head
        assert "x-mobiletrain-error-code: 76" in answer.head.lower()
        assert b'"body_too_large"' in answer.body
    assert declared.sent < 64 * MB
    assert streamed.sent < 64 * MB
    assert base64.sent < 200 * MB
    assert rss.growth_mb < 100, f"server grew {rss.growth_mb:.0f} MB"


def test_bodies_held_in_memory_share_one_budget(tmp_path: Path) -> None:
    server = _start(tmp_path, max_buffered_body_bytes=3 * MB, body_idle_timeout_seconds=10)
    try:
        headers = server.auth | {"Content-Type": "application/json"}
        path = "/v1/projects/p/samples:base64"
        with socket.create_connection(("127.0.0.1", server.port)) as holder:
            # One request holds 2 MiB of its body and waits for the rest.
            head = _head("POST", path, headers | {"Content-Length": str(8 * MB)})
            holder.sendall(head + b"x" * (2 * MB))
            time.sleep(0.5)
            # The next one passes the server-wide budget: 503, retry later.
            answer = raw_request(
                server.port, _head("POST", path, headers | {"Content-Length": str(4 * MB)}), 4 * MB
            )
            assert answer.status == 503, answer.head
            assert "x-mobiletrain-error-code: 79" in answer.head.lower()
            assert "retry-after: 1" in answer.head.lower()
        # The holder went away: its bytes are released, small requests pass again.
        deadline = time.monotonic() + 10
        while True:
            r = httpx.post(f"{server.url}/v1/projects", json={"name": "after"}, headers=server.auth)
            if r.status_code != 503 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 201, r.text
    finally:
        server.server.stop()


def test_a_100mib_header_is_refused(live: Live) -> None:
    with PeakRss() as rss:
        answer = raw_request(live.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ", 100 * MB)
    assert answer.status == 431, answer.head
    assert "x-mobiletrain-error-code: 77" in answer.head.lower()
    assert answer.sent < 64 * MB
    assert rss.growth_mb < 100
    many = {f"X-H{i}": "1" for i in range(150)}
    r = httpx.get(f"{live.url}/healthz", headers=many)
    assert r.status_code == 431 and r.json()["code"] == 77
    assert httpx.get(f"{live.url}/healthz").status_code == 200  # the server is fine


def test_a_body_that_stalls_is_cut(live: Live) -> None:
    headers = live.auth | {"Content-Type": "application/json", "Content-Length": "500000"}
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", live.port)) as sock:
        sock.sendall(_head("POST", "/v1/projects", headers) + b'{"name": "slo')
        status, head, body = _read_answer(sock, timeout=15)
    assert status == 408, head
    assert b'"code":78' in body
    assert 0.9 < time.monotonic() - start < 8  # the idle timeout is 1 s here


def test_requests_in_flight_per_address_are_capped(live: Live) -> None:
    headers = live.auth | {"Content-Type": "application/json", "Content-Length": "100"}
    held = [socket.create_connection(("127.0.0.1", live.port)) for _ in range(6)]
    try:
        for sock in held:  # six requests whose bodies never come: each holds a slot
            sock.sendall(_head("POST", "/v1/projects", headers) + b"{")
        time.sleep(0.3)
        r = httpx.get(f"{live.url}/v1/projects", headers=live.auth)
        assert r.status_code == 503 and r.json()["code"] == 79
        assert int(r.headers["retry-after"]) >= 1
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while httpx.get(f"{live.url}/v1/projects", headers=live.auth).status_code == 503:
        assert time.monotonic() < deadline, "slots were not freed"
        time.sleep(0.1)


def test_requests_without_a_valid_token_are_rate_limited(tmp_path: Path) -> None:
    server = _start(
        tmp_path,
        unauthenticated_rate_per_second=1,
        unauthenticated_burst=5,
        rate_limit_per_second=0.5,
        rate_limit_burst=3,
    )
    try:
        bad = {"Authorization": "Bearer mt_guessed-token"}
        codes = [httpx.get(f"{server.url}/v1/projects", headers=bad) for _ in range(8)]
        assert [r.status_code for r in codes[:5]] == [401] * 5
        limited = codes[-1]
        assert limited.status_code == 429 and limited.json()["code"] == 71
        assert int(limited.headers["retry-after"]) >= 1
        # A valid token has its own bucket: it still works, until it floods too.
        answers = [httpx.get(f"{server.url}/v1/projects", headers=server.auth) for _ in range(6)]
        assert answers[0].status_code == 200
        assert answers[-1].status_code == 429
        assert int(answers[-1].headers["retry-after"]) >= 1
        # gRPC: the same limits with a retry-after trailer, for failed tokens...
        with grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}") as channel:
            stub = projects_pb2_grpc.ProjectServiceStub(channel)
            forged = (("authorization", "Bearer mt_guessed-token"),)
            codes = []
            for _ in range(8):
                with pytest.raises(grpc.RpcError) as refused:
                    stub.ListProjects(projects_pb2.ListProjectsRequest(), metadata=forged)
                failure: Any = refused.value
                codes.append((failure.code(), dict(failure.trailing_metadata())))
            assert [c for c, _ in codes[:5]] == [grpc.StatusCode.UNAUTHENTICATED] * 5
            assert codes[-1][0] == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert codes[-1][1]["mobiletrain-error-code"] == "71"
            assert int(codes[-1][1]["retry-after"]) >= 1
            # ...and for a token that floods.
            metadata = (("authorization", f"Bearer {server.admin}"),)
            with pytest.raises(grpc.RpcError) as info:
                for _ in range(20):
                    stub.ListProjects(projects_pb2.ListProjectsRequest(), metadata=metadata)
            err: Any = info.value
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            trailers = dict(err.trailing_metadata())
            assert trailers["mobiletrain-error-code"] == "71"
            assert int(trailers["retry-after"]) >= 1
    finally:
        server.server.stop()


def test_grpc_refuses_oversized_metadata(live: Live) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{live.grpc_port}") as channel:
        stub = projects_pb2_grpc.ProjectServiceStub(channel)
        metadata = (("authorization", f"Bearer {live.admin}"), ("x-big", "a" * (64 * 1024)))
        with pytest.raises(grpc.RpcError) as info:
            stub.ListProjects(projects_pb2.ListProjectsRequest(), metadata=metadata, timeout=10)
        err: Any = info.value
        assert err.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INTERNAL)
        ok = stub.ListProjects(
            projects_pb2.ListProjectsRequest(),
            metadata=(("authorization", f"Bearer {live.admin}"),),
            timeout=10,
        )
        assert ok is not None


# --- finding 6: the smaller items ----------------------------------------------------------


def _png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def with_model(live: Live) -> str:
    """A project with a model version of two random-byte files (enough for downloads)."""
    r = httpx.post(f"{live.url}/v1/projects", json={"name": "models"}, headers=live.auth)
    project_id = r.raise_for_status().json()["id"]
    container = live.server.container
    data = os.urandom(5000)
    artifacts = {
        ModelFormat.INT8: Artifact(ModelFormat.INT8, container.blobs.put(data), len(data)),
    }
    container.blobs.sync()
    container.store.create_model_version(
        ModelVersion(
            project_id=project_id,
            version=0,
            job_id="",
            created_at=datetime.now(UTC),
            metrics={},
            manifest={"labels": ["a", "b"]},
            artifacts=artifacts,
        )
    )
    return "models"


@pytest.mark.parametrize("digits", ["²", "١", "٣٤", "¹0", "𝟙", "1\u0301"])
def test_non_ascii_digits_are_a_400(live: Live, with_model: str, digits: str) -> None:
    url = f"{live.url}/v1/projects/{with_model}"
    answers = [
        httpx.get(f"{url}/models/{digits}", headers=live.auth),
        httpx.get(f"{url}/models/{digits}/download", headers=live.auth),
        httpx.post(f"{url}/models/{digits}:promote", headers=live.auth),
        httpx.get(f"{url}/samples", params={"page_token": digits}, headers=live.auth),
        httpx.get(f"{url}/samples", params={"page_size": digits}, headers=live.auth),
        httpx.get(f"{live.url}/v1/projects", params={"page_token": digits}, headers=live.auth),
    ]
    for r in answers:
        assert r.status_code == 400, (r.request.url, r.text)
        assert r.json()["code"] in (2, 30)


def test_long_range_headers_are_a_416_not_a_500(live: Live, with_model: str) -> None:
    url = f"{live.url}/v1/projects/{with_model}/models/1/download?format=int8"
    for value in (
        "bytes=" + "9" * 5000 + "-",
        "bytes=0-" + "9" * 5000,
        "bytes=-" + "9" * 5000,
        "bytes=" + "0" * 4000 + "1-2",
        "bytes=" + "1-2," * 3000,
        "bytes=١-٢",
    ):
        r = httpx.get(url, headers=live.auth | {"Range": value.encode()})
        assert r.status_code in (200, 206, 400, 416), (value[:20], r.status_code)
        if r.status_code >= 400:
            assert r.json()["code"] in (2, 54)
    huge_start = httpx.get(url, headers=live.auth | {"Range": "bytes=" + "9" * 5000 + "-"})
    assert huge_start.status_code == 416
    # An end past any file (more digits than an int64) is the end of the file.
    huge_end = httpx.get(url, headers=live.auth | {"Range": "bytes=10-" + "9" * 40})
    assert huge_end.status_code == 206 and len(huge_end.content) == 5000 - 10
    # Thousands of digits are refused outright, whatever they say.
    long_end = httpx.get(url, headers=live.auth | {"Range": "bytes=10-" + "9" * 5000})
    assert long_end.status_code == 416 and long_end.json()["code"] == 54


def _jpeg(size: int = 64) -> bytes:
    rng = np.random.default_rng(size)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def test_a_jpeg_whose_data_ends_early_is_rejected(live: Live) -> None:
    httpx.post(f"{live.url}/v1/projects", json={"name": "jpegs"}, headers=live.auth)
    good = _jpeg(256)
    scan = good.index(b"\xff\xda")
    sof = good.index(b"\xff\xc0")
    declared = bytearray(good)
    declared[sof + 5 : sof + 9] = (2000).to_bytes(2, "big") * 2  # 2000x2000, data for 256x256
    bad = {
        "cut and re-terminated": good[: len(good) // 2] + b"\xff\xd9",
        "header only": good[: scan + 20] + b"\xff\xd9",
        "declares more pixels": bytes(declared),
        "cut": good[: len(good) // 2],
    }
    files = [("files", (f"{name}.jpg", data, "image/jpeg")) for name, data in bad.items()]
    files.append(("files", ("good.jpg", good, "image/jpeg")))
    r = httpx.post(
        f"{live.url}/v1/projects/jpegs/samples",
        files=files,
        data={"label": "cat"},
        headers=live.auth,
    )
    results = r.raise_for_status().json()["results"]
    assert [x["error_code"] for x in results[:-1]] == [26] * len(bad), results
    assert results[-1]["status"] == "accepted"


def test_labels_per_project_are_capped(live: Live) -> None:
    url = f"{live.url}/v1/projects"
    r = httpx.post(url, json={"name": "many", "labels": ["a", "b", "c", "d"]}, headers=live.auth)
    assert r.status_code == 400 and r.json()["code"] == 21
    httpx.post(url, json={"name": "open"}, headers=live.auth).raise_for_status()
    files = [("files", (f"{i}.png", _png(i), "image/png")) for i in range(5)]
    r = httpx.post(
        f"{url}/open/samples",
        files=files,
        data={"labels": ["l0", "l1", "l2", "l3", "l0"]},
        headers=live.auth,
    )
    results = r.raise_for_status().json()["results"]
    assert [x["status"] for x in results] == ["accepted"] * 3 + ["rejected", "accepted"]
    assert results[3]["error_code"] == 21
    project = httpx.get(f"{url}/open", headers=live.auth).json()
    assert sorted(project["labels"]) == ["l0", "l1", "l2"]
    sample = results[0]["sample_id"]
    r = httpx.patch(f"{url}/open/samples/{sample}", json={"label": "new"}, headers=live.auth)
    assert r.status_code == 400 and r.json()["code"] == 21


def test_host_header_is_never_reflected_and_docs_load_nothing_remote(live: Live) -> None:
    evil = {"Host": "evil.example"}
    for path in ("/v1/projects/", "/docs/", "/v1/", "/redoc/", "/healthz/"):
        r = httpx.get(live.url + path, headers=live.auth | evil, follow_redirects=False)
        assert r.status_code < 300 or r.status_code >= 400, path
        assert "evil.example" not in r.headers.get("location", ""), path
        assert "evil.example" not in r.text, path
    for page in ("/docs", "/redoc"):
        html = httpx.get(live.url + page, headers=evil).text
        assert "evil.example" not in html
        assert "http://" not in html and "https://" not in html, page
        for ref in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/redoc.standalone.js"):
            if ref.rsplit("/", 1)[1].split(".")[0] in html:
                assert httpx.get(live.url + ref).status_code == 200
    assert httpx.get(f"{live.url}/docs/assets/swagger-ui.css").status_code == 200


# --- finding 4: long polls hold no thread ----------------------------------------------------


class HeldToolkit(OnDeviceToolkit):
    """Exports nothing until released: the session stays `preparing`, devices are told to wait.

    It stands in for the TensorFlow export only; every request goes through the real servers
    and the real federated service.
    """

    def __init__(self) -> None:
        self.release = threading.Event()

    def prepare(self, *args: Any, **kwargs: Any) -> Any:
        self.release.wait(120)
        raise RuntimeError("released")

    def republish(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unused")

    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("unused")


@dataclass
class Federated:
    live: Live
    devices: list[str]
    toolkit: HeldToolkit


def start_waiting_session(live: Live, project: str, devices: int) -> Federated:
    """A project whose federated session stays `preparing`, with ``devices`` registered."""
    federated = live.server.container.federated
    assert federated is not None
    toolkit = HeldToolkit()
    federated.toolkit = toolkit
    url = f"{live.url}/v1/projects"
    httpx.post(url, json={"name": project, "labels": ["a", "b"]}, headers=live.auth)
    r = httpx.post(f"{url}/{project}/federated/sessions", json={}, headers=live.auth)
    assert r.status_code == 201, r.text
    ids = []
    with httpx.Client(headers=live.auth) as client:
        for _ in range(devices):
            reg = client.post(f"{url}/{project}/federated/devices", json={"info": {}})
            ids.append(reg.raise_for_status().json()["device_id"])
    return Federated(live, ids, toolkit)


def _latency(call: Callable[[], Any], times: int = 5) -> float:
    worst = 0.0
    for _ in range(times):
        start = time.monotonic()
        call()
        worst = max(worst, time.monotonic() - start)
    return worst


def test_long_polls_hold_no_thread(tmp_path: Path) -> None:
    # 8 gRPC handler threads and anyio's 40 HTTP threads: 60 + 60 long polls used to take
    # them all, and every other call waited for a poll to end.
    server = _start(
        tmp_path,
        grpc_threads=8,
        rate_limit_per_second=0,
        max_streams_per_token=1000,
        max_requests_per_address=1000,
    )
    fed = start_waiting_session(server, "polls", devices=140)
    rest_ids, grpc_ids, stream_ids = fed.devices[:60], fed.devices[60:120], fed.devices[120:]
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    metadata = (("authorization", f"Bearer {server.admin}"),)
    fstub = federated_pb2_grpc.FederatedServiceStub(channel)
    pstub = projects_pb2_grpc.ProjectServiceStub(channel)

    def rest_poll(device: str) -> tuple[str, float]:
        start = time.monotonic()
        r = httpx.get(
            f"{server.url}/v1/projects/polls/federated/task",
            params={"device_id": device, "wait_seconds": 15},
            headers=server.auth,
            timeout=30,
        )
        return r.json()["status"], time.monotonic() - start

    def grpc_poll(device: str) -> tuple[str, float]:
        start = time.monotonic()
        request = federated_pb2.GetTaskRequest(project="polls", device_id=device, wait_seconds=15)
        first = next(iter(fstub.GetTask(request, metadata=metadata, timeout=30)))
        return federated_pb2.TaskStatus.Name(first.header.status), time.monotonic() - start

    try:
        # And 20 Participate streams, waiting for work on the same loop.
        streams = [
            fstub.Participate(
                iter([_participate_start("polls", device)]), metadata=metadata, timeout=60
            )
            for device in stream_ids
        ]
        with ThreadPoolExecutor(max_workers=130) as pool:
            polls = [pool.submit(rest_poll, d) for d in rest_ids]
            polls += [pool.submit(grpc_poll, d) for d in grpc_ids]
            time.sleep(3)  # every poll is waiting now (clients and server share this process)
            early = [p.result() for p in polls if p.done()]
            assert not early, early
            rest_admin = _latency(
                lambda: httpx.get(
                    f"{server.url}/v1/projects", headers=server.auth
                ).raise_for_status()
            )
            grpc_admin = _latency(
                lambda: pstub.ListProjects(
                    projects_pb2.ListProjectsRequest(), metadata=metadata, timeout=10
                )
            )
            health = httpx.get(f"{server.url}/healthz").json()
            results = [p.result(timeout=60) for p in polls]
        assert rest_admin < 1.0, f"admin call took {rest_admin:.2f} s while devices polled"
        assert grpc_admin < 1.0, f"admin call took {grpc_admin:.2f} s while devices polled"
        assert health == {"status": "ok"}, health
        for status, seconds in results:
            assert status.lower().endswith("wait"), status
            assert 14.0 < seconds < 40.0  # each waited its full 15 s on the event loop
        assert all(call.running() for call in streams)
        for call in streams:
            call.cancel()
    finally:
        fed.toolkit.release.set()
        channel.close()
        server.server.stop()


class NumpyToolkit(OnDeviceToolkit):
    """Placeholder files and a numpy head: a session runs real rounds without TensorFlow."""

    def prepare(
        self,
        spec: Any,
        head: dict[str, Any],
        manifest: dict[str, Any],
        base_model: bytes | None,
        seed: int,
    ) -> PreparedFiles:
        formats = (
            ModelFormat.FEATURE_EXTRACTOR,
            ModelFormat.TRAIN_STEP,
            ModelFormat.HEAD_INFERENCE,
            ModelFormat.HEAD_SIGNATURES,
            ModelFormat.FLOAT32,
        )
        return PreparedFiles(
            files={fmt: f"file {fmt.value}".encode() for fmt in formats},
            head=head,
            ondevice={"head": head},
            patch_sites={},
            weights=weights_to_bytes(HeadSpec.from_dict(head).init_weights(seed)),
        )

    def republish(self, templates: Any, patch_sites: Any, head: Any, weights: bytes) -> Any:
        return {ModelFormat.HEAD_WEIGHTS: weights, ModelFormat.FLOAT32: b"float32 " + weights}

    def evaluate(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {"accuracy": 0.5, "loss": 1.0}


def test_participate_streams_take_part_in_rounds_on_the_event_loop(tmp_path: Path) -> None:
    """Task, chunked update and result over Participate (now async) for two devices."""
    server = _start(tmp_path, rate_limit_per_second=0)
    federated = server.server.container.federated
    assert federated is not None
    federated.toolkit = NumpyToolkit()
    url = f"{server.url}/v1/projects"
    spec = {"width": 8, "height": 8, "color_mode": "grayscale"}
    httpx.post(
        url, json={"name": "fl", "labels": ["a", "b"], "input_spec": spec}, headers=server.auth
    )
    r = httpx.post(
        f"{url}/fl/federated/sessions",
        json={"rounds": 1, "min_devices": 2, "min_available_devices": 2},
        headers=server.auth,
    )
    assert r.status_code == 201, r.text
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    metadata = (("authorization", f"Bearer {server.admin}"),)
    stub = federated_pb2_grpc.FederatedServiceStub(channel)

    def device(n: int) -> list[str]:
        outgoing: queue.Queue[Any] = queue.Queue()
        outgoing.put(
            federated_pb2.ParticipateRequest(start=federated_pb2.ParticipateStart(project="fl"))
        )

        def requests() -> Iterator[federated_pb2.ParticipateRequest]:
            while (item := outgoing.get()) is not None:
                yield item

        seen = []
        weights = b""
        for response in stub.Participate(requests(), metadata=metadata, timeout=60):
            kind = response.WhichOneof("payload")
            seen.append(kind)
            if kind == "chunk":
                weights += response.chunk.data
                continue
            if kind == "task" and response.task.status == federated_pb2.TASK_STATUS_TASK:
                weights = response.task.weights
            if kind == "task" and response.task.status == federated_pb2.TASK_STATUS_FINISHED:
                break
            if kind == "update_result":
                seen.append("accepted" if response.update_result.accepted else "rejected")
                continue
            if kind != "task" or response.task.status != federated_pb2.TASK_STATUS_TASK:
                continue
            if len(weights) < len(response.task.weights) or not weights:
                continue
            task = response.task
            update = federated_pb2.UpdateHeader(
                session_id=task.session_id,
                round=task.task.round,
                num_samples=10 + n,
                weights_size=len(weights),
            )
            outgoing.put(federated_pb2.ParticipateRequest(update=update))
            for offset in range(0, len(weights), 100):
                chunk = federated_pb2.WeightsChunk(
                    offset=offset, data=weights[offset : offset + 100]
                )
                outgoing.put(federated_pb2.ParticipateRequest(chunk=chunk))
        outgoing.put(None)
        return seen

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(device, range(2)))
        for seen in results:
            assert seen[0] == "registered"
            assert "accepted" in seen, seen
            assert seen[-1] == "task"  # the final "finished"
        rounds = httpx.get(
            f"{server.url}/v1/federated/sessions/{r.json()['id']}/rounds", headers=server.auth
        ).json()["rounds"]
        assert len(rounds) == 1 and rounds[0]["closed_at"] is not None, rounds
        result = rounds[0]["result"]
        assert sorted(result["accepted"].values()) == [10, 11] and not result["rejected"], result
    finally:
        channel.close()
        server.server.stop()


def _participate_start(project: str, device: str) -> federated_pb2.ParticipateRequest:
    return federated_pb2.ParticipateRequest(
        start=federated_pb2.ParticipateStart(project=project, device_id=device)
    )


def test_health_is_degraded_while_a_thread_pool_is_saturated(tmp_path: Path) -> None:
    # Client streams of synchronous servicers (UploadSamples) hold a handler thread while the
    # client is silent: two silent uploads fill a pool of two.
    server = _start(tmp_path, grpc_threads=2, rate_limit_per_second=0)
    httpx.post(f"{server.url}/v1/projects", json={"name": "busy"}, headers=server.auth)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    metadata = (("authorization", f"Bearer {server.admin}"),)
    stub = datasets_pb2_grpc.DatasetServiceStub(channel)
    silent = threading.Event()

    def stalled() -> Iterator[datasets_pb2.UploadSamplesRequest]:
        silent.wait(60)
        return
        yield  # a generator that sends nothing until released

    calls = []
    try:
        assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}
        calls = [stub.UploadSamples.future(stalled(), metadata=metadata) for _ in range(2)]
        deadline = time.monotonic() + 10
        health: dict[str, Any] = {}
        while time.monotonic() < deadline:
            health = httpx.get(f"{server.url}/healthz").json()
            if health["status"] == "degraded":
                break
            time.sleep(0.1)
        assert health["status"] == "degraded", health
        assert any("gRPC handler threads saturated" in r for r in health["reasons"]), health
        silent.set()
        deadline = time.monotonic() + 10
        while httpx.get(f"{server.url}/healthz").json()["status"] != "ok":
            assert time.monotonic() < deadline, "health stayed degraded"
            time.sleep(0.1)
    finally:
        silent.set()
        for call in calls:
            call.cancel()
        channel.close()
        server.server.stop()


# --- the limits never cut what they are not for ------------------------------------------------


def test_a_whole_request_in_one_read_is_not_counted_as_head() -> None:
    """A 120 KB request already waiting in the socket when the server reads: one read holds its
    whole head and body, and none of the body may count against the 64 KiB head cap (it was
    refused with 431 when the body was counted)."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body", False):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    body = b"x" * 120_000
    request = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    client, server_side = socket.socketpair()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    server_side.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    client.sendall(request)  # all of it is queued before the server's first read

    async def serve_one() -> bytes:
        loop = asyncio.get_running_loop()
        config = uvicorn.Config(app, lifespan="off", log_level="warning")
        protocol = header_limited_protocol(64 * 1024)
        state = ServerState()
        await loop.connect_accepted_socket(
            lambda: protocol(config=config, server_state=state, app_state={}), sock=server_side
        )
        client.setblocking(False)
        return await loop.sock_recv(client, 65536)

    try:
        answer = asyncio.run(asyncio.wait_for(serve_one(), 10))
    finally:
        client.close()
        server_side.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]


def test_a_response_stream_outlives_the_body_idle_timeout(live: Live) -> None:
    """An SSE watch waits on ``receive()`` for the client's disconnect for as long as it runs;
    the slow-body cut (1 s here) is for bodies still arriving, never for that wait."""
    container = live.server.container
    project = container.projects.create("sse-idle")
    job = container.store.create_job(
        Job(
            id=str(uuid.uuid4()),
            project_id=project.id,
            state=JobState.RUNNING,
            hyperparameters=Hyperparameters(epochs=2),
            created_at=datetime.now(UTC),
            attempts=1,
        )
    )
    lines: list[str] = []
    with (
        httpx.Client(base_url=live.url, headers=live.auth, timeout=15) as client,
        client.stream("GET", f"/v1/jobs/{job.id}/events") as response,
    ):
        assert response.status_code == 200
        time.sleep(3)  # three idle timeouts with nothing on the stream
        container.store.append_event(job.id, EventKind.LOG, {"message": "still here"})
        for line in response.iter_lines():
            lines.append(line)
            if "still here" in line:
                break
    assert any("still here" in line for line in lines)
