"""Joint win announcements, end to end: CRM events over HTTP in, what #wins receives out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from freezegun import freeze_time
from slack_bolt import App

from bot.app import create_app
from bot.config import Alignment, Attribution, Environment
from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.deps import Dependencies
from bot.ids import Action, Block
from bot.models import Deal
from bot.slack.relay import OutboxRelay, relay_client
from schedules.jobs import build_jobs
from tests.conftest import BOT_TOKEN, SIGNING_SECRET, response_json
from tests.crm_helpers import batch, event, post, serve
from tests.test_feedback_command import all_text

PRIYA, LENA, SAM = "priya.nair@northwind.example", "lena.fischer@northwind.example", "sam.weber@northwind.example"


def touch(touch_id: str, day: str, campaign: str, kind: str, owner: str | None, account: str = "ACME") -> Any:
    data = {"touch_id": touch_id, "account_id": account, "campaign": campaign, "kind": kind}
    if owner:
        data["marketing_owner_email"] = owner
    return event("touch.recorded", f"{day}T15:00:00Z", data)


def won(
    deal_id: str = "D1",
    *,
    amount: Any = 84000,
    name: str = "Acme Corp",
    day: str = "2026-11-20",
    account: str = "ACME",
    currency: str = "USD",
    **extra: Any,
) -> Any:
    data = {
        "deal_id": deal_id,
        "name": name,
        "account_id": account,
        "amount": amount,
        "currency": currency,
        "owner_email": "ava.ross@northwind.example",
        "sdr_email": "chloe.park@northwind.example",
        **extra,
    }
    return event("deal.closed_won", f"{day}T18:00:00Z", data)


JOURNEY = [
    touch("t1", "2026-10-01", "Data Summit webinar", "webinar", PRIYA),
    touch("t2", "2026-10-10", "ROI guide", "content", LENA),
    event(
        "lead.handed_off",
        "2026-10-11T15:00:00Z",
        {"lead_id": "L1", "owner_email": "chloe.park@northwind.example", "stage": "MQL", "account_id": "ACME"},
    ),
    touch("t3", "2026-10-20", "NYC dinner", "event", SAM),
    touch("t4", "2026-11-01", "Retargeting", "ad", PRIYA),
]


#: When the tests' deals are heard of: the day after they close, so they are news (a win first heard
#: of more than a week after its close is recorded without a post), whatever today's date is.
HEARD_AT = dt.datetime(2026, 11, 21, 15, 0, tzinfo=dt.UTC)


@pytest.fixture
def deps(alignment: Alignment, database: Database) -> Dependencies:
    return Dependencies(alignment=alignment, database=database, clock=lambda: HEARD_AT)


@pytest.fixture
def port(app: App, deps: Dependencies) -> Iterator[int]:
    with serve(app, deps) as bound:
        yield bound


def send(port: int, *events: Any) -> dict[str, int]:
    status, answer = post(port, *batch(list(events)))
    assert status == 202, answer
    return answer


def announce_with(model: str, env: Environment, deps: Dependencies, relay: OutboxRelay, *events: Any) -> None:
    """Send the events to an app whose attribution model is ``model``, then run the relay."""
    alignment = deps.alignment.model_copy(update={"attribution": Attribution(model=model)})
    other = Dependencies(alignment=alignment, database=deps.database, clock=deps.clock)
    with serve(create_app(env, other), other) as bound:
        send(bound, *events)
    relay.drain()


def wins_posts(fake: FakeSlack) -> list[Any]:
    return [c for c in fake.posts("C0WINS") if "thread_ts" not in c.body]


def test_a_win_credits_the_sales_owners_and_each_marketing_touch(
    port: int, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    send(port, *JOURNEY, won())
    relay.drain()

    [post_call] = wins_posts(fake_slack)
    shown = all_text(post_call.body["blocks"])
    assert post_call.body["blocks"][0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": ":trophy: Big win: Acme Corp", "emoji": True},
    }
    assert "*$84,000* · closed by <@U0AVA> with <@U0CHLOE>" in shown
    # W-shaped, four touches: 30% first, 30% lead creation (the last touch before the hand-off), 30% last, 10% rest.
    assert "• *30%* Data Summit webinar (webinar, first touch) · <@U0PRIYA>" in shown
    assert "• *30%* ROI guide (content, lead creation touch) · <@U0LENA>" in shown
    assert "• *10%* NYC dinner (event) · <@U0SAM>" in shown
    assert "• *30%* Retargeting (ad, last touch) · <@U0PRIYA>" in shown
    assert "Credit by the W-shaped model over 180 days: thank you <@U0PRIYA> 60%, <@U0LENA> 30%, <@U0SAM> 10%" in shown
    assert post_call.body["metadata"]["event_payload"]["key"] == "win:D1"

    [thread] = [c for c in fake_slack.posts("C0WINS") if "thread_ts" in c.body]
    assert thread.body["thread_ts"] == post_call.response["ts"]
    journey = all_text(thread.body["blocks"])
    assert (
        journey.index("`Oct 1` :mega: Webinar: Data Summit webinar")
        < journey.index("`Oct 11` :handshake: Handed off to sales as MQL · <@U0CHLOE>")
        < journey.index("`Nov 20` :trophy: Closed won · <@U0AVA>")
    )
    assert any(b.get("accessory", {}).get("action_id") == Action.WIN_STORY for b in thread.body["blocks"])


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("first_touch", ["100%", "0%", "0%", "0%"]),
        ("last_touch", ["0%", "0%", "0%", "100%"]),
        ("linear", ["25%", "25%", "25%", "25%"]),
        ("u_shaped", ["40%", "10%", "10%", "40%"]),
        # Ages 50.125, 41.125, 31.125 and 19.125 days, half-life 7: weights 0.00697, 0.01707, 0.04579 and
        # 0.15051 of 0.22034 = 3.16%, 7.75%, 20.78%, 68.31%; largest remainder -> 3, 8, 21, 68.
        ("time_decay", ["3%", "8%", "21%", "68%"]),
    ],
)
def test_each_model_shares_the_credit_as_defined(
    model: str, expected: list[str], env: Environment, deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    announce_with(model, env, deps, relay, *JOURNEY, won())
    shown = all_text(wins_posts(fake_slack)[0].body["blocks"])
    campaigns = ["Data Summit webinar", "ROI guide", "NYC dinner", "Retargeting"]
    for campaign, percent in zip(campaigns, expected, strict=True):
        if percent == "0%":
            assert campaign not in shown.split("earned it")[1].split("Credit by")[0]
        else:
            assert f"*{percent}* {campaign}" in shown
    assert f"Credit by the {model.replace('_', ' ').replace('u shaped', 'U-shaped')} model" in shown


THREE = [
    touch("a", "2026-10-01", "Webinar", "webinar", PRIYA),
    touch("b", "2026-10-15", "Guide", "content", LENA),
    touch("c", "2026-11-01", "Dinner", "event", SAM),
]
# Sent in this order, both at 15:00 on Oct 10: the credit goes by touch id, not by arrival.
SAME_MOMENT = [
    touch("t-b", "2026-10-10", "Trade show booth", "event", SAM),
    touch("t-a", "2026-10-10", "Trade show talk", "event", LENA),
]


@pytest.mark.parametrize(
    ("model", "touches", "expected"),
    [
        # 33 1/3 each: equal remainders, the odd point to the earliest touch.
        pytest.param("linear", THREE, {"Webinar": "34%", "Guide": "33%", "Dinner": "33%"}, id="linear three-way tie"),
        pytest.param(
            "first_touch", SAME_MOMENT, {"Trade show talk": "100%"}, id="first touch of two at the same moment"
        ),
        pytest.param("u_shaped", THREE[:1], {"Webinar": "100%"}, id="u-shaped one touch"),
        pytest.param("time_decay", THREE[1:2], {"Guide": "100%"}, id="time decay one touch"),
    ],
)
def test_ties_and_single_touches_are_credited_as_section_6_says(
    model: str,
    touches: list[Any],
    expected: dict[str, str],
    env: Environment,
    deps: Dependencies,
    fake_slack: FakeSlack,
    relay: OutboxRelay,
) -> None:
    announce_with(model, env, deps, relay, *touches, won())
    credits = all_text(wins_posts(fake_slack)[0].body["blocks"]).split("earned it")[1].split("Credit by")[0]
    shown = {line.split("* ", 1)[1].split(" (")[0]: line.split("*")[1] for line in credits.split("\n") if "• *" in line}
    assert shown == expected


def test_exactly_one_post_under_duplicate_deliveries_and_a_restart(
    port: int, fake_slack: FakeSlack, relay: OutboxRelay, env: Environment, deps: Dependencies
) -> None:
    closing = won()
    assert send(port, *JOURNEY, closing) == {"accepted": 6, "duplicates": 0, "ignored": 0}
    relay.drain()
    assert len(wins_posts(fake_slack)) == 1
    for _ in range(4):  # the CRM delivers the same events again: each a duplicate, nothing more is sent
        assert send(port, *JOURNEY, closing) == {"accepted": 0, "duplicates": 6, "ignored": 0}
        relay.drain()
    # A restart: another connection to the database, another app and another relay. The CRM then
    # sends the close again as a new event (another id, the same content).
    database = Database.from_url(deps.database.engine.url.render_as_string(hide_password=False))
    try:
        restarted = Dependencies(alignment=deps.alignment, database=database, clock=deps.clock)
        with serve(create_app(env, restarted), restarted) as bound:
            assert send(bound, won(day="2026-11-20")) == {"accepted": 1, "duplicates": 0, "ignored": 0}
        OutboxRelay(database, relay_client(BOT_TOKEN, fake_slack.url, timeout=2), pace=0, concurrency=1).drain()
    finally:
        database.dispose()
    assert len(wins_posts(fake_slack)) == 1
    assert fake_slack.calls_to("chat.update") == []  # nothing the post shows changed


def test_a_later_change_edits_the_post_in_place(
    port: int, fake_slack: FakeSlack, relay: OutboxRelay, database: Database
) -> None:
    send(port, *JOURNEY, won())
    relay.drain()
    send(port, won(amount="96000", day="2026-11-21"))  # the amount was corrected in the CRM
    send(port, touch("t0", "2026-09-20", "G2 review page", "web", SAM))  # a late touch before the close
    relay.drain()

    original_ts = wins_posts(fake_slack)[0].response["ts"]
    edits = [c for c in fake_slack.calls_to("chat.update") if c.body["ts"] == original_ts]
    assert len(wins_posts(fake_slack)) == 1
    assert "*$96,000*" in all_text(edits[0].body["blocks"])
    latest = all_text(edits[-1].body["blocks"])
    assert "G2 review page (web, first touch)" in latest
    with database.read_session() as session:
        deal = session.get(Deal, "D1")
        assert deal is not None and deal.amount == Decimal("96000")


def test_a_reopened_deal_is_marked_withdrawn(port: int, fake_slack: FakeSlack, relay: OutboxRelay) -> None:
    send(port, *JOURNEY, won())
    relay.drain()
    send(port, event("deal.reopened", "2026-11-22T10:00:00Z", {"deal_id": "D1"}))
    relay.drain()
    [edit] = [c for c in fake_slack.calls_to("chat.update") if c.body["ts"] == wins_posts(fake_slack)[0].response["ts"]]
    shown = all_text(edit.body["blocks"])
    assert ":rewind: *Withdrawn*: Acme Corp was reopened in the CRM" in shown
    assert edit.body["text"].startswith("~")
    assert len(wins_posts(fake_slack)) == 1


def test_a_win_with_no_marketing_touch_is_still_celebrated(
    port: int, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    send(port, won(deal_id="D2", account="OUTBOUND", name="Globex Logistics", amount=20000))
    relay.drain()
    [post_call] = wins_posts(fake_slack)
    shown = all_text(post_call.body["blocks"])
    assert "*:tada: New win: Globex Logistics*" in shown  # below the first loud tier: no header block
    assert "No marketing touch is recorded for this account in the last 180 days" in shown
    assert post_call.body["blocks"][0]["type"] == "section"


def test_touches_outside_the_lookback_or_after_the_close_get_no_credit(
    port: int, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    send(
        port,
        touch("old", "2026-05-01", "Spring webinar", "webinar", PRIYA),  # 203 days before the close
        touch("in", "2026-11-10", "Case study", "content", LENA),
        touch("after", "2026-11-25", "Post-sale survey", "email", SAM),
        won(),
    )
    relay.drain()
    shown = all_text(wins_posts(fake_slack)[0].body["blocks"])
    assert "*100%* Case study" in shown
    assert "Spring webinar" not in shown and "Post-sale survey" not in shown


def test_smaller_wins_wait_for_the_daily_digest(
    port: int, fake_slack: FakeSlack, relay: OutboxRelay, deps: Dependencies
) -> None:
    send(
        port,
        touch("s1", "2026-11-02", "Newsletter", "email", LENA, account="SMALL"),
        won(deal_id="S1", account="SMALL", name="Tiny Bakery", amount=1200),
        won(deal_id="S2", account="SMALL2", name="Corner Café", amount=950, currency="EUR"),
        won(deal_id="S3", account="SMALL3", name="Evil & Co <!here>", amount="4999.99"),
        won(deal_id="L1", account="LINE", name="Right On The Line", amount=5000),  # not below digest_below
    )
    relay.drain()
    [line_post] = wins_posts(fake_slack)  # the one at the line is posted at once, on its own
    assert "Right On The Line" in all_text(line_post.body["blocks"])
    with freeze_time("2026-11-20T22:00:00Z"):  # Friday 17:00 in New York, the digest's time
        for _ in range(2):  # the scheduled run, then a restarted clock's catch-up: still one post
            [job] = [j for j in build_jobs(deps) if j.name == "wins-digest"]
            job.run_due(dt.datetime.now(dt.UTC))
    relay.drain()
    [_, digest] = wins_posts(fake_slack)
    shown = all_text(digest.body["blocks"])
    assert "*Tiny Bakery* · $1,200 · <@U0AVA> · marketing: <@U0LENA> 100%" in shown
    assert "*Corner Café* · €950 · <@U0AVA>" in shown
    # A CRM-supplied name is shown as written, escaped: it can neither notify the channel nor break the line.
    assert "*Evil &amp; Co &lt;!here&gt;* · $4,999.99 · <@U0AVA>" in shown
    assert "<!here>" not in shown + digest.body["text"]
    assert "Right On The Line" not in shown


def test_names_from_the_crm_are_escaped(port: int, fake_slack: FakeSlack, relay: OutboxRelay) -> None:
    send(
        port,
        touch("x1", "2026-11-01", "<!channel> promo <@U0MIA>", "ad", PRIYA),
        won(name="Evil & Co <!here>", amount=100000),
    )
    relay.drain()
    for call in fake_slack.posts("C0WINS"):
        # mrkdwn and the fallback text are parsed by Slack; a header's plain_text is shown literally.
        parsed = all_text([b for b in call.body["blocks"] if b["type"] != "header"]) + call.body["text"]
        for markup in ("<!channel>", "<!here>", "<@U0MIA>"):
            assert markup not in parsed
    [post_call] = wins_posts(fake_slack)
    shown = all_text([b for b in post_call.body["blocks"] if b["type"] != "header"])
    assert "&lt;!channel&gt; promo &lt;@U0MIA&gt;" in shown
    assert "Evil &amp; Co &lt;!here&gt;" in post_call.body["text"]


def test_the_owner_tells_how_the_deal_was_won_in_the_thread(
    port: int, app: App, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    slack = SlackDriver(app, fake_slack, SIGNING_SECRET)
    send(port, *JOURNEY, won())
    relay.drain()
    thread = next(c for c in fake_slack.posts("C0WINS") if "thread_ts" in c.body)
    button = next(b["accessory"] for b in thread.body["blocks"] if "accessory" in b)
    message = {"blocks": [{"type": "actions", "elements": [button]}]}

    slack.click(message, Action.WIN_STORY, user="U0BEN", channel="C0WINS")  # not the owner
    [refusal] = fake_slack.calls_to("response_url")
    assert "<@U0AVA> closed this one" in refusal.body["text"]
    assert fake_slack.calls_to("views.open") == []

    slack.click(message, Action.WIN_STORY, user="U0AVA", channel="C0WINS")
    modal = fake_slack.calls_to("views.open")[0].body["view"]
    forged = response_json(slack.submit(modal, {Block.STORY: "I was there too"}, user="U0BEN"))
    assert forged == {
        "response_action": "errors",
        "errors": {"story": "<@U0AVA> closed this one: the story is theirs to tell."},
    }
    slack.submit(
        modal, {Block.STORY: "The webinar got their data team in; the ROI review <!channel> closed it."}, user="U0AVA"
    )
    relay.drain()
    story = [c for c in fake_slack.posts("C0WINS") if "How we won it" in all_text(c.body["blocks"])]
    assert len(story) == 1 and story[0].body["thread_ts"] == wins_posts(fake_slack)[0].response["ts"]
    assert "&lt;!channel&gt;" in all_text(story[0].body["blocks"])
