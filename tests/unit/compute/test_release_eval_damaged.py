"""A damaged member of the fixed evaluation set is left out of the gate's evaluation, named in a
warning, and never fails the job (as training does with its own damaged samples)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mobiletrain.compute.release_step import _eval_data
from mobiletrain.compute.sample_bytes import BlobSampleBytes
from mobiletrain.core.types import ColorMode, InputSpec, Sample
from mobiletrain.store.blobs import LocalPackBlobStore


def _png(value: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _sample(i: int, sha: str, size: int, *, damaged: bool = False) -> Sample:
    return Sample(
        id=f"s{i}",
        project_id="p",
        client_id=f"c{i}",
        label=f"l{i % 2}",
        sha256=sha,
        size=size,
        media_type="image/png",
        width=8,
        height=8,
        created_at=datetime.now(UTC),
        in_eval_set=True,
        damaged=damaged,
    )


def test_missing_and_marked_members_are_skipped_not_fatal(tmp_path: Path) -> None:
    blobs = LocalPackBlobStore(tmp_path / "blobs")
    stored = [_png(10 * i) for i in range(4)]
    samples = [_sample(i, blobs.put(data), len(data)) for i, data in enumerate(stored)]
    blobs.sync()
    samples.append(_sample(4, "ab" * 32, 10))  # bytes never stored: "missing"
    samples[1].damaged = True  # marked by fsck --repair
    spec = InputSpec(width=8, height=8, color_mode=ColorMode.GRAYSCALE)

    evalset, skipped = _eval_data(blobs, spec, samples)

    assert {(s.client_id, why) for s, why in skipped} == {
        ("c1", "marked damaged"),
        ("c4", "missing"),
    }
    # The gate keeps the stored bytes (each task kind decodes its own), only the good members'.
    assert evalset.samples == [stored[0], stored[2], stored[3]]
    assert evalset.labels == ["l0", "l0", "l1"]
    assert evalset.info.num_samples == 3
    blobs.close()


def test_a_streamed_evaluation_set_checks_every_member_and_reads_lazily(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As large as a streamed training job (compute/streaming.py), the set keeps digests only."""
    monkeypatch.setenv("MOBILETRAIN_TRAIN_STREAMING", "always")
    blobs = LocalPackBlobStore(tmp_path / "blobs")
    stored = [_png(i % 256) + bytes(i // 256) for i in range(300)]  # > one check chunk
    samples = [_sample(i, blobs.put(data), len(data)) for i, data in enumerate(stored)]
    blobs.sync()
    samples[270] = _sample(270, "cd" * 32, 10)  # missing
    spec = InputSpec(width=8, height=8, color_mode=ColorMode.GRAYSCALE)

    evalset, skipped = _eval_data(blobs, spec, samples)

    assert [(s.client_id, why) for s, why in skipped] == [("c270", "missing")]
    assert isinstance(evalset.samples, BlobSampleBytes)
    assert list(evalset.samples) == stored[:270] + stored[271:]
    assert evalset.info.num_samples == 299
    blobs.close()
