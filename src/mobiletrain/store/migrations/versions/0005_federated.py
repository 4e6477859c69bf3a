"""Federated learning: sessions, their devices, rounds and device updates.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the federated_* tables."""
    op.create_table(
        "federated_sessions",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", sa.String(36), nullable=False, unique=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("labels", sa.JSON, nullable=False),
        sa.Column("current_round", sa.Integer, nullable=False),
        sa.Column("model_version", sa.Integer, nullable=True),
        sa.Column("weights_sha256", sa.String(64), nullable=False),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("bundle", sa.JSON, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text, nullable=False),
    )
    op.create_index("ix_federated_sessions_project", "federated_sessions", ["project_id"])
    op.create_index("ix_federated_sessions_state", "federated_sessions", ["state"])
    op.create_table(
        "federated_devices",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("info", sa.JSON, nullable=False),
        sa.UniqueConstraint("session_id", "device_id", name="uq_federated_devices"),
    )
    op.create_table(
        "federated_rounds",
        sa.Column("session_id", sa.String(36), primary_key=True),
        sa.Column("number", sa.Integer, primary_key=True),
        sa.Column("phase", sa.String(16), nullable=False),
        sa.Column("selected", sa.JSON, nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("result", sa.JSON, nullable=False),
    )
    op.create_table(
        "federated_updates",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(36), nullable=False),
        sa.Column("round", sa.Integer, nullable=False),
        sa.Column("device_id", sa.String(36), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("num_samples", sa.Integer, nullable=False),
        sa.Column("metrics", sa.JSON, nullable=False),
        sa.Column("payload", sa.String(256), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_federated_updates_round", "federated_updates", ["session_id", "round"])


def downgrade() -> None:
    """Drop the federated_* tables."""
    op.drop_index("ix_federated_updates_round", "federated_updates")
    op.drop_table("federated_updates")
    op.drop_table("federated_rounds")
    op.drop_table("federated_devices")
    op.drop_index("ix_federated_sessions_state", "federated_sessions")
    op.drop_index("ix_federated_sessions_project", "federated_sessions")
    op.drop_table("federated_sessions")
