"""Progress latency, pushed against polled: one server, and two replicas behind HAProxy.

A writer process plays the training worker: it opens the metadata store itself and appends
PROGRESS events to a running job at a steady rate (``--rate`` per second), as the Keras callback
does. Watchers follow the job over gRPC ``WatchJob`` — on the one server, or through HAProxy
(``deploy/haproxy.cfg``) in front of two replicas on PostgreSQL, where the round-robin puts one
watcher on each replica and the writer's events reach both only through the database. Latency =
receipt time at the watcher − the event's ``created_at`` (taken by the writer as the first step
of the append; same machine clock), so it includes the database write, the wake-up of the
replica's event hub and the transport.

Each set-up runs twice in the same run: with the push (``MOBILETRAIN_EVENT_PUSH=1``, the
default: a UNIX datagram from the writer on SQLite, LISTEN/NOTIFY on PostgreSQL) and with it off
(``=0``: the 50 ms watermark poll every release before had). No training, so the figures are
the event path alone; ``bench/latency.py`` measures it during a real job.

    python -m bench.fleet_latency [--events 200] [--rate 20] [--quick]

Two replicas need PostgreSQL (``MOBILETRAIN_BENCH_POSTGRES_URL`` or
``MOBILETRAIN_TEST_POSTGRES_URL``) and ``haproxy``; without them only the one-server rows run.
Writes ``bench/results/fleet_latency.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.common import Row, free_port, git_commit, load_average, machine, percentiles, ratio

ROOT = Path(__file__).resolve().parents[1]
HAPROXY_CFG = ROOT / "deploy" / "haproxy.cfg"
RESULTS = ROOT / "bench" / "results" / "fleet_latency.json"

WRITER = """
import json, sys, time
from mobiletrain.core.types import EventKind, JobState
from mobiletrain.store.sql import SqlMetadataStore

url, job_id, n, rate = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
store = SqlMetadataStore(url, run_migrations=False)  # as a worker opens it
start = time.monotonic()
committed = {}
for i in range(n):
    time.sleep(max(0.0, start + i / rate - time.monotonic()))
    ev = store.append_event(job_id, EventKind.PROGRESS, {"epoch": 1, "batch": i, "batches": n})
    committed[ev.seq] = time.time()  # the append returned: the row is committed
store.append_event(job_id, EventKind.STATE, {"state": JobState.SUCCEEDED.value})
print(json.dumps(committed))
"""


class Serve:
    """One ``mobiletrain serve`` process."""

    def __init__(self, data_dir: Path, database_url: str | None, push: bool) -> None:
        self.data_dir = data_dir
        self.grpc_port, self.http_port = free_port(), free_port()
        argv = [
            sys.executable,
            "-c",
            "from mobiletrain.cli import app; app()",
            "serve",
            "--data-dir",
            str(data_dir),
            "--grpc-port",
            str(self.grpc_port),
            "--http-port",
            str(self.http_port),
        ]
        if database_url:
            argv += ["--database-url", database_url]
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "MOBILETRAIN_RATE_LIMIT_PER_SECOND": "0",
            "MOBILETRAIN_EVENT_PUSH": "1" if push else "0",
            # No training here: a warm worker would import TensorFlow (seconds of both CPUs)
            # during the measurement.
            "MOBILETRAIN_WARM_WORKER": "0",
        }
        self.log = data_dir.with_name(data_dir.name + ".log")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            _wait_ok(f"http://127.0.0.1:{self.http_port}/healthz", self.proc)
        except Exception:
            sys.stderr.write(self.log.read_text(errors="replace")[-3000:])
            raise

    def stop(self) -> None:
        """SIGTERM, then SIGKILL."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _wait_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: process exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise TimeoutError(url)


def _haproxy(replicas: list[Serve], log_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    grpc_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "MOBILETRAIN_LB_GRPC_BIND": f"127.0.0.1:{grpc_port}",
        "MOBILETRAIN_LB_HTTP_BIND": f"127.0.0.1:{http_port}",
    }
    for n, r in enumerate(replicas, start=1):
        env[f"MOBILETRAIN_REPLICA_{n}_HOST"] = "127.0.0.1"
        env[f"MOBILETRAIN_REPLICA_{n}_GRPC_PORT"] = str(r.grpc_port)
        env[f"MOBILETRAIN_REPLICA_{n}_HTTP_PORT"] = str(r.http_port)
    proc = subprocess.Popen(
        [shutil.which("haproxy") or "/usr/sbin/haproxy", "-db", "-W", "-f", str(HAPROXY_CFG)],
        env=env,
        stdout=open(log_dir / "haproxy.log", "wb"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    _wait_ok(f"http://127.0.0.1:{http_port}/healthz", proc, 20)
    return proc, grpc_port


def _running_job(database_url: str) -> str:
    """A project and a job in the running state (no executor picks it up), made directly in
    the store like the rows a claimed job has."""
    from mobiletrain.core.types import (
        Hyperparameters,
        InputSpec,
        Job,
        JobState,
        Project,
        TaskType,
    )
    from mobiletrain.store.sql import SqlMetadataStore

    store = SqlMetadataStore(database_url)
    now = datetime.now(UTC)
    project = store.create_project(
        Project(
            id=str(uuid.uuid4()),
            name=f"latency-{uuid.uuid4().hex[:8]}",
            task=TaskType.IMAGE_CLASSIFICATION,
            labels=[],
            labels_fixed=False,
            input_spec=InputSpec(32, 32),
            created_at=now,
        )
    )
    job = store.create_job(
        Job(
            id=str(uuid.uuid4()),
            project_id=project.id,
            state=JobState.RUNNING,
            hyperparameters=Hyperparameters(epochs=1),
            created_at=now,
        )
    )
    store.close()
    return job.id


def _watch(
    target: str,
    token: str,
    job_id: str,
    out: list[tuple[int, float, float]],
    ready: threading.Event,
) -> None:
    from mobiletrain._proto.mobiletrain.v1 import training_pb2
    from mobiletrain.client.sdk import Client

    with Client(target, token=token) as client:
        stream = client.training.WatchJob(
            training_pb2.WatchJobRequest(job_id=job_id, after_seq=0), timeout=300
        )
        ready.set()
        for ev in stream:
            received = time.time()
            if ev.WhichOneof("payload") == "state_changed":
                if ev.state_changed.state == training_pb2.JOB_STATE_SUCCEEDED:
                    return
                continue
            created = ev.created_at.seconds + ev.created_at.nanos / 1e9
            out.append((int(ev.seq), created, received))


def _measure(
    database_url: str, targets: list[str], token: str, events: int, rate: float
) -> dict[str, Any]:
    job_id = _running_job(database_url)
    lists: list[list[tuple[int, float, float]]] = [[] for _ in targets]
    threads = []
    for target, out in zip(targets, lists, strict=True):
        ready = threading.Event()
        t = threading.Thread(target=_watch, args=(target, token, job_id, out, ready), daemon=True)
        t.start()
        ready.wait(30)
        threads.append(t)
    time.sleep(1.0)  # the watch streams are open and waiting
    writer = subprocess.run(
        [sys.executable, "-c", WRITER, database_url, job_id, str(events), str(rate)],
        check=True,
        capture_output=True,
        timeout=events / rate + 120,
    )
    committed = {int(k): v for k, v in json.loads(writer.stdout).items()}
    for t in threads:
        t.join(timeout=60)
    every = [(received - created) * 1000.0 for out in lists for _, created, received in out]
    delivery = [
        (received - committed[seq]) * 1000.0
        for out in lists
        for seq, _, received in out
        if seq in committed
    ]
    p, d = percentiles(every), percentiles(delivery)
    write = percentiles([(committed[seq] - c) * 1000.0 for seq, c, _ in lists[0]])
    return {
        "watchers": len(targets),
        "events_per_watcher": [len(out) for out in lists],
        "n": len(every),
        "p50_ms": round(p["p50"], 1),
        "p99_ms": round(p["p99"], 1),
        "max_ms": round(max(every), 1),
        # The two parts: the append itself (commit, fsync) and commit -> watcher (delivery).
        "write_p50_ms": round(write["p50"], 1),
        "write_p99_ms": round(write["p99"], 1),
        "delivery_p50_ms": round(d["p50"], 1),
        "delivery_p99_ms": round(d["p99"], 1),
    }


def one_server(push: bool, events: int, rate: float, tmp: Path) -> dict[str, Any]:
    """One server on SQLite (the embedded default); the writer is another process."""
    data = tmp / f"one-{'push' if push else 'poll'}"
    server = Serve(data, None, push)
    try:
        url = f"sqlite:///{data / 'mobiletrain.db'}"
        token = (data / "admin-token").read_text().strip()
        target = f"127.0.0.1:{server.grpc_port}"
        return _measure(url, [target, target], token, events, rate)
    finally:
        server.stop()


def two_replicas(
    push: bool, events: int, rate: float, tmp: Path, postgres_url: str
) -> dict[str, Any]:
    """Two replicas on PostgreSQL behind HAProxy; one watcher lands on each."""
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(postgres_url)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in postgres_url else "?"
    url = f"{postgres_url}{sep}options=-csearch_path%3D{schema}"
    replicas: list[Serve] = []
    lb: subprocess.Popen[bytes] | None = None
    try:
        for name in ("a", "b"):
            replicas.append(Serve(tmp / f"{name}-{'push' if push else 'poll'}", url, push))
        lb, grpc_port = _haproxy(replicas, tmp)
        token = (replicas[0].data_dir / "admin-token").read_text().strip()
        target = f"127.0.0.1:{grpc_port}"
        return _measure(url, [target, target], token, events, rate)
    finally:
        if lb is not None:
            os.killpg(lb.pid, signal.SIGTERM)
            lb.wait(timeout=10)
        for r in replicas:
            r.stop()
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run(events: int, rate: float) -> dict[str, Any]:
    """Every set-up, polled then pushed; returns the results document."""
    postgres_url = os.environ.get("MOBILETRAIN_BENCH_POSTGRES_URL") or os.environ.get(
        "MOBILETRAIN_TEST_POSTGRES_URL", ""
    )
    have_lb = shutil.which("haproxy") is not None or Path("/usr/sbin/haproxy").exists()
    rows: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="mt-fleet-latency-") as tmp_name:
        tmp = Path(tmp_name)
        for push in (False, True):
            mode = "push" if push else "poll (50 ms)"
            rows[f"one server, SQLite, {mode}"] = one_server(push, events, rate, tmp)
            if postgres_url and have_lb:
                rows[f"two replicas via HAProxy, PostgreSQL, {mode}"] = two_replicas(
                    push, events, rate, tmp, postgres_url
                )
    return {
        "commit": git_commit(),
        "machine": machine(),
        "load_average_after": load_average(),
        "events": events,
        "rate_per_s": rate,
        "results": rows,
    }


def run_fleet(quick: bool = False) -> dict[str, Any]:
    """Entry for ``bench/run.py``: 30 events per set-up when quick, else 200; a full run also
    writes ``bench/results/fleet_latency.json`` (a smoke run leaves it alone)."""
    doc = run(30 if quick else 200, 20.0)
    if not quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def rows(result: dict[str, Any]) -> list[Row]:
    """One row per set-up: pushed against the old 50 ms poll of the same run (goal: #18)."""
    out: list[Row] = []
    found = result["results"]
    for setup in ("one server, SQLite", "two replicas via HAProxy, PostgreSQL"):
        push, poll = found.get(f"{setup}, push"), found.get(f"{setup}, poll (50 ms)")
        if push is None or poll is None:
            continue
        out.append(
            Row(
                f"progress latency, pushed: {setup} (writer process, {push['n']} deliveries)",
                "callback → watcher (commit → watcher)",
                f"p50 {push['p50_ms']:.1f} ms, p99 {push['p99_ms']:.1f} ms "
                f"({push['delivery_p50_ms']:.1f} / {push['delivery_p99_ms']:.1f} ms)",
                f"50 ms poll: p50 {poll['p50_ms']:.1f} ms, p99 {poll['p99_ms']:.1f} ms "
                f"({poll['delivery_p50_ms']:.1f} / {poll['delivery_p99_ms']:.1f} ms)",
                ratio(push["p99_ms"], poll["p99_ms"]),
                "p99 ≤ 20 ms",
                push["p99_ms"] <= 20.0,
                "of the polled p99",
            )
        )
    return out


def main() -> None:
    """Command line: run, print a table, write bench/results/fleet_latency.json."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--quick", action="store_true", help="30 events (a smoke run)")
    args = parser.parse_args()
    doc = run(30 if args.quick else args.events, args.rate)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"{'set-up':52} {'n':>4} {'p50/p99 ms':>14} {'write p50/p99':>14} {'commit->watch':>14}")
    for name, r in doc["results"].items():
        print(
            f"{name:52} {r['n']:4d} {r['p50_ms']:6.1f}/{r['p99_ms']:<7.1f}"
            f" {r['write_p50_ms']:6.1f}/{r['write_p99_ms']:<7.1f}"
            f" {r['delivery_p50_ms']:6.1f}/{r['delivery_p99_ms']:<7.1f}"
        )
    print(f"load average after: {doc['load_average_after']}")


if __name__ == "__main__":
    main()
