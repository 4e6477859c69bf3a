"""Worker process: runs one training job and records its outcome.

Started by the executor as ``python -m mobiletrain.compute.worker --job-id ...``. This is the
only kind of process that imports TensorFlow (through ``compute.keras``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mobiletrain.compute import checkpoints
from mobiletrain.compute.protocol import TrainingRequest
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.types import (
    Artifact,
    EventKind,
    Job,
    JobState,
    ModelFormat,
    ModelVersion,
    Project,
    Sample,
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

    def emit(self, kind: EventKind, data: dict[str, Any]) -> None:
        """Append one event."""
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
    samples = store.all_samples(project.id)
    if reporter is not None:
        reporter.emit(EventKind.LOG, {"message": f"loading {len(samples)} samples"})
    present = {s.label for s in samples}
    label_names = [lab for lab in project.labels if lab in present]
    index = {lab: i for i, lab in enumerate(label_names)}
    request = TrainingRequest(
        images=blobs.get_many([s.sha256 for s in samples]),
        labels=[index[s.label] for s in samples],
        sample_ids=[s.id for s in samples],
        label_names=label_names,
        input_spec=project.input_spec,
        hyperparameters=job.hyperparameters,
        work_dir=work_dir,
        base_model_path=_base_model_path(job, base_models_dir),
    )
    return request, samples


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
            return _finish(store, job.id, JobState.CANCELLED)

        artifacts: dict[ModelFormat, Artifact] = {}
        files: dict[str, Any] = {}
        for fmt, data in output.artifacts.items():
            sha = blobs.put(data)
            artifacts[fmt] = Artifact(format=fmt, sha256=sha, size=len(data))
            files[fmt.value] = {
                "file": f"model-{fmt.value}{fmt.file_extension}",
                "sha256": sha,
                "size": len(data),
            }
        blobs.sync()  # durable before the version row points at them
        snapshot = hashlib.sha256(
            json.dumps(sorted((s.sha256, s.label) for s in samples)).encode()
        ).hexdigest()
        manifest = {
            **output.manifest,
            "files": files,
            "dataset": {
                "num_samples": len(samples),
                "class_counts": {
                    lab: sum(1 for s in samples if s.label == lab) for lab in label_names
                },
                "snapshot_sha256": snapshot,
                "split": {
                    "seed": output.split.get("seed"),
                    "validation_fraction": output.split.get("validation_fraction"),
                    "num_train": len(output.split.get("train_ids", [])),
                    "num_validation": len(output.split.get("validation_ids", [])),
                },
            },
            "job_id": job.id,
            "project": {"id": project.id, "name": project.name},
        }
        metrics = {**output.metrics, "split": output.split}
        model = store.create_model_version(
            ModelVersion(
                project_id=project.id,
                version=0,
                job_id=job.id,
                created_at=datetime.now(UTC),
                metrics=metrics,
                manifest=manifest,
                artifacts=artifacts,
            )
        )
        return _finish(store, job.id, JobState.SUCCEEDED, model_version=model.version)
    except MobiletrainError as exc:
        return _finish(store, job.id, JobState.FAILED, error=exc.message)
    except Exception as exc:  # a bug or a resource problem: fail the job, keep a reason
        log.exception("job %s failed", job_id)
        return _finish(
            store, job.id, JobState.FAILED, error=f"training failed: {type(exc).__name__}: {exc}"
        )


def _finish(
    store: MetadataStore,
    job_id: str,
    state: JobState,
    error: str = "",
    model_version: int | None = None,
) -> JobState:
    # Watchers end their stream at the terminal state event.
    store.finish_job(job_id, state, error, model_version)
    data: dict[str, Any] = {"state": state.value}
    if error:
        data["error"] = error
    if model_version is not None:
        data["model_version"] = model_version
    store.append_event(job_id, EventKind.STATE, data)
    return state


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker process."""
    parser = argparse.ArgumentParser(description="mobiletrain training worker")
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--blob-url", required=True)
    parser.add_argument("--work-dir", required=True, type=Path)
    parser.add_argument("--base-models-dir", type=Path, default=None)
    parser.add_argument("--lease-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    store = SqlMetadataStore(args.database_url, run_migrations=False)
    blobs = open_blob_store(args.blob_url)
    heartbeat = Heartbeat(store, args.job_id, args.lease_seconds)
    heartbeat.start()
    try:
        state = run_job(store, blobs, args.job_id, args.work_dir, args.base_models_dir)
    finally:
        heartbeat.stop()
        blobs.close()
        store.close()
    log.info("job %s ended: %s", args.job_id, state.value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
