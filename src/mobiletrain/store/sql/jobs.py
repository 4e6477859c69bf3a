"""Jobs (claim, lease, finish, cancel) and their numbered events."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from mobiletrain.core.types import (
    EventKind,
    Job,
    JobEvent,
    JobState,
)
from mobiletrain.store import schema as t
from mobiletrain.store.sql.base import SqlStoreBase
from mobiletrain.store.sql.engine import _utc, utcnow
from mobiletrain.store.sql.rows import _row_job


def insert_event(
    c: Connection, job_id: str, kind: EventKind, data: dict[str, Any], created_at: datetime
) -> int:
    """Insert a job's next event in the caller's write transaction; returns its seq.

    Writers of one job (worker, executor, replicas) queue on the job's row instead of
    colliding on (job_id, seq) and retrying. SQLite needs no lock here: its write transactions
    begin IMMEDIATE (GroupWriter), so no other writer can come between the max(seq) read and
    the insert.
    """
    if c.dialect.name == "postgresql":
        c.execute(sa.select(t.jobs.c.id).where(t.jobs.c.id == job_id).with_for_update())
    last = c.execute(
        sa.select(sa.func.max(t.job_events.c.seq)).where(t.job_events.c.job_id == job_id)
    ).scalar()
    seq = int(last or 0) + 1
    c.execute(
        t.job_events.insert().values(
            job_id=job_id, seq=seq, kind=kind.value, data=data, created_at=created_at
        )
    )
    return seq


class JobRows(SqlStoreBase):
    """Jobs (claim, lease, finish, cancel) and their numbered events."""

    # -- jobs -------------------------------------------------------------------------------
    def create_job(self, job: Job) -> Job:
        """Insert a job row."""
        self._tx(
            lambda c: c.execute(
                t.jobs.insert().values(
                    id=job.id,
                    project_id=job.project_id,
                    state=job.state.value,
                    hyperparameters=job.hyperparameters.to_dict(),
                    created_at=job.created_at,
                    attempts=job.attempts,
                    error=job.error,
                    cancel_requested=job.cancel_requested,
                )
            )
        )
        return job

    def get_job(self, job_id: str) -> Job | None:
        """A job by id."""
        r = self._read(lambda c: c.execute(sa.select(t.jobs).where(t.jobs.c.id == job_id)).first())
        return _row_job(r) if r else None

    def list_jobs(self, project_id: str | None, limit: int, offset: int) -> list[Job]:
        """Jobs newest first, optionally of one project."""
        q = sa.select(t.jobs)
        if project_id is not None:
            q = q.where(t.jobs.c.project_id == project_id)
        q = q.order_by(t.jobs.c.seq.desc()).limit(limit).offset(offset)
        return [_row_job(r) for r in self._read(lambda c: c.execute(q).all())]

    def count_active_jobs(self, project_id: str) -> int:
        """Queued and running jobs of a project."""
        active = (JobState.QUEUED.value, JobState.RUNNING.value)
        q = (
            sa.select(sa.func.count())
            .select_from(t.jobs)
            .where(t.jobs.c.project_id == project_id, t.jobs.c.state.in_(active))
        )
        return int(self._read(lambda c: c.execute(q).scalar()) or 0)

    def list_jobs_in_state(self, state: JobState) -> list[Job]:
        """Jobs in one state, oldest first."""
        q = sa.select(t.jobs).where(t.jobs.c.state == state.value).order_by(t.jobs.c.seq)
        return [_row_job(r) for r in self._read(lambda c: c.execute(q).all())]

    def claim_job(self, job_id: str | None = None, lease_seconds: float = 60.0) -> Job | None:
        """Queued → running with a compare-and-set update, so two schedulers never both win."""

        def tx(c: Connection) -> Job | None:
            q = sa.select(t.jobs).where(t.jobs.c.state == JobState.QUEUED.value)
            if job_id is not None:
                q = q.where(t.jobs.c.id == job_id)
            row = c.execute(q.order_by(t.jobs.c.seq).limit(1)).first()
            if row is None:
                return None
            updated = c.execute(
                t.jobs.update()
                .where(t.jobs.c.id == row.id, t.jobs.c.state == JobState.QUEUED.value)
                .values(
                    state=JobState.RUNNING.value,
                    started_at=utcnow(),
                    attempts=t.jobs.c.attempts + 1,
                    lease_expires_at=utcnow() + timedelta(seconds=lease_seconds),
                )
            )
            if not updated.rowcount:
                return None
            fresh = c.execute(sa.select(t.jobs).where(t.jobs.c.id == row.id)).one()
            return _row_job(fresh)

        return self._tx(tx)

    def renew_lease(self, job_id: str, lease_seconds: float) -> bool:
        """Heartbeat: push the lease of a running job forward."""
        result = self._tx(
            lambda c: c.execute(
                t.jobs.update()
                .where(t.jobs.c.id == job_id, t.jobs.c.state == JobState.RUNNING.value)
                .values(lease_expires_at=utcnow() + timedelta(seconds=lease_seconds))
            )
        )
        return bool(result.rowcount)

    def expired_jobs(self, now: datetime) -> list[Job]:
        """Running jobs whose lease is over."""
        q = (
            sa.select(t.jobs)
            .where(t.jobs.c.state == JobState.RUNNING.value, t.jobs.c.lease_expires_at < now)
            .order_by(t.jobs.c.seq)
        )
        return [_row_job(r) for r in self._read(lambda c: c.execute(q).all())]

    def finish_job(
        self, job_id: str, state: JobState, error: str = "", model_version: int | None = None
    ) -> Job:
        """Record a final state (or QUEUED again, for a retry)."""
        values: dict[str, Any] = {"state": state.value, "error": error}
        if state.is_terminal:
            values["finished_at"] = utcnow()
        if model_version is not None:
            values["model_version"] = model_version
        self._tx(lambda c: c.execute(t.jobs.update().where(t.jobs.c.id == job_id).values(**values)))
        job = self.get_job(job_id)
        assert job is not None
        return job

    def request_cancel(self, job_id: str) -> Job:
        """Flag the job; a queued one goes straight to cancelled."""

        def tx(c: Connection) -> None:
            c.execute(t.jobs.update().where(t.jobs.c.id == job_id).values(cancel_requested=True))
            c.execute(
                t.jobs.update()
                .where(t.jobs.c.id == job_id, t.jobs.c.state == JobState.QUEUED.value)
                .values(state=JobState.CANCELLED.value, finished_at=utcnow())
            )

        self._tx(tx)
        job = self.get_job(job_id)
        assert job is not None
        return job

    # -- events -----------------------------------------------------------------------------
    def append_event(self, job_id: str, kind: EventKind, data: dict[str, Any]) -> JobEvent:
        """Append with seq = last + 1; the unique (job_id, seq) guards concurrent writers."""
        now = utcnow()

        for attempt in range(10):
            try:
                seq = self._tx(lambda c: insert_event(c, job_id, kind, data, now))
                break
            except IntegrityError:
                if attempt == 9:
                    raise
        return JobEvent(job_id=job_id, seq=seq, kind=kind, data=data, created_at=now)

    def list_events(self, job_id: str, after_seq: int, limit: int) -> list[JobEvent]:
        """Events after a sequence number, in order."""
        q = (
            sa.select(t.job_events)
            .where(t.job_events.c.job_id == job_id, t.job_events.c.seq > after_seq)
            .order_by(t.job_events.c.seq)
            .limit(limit)
        )
        return [
            JobEvent(
                job_id=r.job_id,
                seq=r.seq,
                kind=EventKind(r.kind),
                data=r.data,
                created_at=_utc(r.created_at),  # type: ignore[arg-type]
            )
            for r in self._read(lambda c: c.execute(q).all())
        ]

    def event_watermark(self) -> int:
        """Largest global event id."""
        q = sa.select(sa.func.max(t.job_events.c.id))
        return int(self._read(lambda c: c.execute(q).scalar()) or 0)
