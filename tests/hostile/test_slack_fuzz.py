"""Generated slash command texts and form values, through really signed requests.

Whatever a person types: never the "something went wrong" answer (an exception that reached
the error handler), an answer in words, and nothing half-written.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from slack_bolt.response import BoltResponse

from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.ids import Block
from bot.models import AgendaItem, FeedbackItem
from bot.render import slack_escape
from handlers.commands.feedback import HELP_WORDS
from tests.hostile.conftest import count_rows, outbox

# "payload" is in the words: Bolt alone misreads a command whose text has it (see bot/app.py).
WORDS = [
    *("pricing", "competitor", "praise", "help", "add", "[Acme]", ":", "-", '"Weekly pipeline review"', "MQL", "L1"),
    "payload",
]
typed = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(st.sampled_from(WORDS), st.text(max_size=12)), max_size=8).map(" ".join),
    st.sampled_from(["<!channel>", "[", "]", "[]", "[[x]]", "\x00", "\ud800", '"', '""', "add", "add ", "pricing:"]),
)
FAULT = "Something went wrong on our side"


def state(database: Database) -> tuple[int, int, int]:
    return count_rows(database, FeedbackItem), count_rows(database, AgendaItem), outbox(database)


def answer_text(response: BoltResponse) -> str:
    assert response.status == 200, response.body
    if not response.body:
        return ""
    body = json.loads(response.body)
    return json.dumps(body, ensure_ascii=False)


@pytest.fixture(autouse=True)
def no_faults_logged(caplog: pytest.LogCaptureFixture) -> Any:
    with caplog.at_level(logging.ERROR, logger="alignbot.errors"):
        yield
    assert "error" not in caplog.text.lower(), caplog.text


def _safe(text: str) -> str:
    # Slack delivers form-encoded UTF-8: a lone surrogate cannot travel; it arrives as U+FFFD.
    return text.encode("utf-8", "replace").decode("utf-8")


@given(text=typed)
def test_feedback_with_any_text(slack: SlackDriver, database: Database, fake_slack: FakeSlack, text: str) -> None:
    text = _safe(text)
    items, agenda, messages = state(database)
    shown = answer_text(slack.command("/feedback", text))
    after = state(database)
    assert FAULT not in shown
    if after[0] == items + 1:
        assert after[2] == messages + 1  # stored, and its post to marketing with it
    else:
        assert after == (items, agenda, messages)
        if text.strip():
            assert shown, "an answer in words"
            assert (
                text.strip().lower() in HELP_WORDS
                or json.dumps(slack_escape(text.strip()), ensure_ascii=False)[1:-1][:150] in shown
                or len(text) > 150
            )
        else:
            assert fake_slack.calls_to("views.open")  # the form


@given(text=typed)
@example(text="add review the payload")  # Bolt alone answers such a text 404 "unhandled request"
def test_agenda_with_any_text(slack: SlackDriver, database: Database, text: str) -> None:
    text = _safe(text)
    before = state(database)
    shown = answer_text(slack.command("/agenda", text, channel="C0SALES"))
    after = state(database)
    assert FAULT not in shown and shown
    assert after[1] in {before[1], before[1] + 1} and (after[0], after[2]) == (before[0], before[2])


@given(text=typed)
def test_sla_with_any_text(slack: SlackDriver, database: Database, text: str) -> None:
    text = _safe(text)
    before = state(database)
    response = slack.command("/sla", text)
    assert response.status == 200, repr(text)
    shown = answer_text(response)
    assert FAULT not in shown and shown
    assert state(database) == before


@given(text=typed)
def test_define_with_any_text(slack: SlackDriver, database: Database, text: str) -> None:
    text = _safe(text)
    before = state(database)
    shown = answer_text(slack.command("/define", text))
    assert FAULT not in shown and shown
    assert state(database) == before


@given(
    category=st.one_of(st.sampled_from(["pricing", "praise"]), st.text(max_size=20)),
    text=st.one_of(st.none(), typed),
    account=st.one_of(st.none(), typed),
    strength=st.one_of(st.none(), st.sampled_from(["1", "2", "3", "high"]), st.text(max_size=5)),
)
def test_the_feedback_form_with_any_values(
    slack: SlackDriver,
    database: Database,
    fake_slack: FakeSlack,
    category: str,
    text: str | None,
    account: str | None,
    strength: str | None,
) -> None:
    fake_slack.reset()
    slack.command("/feedback", "")
    modal = fake_slack.calls_to("views.open")[-1].body["view"]
    values: dict[str, Any] = {Block.CATEGORY: ("option", _safe(category))}
    if text is not None:
        values[Block.TEXT] = _safe(text)
    if account is not None:
        values[Block.ACCOUNT] = _safe(account)
    if strength is not None:
        values[Block.STRENGTH] = ("option", _safe(strength))
    before = state(database)
    response = slack.submit(modal, values, user="U0AVA")
    assert response.status == 200
    answer = json.loads(response.body) if response.body else {}
    after = state(database)
    if answer.get("response_action") == "errors":
        assert answer["errors"] and all(isinstance(v, str) and v for v in answer["errors"].values())
        assert FAULT not in json.dumps(answer)
        assert after == before
    else:
        assert answer.get("response_action") == "update"
        assert after == (before[0] + 1, before[1], before[2] + 1)


def test_sla_with_a_nul_in_the_lead_id_answers_instead_of_failing_on_postgresql(slack: SlackDriver) -> None:
    shown = answer_text(slack.command("/sla", "L1\x00"))
    assert FAULT not in shown and "No SLA clock for lead" in shown
