"""Submission of "How we won"."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.deps import Dependencies
from bot.ids import Block, View
from bot.services import wins
from handlers.views.feedback import field_value


def register(app: App, deps: Dependencies) -> None:
    """Register the win story form."""

    @app.view(View.WIN_STORY.value)
    def story_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        with deps.database.session() as session:
            wins.record_story(
                session,
                deps.alignment,
                str(view.get("private_metadata") or ""),
                by=body["user"]["id"],
                text=field_value(view, Block.STORY) or "",
                now=deps.clock(),
            )
        ack()
