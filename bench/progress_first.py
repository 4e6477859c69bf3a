"""StartJob → first PROGRESS event, with a warm worker against a cold one (issue 18).

The same server code, the same 1,500 digits, two servers: one started with
``MOBILETRAIN_WARM_WORKER=0`` (each job starts ``python -m mobiletrain.compute.worker``, which
imports TensorFlow), one with ``MOBILETRAIN_WARM_WORKER=1`` (a worker waits with TensorFlow
imported and the stores open). Each round starts a job over gRPC, watches it over gRPC and
takes the ``created_at`` of its first PROGRESS event (data loading counts: the worker reports
samples read) and of its first training PROGRESS event, then cancels the job. Before each warm
round the bench waits until the replacement warm worker logged "ready", so a round measures a
warm start, not a half-warm one; before each cold round it waits until the previous job's worker
exited, so neither mode waits for a slot. Baseline: the cold server in the same run.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from statistics import median
from typing import Any

from bench.common import MobiletrainServer, Row, load_average, ratio
from bench.datasets import digits_png
from bench.jobs import Watched, create_and_upload, grpc_watch, job_hyperparameters, start_job

GOAL_S = 1.0
READY = "warm worker pid"


def _warm_ready_count(data_dir: Path) -> int:
    log = data_dir / "jobs" / "warm-worker.log"
    try:
        return sum(1 for line in log.read_text(errors="replace").splitlines() if "ready" in line)
    except OSError:
        return 0


def _wait_warm(data_dir: Path, at_least: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while _warm_ready_count(data_dir) < at_least:
        if time.monotonic() > deadline:
            raise TimeoutError("the warm worker did not get ready (is warm_worker on?)")
        time.sleep(0.1)


def _wait_no_job_worker(server: MobiletrainServer, timeout: float = 120.0) -> None:
    """Until the previous job's worker process has exited (its slot is free again)."""
    import psutil

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(_is_job_worker(c) for c in psutil.Process(server.proc.pid).children()):
            return
        time.sleep(0.1)
    raise TimeoutError("the previous job's worker did not exit")


def _is_job_worker(process: Any) -> bool:
    """A worker process running a job (not the waiting warm one; an exited one is none)."""
    import psutil

    try:
        cmdline = process.cmdline()
    except psutil.Error:  # exited (a zombie until the scheduler reaps it)
        return False
    return "mobiletrain.compute.worker" in " ".join(cmdline) and "--warm" not in cmdline


def _cancel(server: MobiletrainServer, job_id: str) -> None:
    with server.client() as client:
        client.cancel_job(job_id)


def _round(server: MobiletrainServer, hp: dict[str, Any], timeout: float) -> dict[str, float]:
    t0 = time.time()
    job_id = start_job(server, hp)
    cancelled = False
    seen: dict[str, float] = {}

    def on_event(ev: Watched) -> None:
        nonlocal cancelled
        at = ev.created - t0
        if ev.kind == "state" and ev.state == "running":
            seen.setdefault("claimed", at)
        if ev.kind == "phase":
            seen.setdefault("phase", at)  # the worker runs the job (imports done)
            if ev.data.get("phase") == "training":
                seen.setdefault("training_phase", at)  # decoded, model built
        if ev.kind == "progress":
            seen.setdefault("progress", at)
            if int(ev.data.get("epoch", 0) or 0) == 0:
                seen["samples_read"] = at  # the last data-loading PROGRESS event
            if int(ev.data.get("epoch", 0) or 0) > 0 and "training" not in seen:
                seen["training"] = ev.created - t0
                if not cancelled:
                    cancelled = True
                    _cancel(server, job_id)  # the rest of the job is not what this measures

    grpc_watch(server, job_id, timeout, on_event)
    return seen


def run_mode(warm: bool, rounds: int, images: int, timeout: float) -> dict[str, Any]:
    """``rounds`` jobs on one server with the warm worker on or off."""
    previous = os.environ.get("MOBILETRAIN_WARM_WORKER")
    os.environ["MOBILETRAIN_WARM_WORKER"] = "1" if warm else "0"
    hp = job_hyperparameters(epochs=2, formats=["float32"])
    runs: list[dict[str, float]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="mt-bench-first-") as tmp:
            data_dir = Path(tmp) / "server"
            server = MobiletrainServer(data_dir)
            try:
                create_and_upload(server, digits_png(limit=images))
                for i in range(rounds):
                    if warm:
                        _wait_warm(data_dir, i + 1)
                    else:  # the previous job's slot is free, as in warm mode
                        _wait_no_job_worker(server)
                    runs.append(_round(server, hp, timeout))
            finally:
                server.stop()
    finally:
        if previous is None:
            os.environ.pop("MOBILETRAIN_WARM_WORKER", None)
        else:
            os.environ["MOBILETRAIN_WARM_WORKER"] = previous
    first = [r["progress"] for r in runs if "progress" in r]
    steps = ["claimed", "phase", "progress", "samples_read", "training_phase", "training"]
    breakdown = {
        step: round(median(r[step] for r in runs if step in r), 3)
        for step in steps
        if any(step in r for r in runs)
    }
    training = [r["training"] for r in runs if "training" in r]
    return {
        "warm": warm,
        "rounds": runs,
        "first_progress_s": [round(v, 3) for v in first],
        # Median seconds after StartJob at which each step was reached (see _round).
        "breakdown_s": breakdown,
        "first_progress_median_s": round(median(first), 3) if first else None,
        "first_training_progress_median_s": round(median(training), 3) if training else None,
    }


def run(quick: bool) -> dict[str, Any]:
    """Cold, then warm, on fresh servers with the same images."""
    rounds, images = (1, 300) if quick else (5, 1500)
    load = load_average()
    cold = run_mode(False, rounds, images, 300.0)
    warm = run_mode(True, rounds, images, 300.0)
    return {
        "images": images,
        "load_average_before": load,
        "cold": cold,
        "warm": warm,
        "ratio_warm_to_cold": ratio(
            warm["first_progress_median_s"] or 0.0, cold["first_progress_median_s"] or 0.0
        ),
    }


def rows(result: dict[str, Any]) -> list[Row]:
    """One row: warm vs cold StartJob → first PROGRESS event (median over the rounds)."""
    warm, cold = result["warm"], result["cold"]
    return [
        Row(
            "StartJob → first progress event",
            f"{result['images']} digits, medians; first training batch: "
            f"warm {warm['first_training_progress_median_s']} s, "
            f"cold {cold['first_training_progress_median_s']} s",
            f"warm {warm['first_progress_median_s']} s",
            f"cold worker {cold['first_progress_median_s']} s",
            result["ratio_warm_to_cold"],
            f"≤ {GOAL_S:.0f} s warm",
            warm["first_progress_median_s"] is not None
            and warm["first_progress_median_s"] <= GOAL_S,
            ratio_unit="x cold worker",
        )
    ]


if __name__ == "__main__":
    import json
    import sys

    out = run("--quick" in sys.argv)
    print(json.dumps(out, indent=2))
