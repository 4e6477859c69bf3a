"""Audio training overhead: a mobiletrain audio job against a plain Keras script.

Both sides get the same synthesised keyword WAVs (espeak-ng, ``mobiletrain.tasks.audio_synth``:
4 words, training voices plus ``_background_noise_`` clips), the same model (the DS-CNN with its
log-mel front end), augmentation, compile settings, epochs, batch size and seed (see
``bench/audio_plain_fit.py``). Timing is measured as in ``bench/training.py``:

* Plain: wall time from starting ``python bench/audio_plain_fit.py`` to the end of its last
  epoch (TensorFlow import, reading the WAVs, building and fitting included).
* mobiletrain: wall time from the StartJob call to the last EPOCH event (scheduling, the worker,
  reading the samples from the stores, WAV decoding and resampling, the tf.data pipeline and
  progress events included; export and the LiteRT checks reported on their own row).

Quality: both sides' accuracy on held-out voices (the job's float32 and int8 .tflite files run
in LiteRT; the plain script's Keras model). Goal: at most 1.10x the plain script's wall time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean
from typing import Any

import httpx

from bench.common import MobiletrainServer, Row, load_average, ratio
from bench.jobs import grpc_watch, start_job
from bench.training import warm_up

HERE = Path(__file__).resolve().parent
PROJECT = "bench-audio"
GOAL = 1.10


def hyperparameters(epochs: int) -> dict[str, Any]:
    """What both sides train with (the job also exports float32 and int8)."""
    return {
        "epochs": epochs,
        "batch_size": 32,
        "learning_rate": 3e-3,
        "validation_split": 0.2,
        "seed": 7,
        "class_weights": True,
        "dropout": 0.2,
        "early_stopping_patience": 0,
    }


def create_and_upload(server: MobiletrainServer, train_dir: Path) -> int:
    """An audio project over REST, every training WAV uploaded over gRPC."""
    from mobiletrain.client.sdk import LocalSample

    files = sorted(train_dir.glob("*/*.wav"))
    labels = sorted({p.parent.name for p in files})
    resp = httpx.post(
        f"{server.base_url}/v1/projects",
        json={"name": PROJECT, "task": "audio-classification", "labels": labels},
        headers=server.headers(),
        timeout=60,
    )
    resp.raise_for_status()
    samples = [
        LocalSample(f"{p.parent.name}/{p.name}", p.parent.name, p.read_bytes()) for p in files
    ]
    with server.client() as client:
        report = client.upload(PROJECT, samples)
    if report.accepted != len(files):
        raise RuntimeError(f"upload stored {report.accepted} of {len(files)} WAVs")
    return int(report.accepted)


def run_plain(data_root: Path, hp: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The baseline script in a subprocess; times are from just before it is started."""
    argv = [
        sys.executable,
        str(HERE / "audio_plain_fit.py"),
        "--data",
        str(data_root),
        "--hyperparameters",
        json.dumps(hp),
    ]
    load = load_average()
    t0 = time.time()
    proc = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"audio_plain_fit.py failed:\n{proc.stderr[-3000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    ends = out["epoch_ends"]
    return {
        "load_average_before": load,
        "to_last_epoch_s": round(ends[-1] - t0, 3),
        "startup_and_imports_s": round(out["imported"] - t0, 3),
        "load_and_build_s": round(out["fit_start"] - out["imported"], 3),
        "fit_s": round(ends[-1] - out["fit_start"], 3),
        "epoch_seconds": out["epoch_seconds"],
        "final_val_accuracy": out["val_accuracy"][-1] if out["val_accuracy"] else None,
        "held_out_accuracy": out["held_out_accuracy"],
        "num_train": out["num_train"],
    }


def run_job(
    server: MobiletrainServer, hp: dict[str, Any], held_out: Path, timeout: float
) -> dict[str, Any]:
    """Train on the uploaded project; then the published .tflite files on held-out voices."""
    from mobiletrain.tasks.audio_synth import litert_accuracy

    load = load_average()
    t0 = time.time()
    job_id = start_job(server, {**hp, "formats": ["float32", "int8"]}, project=PROJECT)
    events = grpc_watch(server, job_id, timeout)
    epochs = [e for e in events if e.kind == "epoch"]
    final = events[-1] if events else None
    if final is None or final.state != "succeeded" or not epochs:
        raise RuntimeError(f"audio job did not succeed: {final.data if final else 'no events'}")
    last_epoch = epochs[-1].created
    out: dict[str, Any] = {
        "job_id": job_id,
        "load_average_before": load,
        "to_last_epoch_s": round(last_epoch - t0, 3),
        "to_succeeded_s": round(final.created - t0, 3),
        "export_and_publish_s": round(final.created - last_epoch, 3),
        "epoch_seconds": [float(e.data.get("seconds", 0.0)) for e in epochs],
        "final_val_accuracy": float(epochs[-1].data.get("val_accuracy", 0.0)),
    }
    with server.client() as client, tempfile.TemporaryDirectory() as tmp:
        labels = client.manifest(PROJECT)["labels"]
        for fmt in ("float32", "int8"):
            path = Path(tmp) / f"{fmt}.tflite"
            client.download_model(PROJECT, path, fmt)
            out[f"held_out_accuracy_{fmt}"] = litert_accuracy(path.read_bytes(), labels, held_out)
    return out


def run_audio_training(quick: bool = False) -> dict[str, Any]:
    """Synthesise the keyword set, then ``rounds`` x (plain script, mobiletrain job)."""
    from mobiletrain.tasks.audio_synth import espeak_available, make_speech_dataset

    if not espeak_available():
        raise RuntimeError("the audio benchmark needs espeak-ng (apt-get install espeak-ng)")
    warm_up()
    epochs, rounds = (3, 1) if quick else (30, 2)
    hp = hyperparameters(epochs)
    plain_runs: list[dict[str, Any]] = []
    job_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="mt-bench-audio-") as tmp_str:
        tmp = Path(tmp_str)
        started = time.monotonic()
        data = make_speech_dataset(tmp / "speech")
        synth_s = time.monotonic() - started
        server = MobiletrainServer(tmp / "server")
        try:
            uploaded = create_and_upload(server, data.train_dir)
            for _ in range(rounds):
                plain_runs.append(run_plain(tmp / "speech", hp, timeout=900))
                job_runs.append(run_job(server, hp, data.held_out_dir, timeout=900))
        finally:
            server.stop()
    plain = min(plain_runs, key=lambda r: float(r["to_last_epoch_s"]))
    job = min(job_runs, key=lambda r: float(r["to_last_epoch_s"]))
    result: dict[str, Any] = {
        "clips": uploaded,
        "held_out_clips": sum(v for k, v in data.counts.items() if k.startswith("held_out/")),
        "synthesis_s": round(synth_s, 2),
        "epochs": epochs,
        "batch_size": hp["batch_size"],
        "rounds": rounds,
        "plain": plain,
        "mobiletrain": job,
        "all_rounds": {"plain": plain_runs, "mobiletrain": job_runs},
        "ratio_to_last_epoch": ratio(job["to_last_epoch_s"], plain["to_last_epoch_s"]),
        "ratio_incl_export": ratio(job["to_succeeded_s"], plain["to_last_epoch_s"]),
        "ratio_first_epoch": ratio(job["epoch_seconds"][0], plain["epoch_seconds"][0]),
    }
    if epochs > 1:
        result["ratio_later_epochs"] = ratio(
            mean(job["epoch_seconds"][1:]), mean(plain["epoch_seconds"][1:])
        )
    return {"keywords": result}


def rows(results: dict[str, Any]) -> list[Row]:
    """Table rows: wall-time ratio against the goal, per-epoch ratios, held-out accuracy."""
    out: list[Row] = []
    for case in results.values():
        p, j = case["plain"], case["mobiletrain"]
        best = f", best of {case['rounds']}" if case["rounds"] > 1 else ""
        bench = (
            f"2a. audio training: {case['clips']} espeak-ng keyword WAVs, {case['epochs']} epochs, "
            f"batch {case['batch_size']}{best}"
        )
        r = case["ratio_to_last_epoch"]
        out.append(
            Row(
                bench,
                "wall time to the last epoch: StartJob → last EPOCH event (export excluded)",
                f"{j['to_last_epoch_s']:.1f} s",
                f"plain Keras script {p['to_last_epoch_s']:.1f} s (process start → last epoch)",
                r,
                f"≤ {GOAL:.2f}× plain",
                bool(r is not None and r <= GOAL),
                "plain",
            )
        )
        if "ratio_later_epochs" in case:
            out.append(
                Row(
                    bench,
                    "later epochs, mean",
                    f"{mean(j['epoch_seconds'][1:]):.2f} s",
                    f"{mean(p['epoch_seconds'][1:]):.2f} s",
                    case["ratio_later_epochs"],
                    ratio_unit="plain",
                )
            )
        out.append(
            Row(
                bench,
                f"accuracy on {case['held_out_clips']} clips of held-out voices "
                "(job: LiteRT float32 / int8; plain: Keras)",
                f"{j['held_out_accuracy_float32']:.3f} / {j['held_out_accuracy_int8']:.3f}",
                f"{p['held_out_accuracy']:.3f}",
                ratio(j["held_out_accuracy_float32"], p["held_out_accuracy"]),
                ratio_unit="plain",
            )
        )
        out.append(
            Row(
                bench,
                "total to a published model (export: float32, int8)",
                f"{j['to_succeeded_s']:.1f} s "
                f"(export + LiteRT checks {j['export_and_publish_s']:.1f} s)",
                f"{p['to_last_epoch_s']:.1f} s (no export)",
                case["ratio_incl_export"],
                "not a goal (export excluded)",
                None,
                "plain",
            )
        )
    return out
