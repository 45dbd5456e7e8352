"""The buttons of ``/agenda``: Covered (anyone), Remove (the item's author only)."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.deps import Dependencies
from bot.errors import UserFacingError
from bot.ids import Action
from bot.render import render
from bot.services import meetings


def _item_id(action: dict[str, Any]) -> int:
    try:
        return int(str(action.get("value")))
    except ValueError:
        raise UserFacingError("That button no longer points at an agenda item.") from None


def register(app: App, deps: Dependencies) -> None:
    """Register the agenda buttons."""
    alignment = deps.alignment

    @app.action(Action.AGENDA_COVERED.value)
    def covered(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        user, now = body["user"]["id"], deps.clock()
        with deps.database.session() as session:
            item = meetings.mark_covered(session, _item_id(action), by=user, now=now)
            meeting = meetings.meeting_of_item(alignment, item)
            view = meetings.list_view(session, alignment, meeting, viewer=user, now=now)
        respond(replace_original=True, **render("agenda_list", added=None, **view))

    @app.action(Action.AGENDA_REMOVE.value)
    def remove(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        user, now = body["user"]["id"], deps.clock()
        with deps.database.session() as session:
            item = meetings.remove_item(session, _item_id(action), by=user)
            meeting = meetings.meeting_of_item(alignment, item)
            view = meetings.list_view(session, alignment, meeting, viewer=user, now=now)
        respond(replace_original=True, **render("agenda_list", added=None, **view))
