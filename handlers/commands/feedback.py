"""``/feedback``: quick capture, the form, and usage."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from bot.deps import Dependencies
from bot.render import render
from bot.services import feedback

HELP_WORDS = {"help", "?", "-h", "--help"}


def register(app: App, deps: Dependencies) -> None:
    """Register ``/feedback``."""
    alignment = deps.alignment

    @app.command("/feedback")
    def feedback_command(ack: Ack, command: dict[str, Any], client: WebClient) -> None:
        text = (command.get("text") or "").strip()
        if not text:
            view = render(
                "feedback_modal",
                categories=alignment.feedback.categories,
                strengths=feedback.STRENGTHS,
                channel=command.get("channel_id"),
            )
            client.views_open(trigger_id=command["trigger_id"], view=view)
            ack()
            return
        if text.lower() in HELP_WORDS:
            ack(**_usage(deps, None, ""))
            return
        draft = feedback.parse_quick(text, alignment)
        if isinstance(draft, feedback.Unparsed):
            ack(**_usage(deps, draft.reason, draft.text))
            return
        with deps.database.session() as session:
            item = feedback.capture(
                session,
                alignment,
                draft,
                rep=command["user_id"],
                channel=command.get("channel_id"),
                team_id=command.get("team_id"),
                source="command",
                now=deps.clock(),
            )
            view_of_item = feedback.item_view(item)
        confirmation = render("feedback_captured", item=view_of_item, channel=alignment.channels.voice_of_customer)
        ack(**confirmation)


def _usage(deps: Dependencies, problem: str | None, text: str) -> dict[str, Any]:
    return render("feedback_usage", problem=problem, text=text, categories=deps.alignment.feedback.categories)
