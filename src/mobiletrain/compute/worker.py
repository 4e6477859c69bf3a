"""Worker process: runs one training job and records its outcome.

Started by the executor as ``python -m mobiletrain.compute.worker --job-id ...``. This is the
only kind of process that imports TensorFlow (through ``compute.keras``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mobiletrain.compute import checkpoints, streaming
from mobiletrain.compute.protocol import TrainingRequest
from mobiletrain.compute.release_step import publish_version, split_eval_set
from mobiletrain.compute.sample_bytes import (
    BlobSampleBytes,
    Skipped,
    check_skipped,
    load_training_bytes,
    read_sample_bytes,
)
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.lifecycle import JobLifecycle
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.storage import is_storage_full
from mobiletrain.core.types import (
    EventKind,
    Job,
    JobPhase,
    JobState,
    Project,
    Sample,
    TaskType,
)
from mobiletrain.store.blobs import open_blob_store
from mobiletrain.store.sql import SqlMetadataStore

log = logging.getLogger("mobiletrain.worker")


class StoreReporter:
    """Writes progress events to the metadata store and reads the cancel flag (throttled)."""

    def __init__(self, store: MetadataStore, job_id: str, check_interval: float = 1.0) -> None:
        self.store = store
        self.job_id = job_id
        self.check_interval = check_interval
        self._last_check = 0.0
        self._stop = False
        # LOG events with level "warning": the version carries them (honest outcomes).
        self.warnings: list[str] = []

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        """Append one event."""
        if kind is EventKind.LOG and data.get("level") == "warning":
            self.warnings.append(str(data.get("message", "")))
        self.store.append_event(self.job_id, kind, data)

    def should_stop(self) -> bool:
        """True once the job was cancelled; reads the store at most once per interval."""
        now = time.monotonic()
        if not self._stop and now - self._last_check >= self.check_interval:
            self._last_check = now
            job = self.store.get_job(self.job_id)
            self._stop = job is None or job.cancel_requested
        return self._stop


class Heartbeat:
    """Renews the job's lease three times per lease period while the worker lives."""

    def __init__(self, store: MetadataStore, job_id: str, lease_seconds: float) -> None:
        self.store = store
        self.job_id = job_id
        self.lease_seconds = lease_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        """Begin renewing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing."""
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                if not self.store.renew_lease(self.job_id, self.lease_seconds):
                    return  # the job is no longer running (finished or re-queued)
            except Exception:  # a busy database must not kill training; try again
                log.warning("lease renewal failed", exc_info=True)


def _base_model_path(job: Job, base_models_dir: Path | None) -> Path | None:
    name = job.hyperparameters.base_model
    if not name:
        return None
    # Never build a path from a client string beyond one plain file name in the configured dir.
    if base_models_dir is None or Path(name).name != name or name in (".", ".."):
        raise MobiletrainError(
            ErrorCode.INVALID_HYPERPARAMETERS,
            "base_model must name a file in the server's base models folder",
        )
    path = base_models_dir / name
    if not path.is_file():
        raise MobiletrainError(ErrorCode.INVALID_HYPERPARAMETERS, f"base model {name!r} not found")
    return path


def _training_request(
    store: MetadataStore,
    blobs: BlobStore,
    job: Job,
    project: Project,
    work_dir: Path,
    base_models_dir: Path | None,
    reporter: StoreReporter | None = None,
) -> tuple[TrainingRequest, list[Sample]]:
    if reporter is not None:  # first thing: the watcher learns the job left the queue
        reporter.emit(
            EventKind.PHASE, {"phase": JobPhase.PREPARING_DATA.value, "eta_seconds": None}
        )
    everything = store.all_samples(project.id)
    # The project's fixed evaluation set never trains: only the other samples go on.
    samples = split_eval_set(store, project, everything)
    if reporter is not None:
        reporter.emit(
            EventKind.LOG,
            {
                "message": f"loading {len(samples)} samples "
                f"({len(everything) - len(samples)} more form the fixed evaluation set)"
            },
        )
    # Large jobs stream (compute/streaming.py): every sample's bytes are still read and checked
    # here, but only their digests are kept; the trainer reads them again batch by batch.
    data_plan = streaming.plan(project.input_spec, len(samples))
    # Damaged samples are skipped with a warning event naming them (see compute.sample_bytes).
    samples, loaded = _load_bytes(
        blobs, project, samples, job.hyperparameters.epochs, reporter, keep=not data_plan.stream
    )
    images: Sequence[bytes] = loaded
    if data_plan.stream:
        images = BlobSampleBytes(blobs, [s.sha256 for s in samples], [s.id for s in samples])
        if reporter is not None:
            reporter.emit(
                EventKind.LOG,
                {
                    "message": f"streaming {len(samples)} samples from the blob store"
                    + (" (decoded copies cached on disk)" if data_plan.disk_cache else "")
                },
            )
    present = {s.label for s in samples}
    boxes = None
    if project.task is TaskType.OBJECT_DETECTION:
        # A detector's classes are every box label, not only each image's most frequent one.
        boxes = [list(s.boxes or []) for s in samples]
        present |= {b.label for image_boxes in boxes for b in image_boxes}
    label_names = [lab for lab in project.labels if lab in present]
    # A reserved label the project does not list (detection's "_no_boxes_") goes last.
    label_names += sorted(present - set(project.labels))
    index = {lab: i for i, lab in enumerate(label_names)}
    request = TrainingRequest(
        images=images,
        labels=[index[s.label] for s in samples],
        sample_ids=[s.id for s in samples],
        label_names=label_names,
        input_spec=project.input_spec,
        hyperparameters=job.hyperparameters,
        work_dir=work_dir,
        base_model_path=_base_model_path(job, base_models_dir),
        expected_post_seconds=_expected_post_seconds(store, project),
        data_cache=data_plan.disk_cache,
        boxes=boxes,
    )
    return request, everything


LOAD_CHUNK = 256
"""Samples read per blob-store round trip while preparing data (one PROGRESS event each,
throttled): the dashboard shows data loading move instead of a silent "Preparing data"."""

PREPARE_PROGRESS_INTERVAL_S = 0.5


def _load_bytes(
    blobs: BlobStore,
    project: Project,
    samples: list[Sample],
    epochs: int,
    reporter: StoreReporter | None,
    keep: bool = True,
) -> tuple[list[Sample], list[bytes]]:
    """:func:`load_training_bytes` in chunks, with PROGRESS events (phase "preparing data",
    ``batch``/``batches`` = samples read / to read) while it goes. ``keep=False`` (a streamed
    job) checks every sample's bytes the same way but returns no bytes (memory flat in N)."""
    started = time.monotonic()
    if keep and (reporter is None or len(samples) <= LOAD_CHUNK):
        emit = reporter.emit if reporter is not None else None
        loaded = load_training_bytes(blobs, project, samples, emit)
        if reporter is not None:
            _prepare_progress(reporter, len(samples), len(samples), epochs, started)
        return loaded
    kept: list[Sample] = []
    images: list[bytes] = []
    skipped: Skipped = []
    last = float("-inf")
    for start in range(0, len(samples), LOAD_CHUNK):
        chunk = samples[start : start + LOAD_CHUNK]
        usable, data, lost = read_sample_bytes(blobs, chunk)
        kept += usable
        if keep:
            images += data
        skipped += lost
        done = start + len(chunk)
        now = time.monotonic()
        if reporter is None:
            continue
        if now - last >= PREPARE_PROGRESS_INTERVAL_S or done == len(samples):
            last = now
            _prepare_progress(reporter, done, len(samples), epochs, started)
    if skipped:
        check_skipped(project, kept, skipped, reporter.emit if reporter is not None else None)
    return kept, images


def _prepare_progress(
    reporter: StoreReporter, done: int, total: int, epochs: int, started: float
) -> None:
    # epoch 0: no epoch has begun; the rate and ETA are those of reading the samples.
    rate = done / max(time.monotonic() - started, 1e-6)
    reporter.emit(
        EventKind.PROGRESS,
        {
            "phase": JobPhase.PREPARING_DATA.value,
            "epoch": 0,
            "epochs": epochs,
            "batch": done,
            "batches": total,
            "samples_per_second": round(rate, 1),
            "eta_seconds": round((total - done) / rate, 1) if rate > 0 else 0.0,
        },
    )


def _expected_post_seconds(store: MetadataStore, project: Project) -> float | None:
    """Export plus evaluation seconds of the project's newest version (for the job ETA)."""
    versions = store.list_model_versions(project.id)
    if not versions:
        return None
    metrics = versions[0].metrics
    measured = [metrics.get("export_seconds"), metrics.get("evaluation_seconds")]
    values = [float(v) for v in measured if isinstance(v, int | float)]
    return sum(values) if values else None


class _SilentReporter:
    """What a non-chief worker of a multi-worker job reports: nothing (the chief does)."""

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        """Drop the event."""

    def should_stop(self) -> bool:
        """Never: the chief notices cancellation and the executor ends every worker."""
        return False


def run_peer(
    store: MetadataStore,
    blobs: BlobStore,
    job_id: str,
    work_dir: Path,
    strategy: Any,
    base_models_dir: Path | None = None,
) -> None:
    """A non-chief worker of a multi-worker job: train in step with the chief, record nothing."""
    from mobiletrain.compute.keras.train import train_and_export

    job = store.get_job(job_id)
    project = store.get_project(job.project_id) if job is not None else None
    if job is None or project is None:
        raise RuntimeError(f"job {job_id} not found")
    request, _ = _training_request(store, blobs, job, project, work_dir, base_models_dir)
    train_and_export(request, _SilentReporter(), strategy=strategy)


def run_job(
    store: MetadataStore,
    blobs: BlobStore,
    job_id: str,
    work_dir: Path,
    base_models_dir: Path | None = None,
    strategy: Any = None,
) -> JobState:
    """Train, export, publish a model version and record the job's final state.

    ``strategy``: a multi-worker tf.distribute strategy when this process is the chief of a
    multi-worker job (the other workers run :func:`run_peer`). Once the job has ended, its
    checkpoints (``work_dir/checkpoint``) are removed: no attempt will resume from them.
    """
    state = _run_job(store, blobs, job_id, work_dir, base_models_dir, strategy)
    if state.is_terminal:
        checkpoints.remove(work_dir)
    return state


def _run_job(
    store: MetadataStore,
    blobs: BlobStore,
    job_id: str,
    work_dir: Path,
    base_models_dir: Path | None,
    strategy: Any,
) -> JobState:
    from mobiletrain.compute.keras.train import train_and_export

    job = store.get_job(job_id)
    if job is None:
        raise SystemExit(f"job {job_id} not found")
    project = store.get_project(job.project_id)
    assert project is not None
    reporter = StoreReporter(store, job.id)
    try:
        request, samples = _training_request(
            store, blobs, job, project, work_dir, base_models_dir, reporter
        )
        label_names = request.label_names
        output = train_and_export(request, reporter, strategy=strategy)
        if output.cancelled:
            return _finish(store, job.id, JobState.CANCELLED, work_dir=work_dir)

        # The release gate (compute/release_step.py): evaluate on the fixed evaluation set next
        # to the current version, decide, embed the model card, store and maybe promote.
        reporter.emit(EventKind.PHASE, {"phase": JobPhase.EVALUATING.value, "eta_seconds": None})
        train_ids = set(request.sample_ids)
        model = publish_version(
            store,
            blobs,
            job,
            project,
            samples,
            [s for s in samples if s.id in train_ids],
            label_names,
            output,
            reporter.warnings,
            reporter.emit,
        )
        return _finish(
            store, job.id, JobState.SUCCEEDED, model_version=model.version, work_dir=work_dir
        )
    except MobiletrainError as exc:
        return _finish(
            store,
            job.id,
            JobState.FAILED,
            error=exc.message,
            error_code=exc.code,
            work_dir=work_dir,
        )
    except Exception as exc:  # a bug or a resource problem: fail the job, keep a reason
        if is_storage_full(exc):  # expected, not a bug: one line, and the stable code
            log.warning("job %s failed: the server's storage is full (%s)", job_id, exc)
            return _finish(
                store,
                job.id,
                JobState.FAILED,
                error="training failed: the server's storage is full; free space and train again",
                error_code=ErrorCode.STORAGE_FULL,
                work_dir=work_dir,
            )
        log.exception("job %s failed", job_id)
        return _finish(
            store,
            job.id,
            JobState.FAILED,
            error=f"training failed: {type(exc).__name__}: {exc}",
            work_dir=work_dir,
        )


def _finish(
    store: MetadataStore,
    job_id: str,
    state: JobState,
    error: str = "",
    model_version: int | None = None,
    error_code: ErrorCode | None = None,
    work_dir: Path | None = None,
) -> JobState:
    # A cancelled or failed job is never resumed: its checkpoints go before its final state is
    # announced, so a watcher that sees the state finds them gone. A succeeded job keeps its
    # "finished" checkpoint until the state is written (a crash in between must not retrain
    # and publish twice); run_job removes it right after.
    if work_dir is not None and state is not JobState.SUCCEEDED:
        try:
            checkpoints.remove(work_dir)
        except OSError:  # cleanup must not keep the outcome from being recorded
            log.warning("could not remove the checkpoints of job %s", job_id, exc_info=True)
    # Watchers end their stream at the terminal state event (JobLifecycle writes both).
    return JobLifecycle(store).finish(job_id, state, error, model_version, error_code)


def _wait_for_order() -> dict[str, str] | None:
    """A warm worker's order: one JSON line on stdin ({job_id, work_dir, log_path}); None on
    end of input (the server stopped or went away: nothing to do)."""
    line = sys.stdin.readline()
    if not line.strip():
        return None
    order: dict[str, str] = json.loads(line)
    return order


def _redirect_output(log_path: Path) -> None:
    """From now on this process's stdout and stderr (TensorFlow's C++ logs included) go to the
    job's log file, as a cold worker's do."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process.

    With ``--warm`` the process imports TensorFlow and opens the stores first, then waits for
    its job on stdin (the local executor keeps one such process ready, so a job skips the
    interpreter start and the TensorFlow import: see docs/architecture.md).
    """
    parser = argparse.ArgumentParser(description="mobiletrain training worker")
    parser.add_argument("--job-id", default="")
    parser.add_argument("--warm", action="store_true", help="wait for the job on stdin")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--blob-url", required=True)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--base-models-dir", type=Path, default=None)
    parser.add_argument("--lease-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    if not args.warm and (not args.job_id or args.work_dir is None):
        parser.error("--job-id and --work-dir are required (or --warm)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    if args.warm:
        import mobiletrain.compute.keras.train  # noqa: F401  (the slow import, done ahead)
    store = SqlMetadataStore(args.database_url, run_migrations=False)
    blobs = open_blob_store(args.blob_url)
    job_id, work_dir = args.job_id, args.work_dir
    if args.warm:
        log.info("warm worker pid %d ready", os.getpid())  # the bench waits for this line
        sys.stderr.flush()
        order = _wait_for_order()
        if order is None:
            blobs.close()
            store.close()
            return 0
        job_id, work_dir = order["job_id"], Path(order["work_dir"])
        _redirect_output(Path(order["log_path"]))
        log.info("warm worker pid %d took job %s", os.getpid(), job_id)
    heartbeat = Heartbeat(store, job_id, args.lease_seconds)
    heartbeat.start()
    try:
        state = run_job(store, blobs, job_id, work_dir, args.base_models_dir)
    finally:
        heartbeat.stop()
        blobs.close()
        store.close()
    log.info("job %s ended: %s", job_id, state.value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
