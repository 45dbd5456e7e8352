"""Cross-cutting concerns of every Slack request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext, BoltRequest

from bot import logs
from bot.deps import Dependencies

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
    def request_log(context: BoltContext, request: BoltRequest, body: dict[str, Any], next: Callable[[], None]) -> None:
        # Over HTTP the WSGI app has put its request id in the header and opened its log scope.
        given = request.headers.get("x-request-id") or []
        request_id = given[0] if given else None
        if request_id is None or request_id != logs.current_request_id():
            # Socket Mode: no scope around us, and its threads are reused, so start afresh.
            request_id = request_id or logs.new_request_id()
            logs.begin(request_id=request_id)
        context["request_id"] = request_id
        logs.bind(slack=describe(body), team=context.team_id, user=context.user_id)
        log.info("slack request %s", describe(body))
        next()
