"""The outbox, the channels' pacing, and feedback items.

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("key", sa.String(255), nullable=False, unique=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("method", sa.String(64), nullable=False),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("thread_key", sa.String(255)),
        sa.Column("target_key", sa.String(255)),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("not_before", UtcDateTime(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("in_flight", sa.Boolean(), nullable=False),
        sa.Column("first_attempt_at", UtcDateTime()),
        sa.Column("claimed_until", UtcDateTime()),
        sa.Column("claim_token", sa.String(32)),
        sa.Column("delivered_at", UtcDateTime()),
        sa.Column("failed_at", UtcDateTime()),
        sa.Column("conversation", sa.String(32)),
        sa.Column("ts", sa.String(32)),
        sa.Column("last_error", sa.Text()),
    )
    op.create_index(
        "ix_outbox_pending",
        "outbox",
        ["channel", "id"],
        postgresql_where=sa.text("delivered_at IS NULL AND failed_at IS NULL"),
        sqlite_where=sa.text("delivered_at IS NULL AND failed_at IS NULL"),
    )
    op.create_table(
        "channel_pace",
        sa.Column("channel", sa.String(32), primary_key=True),
        sa.Column("next_slot", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("category", sa.String(30), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("account", sa.String(200)),
        sa.Column("competitors", sa.JSON(), nullable=False),
        sa.Column("strength", sa.Integer()),
        sa.Column("rep_slack_id", sa.String(32), nullable=False),
        sa.Column("team_id", sa.String(32)),
        sa.Column("channel_id", sa.String(32)),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("acted_on_at", UtcDateTime()),
        sa.Column("acted_on_by", sa.String(32)),
        sa.Column("acted_on_note", sa.Text()),
    )
    op.create_index("ix_feedback_created_at", "feedback", ["created_at"])


def downgrade() -> None:
    op.drop_table("feedback")
    op.drop_table("channel_pace")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
