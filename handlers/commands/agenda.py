"""``/agenda``: add an item to a joint meeting's next occurrence, or list its items."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.deps import Dependencies
from bot.render import render
from bot.services import meetings


def register(app: App, deps: Dependencies) -> None:
    """Register ``/agenda``."""
    alignment = deps.alignment

    @app.command("/agenda")
    def agenda_command(ack: Ack, command: dict[str, Any]) -> None:
        now = deps.clock()
        user = command["user_id"]
        request = meetings.read_command(
            alignment, command.get("text") or "", channel=command.get("channel_id"), now=now
        )
        if isinstance(request, meetings.AgendaProblem) or request.action == "help" or request.meeting is None:
            problem = request if isinstance(request, meetings.AgendaProblem) else None
            ack(
                **render(
                    "agenda_usage",
                    problem=problem.reason if problem else None,
                    text=problem.text if problem else "",
                    meetings=meetings.meetings_overview(alignment, now),
                )
            )
            return
        if request.action == "add":
            with deps.database.session() as session:
                item, _ = meetings.add_item(
                    session, alignment, request.meeting, text=request.text, author=user, now=now
                )
                view = meetings.list_view(session, alignment, request.meeting, viewer=user, now=now)
            ack(**render("agenda_list", added=item.text, **view))
            return
        with deps.database.read_session() as session:
            view = meetings.list_view(session, alignment, request.meeting, viewer=user, now=now)
        ack(**render("agenda_list", added=None, **view))
