"""samples.boxes: an object-detection image's boxes (JSON list; NULL for other task kinds).

Each box is ``{"label", "x_min", "y_min", "x_max", "y_max"}``, normalised to 0..1 of the
image; ``[]`` is a detection image without boxes. Existing samples are not detection samples
and keep NULL.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add samples.boxes (NULL for every existing sample)."""
    with op.batch_alter_table("samples") as batch:
        batch.add_column(sa.Column("boxes", sa.JSON, nullable=True))


def downgrade() -> None:
    """Drop samples.boxes."""
    with op.batch_alter_table("samples") as batch:
        batch.drop_column("boxes")
