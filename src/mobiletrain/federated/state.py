"""What the parts of the federated service share: the stores, and the sessions this server runs.

:class:`Context` bundles the stores and the wake-up signals; :class:`LiveSession` is the
in-memory state of one running session; :class:`LiveSessions` is the set of them with the
lookups the device calls need (a project's running session, the session a device is in).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mobiletrain.core.auth import can_see
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.events import EventHub
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.services import ProjectService
from mobiletrain.core.types import EventKind
from mobiletrain.core.wakeup import AsyncWakeup
from mobiletrain.federated.head import HeadSpec
from mobiletrain.federated.ports import FederatedStore, OnDeviceToolkit, UpdateSpool
from mobiletrain.federated.records import FederatedSession, RoundRecord, SessionState, UpdateRecord
from mobiletrain.federated.rounds import RoundState
from mobiletrain.federated.strategy import Aggregator, Strategy

ACTIVE_STATES = (SessionState.PREPARING, SessionState.RUNNING)
"""States of a session that is not over."""


def now() -> datetime:
    """The current time (UTC)."""
    return datetime.now(UTC)


def ts(seconds: float) -> datetime:
    """Unix seconds as a UTC datetime."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class Context:
    """The stores and signals every part of the federated service works with."""

    store: MetadataStore
    fstore: FederatedStore
    blobs: BlobStore
    spool: UpdateSpool
    toolkit: OnDeviceToolkit
    projects: ProjectService
    hub: EventHub
    # Pulled by every session's condition: long polls on an event loop wait on it.
    changes: AsyncWakeup = field(default_factory=AsyncWakeup)
    # Set to make the coordinator look at the sessions now rather than at its next tick.
    wake: threading.Event = field(default_factory=threading.Event)
    # Set while the service stops: waiting device calls return.
    stopping: threading.Event = field(default_factory=threading.Event)

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
    """In-memory state of a session this server runs."""

    session: FederatedSession
    project_name: str = ""
    devices: set[str] = field(default_factory=set)
    owners: dict[str, str] = field(default_factory=dict)  # device -> registering token id
    declared: dict[str, int] = field(default_factory=dict)  # device -> declared samples
    last_seen: dict[str, float] = field(default_factory=dict)  # device -> monotonic time
    cond: threading.Condition = field(default_factory=threading.Condition)
    head: HeadSpec | None = None
    strategy: Strategy | None = None
    weights: list[np.ndarray] = field(default_factory=list)
    weights_bytes: bytes = b""
    round: RoundState | None = None
    aggregator: Aggregator | None = None
    select_rng: np.random.Generator = field(default_factory=np.random.default_rng)
    noise_rng: np.random.Generator = field(default_factory=np.random.default_rng)
    device_metrics: list[dict[str, Any]] = field(default_factory=list)
    clipped: int = 0
    accepted_rows: list[UpdateRecord] = field(default_factory=list)
    ended: bool = False  # the session's end is stored: devices are told
    next_progress: float = 0.0
    next_cancel_check: float = 0.0

    @property
    def ready(self) -> bool:
        """True once the session runs rounds (its files and weights are loaded)."""
        return self.session.state is SessionState.RUNNING and self.head is not None


class LiveSessions:
    """The sessions this server runs, by id (thread-safe)."""

    def __init__(self, projects: ProjectService) -> None:
        self._projects = projects
        self._live: dict[str, LiveSession] = {}
        self._lock = threading.Lock()

    def add(self, live: LiveSession) -> None:
        """Run ``live`` (replaces a session with the same id)."""
        with self._lock:
            self._live[live.session.id] = live

    def get(self, session_id: str) -> LiveSession | None:
        """The live state of a session, if this server runs it."""
        with self._lock:
            return self._live.get(session_id)

    def all(self) -> list[LiveSession]:
        """Every session this server runs."""
        with self._lock:
            return list(self._live.values())

    def clear(self) -> list[LiveSession]:
        """Forget every session; returns them."""
        with self._lock:
            lives = list(self._live.values())
            self._live.clear()
        return lives

    def forget_ended(self, project_id: str) -> None:
        """Forget the project's sessions whose end is stored."""
        with self._lock:
            for key in [
                k
                for k, live in self._live.items()
                if live.session.project_id == project_id and live.ended
            ]:
                del self._live[key]

    def fresh(self, session: FederatedSession) -> FederatedSession:
        """The live copy of a stored session when this server runs it."""
        live = self.get(session.id)
        return live.session if live is not None else session

    def project_id(self, project_ref: str) -> str:
        """The id of a project named by id or name, visible to the caller.

        Devices call many times per round: the projects of running sessions are resolved in
        memory, the others through the project service.
        """
        with self._lock:
            found = next(
                (
                    live.session.project_id
                    for live in self._live.values()
                    if project_ref in (live.session.project_id, live.project_name)
                ),
                None,
            )
        if found is None:
            return self._projects.get(project_ref).id
        if not can_see(found):
            raise MobiletrainError(
                ErrorCode.PROJECT_NOT_FOUND, f"project {project_ref!r} not found"
            )
        return found

    def active(self, project_id: str) -> LiveSession:
        """The project's running session; NO_ACTIVE_SESSION when there is none."""
        with self._lock:
            for live in self._live.values():
                if live.session.project_id == project_id and not live.session.state.is_terminal:
                    return live
        raise MobiletrainError(
            ErrorCode.NO_ACTIVE_SESSION, "the project has no running federated session"
        )

    def latest(self, project_id: str, device_id: str) -> LiveSession | None:
        """The session this server runs that the device belongs to (None: an ended one)."""
        with self._lock:
            lives = [live for live in self._live.values() if live.session.project_id == project_id]
        for live in lives:
            if device_id in live.devices:
                return live
        return None
