"""The "Share how we won" button in a win's thread."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.deps import Dependencies
from bot.ids import Action
from bot.render import render
from bot.services import wins


def register(app: App, deps: Dependencies) -> None:
    """Register the win post's buttons."""

    @app.action(Action.WIN_STORY.value)
    def story_clicked(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        with deps.database.read_session() as session:
            deal = wins.may_tell_story(
                session, deps.alignment, str(action.get("value") or ""), slack_id=body["user"]["id"]
            )
            modal = render("win_story_modal", deal={"id": deal.deal_id, "name": deal.name})
        client.views_open(trigger_id=body["trigger_id"], view=modal)
