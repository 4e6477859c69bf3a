"""Job leases: running jobs carry an expiry that their worker's heartbeats renew.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add jobs.lease_expires_at."""
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop jobs.lease_expires_at."""
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lease_expires_at")
