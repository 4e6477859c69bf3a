"""Federated sessions: devices train the head locally and send updates; the server aggregates.

A session belongs to a project and runs ``config.rounds`` rounds. :class:`FederatedService` is
the one object the transports talk to; it is put together from one part per concern:

* the administrator calls (start, get, list, stop a session, its rounds and files) — here;
* the device protocol (register, get_assignment, push_update) — :mod:`.device`;
* the round loop (open, close, aggregate) — :mod:`.coordinator`;
* evaluate-and-publish — :mod:`.publishing`;
* prepare, resume after a restart, finish — :mod:`.lifecycle`;
* what it needs from storage and TensorFlow — :mod:`.ports`.

Progress is reported as the events of a job created with the session, so ``WatchJob``, the
SSE stream and ``mobiletrain watch`` work unchanged: a STATE event when it starts and ends,
PROGRESS while updates arrive (epoch = round, batch = answers, batches = selected devices),
an EPOCH event per closed round (val_accuracy = held-out accuracy) and LOG lines. Cancelling
the job stops the session.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from mobiletrain.core.auth import Action, can_see, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.events import EventHub
from mobiletrain.core.leader import LeaseStore
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.services import ProjectService
from mobiletrain.core.types import (
    Artifact,
    EventKind,
    Hyperparameters,
    Job,
    JobState,
    ModelFormat,
)
from mobiletrain.core.wakeup import AsyncWakeup
from mobiletrain.federated.config import FederatedConfig
from mobiletrain.federated.coordinator import Coordinator
from mobiletrain.federated.device import AssignmentReply, DeviceProtocol, UpdateReply
from mobiletrain.federated.lifecycle import Lifecycle
from mobiletrain.federated.ports import FederatedStore, OnDeviceToolkit
from mobiletrain.federated.publishing import Publisher
from mobiletrain.federated.records import (
    FederatedSession,
    RoundRecord,
    SessionState,
    UpdateRecord,
    UpdateStatus,
)
from mobiletrain.federated.state import ACTIVE_STATES, Context, LiveSessions, now

log = logging.getLogger("mobiletrain.federated")

LEASE_TTL_SECONDS = 10.0
"""A session's coordinator renews its lease every third of this; when it dies, another replica
takes the session over this long after its last renewal (at once when it stops cleanly)."""
SESSION_FILE_FORMATS = (
    ModelFormat.FEATURE_EXTRACTOR,
    ModelFormat.TRAIN_STEP,
    ModelFormat.HEAD_INFERENCE,
    ModelFormat.HEAD_SIGNATURES,
    ModelFormat.FLOAT32,
    ModelFormat.HEAD_WEIGHTS,
)


class FederatedService:
    """Runs federated sessions (see the module docstring)."""

    def __init__(
        self,
        store: MetadataStore,
        fstore: FederatedStore,
        blobs: BlobStore,
        toolkit: OnDeviceToolkit,
        projects: ProjectService,
        hub: EventHub,
        *,
        leases: LeaseStore | None = None,
        holder: str | None = None,
        update_concurrency: int = 4,
        tick_seconds: float = 0.05,
        devices_per_token: int = 1,
        lease_ttl_s: float = LEASE_TTL_SECONDS,
    ) -> None:
        self.ctx = Context(store, fstore, blobs, toolkit, projects, hub, leases)
        if holder:
            self.ctx.holder = holder
        self.store, self.fstore, self.blobs = store, fstore, blobs
        self.projects = projects
        self.sessions = LiveSessions()
        self.publisher = Publisher(self.ctx)
        self.lifecycle = Lifecycle(self.ctx, self.sessions, self.publisher)
        self.coordinator = Coordinator(
            self.ctx, self.sessions, self.lifecycle, self.publisher, tick_seconds, lease_ttl_s
        )
        self.ctx.receiver = self.coordinator.receiving
        self.devices = DeviceProtocol(self.ctx, update_concurrency, devices_per_token)

    @property
    def toolkit(self) -> OnDeviceToolkit:
        """Exports and evaluates the on-device files (replaceable, e.g. by a test's stand-in)."""
        return self.ctx.toolkit

    @toolkit.setter
    def toolkit(self, toolkit: OnDeviceToolkit) -> None:
        self.ctx.toolkit = toolkit

    @property
    def changes(self) -> AsyncWakeup:
        """Pulled whenever a round opens or closes or a session ends (long polls wait on it)."""
        return self.ctx.changes

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the coordinator loop: it takes over the active sessions that have no
        coordinator (all of them after a restart of a single server)."""
        if self.coordinator.running:
            return
        self.ctx.stopping.clear()
        self.coordinator.start()

    def stop(self, hand_over: bool = True) -> None:
        """Stop coordinating (sessions stay active in the store: another replica, or this
        server once restarted, takes them over). ``hand_over=False`` keeps the leases until
        they expire, as a crashed server would (for tests of the takeover)."""
        self.ctx.stopping.set()
        self.coordinator.stop(hand_over)
        self.lifecycle.join_preparing()
        self.ctx.notify()

    # -- sessions (administrators) --------------------------------------------------------------
    def start_session(
        self, project_ref: str, config: FederatedConfig | None = None
    ) -> FederatedSession:
        """Start a session: export the on-device files in the background, then run rounds."""
        require(Action.TRAIN)
        project = self.projects.get(project_ref)
        config = config or FederatedConfig()
        config.validate()
        if any(
            not s.state.is_terminal for s in self.fstore.list_sessions(project.id, ACTIVE_STATES)
        ):
            raise MobiletrainError(
                ErrorCode.SESSION_ACTIVE, "the project already has a running federated session"
            )
        labels = self.lifecycle.labels(project, config)
        job = Job(
            id=str(uuid.uuid4()),
            project_id=project.id,
            state=JobState.RUNNING,
            hyperparameters=Hyperparameters(
                epochs=config.rounds,
                batch_size=config.batch_size,
                learning_rate=min(config.learning_rate, 1.0),
                seed=config.seed,
                formats=list(SESSION_FILE_FORMATS),
            ),
            created_at=now(),
            started_at=now(),
        )
        self.store.create_job(job)
        session_id = str(uuid.uuid4())
        # This replica coordinates it (another one takes over if this one goes away): the lease
        # is taken before the session is stored, so no other replica's scan gets it first.
        lease = self.coordinator.acquire(session_id)
        session = FederatedSession(
            id=session_id,
            project_id=project.id,
            job_id=job.id,
            state=SessionState.PREPARING,
            config=config,
            labels=labels,
            created_at=now(),
        )
        self.fstore.create_session(session)
        self.ctx.event(
            session,
            EventKind.STATE,
            {"state": JobState.RUNNING.value, "federated_session": session.id},
        )
        self.ctx.event(
            session, EventKind.LOG, {"message": "exporting the on-device training files"}
        )
        if lease is not None:
            self.coordinator.adopt(session, lease, fresh=True)
        return session

    def weights_size(self, session: FederatedSession) -> int | None:
        """Size in bytes of the session's current global weights (None before it has any)."""
        return self.blobs.size(session.weights_sha256) if session.weights_sha256 else None

    def get_session(self, session_id: str) -> FederatedSession:
        """A session by id (as stored: every replica reads the same)."""
        require(Action.READ)
        session = self.fstore.get_session(session_id)
        if session is None or not can_see(session.project_id):
            raise MobiletrainError(
                ErrorCode.SESSION_NOT_FOUND, f"federated session {session_id!r} not found"
            )
        return session

    def list_sessions(self, project_ref: str) -> list[FederatedSession]:
        """A project's sessions, newest first."""
        require(Action.READ)
        project = self.projects.get(project_ref)
        return self.fstore.list_sessions(project.id)

    def rounds(self, session_id: str) -> list[RoundRecord]:
        """The rounds of a session (the open one with its answers so far); they name every
        device, so they are for administrators."""
        require(Action.MONITOR)
        session = self.get_session(session_id)
        records = self.fstore.list_rounds(session.id)
        for record in records:
            if not record.phase.is_closed:
                answers = answers_so_far(
                    self.fstore.list_updates(session.id, record.number), session.config
                )
                record.result = {**record.result, **answers}
        return records

    def stop_session(self, session_id: str) -> FederatedSession:
        """Cancel a running session; the last published version stays."""
        require(Action.CANCEL)
        session = self.get_session(session_id)
        if session.state.is_terminal:
            raise MobiletrainError(
                ErrorCode.JOB_FINISHED, f"session is already {session.state.value}"
            )
        live = self.sessions.get(session.id)
        if live is not None:
            self.lifecycle.finish(live, SessionState.CANCELLED, "stopped on request")
            return live.session
        # Coordinated by another replica (or by none right now): the stored state decides; the
        # coordinator sees it within a second and cuts the open round.
        session.state = SessionState.CANCELLED
        session.finished_at = now()
        session.error = "stopped on request"
        if not self.fstore.save_session_if_active(session):
            stored = self.get_session(session_id)
            raise MobiletrainError(
                ErrorCode.JOB_FINISHED, f"session is already {stored.state.value}"
            )
        self.lifecycle.finish_job(session, JobState.CANCELLED)
        return session

    def file(self, session_id: str, fmt: str) -> Artifact:
        """One of the session's files (``format`` name); read it with :meth:`read_file`."""
        require(Action.DOWNLOAD)
        model_format = ModelFormat.parse(fmt)
        session = self.get_session(session_id)
        if model_format is ModelFormat.HEAD_WEIGHTS and session.weights_sha256:
            sha = session.weights_sha256
            return Artifact(model_format, sha, self.blobs.size(sha))
        info = session.files.get(model_format.value)
        if info is None:
            have = ", ".join(session.files) or "none yet"
            raise MobiletrainError(
                ErrorCode.FORMAT_NOT_FOUND, f"the session has no {fmt!r} file; it has: {have}"
            )
        return Artifact(model_format, info["sha256"], int(info["size"]))

    def read_file(self, artifact: Artifact, start: int = 0) -> Iterator[bytes]:
        """The bytes of a session file from ``start``."""
        require(Action.DOWNLOAD)
        if not 0 <= start <= artifact.size:
            raise MobiletrainError(
                ErrorCode.INVALID_RANGE, f"offset {start} is outside 0..{artifact.size}"
            )
        return self.blobs.read_range(artifact.sha256, start, artifact.size - start)

    # -- devices (see .device) -------------------------------------------------------------------
    def register(
        self, project_ref: str, info: dict[str, Any] | None = None
    ) -> tuple[FederatedSession, str]:
        """Join the project's running session; see :meth:`DeviceProtocol.register`."""
        return self.devices.register(project_ref, info)

    def get_assignment(
        self, project_ref: str, device_id: str, wait_seconds: float = 0.0
    ) -> AssignmentReply:
        """The device's work for the open round; see :meth:`DeviceProtocol.get_assignment`."""
        return self.devices.get_assignment(project_ref, device_id, wait_seconds)

    def push_update(
        self,
        project_ref: str,
        device_id: str,
        session_id: str,
        round_number: int,
        data: bytes | Iterable[bytes],
        num_samples: int,
        dtype: str = "float32",
        metrics: dict[str, Any] | None = None,
        error: str = "",
    ) -> UpdateReply:
        """A device's answer for a round; see :meth:`DeviceProtocol.push_update`."""
        return self.devices.push_update(
            project_ref,
            device_id,
            session_id,
            round_number,
            data,
            num_samples,
            dtype=dtype,
            metrics=metrics,
            error=error,
        )


def answers_so_far(rows: list[UpdateRecord], config: FederatedConfig) -> dict[str, Any]:
    """An open round's answers from its rows, as the coordinator counts them: the first
    answer of each device that counts (accepted samples capped per device)."""
    accepted: dict[str, int] = {}
    rejected: dict[str, str] = {}
    failed: dict[str, str] = {}
    for row in rows:
        device = row.device_id
        if not row.counts or device in accepted or device in failed or device in rejected:
            continue
        if row.status is UpdateStatus.ACCEPTED:
            accepted[device] = min(row.num_samples, config.max_samples_per_device)
        elif row.status is UpdateStatus.FAILED:
            failed[device] = row.message
        else:
            rejected[device] = row.reason
    return {"accepted": accepted, "rejected": rejected, "failed": failed}
