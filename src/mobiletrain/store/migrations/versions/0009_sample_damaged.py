"""samples.damaged: the sample's stored bytes were found missing or damaged.

``mobiletrain fsck --repair`` sets it; training skips such samples and reports list them.
Uploading the same bytes again clears it.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add samples.damaged (false for every existing sample) and its index."""
    with op.batch_alter_table("samples") as batch:
        batch.add_column(
            sa.Column("damaged", sa.Boolean, nullable=False, server_default=sa.false())
        )
        # Every upload asks for the project's damaged samples: almost none, found by the index.
        batch.create_index("ix_samples_damaged", ["damaged", "project_id"])


def downgrade() -> None:
    """Drop samples.damaged."""
    with op.batch_alter_table("samples") as batch:
        batch.drop_index("ix_samples_damaged")
        batch.drop_column("damaged")
