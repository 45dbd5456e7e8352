"""Counters for GET /metrics that any process moves, and an index of the running SLA clocks.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 09:00:00
"""

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

RUNNING = "state IN ('open', 'breached')"


def upgrade() -> None:
    op.create_table(
        "metric_counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("labels", sa.String(length=255), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", "labels"),
    )
    op.create_index(
        "ix_sla_clocks_running",
        "sla_clocks",
        ["state", "due_at"],
        postgresql_where=sa.text(RUNNING),
        sqlite_where=sa.text(RUNNING),
    )


def downgrade() -> None:
    op.drop_index("ix_sla_clocks_running", table_name="sla_clocks")
    op.drop_table("metric_counters")
