"""What the parts of the federated service share: the stores, and the sessions coordinated here.

:class:`Context` bundles the stores, the leases and the wake-up signals; :class:`LiveSession`
is the coordinator's in-memory state of one session; :class:`LiveSessions` is the set of the
sessions this replica coordinates.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mobiletrain.core.events import EventHub
from mobiletrain.core.leader import Lease, LeaseStore, replica_id
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.services import ProjectService
from mobiletrain.core.types import EventKind
from mobiletrain.core.wakeup import AsyncWakeup, WakingCondition
from mobiletrain.federated.head import HeadSpec
from mobiletrain.federated.ports import FederatedStore, OnDeviceToolkit
from mobiletrain.federated.records import (
    FederatedSession,
    RoundRecord,
    SessionState,
    UpdateRecord,
)
from mobiletrain.federated.rounds import RoundState
from mobiletrain.federated.strategy import Aggregator, Strategy

ACTIVE_STATES = (SessionState.PREPARING, SessionState.RUNNING)
"""States of a session that is not over."""

Handoff = Callable[[UpdateRecord, list[np.ndarray], bool], bool]
"""Hands a stored, admitted update's tensors to this replica's coordinator:
``(record, tensors, writable) -> counted``; ``writable``: the tensors are the caller's own
buffer, which the coordinator may overwrite. False: it was not counted from them (the round
moved on, or the coordinator already read it from the stores)."""
Receiver = Callable[[str, int, str], AbstractContextManager[Handoff | None]]
"""``(session id, round, device id)``: while an update is taken in, the handoff to this
replica's coordinator, or None when another replica coordinates the session."""


def now() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)


def ts(seconds: float) -> datetime:
    """Unix seconds as a UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Context:
    """The stores and signals every part of the federated service works with.

    Every replica of the server has its own; they share the metadata store (sessions, devices,
    rounds, answers) and the blob store (files, weights, accepted updates). ``leases`` elects
    the one replica that coordinates each session (None: this process is the only replica).
    """

    store: MetadataStore
    fstore: FederatedStore
    blobs: BlobStore
    toolkit: OnDeviceToolkit
    projects: ProjectService
    hub: EventHub
    leases: LeaseStore | None = None
    holder: str = field(default_factory=replica_id)
    # Pulled whenever a session changes (here or, seen in the store, on another replica):
    # long polls on an event loop wait on it; ``cond`` wakes waiting threads and pulls it.
    changes: AsyncWakeup = field(default_factory=AsyncWakeup)
    cond: threading.Condition = field(init=False)
    # Set to make the coordinator look at the sessions now rather than at its next tick.
    wake: threading.Event = field(default_factory=threading.Event)
    # Set while the service stops: waiting device calls return.
    stopping: threading.Event = field(default_factory=threading.Event)
    # This replica's coordinator, for updates taken in here (see Coordinator.receiving).
    receiver: Receiver | None = None

    def __post_init__(self) -> None:
        self.cond = WakingCondition(self.changes)

    def receiving(
        self, session_id: str, round_number: int, device_id: str
    ) -> AbstractContextManager[Handoff | None]:
        """See :data:`Receiver` (a null handoff without a coordinator here)."""
        if self.receiver is None:
            return contextlib.nullcontext(None)
        return self.receiver(session_id, round_number, device_id)

    def notify(self) -> None:
        """Wake every device call waiting on this replica (they look at the store again)."""
        with self.cond:
            self.cond.notify_all()

    def event(self, session: FederatedSession, kind: EventKind, data: dict[str, Any]) -> None:
        """Append an event to the session's job and wake its watchers."""
        self.store.append_event(session.job_id, kind, data)
        self.hub.notify()

    @staticmethod
    def round_record(
        session: FederatedSession, rnd: RoundState, result: dict[str, Any] | None = None
    ) -> RoundRecord:
        """The stored form of a round (``result``: the answers unless given)."""
        return RoundRecord(
            session_id=session.id,
            number=rnd.number,
            phase=rnd.phase,
            selected=list(rnd.selected),
            opened_at=ts(rnd.opened_at),
            deadline_at=ts(rnd.deadline),
            closed_at=ts(rnd.closed_at) if rnd.closed_at is not None else None,
            result=result if result is not None else rnd.to_dict(),
        )


@dataclass
class LiveSession:
    """The coordinator's in-memory state of a session (on the replica holding its lease).

    Everything in it can be rebuilt from the stores: a replica taking the lease over (or a
    restarted server) reads the session, its weights and the open round's answers back.
    """

    session: FederatedSession
    lease: Lease | None = None
    lease_renewed: float = 0.0  # monotonic time of the last renewal
    lease_lost: bool = False  # the renewal thread found the lease gone (set once)
    lock: threading.RLock = field(default_factory=threading.RLock)
    head: HeadSpec | None = None
    strategy: Strategy | None = None
    weights: list[np.ndarray] = field(default_factory=list)
    weights_bytes: bytes = b""
    round: RoundState | None = None
    closing: bool = False  # the open round admits no more updates (begin_closing is stored)
    aggregator: Aggregator | None = None
    last_row: int = 0  # the newest answer of the open round read so far
    payloads: dict[str, str] = field(default_factory=dict)  # device -> its update's blob
    # (round, device) of updates being taken in on this replica, to be handed over in-process
    # (guarded by incoming_lock, not lock: a device call must not wait for a whole step).
    incoming: set[tuple[int, str]] = field(default_factory=set)
    incoming_lock: threading.Lock = field(default_factory=threading.Lock)
    deferred: dict[str, UpdateRecord] = field(default_factory=dict)  # their rows, seen early
    select_rng: np.random.Generator = field(default_factory=np.random.default_rng)
    noise_rng: np.random.Generator = field(default_factory=np.random.default_rng)
    device_metrics: list[dict[str, Any]] = field(default_factory=list)
    clipped: int = 0
    preparing: bool = False  # a thread exports the on-device files
    next_progress: float = 0.0
    next_check: float = 0.0

    @property
    def ready(self) -> bool:
        """True once the session runs rounds (its files and weights are loaded)."""
        return self.session.state is SessionState.RUNNING and self.head is not None


class LiveSessions:
    """The sessions this replica coordinates, by id (thread-safe)."""

    def __init__(self) -> None:
        self._live: dict[str, LiveSession] = {}
        self._lock = threading.Lock()

    def add(self, live: LiveSession) -> None:
        """Coordinate ``live`` (replaces a session with the same id)."""
        with self._lock:
            self._live[live.session.id] = live

    def claim(self, live: LiveSession) -> LiveSession:
        """Coordinate ``live`` unless this replica already coordinates its session; returns
        the one that coordinates it (at most one per session here: two would both write)."""
        with self._lock:
            return self._live.setdefault(live.session.id, live)

    def is_current(self, live: LiveSession) -> bool:
        """True while ``live`` is the state this replica coordinates its session with."""
        with self._lock:
            return self._live.get(live.session.id) is live

    def get(self, session_id: str) -> LiveSession | None:
        """The live state of a session, if this replica coordinates it."""
        with self._lock:
            return self._live.get(session_id)

    def all(self) -> list[LiveSession]:
        """Every session this replica coordinates."""
        with self._lock:
            return list(self._live.values())

    def remove(self, session_id: str, live: LiveSession | None = None) -> LiveSession | None:
        """Stop coordinating a session; returns its state. With ``live``: only if it is
        that state (a stale one must not drop the state that replaced it)."""
        with self._lock:
            if live is not None and self._live.get(session_id) is not live:
                return None
            return self._live.pop(session_id, None)

    def clear(self) -> list[LiveSession]:
        """Forget every session; returns them."""
        with self._lock:
            lives = list(self._live.values())
            self._live.clear()
        return lives
