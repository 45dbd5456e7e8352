"""The shared scorecard: hand-checked figures, both channels, once, and the rows behind each figure.

The data set (company timezone America/New_York, calendar 09:00-17:00 Mon-Fri, US holidays).
The reported week W is Mon Nov 16 - Sun Nov 22 2026, the week before P is Nov 9 - 15. The post
runs Mon Nov 23 08:00 EST (13:00Z), and the figures are taken as of that moment.

Leads (all handed off as MQL; the SLA mql-first-touch is 4 business hours in the owner's calendar):

=====  ==========================  =====================  ======================  ==========================
lead   hand-off (owner)            first contact          business hours          later
=====  ==========================  =====================  ======================  ==========================
L1     Mon 16 10:00 EST (Diego)    Mon 12:00 EST          2.00                    SQL Wed 18
L2     Mon 16 16:00 EST (Diego)    Tue 11:30 EST          1 (Mon) + 2.5 = 3.50    -
L3     Tue 17 08:00 CST (Chloe)    Tue 10:00 CST          opens 09:00 -> 1.00     Opportunity Fri 20
L4     Thu 19 07:00 PST (Ava)      never                  not counted             -
L5     Fri 20 15:00 EST (Ben)      Mon 23 10:00 EST       after the post: not yet -
L6     Tue 10 10:00 EST (Diego)    Tue 10 11:00 EST       1.00 (in P)             back to Lead Fri 13, MQL
                                                                                  again Tue 17, SQL Wed 18
L7     Thu 12 10:00 EST (Ben)      Thu 12 15:00 EST       5.00 (in P)             -
=====  ==========================  =====================  ======================  ==========================

Deals: W: D1 won $84,000 (names L1; ACME has a touch), D2 won EUR 12,500 (no lead named; its account
GLOBEX is L3's; a touch), D3 won $20,000 (names an unknown lead; no touch), D4 lost $30,000 (HOOLI is
L4's), D5 lost, no amount, Sun 22 23:30 EST (still W). P: D6 won $50,000 (names L7; a touch), D7
lost $40,000 on Sun 15 23:30 EST (still P).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import statistics
from decimal import Decimal
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from bot.config import Alignment, Scorecard
from bot.demo.fakeslack import FakeSlack, SlackCall
from bot.demo.slack_signing import SlackDriver
from bot.deps import Dependencies
from bot.ids import Action
from bot.models import OutboxMessage
from bot.services import pipeline, scorecard
from bot.services.crm_schema import validate_events
from bot.slack.relay import OutboxRelay
from schedules.jobs import ScheduledJob, build_jobs
from tests.test_feedback_command import all_text

DIEGO, CHLOE, AVA, BEN = (
    "diego.alvarez@northwind.example",
    "chloe.park@northwind.example",
    "ava.ross@northwind.example",
    "ben.okafor@northwind.example",
)
OCCURRENCE = "2026-11-23T13:00:00Z"  # Mon 08:00 EST
WEEK = dt.date(2026, 11, 16)


def utc(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


def ce(type_: str, time: str, data: dict[str, Any]) -> dict[str, Any]:
    subject = data.get("lead_id") or data.get("deal_id") or data.get("touch_id")
    return {
        "specversion": "1.0",
        "id": f"{type_}-{subject}-{time}",
        "source": "crm://test",
        "type": type_,
        "time": time,
        "data": data,
    }


def handoff(lead: str, time: str, owner: str, account: str | None = None) -> dict[str, Any]:
    data = {"lead_id": lead, "owner_email": owner, "stage": "MQL", "name": f"Lead {lead}"}
    return ce("lead.handed_off", time, data | ({"account_id": account} if account else {}))


def contacted(lead: str, time: str) -> dict[str, Any]:
    return ce("lead.contacted", time, {"lead_id": lead})


def stage(lead: str, time: str, name: str) -> dict[str, Any]:
    return ce("lead.stage_changed", time, {"lead_id": lead, "stage": name})


def touch(touch_id: str, time: str, account: str) -> dict[str, Any]:
    data = {"touch_id": touch_id, "account_id": account, "campaign": f"Campaign {touch_id}", "kind": "webinar"}
    return ce("touch.recorded", time, data | {"marketing_owner_email": "priya.nair@northwind.example"})


def closed(
    deal: str, time: str, account: str, amount: int | None, currency: str = "USD", **extra: Any
) -> dict[str, Any]:
    won = extra.pop("won", True)
    data = {"deal_id": deal, "name": f"Deal {deal}", "account_id": account, "owner_email": AVA, **extra}
    if amount is not None:
        data |= {"amount": amount, "currency": currency}
    return ce("deal.closed_won" if won else "deal.closed_lost", time, data)


DATA_SET = [
    # the week before (P)
    handoff("L6", "2026-11-10T15:00:00Z", DIEGO),
    contacted("L6", "2026-11-10T16:00:00Z"),
    stage("L6", "2026-11-13T14:00:00Z", "Lead"),
    handoff("L7", "2026-11-12T15:00:00Z", BEN, account="ACME2"),
    contacted("L7", "2026-11-12T20:00:00Z"),
    touch("t6", "2026-11-01T15:00:00Z", "ACME2"),
    closed("D6", "2026-11-12T18:00:00Z", "ACME2", 50_000, lead_ids=["L7"]),
    closed("D7", "2026-11-16T04:30:00Z", "STARK", 40_000, won=False),
    # the reported week (W)
    handoff("L1", "2026-11-16T15:00:00Z", DIEGO, account="ACME"),
    contacted("L1", "2026-11-16T17:00:00Z"),
    stage("L1", "2026-11-18T15:00:00Z", "SQL"),
    handoff("L2", "2026-11-16T21:00:00Z", DIEGO),
    contacted("L2", "2026-11-17T16:30:00Z"),
    handoff("L3", "2026-11-17T14:00:00Z", CHLOE, account="GLOBEX"),
    contacted("L3", "2026-11-17T16:00:00Z"),
    stage("L3", "2026-11-20T15:00:00Z", "Opportunity"),
    handoff("L4", "2026-11-19T15:00:00Z", AVA, account="HOOLI"),
    handoff("L5", "2026-11-20T20:00:00Z", BEN),
    stage("L6", "2026-11-17T14:00:00Z", "MQL"),
    stage("L6", "2026-11-18T16:00:00Z", "SQL"),
    touch("t1", "2026-10-01T15:00:00Z", "ACME"),
    touch("t2", "2026-11-02T15:00:00Z", "GLOBEX"),
    closed("D1", "2026-11-18T18:00:00Z", "ACME", 84_000, lead_ids=["L1"]),
    closed("D2", "2026-11-19T18:00:00Z", "GLOBEX", 12_500, currency="EUR"),
    closed("D3", "2026-11-20T18:00:00Z", "INITECH", 20_000, lead_ids=["X9"]),
    closed("D4", "2026-11-20T19:00:00Z", "HOOLI", 30_000, won=False),
    closed("D5", "2026-11-23T04:30:00Z", "UMBRELLA", None, won=False),
]
L5_CONTACT = contacted("L5", "2026-11-23T15:00:00Z")  # arrives after the post


def seed(deps: Dependencies, events: list[dict[str, Any]], now: str) -> None:
    checked = validate_events(events, stages=[s.name for s in deps.alignment.stages])
    assert not checked.problems, checked.problems
    with freeze_time(now), deps.database.session() as session:
        pipeline.ingest(session, deps.alignment, checked.events, now=utc(now))


def scorecard_job(deps: Dependencies) -> ScheduledJob:
    return next(job for job in build_jobs(deps) if job.name == "scorecard")


def scorecard_posts(fake: FakeSlack, channel: str) -> list[SlackCall]:
    return [c for c in fake.posts(channel) if c.body["metadata"]["event_payload"]["key"].startswith("scorecard:")]


def section(post: SlackCall, metric: str) -> str:
    [block] = [b for b in post.body["blocks"] if b.get("block_id") == f"scorecard-{metric}"]
    return str(block["text"]["text"])


@pytest.fixture
def posted(deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay) -> SlackCall:
    """The data set in, and the Monday scorecard out (the job run twice, as a restart would)."""
    seed(deps, DATA_SET, "2026-11-23T12:00:00Z")
    job = scorecard_job(deps)
    with freeze_time("2026-11-23T13:00:20Z"):
        assert job.run_due(utc("2026-11-23T13:00:20Z")) == utc(OCCURRENCE)
    with freeze_time("2026-11-23T13:05:00Z"):  # a restart: the catch-up finds the keys taken
        job.run_due(utc("2026-11-23T13:05:00Z"))
        relay.drain()
    [sales] = scorecard_posts(fake_slack, "C0SALES")
    return sales


def test_the_figures_week_against_week_with_the_trend(posted: SlackCall) -> None:
    text = all_text(posted.body["blocks"])
    assert posted.body["blocks"][0]["text"]["text"] == "Scorecard · week of Nov 16–22"
    assert "as of Mon Nov 23, 08:00 EST" in text
    # MQL -> SQL: cohort = leads whose FIRST entry into MQL is in the week: L1-L5 (L6 first entered in P).
    # Reached SQL or later by the report: L1 (SQL), L3 (Opportunity) -> 2/5 = 40%. P: L6 yes, L7 no -> 50%.
    assert section(posted, "mql_to_sql_rate") == (
        "*MQL → SQL rate*: *40%* · 2 of 5 leads\n▼ 10 pts from 50%\n`······█▁` 8 weeks"
    )
    # Speed to lead: median business hours hand-off -> first contact of those contacted by the report:
    # W: L1 2.00, L2 3.50, L3 1.00 -> 2h (L4 and L5 not yet); P: L6 1.00, L7 5.00 -> 3h.
    assert section(posted, "speed_to_lead") == (
        "*Speed to lead*: *2h* · median of 3 leads; 2 not contacted yet\n▼ 1h from 3h (faster)\n`······█▁` 8 weeks"
    )
    # SLA attainment: clocks due in the week, met / (met + breached). W: L1, L2, L3 met; L4 breached;
    # L6's second clock (MQL again Tue 17 09:00, due 13:00 EST) stopped only by SQL the next day:
    # met late = breached -> 3/5 = 60%. L5's clock is due Mon 23: next week. P: L6 met, L7 late -> 50%.
    assert section(posted, "sla_attainment") == (
        "*SLA attainment*: *60%* · 3 of 5 clocks met\n▲ 10 pts from 50%\n`······▁█` 8 weeks"
    )
    # Marketing-sourced pipeline: deals closed (won or lost) in the week from a lead marketing handed
    # off before the close: D1 (L1) $84,000 + D4 (HOOLI's L4) $30,000 = $114,000, and D2 (GLOBEX's
    # L3) EUR 12,500 kept apart. P: D6 $50,000. Trend in the main currency (USD: 5 deals of 6).
    assert section(posted, "marketing_sourced_pipeline") == (
        "*Marketing-sourced pipeline*: *$114,000* · 3 marketing-sourced deals; also €12,500 (not converted)\n"
        "▲ $64,000 from $50,000\n`▁▁▁▁▁▁▄█` 8 weeks"
    )
    # Influenced revenue: won in the week with a touch within 180 days: D1 $84,000, D2 EUR 12,500
    # (D3 had none). P: D6 $50,000. 50,000 of 84,000 is 4/7 of the way up: the fifth bar.
    assert section(posted, "influenced_revenue") == (
        "*Influenced revenue*: *$84,000* · 2 influenced wins; also €12,500 (not converted)\n"
        "▲ $34,000 from $50,000\n`▁▁▁▁▁▁▅█` 8 weeks"
    )
    # Win rate: won / (won + lost) of the deals closed in the week, by count: D1-D3 of D1-D5 = 60%;
    # D5 closed Sun 23:30 EST (Mon 04:30Z) is still this week. P: D6 of D6, D7 = 50%.
    assert (
        section(posted, "win_rate")
        == "*Win rate*: *60%* · 3 of 5 closed deals won\n▲ 10 pts from 50%\n`······▁█` 8 weeks"
    )


def test_a_late_catch_up_posts_the_figures_as_of_the_occurrence(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    """The clock was down at 08:00 and L5's first contact came in meanwhile: the post that goes out
    at 15:00 still says what was true at 08:00, as the on-time one would have."""
    seed(deps, DATA_SET, "2026-11-23T12:00:00Z")
    seed(deps, [L5_CONTACT], "2026-11-23T15:05:00Z")
    with freeze_time("2026-11-23T20:00:00Z"):
        assert scorecard_job(deps).run_due(utc("2026-11-23T20:00:00Z")) == utc(OCCURRENCE)
        relay.drain()
    [post] = scorecard_posts(fake_slack, "C0SALES")
    assert "as of Mon Nov 23, 08:00 EST" in all_text(post.body["blocks"])
    assert section(post, "speed_to_lead").startswith("*Speed to lead*: *2h* · median of 3 leads; 2 not contacted yet")


def test_the_post_shows_the_configured_metrics_in_the_configured_order(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    chosen = ("win_rate", "sla_attainment", "mql_to_sql_rate")
    alignment = deps.alignment.model_copy(update={"scorecard": Scorecard(metrics=chosen)})
    other = Dependencies(alignment=alignment, database=deps.database, clock=deps.clock)
    seed(other, DATA_SET, "2026-11-23T12:00:00Z")
    with freeze_time("2026-11-23T13:00:20Z"):
        assert scorecard_job(other).run_due(utc("2026-11-23T13:00:20Z")) == utc(OCCURRENCE)
        relay.drain()
    [post] = scorecard_posts(fake_slack, "C0SALES")
    shown = [b["block_id"] for b in post.body["blocks"] if str(b.get("block_id", "")).startswith("scorecard-")]
    assert shown == [f"scorecard-{metric}" for metric in chosen]


def test_both_channels_get_the_same_numbers_once(
    posted: SlackCall, deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    [marketing] = scorecard_posts(fake_slack, "C0MKTG")
    assert marketing.body["blocks"] == posted.body["blocks"]
    assert marketing.body["text"] == posted.body["text"]
    assert posted.body["metadata"]["event_payload"]["key"] == "scorecard:2026-11-16:C0SALES"
    with freeze_time("2026-11-23T20:00:00Z"):  # later the same day, still within the grace: nothing new
        scorecard_job(deps).run_due(utc("2026-11-23T20:00:00Z"))
        relay.drain()
    assert len(scorecard_posts(fake_slack, "C0SALES")) == len(scorecard_posts(fake_slack, "C0MKTG")) == 1


def click_rows(slack: SlackDriver, post: SlackCall, metric: str, *, user: str = "U0OMAR") -> None:
    """Click "Show the rows" on the metric's section of the post, as Slack sends it (with the message's ts)."""
    [block] = [b for b in post.body["blocks"] if b.get("block_id") == f"scorecard-{metric}"]
    button = block["accessory"]
    channel, ts = post.body["channel"], post.response["ts"]
    slack.interact(
        {
            "type": "block_actions",
            "user": {"id": user, "username": user.lower(), "team_id": "T0ALIGN"},
            "trigger_id": "trigger-" + user,
            "channel": {"id": channel},
            "container": {"type": "message", "channel_id": channel, "message_ts": ts, "is_ephemeral": False},
            "message": {"ts": ts, "blocks": post.body["blocks"]},
            "response_url": slack.fake.response_url(),
            "actions": [
                {
                    "type": "button",
                    "action_id": Action.SCORECARD_ROWS.value,
                    "block_id": block["block_id"],
                    "value": button["value"],
                    "action_ts": "1700000000.000000",
                }
            ],
        }
    )


def uploaded(fake: FakeSlack, count: int = 1) -> list[SlackCall]:
    calls = fake.wait_for(lambda calls: len([c for c in calls if c.method == "files.completeUploadExternal"]) >= count)
    return [c for c in calls if c.method == "files.completeUploadExternal"]


def rows_of(call: SlackCall) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(call.body["content"])))


def _amounts(rows: list[dict[str, str]], column: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = {}
    for row in rows:
        if row[column] == "yes" and row["amount"]:
            totals[row["currency"]] = totals.get(row["currency"], Decimal(0)) + Decimal(row["amount"])
    return totals


# What each CSV must give back, recomputed from its columns alone (the definition in words).
RECOMPUTED = {
    # converted = yes / all rows
    "mql_to_sql_rate": lambda rows: f"{round(100 * sum(r['converted'] == 'yes' for r in rows) / len(rows))}%",
    # median of business_hours over the rows counted
    "speed_to_lead": lambda rows: statistics.median(
        Decimal(r["business_hours"]) for r in rows if r["counted"] == "yes"
    ),
    # met / (met + breached)
    "sla_attainment": lambda rows: (
        f"{round(100 * sum(r['outcome'] == 'met' for r in rows) / sum(r['outcome'] != 'not counted' for r in rows))}%"
    ),
    # sum of amounts per currency over the marketing-sourced rows
    "marketing_sourced_pipeline": lambda rows: _amounts(rows, "marketing_sourced"),
    # sum of amounts per currency over the influenced rows
    "influenced_revenue": lambda rows: _amounts(rows, "influenced"),
    # won / all rows
    "win_rate": lambda rows: f"{round(100 * sum(r['status'] == 'won' for r in rows) / len(rows))}%",
}
EXPECTED = {
    "mql_to_sql_rate": "40%",
    "speed_to_lead": Decimal("2.00"),
    "sla_attainment": "60%",
    "marketing_sourced_pipeline": {"USD": Decimal("114000.00"), "EUR": Decimal("12500.00")},
    "influenced_revenue": {"USD": Decimal("84000.00"), "EUR": Decimal("12500.00")},
    "win_rate": "60%",
}


@pytest.mark.parametrize("metric", list(RECOMPUTED))
def test_show_the_rows_uploads_a_csv_that_gives_the_figure_back(
    metric: str, posted: SlackCall, slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    with freeze_time("2026-11-23T16:00:00Z"):
        click_rows(slack, posted, metric)
        [done] = uploaded(fake_slack)
    assert done.body["channel_id"] == "C0SALES"
    assert done.body["thread_ts"] == posted.response["ts"]  # in the post's thread
    rows = rows_of(done)
    assert RECOMPUTED[metric](rows) == EXPECTED[metric]
    comment = done.body["initial_comment"]
    assert comment.startswith("<@U0OMAR> asked for the rows behind *")
    assert "week of Nov 16–22" in comment and "as of Mon Nov 23, 08:00 EST" in comment
    [upload_url] = [c for c in fake_slack.get_calls() if c.method == "files.getUploadURLExternal"]
    assert upload_url.body["filename"] == f"scorecard-{metric}-2026-11-16.csv"


def test_the_rows_are_those_of_the_post_even_after_new_events(
    posted: SlackCall, deps: Dependencies, slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    # L5's first contact (Mon 10:00 EST) arrives after the post; the post's figures were as of 08:00.
    seed(deps, [L5_CONTACT], "2026-11-23T15:05:00Z")
    with freeze_time("2026-11-23T16:00:00Z"):
        click_rows(slack, posted, "speed_to_lead")
        [done] = uploaded(fake_slack)
    rows = {r["lead_id"]: r for r in rows_of(done)}
    assert list(rows) == ["L1", "L2", "L3", "L4", "L5"]  # by hand-off time
    assert {k: (r["business_hours"], r["counted"]) for k, r in rows.items()} == {
        "L1": ("2.00", "yes"),
        "L2": ("3.50", "yes"),
        "L3": ("1.00", "yes"),
        "L4": ("", "no"),
        "L5": ("", "no"),  # contacted after the figure was taken
    }
    assert rows["L3"]["owner_timezone"] == "America/Chicago"
    assert "*2h* (median of 3 leads; 2 not contacted yet)" in done.body["initial_comment"]
    # Taken now, L5 counts: Fri 15:00-17:00 and Mon 09:00-10:00 EST, 3.00 business hours; the median of
    # 1.00, 2.00, 3.00, 3.50 is 2.50.
    with deps.database.read_session() as session:
        later = scorecard.metric_rows(
            session, deps.alignment, "speed_to_lead", week_start=WEEK, as_of=utc("2026-11-23T16:00:00Z")
        )
    assert [r["business_hours"] for r in later.rows if r["lead_id"] == "L5"] == [Decimal("3.00")]
    assert later.figure.shown == "2h 30m"


def test_currencies_are_never_added_together(deps: Dependencies) -> None:
    seed(deps, DATA_SET, "2026-11-23T12:00:00Z")
    with deps.database.read_session() as session:
        found = scorecard.metric_rows(
            session,
            deps.alignment,
            "influenced_revenue",
            week_start=WEEK,
            as_of=utc(OCCURRENCE),
        )
    assert found.figure.totals == {"USD": Decimal("84000.00"), "EUR": Decimal("12500.00")}
    assert found.figure.shown == "$84,000"


def test_sparkline_scales_and_marks_missing_weeks() -> None:
    assert scorecard.sparkline([0, 1, 2, 3, 4, 5, 6, 7]) == "▁▂▃▄▅▆▇█"
    assert scorecard.sparkline([None, 5, None, 5]) == "·▄·▄"  # flat: drawn mid-height
    assert scorecard.sparkline([None, None]) == "··"


def test_nothing_is_posted_before_there_is_any_data(deps: Dependencies) -> None:
    with freeze_time("2026-11-23T13:00:20Z"):
        assert scorecard_job(deps).run_due(utc("2026-11-23T13:00:20Z")) is not None
    with deps.database.read_session() as session:
        assert session.scalars(select(OutboxMessage.key)).all() == []


def test_the_schedule_is_in_the_company_timezone(alignment: Alignment, deps: Dependencies) -> None:
    other = Dependencies(
        alignment=alignment.model_copy(update={"scorecard": Scorecard(schedule="0 8 * * mon")}),
        database=deps.database,
    )
    job = scorecard_job(other)
    # Mon Mar 9 2026, the day after the US clocks changed: 08:00 EDT is 12:00Z (13:00Z in winter).
    assert job.occurrences(utc("2026-03-02T14:00:00Z"), utc("2026-03-10T00:00:00Z")) == [utc("2026-03-09T12:00:00Z")]


def test_when_slack_refuses_the_file_the_clicker_is_told(
    posted: SlackCall, slack: SlackDriver, fake_slack: FakeSlack
) -> None:
    fake_slack.fail_next("files.completeUploadExternal", status=200, error="not_in_channel")
    click_rows(slack, posted, "win_rate")
    [told] = [
        c
        for c in fake_slack.wait_for(lambda calls: any(c.method == "response_url" for c in calls))
        if c.method == "response_url"
    ]
    assert told.body["response_type"] == "ephemeral"
    assert "Slack did not take the file (not_in_channel)" in told.body["text"]
