"""A session's life: prepare its on-device files, resume it after a restart, finish it.

Preparing exports the files a device runs (feature extractor, train-step model, ...) once per
session in a child process (:class:`~mobiletrain.federated.ports.OnDeviceToolkit`). Everything
a round needs is persisted (the round row, every answer, accepted updates in the spool), so a
restarted server resumes an open round where it was.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.manifest import ModelManifest, ModelOutput, manifest_of
from mobiletrain.core.types import EventKind, JobState, ModelFormat, Project
from mobiletrain.core.wakeup import WakingCondition
from mobiletrain.federated.config import FederatedConfig
from mobiletrain.federated.head import HeadSpec, weights_from_bytes
from mobiletrain.federated.privacy import clip
from mobiletrain.federated.publishing import Publisher
from mobiletrain.federated.records import (
    FederatedSession,
    RoundRecord,
    SessionState,
    UpdateRecord,
    UpdateStatus,
)
from mobiletrain.federated.rounds import RoundPhase, RoundState
from mobiletrain.federated.state import Context, LiveSession, LiveSessions, now
from mobiletrain.federated.strategy import make_strategy

log = logging.getLogger("mobiletrain.federated")


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
                self.load(live, prepared.weights)
            ctx.fstore.save_session(session)
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
            with live.cond:
                live.cond.notify_all()
            ctx.wake.set()
        except Exception as exc:
            log.exception("federated session %s could not be prepared", session.id)
            message = exc.message if isinstance(exc, MobiletrainError) else type(exc).__name__
            self.finish(
                live, SessionState.FAILED, f"preparing the on-device files failed: {message}"
            )

    @staticmethod
    def load(live: LiveSession, weights: bytes) -> None:
        """Fill the live state from a prepared session (call with live.cond held)."""
        session = live.session
        live.head = HeadSpec.from_dict(session.bundle["head"])
        live.strategy = make_strategy(session.config)
        live.weights = weights_from_bytes(weights, live.head)
        live.weights_bytes = weights
        seed = session.config.seed
        live.select_rng = np.random.default_rng([seed, session.current_round, 1])
        live.noise_rng = np.random.default_rng([seed, session.current_round, 2])

    def resume(self, session: FederatedSession) -> None:
        """Run a session a previous server left active (an open round continues)."""
        ctx = self.ctx
        project = ctx.store.get_project(session.project_id)
        live = LiveSession(
            session=session,
            project_name=project.name if project else "",
            cond=WakingCondition(ctx.changes),
        )
        for device in ctx.fstore.list_devices(session.id):
            live.devices.add(device.device_id)
            live.owners[device.device_id] = device.token_id
            if device.declared_samples is not None:
                live.declared[device.device_id] = device.declared_samples
        self.sessions.add(live)
        if session.state is SessionState.PREPARING or not session.weights_sha256:
            session.state = SessionState.PREPARING
            self.spawn_prepare(live)
            return
        with live.cond:
            self.load(live, ctx.blobs.get(session.weights_sha256))
            records = [
                r for r in ctx.fstore.list_rounds(session.id) if r.number == session.current_round
            ]
            if records and not records[0].phase.is_closed:
                self._resume_round(live, records[0])
        ctx.event(
            session,
            EventKind.LOG,
            {"message": f"server restarted: resuming at round {session.current_round}"},
        )

    def _resume_round(self, live: LiveSession, record: RoundRecord) -> None:
        """Rebuild an open round from its stored answers and spooled updates."""
        assert live.head is not None and live.strategy is not None
        ctx = self.ctx
        config = live.session.config
        rnd = RoundState(
            record.number,
            list(record.selected),
            record.opened_at.timestamp(),
            record.deadline_at.timestamp(),
        )
        aggregator = live.strategy.aggregator()
        for update in ctx.fstore.list_updates(live.session.id, record.number):
            if update.status is UpdateStatus.FAILED:
                rnd.failed[update.device_id] = update.message
            elif update.status is UpdateStatus.REJECTED:
                rnd.rejected[update.device_id] = update.reason
        for key in ctx.spool.list(f"{live.session.id}/{record.number}"):
            device_id = key.rsplit("/", 1)[-1]
            try:
                raw, meta = ctx.spool.get(key)
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
                    now(),
                    payload=key,
                )
            )
        live.round, live.aggregator = rnd, aggregator

    def finish(self, live: LiveSession, state: SessionState, error: str = "") -> None:
        """End a session (an open round is cut) and its job; then tell the devices."""
        ctx = self.ctx
        session = live.session
        with live.cond:
            if session.state.is_terminal:
                return
            session.state = state
            session.finished_at = now()
            session.error = error if state is not SessionState.FINISHED else ""
            cut = live.round if live.round is not None and not live.round.phase.is_closed else None
            if cut is not None:
                cut.phase = RoundPhase.SKIPPED
                cut.closed_at = time.time()
                cut.close_reason = f"session {state.value}"
        if cut is not None:
            with live.cond:
                rows, live.accepted_rows = live.accepted_rows, []
            ctx.fstore.add_updates(rows)
            ctx.fstore.save_round(ctx.round_record(session, cut))
            ctx.spool.delete_prefix(f"{session.id}/{cut.number}")
        ctx.fstore.save_session(session)
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
        self.finish_job(session, job_state, error)
        # Devices hear of the end only now, when everything about it is stored.
        with live.cond:
            live.ended = True
            live.cond.notify_all()

    def finish_job(self, session: FederatedSession, state: JobState, error: str = "") -> None:
        """End the session's job with its STATE event."""
        self.ctx.store.finish_job(session.job_id, state, error, session.model_version)
        data: dict[str, Any] = {"state": state.value}
        if error and state is JobState.FAILED:
            data["error"] = error
        if session.model_version is not None:
            data["model_version"] = session.model_version
        self.ctx.event(session, EventKind.STATE, data)
