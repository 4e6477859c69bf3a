"""The SQLAlchemy implementation of :class:`FederatedStore` (same database as the metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from mobiletrain.core.types import EventKind
from mobiletrain.federated.config import FederatedConfig
from mobiletrain.federated.ports import FederatedStore
from mobiletrain.federated.records import (
    DeviceRecord,
    FederatedSession,
    RoundRecord,
    SessionState,
    UpdateRecord,
    UpdateStatus,
)
from mobiletrain.federated.rounds import RoundPhase
from mobiletrain.federated.validation import RejectReason
from mobiletrain.store import schema as t
from mobiletrain.store.sql import SqlMetadataStore
from mobiletrain.store.sql.engine import utcnow
from mobiletrain.store.sql.jobs import insert_event


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _session_values(s: FederatedSession) -> dict[str, Any]:
    return {
        "id": s.id,
        "project_id": s.project_id,
        "job_id": s.job_id,
        "state": s.state.value,
        "config": s.config.to_dict(),
        "labels": list(s.labels),
        "current_round": s.current_round,
        "model_version": s.model_version,
        "weights_sha256": s.weights_sha256,
        "files": s.files,
        "bundle": s.bundle,
        "metrics": s.metrics,
        "created_at": s.created_at,
        "finished_at": s.finished_at,
        "error": s.error,
    }


def _row_session(r: Any) -> FederatedSession:
    return FederatedSession(
        id=r.id,
        project_id=r.project_id,
        job_id=r.job_id,
        state=SessionState(r.state),
        config=FederatedConfig.from_dict(r.config),
        labels=list(r.labels),
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        current_round=r.current_round,
        model_version=r.model_version,
        weights_sha256=r.weights_sha256,
        files=dict(r.files),
        bundle=dict(r.bundle),
        metrics=dict(r.metrics),
        finished_at=_utc(r.finished_at),
        error=r.error,
    )


def _row_device(r: Any) -> DeviceRecord:
    return DeviceRecord(
        session_id=r.session_id,
        device_id=r.device_id,
        registered_at=_utc(r.registered_at),  # type: ignore[arg-type]
        info=dict(r.info),
        token_id=r.token_id,
        declared_samples=r.declared_samples,
        last_seen_at=_utc(r.last_seen_at),
    )


def _row_update(r: Any) -> UpdateRecord:
    return UpdateRecord(
        session_id=r.session_id,
        round=r.round,
        device_id=r.device_id,
        status=UpdateStatus(r.status),
        reason=r.reason,
        message=r.message,
        num_samples=r.num_samples,
        metrics=dict(r.metrics),
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        payload=r.payload,
        id=r.id,
    )


def _update_values(u: UpdateRecord) -> dict[str, Any]:
    return {
        "session_id": u.session_id,
        "round": u.round,
        "device_id": u.device_id,
        "status": u.status.value,
        "reason": u.reason,
        "message": u.message,
        "num_samples": u.num_samples,
        "metrics": u.metrics,
        "payload": u.payload,
        "created_at": u.created_at,
    }


_COUNTING = sa.not_(
    t.federated_updates.c.reason.in_([RejectReason.DUPLICATE.value, RejectReason.STALE_ROUND.value])
)
"""Answers that count for their round (a duplicate or stale-round one does not)."""


def _row_round(r: Any) -> RoundRecord:
    return RoundRecord(
        session_id=r.session_id,
        number=r.number,
        phase=RoundPhase(r.phase),
        selected=list(r.selected),
        opened_at=_utc(r.opened_at),  # type: ignore[arg-type]
        deadline_at=_utc(r.deadline_at),  # type: ignore[arg-type]
        closed_at=_utc(r.closed_at),
        result=dict(r.result),
    )


def _round_values(record: RoundRecord) -> dict[str, Any]:
    return {
        "session_id": record.session_id,
        "number": record.number,
        "phase": record.phase.value,
        "selected": list(record.selected),
        "opened_at": record.opened_at,
        "deadline_at": record.deadline_at,
        "closed_at": record.closed_at,
        "result": record.result,
    }


def _append_log(c: Any, job_id: str, data: dict[str, Any]) -> None:
    """Append a LOG event to a job inside the caller's transaction."""
    insert_event(c, job_id, EventKind.LOG, data, utcnow())


class SqlFederatedStore(FederatedStore):
    """Federated rows in the metadata store's database (its engine and retry logic)."""

    def __init__(self, store: SqlMetadataStore) -> None:
        self._store = store

    def create_session(self, session: FederatedSession) -> None:
        """Insert a session."""
        values = _session_values(session)
        self._store._tx(lambda c: c.execute(t.federated_sessions.insert().values(**values)))

    def save_session(self, session: FederatedSession) -> None:
        """Write every field of a session."""
        values = _session_values(session)
        del values["id"]
        self._store._tx(
            lambda c: c.execute(
                t.federated_sessions.update()
                .where(t.federated_sessions.c.id == session.id)
                .values(**values)
            )
        )

    def get_session(self, session_id: str) -> FederatedSession | None:
        """A session by id."""
        q = sa.select(t.federated_sessions).where(t.federated_sessions.c.id == session_id)
        r = self._store._read(lambda c: c.execute(q).first())
        return _row_session(r) if r else None

    def list_sessions(
        self, project_id: str | None = None, states: Sequence[SessionState] | None = None
    ) -> list[FederatedSession]:
        """Sessions newest first."""
        q = sa.select(t.federated_sessions)
        if project_id is not None:
            q = q.where(t.federated_sessions.c.project_id == project_id)
        if states is not None:
            q = q.where(t.federated_sessions.c.state.in_([s.value for s in states]))
        q = q.order_by(t.federated_sessions.c.seq.desc())
        return [_row_session(r) for r in self._store._read(lambda c: c.execute(q).all())]

    def add_device(self, device: DeviceRecord) -> None:
        """Register a device."""
        self._store._tx(
            lambda c: c.execute(
                t.federated_devices.insert().values(
                    session_id=device.session_id,
                    device_id=device.device_id,
                    registered_at=device.registered_at,
                    info=device.info,
                    token_id=device.token_id,
                    declared_samples=device.declared_samples,
                    last_seen_at=device.last_seen_at,
                )
            )
        )

    def list_devices(self, session_id: str) -> list[DeviceRecord]:
        """Devices in registration order."""
        q = (
            sa.select(t.federated_devices)
            .where(t.federated_devices.c.session_id == session_id)
            .order_by(t.federated_devices.c.seq)
        )
        return [_row_device(r) for r in self._store._read(lambda c: c.execute(q).all())]

    def save_round(self, record: RoundRecord) -> None:
        """Insert or replace a round (delete + insert works the same on every database)."""
        rounds = t.federated_rounds
        where = (rounds.c.session_id == record.session_id, rounds.c.number == record.number)
        values = _round_values(record)

        def tx(c: Any) -> None:
            c.execute(rounds.delete().where(*where))
            c.execute(rounds.insert().values(**values))

        self._store._tx(tx)

    def list_rounds(self, session_id: str) -> list[RoundRecord]:
        """Rounds in order."""
        q = (
            sa.select(t.federated_rounds)
            .where(t.federated_rounds.c.session_id == session_id)
            .order_by(t.federated_rounds.c.number)
        )
        return [_row_round(r) for r in self._store._read(lambda c: c.execute(q).all())]

    def get_round(self, session_id: str, number: int) -> RoundRecord | None:
        """One round of a session."""
        rounds = t.federated_rounds
        q = sa.select(rounds).where(rounds.c.session_id == session_id, rounds.c.number == number)
        r = self._store._read(lambda c: c.execute(q).first())
        return _row_round(r) if r else None

    def add_update(self, update: UpdateRecord) -> None:
        """Record one answer."""
        self.add_updates([update])

    def add_updates(self, updates: Sequence[UpdateRecord]) -> None:
        """Record many answers in one transaction."""
        rows = [_update_values(u) for u in updates]
        if rows:
            self._store._tx(lambda c: c.execute(t.federated_updates.insert(), rows))

    def list_updates(
        self, session_id: str, round_number: int, after_id: int = 0
    ) -> list[UpdateRecord]:
        """Answers of one round in arrival order, after ``after_id``."""
        u = t.federated_updates
        q = (
            sa.select(u)
            .where(u.c.session_id == session_id, u.c.round == round_number, u.c.id > after_id)
            .order_by(u.c.id)
        )
        return [_row_update(r) for r in self._store._read(lambda c: c.execute(q).all())]

    # -- multi-replica device calls ----------------------------------------------------------
    def find_device(
        self, project_id: str, device_id: str
    ) -> tuple[FederatedSession, DeviceRecord] | None:
        """The newest session of the project the device registered with, and its row."""
        d, s = t.federated_devices, t.federated_sessions
        q = (
            sa.select(d, s.c.id.label("sid"))
            .join(s, s.c.id == d.c.session_id)
            .where(s.c.project_id == project_id, d.c.device_id == device_id)
            .order_by(s.c.seq.desc())
            .limit(1)
        )
        row = self._store._read(lambda c: c.execute(q).first())
        if row is None:
            return None
        session = self.get_session(row.sid)
        return (session, _row_device(row)) if session is not None else None

    def touch_device(self, session_id: str, device_id: str, at: datetime) -> None:
        """Record that the device asked for work at ``at``."""
        d = t.federated_devices
        self._store._tx(
            lambda c: c.execute(
                d.update()
                .where(d.c.session_id == session_id, d.c.device_id == device_id)
                .values(last_seen_at=at)
            )
        )

    def available_devices(self, session_id: str, since: datetime) -> list[str]:
        """The devices of a session seen at or after ``since``."""
        d = t.federated_devices
        q = (
            sa.select(d.c.device_id)
            .where(d.c.session_id == session_id, d.c.last_seen_at >= since)
            .order_by(d.c.seq)
        )
        return [r[0] for r in self._store._read(lambda c: c.execute(q).all())]

    def device_updates(
        self, session_id: str, round_number: int, device_id: str
    ) -> list[UpdateRecord]:
        """One device's answers to one round."""
        u = t.federated_updates
        q = (
            sa.select(u)
            .where(
                u.c.session_id == session_id,
                u.c.round == round_number,
                u.c.device_id == device_id,
            )
            .order_by(u.c.id)
        )
        return [_row_update(r) for r in self._store._read(lambda c: c.execute(q).all())]

    def add_accepted_update(self, update: UpdateRecord) -> str:
        """Record an accepted update while its round is open and unanswered by the device."""
        rounds, u = t.federated_rounds, t.federated_updates
        values = _update_values(update)

        def tx(c: Any) -> str:
            # The round row is locked (PostgreSQL) or the database is (SQLite's one writer), so
            # the coordinator's begin_closing waits for this insert or this insert sees it.
            row = c.execute(
                sa.select(rounds.c.phase, rounds.c.closed_at)
                .where(rounds.c.session_id == update.session_id, rounds.c.number == update.round)
                .with_for_update()
            ).first()
            if row is None or row.phase != RoundPhase.OPEN.value or row.closed_at is not None:
                return "closed"
            answered = c.execute(
                sa.select(sa.func.count())
                .select_from(u)
                .where(
                    u.c.session_id == update.session_id,
                    u.c.round == update.round,
                    u.c.device_id == update.device_id,
                    _COUNTING,
                )
            ).scalar_one()
            if answered:
                return "duplicate"
            c.execute(u.insert().values(**values))
            return ""

        return self._store._tx(tx)

    def open_round(self, record: RoundRecord, log: dict[str, Any] | None = None) -> bool:
        """Insert the round and advance the session to it, if nobody did already.

        A round number is opened at most once: the round row must not exist yet (a second
        open of the same number, by a coordinator that lost its lease or resumed from an old
        view of the session, is refused) and the session's current round must be the one
        before. ``log``: the data of a LOG event appended to the session's job in the same
        transaction, so the round's open and its log line are stored together or not at all.
        """
        s, rounds = t.federated_sessions, t.federated_rounds

        def tx(c: Any) -> bool:
            exists = c.execute(
                sa.select(rounds.c.number).where(
                    rounds.c.session_id == record.session_id, rounds.c.number == record.number
                )
            ).first()
            if exists is not None:
                return False
            advanced = c.execute(
                s.update()
                .where(
                    s.c.id == record.session_id,
                    s.c.current_round == record.number - 1,
                    s.c.state == SessionState.RUNNING.value,
                )
                .values(current_round=record.number)
            ).rowcount
            if advanced != 1:
                return False
            c.execute(rounds.insert().values(**_round_values(record)))
            if log is not None:
                job_id = c.execute(
                    sa.select(s.c.job_id).where(s.c.id == record.session_id)
                ).scalar_one()
                _append_log(c, job_id, log)
            return True

        try:
            return bool(self._store._tx(tx))
        except IntegrityError:  # another writer inserted the round row first
            return False

    def begin_closing(self, session_id: str, round_number: int, at: datetime) -> bool:
        """Stop admitting updates to an open round."""
        rounds = t.federated_rounds
        return bool(
            self._store._tx(
                lambda c: (
                    c.execute(
                        rounds.update()
                        .where(
                            rounds.c.session_id == session_id,
                            rounds.c.number == round_number,
                            rounds.c.phase == RoundPhase.OPEN.value,
                            rounds.c.closed_at.is_(None),
                        )
                        .values(closed_at=at)
                    ).rowcount
                    == 1
                )
            )
        )

    def clear_payloads(self, session_id: str, round_number: int) -> None:
        """Forget the update blobs of a closed round."""
        u = t.federated_updates
        self._store._tx(
            lambda c: c.execute(
                u.update()
                .where(u.c.session_id == session_id, u.c.round == round_number, u.c.payload != "")
                .values(payload="")
            )
        )

    def save_session_if_active(self, session: FederatedSession) -> bool:
        """Write the session only while the stored one is not over (its current round is
        never moved back)."""
        s = t.federated_sessions
        values = _session_values(session)
        del values["id"]
        # The current round only moves forward (open_round moves it): a writer holding an
        # older copy of the session does not take it back to a round that is already open.
        values["current_round"] = sa.case(
            (s.c.current_round > session.current_round, s.c.current_round),
            else_=session.current_round,
        )
        active = [SessionState.PREPARING.value, SessionState.RUNNING.value]
        return bool(
            self._store._tx(
                lambda c: (
                    c.execute(
                        s.update()
                        .where(s.c.id == session.id, s.c.state.in_(active))
                        .values(**values)
                    ).rowcount
                    == 1
                )
            )
        )
