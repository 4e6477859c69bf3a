"""Per-project sample count and bytes, kept up to date by every insert and delete.

Quotas are checked on every upload batch; summing the samples table each time would cost
O(samples) per request.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add projects.sample_count/sample_bytes and fill them from the samples table."""
    with op.batch_alter_table("projects") as batch:
        batch.add_column(
            sa.Column("sample_count", sa.BigInteger, nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column("sample_bytes", sa.BigInteger, nullable=False, server_default="0")
        )
    op.execute(
        "UPDATE projects SET "
        "sample_count = (SELECT COUNT(*) FROM samples WHERE samples.project_id = projects.id), "
        "sample_bytes = (SELECT COALESCE(SUM(size), 0) FROM samples "
        "WHERE samples.project_id = projects.id)"
    )


def downgrade() -> None:
    """Drop the counters."""
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("sample_bytes")
        batch.drop_column("sample_count")
