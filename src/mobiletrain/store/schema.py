"""SQLAlchemy table definitions; the Alembic migrations create exactly these tables."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

projects = sa.Table(
    "projects",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False, unique=True),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("labels_fixed", sa.Boolean, nullable=False),
    sa.Column("input_spec", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("promoted_version", sa.Integer, nullable=True),
)

samples = sa.Table(
    "samples",
    metadata,
    # Integer key gives cheap keyset paging in insertion order.
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("label", sa.String(128), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("media_type", sa.String(32), nullable=False),
    sa.Column("width", sa.Integer, nullable=False),
    sa.Column("height", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("project_id", "client_id", name="uq_samples_client_id"),
    sa.UniqueConstraint("project_id", "sha256", "label", name="uq_samples_content"),
    sa.Index("ix_samples_project_label", "project_id", "label"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("hyperparameters", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("error", sa.Text, nullable=False, default=""),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("model_version", sa.Integer, nullable=True),
    # A running job's worker renews this; past it, a reaper re-queues the job.
    sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Index("ix_jobs_state", "state"),
    sa.Index("ix_jobs_project", "project_id"),
)

job_events = sa.Table(
    "job_events",
    metadata,
    # Global id: its maximum is the cheap "something happened" watermark watchers poll.
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(36), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("job_id", "seq", name="uq_job_events_seq"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=True),
    sa.Column("name", sa.String(128), nullable=False),
    # sha256 of the secret; the secret itself is never stored.
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("manifest", sa.JSON, nullable=False),
    sa.Column("artifacts", sa.JSON, nullable=False),
)
