"""The base of the SQL metadata store: engines, write and read transactions."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

from mobiletrain.core.storage import storage_full_error
from mobiletrain.store.event_signals import attach_event_publisher
from mobiletrain.store.sql.engine import (
    GroupWriter,
    T,
    create_engine,
    create_sqlite_writer_engine,
    migrate,
)


class SqlStoreBase:
    """Engines and transactions shared by the store's parts (see :class:`SqlMetadataStore`)."""

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
            self._writer.close()

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
