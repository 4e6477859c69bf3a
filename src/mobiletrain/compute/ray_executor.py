"""The Ray executor: each training job runs on a Ray cluster, as one actor per worker.

``mobiletrain serve --executor ray --ray-address HOST:6379`` (or ``ray://HOST:10001``). The API
replica stays the scheduler, exactly like the local executor: it claims queued jobs from the
shared metadata store (a compare-and-set, so replicas never run a job twice) and supervises each
one from a thread of its own:

* **Resources.** A job asks for ``workers`` bundles of ``{CPU, GPU, memory}`` (the
  ``ray_*_per_worker`` settings) in a placement group, so a multi-worker job starts only when
  all its workers have a place (gang scheduling) and never half-starts.
* **Multi-worker training.** With ``workers > 1`` the actors pick a free port each, receive a
  ``TF_CONFIG`` naming all of them, and train with MultiWorkerMirroredStrategy
  (:mod:`mobiletrain.compute.keras.distributed`); worker 0, the chief, reports progress,
  exports and publishes the model. Ray Train's ``TensorflowTrainer`` is not used: it needs the
  ``ray[train]`` extras (pandas, pyarrow ...) and forces ``TF_USE_LEGACY_KERAS=1`` (Keras 2),
  while this project trains with Keras 3; the ``TF_CONFIG`` wiring it would do is a few lines.
* **Progress.** Workers write events to the metadata store, as local workers do; every
  replica's event hub sees them, so a watcher on any replica follows a job run from any other.
* **Leases.** The supervising thread renews the job's lease. If the replica dies, Ray ends
  the actors it owned and the lease runs out; another replica's reaper re-queues the job.
* **Retries.** A worker that is lost (its process or node died: ``RayActorError``) or fails
  costs the job one attempt; it is re-queued until ``max_attempts``, then fails with the reason.
  Single-worker jobs keep epoch checkpoints in a per-job folder on the node (resumed when the
  retry lands on the same node or the folder is shared); multi-worker retries start over.
* **Cancellation.** The chief sees the cancel flag between batches and stops; after
  ``cancel_grace_seconds`` the supervisor kills every actor of the job.

The API process never imports TensorFlow: the actors import it in their own processes.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mobiletrain.compute import checkpoints
from mobiletrain.compute.executor import SchedulingExecutor
from mobiletrain.compute.worker import Heartbeat
from mobiletrain.core.events import EventHub
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import EventKind, Job, JobState

log = logging.getLogger(__name__)


class TrainingWorker:
    """One training process of a job (a Ray actor; ``ray.remote`` is applied on first use)."""

    def __init__(self) -> None:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    def pid(self) -> int:
        """Process id (tests and operators use it to find the process)."""
        return os.getpid()

    def reserve_address(self) -> str:
        """``ip:port`` for TensorFlow's collective ops on this node (a free port now)."""
        import ray

        ip = ray.util.get_node_ip_address()
        with socket.socket() as s:
            s.bind(("", 0))
            port = int(s.getsockname()[1])
        return f"{ip}:{port}"

    def train(
        self,
        job_id: str,
        rank: int,
        cluster: list[str],
        database_url: str,
        blob_url: str,
        work_root: str | None,
        attempt: int,
        base_models_dir: str | None,
    ) -> str:
        """Run the job's training in this process; the chief (rank 0) records the outcome."""
        import json

        from mobiletrain.compute.worker import run_job, run_peer
        from mobiletrain.store.blobs import open_blob_store
        from mobiletrain.store.sql import SqlMetadataStore

        root = _jobs_root(work_root) / job_id
        strategy = None
        if len(cluster) > 1:
            os.environ["TF_CONFIG"] = json.dumps(
                {"cluster": {"worker": cluster}, "task": {"type": "worker", "index": rank}}
            )
            from mobiletrain.compute.keras.distributed import strategy_from_env

            strategy = strategy_from_env()  # blocks until every worker joined
            work_dir = root / f"attempt-{attempt}" / f"worker-{rank}"
        else:
            work_dir = root
        work_dir.mkdir(parents=True, exist_ok=True)
        store = SqlMetadataStore(database_url, run_migrations=False)
        blobs = open_blob_store(blob_url)
        base = Path(base_models_dir) if base_models_dir else None
        try:
            if rank == 0:
                return run_job(store, blobs, job_id, work_dir, base, strategy=strategy).value
            run_peer(store, blobs, job_id, work_dir, strategy, base)
            return "peer-done"
        finally:
            blobs.close()
            store.close()
            if strategy is not None:  # multi-worker retries start over: nothing resumes from it
                checkpoints.remove(work_dir)


def _jobs_root(work_root: str | Path | None) -> Path:
    """Where the actors of a node keep their job folders."""
    return Path(work_root or tempfile.gettempdir()) / "mobiletrain-jobs"


@dataclass
class _Supervised:
    job_id: str
    thread: threading.Thread
    actors: list[Any] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)


class RayExecutor(SchedulingExecutor):
    """Runs each job as ``workers`` Ray actors on the cluster at ``address``."""

    def __init__(
        self,
        store: MetadataStore,
        hub: EventHub,
        database_url: str,
        blob_url: str,
        address: str = "",
        max_concurrent_jobs: int = 4,
        max_attempts: int = 2,
        lease_seconds: float = 30.0,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        memory_per_worker_mb: int = 0,
        work_root: Path | None = None,
        base_models_dir: Path | None = None,
        cancel_grace_seconds: float = 30.0,
        start_timeout_seconds: float = 600.0,
    ) -> None:
        self.store = store
        self.hub = hub
        self.database_url = database_url
        self.blob_url = blob_url
        self.address = address
        self.max_concurrent_jobs = max(1, max_concurrent_jobs)
        self.max_attempts = max_attempts
        self.lease_seconds = lease_seconds
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.memory_per_worker_mb = memory_per_worker_mb
        self.work_root = work_root
        self.base_models_dir = base_models_dir
        self.cancel_grace_seconds = cancel_grace_seconds
        self.start_timeout_seconds = start_timeout_seconds
        self._jobs: dict[str, _Supervised] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._connected_here = False
        self._actor_cls: Any = None

    # -- JobExecutor ---------------------------------------------------------------------------
    def notify_queued(self, job_id: str) -> None:
        """Wake the scheduler."""
        self._wake.set()

    def notify_cancel(self, job_id: str) -> None:
        """The chief sees the flag in the store; the supervisor enforces the grace time."""
        self._wake.set()

    def start(self) -> None:
        """Connect to the Ray cluster (or start a local one) and begin scheduling."""
        import ray

        if not ray.is_initialized():
            options: dict[str, Any] = {"namespace": "mobiletrain"}
            if not self.address.startswith("ray://"):  # Ray Client takes fewer options
                options |= {"log_to_driver": False, "configure_logging": False}
            if self.address:
                options["address"] = self.address
            ray.init(**options)
            self._connected_here = True
        self._actor_cls = ray.remote(max_restarts=0, max_task_retries=0)(TrainingWorker)
        try:  # checkpoints of jobs that ended while no actor of this machine ran them
            checkpoints.sweep(_jobs_root(self.work_root), self.store)
        except Exception:
            log.warning("checkpoint sweep failed", exc_info=True)
        self._thread = threading.Thread(target=self._loop, name="ray-executor", daemon=True)
        self._thread.start()

    def _job_ended(self, job_id: str) -> None:
        # Reaches the actors' folders when they ran on this machine (a local cluster or a
        # shared work_root); on a remote node the chief removes its own when the job ends.
        root = _jobs_root(self.work_root) / job_id
        checkpoints.remove(root)
        for worker_dir in root.glob("attempt-*/worker-*"):
            checkpoints.remove(worker_dir)

    def stop(self) -> None:
        """Stop scheduling; running jobs' actors are killed and the jobs re-queued."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            supervised = list(self._jobs.values())
        for sup in supervised:
            sup.thread.join(timeout=30)
        if self._connected_here:
            import ray

            ray.shutdown()

    def worker_pids(self, job_id: str) -> list[int]:
        """Process ids of the job's actors, chief first (empty until they started)."""
        with self._lock:
            sup = self._jobs.get(job_id)
            return list(sup.pids) if sup is not None else []

    # -- scheduling ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._reap_expired_leases()
                self._launch()
            except Exception:  # the scheduler must survive a transient database error
                log.exception("ray executor loop failed; retrying")
            self._wake.wait(timeout=0.5)
            self._wake.clear()

    def _reap_expired_leases(self) -> None:
        for job in self.store.expired_jobs(datetime.now(UTC)):
            with self._lock:
                if job.id in self._jobs:
                    continue
            self._retry_or_fail(job.id, job.attempts, "the job's supervisor stopped renewing it")

    def _launch(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                for job_id in [j for j, s in self._jobs.items() if not s.thread.is_alive()]:
                    del self._jobs[job_id]
                if len(self._jobs) >= self.max_concurrent_jobs:
                    return
            job = self.store.claim_job(lease_seconds=self.lease_seconds)
            if job is None:
                return
            thread = threading.Thread(
                target=self._supervise, args=(job,), name=f"ray-job-{job.id[:8]}", daemon=True
            )
            with self._lock:
                self._jobs[job.id] = _Supervised(job.id, thread)
            thread.start()

    # -- one job ---------------------------------------------------------------------------------
    def _supervise(self, job: Job) -> None:
        heartbeat = Heartbeat(self.store, job.id, self.lease_seconds)
        heartbeat.start()
        pg: Any = None
        actors: list[Any] = []
        try:
            workers = max(1, job.hyperparameters.workers)
            self.store.append_event(
                job.id,
                EventKind.STATE,
                {"state": JobState.RUNNING.value, "attempt": job.attempts, "workers": workers},
            )
            self.hub.notify()
            pg, actors = self._start_actors(job, workers)
            if actors:
                self._run(job, actors)
        except Exception as exc:
            log.exception("job %s: supervision failed", job.id)
            self._after_failure(job, f"the Ray job failed: {type(exc).__name__}: {exc}")
        finally:
            self._kill(actors)
            if pg is not None:
                from ray.util.placement_group import remove_placement_group

                try:
                    remove_placement_group(pg)
                except Exception:
                    log.warning("could not remove the placement group", exc_info=True)
            heartbeat.stop()

    def _bundle(self) -> dict[str, float]:
        bundle: dict[str, float] = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            bundle["GPU"] = self.gpus_per_worker
        if self.memory_per_worker_mb:
            bundle["memory"] = float(self.memory_per_worker_mb * 1024 * 1024)
        return bundle

    def _start_actors(self, job: Job, workers: int) -> tuple[Any, list[Any]]:
        """Reserve the bundles and start one actor per worker; [] when cancelled or stopping."""
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        pg = placement_group([self._bundle() for _ in range(workers)], strategy="SPREAD")
        deadline = time.monotonic() + self.start_timeout_seconds
        while True:
            ready, _ = ray.wait([pg.ready()], timeout=1.0)
            if ready:
                break
            if self._stopping_or_cancelled(job):
                return pg, []
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the cluster has no room for {workers} worker(s) of {self._bundle()}"
                )
        actors = [
            self._actor_cls.options(
                num_cpus=self.cpus_per_worker,
                num_gpus=self.gpus_per_worker,
                memory=self.memory_per_worker_mb * 1024 * 1024 or None,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=pg, placement_group_bundle_index=rank
                ),
            ).remote()
            for rank in range(workers)
        ]
        with self._lock:
            sup = self._jobs.get(job.id)
            if sup is not None:
                sup.actors = actors
        pids = ray.get([a.pid.remote() for a in actors], timeout=self.start_timeout_seconds)
        with self._lock:
            if sup is not None:
                sup.pids = pids
        return pg, actors

    def _run(self, job: Job, actors: list[Any]) -> None:
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        cluster: list[str] = []
        if len(actors) > 1:
            cluster = ray.get([a.reserve_address.remote() for a in actors], timeout=120)
        base = str(self.base_models_dir) if self.base_models_dir else None
        work_root = str(self.work_root) if self.work_root else None
        refs = [
            actor.train.remote(
                job.id,
                rank,
                cluster,
                self.database_url,
                self.blob_url,
                work_root,
                job.attempts,
                base,
            )
            for rank, actor in enumerate(actors)
        ]
        chief = refs[0]
        pending = list(refs)
        cancel_seen: float | None = None
        while True:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                try:
                    ray.get(ref, timeout=10)
                except (RayActorError, GetTimeoutError) as exc:
                    where = "chief" if ref == chief else "worker"
                    self._after_failure(job, f"a Ray {where} was lost: {_first_line(exc)}")
                    return
                except Exception as exc:
                    self._after_failure(job, f"a Ray worker failed: {_first_line(exc)}")
                    return
                if ref == chief:
                    current = self.store.get_job(job.id)
                    if current is not None and current.state is JobState.RUNNING:
                        self._after_failure(job, "the chief ended without recording an outcome")
                    return
            if self._stop.is_set():
                # Back to the queue at once (not after the lease): the next start resumes it.
                self._retry_or_fail(job.id, 0, "the server stopped while the job ran")
                return
            current = self.store.get_job(job.id)
            if current is None or current.state.is_terminal:
                return
            if current.cancel_requested:
                cancel_seen = cancel_seen or time.monotonic()
                if time.monotonic() - cancel_seen > self.cancel_grace_seconds:
                    self._kill(actors)
                    self._finish(job.id, JobState.CANCELLED, "")
                    return

    def _stopping_or_cancelled(self, job: Job) -> bool:
        if self._stop.is_set():
            self._retry_or_fail(job.id, 0, "the server stopped before the job started")
            return True
        current = self.store.get_job(job.id)
        if current is not None and current.cancel_requested:
            self._finish(job.id, JobState.CANCELLED, "")
            return True
        return False

    def _after_failure(self, job: Job, reason: str) -> None:
        current = self.store.get_job(job.id)
        if current is None or current.state is not JobState.RUNNING:
            return  # the chief recorded the outcome itself
        if current.cancel_requested:
            self._finish(job.id, JobState.CANCELLED, "")
            return
        self._retry_or_fail(job.id, current.attempts, reason)

    @staticmethod
    def _kill(actors: list[Any]) -> None:
        import ray

        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                log.debug("actor already gone", exc_info=True)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
