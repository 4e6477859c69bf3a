"""Leader leases: one holder of a named role across replicas, with fencing tokens.

Several API replicas share one metadata store. Some work must run on exactly one of them at a
time (a federated session's coordinator, the job reaper, compaction, the checkpoint sweep). A
*lease* is a named row in the store: whoever holds it (``holder``) until ``expires_at`` runs the
work, renewing it well before it expires. A holder that dies stops renewing; once the lease has
expired any other replica may take it over.

Expiry alone is not enough: a holder paused for longer than the lease (a long GC, a frozen VM)
wakes up still believing it leads. Every new holder therefore gets a larger *fencing token*
(``token``); writes guarded by :meth:`LeaseStore.fenced` run only while the caller's token is
still the current one and unexpired, so a stale holder's write is refused (:class:`LeaseLost`)
instead of overwriting its successor's work.

Times come from the database's clock, not the replicas', so clock skew between machines does
not shorten or stretch a lease.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from mobiletrain.core.errors import ErrorCode, MobiletrainError

log = logging.getLogger("mobiletrain.leader")

T = TypeVar("T")


@dataclass(frozen=True)
class Lease:
    """A held lease: ``token`` grows with every new holder of ``name``."""

    name: str
    holder: str
    token: int
    expires_at: float
    """Seconds since the epoch on the database's clock."""


class LeaseLost(MobiletrainError):
    """A fenced write by a replica that no longer holds the lease (it expired and another
    replica took it over, or it was released). Code FAILED_PRECONDITION; nothing was written."""

    def __init__(self, lease: Lease) -> None:
        super().__init__(
            ErrorCode.FAILED_PRECONDITION,
            f"this replica no longer holds the lease {lease.name!r}",
            lease=lease.name,
            token=lease.token,
        )
        self.lease = lease


class LeaseStore(ABC):
    """The lease port (implemented over SQLite and PostgreSQL in ``store/leases.py``)."""

    @abstractmethod
    def acquire(self, name: str, holder: str, ttl_s: float) -> Lease | None:
        """Take ``name`` if it is free or expired (new token), or extend it if ``holder``
        already holds it (same token). None while another holder's lease is live."""

    @abstractmethod
    def renew(self, lease: Lease, ttl_s: float) -> Lease | None:
        """Extend a lease still held under ``lease.token``; None when it was lost (expired
        and taken over, or released)."""

    @abstractmethod
    def release(self, lease: Lease) -> bool:
        """Give the lease up at once (if still held under ``lease.token``) so another
        replica can take it without waiting for expiry."""

    @abstractmethod
    def current(self, name: str) -> Lease | None:
        """The live lease of ``name``, or None when nobody holds it."""

    @abstractmethod
    def fenced(self, lease: Lease, write: Callable[[], T]) -> T:
        """Run ``write`` only while ``lease`` is still the current unexpired lease; raise
        :class:`LeaseLost` otherwise. The check and ``write`` are one
        transaction where the store allows it (see the implementation)."""


class SingletonLoop:
    """Runs a background part on the one replica that holds the lease ``name``.

    Every replica creates one; each tries to acquire the lease every ``ttl_s / 3`` seconds.
    The holder calls ``start()`` once it wins and ``stop()`` when it loses the lease (renewal
    failed: another replica took over) or shuts down; the others wait. A replica that dies
    stops renewing, and another one starts the part within one lease time.
    """

    def __init__(
        self,
        leases: LeaseStore,
        name: str,
        holder: str,
        start: Callable[[], None],
        stop: Callable[[], None],
        ttl_s: float = 15.0,
    ) -> None:
        self._leases = leases
        self.name = name
        self.holder = holder
        self._start = start
        self._stop_part = stop
        self.ttl_s = ttl_s
        self.lease: Lease | None = None
        # Monotonic time until which the held lease is surely valid (renewal sent before it).
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @property
    def leading(self) -> bool:
        """True while this replica holds the lease and runs the part."""
        return self.lease is not None

    def start(self) -> None:
        """Start contending (idempotent); the first attempt runs before this returns."""
        if self._thread is not None:
            return
        self._tick()
        self._thread = threading.Thread(target=self._run, name=f"lease-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the part if it runs here, release the lease, stop contending."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.lease is not None:
            lease, self.lease = self.lease, None
            self._stop_part()
            try:
                self._leases.release(lease)
            except Exception:  # shutting down: expiry frees it anyway
                log.warning("could not release lease %s", self.name, exc_info=True)

    def wait_leading(self, leading: bool, timeout: float) -> bool:
        """Wait until :attr:`leading` equals ``leading`` (for tests and tools)."""
        with self._changed:
            return self._changed.wait_for(lambda: self.leading == leading, timeout)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl_s / 3):
            self._tick()

    def _tick(self) -> None:
        asked = time.monotonic()
        try:
            if self.lease is None:
                lease = self._leases.acquire(self.name, self.holder, self.ttl_s)
                if lease is not None:
                    log.info("%s: leading %s (token %d)", self.holder, self.name, lease.token)
                    self.lease, self._valid_until = lease, asked + self.ttl_s
                    self._start()
            else:
                renewed = self._leases.renew(self.lease, self.ttl_s)
                if renewed is None:
                    self._lose("another replica took it over")
                else:
                    self.lease, self._valid_until = renewed, asked + self.ttl_s
        except Exception:  # a database hiccup: try again next tick
            log.warning("lease %s: store error", self.name, exc_info=True)
            if self.lease is not None and time.monotonic() >= self._valid_until:
                # Unrenewed past its expiry: another replica may lead now.
                self._lose("could not renew it before it expired")
        with self._changed:
            self._changed.notify_all()

    def _lose(self, why: str) -> None:
        log.warning("%s: lost lease %s (%s); stopping it here", self.holder, self.name, why)
        self.lease = None
        try:
            self._stop_part()
        except Exception:
            log.warning("stopping %s failed", self.name, exc_info=True)


class Restartable(Protocol):
    """A background part with ``start()``/``stop()`` (e.g. the blob compaction loop)."""

    def start(self) -> None:
        """Start it."""

    def stop(self) -> None:
        """Stop it and wait for it."""


def leader_only(
    leases: LeaseStore,
    name: str,
    holder: str,
    make: Callable[[], Restartable],
    ttl_s: float = 15.0,
) -> SingletonLoop:
    """A :class:`SingletonLoop` that runs a fresh part from ``make()`` each time this replica
    becomes the leader (parts such as the compaction loop cannot start again once stopped)."""
    parts: list[Restartable] = []

    def start() -> None:
        part = make()
        part.start()
        parts.append(part)

    def stop() -> None:
        while parts:
            parts.pop().stop()

    return SingletonLoop(leases, name, holder, start, stop, ttl_s)


class PeriodicLoop:
    """Calls ``fn`` every ``interval_s`` seconds on a thread until stopped (errors are logged,
    the loop goes on). Used for the job-lease reaper that only the leader runs."""

    def __init__(self, fn: Callable[[], object], interval_s: float, name: str) -> None:
        self._fn = fn
        self.interval_s = interval_s
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (the first call comes at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._fn()
            except Exception:
                log.warning("%s failed; trying again", self.name, exc_info=True)
            self._stop.wait(self.interval_s)


def replica_id() -> str:
    """A holder name unique to this process: host, process id and a random part."""
    import os
    import socket
    import uuid

    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
