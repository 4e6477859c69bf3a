"""Detection samples against a real server, beyond what the parity suite compares (issue 21):
an open label set learning box labels (never ``_no_boxes_``), a chunked upload carrying its
boxes in the header, a client id reused with other boxes, a device reading its own detection
samples and the REST sample JSON of other task kinds."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from PIL import Image

from mobiletrain.client.sdk import Box, Client, LocalSample, boxes_from_proto
from mobiletrain.config import Settings
from mobiletrain.server import RunningServer, start_server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, str]]:
    data = tmp_path_factory.mktemp("detection-samples")
    with contextlib.redirect_stdout(io.StringIO()):
        server = start_server(Settings(data_dir=data, grpc_port=0, http_port=0))
    try:
        yield server, (data / "admin-token").read_text().strip()
    finally:
        server.stop()


def _png(seed: int, side: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_open_label_sets_learn_box_labels_and_chunks_carry_boxes(
    running: tuple[RunningServer, str],
) -> None:
    server, admin = running
    with Client(f"127.0.0.1:{server.grpc_port}", token=admin) as c:
        c.create_project("open", task="detection", width=32, height=32)
        big = _png(1, 640)  # noise PNG over 1 MiB: sent as a chunked sample
        assert len(big) > 1024 * 1024
        boxes = [Box("fox", 0.1, 0.1, 0.4, 0.4), Box("owl", 0.5, 0.5, 0.9, 0.9)]
        report = c.upload(
            "open",
            [
                LocalSample("big", "ignored", big, boxes),
                LocalSample("empty", "", _png(2), []),
                LocalSample("unboxed", "", _png(3)),  # no boxes sent: an image without boxes
            ],
        )
        assert (report.accepted, report.rejected) == (3, 0), report.rejections
        assert c.get_project("open").labels == ["fox", "owl"]
        by_id = {s.client_id: s for s in c.samples("open")}
        assert by_id["big"].label == "fox" and boxes_from_proto(by_id["big"].boxes) == boxes
        assert by_id["empty"].label == by_id["unboxed"].label == "_no_boxes_"
        assert by_id["unboxed"].detection and not by_id["unboxed"].boxes
        assert c.box_counts("open") == ({"fox": 1, "owl": 1}, 2)
        # An edit with a new label grows the set; the derived label follows the majority.
        hare = [Box("hare", 0.0, 0.0, 0.5, 0.5), Box("hare", 0.5, 0.5, 1.0, 1.0)]
        edited = c.update_boxes("open", by_id["empty"].id, [*hare, Box("owl", 0.2, 0.2, 0.3, 0.3)])
        assert edited.label == "hare"
        assert c.get_project("open").labels == ["fox", "owl", "hare"]
        assert "_no_boxes_" not in c.get_project("open").labels
        # The same client id with the same bytes but other boxes: a conflict, nothing changed.
        again = c.upload("open", [LocalSample("empty", "", _png(2), [])])
        assert again.rejected == 1 and again.rejections is not None
        assert again.rejections[0][1] == 34 and "other boxes" in again.rejections[0][2]
        assert c.box_counts("open") == ({"fox": 1, "owl": 2, "hare": 2}, 1)


def test_rest_sample_json_and_device_reads(running: tuple[RunningServer, str]) -> None:
    server, admin = running
    base = f"http://127.0.0.1:{server.http_port}/v1"
    with Client(f"127.0.0.1:{server.grpc_port}", token=admin) as c:
        c.create_project("plain-img", labels=["a"], width=32, height=32)
        c.upload("plain-img", [LocalSample("p", "a", _png(5))])
        c.create_project("dev-det", task="detection", width=32, height=32, labels=["cat"])
        device = c.create_token("device", "dev-det", "phone")[1]
    auth = {"Authorization": f"Bearer {admin}"}
    rows = httpx.get(f"{base}/projects/plain-img/samples", headers=auth).json()["samples"]
    assert rows[0]["boxes"] is None  # not a detection sample
    counts = httpx.get(f"{base}/projects/plain-img/class-counts", headers=auth).json()
    assert "box_counts" not in counts and "images_without_boxes" not in counts
    # A device uploads a detection image over REST and reads it back with its boxes; it may
    # not change them (administrators label).
    phone = {"Authorization": f"Bearer {device}"}
    box = {"label": "cat", "x_min": 0.25, "y_min": 0.25, "x_max": 0.75, "y_max": 0.75}
    up = httpx.post(
        f"{base}/projects/dev-det/samples",
        headers=phone,
        files=[("files", ("x.png", _png(6), "image/png"))],
        data={"boxes": json.dumps([box])},
    ).json()
    assert up["accepted"] == 1, up
    sample = httpx.get(
        f"{base}/projects/dev-det/samples/{up['results'][0]['sample_id']}", headers=phone
    ).json()
    assert sample["boxes"] == [box] and sample["label"] == "cat"
    assert up["results"][0]["client_id"].startswith("sha256:")
    put = httpx.put(
        f"{base}/projects/dev-det/samples/{sample['id']}/boxes", headers=phone, json={"boxes": []}
    )
    assert put.status_code == 403 and put.json()["code"] == 61
    # A malformed body is INVALID_ANNOTATION, not a bare validation error.
    bad = httpx.put(
        f"{base}/projects/dev-det/samples/{sample['id']}/boxes", headers=auth, json=[box]
    )
    assert bad.status_code == 400 and bad.json()["code"] == 120, bad.text
