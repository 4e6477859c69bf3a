"""The container: the services and their dependencies, shared by both transports.

It depends on ``core`` and ``config`` only, so the API adapters can name it without importing
stores, executors or :mod:`mobiletrain.server`; :mod:`mobiletrain.wiring` builds one from
:class:`~mobiletrain.config.Settings`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mobiletrain.config import Settings
from mobiletrain.core.events import EventHub
from mobiletrain.core.integrity import IntegrityReport, check_integrity
from mobiletrain.core.ports import BlobStore, JobExecutor, MetadataStore
from mobiletrain.core.ratelimit import RateLimiter, StreamSlots
from mobiletrain.core.services import DatasetService, ModelService, ProjectService, TrainingService
from mobiletrain.core.storage import SpaceGuard
from mobiletrain.core.tokens import TokenService
from mobiletrain.core.uploads import ResumableUploads
from mobiletrain.federated.service import FederatedService

log = logging.getLogger("mobiletrain.server")

STARTUP_CHECK_SECONDS = 5.0
"""Time budget of the start-up integrity quick check."""

INTEGRITY_RECHECK_SECONDS = 5.0
"""How often health looks again at the samples the start-up check found (marked since?)."""


class BackgroundLoop(Protocol):
    """A background part the container starts and stops (e.g. the blob compaction loop)."""

    def start(self) -> None:
        """Start the loop's thread."""

    def stop(self) -> None:
        """Stop the loop and wait for it."""


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
    compaction: BackgroundLoop | None = None
    # More background loops, started after the executor (e.g. the job-lease reaper that only
    # the replica holding its leader lease runs, see core/leader.py).
    background: list[BackgroundLoop] = field(default_factory=list)
    _closed: bool = field(default=False, repr=False)

    def start(self) -> None:
        """Start background parts (event polling, job scheduling)."""
        self.check_integrity()
        self.hub.start()
        self.executor.start()
        for loop in self.background:
            loop.start()
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
        for loop in reversed(self.background):
            loop.stop()
        self.executor.stop()
        self.hub.stop()
        self.blobs.close()
        self.store.close()
