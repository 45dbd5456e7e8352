"""``app_uninstalled`` and ``tokens_revoked``: stop sending, keep the data, and say so in the logs.

The outbox relays of every process hold their messages while access is revoked (see
bot.slack.access); they go out once a working token is seen again, after a reinstall.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.deps import Dependencies
from bot.slack import access as slack_access

log = logging.getLogger("alignbot.slack")


def register(app: App, deps: Dependencies) -> None:
    """Register the two listeners (Bolt acknowledges events itself, and skips auth.test for them)."""

    def revoke(reason: str, team: str | None) -> None:
        with deps.database.session() as session:
            changed = slack_access.revoke(session, reason, now=deps.clock())
        if changed:
            log.error(
                "%s (team %s): alignbot stops sending to Slack; every record is kept and new messages wait "
                "in the outbox. Reinstall the app, set the new SLACK_BOT_TOKEN and restart to resume",
                reason,
                team,
            )

    @app.event("app_uninstalled")
    def app_uninstalled(body: dict[str, Any]) -> None:
        revoke("the app was uninstalled from the workspace", body.get("team_id"))

    @app.event("tokens_revoked")
    def tokens_revoked(event: dict[str, Any], body: dict[str, Any]) -> None:
        tokens = event.get("tokens") or {}
        if not tokens.get("bot"):
            # alignbot holds only its bot token; a user revoking their own user token changes nothing here
            log.info("user tokens revoked (%s); alignbot uses none", ", ".join(map(str, tokens.get("oauth") or [])))
            return
        revoke("the bot token was revoked", body.get("team_id"))
