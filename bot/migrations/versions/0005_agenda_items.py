"""Agenda items of the joint meetings (``/agenda add``).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23 09:10:00
"""

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "agenda_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting", sa.String(length=100), nullable=False),
        sa.Column("occurrence_at", UtcDateTime(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author_slack_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("covered_at", UtcDateTime(), nullable=True),
        sa.Column("covered_by", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_agenda_items_meeting", "agenda_items", ["meeting", "occurrence_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_agenda_items_meeting", table_name="agenda_items")
    op.drop_table("agenda_items")
