"""Federated sessions: devices train the head locally and send updates; the server aggregates.

A session belongs to a project and runs ``config.rounds`` rounds. Devices (phones, or the
simulator) talk to it in three calls, the same on both transports:

1. :meth:`FederatedService.register` — join the project's running session, get a device id;
2. :meth:`FederatedService.get_task` — long-poll for work: the round number, the global
   weights (head-weights format) and the training settings, or "wait" / "finished";
3. :meth:`FederatedService.push_update` — the new weights after local training, with the
   number of samples used (or an error when local training failed).

The files a device runs (feature extractor, train-step model, ...) are exported once per
session in a child process (:class:`~mobiletrain.core.federated_ports.OnDeviceToolkit`) and
downloaded with :meth:`FederatedService.file`. A coordinator thread opens rounds when enough
devices are available, closes them per the configuration, aggregates with the session's
strategy, evaluates the new model on the project's samples (the held-out data: a federated
project's training data stays on the devices) and publishes it as a model version.

Progress is reported as the events of a job created with the session, so ``WatchJob``, the
SSE stream and ``mobiletrain watch`` work unchanged: a STATE event when it starts and ends,
PROGRESS while updates arrive (epoch = round, batch = answers, batches = selected devices),
an EPOCH event per closed round (val_accuracy = held-out accuracy) and LOG lines. Cancelling
the job stops the session.

Everything a round needs is persisted (the round row, every answer, accepted updates in the
spool), so a restarted server resumes an open round where it was.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from mobiletrain.core.auth import Action, Role, can_see, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.events import EventHub
from mobiletrain.core.federated_ports import FederatedStore, OnDeviceToolkit, UpdateSpool
from mobiletrain.core.ports import BlobStore, MetadataStore
from mobiletrain.core.services import ProjectService
from mobiletrain.core.types import (
    Artifact,
    EventKind,
    Hyperparameters,
    Job,
    JobState,
    ModelFormat,
    ModelVersion,
    Project,
)
from mobiletrain.core.wakeup import AsyncWakeup, WakingCondition
from mobiletrain.federated.config import FederatedConfig
from mobiletrain.federated.head import HeadSpec, weights_from_bytes, weights_to_bytes
from mobiletrain.federated.privacy import add_noise, clip, noise_std
from mobiletrain.federated.records import (
    DeviceRecord,
    FederatedSession,
    RoundRecord,
    SessionState,
    UpdateRecord,
    UpdateStatus,
)
from mobiletrain.federated.rounds import RoundPhase, RoundState, select_devices
from mobiletrain.federated.strategy import (
    Aggregator,
    Strategy,
    cap_weight_shares,
    make_strategy,
)
from mobiletrain.federated.validation import Rejection, RejectReason, check_update

log = logging.getLogger("mobiletrain.federated")

MAX_WAIT_SECONDS = 60.0
"""Longest a GetTask long-poll is held open."""
RETRY_AFTER_SECONDS = 1.0
"""What a device is told to wait before polling again when it got no task."""
SESSION_FILE_FORMATS = (
    ModelFormat.FEATURE_EXTRACTOR,
    ModelFormat.TRAIN_STEP,
    ModelFormat.HEAD_INFERENCE,
    ModelFormat.HEAD_SIGNATURES,
    ModelFormat.FLOAT32,
    ModelFormat.HEAD_WEIGHTS,
)
_ACTIVE = (SessionState.PREPARING, SessionState.RUNNING)
_PROGRESS_INTERVAL_S = 0.5
_CANCEL_CHECK_S = 1.0
_MANIFEST_SCHEMA_VERSION = 1
MAX_INFO_ENTRIES = 16
"""Most entries a device's registration ``info`` may have."""
MAX_INFO_KEY = 64
"""Longest key of a registration ``info`` entry."""
MAX_INFO_VALUE = 256
"""Longest string value of a registration ``info`` entry."""
MAX_ERROR_CHARS = 1000
"""Longest ``error`` an update may carry."""
DECLARED_SAMPLES_KEY = "num_samples"
"""The ``info`` entry in which a device declares its local dataset size at registration."""


def _now() -> datetime:
    return datetime.now(UTC)


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class TaskStatus(enum.StrEnum):
    """What a GetTask answer holds."""

    TASK = "task"  # train now
    WAIT = "wait"  # nothing for this device yet: poll again after retry_after_seconds
    FINISHED = "finished"  # the session is over: stop polling


@dataclass
class Task:
    """One round's work for one device.

    ``weights`` are the global head weights (little-endian float32 tensors back to back, in
    the order and shapes of ``tensors``): the device trains from them with the train-step
    model (``mu`` > 0: pass them as the anchors too) and sends the result back.
    """

    session_id: str
    round: int
    rounds: int
    deadline: datetime
    weights: bytes
    tensors: list[tuple[str, tuple[int, ...]]]
    learning_rate: float
    local_epochs: int
    batch_size: int
    mu: float
    labels: list[str]
    files: dict[str, dict[str, Any]]
    model_version: int | None


@dataclass
class TaskReply:
    """The answer of :meth:`FederatedService.get_task`."""

    status: TaskStatus
    session_id: str
    task: Task | None = None
    retry_after_seconds: float = 0.0
    message: str = ""


@dataclass
class UpdateReply:
    """The answer of :meth:`FederatedService.push_update`; ``reason`` is a RejectReason."""

    accepted: bool
    round: int
    reason: str = ""
    message: str = ""


@dataclass
class _Live:
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
        return self.session.state is SessionState.RUNNING and self.head is not None


class FederatedService:
    """Runs federated sessions (see the module docstring)."""

    def __init__(
        self,
        store: MetadataStore,
        fstore: FederatedStore,
        blobs: BlobStore,
        spool: UpdateSpool,
        toolkit: OnDeviceToolkit,
        projects: ProjectService,
        hub: EventHub,
        update_concurrency: int = 4,
        tick_seconds: float = 0.05,
        devices_per_token: int = 1,
    ) -> None:
        self.store = store
        self.fstore = fstore
        self.blobs = blobs
        self.spool = spool
        self.toolkit = toolkit
        self.projects = projects
        self.hub = hub
        self.tick_seconds = tick_seconds
        # How many devices one device token may register per session (admin tokens: any).
        self.devices_per_token = max(1, devices_per_token)
        self._register_lock = threading.Lock()
        # Bounds how many updates are decoded at once, so memory stays flat with many devices
        # (a streaming transport stops reading the others' bytes meanwhile).
        self._slots = threading.BoundedSemaphore(max(1, update_concurrency))
        self._live: dict[str, _Live] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Pulled by every session's condition: long polls on an event loop wait on it.
        self.changes = AsyncWakeup()
        self._preparing: list[threading.Thread] = []

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> None:
        """Resume the sessions a previous server left active, then start the coordinator."""
        if self._thread is not None:
            return
        self._stop.clear()
        for session in self.fstore.list_sessions(states=_ACTIVE):
            try:
                self._resume(session)
            except Exception:  # one broken session must not keep the server down
                log.exception("federated session %s could not be resumed", session.id)
        self._thread = threading.Thread(target=self._run, name="federated", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the coordinator (sessions stay active in the store and resume on start)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        for thread in self._preparing:
            thread.join(timeout=0.1)
        with self._lock:
            lives = list(self._live.values())
            self._live.clear()
        for live in lives:
            with live.cond:
                live.cond.notify_all()

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
            not self._fresh(s).state.is_terminal
            for s in self.fstore.list_sessions(project.id, _ACTIVE)
        ):
            raise MobiletrainError(
                ErrorCode.SESSION_ACTIVE, "the project already has a running federated session"
            )
        labels = self._labels(project, config)
        with self._lock:  # forget the project's ended sessions
            ended = [
                key
                for key, live in self._live.items()
                if live.session.project_id == project.id and live.ended
            ]
            for key in ended:
                del self._live[key]
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
            created_at=_now(),
            started_at=_now(),
        )
        self.store.create_job(job)
        session = FederatedSession(
            id=str(uuid.uuid4()),
            project_id=project.id,
            job_id=job.id,
            state=SessionState.PREPARING,
            config=config,
            labels=labels,
            created_at=_now(),
        )
        self.fstore.create_session(session)
        self._event(
            session,
            EventKind.STATE,
            {"state": JobState.RUNNING.value, "federated_session": session.id},
        )
        self._event(session, EventKind.LOG, {"message": "exporting the on-device training files"})
        live = _Live(session=session, project_name=project.name, cond=WakingCondition(self.changes))
        with self._lock:
            self._live[session.id] = live
        self._spawn_prepare(live)
        return session

    def weights_size(self, session: FederatedSession) -> int | None:
        """Size in bytes of the session's current global weights (None before it has any)."""
        return self.blobs.size(session.weights_sha256) if session.weights_sha256 else None

    def get_session(self, session_id: str) -> FederatedSession:
        """A session by id (live state when this server runs it)."""
        require(Action.READ)
        with self._lock:
            live = self._live.get(session_id)
        session = live.session if live is not None else self.fstore.get_session(session_id)
        if session is None or not can_see(session.project_id):
            raise MobiletrainError(
                ErrorCode.SESSION_NOT_FOUND, f"federated session {session_id!r} not found"
            )
        return session

    def list_sessions(self, project_ref: str) -> list[FederatedSession]:
        """A project's sessions, newest first."""
        require(Action.READ)
        project = self.projects.get(project_ref)
        return [self._fresh(s) for s in self.fstore.list_sessions(project.id)]

    def rounds(self, session_id: str) -> list[RoundRecord]:
        """The rounds of a session (the open one with its answers so far); they name every
        device, so they are for administrators."""
        require(Action.MONITOR)
        session = self.get_session(session_id)
        records = self.fstore.list_rounds(session.id)
        with self._lock:
            live = self._live.get(session.id)
        if live is not None:
            with live.cond:
                rnd = live.round
                if rnd is not None and not rnd.phase.is_closed:
                    for record in records:
                        if record.number == rnd.number:
                            record.result = {**record.result, **rnd.to_dict()}
        return records

    def stop_session(self, session_id: str) -> FederatedSession:
        """Cancel a running session; the last published version stays."""
        require(Action.CANCEL)
        session = self.get_session(session_id)
        if session.state.is_terminal:
            raise MobiletrainError(
                ErrorCode.JOB_FINISHED, f"session is already {session.state.value}"
            )
        with self._lock:
            live = self._live.get(session.id)
        if live is None:
            session.state = SessionState.CANCELLED
            session.finished_at = _now()
            self.fstore.save_session(session)
            self._finish_job(session, JobState.CANCELLED)
            return session
        self._finish(live, SessionState.CANCELLED, "stopped on request")
        return live.session

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

    # -- devices ---------------------------------------------------------------------------------
    def register(
        self, project_ref: str, info: dict[str, Any] | None = None
    ) -> tuple[FederatedSession, str]:
        """Join the project's running session; returns it and the device id.

        The device id is bound to the calling token: only that token may name it later
        (DEVICE_NOT_OWNED otherwise). A device token registers at most ``devices_per_token``
        devices per session; with the default of one, registering again returns the same
        device id (idempotent), with more, past the cap is TOO_MANY_DEVICES. An ``info`` entry
        ``num_samples`` declares the device's local dataset size: its updates may not claim
        more.
        """
        principal = require(Action.FEDERATE)
        live = self._active(self._project_id(project_ref))
        clean = _clean_info(info or {})
        declared = _declared_samples(clean)
        with self._register_lock:
            with live.cond:
                own = [d for d, owner in live.owners.items() if owner == principal.token_id]
            if principal.role is Role.DEVICE and len(own) >= self.devices_per_token:
                if self.devices_per_token == 1:
                    with live.cond:
                        live.last_seen[own[0]] = time.monotonic()
                    return live.session, own[0]
                raise MobiletrainError(
                    ErrorCode.TOO_MANY_DEVICES,
                    f"this token registered {len(own)} devices with the session; "
                    f"the limit is {self.devices_per_token}",
                )
            device_id = str(uuid.uuid4())
            self.fstore.add_device(
                DeviceRecord(
                    live.session.id, device_id, _now(), clean, principal.token_id, declared
                )
            )
            with live.cond:
                live.devices.add(device_id)
                live.owners[device_id] = principal.token_id
                if declared is not None:
                    live.declared[device_id] = declared
                live.last_seen[device_id] = time.monotonic()
        self._wake.set()
        return live.session, device_id

    def get_task(self, project_ref: str, device_id: str, wait_seconds: float = 0.0) -> TaskReply:
        """Work for the device, waiting up to ``wait_seconds`` (max 60) for some."""
        require(Action.FEDERATE)
        project_id = self._project_id(project_ref)
        live = self._latest(project_id, device_id)
        if live is None:
            session = self._finished_session_of(project_id, device_id)
            return TaskReply(
                TaskStatus.FINISHED, session.id, message=f"session {session.state.value}"
            )
        self._check_owner(live.owners.get(device_id, ""))
        end = time.monotonic() + max(0.0, min(wait_seconds, MAX_WAIT_SECONDS))
        with live.cond:
            while True:
                live.last_seen[device_id] = time.monotonic()
                session = live.session
                if live.ended:
                    return TaskReply(
                        TaskStatus.FINISHED, session.id, message=f"session {session.state.value}"
                    )
                task = self._task_for(live, device_id)
                if task is not None:
                    return TaskReply(TaskStatus.TASK, session.id, task=task)
                remaining = end - time.monotonic()
                if remaining <= 0 or self._stop.is_set():
                    return TaskReply(
                        TaskStatus.WAIT,
                        session.id,
                        retry_after_seconds=RETRY_AFTER_SECONDS,
                        message=self._why_waiting(live, device_id),
                    )
                self._wake.set()
                live.cond.wait(min(remaining, 1.0))

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
        """Receive a device's answer for a round: new weights (head-weights format), or
        ``error`` when local training failed. Rejected updates are excluded and reported."""
        require(Action.FEDERATE)
        project_id = self._project_id(project_ref)
        with self._lock:
            live = self._live.get(session_id)
        if live is None or live.session.project_id != project_id:
            session = self.fstore.get_session(session_id)
            if session is None or session.project_id != project_id:
                raise MobiletrainError(
                    ErrorCode.SESSION_NOT_FOUND, f"federated session {session_id!r} not found"
                )
            return UpdateReply(
                False,
                round_number,
                RejectReason.STALE_ROUND.value,
                f"session {session.state.value}",
            )
        if device_id not in live.devices:
            raise MobiletrainError(ErrorCode.DEVICE_NOT_REGISTERED)
        self._check_owner(live.owners.get(device_id, ""))
        if len(error) > MAX_ERROR_CHARS:
            raise MobiletrainError(
                ErrorCode.FIELD_TOO_LONG,
                f"error is {len(error)} characters; the limit is {MAX_ERROR_CHARS}",
            )
        metrics = _clean_metrics(metrics or {})
        with self._slots:
            return self._receive(
                live, device_id, round_number, data, num_samples, dtype, metrics, error
            )

    # -- internals: receiving updates ---------------------------------------------------------
    def _receive(
        self,
        live: _Live,
        device_id: str,
        round_number: int,
        data: bytes | Iterable[bytes],
        num_samples: int,
        dtype: str,
        metrics: dict[str, Any],
        error: str,
    ) -> UpdateReply:
        with live.cond:
            live.last_seen[device_id] = time.monotonic()
            rnd = live.round
            rejection = (
                rnd.admit(device_id, round_number)
                if rnd is not None and live.ready
                else Rejection(RejectReason.STALE_ROUND, "no round is open")
            )
            head, weights = live.head, live.weights
        if rejection is not None:
            return self._reject(live, device_id, round_number, rejection, num_samples, metrics)
        assert rnd is not None and head is not None
        if error:
            rejection = Rejection(RejectReason.DEVICE_FAILED, error or "local training failed")
            return self._reject(live, device_id, round_number, rejection, num_samples, metrics)
        expected = 4 * head.num_parameters
        raw = _join(data, expected)
        if dtype != "float32":
            rejection = Rejection(RejectReason.DTYPE, f"weights are {dtype}, expected float32")
        elif len(raw) != expected:
            rejection = Rejection(
                RejectReason.SHAPE, f"expected {expected} bytes of weights, got {len(raw)}"
            )
        else:
            tensors = weights_from_bytes(raw, head, copy=False)  # views of the buffer
            rejection = check_update(tensors, head.weight_shapes(), num_samples)
            declared = live.declared.get(device_id)
            if rejection is None and declared is not None and num_samples > declared:
                rejection = Rejection(
                    RejectReason.SAMPLE_COUNT,
                    f"num_samples {num_samples} is more than the {declared} the device "
                    "declared at registration",
                )
        if rejection is not None:
            return self._reject(live, device_id, round_number, rejection, num_samples, metrics)

        delta, norm, was_clipped = clip(
            [t - w for t, w in zip(tensors, weights, strict=True)], live.session.config.clip_norm
        )
        key = f"{live.session.id}/{round_number}/{device_id}"
        # The spool entry is the durable record of an accepted update (a restart rebuilds the
        # round from it); its row is written with the round's others when the round closes.
        self.spool.put(key, raw, {"num_samples": num_samples, "metrics": metrics})
        with live.cond:
            late = rnd.admit(device_id, round_number) if live.round is rnd else None
            if live.round is not rnd or late is not None:
                rejection = late or Rejection(RejectReason.STALE_ROUND, "the round closed")
            else:
                assert live.strategy is not None and live.aggregator is not None
                weight = live.strategy.weight_of(num_samples)
                live.aggregator.add(delta, weight)
                counted = min(num_samples, live.session.config.max_samples_per_device)
                rnd.accepted[device_id] = counted
                live.device_metrics.append({**metrics, "num_samples": counted, "norm": norm})
                live.clipped += int(was_clipped)
                live.accepted_rows.append(
                    UpdateRecord(
                        live.session.id,
                        round_number,
                        device_id,
                        UpdateStatus.ACCEPTED,
                        "",
                        "",
                        num_samples,
                        metrics,
                        _now(),
                        payload=key,
                    )
                )
                # No notify here: waiting devices only care about rounds opening and
                # closing; waking them all on every update would cost O(devices²) per round.
        if rejection is not None:
            return self._reject(live, device_id, round_number, rejection, num_samples, metrics)
        self._progress(live)
        self._wake.set()
        return UpdateReply(True, round_number)

    def _reject(
        self,
        live: _Live,
        device_id: str,
        round_number: int,
        rejection: Rejection,
        num_samples: int,
        metrics: dict[str, Any],
    ) -> UpdateReply:
        failed = rejection.reason is RejectReason.DEVICE_FAILED
        with live.cond:
            rnd = live.round
            counts = (
                rnd is not None
                and rnd.number == round_number
                and not rnd.phase.is_closed
                and rejection.reason not in (RejectReason.DUPLICATE, RejectReason.STALE_ROUND)
            )
            if counts and rnd is not None:
                if failed:
                    rnd.failed[device_id] = rejection.message
                else:
                    rnd.rejected[device_id] = rejection.reason.value
        if rejection.reason is not RejectReason.DUPLICATE:
            self.fstore.add_update(
                UpdateRecord(
                    live.session.id,
                    round_number,
                    device_id,
                    UpdateStatus.FAILED if failed else UpdateStatus.REJECTED,
                    rejection.reason.value,
                    rejection.message,
                    max(num_samples, 0),
                    metrics,
                    _now(),
                )
            )
            what = (
                "reported a failure" if failed else f"sent a rejected update ({rejection.reason})"
            )
            self._event(
                live.session,
                EventKind.LOG,
                {
                    "message": f"round {round_number}: device {device_id[:8]} {what}: "
                    + rejection.message
                },
            )
        self._wake.set()
        return UpdateReply(False, round_number, rejection.reason.value, rejection.message)

    def _progress(self, live: _Live) -> None:
        now = time.monotonic()
        with live.cond:
            rnd = live.round
            if rnd is None or now < live.next_progress:
                return
            live.next_progress = now + _PROGRESS_INTERVAL_S
            data = {
                "epoch": rnd.number,
                "epochs": live.session.config.rounds,
                "batch": len(rnd.answered),
                "batches": len(rnd.selected),
                "samples_per_second": 0.0,
                "eta_seconds": round(max(rnd.deadline - time.time(), 0.0), 1),
            }
        self._event(live.session, EventKind.PROGRESS, data)

    # -- internals: tasks ------------------------------------------------------------------------
    def _task_for(self, live: _Live, device_id: str) -> Task | None:
        rnd = live.round
        if not live.ready or rnd is None or rnd.phase.is_closed:
            return None
        if device_id not in rnd.selected or device_id in rnd.answered:
            return None
        assert live.head is not None and live.strategy is not None
        config = live.session.config
        return Task(
            session_id=live.session.id,
            round=rnd.number,
            rounds=config.rounds,
            deadline=_ts(rnd.deadline),
            weights=live.weights_bytes,
            tensors=live.head.weight_shapes(),
            learning_rate=config.learning_rate,
            local_epochs=config.local_epochs,
            batch_size=live.head.batch_size,
            mu=float(live.strategy.device_settings().get("mu", 0.0)),
            labels=list(live.session.labels),
            files=dict(live.session.files),
            model_version=live.session.model_version,
        )

    def _why_waiting(self, live: _Live, device_id: str) -> str:
        if live.session.state is SessionState.PREPARING:
            return "the session is preparing its files"
        rnd = live.round
        if rnd is None or rnd.phase.is_closed:
            return "waiting for enough devices to start the next round"
        if device_id in rnd.answered:
            return f"waiting for round {rnd.number} to close"
        return f"not selected for round {rnd.number}"

    # -- internals: the coordinator --------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                lives = list(self._live.values())
            for live in lives:
                try:
                    self._step(live)
                except Exception as exc:  # a failing session must not stop the others
                    log.exception("federated session %s failed", live.session.id)
                    self._finish(live, SessionState.FAILED, f"{type(exc).__name__}: {exc}")
            self._wake.wait(self.tick_seconds)
            self._wake.clear()

    def _step(self, live: _Live) -> None:
        if not live.ready:
            return
        mono = time.monotonic()
        if mono >= live.next_cancel_check:
            live.next_cancel_check = mono + _CANCEL_CHECK_S
            job = self.store.get_job(live.session.job_id)
            if job is None or job.cancel_requested:
                self._finish(live, SessionState.CANCELLED, "cancelled")
                return
        config = live.session.config
        now = time.time()
        closing: RoundState | None = None
        with live.cond:
            rnd = live.round
            if rnd is None or rnd.phase.is_closed:
                if live.session.current_round >= config.rounds:
                    finished = True
                else:
                    finished = False
                    self._maybe_open(live, now, mono)
            else:
                finished = False
                reason = rnd.should_close(now, config)
                if reason:
                    phase, why = rnd.decide(config)
                    rnd.phase, rnd.closed_at = phase, now
                    rnd.close_reason = f"{reason}; {why}"
                    closing = rnd
                    live.cond.notify_all()
        if finished:
            self._finish(live, SessionState.FINISHED)
        elif closing is not None:
            self._close(live, closing)

    def _maybe_open(self, live: _Live, now: float, mono: float) -> None:
        config = live.session.config
        available = [
            d
            for d, seen in live.last_seen.items()
            if mono - seen <= config.availability_seconds and d in live.devices
        ]
        selected = select_devices(available, config, live.select_rng)
        if not selected:
            return
        assert live.strategy is not None
        number = live.session.current_round + 1
        live.round = RoundState(number, selected, now, now + config.round_deadline_seconds)
        live.aggregator = live.strategy.aggregator()
        live.device_metrics = []
        live.clipped = 0
        live.session.current_round = number
        self.fstore.save_round(self._round_record(live.session, live.round))
        self.fstore.save_session(live.session)
        live.cond.notify_all()
        self._event(
            live.session,
            EventKind.LOG,
            {
                "message": f"round {number}/{config.rounds}: selected {len(selected)} of "
                f"{len(available)} available devices"
            },
        )

    def _close(self, live: _Live, rnd: RoundState) -> None:
        """Aggregate (or skip), evaluate, publish and report a round that just closed."""
        session, config = live.session, live.session.config
        result: dict[str, Any] = {
            **rnd.to_dict(),
            "selected": len(rnd.selected),
            "completion_rate": round(rnd.completion_rate, 4),
            "clipped": live.clipped,
            "noise_std": 0.0,
            "strategy": config.strategy.value,
        }
        losses = [m["loss"] for m in live.device_metrics if isinstance(m.get("loss"), float)]
        accs = [m["accuracy"] for m in live.device_metrics if isinstance(m.get("accuracy"), float)]
        if rnd.phase is RoundPhase.AGGREGATED:
            assert live.aggregator is not None
            result["weight_capped"] = self._cap_shares(live, rnd)
            delta = live.aggregator.result()
            std = noise_std(
                config.clip_norm, config.noise_multiplier, live.aggregator.sensitivity_factor()
            )
            delta = add_noise(delta, std, live.noise_rng)
            new_weights = [
                (w + d).astype(np.float32) for w, d in zip(live.weights, delta, strict=True)
            ]
            result["noise_std"] = std
            new_bytes = weights_to_bytes(new_weights)
            metrics = self._evaluate(session, live, new_bytes)
            version = self._publish(session, live, rnd, new_bytes, metrics, result)
            result["model_version"] = version
            result["evaluation"] = _summary(metrics)
            weights_sha = self.blobs.put(new_bytes)
            self.blobs.sync()
            with live.cond:
                live.weights, live.weights_bytes = new_weights, new_bytes
                session.model_version = version
                session.weights_sha256 = weights_sha
                session.metrics = _summary(metrics)
        else:
            metrics = {}
        with live.cond:
            rows, live.accepted_rows = live.accepted_rows, []
        self.fstore.add_updates(rows)
        self.fstore.save_round(self._round_record(session, rnd, result))
        self.fstore.save_session(session)
        self.spool.delete_prefix(f"{session.id}/{rnd.number}")
        held_out = session.metrics if rnd.phase is RoundPhase.AGGREGATED else {}
        self._event(
            session,
            EventKind.EPOCH,
            {
                "epoch": rnd.number,
                "epochs": config.rounds,
                "loss": float(np.mean(losses)) if losses else None,
                "accuracy": float(np.mean(accs)) if accs else None,
                "val_loss": held_out.get("loss"),
                "val_accuracy": held_out.get("accuracy"),
                "seconds": round(time.time() - rnd.opened_at, 3),
                "round": _without_device_ids(result),
                "skipped": rnd.phase is RoundPhase.SKIPPED,
            },
        )
        accuracy = held_out.get("accuracy")
        self._event(
            session,
            EventKind.LOG,
            {
                "message": f"round {rnd.number} {rnd.phase.value}: {rnd.close_reason}"
                + (f"; held-out accuracy {accuracy:.4f}" if isinstance(accuracy, float) else "")
                + (
                    f"; published version {session.model_version}"
                    if rnd.phase is RoundPhase.AGGREGATED
                    else "; the model is kept"
                )
            },
        )
        with live.cond:
            live.cond.notify_all()
        self._wake.set()

    def _cap_shares(self, live: _Live, rnd: RoundState) -> int:
        """Enforce ``max_weight_share``: when an update's weight is above its share of the
        round, rebuild the round's aggregate from the spooled updates with the capped weights.
        Returns how many updates were capped."""
        strategy, config = live.strategy, live.session.config
        assert strategy is not None and live.head is not None
        if not strategy.weighted or not rnd.accepted:
            return 0
        devices = list(rnd.accepted)
        weights = [strategy.weight_of(rnd.accepted[d]) for d in devices]
        capped = cap_weight_shares(weights, config.max_weight_share)
        lowered = sum(c < w for c, w in zip(capped, weights, strict=True))
        if not lowered:
            return 0
        aggregator = strategy.aggregator()
        for device_id, weight in zip(devices, capped, strict=True):
            raw, _ = self.spool.get(f"{live.session.id}/{rnd.number}/{device_id}")
            tensors = weights_from_bytes(raw, live.head)
            delta, _, _ = clip(
                [t - w for t, w in zip(tensors, live.weights, strict=True)], config.clip_norm
            )
            aggregator.add(delta, weight)
        live.aggregator = aggregator
        return int(lowered)

    def _evaluate(self, session: FederatedSession, live: _Live, weights: bytes) -> dict[str, Any]:
        """The held-out evaluation: the project's samples with one of the session's labels."""
        index = {label: i for i, label in enumerate(session.labels)}
        samples = [s for s in self.store.all_samples(session.project_id) if s.label in index]
        if not samples or live.head is None:
            return {}
        project = self.store.get_project(session.project_id)
        assert project is not None
        try:
            return self.toolkit.evaluate(
                f"{session.id}:{len(samples)}:{samples[-1].id}",
                self.blobs.get(session.files[ModelFormat.FEATURE_EXTRACTOR.value]["sha256"]),
                self.blobs.get(session.files[ModelFormat.HEAD_INFERENCE.value]["sha256"]),
                live.head.to_dict(),
                project.input_spec,
                lambda: [self.blobs.get(s.sha256) for s in samples],
                [index[s.label] for s in samples],
                session.labels,
                weights,
            )
        except MobiletrainError:
            log.warning("held-out evaluation of session %s failed", session.id, exc_info=True)
            return {}

    def _publish(
        self,
        session: FederatedSession,
        live: _Live,
        rnd: RoundState,
        weights: bytes,
        metrics: dict[str, Any],
        result: dict[str, Any],
    ) -> int:
        """Store a round's model as a new version of the project."""
        bundle = session.bundle
        templates = {
            fmt: self.blobs.get(session.files[fmt.value]["sha256"])
            for fmt in (ModelFormat.FLOAT32, ModelFormat.HEAD_SIGNATURES)
            if fmt.value in session.files
        }
        fresh = self.toolkit.republish(
            templates, bundle.get("patch_sites", {}), bundle["head"], weights
        )
        artifacts: dict[ModelFormat, Artifact] = {}
        for fmt_name, info in session.files.items():
            fmt = ModelFormat(fmt_name)
            artifacts[fmt] = Artifact(fmt, info["sha256"], int(info["size"]))
        for fmt, data in fresh.items():
            artifacts[fmt] = Artifact(fmt, self.blobs.put(data), len(data))
        self.blobs.sync()
        files = {
            fmt.value: {
                "file": fmt.file_name,
                "sha256": a.sha256,
                "size": a.size,
            }
            for fmt, a in artifacts.items()
        }
        project = self.store.get_project(session.project_id)
        assert project is not None
        manifest = {
            **bundle.get("manifest", {}),
            "formats": {fmt.value: {"file": files[fmt.value]["file"]} for fmt in artifacts},
            "ondevice": bundle.get("ondevice", {}),
            "files": files,
            "federated": {
                "session_id": session.id,
                "round": rnd.number,
                "rounds": session.config.rounds,
                "strategy": session.config.strategy.value,
                "devices": len(rnd.accepted),
                "noise_std": result.get("noise_std", 0.0),
                "clip_norm": session.config.clip_norm,
            },
            "metrics": {"held_out_accuracy": metrics.get("accuracy")},
            "job_id": session.job_id,
            "project": {"id": project.id, "name": project.name},
        }
        classifier = bundle.get("ondevice", {}).get("classifier")
        if classifier and ModelFormat.FLOAT32 in artifacts:
            # The same tensor description as a trained version's float32 file.
            for key, tensors in (
                ("input", classifier["inputs"]),
                ("output", classifier["outputs"]),
            ):
                manifest["formats"][ModelFormat.FLOAT32.value][key] = {
                    "dtype": tensors[0]["dtype"],
                    "shape": tensors[0]["shape"],
                    "quantization": None,
                }
        version_metrics: dict[str, Any] = {
            **metrics,
            "labels": list(session.labels),
            "federated": _without_device_ids(result),
        }
        if "accuracy" in metrics:
            version_metrics["tflite"] = {
                ModelFormat.FLOAT32.value: {"accuracy": metrics["accuracy"]}
            }
        model = self.store.create_model_version(
            ModelVersion(
                project_id=session.project_id,
                version=0,
                job_id=session.job_id,
                created_at=_now(),
                metrics=version_metrics,
                manifest=manifest,
                artifacts=artifacts,
            )
        )
        return model.version

    # -- internals: preparing, resuming, finishing ---------------------------------------------
    def _labels(self, project: Project, config: FederatedConfig) -> list[str]:
        if config.base_version:
            model = self.store.get_model_version(project.id, config.base_version)
            if model is None:
                raise MobiletrainError(
                    ErrorCode.MODEL_NOT_FOUND, f"model version {config.base_version} not found"
                )
            if ModelFormat.KERAS not in model.artifacts:
                raise MobiletrainError(
                    ErrorCode.FORMAT_NOT_FOUND, "the base version has no keras file"
                )
            labels = list(model.manifest.get("labels") or project.labels)
        else:
            labels = list(project.labels)
        if len(labels) < 2:
            raise MobiletrainError(
                ErrorCode.NOT_ENOUGH_DATA,
                "federated training needs a project with at least two labels",
            )
        return labels

    def _spawn_prepare(self, live: _Live) -> None:
        thread = threading.Thread(
            target=self._prepare, args=(live,), name="federated-prepare", daemon=True
        )
        self._preparing.append(thread)
        thread.start()

    def _prepare(self, live: _Live) -> None:
        session = live.session
        try:
            project = self.store.get_project(session.project_id)
            assert project is not None
            spec = project.input_spec
            config = session.config
            base_model = None
            if config.base_version:
                model = self.store.get_model_version(project.id, config.base_version)
                assert model is not None
                base_model = self.blobs.get(model.artifacts[ModelFormat.KERAS].sha256)
            head = {
                "feature_dim": spec.width * spec.height * spec.channels,
                "num_classes": len(session.labels),
                "hidden": list(config.hidden),
                "batch_size": config.batch_size,
            }
            manifest = {
                "schema_version": _MANIFEST_SCHEMA_VERSION,
                "task": project.task.value,
                "labels": list(session.labels),
                "input": spec.to_dict(),
                "output": {"kind": "probabilities", "num_classes": len(session.labels)},
            }
            prepared = self.toolkit.prepare(spec, head, manifest, base_model, config.seed)
            files = {}
            for fmt, data in prepared.files.items():
                files[fmt.value] = {"sha256": self.blobs.put(data), "size": len(data)}
            weights_sha = self.blobs.put(prepared.weights)
            self.blobs.sync()
            with live.cond:
                session.files = files
                session.weights_sha256 = weights_sha
                session.bundle = {
                    "head": prepared.head,
                    # Everything a device needs in one place: the files' tensors, the head,
                    # and how to preprocess images for the feature extractor.
                    "ondevice": {
                        **prepared.ondevice,
                        "input": spec.to_dict(),
                        "labels": list(session.labels),
                    },
                    "patch_sites": prepared.patch_sites,
                    "manifest": manifest,
                }
                if session.state is SessionState.PREPARING:
                    session.state = SessionState.RUNNING
                self._load(live, prepared.weights)
            self.fstore.save_session(session)
            metrics = self._evaluate(session, live, prepared.weights)
            head_spec = HeadSpec.from_dict(prepared.head)
            self._event(
                session,
                EventKind.LOG,
                {
                    "message": f"on-device files ready: a head of {head_spec.num_parameters} "
                    f"weights on {head_spec.feature_dim} features"
                    + (
                        f"; initial held-out accuracy {metrics['accuracy']:.4f}"
                        if "accuracy" in metrics
                        else ""
                    )
                },
            )
            with live.cond:
                live.cond.notify_all()
            self._wake.set()
        except Exception as exc:
            log.exception("federated session %s could not be prepared", session.id)
            message = exc.message if isinstance(exc, MobiletrainError) else type(exc).__name__
            self._finish(
                live, SessionState.FAILED, f"preparing the on-device files failed: {message}"
            )

    def _load(self, live: _Live, weights: bytes) -> None:
        """Fill the live state from a prepared session (call with live.cond held)."""
        session = live.session
        live.head = HeadSpec.from_dict(session.bundle["head"])
        live.strategy = make_strategy(session.config)
        live.weights = weights_from_bytes(weights, live.head)
        live.weights_bytes = weights
        seed = session.config.seed
        live.select_rng = np.random.default_rng([seed, session.current_round, 1])
        live.noise_rng = np.random.default_rng([seed, session.current_round, 2])

    def _resume(self, session: FederatedSession) -> None:
        project = self.store.get_project(session.project_id)
        live = _Live(
            session=session,
            project_name=project.name if project else "",
            cond=WakingCondition(self.changes),
        )
        for device in self.fstore.list_devices(session.id):
            live.devices.add(device.device_id)
            live.owners[device.device_id] = device.token_id
            if device.declared_samples is not None:
                live.declared[device.device_id] = device.declared_samples
        with self._lock:
            self._live[session.id] = live
        if session.state is SessionState.PREPARING or not session.weights_sha256:
            session.state = SessionState.PREPARING
            self._spawn_prepare(live)
            return
        with live.cond:
            self._load(live, self.blobs.get(session.weights_sha256))
            records = [
                r for r in self.fstore.list_rounds(session.id) if r.number == session.current_round
            ]
            if records and not records[0].phase.is_closed:
                self._resume_round(live, records[0])
        self._event(
            session,
            EventKind.LOG,
            {"message": f"server restarted: resuming at round {session.current_round}"},
        )

    def _resume_round(self, live: _Live, record: RoundRecord) -> None:
        """Rebuild an open round from its stored answers and spooled updates."""
        assert live.head is not None and live.strategy is not None
        config = live.session.config
        rnd = RoundState(
            record.number,
            list(record.selected),
            record.opened_at.timestamp(),
            record.deadline_at.timestamp(),
        )
        aggregator = live.strategy.aggregator()
        for update in self.fstore.list_updates(live.session.id, record.number):
            if update.status is UpdateStatus.FAILED:
                rnd.failed[update.device_id] = update.message
            elif update.status is UpdateStatus.REJECTED:
                rnd.rejected[update.device_id] = update.reason
        for key in self.spool.list(f"{live.session.id}/{record.number}"):
            device_id = key.rsplit("/", 1)[-1]
            try:
                raw, meta = self.spool.get(key)
            except KeyError:
                continue
            num_samples = int(meta.get("num_samples", 1))
            metrics = dict(meta.get("metrics", {}))
            tensors = weights_from_bytes(raw, live.head)
            delta, norm, was_clipped = clip(
                [t - w for t, w in zip(tensors, live.weights, strict=True)], config.clip_norm
            )
            aggregator.add(delta, live.strategy.weight_of(num_samples))
            counted = min(num_samples, config.max_samples_per_device)
            rnd.accepted[device_id] = counted
            live.device_metrics.append({**metrics, "num_samples": counted, "norm": norm})
            live.clipped += int(was_clipped)
            live.accepted_rows.append(
                UpdateRecord(
                    live.session.id,
                    record.number,
                    device_id,
                    UpdateStatus.ACCEPTED,
                    "",
                    "",
                    num_samples,
                    metrics,
                    _now(),
                    payload=key,
                )
            )
        live.round, live.aggregator = rnd, aggregator

    def _finish(self, live: _Live, state: SessionState, error: str = "") -> None:
        session = live.session
        with live.cond:
            if session.state.is_terminal:
                return
            session.state = state
            session.finished_at = _now()
            session.error = error if state is not SessionState.FINISHED else ""
            cut = live.round if live.round is not None and not live.round.phase.is_closed else None
            if cut is not None:
                cut.phase = RoundPhase.SKIPPED
                cut.closed_at = time.time()
                cut.close_reason = f"session {state.value}"
        if cut is not None:
            with live.cond:
                rows, live.accepted_rows = live.accepted_rows, []
            self.fstore.add_updates(rows)
            self.fstore.save_round(self._round_record(session, cut))
            self.spool.delete_prefix(f"{session.id}/{cut.number}")
        self.fstore.save_session(session)
        if state is SessionState.FINISHED:
            self._event(
                session,
                EventKind.EVALUATION,
                {
                    **session.metrics,
                    "federated": {
                        "session_id": session.id,
                        "rounds": session.current_round,
                        "model_version": session.model_version,
                    },
                },
            )
        job_state = {
            SessionState.FINISHED: JobState.SUCCEEDED,
            SessionState.CANCELLED: JobState.CANCELLED,
        }.get(state, JobState.FAILED)
        self._finish_job(session, job_state, error)
        # Devices hear of the end only now, when everything about it is stored.
        with live.cond:
            live.ended = True
            live.cond.notify_all()

    def _finish_job(self, session: FederatedSession, state: JobState, error: str = "") -> None:
        self.store.finish_job(session.job_id, state, error, session.model_version)
        data: dict[str, Any] = {"state": state.value}
        if error and state is JobState.FAILED:
            data["error"] = error
        if session.model_version is not None:
            data["model_version"] = session.model_version
        self._event(session, EventKind.STATE, data)

    # -- helpers ---------------------------------------------------------------------------------
    def _event(self, session: FederatedSession, kind: EventKind, data: dict[str, Any]) -> None:
        self.store.append_event(session.job_id, kind, data)
        self.hub.notify()

    def _round_record(
        self, session: FederatedSession, rnd: RoundState, result: dict[str, Any] | None = None
    ) -> RoundRecord:
        return RoundRecord(
            session_id=session.id,
            number=rnd.number,
            phase=rnd.phase,
            selected=list(rnd.selected),
            opened_at=_ts(rnd.opened_at),
            deadline_at=_ts(rnd.deadline),
            closed_at=_ts(rnd.closed_at) if rnd.closed_at is not None else None,
            result=result if result is not None else rnd.to_dict(),
        )

    def _fresh(self, session: FederatedSession) -> FederatedSession:
        with self._lock:
            live = self._live.get(session.id)
        return live.session if live is not None else session

    def _project_id(self, project_ref: str) -> str:
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
            return self.projects.get(project_ref).id
        if not can_see(found):
            raise MobiletrainError(
                ErrorCode.PROJECT_NOT_FOUND, f"project {project_ref!r} not found"
            )
        return found

    def _active(self, project_id: str) -> _Live:
        with self._lock:
            for live in self._live.values():
                if live.session.project_id == project_id and not live.session.state.is_terminal:
                    return live
        raise MobiletrainError(
            ErrorCode.NO_ACTIVE_SESSION, "the project has no running federated session"
        )

    def _latest(self, project_id: str, device_id: str) -> _Live | None:
        """The session this server runs that the device belongs to (None: an ended one)."""
        with self._lock:
            lives = [live for live in self._live.values() if live.session.project_id == project_id]
        for live in lives:
            if device_id in live.devices:
                return live
        return None

    def _finished_session_of(self, project_id: str, device_id: str) -> FederatedSession:
        for session in self.fstore.list_sessions(project_id):
            if not session.state.is_terminal:
                continue
            for device in self.fstore.list_devices(session.id):
                if device.device_id == device_id:
                    self._check_owner(device.token_id)
                    return session
        raise MobiletrainError(ErrorCode.DEVICE_NOT_REGISTERED)

    @staticmethod
    def _check_owner(owner: str) -> None:
        """DEVICE_NOT_OWNED unless the caller is the token that registered the device."""
        if owner != current().token_id:
            raise MobiletrainError(
                ErrorCode.DEVICE_NOT_OWNED,
                "this device id was registered by another token; register your own device",
            )


def _join(data: bytes | Iterable[bytes], limit: int) -> bytes | bytearray:
    """The update's bytes in one buffer, reading at most ``limit + 1`` (a longer one is
    wrong anyway)."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    buffer = bytearray(limit)  # the expected size: filled in place, no regrowth
    size = 0
    for chunk in data:
        end = size + len(chunk)
        if end > limit:
            return bytes(buffer[:size]) + bytes(chunk)  # too long: rejected as SHAPE anyway
        buffer[size:end] = chunk
        size = end
    if size < limit:
        del buffer[size:]
    return buffer


def _clean_info(info: dict[str, Any]) -> dict[str, Any]:
    """A registration's ``info``: FIELD_TOO_LONG past the entry, key and value limits;
    values that are not strings or numbers are dropped."""
    if len(info) > MAX_INFO_ENTRIES:
        raise MobiletrainError(
            ErrorCode.FIELD_TOO_LONG,
            f"info has {len(info)} entries; at most {MAX_INFO_ENTRIES} are allowed",
        )
    out: dict[str, Any] = {}
    for key, value in info.items():
        name = str(key)
        if len(name) > MAX_INFO_KEY:
            raise MobiletrainError(
                ErrorCode.FIELD_TOO_LONG,
                f"info key {name[:16]!r}... is {len(name)} characters; the limit is {MAX_INFO_KEY}",
            )
        if isinstance(value, str) and len(value) > MAX_INFO_VALUE:
            raise MobiletrainError(
                ErrorCode.FIELD_TOO_LONG,
                f"info value of {name!r} is {len(value)} characters; the limit is {MAX_INFO_VALUE}",
            )
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            out[name] = value
    return out


def _declared_samples(info: dict[str, Any]) -> int | None:
    """The local dataset size a device declares (``info["num_samples"]``), if it does."""
    value = info.get(DECLARED_SAMPLES_KEY)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())  # gRPC sends every attribute as a string
    else:
        number = 0
    if number < 1:
        raise MobiletrainError(
            ErrorCode.INVALID_ARGUMENT,
            f"info {DECLARED_SAMPLES_KEY} must be a positive whole number, got {value!r}",
        )
    return number


def _clean_metrics(metrics: dict[str, Any]) -> dict[str, Any]:
    """At most 16 numeric metrics with names of at most 64 characters (FIELD_TOO_LONG past
    either); devices report loss, accuracy, ...; other values are dropped."""
    if len(metrics) > MAX_INFO_ENTRIES or any(len(str(k)) > MAX_INFO_KEY for k in metrics):
        raise MobiletrainError(
            ErrorCode.FIELD_TOO_LONG,
            f"at most {MAX_INFO_ENTRIES} metrics with names of at most {MAX_INFO_KEY} characters",
        )
    out: dict[str, Any] = {}
    for key, value in metrics.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        number = float(value)
        if np.isfinite(number):
            out[str(key)] = number
    return out


def _without_device_ids(result: dict[str, Any]) -> dict[str, Any]:
    """A round's result for job events and version metrics, which device tokens read: the
    per-device answers become counts (the full record is in the rounds, for administrators)."""
    out = {k: v for k, v in result.items() if k not in ("accepted", "rejected", "failed")}
    for key in ("rejected", "failed"):
        if isinstance(result.get(key), dict):
            out[key] = len(result[key])
    return out


def _summary(metrics: dict[str, Any]) -> dict[str, Any]:
    """The held-out numbers worth keeping with every round."""
    return {k: metrics[k] for k in ("accuracy", "loss", "macro_f1", "num_samples") if k in metrics}
