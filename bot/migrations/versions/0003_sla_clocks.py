"""SLA clocks of the lead hand-off, with the index the clock process ticks through.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 04:37:29.285512
"""

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sla_clocks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.String(length=255), nullable=False),
        sa.Column("sla_name", sa.String(length=100), nullable=False),
        sa.Column("sla_version", sa.String(length=40), nullable=False),
        sa.Column("stage", sa.String(length=40), nullable=False),
        sa.Column("owner_email", sa.String(length=320), nullable=False),
        sa.Column("started_at", UtcDateTime(), nullable=False),
        sa.Column("warn_at", UtcDateTime(), nullable=False),
        sa.Column("due_at", UtcDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("stopped_at", UtcDateTime(), nullable=True),
        sa.Column("stopped_by", sa.String(length=64), nullable=True),
        sa.Column("reassignments", sa.JSON(), nullable=False),
        sa.Column("next_check_at", UtcDateTime(), nullable=True),
        sa.Column("warned_at", UtcDateTime(), nullable=True),
        sa.Column("escalated_at", UtcDateTime(), nullable=True),
        sa.Column("corrected_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lead_id", "sla_name", "started_at", name="uq_sla_clocks_lead_sla_start"),
    )
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.create_index(
            "ix_sla_clocks_next_check",
            ["next_check_at"],
            unique=False,
            postgresql_where=sa.text("next_check_at IS NOT NULL"),
            sqlite_where=sa.text("next_check_at IS NOT NULL"),
        )
        batch_op.create_index(batch_op.f("ix_sla_clocks_owner_email"), ["owner_email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sla_clocks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sla_clocks_owner_email"))
        batch_op.drop_index(
            "ix_sla_clocks_next_check",
            postgresql_where=sa.text("next_check_at IS NOT NULL"),
            sqlite_where=sa.text("next_check_at IS NOT NULL"),
        )

    op.drop_table("sla_clocks")
