"""The round loop: one coordinator per session across replicas, elected through the store.

Every replica runs this loop. Each tick it looks at the active sessions in the store: a session
nobody coordinates (new, or its coordinator died and its lease expired) is taken over by the
replica that gets its lease (``federated:<session id>``, with a fencing token), which then
rebuilds the session from the stores as a restart does. For the sessions it holds, the
coordinator reads the answers devices left through any replica (rows and blobs), opens rounds
when enough devices are available, closes them per the configuration (everyone answered,
quorum, or deadline), aggregates with the session's strategy, evaluates and publishes the new
model, and reports the round as the EPOCH event of the session's job.

Round transitions are conditional writes (a round opens only after the one before it, a round
stops admitting updates once), and the coordinator's writes are fenced by its lease: a replica
that lost its lease (paused, cut off) cannot overwrite its successor's work.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np

from mobiletrain.core.leader import Lease, LeaseLost
from mobiletrain.core.types import EventKind
from mobiletrain.federated.head import weights_from_bytes, weights_to_bytes
from mobiletrain.federated.lifecycle import Lifecycle, check_current
from mobiletrain.federated.privacy import add_noise, clip, noise_std
from mobiletrain.federated.publishing import Publisher, summary, without_device_ids
from mobiletrain.federated.records import (
    FederatedSession,
    SessionState,
    UpdateRecord,
    UpdateStatus,
)
from mobiletrain.federated.rounds import RoundPhase, RoundState, select_devices
from mobiletrain.federated.state import (
    ACTIVE_STATES,
    Context,
    Handoff,
    LiveSession,
    LiveSessions,
    now,
    ts,
)
from mobiletrain.federated.strategy import cap_weight_shares

log = logging.getLogger("mobiletrain.federated")

T = TypeVar("T")

_CHECK_S = 1.0
"""How often a coordinator checks that its session was not cancelled or stopped elsewhere."""
_PROGRESS_INTERVAL_S = 0.5
DECODE_THREADS = 4
"""Accepted updates a coordinator reads and decodes at once."""
SCAN_SECONDS = 0.2
"""How often every replica looks at the active sessions in the store (new ones, ones without
a coordinator, and changes that devices waiting here must hear of)."""


def clipped_delta(
    tensors: Sequence[np.ndarray], weights: Sequence[np.ndarray], clip_norm: float, writable: bool
) -> tuple[list[np.ndarray], float, bool]:
    """``(clipped tensors - weights, its norm, was clipped)``, as new float32 arrays, or in
    ``tensors`` themselves when ``writable`` (the caller's buffer, not needed afterwards):
    no temporary of the model's size either way."""
    if writable:
        delta = [np.subtract(t, w, out=t) for t, w in zip(tensors, weights, strict=True)]
    else:
        delta = [np.subtract(t, w) for t, w in zip(tensors, weights, strict=True)]
    return clip(delta, clip_norm, in_place=True)


class Coordinator:
    """Coordinates the sessions whose lease this replica holds, in one background thread."""

    def __init__(
        self,
        ctx: Context,
        sessions: LiveSessions,
        lifecycle: Lifecycle,
        publisher: Publisher,
        tick_seconds: float,
        lease_ttl_s: float,
    ) -> None:
        self.ctx = ctx
        self.sessions = sessions
        self.lifecycle = lifecycle
        self.publisher = publisher
        self.tick_seconds = tick_seconds
        self.lease_ttl_s = lease_ttl_s
        self._thread: threading.Thread | None = None
        self._keeper: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(DECODE_THREADS, thread_name_prefix="federated-decode")
        self._seen: tuple[Any, ...] = ()
        self._next_scan = 0.0

    @property
    def running(self) -> bool:
        """True while the coordinator thread runs."""
        return self._thread is not None

    def start(self) -> None:
        """Start the coordinator thread (it takes over the sessions that need a coordinator)."""
        self._next_scan = 0.0
        self._thread = threading.Thread(target=self._run, name="federated", daemon=True)
        self._thread.start()
        if self.ctx.leases is not None:
            self._keeper = threading.Thread(
                target=self._keep_leases, name="federated-leases", daemon=True
            )
            self._keeper.start()

    def stop(self, hand_over: bool = True) -> None:
        """Stop the thread (``ctx.stopping`` must be set) and hand every lease back, so another
        replica takes the sessions over at once (``hand_over=False``: once they expire)."""
        self.ctx.wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self._keeper is not None:
            self._keeper.join(timeout=10)
            self._keeper = None
        for live in self.sessions.all():
            self.lifecycle.release(live, lost=not hand_over)

    def acquire(self, session_id: str) -> Lease | bool | None:
        """The session's lease for this replica: a Lease, True without leases (one replica),
        or None when another replica holds it."""
        ctx = self.ctx
        if ctx.leases is None:
            return True
        return ctx.leases.acquire(f"federated:{session_id}", ctx.holder, self.lease_ttl_s)

    def adopt(
        self, session: FederatedSession, lease: Lease | bool | None = None, fresh: bool = False
    ) -> LiveSession | None:
        """Coordinate ``session`` if its lease can be had (None: another replica holds it)."""
        current = self.sessions.get(session.id)
        if current is not None:  # coordinated here already (start_session and the scan race)
            return current
        held = lease if lease is not None else self.acquire(session.id)
        if held is None or held is False:
            return None
        return self.lifecycle.resume(
            session, held if isinstance(held, Lease) else None, fresh=fresh
        )

    # -- the loop --------------------------------------------------------------------------------
    def _run(self) -> None:
        ctx = self.ctx
        while not ctx.stopping.is_set():
            if time.monotonic() >= self._next_scan:
                self._next_scan = time.monotonic() + SCAN_SECONDS
                try:
                    self._scan()
                except Exception:  # the store may be briefly unreachable: try again
                    log.warning("looking for federated sessions failed", exc_info=True)
            for live in self.sessions.all():
                try:
                    self.step(live)
                except LeaseLost:
                    log.warning(
                        "federated session %s: another replica coordinates it now", live.session.id
                    )
                    self.lifecycle.release(live, lost=True)
                except Exception as exc:  # a failing session must not stop the others
                    log.exception("federated session %s failed", live.session.id)
                    try:
                        self.lifecycle.finish(
                            live, SessionState.FAILED, f"{type(exc).__name__}: {exc}"
                        )
                    except LeaseLost:
                        self.lifecycle.release(live, lost=True)
            ctx.wake.wait(self.tick_seconds)
            ctx.wake.clear()

    def _scan(self) -> None:
        """Take over the sessions nobody coordinates; wake the devices waiting here when a
        session or its round changed in the store (another replica may coordinate it)."""
        fstore = self.ctx.fstore
        active = fstore.list_sessions(states=ACTIVE_STATES)
        seen: list[Any] = []
        for session in active:
            rnd = fstore.get_round(session.id, session.current_round)
            seen.append(
                (
                    session.id,
                    session.state,
                    session.current_round,
                    session.weights_sha256,
                    rnd.phase if rnd else None,
                    rnd.closed_at if rnd else None,
                )
            )
            if self.sessions.get(session.id) is None and not self.ctx.stopping.is_set():
                self.adopt(session)
        signature = tuple(seen)
        if signature != self._seen:
            self._seen = signature
            self.ctx.notify()

    def _keep_leases(self) -> None:
        """Renew the leases of the sessions coordinated here, on a thread of its own.

        Renewal must not wait behind a round's work: a close (aggregating, evaluating,
        publishing) or a slow scan on a loaded machine took longer than the lease, the lease
        expired, and the session was adopted again while its old state still ran."""
        ctx = self.ctx
        while not ctx.stopping.wait(self.lease_ttl_s / 6):
            for live in self.sessions.all():
                try:
                    self._renew(live, self.lease_ttl_s / 4)
                except LeaseLost:
                    ctx.wake.set()  # the coordinator thread lets the session go
                except Exception:  # the store may be briefly unreachable: try again
                    log.warning("renewing the lease of %s failed", live.session.id, exc_info=True)

    def _renew(self, live: LiveSession, every_s: float) -> None:
        """Extend the lease when ``every_s`` passed since the last renewal (LeaseLost, and
        ``live.lease_lost`` set, when another replica has it)."""
        leases, lease = self.ctx.leases, live.lease
        if live.lease_lost:
            raise LeaseLost(lease) if lease else RuntimeError("lease lost")
        if leases is None or lease is None:
            return
        mono = time.monotonic()
        if mono - live.lease_renewed < every_s:
            return
        renewed = leases.renew(lease, self.lease_ttl_s)
        if renewed is None:
            live.lease_lost = True
            raise LeaseLost(lease)
        live.lease, live.lease_renewed = renewed, mono

    def _fenced(self, live: LiveSession, write: Callable[[], T]) -> T:
        """``write()`` only while ``live`` is current here and this replica still holds the
        session's lease."""
        check_current(self.ctx, self.sessions, live)
        leases, lease = self.ctx.leases, live.lease
        if leases is None or lease is None:
            return write()
        return leases.fenced(lease, write)

    def step(self, live: LiveSession) -> None:
        """Advance one session: check for cancelling, read answers, open, close or finish."""
        with live.lock:
            # The lease thread renews; this is the fallback should it lag (or not run).
            self._renew(live, self.lease_ttl_s / 3)
            if live.preparing or not live.ready:
                return
            mono = time.monotonic()
            if mono >= live.next_check:
                live.next_check = mono + _CHECK_S
                job = self.ctx.store.get_job(live.session.job_id)
                if job is None or job.cancel_requested:
                    self.lifecycle.finish(live, SessionState.CANCELLED, "cancelled")
                    return
                stored = self.ctx.fstore.get_session(live.session.id)
                if stored is None or stored.state.is_terminal:
                    self.lifecycle.ended_elsewhere(live, stored)
                    return
            config = live.session.config
            rnd = live.round
            if rnd is None or rnd.phase.is_closed:
                if live.session.current_round >= config.rounds:
                    self.lifecycle.finish(live, SessionState.FINISHED)
                else:
                    self._maybe_open(live)
                return
            self._ingest(live, rnd)
            if not live.closing:
                reason = rnd.should_close(time.time(), config)
                if not reason:
                    return
                self._fenced(
                    live,
                    lambda: self.ctx.fstore.begin_closing(live.session.id, rnd.number, now()),
                )
                live.closing = True
                rnd.close_reason = reason
                # Answers recorded before the round stopped admitting, handed over or not.
                self._ingest(live, rnd, final=True)
            phase, why = rnd.decide(config)
            rnd.phase, rnd.closed_at = phase, time.time()
            rnd.close_reason = f"{rnd.close_reason or 'closing'}; {why}"
            self.ctx.notify()
            self._close(live, rnd)

    def _ingest(self, live: LiveSession, rnd: RoundState, final: bool = False) -> None:
        """Take in the round's answers recorded since the last look (through any replica).

        An accepted update that a device call on this replica is handing over in-process
        (see :meth:`receiving`) is left to it: its row is looked at again next time, and
        ``final`` (the round stopped admitting) reads it from the stores like the others.
        The rest are read from the blob store and turned into clipped deltas by a few
        threads at once (NumPy and hashing release the GIL), at most :data:`DECODE_THREADS`
        in flight so memory stays flat; they are added to the aggregator in arrival order.
        """
        session = live.session
        rows = self.ctx.fstore.list_updates(session.id, rnd.number, after_id=live.last_row)
        candidates = [*live.deferred.values(), *rows]
        live.deferred = {}
        with live.incoming_lock:
            incoming = {d for (n, d) in live.incoming if n == rnd.number}
        pending: list[UpdateRecord] = []
        for row in candidates:
            live.last_row = max(live.last_row, row.id)
            device = row.device_id
            if not row.counts or device in rnd.answered or device in rnd.rejected:
                continue  # the first answer of a device counts
            if any(p.device_id == device for p in pending):
                continue
            if row.status is UpdateStatus.FAILED:
                rnd.failed[device] = row.message
            elif row.status is UpdateStatus.REJECTED:
                rnd.rejected[device] = row.reason
            elif device in incoming and not final:
                live.deferred[device] = row
            else:
                pending.append(row)
        for start in range(0, len(pending), DECODE_THREADS):
            batch = pending[start : start + DECODE_THREADS]
            for row, decoded in zip(
                batch, self._pool.map(lambda r: self._delta(live, r), batch), strict=True
            ):
                if decoded is None:  # lost with the page cache (power loss): as if never sent
                    log.warning("update of %s in round %d is gone", row.device_id, rnd.number)
                    continue
                self._count(live, rnd, row, *decoded)
        if rows:
            self._progress(live, rnd)

    def _count(
        self,
        live: LiveSession,
        rnd: RoundState,
        row: UpdateRecord,
        delta: list[np.ndarray],
        norm: float,
        was_clipped: bool,
    ) -> None:
        """Add an accepted update's clipped delta (the caller's own arrays) to the round."""
        assert live.strategy is not None and live.aggregator is not None
        live.aggregator.add(delta, live.strategy.weight_of(row.num_samples), consume=True)
        counted = min(row.num_samples, live.session.config.max_samples_per_device)
        rnd.accepted[row.device_id] = counted
        live.payloads[row.device_id] = row.payload
        live.device_metrics.append({**row.metrics, "num_samples": counted, "norm": norm})
        live.clipped += int(was_clipped)

    @contextlib.contextmanager
    def receiving(
        self, session_id: str, round_number: int, device_id: str
    ) -> Iterator[Handoff | None]:
        """While a device call on this replica takes in an update: the way to hand its
        tensors to this coordinator once the update is stored and admitted (None when this
        replica does not coordinate the session).

        The update is then aggregated from the bytes already in memory instead of being read
        back from the blob store (10 MB and a sha256 per update for a 10 MB model). Until the
        call ends, the coordinator leaves the update's row to it; a call that ends without
        handing over (it failed, or the update was rejected) leaves the row to the
        coordinator, which reads it from the stores as it does for another replica's.
        """
        live = self.sessions.get(session_id)
        if live is None:
            yield None
            return
        key = (round_number, device_id)
        with live.incoming_lock:
            live.incoming.add(key)

        def hand(record: UpdateRecord, tensors: list[np.ndarray], writable: bool) -> bool:
            try:
                return self._take(live, record, tensors, writable)
            except Exception:  # the update is stored and admitted: the coordinator reads it
                log.exception("handing over the update of %s failed", record.device_id)
                return False

        try:
            yield hand
        finally:
            with live.incoming_lock:
                live.incoming.discard(key)
            self.ctx.wake.set()  # a row left behind is read at the next step

    def _take(
        self, live: LiveSession, record: UpdateRecord, tensors: list[np.ndarray], writable: bool
    ) -> bool:
        """Count a stored, admitted update from its tensors (see :meth:`receiving`); False
        when the round moved on or the update is already counted."""
        with live.lock:
            rnd, aggregator = live.round, live.aggregator
            if (
                rnd is None
                or aggregator is None
                or rnd.number != record.round
                or rnd.phase.is_closed
                or record.device_id in rnd.answered
            ):
                return False
            weights = live.weights
        # The arithmetic outside the lock: the coordinator and other devices' calls go on.
        delta, norm, was_clipped = clipped_delta(
            tensors, weights, live.session.config.clip_norm, writable
        )
        with live.lock:
            if (
                live.round is not rnd
                or live.aggregator is not aggregator
                or rnd.phase.is_closed
                or record.device_id in rnd.answered
            ):
                return False  # the coordinator counted it from the stores meanwhile
            self._count(live, rnd, record, delta, norm, was_clipped)
            live.deferred.pop(record.device_id, None)
            self._progress(live, rnd)
        return True

    def _delta(
        self, live: LiveSession, row: UpdateRecord
    ) -> tuple[list[np.ndarray], float, bool] | None:
        """An accepted update's clipped delta from the global weights (None: its blob is gone)."""
        assert live.head is not None
        try:
            raw = self.ctx.blobs.get(row.payload)
        except KeyError:
            return None
        tensors = weights_from_bytes(raw, live.head, copy=False)
        return clipped_delta(tensors, live.weights, live.session.config.clip_norm, False)

    def _progress(self, live: LiveSession, rnd: RoundState) -> None:
        mono = time.monotonic()
        if mono < live.next_progress:
            return
        live.next_progress = mono + _PROGRESS_INTERVAL_S
        self.ctx.event(
            live.session,
            EventKind.PROGRESS,
            {
                "epoch": rnd.number,
                "epochs": live.session.config.rounds,
                "batch": len(rnd.answered),
                "batches": len(rnd.selected),
                "samples_per_second": 0.0,
                "eta_seconds": round(max(rnd.deadline - time.time(), 0.0), 1),
            },
        )

    def _maybe_open(self, live: LiveSession) -> None:
        ctx, session = self.ctx, live.session
        config = session.config
        available = ctx.fstore.available_devices(
            session.id, ts(time.time() - config.availability_seconds)
        )
        selected = select_devices(available, config, live.select_rng)
        if not selected:
            return
        assert live.strategy is not None
        started = time.time()
        number = session.current_round + 1
        rnd = RoundState(number, selected, started, started + config.round_deadline_seconds)
        record = ctx.round_record(session, rnd)
        # The log line is stored with the open: a coordinator killed right after the open
        # leaves both, and a refused second open of the number leaves neither.
        message = {
            "message": f"round {number}/{config.rounds}: selected {len(selected)} of "
            f"{len(available)} available devices"
        }
        if not self._fenced(live, lambda: ctx.fstore.open_round(record, message)):
            # The stored session moved on without us (stopped, or another coordinator).
            raise LeaseLost(live.lease) if live.lease else RuntimeError("round already open")
        live.round, live.closing = rnd, False
        if live.aggregator is not None:
            live.aggregator.close()
        live.aggregator = live.strategy.aggregator()
        live.device_metrics, live.clipped, live.last_row, live.payloads = [], 0, 0, {}
        live.deferred = {}
        session.current_round = number
        ctx.notify()
        ctx.hub.notify()  # the LOG event written with the open

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
            version = self._fenced(
                live, lambda: self.publisher.publish(session, rnd, new_bytes, metrics, result)
            )
            result["model_version"] = version
            result["evaluation"] = summary(metrics)
            weights_sha = ctx.blobs.put(new_bytes)
            ctx.blobs.sync()
            live.weights, live.weights_bytes = new_weights, new_bytes
            session.model_version = version
            session.weights_sha256 = weights_sha
            session.metrics = summary(metrics)

        def store_round() -> bool:
            ctx.fstore.save_round(ctx.round_record(session, rnd, result))
            return ctx.fstore.save_session_if_active(session)

        if not self._fenced(live, store_round):
            self.lifecycle.ended_elsewhere(live, ctx.fstore.get_session(session.id))
            return
        ctx.fstore.clear_payloads(session.id, rnd.number)
        live.payloads = {}
        if live.aggregator is not None:
            live.aggregator.close()  # a robust strategy's spill file
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
        ctx.notify()
        ctx.wake.set()

    def _cap_shares(self, live: LiveSession, rnd: RoundState) -> int:
        """Enforce ``max_weight_share``: when an update's weight is above its share of the
        round, rebuild the round's aggregate from the stored updates with the capped weights.
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
            raw = self.ctx.blobs.get(live.payloads[device_id])
            tensors = weights_from_bytes(raw, live.head, copy=False)
            delta, _, _ = clipped_delta(tensors, live.weights, config.clip_norm, False)
            aggregator.add(delta, weight, consume=True)
        if live.aggregator is not None:
            live.aggregator.close()
        live.aggregator = aggregator
        return int(lowered)
