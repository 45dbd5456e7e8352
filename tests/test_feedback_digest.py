"""The weekly feedback digest to marketing, and the job that sends it."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from freezegun import freeze_time

from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.deps import Dependencies
from bot.ids import Action, Block
from bot.slack.relay import OutboxRelay
from schedules.jobs import build_jobs
from tests.test_feedback_command import all_text

NY = ZoneInfo("America/New_York")


def at(day: int, hour: int, month: int = 11) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=NY)


def send(slack: SlackDriver, when: dt.datetime, text: str, user: str = "U0AVA") -> None:
    with freeze_time(when):
        slack.command("/feedback", text, user=user)


def test_digest_counts_the_week_against_the_previous_and_lists_what_is_open(
    slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay, deps: Dependencies
) -> None:
    # The week before: Mon Nov 2 09:00 .. Mon Nov 9 09:00 (two items).
    send(slack, at(3, 10), "pricing [Acme Corp]: too expensive for year one")
    send(slack, at(5, 11), "objection: security review takes months", user="U0BEN")
    # The digest's week: Mon Nov 9 09:00 .. Mon Nov 16 09:00.
    send(slack, at(9, 10), "competitor [Acme Corp]: Globex offered 30% off")
    send(slack, at(10, 14), "pricing [acme corp]: wants monthly billing", user="U0BEN")
    send(slack, at(11, 9), "competitor [Initech]: evaluating Globex and Hooli", user="U0CHLOE")
    send(slack, at(12, 16), "praise [Initech]: loved the lineage view", user="U0DIEGO")
    send(slack, at(16, 8), "messaging: nobody knows what observability means")  # before Monday 09:00
    send(slack, at(16, 10), "pricing: after the digest's cut-off")  # next week's
    with freeze_time(at(12, 17)):
        relay.drain()
        praise = next(p for p in fake_slack.posts("C0VOC") if "lineage" in p.body["text"])
        slack.click(praise.body, Action.FEEDBACK_ACTED_ON, user="U0LENA", channel="C0VOC")
        modal = fake_slack.calls_to("views.open")[-1].body["view"]
        slack.submit(modal, {Block.NOTE: "Quoted in the November newsletter"}, user="U0LENA")

    [digest_job] = [j for j in build_jobs(deps) if j.name == "feedback-digest"]
    with freeze_time(at(16, 9)):
        digest_job.run_due(dt.datetime.now(dt.UTC))
        relay.drain()

    [post] = fake_slack.posts("C0MKTG")
    shown = all_text(post.body["blocks"])
    assert post.body["blocks"][0]["text"]["text"] == "Customer feedback, Nov 9 – Nov 15"
    assert "*5* items this week, ▲ 3 against the week before (2)." in shown
    assert "Competitor: *2* (▲ 2 vs. 0)" in shown
    assert "Pricing: *1* (= vs. 1)" in shown
    assert "Objection: *0* (▼ 1 vs. 1)" in shown
    assert "Acme Corp — 2\nInitech — 2" in shown  # case-insensitive, the first spelling kept
    assert "Globex — 2\nHooli — 1" in shown
    assert "*Not yet acted on* (6)" in shown  # all open items before the cut-off, old ones included
    assert "lineage" not in shown  # acted on
    assert "after the digest" not in shown
    assert "digest" in post.body["metadata"]["event_payload"]["key"]


def test_the_digest_job_sends_once_per_week_even_when_run_again(
    fake_slack: FakeSlack, relay: OutboxRelay, deps: Dependencies
) -> None:
    [job] = [j for j in build_jobs(deps) if j.name == "feedback-digest"]
    for moment in (at(16, 9), at(16, 9), at(16, 14)):  # the scheduled run, a restart, a late clock
        with freeze_time(moment):
            job.run_due(dt.datetime.now(dt.UTC))
    with freeze_time(at(17, 9)):
        assert job.run_due(dt.datetime.now(dt.UTC)) is None  # a day late: past the grace, not sent
    relay.drain()
    assert len(fake_slack.posts("C0MKTG")) == 1
    assert "_none named_" in all_text(fake_slack.posts("C0MKTG")[0].body["blocks"])


def test_the_digest_fires_at_nine_local_across_the_dst_change(deps: Dependencies) -> None:
    [job] = [j for j in build_jobs(deps) if j.name == "feedback-digest"]
    start = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)
    fires = job.occurrences(start, start + dt.timedelta(days=21))
    assert [f.astimezone(NY).strftime("%a %d %H:%M %Z") for f in fires] == [
        "Mon 26 09:00 EDT",
        "Mon 02 09:00 EST",  # New York left daylight time on Sunday Nov 1
        "Mon 09 09:00 EST",
    ]
    assert [f.hour for f in fires] == [13, 14, 14]  # in UTC
