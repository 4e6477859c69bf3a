"""What the local pack store's durability costs: puts with an fsync per batch, the start-up scan,
and a compaction pass.

    python scripts/pack_cost.py [--samples 20000] [--size 20000] [--batch 64] [--dir DIR]

Writes into a temporary folder (or ``--dir``, to measure another disk) and prints one line per
figure.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from mobiletrain.store.blobs import LocalPackBlobStore
from mobiletrain.store.compaction import compact_packs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=20_000, help="bytes per sample")
    parser.add_argument("--batch", type=int, default=64, help="puts per fsync")
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp) / "blobs"
        store = LocalPackBlobStore(root, pack_limit=64 * 1024 * 1024)
        payloads = [os.urandom(args.size) for _ in range(256)]
        keys = []
        start = time.perf_counter()
        for i in range(args.samples):
            # A distinct blob each time: a counter prefix over a pool of random payloads.
            keys.append(store.put(i.to_bytes(8, "big") + payloads[i % 256]))
            if (i + 1) % args.batch == 0:
                store.sync()
        store.sync()
        took = time.perf_counter() - start
        total = args.samples * (args.size + 8)
        print(
            f"put + fsync per {args.batch}: {args.samples / took:,.0f} samples/s, "
            f"{total / took / 1e6:,.1f} MB/s ({args.samples} x {args.size} B)"
        )
        store.close()

        start = time.perf_counter()
        reopened = LocalPackBlobStore(root)
        took = time.perf_counter() - start
        print(f"start-up scan: {args.samples / took:,.0f} records/s ({took * 1000:.0f} ms)")

        live = set(keys[1::2])  # half the samples deleted
        start = time.perf_counter()
        report = compact_packs(reopened, lambda: live, grace_s=0)
        took = time.perf_counter() - start
        print(
            f"compaction, half deleted: {report.bytes_before / took / 1e6:,.1f} MB/s of packs "
            f"read, {report.bytes_freed / 1e6:,.1f} MB freed in {took:.2f} s"
        )


if __name__ == "__main__":
    main()
