"""When each federated device last asked for work, so any replica's coordinator can select it.

``federated_devices.last_seen_at`` is written by whichever API replica a device reaches (at
registration and, at most every few seconds, while it polls); the replica coordinating the
session selects the devices seen within the session's ``availability_seconds``.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the column (existing devices: never seen, so not selected until they poll)."""
    with op.batch_alter_table("federated_devices") as batch:
        batch.add_column(sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    """Drop the column again."""
    with op.batch_alter_table("federated_devices") as batch:
        batch.drop_column("last_seen_at")
