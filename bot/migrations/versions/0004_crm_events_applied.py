"""CRM events are applied by the projector after the request has answered: when each was applied.

Events stored before this revision were folded by the request that stored them, so they are
marked applied at their arrival time.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 06:25:00
"""

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("crm_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("applied_at", UtcDateTime(), nullable=True))
        batch_op.add_column(sa.Column("apply_error", sa.Text(), nullable=True))
    op.execute("UPDATE crm_events SET applied_at = received_at")
    op.create_index(
        "ix_crm_events_unapplied",
        "crm_events",
        ["id"],
        unique=False,
        sqlite_where=sa.text("applied_at IS NULL"),
        postgresql_where=sa.text("applied_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_crm_events_unapplied", table_name="crm_events")
    with op.batch_alter_table("crm_events", schema=None) as batch_op:
        batch_op.drop_column("apply_error")
        batch_op.drop_column("applied_at")
