"""The migrations build exactly the schema the models describe."""

from __future__ import annotations

import datetime as dt
import json

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bot.db import Database
from bot.models import Base


def test_models_and_migrations_agree(database: Database) -> None:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection)
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_upgrading_twice_is_harmless(database: Database) -> None:
    database.upgrade()
    database.upgrade()


def test_the_folded_nudges_move_out_of_the_digests_payload_and_back(database: Database) -> None:
    """0010: the nudges a digest DM folded, once kept as "_" keys in its payload, get a table of their
    own, and the payload is left as Slack receives it; the downgrade puts them back."""
    from alembic import command
    from sqlalchemy import select, text

    from bot.db import alembic_config, upgrade
    from bot.models import OutboxMessage, SlaFoldedNudge

    config = alembic_config(database.engine)
    command.downgrade(config, "0009")
    at = dt.datetime(2026, 11, 23, 18, 0, tzinfo=dt.UTC)
    with database.engine.begin() as connection:
        connection.execute(
            OutboxMessage.__table__.insert(),
            {
                "key": "sla-folded:U0AVA:2026-11-23",
                "kind": "sla.folded",
                "method": "chat.postMessage",
                "channel": "U0AVA",
                "payload": {
                    "text": "2 flags",
                    "_folded_keys": ["sla:1:yellow", "sla:2:red"],
                    "_folded_texts": ["a", "b"],
                },
                "created_at": at,
                "not_before": at,
                "next_attempt_at": at,
                "attempts": 0,
                "in_flight": False,
            },
        )
    upgrade(database.engine)
    with database.session() as session:
        folded = session.execute(
            select(SlaFoldedNudge.nudge_key, SlaFoldedNudge.digest_key, SlaFoldedNudge.text).order_by(SlaFoldedNudge.id)
        ).all()
        payload = session.scalar(select(OutboxMessage.payload))
    assert [tuple(row) for row in folded] == [
        ("sla:1:yellow", "sla-folded:U0AVA:2026-11-23", "a"),
        ("sla:2:red", "sla-folded:U0AVA:2026-11-23", "b"),
    ]
    assert payload == {"text": "2 flags"}
    command.downgrade(config, "0009")
    with database.engine.connect() as connection:
        restored = connection.execute(text("SELECT payload FROM outbox")).scalar_one()
    if isinstance(restored, str):  # SQLite hands back the JSON text
        restored = json.loads(restored)
    assert restored == {"text": "2 flags", "_folded_keys": ["sla:1:yellow", "sla:2:red"], "_folded_texts": ["a", "b"]}
    upgrade(database.engine)
