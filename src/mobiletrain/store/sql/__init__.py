"""The SQLAlchemy 2 implementation of :class:`MetadataStore` (SQLite by default, PostgreSQL too).

One class, :class:`SqlMetadataStore`, assembled from one part per kind of row so that no module
grows past a few hundred lines: ``projects``, ``samples``, ``jobs`` (and events), ``models`` (and
the release gate), ``uploads`` (and tokens), over ``base`` (engines and transactions) and
``engine`` (engine set-up, the SQLite group writer, migrations). Import from here.
"""

from __future__ import annotations

from mobiletrain.core.ports import MetadataStore
from mobiletrain.store.sql.base import SqlStoreBase
from mobiletrain.store.sql.engine import (
    GroupWriter,
    create_engine,
    create_sqlite_writer_engine,
    migrate,
    utcnow,
)
from mobiletrain.store.sql.jobs import JobRows
from mobiletrain.store.sql.models import ModelRows
from mobiletrain.store.sql.projects import ProjectRows
from mobiletrain.store.sql.samples import SampleRows
from mobiletrain.store.sql.uploads import UploadRows

__all__ = [
    "GroupWriter",
    "SqlMetadataStore",
    "SqlStoreBase",
    "create_engine",
    "create_sqlite_writer_engine",
    "migrate",
    "utcnow",
]


class SqlMetadataStore(ProjectRows, SampleRows, JobRows, ModelRows, UploadRows, MetadataStore):
    """Metadata in any SQLAlchemy database; safe for several processes on one SQLite file."""
