"""A session's life on its coordinator: prepare its on-device files, resume it, finish it.

Preparing exports the files a device runs (feature extractor, train-step model, ...) once per
session in a child process (:class:`~mobiletrain.federated.ports.OnDeviceToolkit`). Everything
a round needs is persisted (the round row, every answer, accepted updates as blobs), so the
replica that takes a session over (its coordinator died or stopped, or the server restarted)
resumes an open round where it was.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.leader import Lease, LeaseLost
from mobiletrain.core.manifest import ModelManifest, ModelOutput, manifest_of
from mobiletrain.core.types import EventKind, JobState, ModelFormat, Project
from mobiletrain.federated.config import FederatedConfig
from mobiletrain.federated.head import HeadSpec, weights_from_bytes
from mobiletrain.federated.publishing import Publisher
from mobiletrain.federated.records import FederatedSession, SessionState
from mobiletrain.federated.rounds import RoundPhase, RoundState
from mobiletrain.federated.state import Context, LiveSession, LiveSessions, now
from mobiletrain.federated.strategy import make_strategy

log = logging.getLogger("mobiletrain.federated")

T = TypeVar("T")


class Lifecycle:
    """Prepare, resume and finish sessions."""

    def __init__(self, ctx: Context, sessions: LiveSessions, publisher: Publisher) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self.publisher = publisher
        self._preparing: list[threading.Thread] = []

    def labels(self, project: Project, config: FederatedConfig) -> list[str]:
        """The labels a new session trains (the base version's, or the project's)."""
        if config.base_version:
            model = self.ctx.store.get_model_version(project.id, config.base_version)
            if model is None:
                raise MobiletrainError(
                    ErrorCode.MODEL_NOT_FOUND, f"model version {config.base_version} not found"
                )
            if ModelFormat.KERAS not in model.artifacts:
                raise MobiletrainError(
                    ErrorCode.FORMAT_NOT_FOUND, "the base version has no keras file"
                )
            labels = manifest_of(model).labels_or(project.labels)
        else:
            labels = list(project.labels)
        if len(labels) < 2:
            raise MobiletrainError(
                ErrorCode.NOT_ENOUGH_DATA,
                "federated training needs a project with at least two labels",
            )
        return labels

    def join_preparing(self) -> None:
        """Give the preparing threads a moment to end (the service stops)."""
        for thread in self._preparing:
            thread.join(timeout=0.1)

    def spawn_prepare(self, live: LiveSession) -> None:
        """Export the session's on-device files in a background thread."""
        live.preparing = True
        thread = threading.Thread(
            target=self._prepare, args=(live,), name="federated-prepare", daemon=True
        )
        self._preparing.append(thread)
        thread.start()

    def _prepare(self, live: LiveSession) -> None:
        ctx = self.ctx
        session = live.session
        try:
            project = ctx.store.get_project(session.project_id)
            assert project is not None
            spec = project.input_spec
            config = session.config
            base_model = None
            if config.base_version:
                model = ctx.store.get_model_version(project.id, config.base_version)
                assert model is not None
                base_model = ctx.blobs.get(model.artifacts[ModelFormat.KERAS].sha256)
            head = {
                "feature_dim": spec.width * spec.height * spec.channels,
                "num_classes": len(session.labels),
                "hidden": list(config.hidden),
                "batch_size": config.batch_size,
            }
            # The card's session-wide part (no ids or times: the export is cached by it);
            # every published version completes it (publishing.Publisher.publish).
            manifest = ModelManifest(
                labels=list(session.labels),
                input=spec.to_dict(),
                output=ModelOutput(num_classes=len(session.labels)),
                task=project.task.value,
            ).to_dict()
            prepared = ctx.toolkit.prepare(spec, head, manifest, base_model, config.seed)
            files = {}
            for fmt, data in prepared.files.items():
                files[fmt.value] = {"sha256": ctx.blobs.put(data), "size": len(data)}
            weights_sha = ctx.blobs.put(prepared.weights)
            ctx.blobs.sync()
            with live.lock:
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
                self.load(live, prepared.weights)
                if not self._fenced(live, lambda: ctx.fstore.save_session_if_active(session)):
                    self.ended_elsewhere(live, ctx.fstore.get_session(session.id))
                    return
                live.preparing = False
            head_spec = HeadSpec.from_dict(prepared.head)
            metrics = self.publisher.evaluate(session, head_spec, prepared.weights)
            ctx.event(
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
            ctx.notify()
            ctx.wake.set()
        except LeaseLost:
            self.release(live, lost=True)
        except Exception as exc:
            log.exception("federated session %s could not be prepared", session.id)
            message = exc.message if isinstance(exc, MobiletrainError) else type(exc).__name__
            live.preparing = False
            try:
                self.finish(
                    live, SessionState.FAILED, f"preparing the on-device files failed: {message}"
                )
            except LeaseLost:
                self.release(live, lost=True)

    def _fenced(self, live: LiveSession, write: Callable[[], T]) -> T:
        """``write()`` only while ``live`` is the state this replica coordinates the session
        with and this replica holds the session's lease (LeaseLost if not)."""
        check_current(self.ctx, self.sessions, live)
        leases, lease = self.ctx.leases, live.lease
        if leases is None or lease is None:
            return write()
        return leases.fenced(lease, write)

    @staticmethod
    def load(live: LiveSession, weights: bytes) -> None:
        """Fill the coordinator's state from a prepared session (call with live.lock held)."""
        session = live.session
        live.head = HeadSpec.from_dict(session.bundle["head"])
        live.strategy = make_strategy(session.config)
        live.weights = weights_from_bytes(weights, live.head)
        live.weights_bytes = weights
        seed = session.config.seed
        live.select_rng = np.random.default_rng([seed, session.current_round, 1])
        live.noise_rng = np.random.default_rng([seed, session.current_round, 2])

    def resume(
        self, session: FederatedSession, lease: Lease | None, fresh: bool = False
    ) -> LiveSession:
        """Coordinate ``session`` here: a new one is prepared; one a previous coordinator left
        (it died, stopped, or the server restarted) is rebuilt from the stores and its open
        round continues."""
        ctx = self.ctx
        live = LiveSession(session=session, lease=lease, lease_renewed=time.monotonic())
        current = self.sessions.claim(live)
        if current is not live:
            # Adopted here already (the scan and start_session raced): one state per session,
            # or a second preparation would write the session back to round 0 later.
            return current
        if session.state is SessionState.PREPARING or not session.weights_sha256:
            session.state = SessionState.PREPARING
            self.spawn_prepare(live)
            return live
        with live.lock:
            self.load(live, ctx.blobs.get(session.weights_sha256))
            record = (
                ctx.fstore.get_round(session.id, session.current_round)
                if session.current_round
                else None
            )
            # The newest round stored is the one to go on with (a session row written back by
            # an older server may lag behind it): a round number is never opened twice.
            later = ctx.fstore.get_round(session.id, session.current_round + 1)
            while later is not None:
                record, session.current_round = later, later.number
                later = ctx.fstore.get_round(session.id, session.current_round + 1)
            if record is not None and not record.phase.is_closed:
                live.round = RoundState(
                    record.number,
                    list(record.selected),
                    record.opened_at.timestamp(),
                    record.deadline_at.timestamp(),
                )
                # Its answers (and accepted updates' blobs) are read back by the next step.
                live.aggregator = live.strategy.aggregator() if live.strategy else None
                live.closing = record.closed_at is not None
        if not fresh:
            rnd = live.round
            ctx.event(
                session,
                EventKind.LOG,
                {
                    "message": f"coordinator changed: resuming at round {session.current_round}"
                    + (f" (open, {len(rnd.selected)} devices selected)" if rnd is not None else "")
                },
            )
        return live

    def release(self, live: LiveSession, lost: bool = False) -> None:
        """Stop coordinating a session here (its lease is handed back unless it was lost).
        A stale ``live`` (replaced here since) changes nothing: the lease is its successor's."""
        if self.sessions.remove(live.session.id, live) is None:
            return
        leases, lease = self.ctx.leases, live.lease
        if leases is not None and lease is not None and not lost:
            try:
                leases.release(lease)
            except Exception:  # it expires anyway
                log.warning("could not release the lease of %s", live.session.id, exc_info=True)
        self.ctx.notify()

    def ended_elsewhere(self, live: LiveSession, stored: FederatedSession | None) -> None:
        """The stored session is over (stopped through another replica): cut its open round."""
        ctx = self.ctx
        if not self.sessions.is_current(live):
            return  # a stale state: whoever replaced it looks at the stored session itself
        with live.lock:
            rnd = live.round
            if rnd is not None and not rnd.phase.is_closed:
                state = stored.state.value if stored is not None else "deleted"
                rnd.phase, rnd.closed_at = RoundPhase.SKIPPED, time.time()
                rnd.close_reason = f"session {state}"
                if stored is not None:
                    ctx.fstore.save_round(ctx.round_record(live.session, rnd))
                ctx.fstore.clear_payloads(live.session.id, rnd.number)
            if stored is not None:
                live.session = stored
        self.release(live)

    def finish(self, live: LiveSession, state: SessionState, error: str = "") -> None:
        """End a session (an open round is cut) and its job; devices hear of it last."""
        ctx = self.ctx
        with live.lock:
            session = live.session
            if session.state.is_terminal:
                return
            cut = live.round if live.round is not None and not live.round.phase.is_closed else None
            if cut is not None:
                cut.phase = RoundPhase.SKIPPED
                cut.closed_at = time.time()
                cut.close_reason = f"session {state.value}"
            session.state = state
            session.finished_at = now()
            session.error = error if state is not SessionState.FINISHED else ""

            def store() -> bool:
                if cut is not None:
                    ctx.fstore.save_round(ctx.round_record(session, cut))
                return ctx.fstore.save_session_if_active(session)

            if not self._fenced(live, store):
                self.ended_elsewhere(live, ctx.fstore.get_session(session.id))
                return
            if cut is not None:
                ctx.fstore.clear_payloads(session.id, cut.number)
        if state is SessionState.FINISHED:
            ctx.event(
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
        # Devices are told of the end once the job is over too (see device._View.ended).
        self.finish_job(session, job_state, error)
        self.release(live)

    def finish_job(self, session: FederatedSession, state: JobState, error: str = "") -> None:
        """End the session's job with its STATE event."""
        self.ctx.store.finish_job(session.job_id, state, error, session.model_version)
        data: dict[str, Any] = {"state": state.value}
        if error and state is JobState.FAILED:
            data["error"] = error
        if session.model_version is not None:
            data["model_version"] = session.model_version
        self.ctx.event(session, EventKind.STATE, data)
        self.ctx.notify()


def check_current(ctx: Context, sessions: LiveSessions, live: LiveSession) -> None:
    """LeaseLost unless ``live`` is the state this replica coordinates its session with: a
    state that was replaced (its coordinator lost the lease, and this replica took the
    session over again with the same lease) must not write, its token is no longer enough."""
    if not sessions.is_current(live) or live.lease_lost:
        raise LeaseLost(live.lease or Lease(f"federated:{live.session.id}", ctx.holder, 0, 0.0))
