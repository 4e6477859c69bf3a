"""The release gate: a fixed evaluation set, release policies, version status and history.

Existing projects keep the version apps get today: where none was promoted, the newest
version becomes the promoted one (the gate only decides for versions trained from now on).

Revision ID: 0007
Revises: 0009
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the columns and the release history table; pin what apps get today."""
    with op.batch_alter_table("projects") as batch:
        batch.add_column(sa.Column("release_policy", sa.JSON, nullable=True))
        batch.add_column(
            sa.Column("release_pinned", sa.Boolean, nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("rollout", sa.JSON, nullable=True))
    with op.batch_alter_table("samples") as batch:
        batch.add_column(sa.Column("in_eval_set", sa.Boolean, nullable=True))
    with op.batch_alter_table("model_versions") as batch:
        batch.add_column(
            sa.Column("status", sa.String(16), nullable=False, server_default="released")
        )
        batch.add_column(sa.Column("decision", sa.JSON, nullable=True))
        batch.add_column(sa.Column("evaluation", sa.JSON, nullable=True))
        batch.add_column(sa.Column("warnings", sa.JSON, nullable=True))
    op.create_table(
        "model_releases",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=True),
        sa.Column("previous_version", sa.Integer, nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("job_id", sa.String(36), nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_model_releases_project", "model_releases", ["project_id", "id"])
    # Before the gate, "no promoted version" meant "the newest": make that explicit.
    op.execute(
        "UPDATE projects SET promoted_version = (SELECT MAX(version) FROM model_versions "
        "WHERE model_versions.project_id = projects.id) WHERE promoted_version IS NULL"
    )


def downgrade() -> None:
    """Drop the release gate's table and columns."""
    op.drop_index("ix_model_releases_project", table_name="model_releases")
    op.drop_table("model_releases")
    with op.batch_alter_table("model_versions") as batch:
        batch.drop_column("warnings")
        batch.drop_column("evaluation")
        batch.drop_column("decision")
        batch.drop_column("status")
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("in_eval_set")
    with op.batch_alter_table("projects") as batch:
        batch.drop_column("rollout")
        batch.drop_column("release_pinned")
        batch.drop_column("release_policy")
