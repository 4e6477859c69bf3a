"""The device protocol: register, ask for round work, send an update.

Devices (phones, or the simulator) talk to a session in three calls, the same on both
transports:

1. :meth:`DeviceProtocol.register` — join the project's running session, get a device id;
2. :meth:`DeviceProtocol.get_assignment` — long-poll for the round's assignment: the round
   number, the global weights (head-weights format) and the training settings, or "wait" /
   "finished" (the wire calls it ``GetTask`` / ``federated/task``);
3. :meth:`DeviceProtocol.push_update` — the new weights after local training, with the
   number of samples used (or an error when local training failed).
"""

from __future__ import annotations

import enum
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mobiletrain.core.auth import Action, Role, can_see, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import EventKind
from mobiletrain.federated.head import HeadSpec, weights_from_bytes
from mobiletrain.federated.inputs import (
    MAX_ERROR_CHARS,
    clean_info,
    clean_metrics,
    declared_samples,
    join_update,
)
from mobiletrain.federated.records import (
    DeviceRecord,
    FederatedSession,
    RoundRecord,
    SessionState,
    UpdateRecord,
    UpdateStatus,
)
from mobiletrain.federated.state import ACTIVE_STATES, Context, now
from mobiletrain.federated.strategy import make_strategy
from mobiletrain.federated.validation import Rejection, RejectReason, check_update

MAX_WAIT_SECONDS = 60.0
"""Longest a long poll for an assignment (the wire's GetTask) is held open."""
RETRY_AFTER_SECONDS = 1.0
"""What a device is told to wait before polling again when it got no assignment."""
VIEW_SECONDS = 0.2
"""How long a replica answers devices from its copy of a session before reading it again."""
_PROJECT_CACHE_S = 5.0
_TOUCH_INTERVAL_S = 2.0


_POOLED_BYTES = 1024 * 1024
"""Updates of at least this size are received into a pooled buffer."""


class _SlotBuffer(threading.local):
    """The receive buffer the current thread holds while it has an update slot."""

    def __init__(self, pool: list[bytearray], lock: threading.Lock) -> None:
        self._pool, self._lock = pool, lock
        self._held: bytearray | None = None

    def take(self, size: int) -> bytearray:
        """A pooled buffer of ``size`` bytes (the pool keeps one size: the session's model)."""
        with self._lock:
            while self._pool and len(self._pool[-1]) != size:
                self._pool.pop()
            return self._pool.pop() if self._pool else bytearray(size)

    @property
    def buffer(self) -> bytearray | None:
        """The buffer held now."""
        return self._held

    @buffer.setter
    def buffer(self, value: bytearray | None) -> None:
        held, self._held = self._held, value
        if value is None and held is not None:
            with self._lock:
                self._pool.append(held)


class AssignmentStatus(enum.StrEnum):
    """What the answer to a device asking for work holds.

    Member names and values mirror the wire's ``TaskStatus`` (``TASK_STATUS_TASK``, ...) and
    REST's ``status`` strings, which stay as they are (the proto drift test pins them).
    """

    TASK = "task"  # an assignment: train now
    WAIT = "wait"  # nothing for this device yet: poll again after retry_after_seconds
    FINISHED = "finished"  # the session is over: stop polling


@dataclass
class Assignment:
    """One round's work for one device (the wire calls it a ``FederatedTask``).

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
class AssignmentReply:
    """The answer of :meth:`DeviceProtocol.get_assignment`."""

    status: AssignmentStatus
    session_id: str
    assignment: Assignment | None = None
    retry_after_seconds: float = 0.0
    message: str = ""


@dataclass
class UpdateReply:
    """The answer of :meth:`DeviceProtocol.push_update`; ``reason`` is a RejectReason."""

    accepted: bool
    round: int
    reason: str = ""
    message: str = ""


@dataclass
class _View:
    """A replica's short-lived copy of a session and its current round, as stored."""

    session: FederatedSession
    round: RoundRecord | None  # the current round's row (None before the first round)
    ended: bool  # the session is over and so is its job: devices are told FINISHED
    fetched: float  # monotonic time of the read
    generation: int  # of ctx.changes at the read: a change seen here since makes it stale

    @property
    def open_round(self) -> RoundRecord | None:
        """The round that admits updates now, if any."""
        rnd = self.round
        if (
            self.session.state is not SessionState.RUNNING
            or rnd is None
            or rnd.phase.is_closed
            or rnd.closed_at is not None
        ):
            return None
        return rnd


class DeviceProtocol:
    """The three device calls. Any replica answers them from the stores and records what
    devices send there; the replica coordinating the session reads it back (see
    :mod:`.coordinator`), so consecutive calls of one device may reach different replicas."""

    def __init__(
        self,
        ctx: Context,
        update_concurrency: int,
        devices_per_token: int,
        view_seconds: float = VIEW_SECONDS,
    ) -> None:
        self.ctx = ctx
        # How many devices one device token may register per session (admin tokens: any).
        self.devices_per_token = max(1, devices_per_token)
        self.view_seconds = view_seconds
        self._register_lock = threading.Lock()
        # Bounds how many updates are decoded at once, so memory stays flat with many devices
        # (a streaming transport stops reading the others' bytes meanwhile).
        self._slots = threading.BoundedSemaphore(max(1, update_concurrency))
        # One receive buffer per slot, reused from update to update: a fresh 10 MB buffer per
        # update, freed by whichever thread held the slot, left glibc's per-thread arenas
        # holding several each (issue 18: 1.4 GB RSS for a 50 × 10 MB round).
        self._pool: list[bytearray] = []
        self._pool_lock = threading.Lock()
        self._local = _SlotBuffer(self._pool, self._pool_lock)
        self._lock = threading.Lock()
        # Devices call many times per round: what does not change is kept, the rest briefly.
        self._views: dict[str, _View] = {}
        self._project_ids: dict[str, tuple[str, float]] = {}
        self._devices: dict[tuple[str, str], DeviceRecord] = {}
        self._answered: set[tuple[str, int, str]] = set()
        self._touched: dict[tuple[str, str], float] = {}
        self._heads: dict[str, tuple[HeadSpec, float]] = {}
        self._weights: tuple[str, bytes] = ("", b"")

    # -- the three calls -------------------------------------------------------------------------
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
        project_id = self._project_id(project_ref)
        session = next(
            (
                s
                for s in self.ctx.fstore.list_sessions(project_id, ACTIVE_STATES)
                if not s.state.is_terminal
            ),
            None,
        )
        if session is None:
            raise MobiletrainError(
                ErrorCode.NO_ACTIVE_SESSION, "the project has no running federated session"
            )
        clean = clean_info(info or {})
        declared = declared_samples(clean)
        with self._register_lock:  # replicas racing may each register one: the cap is per replica
            own = [
                d.device_id
                for d in self.ctx.fstore.list_devices(session.id)
                if d.token_id == principal.token_id
            ]
            if principal.role is Role.DEVICE and len(own) >= self.devices_per_token:
                if self.devices_per_token == 1:
                    self._touch(session.id, own[0], force=True)
                    return session, own[0]
                raise MobiletrainError(
                    ErrorCode.TOO_MANY_DEVICES,
                    f"this token registered {len(own)} devices with the session; "
                    f"the limit is {self.devices_per_token}",
                )
            device_id = str(uuid.uuid4())
            self.ctx.fstore.add_device(
                DeviceRecord(
                    session.id, device_id, now(), clean, principal.token_id, declared, now()
                )
            )
        with self._lock:
            self._touched[(session.id, device_id)] = time.monotonic()
        self.ctx.wake.set()
        return session, device_id

    def get_assignment(
        self, project_ref: str, device_id: str, wait_seconds: float = 0.0
    ) -> AssignmentReply:
        """Work for the device, waiting up to ``wait_seconds`` (max 60) for some."""
        require(Action.FEDERATE)
        device = self._device(self._project_id(project_ref), device_id)
        _check_owner(device.token_id)
        end = time.monotonic() + max(0.0, min(wait_seconds, MAX_WAIT_SECONDS))
        while True:
            view = self._view(device.session_id)
            if view.ended:
                return AssignmentReply(
                    AssignmentStatus.FINISHED,
                    view.session.id,
                    message=f"session {view.session.state}",
                )
            self._touch(device.session_id, device_id)
            work = self._assignment_for(view, device_id)
            if work is not None:
                return AssignmentReply(AssignmentStatus.TASK, view.session.id, assignment=work)
            remaining = end - time.monotonic()
            if remaining <= 0 or self.ctx.stopping.is_set():
                return AssignmentReply(
                    AssignmentStatus.WAIT,
                    view.session.id,
                    retry_after_seconds=RETRY_AFTER_SECONDS,
                    message=self._why_waiting(view, device_id),
                )
            self.ctx.wake.set()
            with self.ctx.cond:
                self.ctx.cond.wait(min(remaining, self.view_seconds))

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
        view = self._view(session_id, fresh=True)  # admission needs the stored round as it is
        session = view.session
        if session.project_id != project_id:
            raise MobiletrainError(
                ErrorCode.SESSION_NOT_FOUND, f"federated session {session_id!r} not found"
            )
        device = self._device(project_id, device_id)
        if device.session_id != session_id:
            if session.state.is_terminal:
                return UpdateReply(
                    False, round_number, RejectReason.STALE_ROUND.value, f"session {session.state}"
                )
            raise MobiletrainError(ErrorCode.DEVICE_NOT_REGISTERED)
        _check_owner(device.token_id)
        if session.state.is_terminal:
            return UpdateReply(
                False, round_number, RejectReason.STALE_ROUND.value, f"session {session.state}"
            )
        if len(error) > MAX_ERROR_CHARS:
            raise MobiletrainError(
                ErrorCode.FIELD_TOO_LONG,
                f"error is {len(error)} characters; the limit is {MAX_ERROR_CHARS}",
            )
        metrics = clean_metrics(metrics or {})
        with self._slots:
            try:
                return self._receive(
                    view, device, round_number, data, num_samples, dtype, metrics, error
                )
            finally:
                self._local.buffer = None  # back to the pool (see _buffer)

    # -- internals: receiving updates ---------------------------------------------------------
    def _buffer(self, size: int) -> bytearray | None:
        """This slot's receive buffer of ``size`` bytes (None for small updates)."""
        if size < _POOLED_BYTES:
            return None
        buffer = self._local.take(size)
        self._local.buffer = buffer
        return buffer

    def _receive(
        self,
        view: _View,
        device: DeviceRecord,
        round_number: int,
        data: bytes | Iterable[bytes],
        num_samples: int,
        dtype: str,
        metrics: dict[str, Any],
        error: str,
    ) -> UpdateReply:
        session, device_id = view.session, device.device_id
        self._touch(session.id, device_id)
        rnd = view.open_round
        rejection: Rejection | None = None
        if rnd is None or round_number != rnd.number:
            rejection = Rejection(
                RejectReason.STALE_ROUND,
                f"round {round_number} is not open (the open round is "
                f"{rnd.number if rnd is not None else 'none'})",
            )
        elif device_id not in rnd.selected:
            rejection = Rejection(
                RejectReason.NOT_SELECTED, f"device {device_id} was not selected for this round"
            )
        elif self._has_answered(session.id, rnd.number, device_id):
            rejection = Rejection(RejectReason.DUPLICATE, "this device already answered this round")
        elif error:
            rejection = Rejection(RejectReason.DEVICE_FAILED, error)
        if rejection is not None:
            return self._reject(session, device_id, round_number, rejection, num_samples, metrics)
        head, _ = self._head(session)
        expected = 4 * head.num_parameters
        raw = join_update(data, expected, self._buffer(expected))
        if dtype != "float32":
            rejection = Rejection(RejectReason.DTYPE, f"weights are {dtype}, expected float32")
        elif len(raw) != expected:
            rejection = Rejection(
                RejectReason.SHAPE, f"expected {expected} bytes of weights, got {len(raw)}"
            )
        else:
            tensors = weights_from_bytes(raw, head, copy=False)  # views of the buffer
            rejection = check_update(tensors, head.weight_shapes(), num_samples)
            declared = device.declared_samples
            if rejection is None and declared is not None and num_samples > declared:
                rejection = Rejection(
                    RejectReason.SAMPLE_COUNT,
                    f"num_samples {num_samples} is more than the {declared} the device "
                    "declared at registration",
                )
        if rejection is not None:
            return self._reject(session, device_id, round_number, rejection, num_samples, metrics)
        # The blob is the durable record of an accepted update, its row the admission: a new
        # coordinator (on whichever replica) rebuilds the open round from them. The
        # coordinator of this replica takes the update from memory instead (``handoff``), so
        # it is not read back; another replica's reads the blob.
        # Not fsynced, like the spool before it: an accepted update survives a process restart
        # (the page cache keeps it); after a power loss the coordinator skips a missing one.
        with self.ctx.receiving(session.id, round_number, device_id) as handoff:
            sha = self.ctx.blobs.put(raw)  # type: ignore[arg-type]  # bytes-like: hashed and written as is
            record = UpdateRecord(
                session.id,
                round_number,
                device_id,
                UpdateStatus.ACCEPTED,
                "",
                "",
                num_samples,
                metrics,
                now(),
                payload=sha,
            )
            why = self.ctx.fstore.add_accepted_update(record)
            if why:
                rejection = (
                    Rejection(RejectReason.DUPLICATE, "this device already answered this round")
                    if why == "duplicate"
                    else Rejection(RejectReason.STALE_ROUND, "the round closed")
                )
                return self._reject(
                    session, device_id, round_number, rejection, num_samples, metrics
                )
            if handoff is not None:
                # A bytearray (a chunked update) is this call's own: the delta is made in it.
                handoff(record, tensors, isinstance(raw, bytearray))
        with self._lock:
            self._answered.add((session.id, round_number, device_id))
        self.ctx.wake.set()
        return UpdateReply(True, round_number)

    def _reject(
        self,
        session: FederatedSession,
        device_id: str,
        round_number: int,
        rejection: Rejection,
        num_samples: int,
        metrics: dict[str, Any],
    ) -> UpdateReply:
        failed = rejection.reason is RejectReason.DEVICE_FAILED
        if rejection.reason is not RejectReason.DUPLICATE:
            self.ctx.fstore.add_update(
                UpdateRecord(
                    session.id,
                    round_number,
                    device_id,
                    UpdateStatus.FAILED if failed else UpdateStatus.REJECTED,
                    rejection.reason.value,
                    rejection.message,
                    max(num_samples, 0),
                    metrics,
                    now(),
                )
            )
            what = (
                "reported a failure" if failed else f"sent a rejected update ({rejection.reason})"
            )
            self.ctx.event(
                session,
                EventKind.LOG,
                {
                    "message": f"round {round_number}: device {device_id[:8]} {what}: "
                    + rejection.message
                },
            )
        self.ctx.wake.set()
        return UpdateReply(False, round_number, rejection.reason.value, rejection.message)

    # -- internals: what the stores say, kept briefly ------------------------------------------
    def _project_id(self, project_ref: str) -> str:
        """The id of a project named by id or name, visible to the caller (names are
        resolved through the project service at most every few seconds)."""
        mono = time.monotonic()
        with self._lock:
            cached = self._project_ids.get(project_ref)
        if cached is None or mono - cached[1] > _PROJECT_CACHE_S:
            project_id = self.ctx.projects.get(project_ref).id
            with self._lock:
                self._project_ids[project_ref] = (project_id, mono)
            return project_id
        if not can_see(cached[0]):
            raise MobiletrainError(
                ErrorCode.PROJECT_NOT_FOUND, f"project {project_ref!r} not found"
            )
        return cached[0]

    def _device(self, project_id: str, device_id: str) -> DeviceRecord:
        """The device's registration (DEVICE_NOT_REGISTERED when it has none)."""
        key = (project_id, device_id)
        with self._lock:
            known = self._devices.get(key)
        if known is not None:
            return known
        found = self.ctx.fstore.find_device(project_id, device_id)
        if found is None:
            raise MobiletrainError(ErrorCode.DEVICE_NOT_REGISTERED)
        device = found[1]
        with self._lock:
            self._devices[key] = device
        return device

    def _view(self, session_id: str, fresh: bool = False) -> _View:
        """The session and its current round as stored, read at most every ``view_seconds``."""
        mono = time.monotonic()
        generation = self.ctx.changes.generation  # before the read: a change during it counts
        with self._lock:
            view = self._views.get(session_id)
        if (
            view is not None
            and not fresh
            and view.generation == generation
            and mono - view.fetched < self.view_seconds
        ):
            return view
        fstore = self.ctx.fstore
        session = fstore.get_session(session_id)
        if session is None:
            raise MobiletrainError(
                ErrorCode.SESSION_NOT_FOUND, f"federated session {session_id!r} not found"
            )
        rnd = fstore.get_round(session_id, session.current_round) if session.current_round else None
        ended = False
        if session.state.is_terminal:
            # Devices hear of the end only once everything about it is stored (the job last).
            job = self.ctx.store.get_job(session.job_id)
            ended = job is None or job.state.is_terminal
        view = _View(session, rnd, ended, mono, generation)
        with self._lock:
            old = self._views.get(session_id)
            self._views[session_id] = view
            if old is not None and old.session.current_round != session.current_round:
                # Answers to closed rounds are never asked about again.
                self._answered = {
                    k for k in self._answered if k[0] != session_id or k[1] >= session.current_round
                }
        return view

    def _touch(self, session_id: str, device_id: str, force: bool = False) -> None:
        """Mark the device as available (written at most every few seconds per replica)."""
        key = (session_id, device_id)
        mono = time.monotonic()
        with self._lock:
            last = self._touched.get(key)
            if not force and last is not None and mono - last < _TOUCH_INTERVAL_S:
                return
            self._touched[key] = mono
        self.ctx.fstore.touch_device(session_id, device_id, now())
        if last is None or mono - last > _TOUCH_INTERVAL_S:
            self.ctx.wake.set()  # perhaps enough devices for a round now

    def _has_answered(self, session_id: str, round_number: int, device_id: str) -> bool:
        """Whether the device sent an answer that counts for the round (through any replica)."""
        key = (session_id, round_number, device_id)
        with self._lock:
            if key in self._answered:
                return True
        rows = self.ctx.fstore.device_updates(session_id, round_number, device_id)
        if any(r.counts for r in rows):
            with self._lock:
                self._answered.add(key)
            return True
        return False

    def _head(self, session: FederatedSession) -> tuple[HeadSpec, float]:
        """The session's head and the ``mu`` its strategy gives devices."""
        with self._lock:
            known = self._heads.get(session.id)
        if known is None:
            known = (
                HeadSpec.from_dict(session.bundle["head"]),
                float(make_strategy(session.config).device_settings().get("mu", 0.0)),
            )
            with self._lock:
                self._heads[session.id] = known
        return known

    def _global_weights(self, sha256: str) -> bytes:
        """The global weights by blob (the newest kept: every device of a round asks for it)."""
        with self._lock:
            cached_sha, data = self._weights
        if cached_sha != sha256:
            data = self.ctx.blobs.get(sha256)
            with self._lock:
                self._weights = (sha256, data)
        return data

    def _assignment_for(self, view: _View, device_id: str) -> Assignment | None:
        rnd = view.open_round
        if rnd is None or device_id not in rnd.selected or not view.session.weights_sha256:
            return None
        session = view.session
        if self._has_answered(session.id, rnd.number, device_id):
            return None
        head, mu = self._head(session)
        config = session.config
        return Assignment(
            session_id=session.id,
            round=rnd.number,
            rounds=config.rounds,
            deadline=rnd.deadline_at,
            weights=self._global_weights(session.weights_sha256),
            tensors=head.weight_shapes(),
            learning_rate=config.learning_rate,
            local_epochs=config.local_epochs,
            batch_size=head.batch_size,
            mu=mu,
            labels=list(session.labels),
            files=dict(session.files),
            model_version=session.model_version,
        )

    def _why_waiting(self, view: _View, device_id: str) -> str:
        if view.session.state is SessionState.PREPARING:
            return "the session is preparing its files"
        rnd = view.open_round
        if rnd is None:
            return "waiting for enough devices to start the next round"
        if self._has_answered(view.session.id, rnd.number, device_id):
            return f"waiting for round {rnd.number} to close"
        return f"not selected for round {rnd.number}"


def _check_owner(owner: str) -> None:
    """DEVICE_NOT_OWNED unless the caller is the token that registered the device."""
    if owner != current().token_id:
        raise MobiletrainError(
            ErrorCode.DEVICE_NOT_OWNED,
            "this device id was registered by another token; register your own device",
        )
