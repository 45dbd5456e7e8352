"""Slack's side of the door: thin listeners, one ``register(app, deps)`` per kind."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slack_bolt import App

    from bot.deps import Dependencies


def register_all(app: App, deps: Dependencies) -> None:
    """Register every middleware and listener on ``app``."""
    from handlers import errors, middleware, workspace
    from handlers.actions import agenda as agenda_actions
    from handlers.actions import feedback as feedback_actions
    from handlers.actions import scorecard as scorecard_actions
    from handlers.actions import sla as sla_actions
    from handlers.actions import wins as wins_actions
    from handlers.commands import agenda as agenda_command
    from handlers.commands import define as define_command
    from handlers.commands import feedback as feedback_command
    from handlers.commands import sla as sla_command
    from handlers.events import app_home, uninstall
    from handlers.views import feedback as feedback_views
    from handlers.views import sla as sla_views
    from handlers.views import wins as wins_views

    middleware.register(app, deps)
    workspace.register(app, deps)  # after the request log, so a refused request is logged too
    errors.register(app, deps)
    feedback_command.register(app, deps)
    feedback_actions.register(app, deps)
    feedback_views.register(app, deps)
    wins_actions.register(app, deps)
    wins_views.register(app, deps)
    sla_command.register(app, deps)
    sla_actions.register(app, deps)
    sla_views.register(app, deps)
    app_home.register(app, deps)
    uninstall.register(app, deps)
    define_command.register(app, deps)
    scorecard_actions.register(app, deps)
    agenda_command.register(app, deps)
    agenda_actions.register(app, deps)
