"""The agreed vocabulary as the clock last saw it, so a changed definition or SLA is announced once.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 09:10:00
"""

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "vocabulary_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("recorded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("vocabulary_snapshots")
