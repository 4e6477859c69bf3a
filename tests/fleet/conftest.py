"""Fixtures of the fleet tests: a migrated database of each kind, a job to write events to."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

POSTGRES_URL = os.environ.get("MOBILETRAIN_TEST_POSTGRES_URL", "")


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose tables live in a fresh schema (dropped afterwards)."""
    if not POSTGRES_URL:
        pytest.skip("needs MOBILETRAIN_TEST_POSTGRES_URL (set by .ci/run)")
    schema = f"fleet_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as c:
        c.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as c:
            c.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A database of each kind: a SQLite file, or a fresh PostgreSQL schema (migrated by the
    first :class:`SqlMetadataStore` opened on it)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'mobiletrain.db'}"
    url: str = request.getfixturevalue("postgres_schema_url")
    return url
