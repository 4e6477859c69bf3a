"""The SQLAlchemy 2 implementation of :class:`MetadataStore` (SQLite by default, PostgreSQL too)."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from mobiletrain.core.auth import Role
from mobiletrain.core.errors import ErrorCode, MobiletrainError
from mobiletrain.core.ports import MetadataStore
from mobiletrain.core.release import (
    Evaluation,
    ReleaseAction,
    ReleaseDecision,
    ReleasePolicy,
    ReleaseRecord,
    Rollout,
)
from mobiletrain.core.storage import storage_full_error
from mobiletrain.core.types import (
    Artifact,
    EventKind,
    Hyperparameters,
    InputSpec,
    Job,
    JobEvent,
    JobState,
    ModelFormat,
    ModelVersion,
    Project,
    Sample,
    TaskType,
    Token,
    UploadSession,
)
from mobiletrain.store import schema as t
from mobiletrain.store.event_signals import attach_event_publisher

T = TypeVar("T")


def utcnow() -> datetime:
    """Timezone-aware now in UTC."""
    return datetime.now(UTC)


def _utc(value: datetime | None) -> datetime | None:
    # SQLite drops the zone: everything we store is UTC.
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _sqlite_pragmas(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a commit is fsynced before it returns, so a sample answered "accepted"
        # keeps its row through a power loss, not only through a process crash (NORMAL
        # may roll the last commits back). One fsync per commit; see GroupWriter.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.close()


def create_engine(database_url: str) -> Engine:
    """Create an engine; SQLite gets WAL mode and a busy timeout for multi-process use."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(database_url, connect_args={"timeout": 60})
        _sqlite_pragmas(engine)
        return engine
    return sa.create_engine(database_url, pool_pre_ping=True)


def create_sqlite_writer_engine(database_url: str) -> Engine:
    """An SQLite engine whose transactions start with ``BEGIN IMMEDIATE``.

    The write lock is taken at the start, so a transaction that reads before it writes (the
    next event number, a sample's twins) cannot be overtaken by another process between its
    read and its write, and a waiting writer queues in SQLite's busy handler instead of failing
    a lock upgrade. pysqlite's own transaction handling is switched off (it would begin lazily
    and break SAVEPOINTs), as SQLAlchemy's documentation describes for pysqlite.
    """
    engine = sa.create_engine(database_url, connect_args={"timeout": 60, "isolation_level": None})
    _sqlite_pragmas(engine)

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class _Write:
    """One caller's transaction function waiting in a :class:`GroupWriter`."""

    __slots__ = ("done", "error", "fn", "lead", "result")

    def __init__(self, fn: Callable[[Connection], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.lead = False
        self.result: Any = None
        self.error: BaseException | None = None


class GroupWriter:
    """Group commit for one process's SQLite writes: one transaction, one fsync, many callers.

    With ``synchronous=FULL`` every SQLite commit costs an fsync (8 ms on the CI disk) under the
    database's single write lock. A thousand upload streams committing one by one queued on that
    lock and on SQLite's busy handler (which sleeps up to 100 ms between tries), so calls waited
    for tens of seconds. Here the callers of one process queue in memory instead: the first
    becomes the leader, takes the write lock once (``BEGIN IMMEDIATE``), runs every waiting
    function (up to ``max_group``) each in its own SAVEPOINT, commits once and wakes them all;
    the next waiting caller then leads the next group. So SQLite sees one writer per process.

    Each function keeps its own outcome: an exception it raises (an ``IntegrityError``, a
    :class:`MobiletrainError`) rolls back its savepoint only and is raised to its caller; a
    database failure of the transaction itself (disk full, a failed commit) reaches every caller
    of the group, none of whose writes is then stored. A function that calls back into the writer
    from inside the group runs in a nested savepoint of the same transaction.
    """

    def __init__(self, engine: Engine, max_group: int = 128) -> None:
        self.engine = engine
        self.max_group = max_group
        self._lock = threading.Lock()
        self._queue: deque[_Write] = deque()
        self._leading = False
        self._local = threading.local()
        self.groups = 0  # transactions committed (for tests and benchmarks)
        self.writes = 0  # functions run in them

    def run(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn(conn)`` in a write transaction; returns once it is committed (fsynced)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:  # called from a function of the group this thread leads
            with conn.begin_nested():
                return fn(conn)
        write = _Write(fn)
        with self._lock:
            self._queue.append(write)
            if not self._leading:
                self._leading = write.lead = True
        if not write.lead:
            write.done.wait()
        if write.lead:  # first in the queue, or woken by the previous leader to lead
            self._lead()
        if write.error is not None:
            raise write.error
        return write.result  # type: ignore[no-any-return]

    def _lead(self) -> None:
        with self._lock:
            group = [self._queue.popleft() for _ in range(min(len(self._queue), self.max_group))]
        try:
            self._run_group(group)
        finally:
            for write in group:
                if not write.lead:
                    write.done.set()
            with self._lock:
                if self._queue:  # hand over: the oldest waiter leads the next group
                    nxt = self._queue[0]
                    nxt.lead = True
                    nxt.done.set()
                else:
                    self._leading = False

    def _run_group(self, group: list[_Write]) -> None:
        for attempt in range(20):
            for write in group:
                write.result, write.error = None, None
            try:
                with self.engine.begin() as conn:
                    self._local.conn = conn
                    try:
                        for write in group:
                            savepoint = conn.begin_nested()
                            try:
                                write.result = write.fn(conn)
                            except OperationalError:
                                # Locked, full, I/O: the transaction itself failed (SQLite may
                                # have rolled it back already, savepoint included).
                                raise
                            except Exception as exc:  # this caller's own failure or conflict
                                savepoint.rollback()
                                write.error = exc
                            else:
                                savepoint.commit()
                    finally:
                        self._local.conn = None
                self.groups += 1
                self.writes += len(group)
                return
            except OperationalError as exc:
                full = storage_full_error(exc)
                if full is not None:  # SQLite's "database or disk is full"
                    self._fail(group, full, exc)
                    return
                if "locked" not in str(exc) or attempt == 19:
                    self._fail(group, exc, None)
                    return
                time.sleep(0.05 * (attempt + 1))
            except BaseException as exc:
                self._fail(group, exc, None)
                if not isinstance(exc, Exception):
                    raise
                return

    @staticmethod
    def _fail(group: list[_Write], error: BaseException, cause: BaseException | None) -> None:
        if cause is not None:
            error.__cause__ = cause
        for write in group:
            write.result, write.error = None, error


def migrate(database_url: str) -> None:
    """Bring the schema to the newest Alembic revision."""
    # Alembic logs one "setup plugin" line per built-in plugin at INFO when it is imported:
    # noise on every first start.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))  # configparser
    command.upgrade(cfg, "head")


def _row_project(r: Any) -> Project:
    return Project(
        id=r.id,
        name=r.name,
        task=TaskType(r.task),
        labels=list(r.labels),
        labels_fixed=bool(r.labels_fixed),
        input_spec=InputSpec.from_dict(r.input_spec),
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        promoted_version=r.promoted_version,
        release_policy=ReleasePolicy.from_dict(r.release_policy) if r.release_policy else None,
        release_pinned=bool(r.release_pinned),
        rollout=Rollout.from_dict(r.rollout) if r.rollout else None,
    )


def _row_sample(r: Any) -> Sample:
    return Sample(
        id=r.id,
        project_id=r.project_id,
        client_id=r.client_id,
        label=r.label,
        sha256=r.sha256,
        size=r.size,
        media_type=r.media_type,
        width=r.width,
        height=r.height,
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        uploaded_by=r.uploaded_by,
        in_eval_set=None if r.in_eval_set is None else bool(r.in_eval_set),
        damaged=bool(r.damaged),
    )


def _row_job(r: Any) -> Job:
    return Job(
        id=r.id,
        project_id=r.project_id,
        state=JobState(r.state),
        hyperparameters=Hyperparameters.from_dict(r.hyperparameters),
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        started_at=_utc(r.started_at),
        finished_at=_utc(r.finished_at),
        attempts=r.attempts,
        error=r.error,
        cancel_requested=bool(r.cancel_requested),
        model_version=r.model_version,
    )


def _row_model(r: Any) -> ModelVersion:
    artifacts = {
        ModelFormat(k): Artifact(format=ModelFormat(k), sha256=v["sha256"], size=v["size"])
        for k, v in r.artifacts.items()
    }
    return ModelVersion(
        project_id=r.project_id,
        version=r.version,
        job_id=r.job_id,
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        metrics=r.metrics,
        manifest=r.manifest,
        artifacts=artifacts,
        status=r.status,
        decision=ReleaseDecision.from_dict(r.decision) if r.decision else None,
        evaluation=Evaluation.from_dict(r.evaluation) if r.evaluation else None,
        warnings=list(r.warnings or []),
    )


def _row_release(r: Any) -> ReleaseRecord:
    return ReleaseRecord(
        id=r.id,
        project_id=r.project_id,
        version=r.version,
        previous_version=r.previous_version,
        action=ReleaseAction(r.action),
        reason=r.reason,
        actor=r.actor,
        job_id=r.job_id,
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
    )


def _relabel_conflict(label: str, twin_id: str | None) -> MobiletrainError:
    details = {"sample_id": twin_id} if twin_id else {}
    return MobiletrainError(
        ErrorCode.ALREADY_EXISTS,
        f"the project already has this image labelled {label!r}",
        **details,
    )


def _hex_digests(value: Any, out: set[str]) -> None:
    """Add every sha256-looking string inside a JSON value to ``out``."""
    if isinstance(value, str):
        if len(value) == 64 and all(ch in "0123456789abcdef" for ch in value):
            out.add(value)
    elif isinstance(value, dict):
        for v in value.values():
            _hex_digests(v, out)
    elif isinstance(value, list | tuple):
        for v in value:
            _hex_digests(v, out)


class SqlMetadataStore(MetadataStore):
    """Metadata in any SQLAlchemy database; safe for several processes on one SQLite file."""

    def __init__(self, database_url: str, run_migrations: bool = True) -> None:
        if run_migrations:
            migrate(database_url)
        self.url = database_url
        self.engine = create_engine(database_url)
        attach_event_publisher(self.engine, database_url)
        # SQLite: every write of this process goes through one group-committing writer.
        self._writer: GroupWriter | None = None
        if self.engine.dialect.name == "sqlite" and self.engine.url.database not in (
            None,
            "",
            ":memory:",
        ):
            writer_engine = create_sqlite_writer_engine(database_url)
            attach_event_publisher(writer_engine, database_url)
            self._writer = GroupWriter(writer_engine)

    @property
    def write_engine(self) -> Engine:
        """The engine this store writes through (SQLite: the group writer's own engine)."""
        return self._writer.engine if self._writer is not None else self.engine

    def close(self) -> None:
        """Dispose the connection pools."""
        self.engine.dispose()
        if self._writer is not None:
            self._writer.engine.dispose()

    # SQLite can report "database is locked" under multi-process write bursts despite
    # busy_timeout (e.g. on WAL checkpoints); a short retry keeps writers from failing.
    def _tx(self, fn: Callable[[Connection], T]) -> T:
        if self._writer is not None:
            return self._writer.run(fn)
        for attempt in range(20):
            try:
                with self.engine.begin() as conn:
                    return fn(conn)
            except OperationalError as exc:
                full = storage_full_error(exc)
                if full is not None:  # SQLite's "database or disk is full", PG's 53100
                    raise full from exc
                if "locked" not in str(exc) or attempt == 19:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def _read(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return fn(conn)

    # -- projects ---------------------------------------------------------------------------
    def create_project(self, project: Project) -> Project:
        """Insert a project; PROJECT_EXISTS when the name is taken."""
        values = {
            "id": project.id,
            "name": project.name,
            "task": project.task.value,
            "labels": project.labels,
            "labels_fixed": project.labels_fixed,
            "input_spec": project.input_spec.to_dict(),
            "created_at": project.created_at,
            "promoted_version": project.promoted_version,
        }
        try:
            self._tx(lambda c: c.execute(t.projects.insert().values(**values)))
        except IntegrityError:
            raise MobiletrainError(
                ErrorCode.PROJECT_EXISTS, f"a project named {project.name!r} already exists"
            ) from None
        return project

    def get_project(self, project_id: str) -> Project | None:
        """A project by id."""
        r = self._read(
            lambda c: c.execute(sa.select(t.projects).where(t.projects.c.id == project_id)).first()
        )
        return _row_project(r) if r else None

    def get_project_by_name(self, name: str) -> Project | None:
        """A project by name."""
        r = self._read(
            lambda c: c.execute(sa.select(t.projects).where(t.projects.c.name == name)).first()
        )
        return _row_project(r) if r else None

    def list_projects(self, limit: int, offset: int) -> list[Project]:
        """Projects in creation order."""
        q = sa.select(t.projects).order_by(t.projects.c.created_at, t.projects.c.id)
        rows = self._read(lambda c: c.execute(q.limit(limit).offset(offset)).all())
        return [_row_project(r) for r in rows]

    def add_labels(self, project_id: str, labels: Sequence[str]) -> list[str]:
        """Append unseen labels in order of first arrival."""

        def tx(c: Connection) -> list[str]:
            q = sa.select(t.projects.c.labels).where(t.projects.c.id == project_id)
            current = list(c.execute(q.with_for_update()).scalar_one())
            added = [lab for lab in dict.fromkeys(labels) if lab not in current]
            if added:
                current += added
                c.execute(
                    t.projects.update().where(t.projects.c.id == project_id).values(labels=current)
                )
            return current

        return self._tx(tx)

    def set_promoted_version(self, project_id: str, version: int | None) -> None:
        """Pin (or unpin with None) the version apps get."""
        self._tx(
            lambda c: c.execute(
                t.projects.update()
                .where(t.projects.c.id == project_id)
                .values(promoted_version=version)
            )
        )

    # -- samples ----------------------------------------------------------------------------
    def add_samples(self, samples: Sequence[Sample]) -> list[Sample | None]:
        """Insert new samples; return the stored twin of each duplicate (None when inserted)."""
        if not samples:
            return []
        project_id = samples[0].project_id

        def tx(c: Connection) -> list[Sample | None]:
            client_ids = [s.client_id for s in samples]
            shas = list({s.sha256 for s in samples})
            rows = c.execute(
                sa.select(t.samples).where(
                    t.samples.c.project_id == project_id,
                    sa.or_(t.samples.c.client_id.in_(client_ids), t.samples.c.sha256.in_(shas)),
                )
            ).all()
            by_client = {r.client_id: _row_sample(r) for r in rows}
            by_content = {(r.sha256, r.label): _row_sample(r) for r in rows}
            out: list[Sample | None] = []
            new_rows: list[dict[str, Any]] = []
            for s in samples:
                twin = by_client.get(s.client_id) or by_content.get((s.sha256, s.label))
                out.append(twin)
                if twin is None:
                    # Later samples of the same batch may repeat this one.
                    by_client[s.client_id] = s
                    by_content[(s.sha256, s.label)] = s
                    new_rows.append(
                        {
                            "id": s.id,
                            "project_id": s.project_id,
                            "client_id": s.client_id,
                            "label": s.label,
                            "sha256": s.sha256,
                            "size": s.size,
                            "media_type": s.media_type,
                            "width": s.width,
                            "height": s.height,
                            "created_at": s.created_at,
                            "uploaded_by": s.uploaded_by,
                        }
                    )
            if new_rows:
                c.execute(t.samples.insert(), new_rows)
                c.execute(
                    t.projects.update()
                    .where(t.projects.c.id == project_id)
                    .values(
                        sample_count=t.projects.c.sample_count + len(new_rows),
                        sample_bytes=t.projects.c.sample_bytes + sum(r["size"] for r in new_rows),
                    )
                )
            return out

        # A concurrent upload inserted one of these between our read and write: the re-run
        # sees its rows and reports them as duplicates. Each conflict turns at least one more
        # of our samples into a duplicate, so len(samples) + 1 runs always suffice (with many
        # uploaders of the same pictures, a re-run can meet another, newer conflict).
        for attempt in range(len(samples) + 1):
            try:
                return self._tx(tx)
            except IntegrityError:
                if attempt == len(samples):
                    raise
        raise AssertionError("unreachable")

    def get_sample(self, project_id: str, sample_id: str) -> Sample | None:
        """One sample of a project."""
        r = self._read(
            lambda c: c.execute(
                sa.select(t.samples).where(
                    t.samples.c.project_id == project_id, t.samples.c.id == sample_id
                )
            ).first()
        )
        return _row_sample(r) if r else None

    def get_sample_by_client_id(self, project_id: str, client_id: str) -> Sample | None:
        """The sample stored under a client id."""
        q = sa.select(t.samples).where(
            t.samples.c.project_id == project_id, t.samples.c.client_id == client_id
        )
        r = self._read(lambda c: c.execute(q).first())
        return _row_sample(r) if r else None

    def list_samples(
        self,
        project_id: str,
        label: str | None,
        limit: int,
        after: int,
        uploaded_by: str | None = None,
    ) -> tuple[list[Sample], int]:
        """Keyset paging over the insertion order (only one uploader's, when given)."""
        q = sa.select(t.samples).where(
            t.samples.c.project_id == project_id, t.samples.c.seq > after
        )
        if label is not None:
            q = q.where(t.samples.c.label == label)
        if uploaded_by is not None:
            q = q.where(t.samples.c.uploaded_by == uploaded_by)
        rows = self._read(lambda c: c.execute(q.order_by(t.samples.c.seq).limit(limit + 1)).all())
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = rows[-1].seq if more and rows else 0
        return [_row_sample(r) for r in rows], next_cursor

    def all_samples(self, project_id: str) -> list[Sample]:
        """Every sample of a project in insertion order."""
        q = (
            sa.select(t.samples)
            .where(t.samples.c.project_id == project_id)
            .order_by(t.samples.c.seq)
        )
        return [_row_sample(r) for r in self._read(lambda c: c.execute(q).all())]

    def delete_sample(self, project_id: str, sample_id: str) -> bool:
        """Delete one sample row (its blob may be shared and stays)."""

        def tx(c: Connection) -> bool:
            where = (t.samples.c.project_id == project_id, t.samples.c.id == sample_id)
            size = c.execute(sa.select(t.samples.c.size).where(*where)).scalar()
            if size is None or not c.execute(t.samples.delete().where(*where)).rowcount:
                return False
            c.execute(
                t.projects.update()
                .where(t.projects.c.id == project_id)
                .values(
                    sample_count=t.projects.c.sample_count - 1,
                    sample_bytes=t.projects.c.sample_bytes - size,
                )
            )
            return True

        return self._tx(tx)

    def delete_project(self, project_id: str) -> int | None:
        """Delete a project and its rows in one transaction; PROJECT_BUSY with an active job."""

        def tx(c: Connection) -> int | None:
            if (
                c.execute(sa.select(t.projects.c.id).where(t.projects.c.id == project_id)).first()
                is None
            ):
                return None
            active = (JobState.QUEUED.value, JobState.RUNNING.value)
            busy = c.execute(
                sa.select(t.jobs.c.id).where(
                    t.jobs.c.project_id == project_id, t.jobs.c.state.in_(active)
                )
            ).first()
            if busy is not None:  # checked inside the transaction: a job queued meanwhile wins
                raise MobiletrainError(
                    ErrorCode.PROJECT_BUSY,
                    f"job {busy[0]} of the project is queued or running; cancel it first",
                )
            sessions = sa.select(t.federated_sessions.c.id).where(
                t.federated_sessions.c.project_id == project_id
            )
            for table in (t.federated_updates, t.federated_rounds, t.federated_devices):
                c.execute(table.delete().where(table.c.session_id.in_(sessions)))
            jobs = sa.select(t.jobs.c.id).where(t.jobs.c.project_id == project_id)
            c.execute(t.job_events.delete().where(t.job_events.c.job_id.in_(jobs)))
            samples = c.execute(t.samples.delete().where(t.samples.c.project_id == project_id))
            # Children before parents (foreign keys); the project row goes last.
            for table in (
                t.federated_sessions,
                t.model_releases,
                t.model_versions,
                t.tokens,
                t.upload_sessions,
                t.jobs,
            ):
                c.execute(table.delete().where(table.c.project_id == project_id))
            c.execute(t.projects.delete().where(t.projects.c.id == project_id))
            return int(samples.rowcount or 0)

        return self._tx(tx)

    def relabel_sample(self, project_id: str, sample_id: str, label: str) -> Sample | None:
        """Change a sample's label; ALREADY_EXISTS when its bytes already carry ``label``."""
        samples = t.samples
        where = (samples.c.project_id == project_id, samples.c.id == sample_id)

        def tx(c: Connection) -> Sample | None:
            row = c.execute(sa.select(samples).where(*where)).first()
            if row is None:
                return None
            if row.label != label:
                twin = c.execute(
                    sa.select(samples.c.id).where(
                        samples.c.project_id == project_id,
                        samples.c.sha256 == row.sha256,
                        samples.c.label == label,
                    )
                ).first()
                if twin is not None:
                    raise _relabel_conflict(label, twin.id)
                c.execute(samples.update().where(*where).values(label=label))
                row = c.execute(sa.select(samples).where(*where)).one()
            return _row_sample(row)

        try:
            return self._tx(tx)
        except IntegrityError:
            # A concurrent upload stored the same bytes under ``label`` in the meantime.
            raise _relabel_conflict(label, None) from None

    def class_counts(self, project_id: str) -> dict[str, int]:
        """Number of samples per label."""
        q = (
            sa.select(t.samples.c.label, sa.func.count())
            .where(t.samples.c.project_id == project_id)
            .group_by(t.samples.c.label)
        )
        return {label: int(n) for label, n in self._read(lambda c: c.execute(q).all())}

    def dataset_size(self, project_id: str) -> tuple[int, int]:
        """Sample count and total bytes of a project (its maintained counters)."""
        q = sa.select(t.projects.c.sample_count, t.projects.c.sample_bytes).where(
            t.projects.c.id == project_id
        )
        row = self._read(lambda c: c.execute(q).first())
        return (int(row[0]), int(row[1])) if row else (0, 0)

    def referenced_blobs(self) -> set[str]:
        """sha256 keys referenced by any row (samples, upload chunks, models, federated).

        JSON columns are searched for every 64-hex-digit string, so a blob reference added to
        one of them later is kept without a change here (an extra match only keeps a blob).
        """
        json_columns = [
            (t.upload_sessions, ("chunks",)),
            (t.model_versions, ("artifacts", "manifest")),
            (t.federated_sessions, ("files", "bundle")),
            (t.federated_rounds, ("result",)),
        ]
        keys: set[str] = set()

        def collect(c: Connection) -> None:
            keys.update(r[0] for r in c.execute(sa.select(t.samples.c.sha256).distinct()))
            keys.update(r[0] for r in c.execute(sa.select(t.upload_sessions.c.sha256)))
            keys.update(r[0] for r in c.execute(sa.select(t.federated_sessions.c.weights_sha256)))
            for table, names in json_columns:
                for row in c.execute(sa.select(*(table.c[n] for n in names))):
                    for value in row:
                        _hex_digests(value, keys)

        self._read(collect)
        keys.discard("")
        return keys

    def scan_samples(self, after: int, limit: int) -> tuple[list[Sample], int]:
        """Samples of every project after cursor ``after``; next cursor (0 = the end)."""
        q = (
            sa.select(t.samples)
            .where(t.samples.c.seq > after)
            .order_by(t.samples.c.seq)
            .limit(limit)
        )
        rows = self._read(lambda c: c.execute(q).all())
        next_cursor = int(rows[-1].seq) if len(rows) == limit else 0
        return [_row_sample(r) for r in rows], next_cursor

    def set_samples_damaged(self, sample_ids: Sequence[str], damaged: bool) -> int:
        """Mark (or clear) samples whose bytes are missing or damaged; returns how many changed."""
        if not sample_ids:
            return 0
        ids = list(sample_ids)

        def tx(c: Connection) -> int:
            changed = 0
            for start in range(0, len(ids), 500):  # bounded IN lists
                changed += c.execute(
                    t.samples.update()
                    .where(
                        t.samples.c.id.in_(ids[start : start + 500]),
                        t.samples.c.damaged != damaged,
                    )
                    .values(damaged=damaged)
                ).rowcount
            return changed

        return self._tx(tx)

    def damaged_samples(self, project_id: str | None = None) -> list[Sample]:
        """Samples marked damaged (of one project, or all), in upload order."""
        q = sa.select(t.samples).where(t.samples.c.damaged.is_(True))
        if project_id is not None:
            q = q.where(t.samples.c.project_id == project_id)
        rows = self._read(lambda c: c.execute(q.order_by(t.samples.c.seq)).all())
        return [_row_sample(r) for r in rows]

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

        def tx(c: Connection) -> int:
            # Writers of one job (worker, executor, replicas) queue on the job's row instead
            # of colliding on (job_id, seq) and retrying. SQLite needs no lock here: its write
            # transactions begin IMMEDIATE (GroupWriter), so no other writer can come between
            # the max(seq) read and the insert.
            if c.dialect.name == "postgresql":
                c.execute(sa.select(t.jobs.c.id).where(t.jobs.c.id == job_id).with_for_update())
            last = c.execute(
                sa.select(sa.func.max(t.job_events.c.seq)).where(t.job_events.c.job_id == job_id)
            ).scalar()
            seq = int(last or 0) + 1
            c.execute(
                t.job_events.insert().values(
                    job_id=job_id, seq=seq, kind=kind.value, data=data, created_at=now
                )
            )
            return seq

        for attempt in range(10):
            try:
                seq = self._tx(tx)
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

    # -- models -----------------------------------------------------------------------------
    def next_model_version(self, project_id: str) -> int:
        """The number the next version of a project would get (max + 1)."""
        q = sa.select(sa.func.max(t.model_versions.c.version)).where(
            t.model_versions.c.project_id == project_id
        )
        return int(self._read(lambda c: c.execute(q).scalar()) or 0) + 1

    def create_model_version(self, model: ModelVersion) -> ModelVersion:
        """Insert with version = max + 1 for the project (retried on a concurrent insert), or
        with ``model.version`` when it is set (ALREADY_EXISTS when that number is taken)."""

        def tx(c: Connection) -> int:
            last = c.execute(
                sa.select(sa.func.max(t.model_versions.c.version)).where(
                    t.model_versions.c.project_id == model.project_id
                )
            ).scalar()
            version = model.version or int(last or 0) + 1
            c.execute(
                t.model_versions.insert().values(
                    project_id=model.project_id,
                    version=version,
                    job_id=model.job_id,
                    created_at=model.created_at,
                    metrics=model.metrics,
                    manifest={**model.manifest, "version": version},
                    artifacts={
                        f.value: {"sha256": a.sha256, "size": a.size}
                        for f, a in model.artifacts.items()
                    },
                    status=model.status,
                    decision=model.decision.to_dict() if model.decision else None,
                    evaluation=model.evaluation.to_dict() if model.evaluation else None,
                    warnings=list(model.warnings),
                )
            )
            return version

        for attempt in range(10):
            try:
                version = self._tx(tx)
                break
            except IntegrityError:
                if model.version:
                    raise MobiletrainError(
                        ErrorCode.ALREADY_EXISTS, f"model version {model.version} exists"
                    ) from None
                if attempt == 9:
                    raise
        stored = self.get_model_version(model.project_id, version)
        assert stored is not None
        return stored

    def get_model_version(self, project_id: str, version: int) -> ModelVersion | None:
        """One version of a project."""
        q = sa.select(t.model_versions).where(
            t.model_versions.c.project_id == project_id, t.model_versions.c.version == version
        )
        r = self._read(lambda c: c.execute(q).first())
        return _row_model(r) if r else None

    def list_model_versions(self, project_id: str) -> list[ModelVersion]:
        """All versions newest first."""
        q = (
            sa.select(t.model_versions)
            .where(t.model_versions.c.project_id == project_id)
            .order_by(t.model_versions.c.version.desc())
        )
        return [_row_model(r) for r in self._read(lambda c: c.execute(q).all())]

    # -- release gate -----------------------------------------------------------------------
    def assign_eval_set(self, project_id: str, assignments: dict[str, bool]) -> None:
        """Record evaluation-set membership of still unassigned samples (assigned ones never
        move, even if two workers race)."""
        if not assignments:
            return

        def tx(c: Connection) -> None:
            for flag in (True, False):
                ids = [sid for sid, v in assignments.items() if v is flag]
                for start in range(0, len(ids), 500):
                    c.execute(
                        t.samples.update()
                        .where(
                            t.samples.c.project_id == project_id,
                            t.samples.c.id.in_(ids[start : start + 500]),
                            t.samples.c.in_eval_set.is_(None),
                        )
                        .values(in_eval_set=flag)
                    )

        self._tx(tx)

    def set_release_policy(self, project_id: str, policy: ReleasePolicy | None) -> None:
        """Store a project's release policy (None: the defaults)."""
        self._tx(
            lambda c: c.execute(
                t.projects.update()
                .where(t.projects.c.id == project_id)
                .values(release_policy=policy.to_dict() if policy else None)
            )
        )

    def change_current_version(
        self,
        record: ReleaseRecord,
        pinned: bool,
        expected_current: int | None = -1,
        rollout: Rollout | None = None,
    ) -> ReleaseRecord | None:
        """Make ``record.version`` current, mark it released and append ``record``, at once;
        ``rollout`` replaces the project's staged rollout (None ends any).

        With ``expected_current`` (not -1), nothing changes and None is returned when the
        current version is no longer that one (another job or a person got there first).
        """

        def tx(c: Connection) -> ReleaseRecord | None:
            row = c.execute(
                sa.select(t.projects.c.promoted_version)
                .where(t.projects.c.id == record.project_id)
                .with_for_update()
            ).first()
            if row is None:
                return None
            if expected_current != -1 and row.promoted_version != expected_current:
                return None
            c.execute(
                t.projects.update()
                .where(t.projects.c.id == record.project_id)
                .values(
                    promoted_version=record.version,
                    release_pinned=pinned,
                    rollout=rollout.to_dict() if rollout else None,
                )
            )
            if record.version is not None:
                c.execute(
                    t.model_versions.update()
                    .where(
                        t.model_versions.c.project_id == record.project_id,
                        t.model_versions.c.version == record.version,
                    )
                    .values(status="released")
                )
            result = c.execute(
                t.model_releases.insert().values(
                    project_id=record.project_id,
                    version=record.version,
                    previous_version=row.promoted_version,
                    action=record.action.value,
                    reason=record.reason,
                    actor=record.actor,
                    job_id=record.job_id,
                    created_at=record.created_at,
                )
            )
            key = result.inserted_primary_key
            record.id = int(key[0]) if key is not None else 0
            record.previous_version = row.promoted_version
            return record

        return self._tx(tx)

    def set_model_decision(self, project_id: str, version: int, decision: ReleaseDecision) -> None:
        """Replace a version's stored release decision."""
        self._tx(
            lambda c: c.execute(
                t.model_versions.update()
                .where(
                    t.model_versions.c.project_id == project_id,
                    t.model_versions.c.version == version,
                )
                .values(decision=decision.to_dict())
            )
        )

    def list_releases(self, project_id: str, limit: int = 100) -> list[ReleaseRecord]:
        """The project's release history, newest first."""
        q = (
            sa.select(t.model_releases)
            .where(t.model_releases.c.project_id == project_id)
            .order_by(t.model_releases.c.id.desc())
            .limit(limit)
        )
        return [_row_release(r) for r in self._read(lambda c: c.execute(q).all())]

    # -- resumable uploads ------------------------------------------------------------------
    def create_upload(self, session: UploadSession) -> UploadSession:
        """Insert, or return the session that already exists for the client id."""
        values = {
            "id": session.id,
            "project_id": session.project_id,
            "client_id": session.client_id,
            "label": session.label,
            "size": session.size,
            "sha256": session.sha256,
            "offset": session.offset,
            "chunks": session.chunks,
            "created_at": session.created_at,
            "expires_at": session.expires_at,
            "uploaded_by": session.uploaded_by,
        }
        try:
            self._tx(lambda c: c.execute(t.upload_sessions.insert().values(**values)))
        except IntegrityError:
            existing = self.find_upload(session.project_id, session.client_id)
            if existing is None:
                raise
            return existing
        return session

    def get_upload(self, upload_id: str) -> UploadSession | None:
        """A session by id."""
        q = sa.select(t.upload_sessions).where(t.upload_sessions.c.id == upload_id)
        r = self._read(lambda c: c.execute(q).first())
        return _row_upload(r) if r else None

    def find_upload(self, project_id: str, client_id: str) -> UploadSession | None:
        """The session of (project, client id)."""
        q = sa.select(t.upload_sessions).where(
            t.upload_sessions.c.project_id == project_id,
            t.upload_sessions.c.client_id == client_id,
        )
        r = self._read(lambda c: c.execute(q).first())
        return _row_upload(r) if r else None

    def advance_upload(self, upload_id: str, offset: int, chunk: str, length: int) -> bool:
        """Compare-and-set on the offset, so two writers never both append at one offset."""

        def tx(c: Connection) -> bool:
            row = c.execute(
                sa.select(t.upload_sessions.c.offset, t.upload_sessions.c.chunks).where(
                    t.upload_sessions.c.id == upload_id
                )
            ).first()
            if row is None or row.offset != offset:
                return False
            updated = c.execute(
                t.upload_sessions.update()
                .where(t.upload_sessions.c.id == upload_id, t.upload_sessions.c.offset == offset)
                .values(offset=offset + length, chunks=[*row.chunks, chunk])
            )
            return bool(updated.rowcount)

        return self._tx(tx)

    def delete_upload(self, upload_id: str) -> None:
        """Forget a session."""
        self._tx(
            lambda c: c.execute(
                t.upload_sessions.delete().where(t.upload_sessions.c.id == upload_id)
            )
        )

    def pending_upload_bytes(self, project_id: str, now: datetime) -> int:
        """Declared bytes of a project's live (unexpired) resumable uploads."""
        u = t.upload_sessions
        q = sa.select(sa.func.coalesce(sa.func.sum(u.c.size), 0)).where(
            u.c.project_id == project_id, u.c.expires_at > now
        )
        return int(self._read(lambda c: c.execute(q).scalar()) or 0)

    def delete_expired_uploads(self, now: datetime, limit: int = 1000) -> list[UploadSession]:
        """Delete up to ``limit`` expired sessions; returns them (their chunks are garbage)."""
        u = t.upload_sessions

        def tx(c: Connection) -> list[UploadSession]:
            rows = c.execute(sa.select(u).where(u.c.expires_at <= now).limit(limit)).all()
            if rows:
                c.execute(u.delete().where(u.c.id.in_([r.id for r in rows])))
            return [_row_upload(r) for r in rows]

        return self._tx(tx)

    # -- tokens -----------------------------------------------------------------------------
    def create_token(self, token: Token) -> None:
        """Insert a token record."""
        self._tx(
            lambda c: c.execute(
                t.tokens.insert().values(
                    id=token.id,
                    role=token.role.value,
                    project_id=token.project_id,
                    name=token.name,
                    token_hash=token.token_hash,
                    created_at=token.created_at,
                    expires_at=token.expires_at,
                    revoked_at=token.revoked_at,
                )
            )
        )

    def get_token_by_hash(self, token_hash: str) -> Token | None:
        """Look a token up by the sha256 of its secret."""
        q = sa.select(t.tokens).where(t.tokens.c.token_hash == token_hash)
        r = self._read(lambda c: c.execute(q).first())
        return _row_token(r) if r else None

    def list_tokens(self, project_id: str | None) -> list[Token]:
        """Tokens newest first."""
        q = sa.select(t.tokens)
        if project_id is not None:
            q = q.where(t.tokens.c.project_id == project_id)
        q = q.order_by(t.tokens.c.created_at.desc())
        return [_row_token(r) for r in self._read(lambda c: c.execute(q).all())]

    def revoke_token(self, token_id: str, when: datetime) -> Token | None:
        """Set revoked_at (kept if already revoked)."""

        def tx(c: Connection) -> Any:
            c.execute(
                t.tokens.update()
                .where(t.tokens.c.id == token_id, t.tokens.c.revoked_at.is_(None))
                .values(revoked_at=when)
            )
            return c.execute(sa.select(t.tokens).where(t.tokens.c.id == token_id)).first()

        r = self._tx(tx)
        return _row_token(r) if r else None

    def count_tokens(self) -> int:
        """Number of token records."""
        q = sa.select(sa.func.count()).select_from(t.tokens)
        return int(self._read(lambda c: c.execute(q).scalar()) or 0)


def _row_token(r: Any) -> Token:
    return Token(
        id=r.id,
        role=Role(r.role),
        project_id=r.project_id,
        name=r.name,
        token_hash=r.token_hash,
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        expires_at=_utc(r.expires_at),
        revoked_at=_utc(r.revoked_at),
    )


def _row_upload(r: Any) -> UploadSession:
    return UploadSession(
        id=r.id,
        project_id=r.project_id,
        client_id=r.client_id,
        label=r.label,
        size=int(r.size),
        sha256=r.sha256,
        offset=int(r.offset),
        chunks=list(r.chunks),
        created_at=_utc(r.created_at),  # type: ignore[arg-type]
        expires_at=_utc(r.expires_at),  # type: ignore[arg-type]
        uploaded_by=r.uploaded_by,
    )
