"""Load generator: many simulated devices holding concurrent gRPC streams against one server.

``python bench/load.py [--devices 1000] [--samples 10] [--grpc-threads 64]``

Every device has its own device token and its own connection (as phones do) and, all at once:

* holds a ``WatchJob`` stream open on one job, from before the uploads start until the job ends;
* uploads ``--samples`` distinct small PNGs with ``UploadSamples`` streams of ``--per-call``
  samples each.

A simulated worker (this process, writing to the server's metadata store, as a real worker does)
appends progress events to the job while the uploads run, then a final state event that ends
every watch stream. Reported: upload samples/s and per-call latency p50/p99, event delivery
latency p50/p99 (append → received by a watcher) over every (event, watcher) pair, the error
count (must be 0), the server's peak RSS (process and children), and the exact stored counts
(every sample once; every watcher got every event, in order).

Bounded: fixed counts, and the whole run is cancelled after ``--timeout`` seconds. Loopback only.
Results go to ``bench/results/load.json`` (one entry per configuration, newest replaces the
same configuration) and are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import psutil  # noqa: E402
from PIL import Image  # noqa: E402

from bench.common import (  # noqa: E402
    ServerProcess,
    admin_token,
    free_port,
    git_commit,
    load_average,
    machine,
    mobiletrain_cmd,
    percentiles,
    wait_port,
)

RESULTS = HERE / "results" / "load.json"
LABELS = [f"class-{i}" for i in range(10)]


def _png(rng: np.random.Generator) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


class RssSampler(threading.Thread):
    """Peak RSS of a process and its children, sampled every 100 ms."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True)
        self.procs = [psutil.Process(pid) for pid in pids]
        self.peak = 0  # all servers together
        self.peak_each = 0  # the largest single server
        self.threads_peak = 0
        self._halt = threading.Event()

    def run(self) -> None:
        # Children are looked up once a second, not at every sample: psutil finds them by
        # reading every process of the machine, which took 40% of this process's samples (and
        # the GIL from the devices' event loop) on a busy machine.
        children: list[list[psutil.Process]] = [[] for _ in self.procs]
        last_lookup = 0.0
        while not self._halt.wait(0.1):
            try:
                if time.monotonic() - last_lookup > 1.0:
                    children = [proc.children(recursive=True) for proc in self.procs]
                    last_lookup = time.monotonic()
                each = []
                for proc, kids in zip(self.procs, children, strict=True):
                    rss = proc.memory_info().rss
                    for kid in kids:
                        with contextlib.suppress(psutil.Error):
                            rss += kid.memory_info().rss
                    each.append(rss)
                threads = max(proc.num_threads() for proc in self.procs)
            except psutil.Error:
                continue
            self.threads_peak = max(self.threads_peak, threads)
            self.peak = max(self.peak, sum(each))
            self.peak_each = max(self.peak_each, max(each))

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=2)


class SimulatedWorker(threading.Thread):
    """Appends progress events to the job (as a training worker does) until told to finish."""

    def __init__(self, database_url: str, job_id: str, rate: float, limit: int = 0) -> None:
        super().__init__(daemon=True)
        from mobiletrain.store.sql import SqlMetadataStore

        self.store = SqlMetadataStore(database_url, run_migrations=False)
        self.job_id = job_id
        self.interval = 1.0 / rate
        self.appended = 0
        self.limit = limit  # > 0: append exactly this many progress events, then stop
        self._done = threading.Event()

    def run(self) -> None:
        from mobiletrain.core.types import EventKind

        while not self._done.wait(self.interval):
            if self.limit and self.appended >= self.limit:
                break
            self.appended += 1
            self.store.append_event(
                self.job_id,
                EventKind.PROGRESS,
                {"epoch": 1, "epochs": 1, "batch": self.appended, "batches": 0, "t": time.time()},
            )

    def finish(self) -> int:
        """Stop, then append the final state event; returns the number of progress events."""
        from mobiletrain.core.types import EventKind, JobState

        self._done.set()
        # No time limit: an append still in flight (slow under load) must land before the
        # final state, or it would follow it and no watcher could ever receive it.
        self.join()
        self.store.finish_job(self.job_id, JobState.SUCCEEDED)
        self.store.append_event(
            self.job_id, EventKind.STATE, {"state": JobState.SUCCEEDED.value, "t": time.time()}
        )
        self.store.close()
        return self.appended


def _queued_job(database_url: str) -> Any:
    """A queued job of the project, with its first (QUEUED) event, written to the store."""
    import uuid

    from mobiletrain.core.types import EventKind, Hyperparameters, Job, JobState
    from mobiletrain.store.sql import SqlMetadataStore

    store = SqlMetadataStore(database_url, run_migrations=False)
    project = store.get_project_by_name("load")
    assert project is not None
    job = store.create_job(
        Job(
            id=str(uuid.uuid4()),
            project_id=project.id,
            state=JobState.QUEUED,
            hyperparameters=Hyperparameters(epochs=1),
            created_at=datetime.now(UTC),
        )
    )
    store.append_event(job.id, EventKind.STATE, {"state": JobState.QUEUED.value})
    store.close()
    return job


async def _device(
    index: int,
    target: str,
    token: str,
    job_id: str,
    samples: list[tuple[str, str, bytes]],
    per_call: int,
    watching: asyncio.Event,
    go: asyncio.Event,
    stats: dict[str, Any],
) -> None:
    import grpc

    from mobiletrain._proto.mobiletrain.v1 import (
        datasets_pb2,
        datasets_pb2_grpc,
        training_pb2,
        training_pb2_grpc,
    )

    metadata = (("authorization", f"Bearer {token}"),)
    async with grpc.aio.insecure_channel(target) as channel:
        training = training_pb2_grpc.TrainingServiceStub(channel)
        datasets = datasets_pb2_grpc.DatasetServiceStub(channel)
        first_event = asyncio.Event()

        async def watch() -> None:
            seqs: list[int] = []
            call = training.WatchJob(
                training_pb2.WatchJobRequest(job_id=job_id, after_seq=0), metadata=metadata
            )
            async for ev in call:
                now = time.time()
                seqs.append(ev.seq)
                if not first_event.is_set():
                    first_event.set()
                if ev.WhichOneof("payload") == "progress" or ev.WhichOneof("payload") == (
                    "state_changed"
                ):
                    sent = stats["sent_at"].get(ev.seq)
                    if sent is not None:
                        stats["event_latency"].append(now - sent)
            stats["watch_seqs"][index] = seqs

        if stats["no_watch"]:
            first_event.set()

            async def watch() -> None:
                stats["watch_seqs"][index] = stats["expected_seqs"]

        watcher = asyncio.create_task(watch())
        phase = "connect"
        t_phase = time.perf_counter()
        try:
            await asyncio.wait_for(first_event.wait(), timeout=120)
            stats["watching"] += 1
            if stats["watching"] == stats["devices"]:
                watching.set()
            await go.wait()
            # --ramp: devices start uploading one after another over that many seconds.
            await asyncio.sleep(stats["ramp"] * index / stats["devices"])
            for start in range(0, len(samples), per_call):
                part = samples[start : start + per_call]

                async def requests(part: list[tuple[str, str, bytes]] = part) -> Any:
                    yield datasets_pb2.UploadSamplesRequest(
                        project="load",
                        inline_batch=datasets_pb2.InlineSampleBatch(
                            samples=[
                                datasets_pb2.InlineSample(client_id=c, label=lab, data=d)
                                for c, lab, d in part
                            ]
                        ),
                    )

                t0 = t_phase = time.perf_counter()
                phase = "upload"
                resp = await datasets.UploadSamples(requests(), metadata=metadata, timeout=600)
                stats["upload_latency"].append(time.perf_counter() - t0)
                stats["accepted"] += resp.accepted
                stats["duplicates"] += resp.duplicates
                stats["rejected"] += resp.rejected
            stats["uploads_done"] += 1
            if stats["uploads_done"] == stats["devices"]:
                stats["uploads_finished_at"] = time.perf_counter()
            phase, t_phase = "watch", time.perf_counter()
            await watcher
        except Exception as exc:  # counted, never raised: one device must not stop the run
            code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else ""
            details = exc.details() if isinstance(exc, grpc.aio.AioRpcError) else str(exc)
            stats["errors"].append(
                f"device {index} ({phase}, {time.perf_counter() - t_phase:.1f} s in): "
                f"{type(exc).__name__} {code} {str(details)[:160]}"
            )
            watcher.cancel()


async def _run_devices(
    targets: list[str],
    tokens: list[str],
    job_id: str,
    all_samples: list[list[tuple[str, str, bytes]]],
    per_call: int,
    worker: SimulatedWorker,
    event_rate: float,
    stats: dict[str, Any],
) -> None:
    watching, go = asyncio.Event(), asyncio.Event()
    tasks = [
        asyncio.create_task(
            _device(
                i,
                targets[i % len(targets)],
                tokens[i],
                job_id,
                all_samples[i],
                per_call,
                watching,
                go,
                stats,
            )
        )
        for i in range(len(tokens))
    ]
    t_connect = time.perf_counter()
    try:
        await asyncio.wait_for(watching.wait(), timeout=180)
    except TimeoutError:
        stats["errors"].append(f"only {stats['watching']} of {len(tokens)} watchers connected")
    stats["connect_seconds"] = time.perf_counter() - t_connect
    # Progress events flow while every device uploads.
    sent_at: dict[int, float] = stats["sent_at"]
    orig_append = worker.store.append_event

    def append_and_remember(job: str, kind: Any, data: dict[str, Any]) -> Any:
        ev = orig_append(job, kind, data)
        sent_at[ev.seq] = data["t"]
        return ev

    worker.store.append_event = append_and_remember  # type: ignore[method-assign]
    worker.interval = 1.0 / event_rate
    worker.start()
    stats["uploads_started_at"] = time.perf_counter()
    go.set()
    while stats["uploads_done"] + len(stats["errors"]) < len(tokens) or (
        worker.limit and worker.appended < worker.limit and worker.is_alive()
    ):
        await asyncio.sleep(0.05)
    stats["progress_events"] = await asyncio.get_running_loop().run_in_executor(None, worker.finish)
    await asyncio.gather(*tasks, return_exceptions=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """One configuration; returns its figures."""
    from mobiletrain.client.sdk import Client

    data_dir = Path(tempfile.mkdtemp(prefix="mt-load-"))
    env = {
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "MOBILETRAIN_GRPC_THREADS": str(args.grpc_threads),
        # No job is trained here: a warm worker would only import TensorFlow on the same cores.
        "MOBILETRAIN_WARM_WORKER": "false",
    }
    # --replicas: API processes sharing one data folder (SQLite in WAL mode and the pack
    # store are multi-process safe); devices are spread over them as a load balancer would.
    servers: list[ServerProcess] = []
    targets: list[str] = []
    for _ in range(args.replicas):
        grpc_port, http_port = free_port(), free_port()
        cmd = [*mobiletrain_cmd(data_dir, grpc_port, http_port), "--workers", "0"]
        server = ServerProcess(cmd, http_port, env)
        if args.server_log:  # the same server, with its output kept (for diagnosis)
            server.stop()
            log = open(f"{args.server_log}.{len(servers)}", "wb")  # noqa: SIM115
            server.proc = subprocess.Popen(
                cmd, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
            )
            wait_port(http_port)
            server.ps = psutil.Process(server.proc.pid)
        wait_port(grpc_port)
        servers.append(server)
        targets.append(f"127.0.0.1:{grpc_port}")
    sampler = RssSampler([s.proc.pid for s in servers])
    sampler.start()
    target = targets[0]
    token = admin_token(data_dir)
    rss_before = 0
    cpu_server = cpu_client = 0.0
    t0 = time.perf_counter()
    stats: dict[str, Any] = {
        "devices": args.devices,
        "watching": 0,
        "uploads_done": 0,
        "accepted": 0,
        "duplicates": 0,
        "rejected": 0,
        "upload_latency": [],
        "event_latency": [],
        "errors": [],
        "sent_at": {},
        "watch_seqs": {},
        "no_watch": args.no_watch,
        "ramp": args.ramp,
        "expected_seqs": None,
    }
    try:
        rng = np.random.default_rng(0)
        all_samples = [
            [
                (f"dev{d}-s{s}", LABELS[(d + s) % len(LABELS)], _png(rng))
                for s in range(args.samples)
            ]
            for d in range(args.devices)
        ]
        with Client(target, token=token) as admin:
            admin.create_project("load", width=16, height=16, color_mode="grayscale", labels=LABELS)

            def device_token(i: int) -> str:
                for attempt in range(50):
                    try:
                        return str(admin.create_token("device", "load", f"device-{i}")[1])
                    except Exception:  # the admin token's own rate limit: wait and retry
                        if attempt == 49:
                            raise
                        time.sleep(0.2)
                raise AssertionError("unreachable")

            with ThreadPoolExecutor(8) as pool:
                tokens = list(pool.map(device_token, range(args.devices)))
        database_url = f"sqlite:///{data_dir / 'mobiletrain.db'}"
        job = _queued_job(database_url)  # what StartJob makes; no worker picks it up here
        worker = SimulatedWorker(database_url, job.id, args.event_rate, args.events)
        rss_before = sampler.peak
        cpu_before = sum(s.cpu_seconds() for s in servers), time.process_time()
        t0 = time.perf_counter()
        asyncio.run(
            asyncio.wait_for(
                _run_devices(
                    targets,
                    tokens,
                    job.id,
                    all_samples,
                    args.per_call,
                    worker,
                    args.event_rate,
                    stats,
                ),
                timeout=args.timeout,
            )
        )
        wall = time.perf_counter() - t0
        cpu_server = sum(s.cpu_seconds() for s in servers) - cpu_before[0]
        cpu_client = time.process_time() - cpu_before[1]
        with Client(target, token=token) as admin:
            counts = admin.class_counts("load")
        expected_counts: dict[str, int] = {}
        for device in all_samples:
            for _, label, _ in device:
                expected_counts[label] = expected_counts.get(label, 0) + 1
        from mobiletrain.store.sql import SqlMetadataStore

        store = SqlMetadataStore(database_url, run_migrations=False)
        project = store.get_project_by_name("load")
        assert project is not None
        stored = len(store.all_samples(project.id))
        events_stored = len(store.list_events(job.id, 0, 1_000_000))
        store.close()
        want_seqs = list(range(1, events_stored + 1))
        complete_watchers = sum(1 for s in stats["watch_seqs"].values() if s == want_seqs)
    except TimeoutError:
        stats["errors"].append(f"the run passed its {args.timeout} s bound")
        wall, counts, expected_counts, stored, events_stored, complete_watchers = (
            float(args.timeout),
            {},
            {"?": -1},
            -1,
            -1,
            0,
        )
    finally:
        for server in servers:
            server.stop()
        sampler.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
    upload_seconds = stats.get("uploads_finished_at", time.perf_counter()) - stats.get(
        "uploads_started_at", t0
    )
    total = args.devices * args.samples
    result = {
        "config": {
            "devices": args.devices,
            "samples_per_device": args.samples,
            "samples_per_call": args.per_call,
            "grpc_threads": args.grpc_threads,
            "replicas": args.replicas,
            "event_rate_per_s": args.event_rate,
            "progress_events": args.events or "while uploading",
            "upload_ramp_s": args.ramp,
            "watch": not args.no_watch,
            "streams_at_peak": 2 * args.devices,
        },
        "samples_sent": total,
        "accepted": stats["accepted"],
        "duplicates": stats["duplicates"],
        "rejected": stats["rejected"],
        "stored_samples": stored,
        "class_counts_exact": counts == expected_counts,
        "upload_seconds": round(upload_seconds, 2),
        "samples_per_second": round(stats["accepted"] / upload_seconds, 1)
        if upload_seconds > 0
        else 0.0,
        "upload_call_latency_ms": {
            k: round(v * 1000, 1) for k, v in percentiles(stats["upload_latency"] or [0]).items()
        },
        "watchers_connected_seconds": round(stats.get("connect_seconds", 0.0), 2),
        "events_stored": events_stored,
        "watchers_with_every_event": complete_watchers,
        "event_deliveries": len(stats["event_latency"]),
        "event_latency_ms": {
            k: round(v * 1000, 1) for k, v in percentiles(stats["event_latency"] or [0]).items()
        },
        "errors": len(stats["errors"]),
        "error_examples": stats["errors"][:5],
        "server_peak_rss_mib": round(sampler.peak / 2**20, 1),
        "server_peak_rss_per_replica_mib": round(sampler.peak_each / 2**20, 1),
        "server_rss_before_devices_mib": round(rss_before / 2**20, 1),
        "server_peak_threads": sampler.threads_peak,
        "wall_seconds": round(wall, 2),
        # CPU seconds of the run (devices connect → last watcher done): on a busy machine a
        # steadier measure of the work than wall time. The client is this process.
        "server_cpu_seconds": round(cpu_server, 1),
        "client_cpu_seconds": round(cpu_client, 1),
    }
    result["ok"] = (
        result["errors"] == 0
        and stored == total
        and stats["accepted"] == total
        and result["class_counts_exact"]
        and complete_watchers == args.devices
    )
    return result


QUICK_DEVICES = 200
"""Devices of the quick run (``bench/run.py --quick`` and the test in ``make test``)."""


def run_load(quick: bool) -> dict[str, Any]:
    """For ``bench/run.py``: 1,000 devices (quick: 200 with 4 samples each), saved as usual."""
    argv = ["--devices", str(QUICK_DEVICES), "--samples", "4"] if quick else []
    args = parser().parse_args(argv)
    result = run(args)
    result |= {"commit": git_commit(), "machine": machine()}
    return result


def rows(result: dict[str, Any]) -> list[Any]:
    """One table row: the run's correctness and upload call p99 against the issue's goal."""
    from bench.common import Row

    cfg = result["config"]
    p99_s = result["upload_call_latency_ms"]["p99"] / 1000
    complete = result["ok"] and p99_s <= 2.0
    return [
        Row(
            benchmark=f"load: {cfg['devices']} devices watching a job while uploading",
            variant=f"gRPC, {cfg['samples_per_device']} samples/device, {cfg['replicas']} server",
            figure=(
                f"{result['errors']} errors, {result['stored_samples']}/{result['samples_sent']} "
                f"stored, {result['watchers_with_every_event']}/{cfg['devices']} watchers got "
                f"every event, upload call p50 {result['upload_call_latency_ms']['p50']:.0f} ms / "
                f"p99 {result['upload_call_latency_ms']['p99']:.0f} ms, "
                f"{result['samples_per_second']:.0f} samples/s"
            ),
            baseline="(absolute goal)",
            goal="0 errors, exact counts, every watcher every event, upload call p99 ≤ 2 s",
            met=complete,
        )
    ]


def parser() -> argparse.ArgumentParser:
    """The command line of ``bench/load.py``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--samples", type=int, default=10, help="samples per device")
    parser.add_argument("--per-call", type=int, default=5, help="samples per UploadSamples call")
    # The server's default pool (64). More threads only fight for the GIL with the event loop:
    # at 2,200 (one per upload stream) 1,000 devices stored 87 samples/s, at 64 196 samples/s.
    parser.add_argument("--grpc-threads", type=int, default=64, help="server handler threads")
    parser.add_argument("--event-rate", type=float, default=5.0, help="progress events per s")
    parser.add_argument(
        "--events",
        type=int,
        default=0,
        help="append exactly this many progress events (0: as many as the uploads take); a "
        "fixed amount of fan-out work, for comparing runs",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="bound on the whole run, s")
    parser.add_argument("--no-save", action="store_true", help="print only")
    parser.add_argument("--replicas", type=int, default=1, help="API server processes")
    parser.add_argument("--no-watch", action="store_true", help="uploads only (diagnosis)")
    parser.add_argument(
        "--ramp", type=float, default=0.0, help="spread upload starts over this many s (0: at once)"
    )
    parser.add_argument("--server-log", default="", help="keep the server's output in this file")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    args = parser().parse_args(argv)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    load_start = load_average()
    result = run(args)
    result |= {
        "run": started,
        "commit": git_commit(),
        "machine": machine(),
        "load_average": {"start": load_start, "end": load_average()},
    }
    print(json.dumps(result, indent=2))
    if not args.no_save:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        try:
            saved = json.loads(RESULTS.read_text())
        except (OSError, ValueError):
            saved = []
        saved = [r for r in saved if r.get("config") != result["config"]] + [result]
        RESULTS.write_text(json.dumps(saved, indent=2) + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
