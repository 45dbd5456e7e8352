"""The joint meetings: occurrences (cron and RRULE, DST, holidays), reminders through the clock, the agenda."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from bot.config import Alignment, Meeting
from bot.db import Database
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.deps import Dependencies
from bot.models import FeedbackItem, OutboxMessage
from bot.services import feedback, meetings, pipeline
from bot.services.crm_schema import validate_events
from bot.slack.relay import OutboxRelay
from schedules.clock import start_scheduler
from schedules.jobs import meetings_tick
from tests.conftest import response_json
from tests.test_feedback_command import all_text

NY = ZoneInfo("America/New_York")
UTC = dt.UTC
AVA = "ava.ross@northwind.example"
CHLOE = "chloe.park@northwind.example"
PRIYA = "priya.nair@northwind.example"
# The example's "Weekly pipeline review": Tuesdays 10:00 New York, in C0SALES, reminders 24h and 15m before.
NOV_10 = dt.datetime(2026, 11, 10, 15, 0, tzinfo=UTC)
NOV_17 = dt.datetime(2026, 11, 17, 15, 0, tzinfo=UTC)


def local(occurrences: list[meetings.Occurrence]) -> list[str]:
    return [o.local.strftime("%a %b %d %H:%M %Z") for o in occurrences]


def meeting(**fields: Any) -> Meeting:
    return Meeting.model_validate({"name": "Marketing sync", "channel": "C0MKTG", **fields})


def with_meetings(alignment: Alignment, *extra: Meeting) -> Alignment:
    return alignment.model_copy(update={"meetings": (*alignment.meetings, *extra)})


def tick(deps: Dependencies, relay: OutboxRelay, moment: dt.datetime | str) -> int:
    with freeze_time(moment):
        queued = meetings_tick(deps)
        relay.drain()
    return queued


def ingest(deps: Dependencies, when: str, *events: dict[str, Any]) -> None:
    stamped = [
        {"specversion": "1.0", "id": f"{e['type']}-{i}-{when}", "source": "crm://test", "time": when, **e}
        for i, e in enumerate(events)
    ]
    validated = validate_events(stamped, stages=[s.name for s in deps.alignment.stages])
    assert not validated.problems, validated.problems
    with freeze_time(when), deps.database.session() as session:
        pipeline.ingest(session, deps.alignment, validated.events, now=dt.datetime.now(UTC))


def handoff(lead: str, owner: str = CHLOE, **extra: Any) -> dict[str, Any]:
    data = {"lead_id": lead, "owner_email": owner, "stage": "MQL", "name": f"Lead {lead}", "company": "Initech"}
    return {"type": "lead.handed_off", "data": data | extra}


def event(type_: str, **data: Any) -> dict[str, Any]:
    return {"type": type_, "data": data}


# --- when -------------------------------------------------------------------------------------


def test_a_cron_meeting_stays_at_ten_local_across_both_dst_changes(alignment: Alignment) -> None:
    [review] = alignment.meetings
    march = meetings.occurrences(
        alignment, review, dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 3, 16, tzinfo=UTC)
    )
    assert local(march) == ["Tue Mar 03 10:00 EST", "Tue Mar 10 10:00 EDT"]  # clocks went forward Sun Mar 8
    assert [o.starts_at.hour for o in march] == [15, 14]
    november = meetings.occurrences(
        alignment, review, dt.datetime(2026, 10, 26, tzinfo=UTC), NOV_10 + dt.timedelta(hours=1)
    )
    assert local(november) == ["Tue Oct 27 10:00 EDT", "Tue Nov 03 10:00 EST", "Tue Nov 10 10:00 EST"]
    assert [o.starts_at.hour for o in november] == [14, 15, 15]
    assert {(o.channel, o.timezone, o.slug) for o in november} == {
        ("C0SALES", "America/New_York", "weekly-pipeline-review")
    }


def test_an_rrule_meeting_keeps_its_wall_clock_and_skips_holidays(alignment: Alignment) -> None:
    sync = meeting(schedule="FREQ=WEEKLY;BYDAY=TH;BYHOUR=9;BYMINUTE=30", skip_holidays=True)
    found = meetings.occurrences(
        alignment, sync, dt.datetime(2026, 10, 28, tzinfo=UTC), dt.datetime(2026, 12, 5, tzinfo=UTC)
    )
    # Thanksgiving (Thu Nov 26) is a US holiday of the example's calendar: skipped, not moved.
    assert local(found) == [
        "Thu Oct 29 09:30 EDT",
        "Thu Nov 05 09:30 EST",
        "Thu Nov 12 09:30 EST",
        "Thu Nov 19 09:30 EST",
        "Thu Dec 03 09:30 EST",
    ]
    held_anyway = sync.model_copy(update={"skip_holidays": False})
    assert "Thu Nov 26 09:30 EST" in local(
        meetings.occurrences(
            alignment, held_anyway, dt.datetime(2026, 11, 20, tzinfo=UTC), dt.datetime(2026, 12, 1, tzinfo=UTC)
        )
    )
    # The agenda of Dec 3 covers the fortnight since the last meeting actually held.
    dec_3 = found[-1]
    assert meetings.previous_occurrence(alignment, sync, dec_3.starts_at) == found[-2]


def test_an_rrule_with_dtstart_and_interval_in_another_timezone(alignment: Alignment) -> None:
    biweekly = meeting(
        schedule="DTSTART:20260302T090000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", timezone="Europe/Berlin"
    )
    found = meetings.occurrences(
        alignment, biweekly, dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 4, 14, tzinfo=UTC)
    )
    # Berlin moves to summer time on Sun Mar 29; 09:00 stays 09:00 there.
    assert local(found) == [
        "Mon Mar 02 09:00 CET",
        "Mon Mar 16 09:00 CET",
        "Mon Mar 30 09:00 CEST",
        "Mon Apr 13 09:00 CEST",
    ]
    assert [o.starts_at.hour for o in found] == [8, 8, 7, 7]


def test_cron_weekday_numbers_mean_what_cron_means(alignment: Alignment) -> None:
    # APScheduler 3 alone would read 4 as Friday; in cron it is Thursday (and 0 and 7 are Sunday).
    thursday = meeting(schedule="0 10 * * 4")
    [first] = meetings.occurrences(
        alignment, thursday, dt.datetime(2026, 11, 16, tzinfo=UTC), dt.datetime(2026, 11, 22, tzinfo=UTC)
    )
    assert local([first]) == ["Thu Nov 19 10:00 EST"]
    weekdays = meeting(schedule="30 8 * * 1-5", timezone="America/Los_Angeles")
    week = meetings.occurrences(
        alignment, weekdays, dt.datetime(2026, 11, 16, tzinfo=UTC), dt.datetime(2026, 11, 23, tzinfo=UTC)
    )
    assert [o.local.strftime("%a %H:%M") for o in week] == [
        "Mon 08:30",
        "Tue 08:30",
        "Wed 08:30",
        "Thu 08:30",
        "Fri 08:30",
    ]


def test_next_occurrences_merges_every_meeting_soonest_first(alignment: Alignment) -> None:
    both = with_meetings(alignment, meeting(schedule="FREQ=WEEKLY;BYDAY=TH;BYHOUR=9;BYMINUTE=30", skip_holidays=True))
    upcoming = meetings.next_occurrences(both, dt.datetime(2026, 11, 18, tzinfo=UTC), limit=4)
    assert [(o.name, o.local.strftime("%b %d")) for o in upcoming] == [
        ("Marketing sync", "Nov 19"),
        ("Weekly pipeline review", "Nov 24"),
        ("Weekly pipeline review", "Dec 01"),
        ("Marketing sync", "Dec 03"),
    ]


# --- reminders --------------------------------------------------------------------------------


def test_reminders_go_at_each_offset_once_across_the_dst_change(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    # Tue Nov 3 10:00 EST (15:00 UTC), two days after New York left daylight time.
    assert tick(deps, relay, "2026-11-02T14:59:00Z") == 0
    assert fake_slack.posts("C0SALES") == []

    assert tick(deps, relay, "2026-11-02T15:00:00Z") == 1
    assert tick(deps, relay, "2026-11-02T15:00:30Z") == 0  # the next tick, and a second process
    assert tick(deps, relay, "2026-11-02T18:00:00Z") == 0
    [day_before] = fake_slack.posts("C0SALES")
    assert "*Weekly pipeline review* is *tomorrow at 10:00 EST* (in 24 hours)" in all_text(day_before.body["blocks"])
    assert day_before.body["text"].startswith("Weekly pipeline review is tomorrow at 10:00 EST (in 24 hours).")
    assert f"<!date^{int(dt.datetime(2026, 11, 3, 15, tzinfo=UTC).timestamp())}^" in all_text(day_before.body["blocks"])
    assert day_before.body["metadata"]["event_payload"]["key"] == "meeting:weekly-pipeline-review:2026-11-03T15:00Z:24h"

    assert tick(deps, relay, "2026-11-03T14:45:00Z") == 1  # 09:45 EST
    assert tick(deps, relay, "2026-11-03T14:50:00Z") == 0
    soon = fake_slack.posts("C0SALES")[-1]
    assert "is *today at 10:00 EST* (in 15 minutes)" in all_text(soon.body["blocks"])
    assert soon.body["metadata"]["event_payload"]["key"] == "meeting:weekly-pipeline-review:2026-11-03T15:00Z:15m"
    assert "Sent late" not in all_text(soon.body["blocks"])

    tick(deps, relay, "2026-11-03T15:30:00Z")  # during and after the meeting: nothing more
    assert len(fake_slack.posts("C0SALES")) == 2


def test_march_reminder_is_24_hours_before_ten_edt(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    # Tue Mar 10 10:00 EDT is 14:00 UTC (the clocks went forward on Sun Mar 8).
    assert tick(deps, relay, "2026-03-09T13:59:00Z") == 0
    assert tick(deps, relay, "2026-03-09T14:00:00Z") == 1
    [post] = fake_slack.posts("C0SALES")
    assert "*tomorrow at 10:00 EDT* (in 24 hours)" in all_text(post.body["blocks"])


@pytest.mark.parametrize(
    ("down_until", "expected"),
    [
        # Down over the 24-hour moment only: it goes at start, late, with the real time left.
        ("2026-11-16T20:00:00Z", ["24h"]),
        # Down over both moments: only the latest goes (no day-before reminder ten minutes before).
        ("2026-11-17T14:52:00Z", ["15m"]),
        # Back after the meeting started: nothing, for that one.
        ("2026-11-17T15:01:00Z", []),
    ],
)
def test_a_clock_that_was_down_sends_a_missed_reminder_only_before_the_meeting(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay, down_until: str, expected: list[str]
) -> None:
    for _ in range(2):  # the clock starts, and restarts right away: still once
        with freeze_time(down_until):
            start_scheduler(deps).shutdown(wait=False)
            relay.drain()
    posts = fake_slack.posts("C0SALES")
    assert [p.body["metadata"]["event_payload"]["key"].rsplit(":", 1)[1] for p in posts] == expected
    for post in posts:
        assert "Sent late: alignbot was down at the reminder time." in all_text(post.body["blocks"])
    if expected == ["24h"]:
        assert "*tomorrow at 10:00 EST* (in 19 hours)" in all_text(posts[0].body["blocks"])
    if expected == ["15m"]:
        assert "*today at 10:00 EST* (in 8 minutes)" in all_text(posts[0].body["blocks"])


# --- the agenda -------------------------------------------------------------------------------


def seed_the_week(deps: Dependencies) -> None:
    """A week of CRM activity and feedback around the Nov 10 meeting."""
    deal = {
        "type": "deal.closed_won",
        "data": {
            "deal_id": "D1",
            "name": "Acme Corp",
            "account_id": "A1",
            "amount": 84000,
            "currency": "USD",
            "owner_email": AVA,
        },
    }
    old_deal = {**deal, "data": {**deal["data"], "deal_id": "D0", "name": "Old Deal", "account_id": "A0"}}
    touch = event(
        "touch.recorded",
        touch_id="T1",
        account_id="A1",
        campaign="Data Summit webinar",
        kind="webinar",
        marketing_owner_email=PRIYA,
    )
    ingest(deps, "2026-11-02T15:00:00Z", touch, handoff("R1"), handoff("R2"), handoff("R3"))
    ingest(deps, "2026-11-09T16:00:00Z", old_deal)  # before the Nov 10 meeting: last week's news
    # Thu Nov 12, 09:00 Chicago (Wednesday was Veterans Day): three hand-offs to Chloe, each due
    # by 13:00 Chicago (19:00 UTC).
    ingest(deps, "2026-11-12T15:00:00Z", handoff("L1"), handoff("L2"), handoff("L3"))
    ingest(deps, "2026-11-12T16:00:00Z", event("lead.contacted", lead_id="L1"))  # met
    ingest(deps, "2026-11-12T21:00:00Z", event("lead.contacted", lead_id="L3"))  # met late; L2 never touched
    ingest(deps, "2026-11-12T16:30:00Z", deal)
    ingest(
        deps,
        "2026-11-12T17:00:00Z",
        event("lead.recycled", lead_id="R1", reason="no_response"),
        event("lead.recycled", lead_id="R2", reason="no_response"),
        event("lead.recycled", lead_id="R3", reason="went dark after the demo"),
    )
    # A CRM re-sync sends R1's recycling again (another event id, the same reason): it counts once.
    ingest(deps, "2026-11-13T17:00:00Z", event("lead.recycled", lead_id="R1", reason="no_response"))
    drafts = [
        ("2026-11-09T12:00:00Z", feedback.Draft("pricing", "Before the last meeting")),
        ("2026-11-12T12:00:00Z", feedback.Draft("pricing", "Too expensive for year one")),
        ("2026-11-12T13:00:00Z", feedback.Draft("pricing", "Wants monthly billing")),
        ("2026-11-13T13:00:00Z", feedback.Draft("competitor", "Evaluating Globex", competitors=("Globex",))),
    ]
    for when, draft in drafts:
        with freeze_time(when), deps.database.session() as session:
            feedback.capture(
                session,
                deps.alignment,
                draft,
                rep="U0BEN",
                channel=None,
                team_id=None,
                source="command",
                now=dt.datetime.now(UTC),
            )
    with deps.database.session() as session:  # marketing acted on one of the week's three
        acted = session.scalars(select(FeedbackItem).where(FeedbackItem.text == "Wants monthly billing")).one()
        acted.acted_on_at, acted.acted_on_by = dt.datetime(2026, 11, 13, 20, tzinfo=UTC), "U0PRIYA"


def test_the_reminder_carries_the_agenda_built_from_the_week(
    deps: Dependencies, slack: SlackDriver, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    seed_the_week(deps)
    with freeze_time("2026-11-09T18:00:00Z"):  # for the Nov 10 meeting: one covered there, one not
        slack.command("/agenda", "add Q4 territory split", user="U0BEN", channel="C0SALES")
        slack.command("/agenda", "add Renewal playbook", user="U0MIA", channel="C0SALES")
    with freeze_time("2026-11-10T15:30:00Z"):
        listed = slack.command("/agenda", "", user="U0MIA", channel="C0SALES")
        body = response_json(listed)
        slack.click(body, "agenda_covered", user="U0MIA", channel="C0SALES")  # the first: Q4 territory split
    with freeze_time("2026-11-13T18:00:00Z"):
        slack.command("/agenda", "add Webinar follow-up speed", user="U0AVA", channel="C0SALES")

    tick(deps, relay, "2026-11-16T15:00:00Z")  # Mon 10:00 EST: 24 hours before Tue Nov 17
    [post] = fake_slack.posts("C0SALES")
    shown = all_text(post.body["blocks"])

    assert "*:trophy: Joint wins*: 1 won, $84,000 (credit by the W-shaped model)" in shown
    assert "• *Acme Corp* $84,000 · closed by Ava Ross · marketing: Priya Nair 100%" in shown
    assert "Old Deal" not in shown  # won before the previous meeting
    assert "*:stopwatch: Lead hand-off SLA*: *33%* met on time (1 of 3 due)" in shown
    assert "*Lead L2* at Initech · Chloe Park · mql-first-touch: not touched" in shown
    assert "*Lead L3* at Initech · Chloe Park · mql-first-touch: touched 2h late" in shown
    assert "*:speech_balloon: Customer feedback*: 3 new, 2 not yet acted on\nPricing — 2 · Competitor — 1" in shown
    assert "Competitors named: Globex — 1" in shown
    assert (
        "*:recycle: Recycled leads*: 3 sent back to marketing\nNo response — 2 · went dark after the demo — 1" in shown
    )
    assert "*:memo: Items* (2)" in shown
    assert "• Renewal playbook — <@U0MIA> _(carried over from Nov 10)_" in shown
    assert "• Webinar follow-up speed — <@U0AVA>" in shown and "Q4 territory split" not in shown
    assert "The numbers cover Tue Nov 10, 10:00 until Mon Nov 16, 10:00 EST." in shown
    assert len(post.body["blocks"]) <= 50
    # Nobody is pinged by the numbers: people are named; only item authors are mentioned.
    assert "<@U0AVA>" not in shown.split("*:memo: Items*")[0]


def test_agenda_for_is_what_app_home_can_show(deps: Dependencies, alignment: Alignment) -> None:
    seed_the_week(deps)
    [review] = alignment.meetings
    now = dt.datetime(2026, 11, 14, tzinfo=UTC)
    [upcoming] = meetings.next_occurrences(alignment, now, limit=1)
    with deps.database.read_session() as session:
        agenda = meetings.agenda_for(session, alignment, review, upcoming, now)
    assert (agenda.since, agenda.until, agenda.parts) == (NOV_10, now, review.agenda)
    assert agenda.wins is not None and (agenda.wins.count, agenda.wins.totals) == (1, "$84,000")
    assert agenda.sla is not None and (agenda.sla.met, agenda.sla.breached, agenda.sla.attainment) == (1, 2, 33)
    assert agenda.feedback is not None and agenda.feedback.categories == [("Pricing", 2), ("Competitor", 1)]
    assert agenda.recycled is not None and agenda.recycled.count == 3


def test_a_meeting_without_reminders_or_meetings_sends_nothing(
    deps: Dependencies, database: Database, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    quiet = Dependencies(alignment=deps.alignment.model_copy(update={"meetings": ()}), database=database)
    with freeze_time("2026-11-16T15:00:00Z"):
        assert meetings_tick(quiet) == 0
        relay.drain()
    assert fake_slack.posts() == []


@pytest.mark.parametrize("status", [503, 429])
def test_a_reminder_held_back_by_a_slack_outage_until_the_meeting_started_is_never_sent(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay, status: int
) -> None:
    # The 15-minute reminder of Tue Nov 3 10:00 EST falls due while every post fails.
    fake_slack.fail_next("chat.postMessage", status=status, count=1000, retry_after=600 if status == 429 else None)
    assert tick(deps, relay, "2026-11-03T14:45:00Z") == 1
    assert fake_slack.posts("C0SALES") == []
    fake_slack.clear_faults()  # Slack is back two minutes into the meeting
    with freeze_time("2026-11-03T15:02:00Z"):
        relay.drain()
    assert fake_slack.posts("C0SALES") == []  # "in 15 minutes" after the start would mislead
    with deps.database.read_session() as session:
        [row] = session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "meeting.reminder")).all()
    assert row.failed_at is not None and row.delivered_at is None
    assert "expired at 2026-11-03T15:00:00+00:00" in (row.last_error or "")
