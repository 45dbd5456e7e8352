"""``/sla``: my open clocks, or why one clock is due when it is."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.deps import Dependencies
from bot.errors import UserFacingError
from bot.render import render
from bot.services import sla


def register(app: App, deps: Dependencies) -> None:
    """Register ``/sla``."""
    alignment = deps.alignment

    @app.command("/sla")
    def sla_command(ack: Ack, command: dict[str, Any]) -> None:
        text = (command.get("text") or "").strip()
        person = alignment.person_by_slack_id(command["user_id"])
        now = deps.clock()
        with deps.database.read_session() as session:
            if not text or text.lower() in {"me", "mine", "list"}:
                if person is None:
                    raise UserFacingError(
                        "You are not in the alignment's [[people]] yet, so no lead is handed to you. "
                        "Ask your RevOps admin to add your email and Slack ID."
                    )
                clocks = [
                    sla.context_for(session, alignment, c, now=now) for c in sla.open_clocks(session, person.email)
                ]
                ack(**render("sla_list", clocks=clocks, tz=str(alignment.tz(person))))
                return
            lead_id = text.split()[0]
            # No CRM id holds a NUL, and PostgreSQL refuses one even in a query: answer, don't fail.
            clocks_of_lead = [] if "\x00" in lead_id else sla.clocks_of_lead(session, lead_id)
            if not clocks_of_lead:
                raise UserFacingError(
                    f"No SLA clock for lead `{lead_id}`. `/sla` lists yours; the id is the CRM's lead id."
                )
            ack(**render("sla_explain", **sla.explain(session, alignment, clocks_of_lead[0], now=now)))
