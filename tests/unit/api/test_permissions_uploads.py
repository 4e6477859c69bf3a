"""Quota and lifetime for every byte a client can park in a resumable upload (issue 13,
finding 3), against a real server: open uploads reserve their declared size in the project's
byte quota, belong to the token that opened them, expire, and are deleted (rows, and with them
every reference to their chunks, so pack compaction reclaims the bytes) when finished, rejected,
aborted or expired.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from mobiletrain.client.sdk import Client
from mobiletrain.config import Settings
from mobiletrain.core.errors import ErrorCode
from mobiletrain.server import RunningServer, start_server

QUOTA = 10_000
TTL_SECONDS = 2.0


@dataclass
class Env:
    server: RunningServer
    http: str
    admin: str
    phone: dict[str, str]
    other: dict[str, str]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with contextlib.redirect_stdout(io.StringIO()):
        server = start_server(
            Settings(
                data_dir=tmp_path / "data",
                grpc_port=0,
                http_port=0,
                max_workers=0,
                max_bytes_per_project=QUOTA,
                upload_ttl_hours=TTL_SECONDS / 3600,
            )
        )
    try:
        server.container.uploads.sweep_interval = 0.0  # sweep on every open, for the test
        admin = (tmp_path / "data" / "admin-token").read_text().strip()
        with Client(f"127.0.0.1:{server.grpc_port}", token=admin) as client:
            client.create_project("pets", labels=["cat"], width=8, height=8)
            phone = client.create_token("device", "pets", "phone")[1]
            other = client.create_token("device", "pets", "other")[1]
        yield Env(
            server,
            f"http://127.0.0.1:{server.http_port}",
            admin,
            {"Authorization": f"Bearer {phone}"},
            {"Authorization": f"Bearer {other}"},
        )
    finally:
        server.stop()


def _open(env: Env, client_id: str, size: int, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{env.http}/v1/projects/pets/uploads",
        json={"client_id": client_id, "label": "cat", "size": size},
        headers=headers,
    )


def test_open_uploads_count_against_the_byte_quota(env: Env) -> None:
    first = _open(env, "big-1", 6_000, env.phone)
    assert first.status_code == 201, first.text
    # 6,000 reserved + 6,000 more > 10,000: refused before a byte is sent, whoever asks.
    for headers in (env.phone, env.other):
        r = _open(env, "big-2", 6_000, headers)
        assert (r.status_code, r.json()["code"]) == (429, ErrorCode.QUOTA_EXCEEDED.number)
    assert _open(env, "small", 4_000, env.other).status_code == 201  # what is left fits
    # Aborting gives the reservation back.
    upload_id = first.json()["id"]
    assert httpx.delete(f"{env.http}/v1/uploads/{upload_id}", headers=env.phone).status_code == 204
    assert _open(env, "big-2", 6_000, env.other).status_code == 201


def test_an_upload_belongs_to_the_token_that_opened_it(env: Env) -> None:
    upload_id = _open(env, "mine", 100, env.phone).json()["id"]
    for method, kwargs in (
        ("GET", {}),
        ("PATCH", {"content": b"x" * 10, "headers": {"Upload-Offset": "0"}}),
        ("DELETE", {}),
    ):
        headers = {**env.other, **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        r = httpx.request(method, f"{env.http}/v1/uploads/{upload_id}", headers=headers, **kwargs)
        assert (r.status_code, r.json()["code"]) == (404, ErrorCode.UPLOAD_NOT_FOUND.number)
    # Nor can another device reuse its client id to read or replace it.
    r = _open(env, "mine", 200, env.other)
    assert (r.status_code, r.json()["code"]) == (409, ErrorCode.ALREADY_EXISTS.number)
    assert httpx.get(f"{env.http}/v1/uploads/{upload_id}", headers=env.phone).status_code == 200


def test_rejected_and_expired_uploads_are_deleted_with_their_chunk_references(env: Env) -> None:
    store = env.server.container.store
    # A rejected sample (not an image): the session goes at once, its chunk is unreferenced.
    upload_id = _open(env, "junk", 100, env.phone).json()["id"]
    r = httpx.patch(
        f"{env.http}/v1/uploads/{upload_id}",
        content=b"\x01" * 100,
        headers={**env.phone, "Upload-Offset": "0"},
    )
    assert r.status_code == 200 and r.json()["result"]["status"] == "rejected", r.text
    assert store.get_upload(upload_id) is None
    # An abandoned upload: after the TTL it is gone for the client at once, and its row and
    # chunk references are swept by the next open.
    stale = _open(env, "stale", 9_000, env.phone).json()["id"]
    r = httpx.patch(
        f"{env.http}/v1/uploads/{stale}",
        content=b"\x02" * 1_000,
        headers={**env.phone, "Upload-Offset": "0"},
    )
    assert r.status_code == 200, r.text
    chunk = store.get_upload(stale).chunks[0]  # type: ignore[union-attr]
    assert chunk in store.referenced_blobs()
    time.sleep(TTL_SECONDS + 0.5)
    r = httpx.get(f"{env.http}/v1/uploads/{stale}", headers=env.phone)
    assert (r.status_code, r.json()["code"]) == (404, ErrorCode.UPLOAD_NOT_FOUND.number)
    assert store.get_upload(stale) is not None  # not swept yet: nothing opened since
    # The expired reservation no longer counts: 9,000 fits again, and this open sweeps.
    assert _open(env, "fresh", 9_000, env.phone).status_code == 201
    assert store.get_upload(stale) is None
    assert chunk not in store.referenced_blobs()  # compaction may now drop the bytes


def test_grpc_chunked_samples_drop_their_session_once_ingested(env: Env) -> None:
    import grpc

    from mobiletrain._proto.mobiletrain.v1 import datasets_pb2, datasets_pb2_grpc

    store, project = env.server.container.store, env.server.container.projects
    project_id = project.store.get_project_by_name("pets").id  # type: ignore[union-attr]
    requests = [
        datasets_pb2.UploadSamplesRequest(
            project="pets",
            header=datasets_pb2.SampleHeader(client_id="junk-grpc", label="cat", size=300),
        ),
        datasets_pb2.UploadSamplesRequest(
            chunk=datasets_pb2.SampleChunk(client_id="junk-grpc", offset=0, data=b"\x03" * 300)
        ),
    ]
    token = env.phone["Authorization"]
    with grpc.insecure_channel(f"127.0.0.1:{env.server.grpc_port}") as channel:
        reply = datasets_pb2_grpc.DatasetServiceStub(channel).UploadSamples(
            iter(requests), metadata=[("authorization", token)], timeout=20
        )
    assert reply.results[0].error_code != 0  # not an image: rejected
    # Its session is gone at once, not held (with its quota reservation) until it expires.
    assert store.find_upload(project_id, "junk-grpc") is None
    assert store.pending_upload_bytes(project_id, datetime.now(UTC)) == 0
