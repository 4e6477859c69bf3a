"""Resumable uploads of large samples: REST (tus-like) and gRPC (header + chunks from an offset).

The upload state lives in the metadata store and the chunks in the blob store, so it survives
a dropped connection and a server restart.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mobiletrain._proto.mobiletrain.v1 import datasets_pb2
from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.config import Settings
from mobiletrain.server import start_server

CHUNK = 256 * 1024


@pytest.fixture(scope="module")
def big_png() -> bytes:
    """A noisy PNG of about 2 MiB (noise does not compress)."""
    rng = np.random.default_rng(7)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (830, 830, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _server(data_dir: Path) -> tuple[object, str, str, str]:
    server = start_server(Settings(data_dir=data_dir, grpc_port=0, http_port=0))
    token = (data_dir / "admin-token").read_text().strip()
    return server, f"127.0.0.1:{server.grpc_port}", f"http://127.0.0.1:{server.http_port}", token


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path / "data"


def test_rest_upload_resumes_after_errors_and_a_restart(data_dir: Path, big_png: bytes) -> None:
    server, address, http, token = _server(data_dir)
    headers = {"Authorization": f"Bearer {token}"}
    sha = hashlib.sha256(big_png).hexdigest()
    body = {"client_id": "photo-1", "label": "cat", "size": len(big_png), "sha256": sha}
    try:
        with Client(address, token=token) as c:
            c.create_project("pets")
        opened = httpx.post(f"{http}/v1/projects/pets/uploads", json=body, headers=headers)
        assert opened.status_code == 201, opened.text
        upload = opened.json()
        assert (upload["offset"], upload["complete"]) == (0, False)
        url = f"{http}/v1/uploads/{upload['id']}"

        def patch(offset: int, data: bytes, checksum: bytes | None = None) -> httpx.Response:
            h = {**headers, "Upload-Offset": str(offset)}
            if checksum is not None:
                h["Upload-Checksum"] = "sha256 " + base64.b64encode(checksum).decode()
            return httpx.patch(url, content=data, headers=h)

        first = big_png[:CHUNK]
        r = patch(0, first, hashlib.sha256(first).digest())
        assert r.status_code == 200 and r.json()["offset"] == CHUNK
        # A wrong offset is a conflict that names the right one.
        r = patch(0, first)
        assert (r.status_code, r.json()["code"]) == (409, 80)
        assert r.json()["details"]["offset"] == CHUNK
        # A chunk whose checksum does not match is discarded.
        second = big_png[CHUNK : 2 * CHUNK]
        r = patch(CHUNK, second, hashlib.sha256(b"other bytes").digest())
        assert (r.status_code, r.json()["code"]) == (400, 81)
        assert httpx.head(url, headers=headers).headers["upload-offset"] == str(CHUNK)
    finally:
        server.stop()  # type: ignore[attr-defined]

    # The server restarts: the upload is where it was.
    server, address, http, token = _server(data_dir)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        again = httpx.post(f"{http}/v1/projects/pets/uploads", json=body, headers=headers).json()
        assert (again["id"], again["offset"]) == (upload["id"], CHUNK)
        url = f"{http}/v1/uploads/{upload['id']}"  # the new server's port
        offset = CHUNK
        result = None
        while offset < len(big_png):
            chunk = big_png[offset : offset + CHUNK]
            r = httpx.patch(
                url,
                content=chunk,
                headers={**headers, "Upload-Offset": str(offset)},
            )
            assert r.status_code == 200, r.text
            offset = r.json()["offset"]
            result = r.json()["result"]
        assert result is not None and result["status"] == "accepted"
        done = httpx.post(f"{http}/v1/projects/pets/uploads", json=body, headers=headers).json()
        assert done["complete"] and done["id"] is None
        r = httpx.get(url, headers=headers)
        assert (r.status_code, r.json()["code"]) == (404, 82)
        counts = httpx.get(f"{http}/v1/projects/pets/class-counts", headers=headers).json()
        assert counts["total"] == 1
        stored = httpx.get(f"{http}/v1/projects/pets/samples", headers=headers).json()
        assert stored["samples"][0]["sha256"] == sha
    finally:
        server.stop()  # type: ignore[attr-defined]


def test_grpc_chunked_sample_resumes_from_the_server_offset(data_dir: Path, big_png: bytes) -> None:
    server, address, _http, token = _server(data_dir)
    try:
        with Client(address, token=token) as c:
            c.create_project("pets")
            header = datasets_pb2.SampleHeader(
                client_id="big", label="cat", size=len(big_png),
                sha256=hashlib.sha256(big_png).hexdigest(),
            )  # fmt: skip
            # A stream that breaks off after two chunks ...
            partial = [datasets_pb2.UploadSamplesRequest(project="pets", header=header)] + [
                datasets_pb2.UploadSamplesRequest(
                    chunk=datasets_pb2.SampleChunk(
                        client_id="big", offset=o, data=big_png[o : o + CHUNK]
                    )
                )
                for o in (0, CHUNK)
            ]
            reply = c.datasets.UploadSamples(iter(partial))
            assert reply.results[0].status == datasets_pb2.SAMPLE_STATUS_REJECTED
            assert "resume from offset" in reply.results[0].reason
            status = c.upload_offset("pets", "big")
            assert (status.offset, status.size, status.stored) == (2 * CHUNK, len(big_png), False)
            # ... and the SDK sends only the rest.
            report = c.upload("pets", [LocalSample("big", "cat", big_png)])
            assert report.accepted == 1
            assert c.upload_offset("pets", "big").stored
            again = c.upload("pets", [LocalSample("big", "cat", big_png)])
            assert (again.accepted, again.duplicates) == (0, 1)
            assert c.class_counts("pets") == {"cat": 1}
    finally:
        server.stop()  # type: ignore[attr-defined]
