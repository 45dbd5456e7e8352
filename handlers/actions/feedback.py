"""The "Acted on" button of a feedback post."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.deps import Dependencies
from bot.ids import Action
from bot.render import mention, render
from bot.services import feedback


def register(app: App, deps: Dependencies) -> None:
    """Register the feedback post's buttons."""

    @app.action(Action.FEEDBACK_ACTED_ON.value)
    def acted_on_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        item_id = _item_id(action.get("value"))
        with deps.database.session() as session:
            item = session.get(feedback.FeedbackItem, item_id) if item_id else None
            view = feedback.item_view(item) if item else None
        if view is None:
            raise feedback.FeedbackError("That feedback no longer exists.")
        if view["acted_on_by"]:
            respond(
                text=f"Already acted on by {mention(view['acted_on_by'])}; the rep has been told.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        client.views_open(trigger_id=body["trigger_id"], view=render("feedback_acted_modal", item=view))


def _item_id(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None
