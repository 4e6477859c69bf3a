"""Concurrent uploaders and progress writers against one real server on SQLite.

50 uploaders (phones: each with its own device token and connection) send at once, half over
gRPC (``UploadSamples``) and half over REST (multipart or base64 JSON). Each sends its own
samples, two samples it shares with a neighbour (same client ids and bytes), and three images
every uploader has (same bytes and label, each under its own client id); then it sends everything
again, as a retry after a lost reply would. Meanwhile training progress is written to three jobs
the way workers do: threads of the server process call ``store.append_event``, and two other
processes append through their own ``SqlMetadataStore`` on the same SQLite file, while a
``WatchJob`` stream follows each job.

Expected: no error reaches anyone ("database is locked" included, in replies or the server log),
every upload reply has one result per sample, in order, with nothing rejected, the retries are
all duplicates, the class counts are exactly the distinct samples, and each job's events are
numbered 1..N with no gap or repeat, in the store and as the watchers received them.
"""

from __future__ import annotations

import base64
import io
import logging
import multiprocessing
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from PIL import Image

from mobiletrain._proto.mobiletrain.v1 import (
    datasets_pb2,
    datasets_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)
from mobiletrain.client.sdk import BearerToken
from mobiletrain.config import Settings
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
from mobiletrain.server import RunningServer, start_server
from mobiletrain.store.sql import SqlMetadataStore

pytestmark = pytest.mark.timeout(180)

UPLOADERS = 50
OWN_SAMPLES = 6
SHARED_PER_PAIR = 2
LABELS = ("cat", "dog", "bird")
JOBS = 3
WRITER_THREADS = 6
WRITER_PROCESSES = 2
EVENTS_PER_WRITER_PER_JOB = 25
DEADLINE_S = 90.0


def png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


@dataclass(frozen=True)
class Item:
    client_id: str
    label: str
    data: bytes


# Pictures every uploader has (same bytes and label), each under its own client id.
COMMON = [Item("", LABELS[k], png(10_000 + k)) for k in range(3)]


def plan(uploader: int) -> list[Item]:
    """What one uploader sends (once, then again as a retry)."""
    own = [
        Item(f"u{uploader:02d}-s{j}", LABELS[(uploader + j) % 3], png(uploader * 100 + j))
        for j in range(OWN_SAMPLES)
    ]
    pair = uploader // 2
    shared = [
        Item(f"pair{pair:02d}-{k}", LABELS[(pair + k) % 3], png(50_000 + pair * 10 + k))
        for k in range(SHARED_PER_PAIR)
    ]
    common = [Item(f"u{uploader:02d}-common{k}", c.label, c.data) for k, c in enumerate(COMMON)]
    return [*common[:1], *own, *shared, *common[1:]]


def expected_counts() -> Counter[str]:
    """Labels of the distinct samples: by client id, then by (bytes, label)."""
    seen_ids: set[str] = set()
    seen_content: set[tuple[bytes, str]] = set()
    counts: Counter[str] = Counter()
    for u in range(UPLOADERS):
        for item in plan(u):
            key = (item.data, item.label)
            if item.client_id in seen_ids or key in seen_content:
                continue
            seen_ids.add(item.client_id)
            seen_content.add(key)
            counts[item.label] += 1
    return counts


# --- uploaders ----------------------------------------------------------------------------------


@dataclass
class Reply:
    transport: str
    client_ids: list[str]  # in the order of the results
    statuses: list[str]  # accepted / duplicate / rejected
    seconds: float


def upload_grpc(address: str, token: str, project: str, items: list[Item]) -> Reply:
    started = time.monotonic()
    channel = grpc.intercept_channel(grpc.insecure_channel(address), BearerToken(token))
    with channel:
        stub = datasets_pb2_grpc.DatasetServiceStub(channel)
        half = len(items) // 2  # two messages in the stream, as a batching client sends
        requests = [
            datasets_pb2.UploadSamplesRequest(
                project=project if i == 0 else "",
                inline_batch=datasets_pb2.InlineSampleBatch(
                    samples=[
                        datasets_pb2.InlineSample(client_id=s.client_id, label=s.label, data=s.data)
                        for s in part
                    ]
                ),
            )
            for i, part in enumerate((items[:half], items[half:]))
        ]
        reply = stub.UploadSamples(iter(requests), timeout=DEADLINE_S)
    names = {v.number: v.name for v in datasets_pb2.SampleStatus.DESCRIPTOR.values}
    return Reply(
        "grpc",
        [r.client_id for r in reply.results],
        [names[r.status].removeprefix("SAMPLE_STATUS_").lower() for r in reply.results],
        time.monotonic() - started,
    )


def upload_rest(base: str, token: str, project: str, items: list[Item], multipart: bool) -> Reply:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=DEADLINE_S) as client:
        if multipart:
            response = client.post(
                f"/v1/projects/{project}/samples",
                files=[("files", (f"{s.client_id}.png", s.data, "image/png")) for s in items],
                data={
                    "labels": [s.label for s in items],
                    "client_ids": [s.client_id for s in items],
                },
            )
        else:
            body = [
                {
                    "image": base64.b64encode(s.data).decode(),
                    "label": s.label,
                    "client_id": s.client_id,
                }
                for s in items
            ]
            response = client.post(f"/v1/projects/{project}/samples:base64", json=body)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    return Reply(
        "rest-multipart" if multipart else "rest-base64",
        [r["client_id"] for r in results],
        [r["status"] for r in results],
        time.monotonic() - started,
    )


# --- progress writers ---------------------------------------------------------------------------


def append_events(store: Any, job_ids: list[str], writer: str, count: int) -> int:
    """Append ``count`` progress events to each job, interleaved, as a worker does."""
    for i in range(count):
        for job_id in job_ids:
            store.append_event(
                job_id,
                EventKind.PROGRESS,
                {"epoch": 1, "epochs": 1, "batch": i, "batches": count, "writer": writer},
            )
    return count * len(job_ids)


def writer_process(
    database_url: str, job_ids: list[str], name: str, count: int, go: Any, out: Any
) -> None:
    """Another process (like a training worker) with its own store on the same database."""
    try:
        store = SqlMetadataStore(database_url, run_migrations=False)
        out.put(("ready", name))
        if not go.wait(60):
            raise TimeoutError("no start signal")
        started = time.monotonic()
        n = append_events(store, job_ids, name, count)
        out.put(("done", name, n, time.monotonic() - started))
        store.close()
    except BaseException as exc:  # reported to the test, which fails on it
        out.put(("error", name, repr(exc)))


def watch(address: str, token: str, job_id: str, seqs: list[int]) -> None:
    channel = grpc.intercept_channel(grpc.insecure_channel(address), BearerToken(token))
    with channel:
        stub = training_pb2_grpc.TrainingServiceStub(channel)
        for event in stub.WatchJob(training_pb2.WatchJobRequest(job_id=job_id), timeout=120):
            seqs.append(event.seq)


# --- the test -----------------------------------------------------------------------------------


@dataclass
class Live:
    server: RunningServer
    admin: str
    grpc: str
    http: str
    log: list[logging.LogRecord] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.WARNING)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    # No training worker: the jobs here only receive events written by the test.
    settings = Settings(data_dir=tmp_path / "data", grpc_port=0, http_port=0, max_workers=0)
    server = start_server(settings)
    records: list[logging.LogRecord] = []
    handler = _Collect(records)
    logging.getLogger().addHandler(handler)
    try:
        admin = (tmp_path / "data" / "admin-token").read_text().strip()
        yield Live(
            server,
            admin,
            f"127.0.0.1:{server.grpc_port}",
            f"http://127.0.0.1:{server.http_port}",
            records,
        )
    finally:
        logging.getLogger().removeHandler(handler)
        server.stop()


def _device_tokens(live: Live, project: str, count: int) -> list[str]:
    headers = {"Authorization": f"Bearer {live.admin}"}
    with httpx.Client(base_url=live.http, headers=headers, timeout=30) as client:
        return [
            client.post(
                "/v1/tokens", json={"kind": "device", "project": project, "name": f"phone {i}"}
            )
            .raise_for_status()
            .json()["token"]
            for i in range(count)
        ]


def _uploader(live: Live, token: str, project: str, u: int) -> Callable[[], list[Reply]]:
    items = plan(u)

    def send() -> Reply:
        if u % 2 == 0:
            return upload_grpc(live.grpc, token, project, items)
        return upload_rest(live.http, token, project, items, multipart=u % 4 == 1)

    return lambda: [send(), send()]  # the second time as a retry: all duplicates


def test_concurrent_uploads_and_progress_writers(live: Live) -> None:
    container = live.server.container
    store = container.store
    headers = {"Authorization": f"Bearer {live.admin}"}
    project = httpx.post(f"{live.http}/v1/projects", json={"name": "crowd"}, headers=headers).json()
    tokens = _device_tokens(live, "crowd", UPLOADERS)
    job_ids = []
    for _ in range(JOBS):
        job = Job(
            id=str(uuid.uuid4()),
            project_id=project["id"],
            state=JobState.QUEUED,
            hyperparameters=Hyperparameters(),
            created_at=datetime.now(UTC),
        )
        job_ids.append(store.create_job(job).id)

    # Writer processes first: they take a moment to start; all writers begin together.
    ctx = multiprocessing.get_context("spawn")
    go = ctx.Event()
    out: Any = ctx.Queue()
    url = container.settings.resolved_database_url()
    processes = [
        ctx.Process(
            target=writer_process,
            args=(url, job_ids, f"process-{p}", EVENTS_PER_WRITER_PER_JOB, go, out),
            daemon=True,
        )
        for p in range(WRITER_PROCESSES)
    ]
    for proc in processes:
        proc.start()
    messages = [out.get(timeout=60) for _ in processes]
    assert all(m[0] == "ready" for m in messages), messages

    watched: dict[str, list[int]] = {job_id: [] for job_id in job_ids}
    watchers = [
        threading.Thread(target=watch, args=(live.grpc, live.admin, j, watched[j]), daemon=True)
        for j in job_ids
    ]
    for t in watchers:
        t.start()

    uploads = [_uploader(live, tokens[u], "crowd", u) for u in range(UPLOADERS)]
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=UPLOADERS + WRITER_THREADS) as pool:
        go.set()
        writes = [
            pool.submit(append_events, store, job_ids, f"thread-{w}", EVENTS_PER_WRITER_PER_JOB)
            for w in range(WRITER_THREADS)
        ]
        sends = [pool.submit(upload) for upload in uploads]
        replies = [f.result(timeout=DEADLINE_S) for f in sends]
        upload_seconds = time.monotonic() - started
        thread_events = sum(f.result(timeout=DEADLINE_S) for f in writes)
    process_results = [out.get(timeout=DEADLINE_S) for _ in processes]
    write_seconds = time.monotonic() - started
    for proc in processes:
        proc.join(timeout=30)
    errors = [r for r in process_results if r[0] != "done"]
    assert not errors, errors

    # Every reply: one result per sample, in order; nothing rejected; retries all duplicates.
    transports: Counter[str] = Counter()
    for u, (first, retry) in enumerate(replies):
        sent = [item.client_id for item in plan(u)]
        for reply in (first, retry):
            transports[reply.transport] += 1
            assert reply.client_ids == sent, (u, reply)
            assert "rejected" not in reply.statuses, (u, reply)
        assert set(retry.statuses) == {"duplicate"}, (u, retry)
    statuses = Counter(s for first, _ in replies for s in first.statuses)
    expected = expected_counts()
    assert statuses["accepted"] == sum(expected.values())

    counts = httpx.get(f"{live.http}/v1/projects/crowd/class-counts", headers=headers).json()
    assert counts["counts"] == {label: expected[label] for label in LABELS}
    assert counts["total"] == sum(expected.values())

    # Events: 1..N per job in the store; then a final state event ends each watch.
    per_job = (WRITER_THREADS + WRITER_PROCESSES) * EVENTS_PER_WRITER_PER_JOB
    for job_id in job_ids:
        seqs = [e.seq for e in store.list_events(job_id, 0, 10_000)]
        assert seqs == list(range(1, per_job + 1)), job_id
        store.finish_job(job_id, JobState.SUCCEEDED)
        store.append_event(job_id, EventKind.STATE, {"state": JobState.SUCCEEDED.value})
    container.hub.notify()
    for t in watchers:
        t.join(timeout=60)
        assert not t.is_alive(), "a WatchJob stream did not end"
    for job_id, seqs in watched.items():
        assert seqs == list(range(1, per_job + 2)), (job_id, seqs[:5], len(seqs))

    problems = [
        r.getMessage() for r in live.log if r.levelno >= logging.ERROR or "locked" in r.getMessage()
    ]
    assert not problems, problems

    samples_sent = sum(len(plan(u)) for u in range(UPLOADERS)) * 2
    process_events = sum(r[2] for r in process_results)
    print(
        f"\nconcurrency: {UPLOADERS} uploaders ({dict(transports)} requests), "
        f"{samples_sent} samples sent ({statuses['accepted']} stored) in {upload_seconds:.2f} s "
        f"= {samples_sent / upload_seconds:.0f} samples/s, "
        f"{2 * UPLOADERS / upload_seconds:.1f} upload requests/s; "
        f"slowest reply {max(r.seconds for pair in replies for r in pair):.2f} s; "
        f"{thread_events + process_events} events by {WRITER_THREADS} threads + "
        f"{WRITER_PROCESSES} processes in {write_seconds:.2f} s "
        f"= {(thread_events + process_events) / write_seconds:.0f} events/s"
    )


def test_plan_has_overlaps() -> None:
    """The plan really contains the overlaps the test relies on."""
    ids = Counter(item.client_id for u in range(UPLOADERS) for item in plan(u))
    assert sum(1 for n in ids.values() if n == 2) == UPLOADERS // 2 * SHARED_PER_PAIR
    content = Counter((item.data, item.label) for u in range(UPLOADERS) for item in plan(u))
    assert all(content[(c.data, c.label)] == UPLOADERS for c in COMMON)


def test_store_add_samples_under_contention(tmp_path: Path) -> None:
    """Many writers of overlapping sets of the same pictures straight into the store (no HTTP
    in between, so conflicts between reading and inserting are frequent, and a re-run can
    meet a second conflict): each picture is stored once, every writer learns which of its
    samples are duplicates, and no error escapes."""
    store = SqlMetadataStore(f"sqlite:///{tmp_path / 'meta.db'}")
    try:
        project = store.create_project(
            Project(
                id=str(uuid.uuid4()),
                name="p",
                task=TaskType.IMAGE_CLASSIFICATION,
                labels=[],
                labels_fixed=False,
                input_spec=InputSpec(),
                created_at=datetime.now(UTC),
            )
        )
        writers, rounds, pictures = 16, 8, 8
        barrier = threading.Barrier(writers)

        def sample(w: int, r: int, k: int) -> Sample:
            return Sample(
                id=str(uuid.uuid4()),
                project_id=project.id,
                client_id=f"w{w}-r{r}-{k}",
                label="x",
                sha256=f"{r:02d}{k:062d}",
                size=1,
                media_type="image/png",
                width=1,
                height=1,
                created_at=datetime.now(UTC),
            )

        def write(w: int) -> list[int]:
            stored = []
            for r in range(rounds):
                # Overlapping subsets: a writer's commit stores only some of another's pictures.
                batch = [sample(w, r, (w + step) % pictures) for step in (0, 3, 5)]
                barrier.wait(timeout=30)
                twins = store.add_samples(batch)
                stored.append(sum(t is None for t in twins))
            return stored

        with ThreadPoolExecutor(max_workers=writers) as pool:
            results = list(pool.map(write, range(writers)))
        for r in range(rounds):
            assert sum(per_writer[r] for per_writer in results) == pictures
        assert store.class_counts(project.id) == {"x": rounds * pictures}
    finally:
        store.close()
