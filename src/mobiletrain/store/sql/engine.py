"""Engines, the SQLite group writer and migrations of the SQL metadata store."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from mobiletrain.core.storage import storage_full_error

T = TypeVar("T")

log = logging.getLogger(__name__)

try:  # POSIX; elsewhere writers fall back to SQLite's busy handler alone
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


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


class WriterTurns:
    """Turns between processes at one SQLite database's write lock.

    SQLite's busy handler is not a queue: a process waiting for the write lock sleeps (up to
    100 ms) and retries, and a busy process that commits and begins again within microseconds
    almost always wins the retry. Under an upload burst the API process held the lock ~all the
    time and a training worker's progress event waited seconds (65 events stored in 140 s).

    Here a process about to wait for the write lock first takes an exclusive ``flock`` on a side
    file (``<database>-writer-turns``) and holds it until it has the write lock. A process that
    wants the lock again must take the same ``flock`` first, so it waits behind the one already
    waiting: processes alternate at the write lock instead of racing for it. Uncontended, this
    is two system calls per transaction. The kernel drops the ``flock`` of a process that dies.
    """

    def __init__(self, database_path: str) -> None:
        self.path = f"{database_path}-writer-turns"
        self._fd: int | None = None
        if fcntl is None:
            return
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:  # e.g. a read-only or full directory: no turns, still correct
            log.warning("no writer turns for %s: %s", database_path, exc)

    @contextlib.contextmanager
    def waiting(self) -> Iterator[Callable[[], None]]:
        """Hold this process's place in line; the body waits for (and takes) the write lock.

        The body calls the yielded ``release`` once it holds the write lock, so that the next
        process can queue; the turn is released on exit in any case.
        """
        fd = self._fd
        if fd is None or fcntl is None:
            yield lambda: None
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        held = True

        def release() -> None:
            nonlocal held
            if held:
                held = False
                fcntl.flock(fd, fcntl.LOCK_UN)

        try:
            yield release
        finally:
            release()

    def close(self) -> None:
        """Close the side file (its lock, if held, goes with it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


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

    Between processes (the API, training workers, the CLI), :class:`WriterTurns` makes them take
    turns at the write lock, so a busy process cannot starve the others.
    """

    def __init__(self, engine: Engine, max_group: int = 128) -> None:
        self.engine = engine
        self.max_group = max_group
        database = engine.url.database
        self.turns = WriterTurns(database) if database and database != ":memory:" else None
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
                with self._turn() as got_lock, self.engine.begin() as conn:  # BEGIN IMMEDIATE
                    got_lock()
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

    def _turn(self) -> contextlib.AbstractContextManager[Callable[[], None]]:
        if self.turns is None:
            return contextlib.nullcontext(lambda: None)
        return self.turns.waiting()

    def close(self) -> None:
        """Dispose the engine and close the turns file."""
        self.engine.dispose()
        if self.turns is not None:
            self.turns.close()

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
    cfg.set_main_option("script_location", str(Path(__file__).parent.parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))  # configparser
    command.upgrade(cfg, "head")
