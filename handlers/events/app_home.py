"""``app_home_opened``: publish the person's Home tab, fresh from the stored state."""

from __future__ import annotations

from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.deps import Dependencies
from bot.render import render
from bot.services import home


def register(app: App, deps: Dependencies) -> None:
    """Register the App Home listener (Bolt acknowledges events itself)."""

    @app.event("app_home_opened")
    def app_home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab", "home") != "home":
            return  # the Messages tab opens with the same event; it has nothing to publish
        user = str(event["user"])
        with deps.database.read_session() as session:
            context = home.build(session, deps.alignment, slack_id=user, now=deps.clock())
        client.views_publish(user_id=user, view=render("app_home", **context))
