"""The round loop: open rounds when enough devices are available, close, aggregate, publish.

A coordinator thread looks at every running session each tick (or when woken): it opens a
round by selecting devices, closes it per the configuration (everyone answered, quorum, or
deadline), aggregates the accepted updates with the session's strategy, evaluates and
publishes the new model, and reports the round as the EPOCH event of the session's job.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from mobiletrain.core.types import EventKind
from mobiletrain.federated.head import weights_from_bytes, weights_to_bytes
from mobiletrain.federated.lifecycle import Lifecycle
from mobiletrain.federated.privacy import add_noise, clip, noise_std
from mobiletrain.federated.publishing import Publisher, summary, without_device_ids
from mobiletrain.federated.records import SessionState
from mobiletrain.federated.rounds import RoundPhase, RoundState, select_devices
from mobiletrain.federated.state import Context, LiveSession, LiveSessions
from mobiletrain.federated.strategy import cap_weight_shares

log = logging.getLogger("mobiletrain.federated")

_CANCEL_CHECK_S = 1.0


class Coordinator:
    """Runs the rounds of every live session in one background thread."""

    def __init__(
        self,
        ctx: Context,
        sessions: LiveSessions,
        lifecycle: Lifecycle,
        publisher: Publisher,
        tick_seconds: float,
    ) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self.lifecycle = lifecycle
        self.publisher = publisher
        self.tick_seconds = tick_seconds
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the coordinator thread runs."""
        return self._thread is not None

    def start(self) -> None:
        """Start the coordinator thread."""
        self._thread = threading.Thread(target=self._run, name="federated", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (``ctx.stopping`` must be set)."""
        self.ctx.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _run(self) -> None:
        ctx = self.ctx
        while not ctx.stopping.is_set():
            for live in self.sessions.all():
                try:
                    self.step(live)
                except Exception as exc:  # a failing session must not stop the others
                    log.exception("federated session %s failed", live.session.id)
                    self.lifecycle.finish(live, SessionState.FAILED, f"{type(exc).__name__}: {exc}")
            ctx.wake.wait(self.tick_seconds)
            ctx.wake.clear()

    def step(self, live: LiveSession) -> None:
        """Advance one session: check for cancelling, open, close or finish."""
        if not live.ready:
            return
        mono = time.monotonic()
        if mono >= live.next_cancel_check:
            live.next_cancel_check = mono + _CANCEL_CHECK_S
            job = self.ctx.store.get_job(live.session.job_id)
            if job is None or job.cancel_requested:
                self.lifecycle.finish(live, SessionState.CANCELLED, "cancelled")
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
            self.lifecycle.finish(live, SessionState.FINISHED)
        elif closing is not None:
            self._close(live, closing)

    def _maybe_open(self, live: LiveSession, now: float, mono: float) -> None:
        ctx = self.ctx
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
        ctx.fstore.save_round(ctx.round_record(live.session, live.round))
        ctx.fstore.save_session(live.session)
        live.cond.notify_all()
        ctx.event(
            live.session,
            EventKind.LOG,
            {
                "message": f"round {number}/{config.rounds}: selected {len(selected)} of "
                f"{len(available)} available devices"
            },
        )

    def _close(self, live: LiveSession, rnd: RoundState) -> None:
        """Aggregate (or skip), evaluate, publish and report a round that just closed."""
        ctx = self.ctx
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
            metrics = self.publisher.evaluate(session, live.head, new_bytes)
            version = self.publisher.publish(session, rnd, new_bytes, metrics, result)
            result["model_version"] = version
            result["evaluation"] = summary(metrics)
            weights_sha = ctx.blobs.put(new_bytes)
            ctx.blobs.sync()
            with live.cond:
                live.weights, live.weights_bytes = new_weights, new_bytes
                session.model_version = version
                session.weights_sha256 = weights_sha
                session.metrics = summary(metrics)
        with live.cond:
            rows, live.accepted_rows = live.accepted_rows, []
        ctx.fstore.add_updates(rows)
        ctx.fstore.save_round(ctx.round_record(session, rnd, result))
        ctx.fstore.save_session(session)
        ctx.spool.delete_prefix(f"{session.id}/{rnd.number}")
        held_out = session.metrics if rnd.phase is RoundPhase.AGGREGATED else {}
        ctx.event(
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
                "round": without_device_ids(result),
                "skipped": rnd.phase is RoundPhase.SKIPPED,
            },
        )
        accuracy = held_out.get("accuracy")
        ctx.event(
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
        ctx.wake.set()

    def _cap_shares(self, live: LiveSession, rnd: RoundState) -> int:
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
            raw, _ = self.ctx.spool.get(f"{live.session.id}/{rnd.number}/{device_id}")
            tensors = weights_from_bytes(raw, live.head)
            delta, _, _ = clip(
                [t - w for t, w in zip(tensors, live.weights, strict=True)], config.clip_norm
            )
            aggregator.add(delta, weight)
        live.aggregator = aggregator
        return int(lowered)
