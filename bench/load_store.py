"""The store's write path under concurrent uploaders: SQLite group commit against per-call commits.

``python bench/load_store.py [--threads 8 64] [--calls 320]``

What one upload call does to the stores, from many threads of one process at once (as the gRPC
handler threads do): put 5 small blobs, ``sync()`` the packs, ``add_samples`` the 5 rows; while a
thread appends a progress event every 20 ms. Two modes in the same run, on fresh SQLite files
(WAL, ``synchronous=FULL``, so every commit is an fsync):

* **group commit** (the store as shipped): the process's writes go through one ``GroupWriter``;
* **per-call transactions** (the baseline, the store before group commit): each call its own
  transaction, waiting for SQLite's write lock in SQLite's busy handler.

Reported: samples/s, call latency p50/p99, events appended, transactions committed. Loopback
only; results in ``bench/results/load_store.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import git_commit, load_average, machine, percentiles  # noqa: E402

RESULTS = HERE / "results" / "load_store.json"
PER_CALL = 5


def run_mode(grouped: bool, threads: int, calls: int) -> dict[str, Any]:
    """One mode on a fresh data folder; ``calls`` upload calls spread over ``threads``."""
    from mobiletrain.core.types import (
        EventKind,
        Hyperparameters,
        InputSpec,
        Job,
        JobState,
        Project,
        Sample,
        TaskType,
    )
    from mobiletrain.store.blobs import LocalPackBlobStore
    from mobiletrain.store.sql import SqlMetadataStore

    folder = Path(tempfile.mkdtemp(prefix="mt-load-store-"))
    try:
        store = SqlMetadataStore(f"sqlite:///{folder}/meta.db")
        writer = store._writer
        if not grouped:
            store._writer = None  # every _tx its own transaction on the plain engine
        blobs = LocalPackBlobStore(folder / "blobs")
        project = store.create_project(
            Project(
                id=str(uuid.uuid4()),
                name="bench",
                task=TaskType.IMAGE_CLASSIFICATION,
                labels=["a"],
                labels_fixed=False,
                input_spec=InputSpec(16, 16),
                created_at=datetime.now(UTC),
            )
        )
        job = store.create_job(
            Job(
                id=str(uuid.uuid4()),
                project_id=project.id,
                state=JobState.RUNNING,
                hyperparameters=Hyperparameters(),
                created_at=datetime.now(UTC),
            )
        )
        groups_before = writer.groups if writer is not None else 0

        def call(i: int) -> float:
            t0 = time.perf_counter()
            samples = []
            for k in range(PER_CALL):
                data = os.urandom(300)
                samples.append(
                    Sample(
                        id=str(uuid.uuid4()),
                        project_id=project.id,
                        client_id=f"c{i}-{k}",
                        label="a",
                        sha256=blobs.put(data),
                        size=len(data),
                        media_type="image/png",
                        width=16,
                        height=16,
                        created_at=datetime.now(UTC),
                    )
                )
            blobs.sync()
            store.add_samples(samples)
            return time.perf_counter() - t0

        stop = threading.Event()
        events = 0

        def progress() -> None:
            nonlocal events
            while not stop.wait(0.02):
                store.append_event(job.id, EventKind.PROGRESS, {"n": events})
                events += 1

        writer_thread = threading.Thread(target=progress, daemon=True)
        writer_thread.start()
        t0 = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            latencies = list(pool.map(call, range(calls)))
        wall = time.perf_counter() - t0
        stop.set()
        writer_thread.join()
        stored = store.dataset_size(project.id)[0]
        seqs = [e.seq for e in store.list_events(job.id, 0, 1_000_000)]
        store._writer = writer
        store.close()
        blobs.close()
        pct = percentiles(latencies)
        return {
            "mode": "group commit" if grouped else "per-call transactions",
            "threads": threads,
            "calls": calls,
            "samples": calls * PER_CALL,
            "stored": stored,
            "events": events,
            "events_numbered_1_to_n": seqs == list(range(1, len(seqs) + 1)),
            "wall_seconds": round(wall, 3),
            "samples_per_second": round(calls * PER_CALL / wall, 1),
            "call_ms": {k: round(v * 1000, 1) for k, v in pct.items()},
            "transactions": (writer.groups - groups_before)
            if grouped and writer is not None
            else None,
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Both modes for each thread count, interleaved (baseline first)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[8, 64])
    parser.add_argument("--calls", type=int, default=320, help="upload calls per mode")
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args(argv)
    out: dict[str, Any] = {
        "command": "python bench/load_store.py " + " ".join(argv or sys.argv[1:]),
        "run": datetime.now(UTC).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
        "load_average": {"start": load_average()},
        "results": [],
    }
    for threads in args.threads:
        for grouped in (False, True):
            result = run_mode(grouped, threads, args.calls)
            out["results"].append(result)
            print(json.dumps(result), flush=True)
    out["load_average"]["end"] = load_average()
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    ok = all(r["stored"] == r["samples"] and r["events_numbered_1_to_n"] for r in out["results"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
