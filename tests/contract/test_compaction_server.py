"""Through a real server: deleted samples' bytes leave the disk by themselves; files are 0600.

The server runs in this process with its compaction loop on a short interval; the client
uploads over gRPC, deletes over REST, and the test reads every file of the data folder.
"""

from __future__ import annotations

import io
import os
import stat
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from mobiletrain.client.sdk import Client, LocalSample
from mobiletrain.config import Settings
from mobiletrain.server import start_server


def _noise_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _files_containing(root: Path, data: bytes) -> list[str]:
    return [p.name for p in root.rglob("*") if p.is_file() and data in p.read_bytes()]


def test_server_compacts_deleted_samples_away_and_keeps_files_owner_only(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old_umask = os.umask(0o022)  # a usual umask: the server must not rely on it
    running = start_server(
        Settings(
            data_dir=data_dir,
            grpc_port=0,
            http_port=0,
            compaction_interval_seconds=0.5,
            compaction_grace_seconds=0.2,
        )
    )
    try:
        token = (data_dir / "admin-token").read_text().strip()
        client = Client(f"127.0.0.1:{running.grpc_port}", token=token)
        http = httpx.Client(
            base_url=f"http://127.0.0.1:{running.http_port}/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        client.create_project("gone", labels=["a", "b"], width=24, height=24)
        images = {f"s{i}": _noise_png(i) for i in range(12)}
        report = client.upload(
            "gone", [LocalSample(cid, "ab"[i % 2], d) for i, (cid, d) in enumerate(images.items())]
        )
        assert report.accepted == 12
        listed = http.get("/projects/gone/samples", params={"page_size": 100}).json()["samples"]
        by_client = {s["client_id"]: s for s in listed}
        deleted = [f"s{i}" for i in range(0, 12, 2)]
        for cid in deleted:
            r = http.delete(f"/projects/gone/samples/{by_client[cid]['id']}")
            assert r.status_code == 204
        blobs_dir = data_dir / "blobs"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not any(_files_containing(blobs_dir, images[cid]) for cid in deleted):
                break
            time.sleep(0.2)
        for cid in deleted:
            assert _files_containing(blobs_dir, images[cid]) == [], f"{cid} still on disk"
        for cid, data in images.items():
            if cid in deleted:
                continue
            r = http.get(f"/projects/gone/samples/{by_client[cid]['id']}/data")
            assert r.status_code == 200 and r.content == data
        # Uploads keep working after the server's own pack was sealed and compacted.
        more = client.upload("gone", [LocalSample("late", "a", _noise_png(99))])
        assert more.accepted == 1
        client.close()
        http.close()
    finally:
        running.stop()
        os.umask(old_umask)

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    assert mode(data_dir) == 0o700
    assert mode(data_dir / "mobiletrain.db") == 0o600
    assert mode(data_dir / "admin-token") == 0o600
    assert mode(blobs_dir) == 0o700 and mode(blobs_dir / "packs") == 0o700
    packs = list((blobs_dir / "packs").glob("*.pack"))
    assert packs and all(mode(p) == 0o600 for p in packs)
