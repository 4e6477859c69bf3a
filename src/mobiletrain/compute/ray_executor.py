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

Claiming, lease reaping, the cancel grace and retries are :mod:`mobiletrain.compute.scheduler`'s
(shared with the local executor); this module is its :class:`RayLauncher`.

The API process never imports TensorFlow: the actors import it in their own processes.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from mobiletrain.compute import checkpoints
from mobiletrain.compute.scheduler import Scheduler
from mobiletrain.compute.worker import Heartbeat
from mobiletrain.core.events import EventHub
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.types import Job

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


class RayAttempt:
    """One attempt of a job on the cluster: a thread that reserves the bundles, starts one actor
    per worker, renews the job's lease and waits for the chief."""

    def __init__(self, launcher: RayLauncher, job: Job) -> None:
        self.launcher = launcher
        self.job = job
        self.actors: list[Any] = []
        self._pids: list[int] = []
        self._reason: str | None = None
        self._abort = threading.Event()  # cancel before start, kill, or server stop
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._supervise, name=f"ray-job-{job.id[:8]}", daemon=True
        )

    def start(self) -> None:
        """Begin in the background."""
        self._thread.start()

    # -- Attempt -------------------------------------------------------------------------------
    def exit_reason(self) -> str | None:
        """None while the attempt runs, else why it ended."""
        if self._thread.is_alive() or not self._thread.ident:
            return None
        return self._reason or "the Ray attempt ended"

    def cancel_requested(self) -> None:
        """A job still waiting for room on the cluster stops waiting; a running chief stops by
        itself when it reads the flag."""
        if not self.actors:
            self._abort.set()

    def kill(self) -> None:
        """Kill every actor of the job."""
        self._abort.set()
        self.launcher.kill(self.actors)

    def stop(self) -> None:
        """The server stops: kill the actors and wait for the supervising thread."""
        self.kill()
        self._thread.join(timeout=30)

    def pids(self) -> list[int]:
        """The actors' process ids, chief first (empty until they started)."""
        with self._lock:
            return list(self._pids)

    # -- the supervising thread ----------------------------------------------------------------
    def _supervise(self) -> None:
        heartbeat = Heartbeat(self.launcher.store, self.job.id, self.launcher.lease_seconds)
        heartbeat.start()
        pg: Any = None
        try:
            workers = max(1, self.job.hyperparameters.workers)
            pg = self._start_actors(workers)
            if self.actors:
                self._reason = self._run()
            else:
                self._reason = "the attempt was stopped before its workers started"
        except Exception as exc:
            log.exception("job %s: supervision failed", self.job.id)
            self._reason = f"the Ray job failed: {type(exc).__name__}: {exc}"
        finally:
            self.launcher.kill(self.actors)
            if pg is not None:
                from ray.util.placement_group import remove_placement_group

                try:
                    remove_placement_group(pg)
                except Exception:
                    log.warning("could not remove the placement group", exc_info=True)
            heartbeat.stop()

    def _start_actors(self, workers: int) -> Any:
        """Reserve the bundles and start one actor per worker (none when aborted first)."""
        import ray
        from ray.util.placement_group import placement_group
        from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

        launcher = self.launcher
        bundle = launcher.bundle()
        pg = placement_group([bundle for _ in range(workers)], strategy="SPREAD")
        deadline = time.monotonic() + launcher.start_timeout_seconds
        while True:
            ready, _ = ray.wait([pg.ready()], timeout=1.0)
            if ready:
                break
            if self._abort.is_set():
                return pg
            if time.monotonic() > deadline:
                raise TimeoutError(f"the cluster has no room for {workers} worker(s) of {bundle}")
        if self._abort.is_set():
            return pg
        self.actors = [
            launcher.actor_cls.options(
                num_cpus=launcher.cpus_per_worker,
                num_gpus=launcher.gpus_per_worker,
                memory=launcher.memory_per_worker_mb * 1024 * 1024 or None,
                scheduling_strategy=PlacementGroupSchedulingStrategy(
                    placement_group=pg, placement_group_bundle_index=rank
                ),
            ).remote()
            for rank in range(workers)
        ]
        pids = ray.get(
            [a.pid.remote() for a in self.actors], timeout=launcher.start_timeout_seconds
        )
        with self._lock:
            self._pids = pids
        return pg

    def _run(self) -> str:
        """Train; returns why the attempt ended (used only when the chief recorded nothing)."""
        import ray
        from ray.exceptions import GetTimeoutError, RayActorError

        launcher, job, actors = self.launcher, self.job, self.actors
        cluster: list[str] = []
        if len(actors) > 1:
            cluster = ray.get([a.reserve_address.remote() for a in actors], timeout=120)
        base = str(launcher.base_models_dir) if launcher.base_models_dir else None
        work_root = str(launcher.work_root) if launcher.work_root else None
        refs = [
            actor.train.remote(
                job.id,
                rank,
                cluster,
                launcher.database_url,
                launcher.blob_url,
                work_root,
                job.attempts,
                base,
            )
            for rank, actor in enumerate(actors)
        ]
        chief = refs[0]
        pending = list(refs)
        while True:
            done, pending = ray.wait(pending, num_returns=1, timeout=1.0)
            for ref in done:
                try:
                    ray.get(ref, timeout=10)
                except (RayActorError, GetTimeoutError) as exc:
                    where = "chief" if ref == chief else "worker"
                    return f"a Ray {where} was lost: {_first_line(exc)}"
                except Exception as exc:
                    return f"a Ray worker failed: {_first_line(exc)}"
                if ref == chief:
                    return "the chief ended without recording an outcome"
            if self._abort.is_set():
                return "the job's workers were killed"


class RayLauncher:
    """Starts each attempt as ``workers`` Ray actors in a placement group (gang scheduling)."""

    def __init__(
        self,
        store: MetadataStore,
        database_url: str,
        blob_url: str,
        address: str = "",
        lease_seconds: float = 30.0,
        cpus_per_worker: float = 1.0,
        gpus_per_worker: float = 0.0,
        memory_per_worker_mb: int = 0,
        work_root: Path | None = None,
        base_models_dir: Path | None = None,
        start_timeout_seconds: float = 600.0,
    ) -> None:
        self.store = store
        self.database_url = database_url
        self.blob_url = blob_url
        self.address = address
        self.lease_seconds = lease_seconds
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.memory_per_worker_mb = memory_per_worker_mb
        self.work_root = work_root
        self.base_models_dir = base_models_dir
        self.start_timeout_seconds = start_timeout_seconds
        self.actor_cls: Any = None
        self._connected_here = False

    def bundle(self) -> dict[str, float]:
        """What one worker asks of the cluster."""
        bundle: dict[str, float] = {"CPU": self.cpus_per_worker}
        if self.gpus_per_worker:
            bundle["GPU"] = self.gpus_per_worker
        if self.memory_per_worker_mb:
            bundle["memory"] = float(self.memory_per_worker_mb * 1024 * 1024)
        return bundle

    # -- Launcher ------------------------------------------------------------------------------
    def open(self) -> None:
        """Connect to the Ray cluster (or start a local one)."""
        import ray

        if not ray.is_initialized():
            options: dict[str, Any] = {"namespace": "mobiletrain"}
            if not self.address.startswith("ray://"):  # Ray Client takes fewer options
                options |= {"log_to_driver": False, "configure_logging": False}
            if self.address:
                options["address"] = self.address
            ray.init(**options)
            self._connected_here = True
        self.actor_cls = ray.remote(max_restarts=0, max_task_retries=0)(TrainingWorker)

    def launch(self, job: Job) -> RayAttempt:
        """Start the attempt's supervising thread."""
        attempt = RayAttempt(self, job)
        attempt.start()
        return attempt

    def idle(self, free_slots: int) -> None:
        """Nothing to warm up: Ray starts the actors."""

    def job_ended(self, job_id: str) -> None:
        """Remove the job's folders where they are reachable from here."""
        # Reaches the actors' folders when they ran on this machine (a local cluster or a
        # shared work_root); on a remote node the chief removes its own when the job ends.
        root = _jobs_root(self.work_root) / job_id
        checkpoints.remove(root)
        for worker_dir in root.glob("attempt-*/worker-*"):
            checkpoints.remove(worker_dir)

    def sweep(self, store: MetadataStore) -> None:
        """Checkpoints of jobs that ended while no actor of this machine ran them."""
        checkpoints.sweep(_jobs_root(self.work_root), store)

    def close(self) -> None:
        """Disconnect when this launcher connected."""
        if self._connected_here:
            import ray

            ray.shutdown()

    @staticmethod
    def kill(actors: list[Any]) -> None:
        """Kill actors (already dead ones are fine)."""
        if not actors:
            return
        import ray

        for actor in actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:
                log.debug("actor already gone", exc_info=True)


class RayExecutor(Scheduler):
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
        self.ray = RayLauncher(
            store,
            database_url,
            blob_url,
            address,
            lease_seconds,
            cpus_per_worker,
            gpus_per_worker,
            memory_per_worker_mb,
            work_root,
            base_models_dir,
            start_timeout_seconds,
        )
        super().__init__(
            store,
            hub,
            self.ray,
            capacity=max(1, max_concurrent_jobs),
            max_attempts=max_attempts,
            lease_seconds=lease_seconds,
            cancel_grace_seconds=cancel_grace_seconds,
            lease_reason="the job's supervisor stopped renewing it",
        )
        self.address = address

    def _bundle(self) -> dict[str, float]:
        return self.ray.bundle()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]
