"""Training worker memory against dataset size: in memory vs streamed (issue 18).

For each dataset size N, synthetic 128x128 RGB JPEGs (class-coloured noise, every one unique)
go into a real SQLite metadata store and a real local blob store; then the real training worker
(``python -m mobiletrain.compute.worker``) trains one job on them, once per mode, one after the
other on the same stores: **in memory** (``MOBILETRAIN_TRAIN_STREAMING=never``: every sample's
bytes and decoded array held for the whole job) and **streamed** (``always``: samples read
from the blob store and decoded per batch inside tf.data, see ``compute/streaming.py``), and
optionally streamed with the disk cache (``MOBILETRAIN_TRAIN_CACHE=disk``).

Recorded per run: the worker's peak RSS (psutil, sampled every 20 ms over the whole job: data
stage, fit, export and the release gate), the fit's epoch seconds (the EPOCH events) and the
worker's CPU seconds over each epoch (sampled with the RSS; on a shared machine CPU seconds stay
put where wall time doubles, so the row's ratio is of CPU seconds), the wall time from the
worker's first event to its last EPOCH event, and the load average.
Goal (issue 18): peak RSS flat in N, streamed epoch time <= 1.05x in memory.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil
from PIL import Image

from bench.common import Row, load_average, ratio

GOAL = 1.05
LABELS = [f"c{i}" for i in range(10)]
SIDE = 128


def _jpegs(n: int, seed: int = 0) -> list[tuple[str, bytes]]:
    """``n`` (label, JPEG bytes) at SIDE x SIDE: a per-class base colour plus noise."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 215, size=(len(LABELS), 3))
    out = []
    for i in range(n):
        c = i % len(LABELS)
        noise = rng.integers(-40, 40, size=(SIDE // 8, SIDE // 8, 3))
        small = np.clip(base[c] + noise, 0, 255).astype(np.uint8)
        img = Image.fromarray(small).resize((SIDE, SIDE), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=90)
        out.append((LABELS[c], buf.getvalue()))
    return out


def _populate(data_dir: Path, n: int) -> tuple[str, str, str]:
    """A project with ``n`` samples; returns (database url, blob url, project id)."""
    from mobiletrain.core.types import InputSpec, Project, Sample, TaskType
    from mobiletrain.store.blobs import open_blob_store
    from mobiletrain.store.sql import SqlMetadataStore

    db_url = f"sqlite:///{data_dir / 'meta.db'}"
    blob_url = str(data_dir / "blobs")
    store = SqlMetadataStore(db_url)
    blobs = open_blob_store(blob_url)
    project = store.create_project(
        Project(
            id=str(uuid.uuid4()),
            name=f"mem{n}",
            task=TaskType.IMAGE_CLASSIFICATION,
            labels=list(LABELS),
            labels_fixed=True,
            input_spec=InputSpec(SIDE, SIDE),
            created_at=datetime.now(UTC),
        )
    )
    batch: list[Sample] = []
    for i, (label, data) in enumerate(_jpegs(n)):
        batch.append(
            Sample(
                id=str(uuid.uuid4()),
                project_id=project.id,
                client_id=f"s{i}",
                label=label,
                sha256=blobs.put(data),
                size=len(data),
                media_type="image/jpeg",
                width=SIDE,
                height=SIDE,
                created_at=datetime.now(UTC),
            )
        )
        if len(batch) == 500:
            store.add_samples(batch)
            batch = []
    if batch:
        store.add_samples(batch)
    blobs.close()
    store.close()
    return db_url, blob_url, project.id


def _run_worker(
    data_dir: Path,
    db_url: str,
    blob_url: str,
    project_id: str,
    env: dict[str, str],
    epochs: int = 1,
) -> dict[str, Any]:
    """One job in a real worker process; its peak RSS, epoch seconds and wall times."""
    from mobiletrain.core.types import EventKind, Hyperparameters, Job, JobState
    from mobiletrain.store.sql import SqlMetadataStore

    store = SqlMetadataStore(db_url)
    hp = Hyperparameters(epochs=epochs, batch_size=32, seed=42, formats=[])
    job = store.create_job(
        Job(str(uuid.uuid4()), project_id, JobState.QUEUED, hp, datetime.now(UTC))
    )
    store.claim_job(job.id)
    work_dir = data_dir / "work" / job.id
    argv = [
        sys.executable,
        "-m",
        "mobiletrain.compute.worker",
        "--job-id",
        job.id,
        "--database-url",
        db_url,
        "--blob-url",
        blob_url,
        "--work-dir",
        str(work_dir),
    ]
    load_before = load_average()
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ps = psutil.Process(proc.pid)
    peak = 0
    cpu: list[tuple[float, float]] = []  # (unix time, user + system CPU seconds so far)
    while proc.poll() is None:
        try:
            peak = max(peak, ps.memory_info().rss)
            t = ps.cpu_times()
            cpu.append((time.time(), t.user + t.system))
        except psutil.Error:
            break
        time.sleep(0.02)
    wall = time.monotonic() - started
    events = store.list_events(job.id, 0, 100_000)
    final = store.get_job(job.id)
    store.close()
    epochs = [e for e in events if e.kind is EventKind.EPOCH]
    t0 = events[0].created_at if events else None

    def cpu_at(when: float) -> float:
        before = [c for t, c in cpu if t <= when]
        return before[-1] if before else 0.0

    # CPU seconds grow far less than wall time when other work shares the cores: the ratio
    # that survives a busy machine.
    epoch_cpu = []
    for e in epochs:
        end = e.created_at.timestamp()
        epoch_cpu.append(round(cpu_at(end) - cpu_at(end - float(e.data["seconds"])), 2))
    return {
        "state": final.state.value if final else "missing",
        "error": final.error if final else "",
        "peak_rss_mb": round(peak / 2**20, 1),
        "epoch_seconds": [round(float(e.data.get("seconds", 0.0)), 3) for e in epochs],
        "epoch_cpu_seconds": epoch_cpu,
        "cpu_seconds_total": round(cpu[-1][1], 2) if cpu else None,
        # first event (the worker's PHASE "preparing data") to the last EPOCH event
        "to_last_epoch_s": round((epochs[-1].created_at - t0).total_seconds(), 2)
        if epochs and t0
        else None,
        "worker_wall_s": round(wall, 2),
        "load_average": {"before": load_before, "after": load_average()},
        "streamed": any("streaming" in str(e.data.get("message", "")) for e in events),
    }


MODES: dict[str, dict[str, str]] = {
    "in_memory": {"MOBILETRAIN_TRAIN_STREAMING": "never"},
    "streamed": {"MOBILETRAIN_TRAIN_STREAMING": "always", "MOBILETRAIN_TRAIN_CACHE": "none"},
}
CACHED = {"MOBILETRAIN_TRAIN_STREAMING": "always", "MOBILETRAIN_TRAIN_CACHE": "disk"}


def run_train_memory(
    quick: bool = False,
    sizes: list[int] | None = None,
    rounds: int = 1,
    cache: bool = False,
    epochs: int = 1,
) -> dict[str, Any]:
    """In memory vs streamed at each size (alternating, ``rounds`` times each); ``cache`` adds
    streamed with the disk cache (worth it with ``epochs`` > 1: epoch 1 writes the cache)."""
    modes = {**MODES, **({"streamed_disk_cache": CACHED} if cache else {})}
    # make bench: two sizes 4x apart, about 3 minutes on an idle 2-core machine; the issue's
    # 2,000 / 8,000: python -m bench.train_memory 2000 8000
    sizes = sizes or ([300] if quick else [1000, 4000])
    results: dict[str, Any] = {"sizes": {}, "side": SIDE, "epochs": epochs, "rounds": rounds}
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="mt-mem-") as tmp:
            data_dir = Path(tmp)
            db_url, blob_url, project_id = _populate(data_dir, n)
            runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
            for _ in range(rounds):
                for mode, env in modes.items():
                    run = _run_worker(data_dir, db_url, blob_url, project_id, env, epochs)
                    print(f"   N={n} {mode}: {json.dumps(run)}", flush=True)
                    runs[mode].append(run)
            results["sizes"][str(n)] = runs
    return results


def _best(runs: list[dict[str, Any]], key: str) -> float:
    values = [sum(r[key]) if isinstance(r[key], list) else r[key] for r in runs if r[key]]
    return float(min(values)) if values else 0.0


def rows(result: dict[str, Any]) -> list[Row]:
    """Per size and streamed mode: peak RSS against in memory, and the ratio of epoch CPU
    seconds (all epochs summed; the fastest round of each)."""
    out = []
    for n, runs in result["sizes"].items():
        mem = runs["in_memory"]
        rss_mem, ep_mem = _best(mem, "peak_rss_mb"), _best(mem, "epoch_seconds")
        cpu_mem = _best(mem, "epoch_cpu_seconds")
        for mode, label in (("streamed", "streamed"), ("streamed_disk_cache", "disk cache")):
            if mode not in runs:
                continue
            st = runs[mode]
            rss_st, ep_st = _best(st, "peak_rss_mb"), _best(st, "epoch_seconds")
            cpu_st = _best(st, "epoch_cpu_seconds")
            r = ratio(cpu_st, cpu_mem)
            side = result["side"]
            out.append(
                Row(
                    benchmark="training memory",
                    variant=f"{n} x {side}x{side} JPEGs, {result['epochs']} epoch(s), {label}",
                    figure=f"peak RSS {rss_st:.0f} MiB, epochs {ep_st:.1f} s ({cpu_st:.1f} CPU s)",
                    baseline=f"in memory: peak RSS {rss_mem:.0f} MiB, epochs {ep_mem:.1f} s "
                    f"({cpu_mem:.1f} CPU s)",
                    ratio=r,
                    goal=f"RSS flat in N; epochs <= {GOAL}x in memory",
                    met=None if r is None else r <= GOAL,
                    ratio_unit="x in-memory epoch CPU seconds",
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.train_memory [N ...] [--rounds R] [--epochs E] [--cache]``."""
    args = list(argv if argv is not None else sys.argv[1:])
    options = {"--rounds": 1, "--epochs": 1}
    for name in options:
        if name in args:
            i = args.index(name)
            options[name] = int(args[i + 1])
            del args[i : i + 2]
    cache = "--cache" in args
    sizes = [int(a) for a in args if a != "--cache"] or None
    result = run_train_memory(
        sizes=sizes, rounds=options["--rounds"], cache=cache, epochs=options["--epochs"]
    )
    print(json.dumps(result, indent=1))
    for row in rows(result):
        print(row.cells())
    return 0


if __name__ == "__main__":
    sys.exit(main())
