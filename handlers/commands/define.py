"""``/define [TERM]``: the agreed meaning of a stage or an SLA, or the whole vocabulary."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App

from bot.deps import Dependencies
from bot.render import render
from bot.services import vocabulary


def register(app: App, deps: Dependencies) -> None:
    """Register ``/define``."""
    alignment = deps.alignment

    @app.command("/define")
    def define_command(ack: Ack, command: dict[str, Any]) -> None:
        # Read from the config alone, in microseconds: the answer goes in the acknowledgement.
        answer = vocabulary.define(alignment, command.get("text") or "")
        ack(**render("define", **answer.context(alignment)))
