"""What integrity checks cost: ``mobiletrain fsck`` (reads and hashes every blob) and the
server's start-up quick check (existence only), on local packs and SQLite; and the free-space
check an upload pays.

    python scripts/fsck_cost.py [--samples 20000] [--size 20000] [--dir DIR]

Writes into a temporary folder (or ``--dir``, to measure another disk) and prints one line per
figure. The page cache is warm (the blobs were just written), as on a server that runs.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from mobiletrain.core.integrity import check_integrity
from mobiletrain.core.storage import SpaceGuard
from mobiletrain.core.types import InputSpec, Project, Sample, TaskType
from mobiletrain.store.blobs import LocalPackBlobStore
from mobiletrain.store.sql import SqlMetadataStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=20_000, help="bytes per sample")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        store = SqlMetadataStore(f"sqlite:///{root / 'meta.db'}")
        blobs = LocalPackBlobStore(root / "blobs", pack_limit=64 * 1024 * 1024)
        project = store.create_project(
            Project(
                id=str(uuid.uuid4()),
                name="cost",
                task=TaskType.IMAGE_CLASSIFICATION,
                labels=[],
                labels_fixed=False,
                input_spec=InputSpec(32, 32),
                created_at=datetime.now(UTC),
            )
        )
        payloads = [os.urandom(args.size) for _ in range(256)]
        batch: list[Sample] = []
        for i in range(args.samples):
            sha = blobs.put(i.to_bytes(8, "big") + payloads[i % 256])
            batch.append(
                Sample(
                    id=str(uuid.uuid4()),
                    project_id=project.id,
                    client_id=f"s{i}",
                    label=f"l{i % 10}",
                    sha256=sha,
                    size=args.size + 8,
                    media_type="image/png",
                    width=32,
                    height=32,
                    created_at=datetime.now(UTC),
                )
            )
            if len(batch) == 500:
                blobs.sync()
                store.add_samples(batch)
                batch = []
        blobs.sync()
        store.add_samples(batch)
        blobs.close()
        megabytes = args.samples * args.size / 1e6

        blobs = LocalPackBlobStore(root / "blobs")
        started = time.perf_counter()
        quick = check_integrity(store, blobs, full=False)
        quick_s = time.perf_counter() - started
        started = time.perf_counter()
        full = check_integrity(store, blobs, full=True)
        full_s = time.perf_counter() - started
        assert not quick.damaged and not full.damaged
        print(
            f"start-up quick check: {args.samples} samples in {quick_s:.2f} s "
            f"({args.samples / quick_s:,.0f} samples/s)"
        )
        print(
            f"fsck (read + sha256 of every blob): {full_s:.2f} s, "
            f"{args.samples / full_s:,.0f} samples/s, {megabytes / full_s:,.0f} MB/s"
        )

        guard = SpaceGuard([root], 256, 5)
        guard.check()
        started = time.perf_counter()
        for _ in range(100_000):
            guard.check()
        per_call = (time.perf_counter() - started) / 100_000
        guard.ttl = 0.0  # no cache: one statvfs per check
        started = time.perf_counter()
        for _ in range(10_000):
            guard.check()
        uncached = (time.perf_counter() - started) / 10_000
        print(
            f"free-space check per upload: {per_call * 1e6:.2f} µs cached, "
            f"{uncached * 1e6:.1f} µs with a statvfs"
        )
        store.close()


if __name__ == "__main__":
    main()
