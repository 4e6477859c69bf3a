"""The Node.js example (examples/node/client.mjs, @grpc/grpc-js) against a real server.

The example is written from the .proto files alone; this runs it end to end: token as call
metadata, idempotent upload, CLIENT_ID_CONFLICT (34), the error-code trailer, and a resumed,
SHA-256-checked download of a model version. Its npm packages come from ``npm ci`` in
examples/node (the ``examples`` target of the Makefile, which ``make test`` depends on).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobiletrain.config import Settings
from mobiletrain.core.types import Artifact, InputSpec, ModelFormat, ModelVersion
from mobiletrain.server import start_server

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "node"


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 255, (24, 24, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def test_node_example_runs_the_loop(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed")
    assert (EXAMPLE / "node_modules" / "@grpc" / "grpc-js").is_dir(), (
        "run `make examples` (npm ci in examples/node) first"
    )
    images = tmp_path / "images"
    for i in range(6):
        label = ("rose", "tulip")[i % 2]
        (images / label).mkdir(parents=True, exist_ok=True)
        (images / label / f"{i}.png").write_bytes(_png(i))

    data_dir = tmp_path / "data"
    server = start_server(Settings(data_dir=data_dir, grpc_port=0, http_port=0, max_workers=0))
    try:
        token = (data_dir / "admin-token").read_text().strip()
        env = {**os.environ, "MOBILETRAIN_TOKEN": token}
        command = [
            node,
            str(EXAMPLE / "client.mjs"),
            "--server",
            f"127.0.0.1:{server.grpc_port}",
            "--project",
            "flowers",
            "--images",
            str(images),
        ]

        def run() -> dict[str, object]:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=120, check=False
            )
            assert done.returncode == 0, done.stderr
            result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
            return result

        first = run()
        assert first["upload"] == {"accepted": 6, "duplicates": 0, "rejected": 0}
        assert first["retry"] == {"accepted": 0, "duplicates": 6, "rejected": 0}
        assert first["conflict"] == [{"status": "SAMPLE_STATUS_REJECTED", "error_code": 34}]
        assert first["error"] == {"status": "NOT_FOUND", "error_code": 10}
        assert first["download"] == {"error_code": 53}  # no model yet

        # A model version (its bytes in the real blob store) for the download part.
        container = server.container
        project = container.projects.get("flowers")
        model = np.random.default_rng(1).bytes(600_000)
        artifact = Artifact(
            format=ModelFormat.FLOAT32, sha256=container.blobs.put(model), size=len(model)
        )
        container.blobs.sync()
        spec = InputSpec.from_dict(
            {"width": 24, "height": 24, "color_mode": "rgb", "normalization": "zero-one"}
        )
        container.store.create_model_version(
            ModelVersion(
                project_id=project.id,
                version=0,
                job_id=str(uuid.uuid4()),
                created_at=datetime.now(UTC),
                metrics={"accuracy": 0.9},
                manifest={"labels": ["rose", "tulip"], "input_spec": spec.to_dict()},
                artifacts={ModelFormat.FLOAT32: artifact},
            )
        )
        second = run()
        assert second["upload"] == {"accepted": 0, "duplicates": 6, "rejected": 0}
        download = second["download"]
        assert isinstance(download, dict)
        assert download["size"] == len(model)
        assert download["sha256"] == hashlib.sha256(model).hexdigest()
        assert 0 < download["resumedAt"] < len(model)  # it really resumed mid-file
    finally:
        server.stop()
