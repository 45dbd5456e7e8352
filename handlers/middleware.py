"""Cross-cutting concerns of every Slack request."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext

from bot.app import Dependencies

log = logging.getLogger("alignbot.slack")


def describe(body: dict[str, Any]) -> str:
    """A short name of what a request is: ``/feedback``, ``block_actions:feedback_acted_on``..."""
    if "command" in body:
        return str(body["command"])
    kind = str(body.get("type", "?"))
    if kind == "block_actions":
        actions = body.get("actions") or [{}]
        return f"{kind}:{actions[0].get('action_id', '?')}"
    if kind in {"view_submission", "view_closed"}:
        return f"{kind}:{(body.get('view') or {}).get('callback_id', '?')}"
    if kind == "event_callback":
        return f"event:{(body.get('event') or {}).get('type', '?')}"
    return kind


def register(app: App, deps: Dependencies) -> None:
    """One log line per request, with a request id the error messages quote."""

    @app.middleware
    def request_log(context: BoltContext, body: dict[str, Any], next: Callable[[], None]) -> None:
        request_id = secrets.token_hex(4)
        context["request_id"] = request_id
        log.info(
            "slack request %s %s user=%s team=%s",
            request_id,
            describe(body),
            context.user_id,
            context.team_id,
        )
        next()
