"""The scorecard's "Show the rows" button: the CSV of the records behind a metric, in the post's thread.

The click is acknowledged at once and the file is uploaded by a lazy listener. The app runs
listeners before answering Slack (``process_before_response``), and ``files_upload_v2`` is
three calls to Slack (an upload URL, the bytes, the completion) that can take longer than the
3 seconds Slack waits for the acknowledgement. It does not go through the outbox: it answers
the person who clicked, now, like a modal would; it is not a message the bot sends on its own,
and a click that failed can simply be clicked again.
"""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.deps import Dependencies
from bot.errors import UserFacingError
from bot.ids import Action
from bot.services import scorecard


def register(app: App, deps: Dependencies) -> None:
    """Register the scorecard's buttons."""

    def acknowledge(ack: Ack) -> None:
        ack()

    def upload_rows(body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond) -> None:
        container = body.get("container") or {}
        channel = container.get("channel_id") or (body.get("channel") or {}).get("id")
        # Into the scorecard post's thread, so the channel stays one post a week.
        thread = container.get("thread_ts") or container.get("message_ts")
        # A lazy listener's errors never reach @app.error (Bolt only logs them): answer them here.
        try:
            metric, week_start, as_of = scorecard.parse_row_button(str(action.get("value") or ""))
            with deps.database.read_session() as session:
                found = scorecard.metric_rows(session, deps.alignment, metric, week_start=week_start, as_of=as_of)
            client.files_upload_v2(
                channel=channel,
                thread_ts=thread,
                content=found.csv(),
                filename=found.filename,
                title=f"{found.spec.title}, week of {found.week.shown}",
                initial_comment=found.comment(requested_by=body["user"]["id"]),
            )
        except UserFacingError as error:
            respond(text=str(error), response_type="ephemeral", replace_original=False)
        except SlackApiError as error:
            reason = error.response.get("error") if error.response is not None else None
            respond(
                text=f":warning: Slack did not take the file ({reason or 'no answer'}). "
                "If it says not_in_channel or missing_scope, invite the bot or reinstall the app with files:write.",
                response_type="ephemeral",
                replace_original=False,
            )

    app.action(Action.SCORECARD_ROWS.value)(ack=acknowledge, lazy=[upload_rows])
