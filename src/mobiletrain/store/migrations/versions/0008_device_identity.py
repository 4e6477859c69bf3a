"""Who uploaded each sample, and which token registered each federated device.

``samples.uploaded_by`` / ``upload_sessions.uploaded_by`` hold the id of the token that sent
the bytes, so a device token can be limited to the samples it uploaded itself.
``federated_devices.token_id`` binds a device id to the token that registered it (a device
names only its own registrations) and ``declared_samples`` is the local dataset size the device
declared at registration (an update may not claim more).

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the uploader and owner columns (existing rows: unknown uploader, no owner)."""
    with op.batch_alter_table("samples") as batch:
        batch.add_column(sa.Column("uploaded_by", sa.String(36), nullable=True))
        batch.create_index("ix_samples_uploaded_by", ["project_id", "uploaded_by"])
    with op.batch_alter_table("upload_sessions") as batch:
        batch.add_column(sa.Column("uploaded_by", sa.String(36), nullable=True))
    with op.batch_alter_table("federated_devices") as batch:
        batch.add_column(sa.Column("token_id", sa.String(36), nullable=False, server_default=""))
        batch.add_column(sa.Column("declared_samples", sa.Integer, nullable=True))
        batch.create_index("ix_federated_devices_token", ["session_id", "token_id"])


def downgrade() -> None:
    """Drop the columns again."""
    with op.batch_alter_table("federated_devices") as batch:
        batch.drop_index("ix_federated_devices_token")
        batch.drop_column("declared_samples")
        batch.drop_column("token_id")
    with op.batch_alter_table("upload_sessions") as batch:
        batch.drop_column("uploaded_by")
    with op.batch_alter_table("samples") as batch:
        batch.drop_index("ix_samples_uploaded_by")
        batch.drop_column("uploaded_by")
