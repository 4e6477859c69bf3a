"""Composition root: builds stores, services and both servers from :class:`Settings`."""

from __future__ import annotations

import logging
import os
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from mobiletrain.compute.executor import LocalExecutor
from mobiletrain.config import Settings
from mobiletrain.core.events import EventHub
from mobiletrain.core.federated import FederatedService
from mobiletrain.core.integrity import IntegrityReport, check_integrity
from mobiletrain.core.ports import BlobStore, JobExecutor, MetadataStore
from mobiletrain.core.ratelimit import RateLimiter, StreamSlots
from mobiletrain.core.services import DatasetService, ModelService, ProjectService, TrainingService
from mobiletrain.core.storage import SpaceGuard
from mobiletrain.core.tokens import TokenService
from mobiletrain.core.uploads import ResumableUploads
from mobiletrain.store.blobs import make_dir, open_blob_store
from mobiletrain.store.compaction import CompactionLoop
from mobiletrain.store.sql import SqlMetadataStore

log = logging.getLogger("mobiletrain.server")

STARTUP_CHECK_SECONDS = 5.0
"""Time budget of the start-up integrity quick check."""

INTEGRITY_RECHECK_SECONDS = 5.0
"""How often health looks again at the samples the start-up check found (marked since?)."""


@dataclass
class Container:
    """The services and their dependencies, shared by both transports."""

    settings: Settings
    store: MetadataStore
    blobs: BlobStore
    hub: EventHub
    executor: JobExecutor
    projects: ProjectService
    datasets: DatasetService
    training: TrainingService
    models: ModelService
    tokens: TokenService
    rate_limiter: RateLimiter
    stream_slots: StreamSlots
    uploads: ResumableUploads
    federated: FederatedService | None = None
    space: SpaceGuard | None = None
    # The start-up quick check of samples against the blob store (None: not run).
    integrity: IntegrityReport | None = None
    _integrity_rechecked: float = field(default=0.0, repr=False)
    # Worker thread pools the health check watches: name -> () -> (busy threads, pool size).
    pool_gauges: dict[str, Callable[[], tuple[int, int]]] = field(default_factory=dict)
    # Drops unreferenced blobs from the blob store every compaction_interval_seconds.
    compaction: CompactionLoop | None = None
    _closed: bool = field(default=False, repr=False)

    def start(self) -> None:
        """Start background parts (event polling, job scheduling)."""
        self.check_integrity()
        self.hub.start()
        self.executor.start()
        if self.federated is not None:
            self.federated.start()
        if self.compaction is not None:
            self.compaction.start()

    def check_integrity(self) -> IntegrityReport:
        """The start-up quick check: do the blobs of all samples exist? (No hashing, at most
        ``STARTUP_CHECK_SECONDS``; ``mobiletrain fsck`` reads and verifies every byte.)"""
        report = check_integrity(
            self.store, self.blobs, full=False, budget_seconds=STARTUP_CHECK_SECONDS
        )
        self.integrity = report
        if report.unmarked:
            log.warning(
                "%s; run `mobiletrain fsck` to list them, `--repair` to exclude them from "
                "training: %s",
                report.summary(),
                ", ".join(f"{p}/{lab}: {n}" for (p, lab), n in report.by_project_label().items()),
            )
        else:
            log.info("%s", report.summary())
        return report

    def health(self) -> list[str]:
        """Why the server is degraded (empty: it is healthy)."""
        reasons = []
        problem = self.space.problem() if self.space is not None else None
        if problem is not None:
            reasons.append(problem)
        if self.integrity is not None and self.integrity.unmarked:
            now = time.monotonic()
            if now - self._integrity_rechecked >= INTEGRITY_RECHECK_SECONDS:
                # Healthy again without a restart once fsck --repair marked them (or the
                # same bytes were uploaded again).
                self._integrity_rechecked = now
                self.integrity.recheck(self.store, self.blobs)
        if self.integrity is not None and self.integrity.unmarked:
            reasons.append(
                f"{len(self.integrity.unmarked)} samples have missing or damaged bytes "
                "(found at start-up; run `mobiletrain fsck`)"
            )
        for name, gauge in sorted(self.pool_gauges.items()):
            busy, size = gauge()
            if size > 0 and busy >= size:
                reasons.append(f"{name} threads saturated ({busy}/{size} busy): calls wait")
        return reasons

    def close(self) -> None:
        """Stop background parts and close stores."""
        if self._closed:
            return
        self._closed = True
        if self.compaction is not None:
            self.compaction.stop()
        if self.federated is not None:
            self.federated.stop()
        self.executor.stop()
        self.hub.stop()
        self.blobs.close()
        self.store.close()


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
    hub = EventHub(store)
    executor = build_executor(settings, store, hub)
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
        federated=build_federated(settings, store, blobs, projects, hub),
        space=space,
        compaction=CompactionLoop(
            blobs,
            store.referenced_blobs,
            interval_s=settings.compaction_interval_seconds,
            grace_s=settings.resolved_compaction_grace(),
            min_dead_fraction=settings.compaction_min_dead_fraction,
            max_delay_s=settings.compaction_max_delay_seconds,
        ),
    )


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
) -> FederatedService:
    """Federated sessions over the same stores (exports run in child processes)."""
    from mobiletrain.compute.federated_toolkit import LocalOnDeviceToolkit
    from mobiletrain.store.federated import SqlFederatedStore
    from mobiletrain.store.spool import LocalUpdateSpool

    return FederatedService(
        store,
        SqlFederatedStore(store),
        blobs,
        LocalUpdateSpool((settings.data_dir / "federated-updates").resolve()),
        LocalOnDeviceToolkit((settings.data_dir / "jobs").resolve()),
        projects,
        hub,
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
    )


ADMIN_TOKEN_FILE = "admin-token"


def ensure_admin_token(container: Container) -> str | None:
    """On a server's first start, create an admin token and keep it in DATA_DIR/admin-token.

    The file is readable by its owner only; the CLI on the same machine reads it when no token
    is given. Returns the new secret (to print once), or None when tokens already exist.
    """
    if container.store.count_tokens() > 0:
        return None
    secret = container.tokens.create_bootstrap_admin()
    path = container.settings.data_dir / ADMIN_TOKEN_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    os.chmod(path, 0o600)
    return secret


def security_warnings(settings: Settings) -> list[str]:
    """Loud warnings for unsafe set-ups."""
    warnings = []
    if not settings.auth:
        warnings.append("authentication is OFF: anyone who can reach the ports controls the server")
    if settings.host not in ("127.0.0.1", "localhost", "::1") and not settings.tls:
        warnings.append(
            f"binding {settings.host} without TLS: tokens and data cross the network in clear"
        )
    return warnings


@dataclass
class RunningServer:
    """Both servers of one process, with the ports they actually bound."""

    container: Container
    grpc_port: int
    http_port: int
    _grpc: object
    _uvicorn: object
    _http_thread: threading.Thread

    def stop(self) -> None:
        """Stop HTTP and gRPC, then the background parts."""
        self._uvicorn.should_exit = True  # type: ignore[attr-defined]
        self._http_thread.join(timeout=10)
        self._grpc.stop(grace=2).wait()  # type: ignore[attr-defined]
        self.container.close()


def start_server(settings: Settings) -> RunningServer:
    """Start gRPC and HTTP servers in this process; returns once both accept connections."""
    import socket
    import time

    import uvicorn

    from mobiletrain.api.grpc.server import build_grpc_server
    from mobiletrain.api.rest.app import create_app
    from mobiletrain.api.rest.limits import header_limited_protocol

    container = build_container(settings)
    for warning in security_warnings(settings):
        log.warning("WARNING: %s", warning)
    if settings.auth:
        secret = ensure_admin_token(container)
        if secret is not None:
            # Printed once: it is the only time the secret is shown.
            print(
                f"First start: admin token created and saved to "
                f"{settings.data_dir / ADMIN_TOKEN_FILE} (owner-only):\n  {secret}",
                flush=True,
            )
    container.start()
    grpc_server, grpc_port = build_grpc_server(container, f"{settings.host}:{settings.grpc_port}")
    grpc_server.start()

    # Bind the HTTP socket ourselves so port 0 works and the real port is known up front.
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((settings.host, settings.http_port))
    http_port = sock.getsockname()[1]
    tls: dict[str, Any] = {}
    if settings.tls:
        tls = {
            "ssl_certfile": str(settings.tls_cert_file),
            "ssl_keyfile": str(settings.tls_key_file),
        }
        if settings.tls_client_ca_file is not None:
            tls |= {
                "ssl_ca_certs": str(settings.tls_client_ca_file),
                "ssl_cert_reqs": ssl.CERT_REQUIRED,
            }
    config = uvicorn.Config(
        create_app(container),
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=3,
        # Caps the request line + headers while they arrive (431, code 77).
        http=header_limited_protocol(settings.max_header_bytes),
        **tls,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="http", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    if not server.started:
        raise RuntimeError("HTTP server did not start")
    log.info("gRPC on %s:%d, HTTP on %s:%d", settings.host, grpc_port, settings.host, http_port)
    from mobiletrain.api.rest.web import DIST_DIR

    if not (DIST_DIR / "index.html").exists():
        # Said at start-up, not only on "/": the APIs work, the dashboard does not.
        log.warning("the dashboard is not built: run `make web` (Node.js 20.19+) and restart")
    return RunningServer(container, grpc_port, http_port, grpc_server, server, thread)
