"""Leader leases (one replica runs each singleton role) and event notifications on PostgreSQL.

``leases``: one row per named role; ``token`` grows with every new holder (fencing).

On PostgreSQL every stored job event also sends ``NOTIFY mobiletrain_events, '<job id>'`` from a
trigger, at commit: the API replicas ``LISTEN`` and wake their watchers at once, whichever
process wrote the event (a worker, a Ray actor, another replica). The rows stay the source of
truth; a lost notification is covered by each replica's slower fallback poll.

Revision ID: 0010
Revises: 0007
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the leases table; on PostgreSQL the job-event NOTIFY trigger."""
    op.create_table(
        "leases",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("holder", sa.String(200), nullable=True),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE FUNCTION mobiletrain_notify_event() RETURNS trigger AS $$
            BEGIN
                PERFORM pg_notify('mobiletrain_events', NEW.job_id);
                RETURN NULL;
            END;
            $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            """
            CREATE TRIGGER job_events_notify AFTER INSERT ON job_events
            FOR EACH ROW EXECUTE FUNCTION mobiletrain_notify_event()
            """
        )


def downgrade() -> None:
    """Drop the trigger and the leases table."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS job_events_notify ON job_events")
        op.execute("DROP FUNCTION IF EXISTS mobiletrain_notify_event()")
    op.drop_table("leases")
