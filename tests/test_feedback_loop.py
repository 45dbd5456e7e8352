"""Marketing closes the loop: "Acted on" with a note DMs the rep once and updates the post."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from freezegun import freeze_time

from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.ids import Action, Block
from bot.slack.relay import OutboxRelay
from tests.conftest import response_json
from tests.test_feedback_command import all_text


@pytest.fixture(autouse=True)
def office_hours(request: pytest.FixtureRequest) -> Iterator[None]:
    """Tuesday 17:00 UTC: working hours for everyone, from Los Angeles to Berlin."""
    if "quiet_hours" in request.node.name:
        yield
        return
    with freeze_time("2026-11-17 17:00:00+00:00", tick=True):
        yield


def post_feedback(slack: SlackDriver, fake: FakeSlack, relay: OutboxRelay) -> dict:
    slack.command("/feedback", "pricing [Acme Corp]: 20% over their current tool", user="U0AVA")
    relay.drain()
    [post] = fake.posts("C0VOC")
    return post.body


def test_acted_on_dms_the_rep_once_and_updates_the_post(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    post = post_feedback(slack, fake_slack, relay)

    slack.click(post, Action.FEEDBACK_ACTED_ON, user="U0PRIYA", channel="C0VOC")
    [opened] = fake_slack.calls_to("views.open")
    modal = opened.body["view"]
    assert modal["callback_id"] == "feedback_acted_on"
    assert "20% over their current tool" in all_text(modal["blocks"])

    note = "Added a TCO one-pager to the pricing page"
    assert slack.submit(modal, {Block.NOTE: note}, user="U0PRIYA").status == 200
    relay.drain()

    [dm] = fake_slack.posts("U0AVA")
    shown = all_text(dm.body["blocks"])
    assert "<@U0PRIYA> in marketing acted on your *Pricing* feedback about *Acme Corp*" in shown
    assert note in shown
    [edit] = fake_slack.calls_to("chat.update")
    assert edit.body["ts"] == fake_slack.posts("C0VOC")[0].response["ts"]
    edited = all_text(edit.body["blocks"])
    assert f"Acted on by <@U0PRIYA>: {note}" in edited
    assert not any(b["type"] == "actions" for b in edit.body["blocks"])  # the button is gone


def test_a_second_click_or_submission_sends_nothing_more(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    post = post_feedback(slack, fake_slack, relay)
    slack.click(post, Action.FEEDBACK_ACTED_ON, user="U0PRIYA", channel="C0VOC")
    slack.click(post, Action.FEEDBACK_ACTED_ON, user="U0SAM", channel="C0VOC")  # both opened the note form
    first, second = (c.body["view"] for c in fake_slack.calls_to("views.open"))

    slack.submit(first, {Block.NOTE: "Updated the battlecard"}, user="U0PRIYA")
    late = response_json(slack.submit(second, {Block.NOTE: "Me too"}, user="U0SAM"))
    relay.drain()

    assert late["response_action"] == "update"
    assert "<@U0PRIYA> already acted on this one" in all_text(late["view"]["blocks"])
    assert len(fake_slack.posts("U0AVA")) == 1
    assert len(fake_slack.calls_to("chat.update")) == 1

    # A click on the stale button now answers in place, without a form.
    slack.click(post, Action.FEEDBACK_ACTED_ON, user="U0LENA", channel="C0VOC")
    [answer] = fake_slack.calls_to("response_url")
    assert answer.body["response_type"] == "ephemeral"
    assert "Already acted on by <@U0PRIYA>" in answer.body["text"]
    assert len(fake_slack.calls_to("views.open")) == 2


def test_an_empty_note_is_refused_in_the_form(slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay) -> None:
    post = post_feedback(slack, fake_slack, relay)
    slack.click(post, Action.FEEDBACK_ACTED_ON, user="U0PRIYA", channel="C0VOC")
    modal = fake_slack.calls_to("views.open")[0].body["view"]

    answer = response_json(slack.submit(modal, {Block.NOTE: "   "}, user="U0PRIYA"))
    relay.drain()

    assert answer == {
        "response_action": "errors",
        "errors": {"note": "Add a short note on what marketing did with it."},
    }
    assert fake_slack.posts("U0AVA") == []


def test_the_reps_dm_waits_for_the_end_of_their_quiet_hours(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    # Lena acts from Berlin at 06:00 her time: 21:00 the evening before for Ava in Los Angeles.
    with freeze_time("2026-11-17 05:00:00+00:00"):
        post = post_feedback(slack, fake_slack, relay)
        slack.click(post, Action.FEEDBACK_ACTED_ON, user="U0LENA", channel="C0VOC")
        modal = fake_slack.calls_to("views.open")[0].body["view"]
        slack.submit(modal, {Block.NOTE: "Shared with the pricing council"}, user="U0LENA")
        relay.drain()
    assert fake_slack.posts("U0AVA") == []
    assert len(fake_slack.calls_to("chat.update")) == 1  # the channel post is updated at once

    with freeze_time("2026-11-17 15:59:00+00:00"):  # 07:59 in Los Angeles
        relay.drain()
    assert fake_slack.posts("U0AVA") == []
    with freeze_time("2026-11-17 16:00:00+00:00"):  # 08:00: morning
        relay.drain()
    assert len(fake_slack.posts("U0AVA")) == 1
