"""The SQLAlchemy implementation of :class:`FederatedStore` (same database as the metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

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
from mobiletrain.store import schema as t
from mobiletrain.store.sql import SqlMetadataStore


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
        return [
            DeviceRecord(
                session_id=r.session_id,
                device_id=r.device_id,
                registered_at=_utc(r.registered_at),  # type: ignore[arg-type]
                info=dict(r.info),
                token_id=r.token_id,
                declared_samples=r.declared_samples,
            )
            for r in self._store._read(lambda c: c.execute(q).all())
        ]

    def save_round(self, record: RoundRecord) -> None:
        """Insert or replace a round (delete + insert works the same on every database)."""
        rounds = t.federated_rounds
        where = (rounds.c.session_id == record.session_id, rounds.c.number == record.number)
        values = {
            "session_id": record.session_id,
            "number": record.number,
            "phase": record.phase.value,
            "selected": list(record.selected),
            "opened_at": record.opened_at,
            "deadline_at": record.deadline_at,
            "closed_at": record.closed_at,
            "result": record.result,
        }

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

    def add_update(self, update: UpdateRecord) -> None:
        """Record one answer."""
        self.add_updates([update])

    def add_updates(self, updates: Sequence[UpdateRecord]) -> None:
        """Record many answers in one transaction."""
        rows = [
            {
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
            for u in updates
        ]
        if rows:
            self._store._tx(lambda c: c.execute(t.federated_updates.insert(), rows))

    def list_updates(self, session_id: str, round_number: int) -> list[UpdateRecord]:
        """Answers of one round in arrival order."""
        u = t.federated_updates
        q = (
            sa.select(u)
            .where(u.c.session_id == session_id, u.c.round == round_number)
            .order_by(u.c.id)
        )
        return [
            UpdateRecord(
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
            )
            for r in self._store._read(lambda c: c.execute(q).all())
        ]
