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
    # Kept by every sample insert and delete, so quota checks read one row.
    sa.Column("sample_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("sample_bytes", sa.BigInteger, nullable=False, server_default="0"),
    # The release gate's rules (NULL: defaults) and whether people pinned the current version.
    sa.Column("release_policy", sa.JSON, nullable=True),
    sa.Column("release_pinned", sa.Boolean, nullable=False, server_default=sa.false()),
    # A staged rollout of the current version in progress (core.release.Rollout); NULL: none.
    sa.Column("rollout", sa.JSON, nullable=True),
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
    # Id of the token that uploaded the sample (NULL: before migration 0008, or in-process).
    sa.Column("uploaded_by", sa.String(36), nullable=True),
    # In the project's fixed evaluation set (never trains); NULL until assigned (core.release).
    sa.Column("in_eval_set", sa.Boolean, nullable=True),
    # Bytes found missing or damaged (fsck --repair); cleared by uploading them again.
    sa.Column("damaged", sa.Boolean, nullable=False, server_default=sa.false()),
    # Object detection: the image's boxes as a JSON list (NULL: not a detection sample).
    sa.Column("boxes", sa.JSON(none_as_null=True), nullable=True),
    sa.UniqueConstraint("project_id", "client_id", name="uq_samples_client_id"),
    sa.UniqueConstraint("project_id", "sha256", "label", name="uq_samples_content"),
    sa.Index("ix_samples_project_label", "project_id", "label"),
    sa.Index("ix_samples_uploaded_by", "project_id", "uploaded_by"),
    sa.Index("ix_samples_damaged", "damaged", "project_id"),
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

upload_sessions = sa.Table(
    "upload_sessions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("client_id", sa.String(128), nullable=False),
    sa.Column("label", sa.String(128), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    # Bytes received so far, and the blob keys of the chunks that hold them, in order.
    sa.Column("offset", sa.BigInteger, nullable=False),
    sa.Column("chunks", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("uploaded_by", sa.String(36), nullable=True),
    sa.UniqueConstraint("project_id", "client_id", name="uq_upload_sessions_client_id"),
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
    # "candidate" until first made current, then "released"; the gate's decision, the
    # evaluation-set scores and the warnings (core.release).
    sa.Column("status", sa.String(16), nullable=False, server_default="released"),
    sa.Column("decision", sa.JSON, nullable=True),
    sa.Column("evaluation", sa.JSON, nullable=True),
    sa.Column("warnings", sa.JSON, nullable=True),
)

# Every change of a project's current version: which version was current when, and why.
model_releases = sa.Table(
    "model_releases",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
    sa.Column("version", sa.Integer, nullable=True),
    sa.Column("previous_version", sa.Integer, nullable=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("job_id", sa.String(36), nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_model_releases_project", "project_id", "id"),
)

# -- federated learning (store/federated.py) ---------------------------------------------------

federated_sessions = sa.Table(
    "federated_sessions",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("id", sa.String(36), nullable=False, unique=True),
    sa.Column("project_id", sa.String(36), sa.ForeignKey("projects.id"), nullable=False),
    # The job whose event stream reports the session's progress.
    sa.Column("job_id", sa.String(36), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("labels", sa.JSON, nullable=False),
    sa.Column("current_round", sa.Integer, nullable=False, default=0),
    sa.Column("model_version", sa.Integer, nullable=True),
    sa.Column("weights_sha256", sa.String(64), nullable=False, default=""),
    sa.Column("files", sa.JSON, nullable=False),
    sa.Column("bundle", sa.JSON, nullable=False),
    sa.Column("metrics", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("error", sa.Text, nullable=False, default=""),
    sa.Index("ix_federated_sessions_project", "project_id"),
    sa.Index("ix_federated_sessions_state", "state"),
)

federated_devices = sa.Table(
    "federated_devices",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("session_id", sa.String(36), nullable=False),
    sa.Column("device_id", sa.String(36), nullable=False),
    sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("info", sa.JSON, nullable=False),
    # The token that registered the device: the only one that may act as it.
    sa.Column("token_id", sa.String(36), nullable=False, server_default=""),
    # The local dataset size the device declared at registration (an update may not claim more).
    sa.Column("declared_samples", sa.Integer, nullable=True),
    # When the device last asked for work (any replica writes it; the coordinator selects by it).
    sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
    sa.UniqueConstraint("session_id", "device_id", name="uq_federated_devices"),
    sa.Index("ix_federated_devices_token", "session_id", "token_id"),
)

federated_rounds = sa.Table(
    "federated_rounds",
    metadata,
    sa.Column("session_id", sa.String(36), primary_key=True),
    sa.Column("number", sa.Integer, primary_key=True),
    sa.Column("phase", sa.String(16), nullable=False),
    sa.Column("selected", sa.JSON, nullable=False),
    sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("deadline_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("result", sa.JSON, nullable=False),
)

federated_updates = sa.Table(
    "federated_updates",
    metadata,
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
    sa.Index("ix_federated_updates_round", "session_id", "round"),
)

# Leader leases (store/leases.py, migration 0010): one row per lease name; the token is the
# fencing token, expires_at epoch seconds on the database's clock.
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("holder", sa.String(200), nullable=True),
    sa.Column("token", sa.BigInteger, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
)
