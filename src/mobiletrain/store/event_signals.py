"""Push wake-ups for the event hub: "a job event was stored", from whichever process wrote it.

The rows in ``job_events`` stay the source of truth; a signal only tells an API process to look
now instead of at its next poll. A lost signal costs latency, never an event (the hub keeps a
slower fallback poll). Two transports, chosen by the database URL:

* **PostgreSQL** — a trigger (migration 0010) runs ``pg_notify('mobiletrain_events', job_id)``
  for every inserted event; PostgreSQL delivers it at commit to every session that ``LISTEN``\\ s.
  Works across machines and for every writer (worker processes, Ray actors, other replicas)
  without any code on the writing side. :class:`PostgresEventSignal` listens.
* **SQLite** (one machine) — the writing process sends a UNIX datagram to each API process that
  uses the same database file, after the commit (:func:`attach_event_publisher`, hooked onto the
  metadata store's engine in every process). Each listener (:class:`LocalEventSignal`) binds a
  socket in Linux's abstract namespace (no path-length limit, nothing left on disk) and registers
  its name as an empty file in ``<database file>-signals/``; a sender that finds a listener gone
  (connection refused) removes its file. Elsewhere than Linux, SQLite falls back to polling.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import socket
import sys
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine

from mobiletrain.core.events import EventSignal

log = logging.getLogger("mobiletrain.events")

PG_CHANNEL = "mobiletrain_events"
_NAME_PREFIX = "mobiletrain-events-"
_FLAG = "mobiletrain_event_written"


def sqlite_path(database_url: str) -> Path | None:
    """The database file of a SQLite URL (None for other databases and in-memory SQLite)."""
    if not database_url.startswith("sqlite"):
        return None
    path = database_url.split("///", 1)[-1].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path).resolve()


def _signal_dir(db_file: Path) -> Path:
    return db_file.with_name(db_file.name + "-signals")


def _local_supported() -> bool:
    return sys.platform.startswith("linux")  # abstract-namespace UNIX sockets


PUSH_ENV = "MOBILETRAIN_EVENT_PUSH"
"""Set to ``0`` to turn the push off (the hub then polls every 50 ms, as before push existed):
for comparisons (bench/fleet_latency.py) and as an escape hatch."""


def open_event_signal(database_url: str) -> EventSignal | None:
    """The signal for this database, or None when only polling works (or push is off)."""
    if os.environ.get(PUSH_ENV, "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    if database_url.startswith("postgresql"):
        return PostgresEventSignal(database_url)
    db_file = sqlite_path(database_url)
    if db_file is not None and _local_supported():
        return LocalEventSignal(db_file)
    return None


class PostgresEventSignal(EventSignal):
    """``LISTEN mobiletrain_events`` on a dedicated connection; reconnects after errors."""

    def __init__(self, database_url: str) -> None:
        # SQLAlchemy's dialect prefix off: psycopg takes the libpq URL (options= included).
        self._dsn = database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._conn: Any = None

    def start(self, wake: Callable[[], None]) -> None:
        """Listen on a background thread; ``wake()`` per batch of notifications."""
        self._thread = threading.Thread(
            target=self._run, args=(wake,), name="event-listen", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop listening (within about a second)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self, wake: Callable[[], None]) -> None:
        import psycopg

        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {PG_CHANNEL}")
                    wake()  # anything stored while we were not listening
                    while not self._stop.is_set():
                        # Blocks up to 1 s; wakes on each notification. One wake per batch.
                        got = False
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            got = True
                        if got:
                            wake()
            except Exception:  # connection lost: the fallback poll covers the gap
                if not self._stop.is_set():
                    log.warning("event LISTEN connection lost; reconnecting", exc_info=True)
                    self._stop.wait(1.0)


class LocalEventSignal(EventSignal):
    """Receives the datagrams that writers of the same SQLite file send after each event."""

    def __init__(self, db_file: Path) -> None:
        self._dir = _signal_dir(db_file)
        self._name = uuid.uuid4().hex
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, wake: Callable[[], None]) -> None:
        """Bind, register, and receive on a background thread."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(f"\0{_NAME_PREFIX}{self._name}")
        self._dir.mkdir(exist_ok=True)
        (self._dir / self._name).touch()
        self._sock = sock
        self._thread = threading.Thread(
            target=self._run, args=(sock, wake), name="event-signal", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Unregister and stop receiving."""
        self._stop.set()
        with contextlib.suppress(OSError):
            (self._dir / self._name).unlink()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _run(self, sock: socket.socket, wake: Callable[[], None]) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([sock], [], [], 0.5)
            if not ready:
                continue
            # Drain whatever queued up: one wake for a burst of events.
            with contextlib.suppress(BlockingIOError, OSError):
                while True:
                    sock.recv(512, socket.MSG_DONTWAIT)
            wake()


class _LocalPublisher:
    """Sends one datagram to every registered listener of a SQLite file."""

    def __init__(self, db_file: Path) -> None:
        self._dir = _signal_dir(db_file)
        self._sock: socket.socket | None = (
            None  # made at the first event: most stores never write one
        )
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._seen_mtime = -1

    def _listeners(self) -> list[str]:
        try:
            mtime = os.stat(self._dir).st_mtime_ns
        except FileNotFoundError:
            return []
        if mtime != self._seen_mtime:  # a listener came or went: list again
            self._names = [e.name for e in os.scandir(self._dir) if e.is_file()]
            self._seen_mtime = mtime
        return self._names

    def publish(self, payload: bytes) -> None:
        with self._lock:
            names = self._listeners()
            if names and self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._sock.setblocking(False)
            for name in names:
                try:
                    self._sock.sendto(payload, f"\0{_NAME_PREFIX}{name}")  # type: ignore[union-attr]
                except ConnectionRefusedError:  # its process is gone (killed): unregister
                    with contextlib.suppress(OSError):
                        (self._dir / name).unlink()
                except OSError:  # queue full (that listener wakes anyway) or other: skip
                    pass

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None


def attach_event_publisher(engine: Engine, database_url: str) -> None:
    """Make every committed job-event insert through ``engine`` signal the local listeners.

    A no-op except for file-based SQLite on Linux (PostgreSQL's trigger needs no code here).
    The datagram goes out when the connection returns to the pool, i.e. after the commit, so
    a woken listener reads the new row.
    """
    db_file = sqlite_path(database_url)
    if db_file is None or not _local_supported():
        return
    publisher = _LocalPublisher(db_file)

    @event.listens_for(engine, "after_cursor_execute")
    def _written(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("INSERT INTO job_events"):
            conn.info[_FLAG] = "written"

    @event.listens_for(engine, "commit")
    def _committing(conn: Any) -> None:
        if conn.info.get(_FLAG) == "written":
            conn.info[_FLAG] = "committed"

    @event.listens_for(engine, "rollback")
    def _rolled_back(conn: Any) -> None:
        conn.info.pop(_FLAG, None)

    @event.listens_for(engine, "engine_disposed")
    def _disposed(_engine: Any) -> None:
        publisher.close()  # the store was closed: no socket left open

    @event.listens_for(engine.pool, "checkin")
    def _returned(dbapi_conn: Any, record: Any) -> None:
        if record is not None and record.info.pop(_FLAG, None) == "committed":
            publisher.publish(b"e")
