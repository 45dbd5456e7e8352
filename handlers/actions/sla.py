"""The buttons of SLA nudges: Mark contacted, Recycle."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.deps import Dependencies
from bot.ids import Action
from bot.render import render
from bot.services import pipeline, sla


def _clock_id(action: dict[str, Any]) -> int:
    try:
        return int(str(action.get("value")))
    except ValueError:
        raise sla.UserFacingError("That button no longer points at a clock.") from None


def register(app: App, deps: Dependencies) -> None:
    """Register the SLA buttons."""
    alignment = deps.alignment

    @app.action(Action.SLA_CONTACTED.value)
    def contacted(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        person = alignment.person_by_slack_id(body["user"]["id"])
        with deps.database.session() as session:
            clock = pipeline.mark_contacted(
                session, alignment, _clock_id(action), by_email=person.email if person else None, now=deps.clock()
            )
            context = sla.context_for(session, alignment, clock, now=deps.clock())
        respond(replace_original=True, **render("sla_done", c=context, done="contacted"))

    @app.action(Action.SLA_RECYCLE.value)
    def recycle_clicked(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        with deps.database.read_session() as session:
            clock = sla.find_clock(session, _clock_id(action))
            context = sla.context_for(session, alignment, clock, now=deps.clock())
        client.views_open(trigger_id=body["trigger_id"], view=render("sla_recycle_modal", **context))

    @app.action(Action.OPEN_IN_CRM.value)
    def open_in_crm(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL; the click still has to be acknowledged
