"""Only the installed workspace: a signed request about another workspace is refused, politely.

The signing secret is the app's, not the workspace's: once an app is distributed (or its
secret is reused), Slack signs requests from every workspace that has it. alignbot serves one,
the one its bot token belongs to (``auth.test``), and does nothing for the others.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.deps import Dependencies

log = logging.getLogger("alignbot.slack")

REFUSAL = (
    ":no_entry: alignbot serves the workspace it is installed in, and this request came from another one, "
    "so nothing was done. Ask the admin of your own workspace to install it there."
)


class InstalledTeam:
    """The team ID of the bot token, learnt once: from Bolt's ``auth.test``, else by asking."""

    def __init__(self) -> None:
        self.team_id: str | None = None

    def of(self, context: BoltContext, client: WebClient) -> str | None:
        """The installed team, or None when it cannot be known (the token no longer works)."""
        if self.team_id is None:
            result = context.authorize_result
            # Bolt's authorization fills bot_id from auth.test; for tokens_revoked / app_uninstalled it
            # skips auth.test and copies the request's own team, which proves nothing.
            if result is not None and result.bot_id and result.team_id:
                self.team_id = result.team_id
            else:
                try:
                    self.team_id = client.auth_test().get("team_id")
                except SlackApiError:
                    return None
        return self.team_id


def register(app: App, deps: Dependencies) -> InstalledTeam:
    """Install the middleware; returns the holder of the installed team (the uninstall listeners use it)."""
    installed = InstalledTeam()

    @app.middleware
    def only_the_installed_workspace(
        context: BoltContext, body: dict[str, Any], client: WebClient, next: Callable[[], None]
    ) -> BoltResponse | None:
        team = context.team_id  # Bolt reads the installed side of a Slack Connect request
        home = installed.of(context, client)
        if team is None or home is None or team == home:
            next()
            return None
        log.warning(
            "refused a signed request from team %s (installed: %s): %s",
            team,
            home,
            body.get("command") or body.get("type"),
        )
        if body.get("command") or body.get("type") in {"block_actions", "view_submission", "shortcut"}:
            answer = {"response_type": "ephemeral", "replace_original": False, "text": REFUSAL}
            return BoltResponse(status=200, body=json.dumps(answer), headers={"content-type": "application/json"})
        return BoltResponse(status=200, body="")  # an event: acknowledged, and ignored

    return installed
