"""Alembic environment: runs migrations on the URL the store passes in."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from mobiletrain.store.schema import metadata
from mobiletrain.store.sql import create_engine

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    """Run migrations with a live connection (the only mode we use)."""
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Replicas starting at once: one migrates, the others wait here, then find
                # the schema at head. Released with the transaction.
                connection.execute(sa.text("SELECT pg_advisory_xact_lock(7262847)"))
            context.run_migrations()
    engine.dispose()


run_migrations_online()
