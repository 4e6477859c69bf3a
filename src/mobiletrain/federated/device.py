"""The device protocol: register, ask for round work, send an update.

Devices (phones, or the simulator) talk to a session in three calls, the same on both
transports:

1. :meth:`DeviceProtocol.register` — join the project's running session, get a device id;
2. :meth:`DeviceProtocol.get_task` — long-poll for work: the round number, the global
   weights (head-weights format) and the training settings, or "wait" / "finished";
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

import numpy as np

from mobiletrain.core.auth import Action, Role, current, require
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.types import EventKind
from mobiletrain.federated.head import weights_from_bytes
from mobiletrain.federated.privacy import clip
from mobiletrain.federated.records import (
    DeviceRecord,
    FederatedSession,
    SessionState,
    UpdateRecord,
    UpdateStatus,
)
from mobiletrain.federated.state import Context, LiveSession, LiveSessions, now, ts
from mobiletrain.federated.validation import Rejection, RejectReason, check_update

MAX_WAIT_SECONDS = 60.0
"""Longest a GetTask long-poll is held open."""
RETRY_AFTER_SECONDS = 1.0
"""What a device is told to wait before polling again when it got no task."""
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
_PROGRESS_INTERVAL_S = 0.5


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
    """The answer of :meth:`DeviceProtocol.get_task`."""

    status: TaskStatus
    session_id: str
    task: Task | None = None
    retry_after_seconds: float = 0.0
    message: str = ""


@dataclass
class UpdateReply:
    """The answer of :meth:`DeviceProtocol.push_update`; ``reason`` is a RejectReason."""

    accepted: bool
    round: int
    reason: str = ""
    message: str = ""


class DeviceProtocol:
    """The three device calls over the live sessions."""

    def __init__(
        self,
        ctx: Context,
        sessions: LiveSessions,
        update_concurrency: int,
        devices_per_token: int,
    ) -> None:
        self.ctx = ctx
        self.sessions = sessions
        # How many devices one device token may register per session (admin tokens: any).
        self.devices_per_token = max(1, devices_per_token)
        self._register_lock = threading.Lock()
        # Bounds how many updates are decoded at once, so memory stays flat with many devices
        # (a streaming transport stops reading the others' bytes meanwhile).
        self._slots = threading.BoundedSemaphore(max(1, update_concurrency))

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
        live = self.sessions.active(self.sessions.project_id(project_ref))
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
            self.ctx.fstore.add_device(
                DeviceRecord(live.session.id, device_id, now(), clean, principal.token_id, declared)
            )
            with live.cond:
                live.devices.add(device_id)
                live.owners[device_id] = principal.token_id
                if declared is not None:
                    live.declared[device_id] = declared
                live.last_seen[device_id] = time.monotonic()
        self.ctx.wake.set()
        return live.session, device_id

    def get_task(self, project_ref: str, device_id: str, wait_seconds: float = 0.0) -> TaskReply:
        """Work for the device, waiting up to ``wait_seconds`` (max 60) for some."""
        require(Action.FEDERATE)
        project_id = self.sessions.project_id(project_ref)
        live = self.sessions.latest(project_id, device_id)
        if live is None:
            session = self._finished_session_of(project_id, device_id)
            return TaskReply(
                TaskStatus.FINISHED, session.id, message=f"session {session.state.value}"
            )
        _check_owner(live.owners.get(device_id, ""))
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
                if remaining <= 0 or self.ctx.stopping.is_set():
                    return TaskReply(
                        TaskStatus.WAIT,
                        session.id,
                        retry_after_seconds=RETRY_AFTER_SECONDS,
                        message=self._why_waiting(live, device_id),
                    )
                self.ctx.wake.set()
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
        project_id = self.sessions.project_id(project_ref)
        live = self.sessions.get(session_id)
        if live is None or live.session.project_id != project_id:
            session = self.ctx.fstore.get_session(session_id)
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
        _check_owner(live.owners.get(device_id, ""))
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
        live: LiveSession,
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
        self.ctx.spool.put(key, raw, {"num_samples": num_samples, "metrics": metrics})
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
                        now(),
                        payload=key,
                    )
                )
                # No notify here: waiting devices only care about rounds opening and
                # closing; waking them all on every update would cost O(devices²) per round.
        if rejection is not None:
            return self._reject(live, device_id, round_number, rejection, num_samples, metrics)
        self._progress(live)
        self.ctx.wake.set()
        return UpdateReply(True, round_number)

    def _reject(
        self,
        live: LiveSession,
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
            self.ctx.fstore.add_update(
                UpdateRecord(
                    live.session.id,
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
                live.session,
                EventKind.LOG,
                {
                    "message": f"round {round_number}: device {device_id[:8]} {what}: "
                    + rejection.message
                },
            )
        self.ctx.wake.set()
        return UpdateReply(False, round_number, rejection.reason.value, rejection.message)

    def _progress(self, live: LiveSession) -> None:
        now_mono = time.monotonic()
        with live.cond:
            rnd = live.round
            if rnd is None or now_mono < live.next_progress:
                return
            live.next_progress = now_mono + _PROGRESS_INTERVAL_S
            data = {
                "epoch": rnd.number,
                "epochs": live.session.config.rounds,
                "batch": len(rnd.answered),
                "batches": len(rnd.selected),
                "samples_per_second": 0.0,
                "eta_seconds": round(max(rnd.deadline - time.time(), 0.0), 1),
            }
        self.ctx.event(live.session, EventKind.PROGRESS, data)

    # -- internals: work for a device -----------------------------------------------------------
    def _task_for(self, live: LiveSession, device_id: str) -> Task | None:
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
            deadline=ts(rnd.deadline),
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

    @staticmethod
    def _why_waiting(live: LiveSession, device_id: str) -> str:
        if live.session.state is SessionState.PREPARING:
            return "the session is preparing its files"
        rnd = live.round
        if rnd is None or rnd.phase.is_closed:
            return "waiting for enough devices to start the next round"
        if device_id in rnd.answered:
            return f"waiting for round {rnd.number} to close"
        return f"not selected for round {rnd.number}"

    def _finished_session_of(self, project_id: str, device_id: str) -> FederatedSession:
        fstore = self.ctx.fstore
        for session in fstore.list_sessions(project_id):
            if not session.state.is_terminal:
                continue
            for device in fstore.list_devices(session.id):
                if device.device_id == device_id:
                    _check_owner(device.token_id)
                    return session
        raise MobiletrainError(ErrorCode.DEVICE_NOT_REGISTERED)


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
