"""Submission of the Recycle form."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.deps import Dependencies
from bot.ids import Block, View
from bot.services import pipeline
from handlers.views.feedback import field_value


def register(app: App, deps: Dependencies) -> None:
    """Register the Recycle form."""
    alignment = deps.alignment

    @app.view(View.SLA_RECYCLE.value)
    def recycle_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = body["user"]["id"]
        person = alignment.person_by_slack_id(user)
        with deps.database.session() as session:
            pipeline.recycle(
                session,
                alignment,
                int(view.get("private_metadata") or 0),
                by=user,
                by_email=person.email if person else None,
                reason=field_value(view, Block.REASON),
                note=field_value(view, Block.NOTE),
                now=deps.clock(),
            )
        ack()
