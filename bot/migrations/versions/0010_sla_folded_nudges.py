"""The SLA nudges folded into a day's digest DM get a table of their own.

They were kept as ``_folded_keys``/``_folded_texts`` in the digest's outbox payload, which the
relay had to strip before sending. The upgrade moves them into ``sla_folded_nudges`` and leaves
the payloads as Slack receives them; the downgrade puts them back.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 18:00:00
"""

from typing import Any

import sqlalchemy as sa
from alembic import op

from bot.models import UtcDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_outbox = sa.table(
    "outbox",
    sa.column("id", sa.Integer()),
    sa.column("key", sa.String()),
    sa.column("kind", sa.String()),
    sa.column("payload", sa.JSON()),
    sa.column("created_at", UtcDateTime()),
)
_folded = sa.table(
    "sla_folded_nudges",
    sa.column("id", sa.Integer()),
    sa.column("nudge_key", sa.String()),
    sa.column("digest_key", sa.String()),
    sa.column("text", sa.Text()),
    sa.column("folded_at", UtcDateTime()),
)


def upgrade() -> None:
    op.create_table(
        "sla_folded_nudges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nudge_key", sa.String(255), nullable=False),
        sa.Column("digest_key", sa.String(255), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("folded_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("nudge_key"),
    )
    op.create_index("ix_sla_folded_nudges_digest_key", "sla_folded_nudges", ["digest_key"])
    connection = op.get_bind()
    digests = connection.execute(
        sa.select(_outbox.c.id, _outbox.c.key, _outbox.c.payload, _outbox.c.created_at)
        .where(_outbox.c.kind == "sla.folded")
        .order_by(_outbox.c.id)
    ).all()
    seen: set[str] = set()
    for row_id, key, payload, created_at in digests:
        payload = dict(payload or {})
        keys = payload.pop("_folded_keys", None) or []
        texts = payload.pop("_folded_texts", None) or []
        rows: list[dict[str, Any]] = []
        for nudge_key, text in zip(keys, texts, strict=False):
            if nudge_key not in seen:
                seen.add(nudge_key)
                rows.append({"nudge_key": nudge_key, "digest_key": key, "text": text, "folded_at": created_at})
        if rows:
            connection.execute(sa.insert(_folded), rows)
        connection.execute(sa.update(_outbox).where(_outbox.c.id == row_id).values(payload=payload))


def downgrade() -> None:
    connection = op.get_bind()
    folded: dict[str, list[tuple[str, str]]] = {}
    for nudge_key, digest_key, text in connection.execute(
        sa.select(_folded.c.nudge_key, _folded.c.digest_key, _folded.c.text).order_by(_folded.c.id)
    ):
        folded.setdefault(digest_key, []).append((nudge_key, text))
    for row_id, key, payload in connection.execute(
        sa.select(_outbox.c.id, _outbox.c.key, _outbox.c.payload).where(_outbox.c.kind == "sla.folded")
    ).all():
        nudges = folded.get(key, [])
        restored = dict(payload or {}) | {
            "_folded_keys": [nudge_key for nudge_key, _ in nudges],
            "_folded_texts": [text for _, text in nudges],
        }
        connection.execute(sa.update(_outbox).where(_outbox.c.id == row_id).values(payload=restored))
    op.drop_index("ix_sla_folded_nudges_digest_key", table_name="sla_folded_nudges")
    op.drop_table("sla_folded_nudges")
