"""A signed request about a workspace alignbot is not installed in is refused, with nothing done."""

from __future__ import annotations

import logging

import pytest

from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver, command_body
from bot.models import FeedbackItem
from tests.conftest import response_json
from tests.hostile.conftest import count_rows, outbox


def test_a_slash_command_from_another_workspace_is_refused_politely(
    slack: SlackDriver, database: Database, fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    body = command_body(
        "/feedback",
        "pricing: from elsewhere",
        user_id="U0AVA",
        team_id="T0OTHER",
        response_url=fake_slack.response_url(),
    )
    with caplog.at_level(logging.WARNING, logger="alignbot.slack"):
        answer = slack.send(body)
    assert answer.status == 200
    reply = response_json(answer)
    assert reply["response_type"] == "ephemeral" and "installed in" in reply["text"]
    assert count_rows(database, FeedbackItem) == 0 and outbox(database) == 0
    assert [c.method for c in fake_slack.get_calls()] == ["auth.test"]  # how the installed team was learnt
    assert "refused a signed request from team T0OTHER (installed: T0ALIGN)" in caplog.text


def test_the_installed_workspace_is_served(slack: SlackDriver, database: Database) -> None:
    answer = slack.send(command_body("/feedback", "pricing: from home", user_id="U0AVA", team_id="T0ALIGN"))
    assert "installed in" not in answer.body
    assert count_rows(database, FeedbackItem) == 1


def test_a_click_from_another_workspace_does_nothing(slack: SlackDriver, fake_slack: FakeSlack) -> None:
    answer = slack.interact(
        {
            "type": "block_actions",
            "team": {"id": "T0OTHER"},
            "user": {"id": "U0AVA", "team_id": "T0OTHER"},
            "actions": [{"type": "button", "action_id": "feedback_acted_on", "block_id": "b", "value": "1"}],
            "response_url": fake_slack.response_url(),
        }
    )
    assert "installed in" in answer.body
    assert [c.method for c in fake_slack.get_calls()] == ["auth.test"]
