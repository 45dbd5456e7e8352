"""Mentions and markup typed by people or sent by the CRM reach no one, on every path to Slack.

Each test pushes the same hostile text through one path and then reads everything the fake
Slack received (posts, edits, modals, Home tabs, response URLs): no text Slack parses as
mrkdwn may hold a broadcast, a mention, a channel link or a link coming from that text.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from freezegun import freeze_time
from slack_bolt import App
from slack_bolt.response import BoltResponse

from bot.app import create_app
from bot.config import Alignment, Environment
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.deps import Dependencies
from bot.ids import Action, Block
from bot.slack.relay import OutboxRelay
from schedules.jobs import meetings_tick
from tests.conftest import SIGNING_SECRET
from tests.test_sla import handoff, send, tick_and_drain
from tests.test_vocabulary import start_clock

HOSTILE = "<!channel> <!here> <@U0MIA> <#C0WINS> <https://evil.example|click> &lt;!channel&gt; *b* _i_ `c`"
FORBIDDEN = ("<!channel", "<!here", "<!everyone", "<@U0MIA>", "<#C0WINS", "<https://evil")


def mrkdwn(value: Any, parsed: bool = True) -> Iterator[str]:
    """Every string Slack would parse as mrkdwn in a message, view or answer (plain_text is shown as typed)."""
    if isinstance(value, dict):
        kind = value.get("type")
        if isinstance(value.get("text"), str) and kind != "plain_text":
            yield value["text"]
        for key, child in value.items():
            if key in {"text"} and isinstance(child, str):
                continue
            if key in {"placeholder", "label", "title", "submit", "close", "initial_value", "value", "url", "metadata"}:
                continue  # plain_text, values and URLs the bot set, not mrkdwn
            yield from mrkdwn(child)
    elif isinstance(value, list):
        for child in value:
            yield from mrkdwn(child)


def received(fake: FakeSlack, *answers: BoltResponse) -> list[str]:
    texts = [t for call in fake.get_calls() for t in mrkdwn(call.body)]
    texts += [t for answer in answers if answer.body for t in mrkdwn(json.loads(answer.body))]
    return texts


def assert_reaches_no_one(fake: FakeSlack, *answers: BoltResponse) -> None:
    texts = received(fake, *answers)
    joined = "\n".join(texts)
    assert "&lt;!channel&gt; &lt;!here&gt; &lt;@U0MIA&gt;" in joined, "the hostile text should be shown, escaped"
    assert "&amp;lt;!channel&amp;gt;" in joined  # shown as it was typed, not turned into markup
    for text in texts:
        for token in FORBIDDEN:
            assert token not in text, f"{token!r} reached Slack in {text!r}"


def test_feedback_text_and_account(slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay) -> None:
    answer = slack.command("/feedback", f"pricing [{HOSTILE}]: {HOSTILE}", user="U0AVA")
    relay.drain()
    assert fake_slack.posts("C0VOC")
    assert_reaches_no_one(fake_slack, answer)


@freeze_time("2026-11-17 17:00:00+00:00", tick=True)  # office hours: the rep's DM is not held for the morning
def test_acted_on_note(slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay) -> None:
    slack.command("/feedback", "pricing: 20% over", user="U0AVA")
    relay.drain()
    [post] = fake_slack.posts("C0VOC")
    slack.click(post.body, Action.FEEDBACK_ACTED_ON, user="U0PRIYA", channel="C0VOC")
    modal = fake_slack.calls_to("views.open")[0].body["view"]
    slack.submit(modal, {Block.NOTE: HOSTILE}, user="U0PRIYA")
    relay.drain()
    assert fake_slack.posts("U0AVA") and fake_slack.calls_to("chat.update")
    assert_reaches_no_one(fake_slack)


def test_agenda_items(slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay, deps: Dependencies) -> None:
    with freeze_time("2026-11-16T18:00:00Z"):
        added = slack.command("/agenda", f"add {HOSTILE}", channel="C0SALES")
        listed = slack.command("/agenda", "", channel="C0SALES")
    with freeze_time("2026-11-17T14:45:00Z"):
        meetings_tick(deps)
        relay.drain()
    assert fake_slack.posts("C0SALES")
    assert_reaches_no_one(fake_slack, added, listed)


def test_crm_names_in_the_sla_nudge_and_the_recycle_note(
    deps: Dependencies, app: App, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    slack = SlackDriver(app, fake_slack, SIGNING_SECRET)
    with freeze_time("2026-11-23T15:00:00Z"):
        send(deps, handoff("L1", "2026-11-23T15:00:00Z", name=HOSTILE[:255], company=HOSTILE, campaign=HOSTILE))
    tick_and_drain(deps, relay, "2026-11-23T18:00:05Z")
    [yellow] = fake_slack.posts("U0CHLOE")
    with freeze_time("2026-11-23T18:20:00Z"):
        slack.click(yellow.body, Action.SLA_RECYCLE, user="U0CHLOE", channel="DCHLOE")
        modal = fake_slack.calls_to("views.open")[0].body["view"]
        slack.submit(modal, {Block.REASON: ("option", "not_ready"), Block.NOTE: HOSTILE}, user="U0CHLOE")
        relay.drain()
    assert fake_slack.posts("C0MKTG")
    with freeze_time("2026-11-23T18:30:00Z"):
        sla = slack.command("/sla", "L1", user="U0CHLOE")
    assert_reaches_no_one(fake_slack, sla)


def test_a_free_text_recycle_reason_from_the_crm_in_the_meeting_agenda(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with freeze_time("2026-11-16T15:00:00Z"):
        send(deps, handoff("L2", "2026-11-16T14:00:00Z", name=HOSTILE))
        send(
            deps,
            {
                "specversion": "1.0",
                "id": "rec-L2",
                "source": "crm://sf",
                "type": "lead.recycled",
                "time": "2026-11-16T15:00:00Z",
                "data": {"lead_id": "L2", "reason": HOSTILE},
            },
        )
    with freeze_time("2026-11-17T14:45:00Z"):
        meetings_tick(deps)
        relay.drain()
    assert fake_slack.posts("C0SALES")
    assert_reaches_no_one(fake_slack)


def test_deal_names_campaigns_and_the_win_story(
    app: App, deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    from tests.crm_helpers import batch, post, serve
    from tests.test_wins import HEARD_AT, touch, won

    deps = Dependencies(alignment=deps.alignment, database=deps.database, clock=lambda: HEARD_AT)
    app = create_app(
        Environment(
            slack_bot_token="xoxb-test-token", slack_signing_secret=SIGNING_SECRET, slack_api_url=fake_slack.url
        ),
        deps,
    )
    with serve(app, deps) as port:
        status, _ = post(
            port,
            *batch(
                [
                    touch("x1", "2026-11-01", HOSTILE, "ad", "priya.nair@northwind.example"),
                    won(name=HOSTILE, amount=100000),
                ]
            ),
        )
    assert status == 202
    relay.drain()
    thread = next(
        c
        for c in fake_slack.posts("C0WINS")
        if "thread_ts" in c.body and any("accessory" in b for b in c.body["blocks"])
    )
    button = next(b["accessory"] for b in thread.body["blocks"] if "accessory" in b)
    slack = SlackDriver(app, fake_slack, SIGNING_SECRET)
    slack.click(
        {"blocks": [{"type": "actions", "elements": [button]}]}, Action.WIN_STORY, user="U0AVA", channel="C0WINS"
    )
    modal = fake_slack.calls_to("views.open")[0].body["view"]
    slack.submit(modal, {Block.STORY: HOSTILE}, user="U0AVA")
    relay.drain()
    assert_reaches_no_one(fake_slack)


def test_stage_definitions_from_the_config(
    alignment: Alignment, deps: Dependencies, env: Environment, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    stages = tuple(s.model_copy(update={"definition": HOSTILE}) if s.name == "MQL" else s for s in alignment.stages)
    hostile = alignment.model_copy(update={"stages": stages})
    slack = SlackDriver(
        create_app(env, Dependencies(alignment=hostile, database=deps.database)), fake_slack, SIGNING_SECRET
    )
    one, every = slack.command("/define", "MQL"), slack.command("/define", "")
    with freeze_time("2026-11-23T14:00:00Z"):
        start_clock(alignment, deps)
    with freeze_time("2026-11-24T14:00:00Z"):
        start_clock(hostile, deps)  # the change is announced to both teams, old beside new
        relay.drain()
    assert fake_slack.posts("C0SALES")
    assert_reaches_no_one(fake_slack, one, every)
