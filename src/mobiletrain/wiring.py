"""Wiring: builds a :class:`~mobiletrain.container.Container` from :class:`Settings`.

The one place that chooses implementations: the SQL metadata store, the blob store by URL
scheme, the executor (local worker processes or Ray), the LiteRT predictor and the federated
parts. :mod:`mobiletrain.server` calls :func:`build_container` and serves the result.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from mobiletrain.compute.executor import LocalExecutor
from mobiletrain.compute.scheduler import Scheduler
from mobiletrain.config import Settings
from mobiletrain.container import BackgroundLoop, Container
from mobiletrain.core.events import EventHub
from mobiletrain.core.leader import PeriodicLoop, SingletonLoop, leader_only, replica_id
from mobiletrain.core.ports import BlobStore, JobExecutor, MetadataStore
from mobiletrain.core.ratelimit import RateLimiter, StreamSlots
from mobiletrain.core.services import DatasetService, ModelService, ProjectService, TrainingService
from mobiletrain.core.storage import SpaceGuard
from mobiletrain.core.tokens import TokenService
from mobiletrain.core.uploads import ResumableUploads
from mobiletrain.federated.service import FederatedService
from mobiletrain.store.blobs import make_dir, open_blob_store
from mobiletrain.store.compaction import CompactionLoop
from mobiletrain.store.event_signals import open_event_signal
from mobiletrain.store.leases import SqlLeaseStore
from mobiletrain.store.sql import SqlMetadataStore


def build_container(settings: Settings) -> Container:
    """Wire the embedded (or configured) stores, executor and services."""
    from mobiletrain.compute.predictor import LiteRTPredictor

    file_mode, dir_mode = settings.data_modes()
    # Everything this process and its workers (they inherit the umask) create — database, job
    # folders, checkpoints, spools — is owner-only unless MOBILETRAIN_FILE_MODE says otherwise.
    os.umask(0o777 & ~dir_mode)
    make_dir(settings.data_dir, dir_mode)
    limits = settings.limits()
    store = SqlMetadataStore(settings.resolved_database_url())
    blobs = open_blob_store(settings.resolved_blob_url(), file_mode=file_mode, dir_mode=dir_mode)
    # Other processes' events (workers, other replicas) wake the hub by push: PostgreSQL
    # NOTIFY or a local datagram; the watermark poll stays as a slow fallback.
    hub = EventHub(store, signal=open_event_signal(settings.resolved_database_url()))
    executor = build_executor(settings, store, hub)
    holder = replica_id()  # this process, in the leader leases of the fleet's singleton loops
    projects = ProjectService(store, limits)
    space = build_space_guard(settings)
    datasets = DatasetService(
        store,
        blobs,
        projects,
        limits,
        space=space,
        device_sample_access=settings.device_sample_access,
    )
    return Container(
        settings=settings,
        store=store,
        blobs=blobs,
        hub=hub,
        executor=executor,
        projects=projects,
        datasets=datasets,
        training=TrainingService(store, projects, executor, hub, limits),
        models=ModelService(store, blobs, projects, LiteRTPredictor()),
        tokens=TokenService(store),
        rate_limiter=RateLimiter(settings.rate_limit_per_second, settings.rate_limit_burst),
        stream_slots=StreamSlots(settings.max_streams_per_token),
        uploads=ResumableUploads(
            store, blobs, projects, datasets, ttl=timedelta(hours=settings.upload_ttl_hours)
        ),
        federated=build_federated(settings, store, blobs, projects, hub, holder),
        space=space,
        compaction=build_compaction(settings, store, blobs, holder),
        background=build_leader_loops(store, executor, holder),
    )


LEADER_LEASE_SECONDS = 10.0
"""Leader leases of singleton loops: a dead leader's loop moves to another replica this soon."""


def build_compaction(
    settings: Settings, store: SqlMetadataStore, blobs: BlobStore, holder: str
) -> SingletonLoop | None:
    """Blob compaction, run by one replica at a time: the holder of the ``compaction`` lease
    (replicas sharing a blob store would otherwise rewrite the same packs at once)."""
    if settings.compaction_interval_seconds <= 0:
        return None
    return leader_only(
        SqlLeaseStore(store.engine),
        "compaction",
        holder,
        lambda: CompactionLoop(
            blobs,
            store.referenced_blobs,
            interval_s=settings.compaction_interval_seconds,
            grace_s=settings.resolved_compaction_grace(),
            min_dead_fraction=settings.compaction_min_dead_fraction,
            max_delay_s=settings.compaction_max_delay_seconds,
        ),
        ttl_s=LEADER_LEASE_SECONDS,
    )


REAPER_INTERVAL_SECONDS = 1.0
"""How often the leader looks for running jobs whose lease expired (their replica died)."""


def build_leader_loops(
    store: SqlMetadataStore, executor: JobExecutor, holder: str
) -> list[BackgroundLoop]:
    """Loops one replica runs for the whole fleet: the job-lease reaper (re-queues the jobs of
    a dead replica or worker) moves out of every replica's scheduler onto the leader, so two
    replicas never re-queue the same job (and charge it two attempts) at once."""
    if not isinstance(executor, Scheduler):
        return []
    executor.reap_leases = False
    return [
        leader_only(
            SqlLeaseStore(store.engine),
            "job-reaper",
            holder,
            lambda: PeriodicLoop(
                executor.reap_expired_leases, REAPER_INTERVAL_SECONDS, "job-reaper"
            ),
            ttl_s=LEADER_LEASE_SECONDS,
        )
    ]


def build_space_guard(settings: Settings) -> SpaceGuard:
    """The free-space reserve over the data folder and a local blob folder."""
    paths = [settings.data_dir.resolve()]
    blob_url = urlparse(settings.resolved_blob_url())
    if blob_url.scheme in ("", "file"):
        paths.append(Path(blob_url.path))
    return SpaceGuard(paths, settings.storage_reserve_mb, settings.storage_reserve_percent)


def build_federated(
    settings: Settings,
    store: SqlMetadataStore,
    blobs: BlobStore,
    projects: ProjectService,
    hub: EventHub,
    holder: str,
) -> FederatedService:
    """Federated sessions over the same stores (exports run in child processes); each session
    is coordinated by the replica holding its lease, any replica takes device calls."""
    from mobiletrain.compute.federated_toolkit import LocalOnDeviceToolkit
    from mobiletrain.store.federated import SqlFederatedStore

    return FederatedService(
        store,
        SqlFederatedStore(store),
        blobs,
        LocalOnDeviceToolkit((settings.data_dir / "jobs").resolve()),
        projects,
        hub,
        leases=SqlLeaseStore(store.engine),
        holder=holder,
        devices_per_token=settings.federated_devices_per_token,
    )


EXECUTORS = ("local", "ray")


def build_executor(settings: Settings, store: MetadataStore, hub: EventHub) -> JobExecutor:
    """The executor named by ``settings.executor``: local worker processes, or a Ray cluster."""
    if settings.executor == "ray":
        from mobiletrain.compute.ray_executor import RayExecutor  # ray only where it is used

        return RayExecutor(
            store,
            hub,
            database_url=settings.resolved_database_url(),
            blob_url=settings.resolved_blob_url(),
            address=settings.ray_address,
            max_concurrent_jobs=settings.max_workers,
            max_attempts=settings.max_job_attempts,
            lease_seconds=settings.job_lease_seconds,
            cpus_per_worker=settings.ray_cpus_per_worker,
            gpus_per_worker=settings.ray_gpus_per_worker,
            memory_per_worker_mb=settings.ray_memory_per_worker_mb,
            work_root=settings.ray_work_dir,
            base_models_dir=settings.base_models_dir,
        )
    if settings.executor != "local":
        raise ValueError(f"unknown executor {settings.executor!r}; allowed: {', '.join(EXECUTORS)}")
    return LocalExecutor(
        store,
        hub,
        database_url=settings.resolved_database_url(),
        blob_url=settings.resolved_blob_url(),
        work_dir=(settings.data_dir / "jobs").resolve(),
        max_workers=settings.max_workers,
        max_attempts=settings.max_job_attempts,
        lease_seconds=settings.job_lease_seconds,
        base_models_dir=settings.base_models_dir,
        warm_worker=settings.warm_worker,
    )
