"""Submissions of the feedback form and of the "Acted on" note."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.deps import Dependencies
from bot.ids import Block, Field, View
from bot.render import render
from bot.services import feedback


def field_value(view: dict[str, Any], block: Block) -> str | None:
    """The submitted value of an input block: text, or the selected option's value."""
    element = ((view.get("state") or {}).get("values") or {}).get(block.value, {}).get(Field.VALUE.value) or {}
    if element.get("selected_option"):
        return str(element["selected_option"].get("value"))
    value = element.get("value")
    return str(value) if value is not None else None


def register(app: App, deps: Dependencies) -> None:
    """Register the feedback views."""
    alignment = deps.alignment

    @app.view(View.FEEDBACK_NEW.value)
    def feedback_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        draft, errors = feedback.validate_modal(
            alignment,
            category=field_value(view, Block.CATEGORY),
            text=field_value(view, Block.TEXT),
            account=field_value(view, Block.ACCOUNT),
            strength=field_value(view, Block.STRENGTH),
        )
        if draft is None:
            ack(response_action="errors", errors=errors)
            return
        with deps.database.session() as session:
            item = feedback.capture(
                session,
                alignment,
                draft,
                rep=body["user"]["id"],
                channel=view.get("private_metadata") or None,
                team_id=(body.get("team") or {}).get("id"),
                source="modal",
                now=deps.clock(),
            )
            item_view = feedback.item_view(item)
        thanks = render("feedback_thanks_modal", item=item_view, channel=alignment.channels.voice_of_customer)
        ack(response_action="update", view=thanks)

    @app.view(View.FEEDBACK_ACTED_ON.value)
    def acted_on_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        item_id = int(view.get("private_metadata") or 0)
        with deps.database.session() as session:
            outcome = feedback.mark_acted_on(
                session,
                alignment,
                item_id,
                by=body["user"]["id"],
                note=field_value(view, Block.NOTE) or "",
                now=deps.clock(),
            )
            acted_by = outcome.item.acted_on_by
        if outcome.first:
            ack()
            return
        ack(response_action="update", view=render("feedback_already_acted_modal", acted_by=acted_by))
