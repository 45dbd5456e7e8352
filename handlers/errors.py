"""One error handler: domain errors become a clear ephemeral answer; faults are logged with an id."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from slack_bolt import App, BoltContext, BoltResponse, Respond

from bot import logs
from bot.deps import Dependencies
from bot.errors import UserFacingError

log = logging.getLogger("alignbot.errors")


def register(app: App, deps: Dependencies) -> None:
    """Install the app's error handler."""

    @app.error
    def on_error(error: Exception, body: dict[str, Any], respond: Respond, context: BoltContext) -> BoltResponse:
        if isinstance(error, UserFacingError):
            message = str(error)
        else:
            # The request's id: the user quotes it, and it finds this line and the request's others.
            error_id = context.get("request_id") or logs.current_request_id() or logs.new_request_id()
            log.error("error %s while handling %s", error_id, body.get("type") or body.get("command"), exc_info=error)
            message = (
                f":warning: Something went wrong on our side, and nothing was saved. Please try again; "
                f"if it keeps happening, give your Slack admin the error id `{error_id}`."
            )
        if body.get("type") == "view_submission":
            blocks = (body.get("view") or {}).get("blocks") or []
            field = getattr(error, "field", None) or next(
                (b.get("block_id") for b in blocks if b.get("type") == "input"), None
            )
            if field:
                errors = {"response_action": "errors", "errors": {field: message[:150]}}
                return BoltResponse(status=200, body=json.dumps(errors), headers=_json)
        if body.get("type") == "block_actions" and body.get("response_url"):
            # Slack ignores the HTTP body of a button click; answer through its response URL.
            respond(text=message, response_type="ephemeral", replace_original=False)
            return BoltResponse(status=200, body="")
        payload: dict[str, Any] = {"response_type": "ephemeral", "replace_original": False, "text": message}
        return BoltResponse(status=200, body=json.dumps(payload), headers=_json)


_json: dict[str, str | Sequence[str]] = {"content-type": "application/json;charset=utf-8"}
