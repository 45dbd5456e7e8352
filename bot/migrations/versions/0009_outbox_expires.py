"""Messages that are pointless after a moment: a meeting reminder once the meeting has started.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-23 10:00:00
"""

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("expires_at", UtcDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("expires_at")
