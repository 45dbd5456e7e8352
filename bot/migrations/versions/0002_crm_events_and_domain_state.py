"""CRM events (the audit trail) and the domain state folded from them: leads, touches, deals.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 04:27:11.487024
"""

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=True),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.Column("received_at", UtcDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("source", "event_id", name="uq_crm_events_source_id"),
    )
    with op.batch_alter_table("crm_events", schema=None) as batch_op:
        batch_op.create_index("ix_crm_events_account", ["account_id", "time"], unique=False)
        batch_op.create_index("ix_crm_events_subject", ["subject", "time"], unique=False)

    op.create_table(
        "deals",
        sa.Column("deal_id", sa.String(length=255), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("owner_email", sa.String(length=320), nullable=False),
        sa.Column("sdr_email", sa.String(length=320), nullable=True),
        sa.Column("contacts", sa.JSON(), nullable=False),
        sa.Column("lead_ids", sa.JSON(), nullable=False),
        sa.Column("closed_at", UtcDateTime(), nullable=True),
        sa.Column("lost_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("announced_as", sa.String(length=8), nullable=True),
        sa.Column("post_hash", sa.String(length=64), nullable=True),
        sa.Column("journey_hash", sa.String(length=64), nullable=True),
        sa.Column("digest_key", sa.String(length=64), nullable=True),
        sa.Column("story", sa.Text(), nullable=True),
        sa.Column("story_by", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("deal_id"),
    )
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deals_account_id"), ["account_id"], unique=False)

    op.create_table(
        "leads",
        sa.Column("lead_id", sa.String(length=255), nullable=False),
        sa.Column("owner_email", sa.String(length=320), nullable=True),
        sa.Column("stage", sa.String(length=40), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=True),
        sa.Column("company", sa.String(length=255), nullable=True),
        sa.Column("account_id", sa.String(length=255), nullable=True),
        sa.Column("campaign", sa.String(length=255), nullable=True),
        sa.Column("score", sa.Double(), nullable=True),
        sa.Column("grade", sa.String(length=16), nullable=True),
        sa.Column("handed_off_at", UtcDateTime(), nullable=True),
        sa.Column("contacted_at", UtcDateTime(), nullable=True),
        sa.Column("recycled_at", UtcDateTime(), nullable=True),
        sa.Column("recycle_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("lead_id"),
    )
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_leads_account_id"), ["account_id"], unique=False)

    op.create_table(
        "touches",
        sa.Column("touch_id", sa.String(length=255), nullable=False),
        sa.Column("account_id", sa.String(length=255), nullable=False),
        sa.Column("campaign", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("contact_email", sa.String(length=320), nullable=True),
        sa.Column("marketing_owner_email", sa.String(length=320), nullable=True),
        sa.Column("time", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("touch_id"),
    )
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.create_index("ix_touches_account", ["account_id", "time"], unique=False)
        batch_op.create_index(batch_op.f("ix_touches_contact_email"), ["contact_email"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_touches_contact_email"))
        batch_op.drop_index("ix_touches_account")

    op.drop_table("touches")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_leads_account_id"))

    op.drop_table("leads")
    with op.batch_alter_table("deals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deals_account_id"))

    op.drop_table("deals")
    with op.batch_alter_table("crm_events", schema=None) as batch_op:
        batch_op.drop_index("ix_crm_events_subject")
        batch_op.drop_index("ix_crm_events_account")

    op.drop_table("crm_events")
