"""The "Share how we won" button in a win's thread."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.app import Dependencies
from bot.errors import UserFacingError
from bot.ids import Action
from bot.models import Deal
from bot.render import render, who
from bot.services import wins


def register(app: App, deps: Dependencies) -> None:
    """Register the win post's buttons."""

    @app.action(Action.WIN_STORY.value)
    def story_clicked(
        ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, respond: Respond
    ) -> None:
        ack()
        deal_id = str(action.get("value") or "")
        with deps.database.read_session() as session:
            deal = session.get(Deal, deal_id)
            if deal is None:
                raise UserFacingError("That deal is no longer in alignbot.")
            tellers = {deps.alignment.person(e) for e in (deal.owner_email, deal.sdr_email) if e}
            owners = {p.slack_id for p in tellers if p is not None and p.slack_id}
            owner = wins.person(deps.alignment, deal.owner_email)
            told, name = deal.story, deal.name
        clicker = body["user"]["id"]
        if told:
            respond(
                text="The story of this win has already been told in the thread.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        if owners and clicker not in owners:  # the owner and the SDR tell it; anyone, if neither is configured
            respond(
                text=f"{who(owner)} closed this one: the story is theirs to tell.",
                response_type="ephemeral",
                replace_original=False,
            )
            return
        client.views_open(
            trigger_id=body["trigger_id"], view=render("win_story_modal", deal={"id": deal_id, "name": name})
        )
