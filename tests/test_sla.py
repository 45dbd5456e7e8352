"""The lead-handoff SLA: clocks from CRM events, yellow and red flags by DM, buttons, noise budget."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from freezegun import freeze_time
from slack_bolt import App
from sqlalchemy import Engine, event, select

from bot.config import Alignment, Noise
from bot.crm_signature import sign
from bot.demo.fakeslack import FakeSlack
from bot.demo.slack_signing import SlackDriver
from bot.deps import Dependencies
from bot.ids import Action, Block
from bot.models import OutboxMessage, SlaClock
from bot.projector import CrmProjector
from bot.services import sla as sla_service
from bot.slack.relay import OutboxRelay
from handlers.crm import handle
from schedules.clock import ON_TIME_GAP, SlaTicker
from schedules.jobs import sla_tick
from tests.conftest import SIGNING_SECRET, response_json
from tests.test_feedback_command import all_text

SECRET = "whsec-sla"
CHLOE = "chloe.park@northwind.example"  # SDR in Chicago; manager Mia (U0MIA) in New York
DIEGO = "diego.alvarez@northwind.example"  # New York


def ce(type_: str, time: str, data: dict[str, Any], id_: str | None = None) -> dict[str, Any]:
    return {
        "specversion": "1.0",
        "id": id_ or f"{type_}-{data.get('lead_id')}-{time}",
        "source": "crm://sf",
        "type": type_,
        "time": time,
        "data": data,
    }


def handoff(lead: str, time: str, owner: str = CHLOE, **extra: Any) -> dict[str, Any]:
    return ce(
        "lead.handed_off",
        time,
        {
            "lead_id": lead,
            "owner_email": owner,
            "stage": "MQL",
            "name": "Dana Scully",
            "company": "FBI Analytics",
            **extra,
        },
    )


def send(deps: Dependencies, *events: dict[str, Any]) -> dict[str, Any]:
    """The endpoint's own logic, then the projector's pass that the worker's thread would run."""
    body = json.dumps(list(events)).encode()
    headers = {"content-type": "application/cloudevents-batch+json", "x-alignbot-signature": sign(SECRET, body)}
    answer = handle(deps, (SECRET,))(headers, body)
    assert answer.status == 202, answer.body
    CrmProjector(deps.database, deps.alignment, clock=deps.clock).drain()
    return answer.body


def at(moment: str) -> Any:
    return freeze_time(moment)


def tick_and_drain(deps: Dependencies, relay: OutboxRelay, moment: str) -> None:
    with at(moment):
        sla_tick(deps)
        relay.drain()


def clock_of(deps: Dependencies, lead: str) -> SlaClock:
    with deps.database.read_session() as session:
        return session.scalars(select(SlaClock).where(SlaClock.lead_id == lead)).one()


def dms(fake: FakeSlack, user: str) -> list[str]:
    return [all_text(c.body["blocks"]) for c in fake.posts(user)]


def test_a_clock_runs_in_the_owners_business_hours(deps: Dependencies) -> None:
    # Friday 16:30 in Chicago (Chloe's timezone), 09:00-17:00, a 4-hour SLA: half an hour on Friday,
    # three and a half on Monday: due Monday 12:30 Chicago time.
    with at("2026-11-20T22:35:00Z"):
        send(deps, handoff("L1", "2026-11-20T16:30:00-06:00"))
    clock = clock_of(deps, "L1")
    assert clock.due_at == dt.datetime(2026, 11, 23, 18, 30, tzinfo=dt.UTC)  # 12:30 CST
    assert clock.warn_at == dt.datetime(2026, 11, 23, 17, 30, tzinfo=dt.UTC)  # 75%: 3h in, 11:30 CST
    assert (clock.state, clock.sla_version, clock.owner_email) == ("open", "2026-09", CHLOE)


def test_yellow_then_red_with_escalation_to_the_manager(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):  # Monday 09:00 in Chicago
        send(deps, handoff("L1", "2026-11-23T15:00:00Z"))
    tick_and_drain(deps, relay, "2026-11-23T17:59:00Z")  # before 75%: nothing
    assert fake_slack.posts() == []

    tick_and_drain(deps, relay, "2026-11-23T18:00:02Z")  # 12:00 Chicago: 3 of 4 hours
    [yellow] = fake_slack.posts("U0CHLOE")
    text = all_text(yellow.body["blocks"])
    assert "*Dana Scully* at FBI Analytics is waiting for your first touch: *1h* of business time left" in text
    due = int(dt.datetime(2026, 11, 23, 19, 0, tzinfo=dt.UTC).timestamp())
    assert f"<!date^{due}^" in text and "Mon Nov 23, 13:00 CST" in text  # each reader's time; hers as fallback
    assert "SLA *mql-first-touch* (version 2026-09)" in text
    buttons = {e["action_id"]: e for b in yellow.body["blocks"] if b["type"] == "actions" for e in b["elements"]}
    assert set(buttons) == {Action.SLA_CONTACTED, Action.SLA_RECYCLE, Action.OPEN_IN_CRM}
    assert buttons[Action.OPEN_IN_CRM]["url"] == "https://northwind.example.my.salesforce.com/L1"

    tick_and_drain(deps, relay, "2026-11-23T19:00:01Z")  # 13:00 Chicago: the deadline
    assert len(fake_slack.posts("U0CHLOE")) == 2
    red = dms(fake_slack, "U0CHLOE")[1]
    assert ":red_circle: *Dana Scully* at FBI Analytics has reached its SLA deadline" in red
    [manager] = dms(fake_slack, "U0MIA")
    assert "<@U0CHLOE> has not yet touched *Dana Scully* at FBI Analytics: the SLA reached its deadline" in manager
    assert clock_of(deps, "L1").state == "breached"

    tick_and_drain(deps, relay, "2026-11-23T21:00:00Z")  # later ticks send nothing more
    assert len(fake_slack.posts()) == 3


def test_a_contact_before_the_yellow_flag_means_no_message_at_all(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("L2", "2026-11-23T15:00:00Z"))
    with at("2026-11-23T16:00:00Z"):
        send(deps, ce("lead.contacted", "2026-11-23T16:00:00Z", {"lead_id": "L2"}))
    tick_and_drain(deps, relay, "2026-11-24T15:00:00Z")
    assert fake_slack.posts() == []
    assert clock_of(deps, "L2").state == "met"


def test_a_late_arriving_contact_corrects_a_red_flag(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("L3", "2026-11-23T15:00:00Z"))
    tick_and_drain(deps, relay, "2026-11-23T19:00:05Z")
    assert any(":red_circle:" in t for t in dms(fake_slack, "U0CHLOE"))
    # The CRM logged the call at 12:45 Chicago, before the deadline; the sync delivers it at 14:30.
    with at("2026-11-23T20:30:00Z"):
        send(deps, ce("lead.contacted", "2026-11-23T18:45:00Z", {"lead_id": "L3"}))
        relay.drain()
    assert clock_of(deps, "L3").state == "met"
    assert any("Correction: *Dana Scully* at FBI Analytics *met* the SLA" in t for t in dms(fake_slack, "U0CHLOE"))
    assert any("Correction" in t for t in dms(fake_slack, "U0MIA"))


def test_a_contact_after_the_deadline_is_met_late_and_not_corrected(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("L4", "2026-11-23T15:00:00Z"))
    tick_and_drain(deps, relay, "2026-11-23T19:00:05Z")
    with at("2026-11-23T20:00:00Z"):
        send(deps, ce("lead.contacted", "2026-11-23T20:00:00Z", {"lead_id": "L4"}))
        relay.drain()
    assert clock_of(deps, "L4").state == "met_late"
    assert not any("Correction" in t for t in dms(fake_slack, "U0CHLOE"))


def test_one_nudge_per_level_under_duplicates_and_a_restart(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        for _ in range(5):
            send(deps, handoff("L5", "2026-11-23T15:00:00Z"))
    for moment in ("2026-11-23T18:00:02Z", "2026-11-23T18:00:03Z", "2026-11-23T19:00:02Z", "2026-11-23T19:00:02Z"):
        tick_and_drain(deps, relay, moment)
        # a "restart": a new relay, and the clock's catch-up tick, at the same moment
        OutboxRelay(deps.database, relay.client, pace=0).drain()
    with at("2026-11-23T19:30:00Z"):  # the CRM re-sends the hand-off under a new id
        send(deps, handoff("L5", "2026-11-23T15:00:00Z", id_extra=1) | {"id": "resent-1"})
        relay.drain()
    assert len(fake_slack.posts("U0CHLOE")) == 2
    assert len(fake_slack.posts("U0MIA")) == 1


def test_after_downtime_missed_flags_go_once_and_say_they_are_late(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("L6", "2026-11-23T15:00:00Z"))
    tick_and_drain(deps, relay, "2026-11-23T20:00:00Z")  # down from before 12:00 to 14:00 Chicago
    [only] = dms(fake_slack, "U0CHLOE")
    assert ":red_circle:" in only and "Sent late: alignbot was down at the deadline." in only
    assert "*1h* past the SLA" in only or "past the SLA by *1h*" in only


def test_reassignment_moves_the_clock_with_the_time_left_and_tells_both(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("L7", "2026-11-23T15:00:00Z"))  # Chloe, 09:00 Chicago, due 13:00 Chicago
    with at("2026-11-23T16:00:00Z"):  # one business hour later, to Diego in New York (11:00 there)
        send(
            deps,
            ce("lead.stage_changed", "2026-11-23T16:00:00Z", {"lead_id": "L7", "stage": "MQL", "owner_email": DIEGO}),
        )
        relay.drain()
    clock = clock_of(deps, "L7")
    assert clock.owner_email == DIEGO
    assert clock.due_at == dt.datetime(2026, 11, 23, 19, 0, tzinfo=dt.UTC)  # 3h left: 14:00 New York
    assert any(
        "is now yours (from <@U0CHLOE>), with *3h* of business time left" in t for t in dms(fake_slack, "U0DIEGO")
    )
    assert any("moved to <@U0DIEGO>" in t for t in dms(fake_slack, "U0CHLOE"))


def test_moving_past_the_stage_stops_the_clock(deps: Dependencies) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(
            deps,
            handoff("L8", "2026-11-23T15:00:00Z"),
            ce("lead.stage_changed", "2026-11-23T16:00:00Z", {"lead_id": "L8", "stage": "SQL"}),
        )
    clock = clock_of(deps, "L8")
    assert (clock.state, clock.stopped_by, clock.next_check_at) == ("met", "lead.stage_changed", None)


def test_quiet_hours_hold_a_nudge_until_morning(deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay) -> None:
    # A wall-clock SLA (business_hours = false) whose red flag falls at 22:00 in Chicago.
    sla = deps.alignment.sla[0].model_copy(update={"business_hours": False})
    alignment = deps.alignment.model_copy(update={"sla": (sla,)})
    other = Dependencies(alignment=alignment, database=deps.database)
    with at("2026-11-23T00:00:00Z"):
        send(other, handoff("L9", "2026-11-24T00:00:00Z"))  # 18:00 Chicago, due 22:00
    tick_and_drain(other, relay, "2026-11-24T03:00:05Z")  # the yellow flag at 21:00 Chicago
    tick_and_drain(other, relay, "2026-11-24T04:00:05Z")  # the red flag at 22:00
    assert fake_slack.posts("U0CHLOE") == []  # 22:00 in Chicago: quiet hours
    assert len(fake_slack.posts("U0MIA")) == 0  # 23:00 in New York for Mia: quiet too
    with at("2026-11-24T14:00:00Z"):  # 08:00 in Chicago, 09:00 in New York
        relay.drain()
    # The yellow and the red, in the morning, and Mia's escalation of the breach.
    assert [c.body["text"].split(":")[0] for c in fake_slack.posts("U0CHLOE")] == ["Yellow flag", "Red flag"]
    [escalation] = fake_slack.posts("U0MIA")
    assert escalation.body["text"].startswith("Red flag") and "Dana Scully" in all_text(escalation.body["blocks"])


def test_past_the_daily_cap_nudges_fold_into_one_dm(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    alignment = deps.alignment.model_copy(update={"noise": Noise(quiet_hours=None, max_dms_per_day=2)})
    other = Dependencies(alignment=alignment, database=deps.database)
    with at("2026-11-23T15:00:00Z"):
        send(other, *[handoff(f"C{i}", "2026-11-23T15:00:00Z") for i in range(5)])
    tick_and_drain(other, relay, "2026-11-23T18:00:05Z")  # five yellow flags due at once
    with at("2026-11-23T18:31:00Z"):
        relay.drain()
    posts = dms(fake_slack, "U0CHLOE")
    assert len(posts) == 3  # two nudges, then one DM with the other three
    assert "*3 more SLA nudges today*" in posts[2]
    folded = [line for line in posts[2].splitlines() if line.startswith("• ")]
    assert len(folded) == 3 and all("Dana Scully" in line for line in folded)


def test_a_breach_after_the_days_digest_went_out_still_reaches_its_owner(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    alignment = deps.alignment.model_copy(update={"noise": Noise(quiet_hours=None, max_dms_per_day=2)})
    other = Dependencies(alignment=alignment, database=deps.database)
    with at("2026-11-23T15:00:00Z"):
        send(other, *[handoff(f"F{i}", "2026-11-23T15:00:00Z", name=f"Lead F{i}") for i in range(3)])
    tick_and_drain(other, relay, "2026-11-23T18:00:05Z")  # three yellow flags: two DMs, one folded
    with at("2026-11-23T18:31:00Z"):
        relay.drain()  # the day's digest goes
    assert len(dms(fake_slack, "U0CHLOE")) == 3
    tick_and_drain(other, relay, "2026-11-23T19:00:05Z")  # the three deadlines pass: past the cap, held together
    assert len(dms(fake_slack, "U0CHLOE")) == 3
    with at("2026-11-23T19:31:00Z"):
        relay.drain()
    posts = dms(fake_slack, "U0CHLOE")
    assert len(posts) == 4  # the red flags in one more DM, not lost till tomorrow
    assert "*3 more SLA nudges today*" in posts[3]
    for lead in ("Lead F0", "Lead F1", "Lead F2"):
        assert f"• Red flag: *{lead}* at FBI Analytics missed mql-first-touch" in posts[3]
    tick_and_drain(other, relay, "2026-11-24T15:00:00Z")  # and nothing again the next day
    assert len(dms(fake_slack, "U0CHLOE")) == 4


def test_a_red_flag_also_goes_to_an_escalation_channel_once(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    sla = deps.alignment.sla[0].model_copy(update={"escalate_to": ("manager", "C0SALES")})
    other = Dependencies(alignment=deps.alignment.model_copy(update={"sla": (sla,)}), database=deps.database)
    with at("2026-11-23T15:00:00Z"):
        send(other, handoff("X1", "2026-11-23T15:00:00Z"))
    tick_and_drain(other, relay, "2026-11-23T19:00:05Z")  # the deadline: 13:00 in Chicago
    tick_and_drain(other, relay, "2026-11-23T19:30:00Z")  # a later tick, and a restart's, add nothing
    [post] = fake_slack.posts("C0SALES")
    shown = all_text(post.body["blocks"])
    assert "*Dana Scully* at FBI Analytics" in shown and "<@U0CHLOE>" in shown
    assert post.body["metadata"]["event_payload"]["key"] == f"sla:{clock_of(other, 'X1').id}:red:C0SALES"
    assert len(fake_slack.posts("U0MIA")) == 1  # the manager too, as configured


def test_a_hand_off_heard_of_days_after_its_deadline_raises_no_flag(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    """A backfill of history: Monday's hand-off, due Monday 13:00 in Chicago, first sent on Thursday."""
    with at("2026-11-26T15:00:00Z"):
        send(deps, handoff("H1", "2026-11-23T15:00:00Z"))
    tick_and_drain(deps, relay, "2026-11-26T15:00:05Z")
    tick_and_drain(deps, relay, "2026-11-27T15:00:00Z")
    assert fake_slack.posts("U0CHLOE") == [] and fake_slack.posts("U0MIA") == []
    assert clock_of(deps, "H1").state == "breached"  # counted as missed, in the scorecard and /sla
    with deps.database.read_session() as session:
        assert session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind.like("sla.%"))).all() == []


def test_the_days_digest_waits_out_quiet_hours(deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay) -> None:
    """Folded at 19:50 in Chicago, the digest would go at 20:20, in quiet hours (20:00-08:00): it goes at 08:00."""
    alignment = deps.alignment.model_copy(update={"noise": Noise(quiet_hours="20:00-08:00", max_dms_per_day=2)})
    sla = alignment.sla[0].model_copy(update={"business_hours": False})
    other = Dependencies(alignment=alignment.model_copy(update={"sla": (sla,)}), database=deps.database)
    with at("2026-11-23T22:50:00Z"):  # 16:50 in Chicago
        send(other, *[handoff(f"Q{i}", "2026-11-23T22:50:00Z", name=f"Lead Q{i}") for i in range(3)])
    tick_and_drain(other, relay, "2026-11-24T01:50:05Z")  # 19:50 in Chicago: three yellow flags, cap 2
    with at("2026-11-24T02:25:00Z"):  # 20:25 in Chicago
        relay.drain()
    assert len(dms(fake_slack, "U0CHLOE")) == 2
    with at("2026-11-24T14:00:30Z"):  # 08:00 in Chicago
        relay.drain()
    posts = dms(fake_slack, "U0CHLOE")
    assert len(posts) == 3
    assert "*1 more SLA nudge today*" in posts[2] and "Lead Q2" in posts[2]


def test_the_daily_cap_counts_the_dms_of_earlier_ticks(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    alignment = deps.alignment.model_copy(update={"noise": Noise(quiet_hours=None, max_dms_per_day=2)})
    other = Dependencies(alignment=alignment, database=deps.database)
    with at("2026-11-23T15:00:00Z"):
        send(other, handoff("E0", "2026-11-23T15:00:00Z"))
        send(other, *[handoff(f"E{i}", "2026-11-23T15:30:00Z") for i in range(1, 4)])
    tick_and_drain(other, relay, "2026-11-23T18:00:05Z")  # one yellow flag
    assert len(dms(fake_slack, "U0CHLOE")) == 1
    tick_and_drain(other, relay, "2026-11-23T18:30:05Z")  # three more: one within the budget
    with at("2026-11-23T19:01:00Z"):
        relay.drain()
    posts = dms(fake_slack, "U0CHLOE")
    assert len(posts) == 3
    assert "*2 more SLA nudges today*" in posts[2]


def test_hand_offs_that_arrive_past_their_deadline_keep_the_daily_cap(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    """A CRM that was down all morning sends its hand-offs at once: red flags as they are applied, capped."""
    alignment = deps.alignment.model_copy(update={"noise": Noise(quiet_hours=None, max_dms_per_day=2)})
    other = Dependencies(alignment=alignment, database=deps.database)
    with at("2026-11-23T19:30:00Z"):  # due 19:00 (13:00 in Chicago): breached on arrival
        send(other, *[handoff(f"B{i}", "2026-11-23T15:00:00Z") for i in range(5)])
    with at("2026-11-23T19:40:00Z"):
        send(other, *[handoff(f"B{i}", "2026-11-23T15:00:00Z") for i in range(5, 7)])
    with at("2026-11-23T20:01:00Z"):
        relay.drain()
    posts = dms(fake_slack, "U0CHLOE")
    assert len(posts) == 3  # two red flags, then one DM with the other five
    assert all("is past the SLA by *30m*" in p for p in posts[:2])
    assert all("Sent late: the CRM sent the hand-off after the deadline." in p for p in posts[:2])
    assert not any("alignbot was down" in p for p in posts)
    assert "*5 more SLA nudges today*" in posts[2]
    assert len(fake_slack.posts("U0MIA")) == 1  # her one escalation of the day


def test_mark_contacted_from_the_dm(deps: Dependencies, app: App, fake_slack: FakeSlack, relay: OutboxRelay) -> None:
    slack = SlackDriver(app, fake_slack, SIGNING_SECRET)
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("L10", "2026-11-23T15:00:00Z"))
    tick_and_drain(deps, relay, "2026-11-23T18:00:05Z")
    [yellow] = fake_slack.posts("U0CHLOE")
    with at("2026-11-23T18:10:00Z"):
        slack.click(yellow.body, Action.SLA_CONTACTED, user="U0CHLOE", channel="DCHLOE")
        slack.click(yellow.body, Action.SLA_CONTACTED, user="U0CHLOE", channel="DCHLOE")  # a double click
    replaced = fake_slack.calls_to("response_url")
    assert replaced[0].body["replace_original"] is True
    assert "marked contacted: the SLA was met" in all_text(replaced[0].body["blocks"])
    assert clock_of(deps, "L10").state == "met"
    tick_and_drain(deps, relay, "2026-11-23T19:00:05Z")
    assert len(fake_slack.posts("U0CHLOE")) == 1 and fake_slack.posts("U0MIA") == []


def test_recycle_from_the_dm_goes_back_to_marketing(
    deps: Dependencies, app: App, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    slack = SlackDriver(app, fake_slack, SIGNING_SECRET)
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("L11", "2026-11-23T15:00:00Z", campaign="Data Summit webinar"))
    tick_and_drain(deps, relay, "2026-11-23T18:00:05Z")
    [yellow] = fake_slack.posts("U0CHLOE")
    with at("2026-11-23T18:20:00Z"):
        slack.click(yellow.body, Action.SLA_RECYCLE, user="U0CHLOE", channel="DCHLOE")
        modal = fake_slack.calls_to("views.open")[0].body["view"]
        invalid = response_json(slack.submit(modal, {Block.NOTE: "x"}, user="U0CHLOE"))
        assert invalid["response_action"] == "errors" and "reason" in invalid["errors"]
        slack.submit(
            modal, {Block.REASON: ("option", "not_ready"), Block.NOTE: "Budget <!here> next year"}, user="U0CHLOE"
        )
        relay.drain()
    [back] = fake_slack.posts("C0MKTG")
    text = all_text(back.body["blocks"])
    assert (
        "<@U0CHLOE> sent *Dana Scully* at FBI Analytics (from Data Summit webinar) back to marketing: *Not ready*"
        in text
    )
    assert "&lt;!here&gt;" in text
    assert clock_of(deps, "L11").state == "met"


def test_slash_sla_lists_my_clocks_and_explains_one(deps: Dependencies, slack: SlackDriver) -> None:
    with at("2026-11-20T22:30:00Z"):  # Friday 16:30 Chicago
        send(deps, handoff("L12", "2026-11-20T22:30:00Z"), handoff("L13", "2026-11-20T23:30:00Z"))
    with at("2026-11-23T15:00:00Z"):
        mine = response_json(slack.command("/sla", "", user="U0CHLOE"))
        explained = response_json(slack.command("/sla", "L12", user="U0CHLOE"))
        unknown = response_json(slack.command("/sla", "NOPE", user="U0CHLOE"))
        stranger = response_json(slack.command("/sla", "", user="U0NOBODY"))
    listed = all_text(mine["blocks"])
    assert listed.index("Dana Scully") < listed.rindex("Dana Scully")  # two, soonest first
    assert "3h 30m left, due Mon 12:30" in listed and "4h left, due Mon 13:00" in listed
    text = all_text(explained["blocks"])
    assert "due *Mon Nov 23, 12:30 CST*" in text
    assert "Fri Nov 20 16:30–17:00" in text and "Mon Nov 23 09:00–12:30" in text
    assert "No SLA clock for lead `NOPE`" in unknown["text"]
    assert "not in the alignment's [[people]]" in stranger["text"]


@contextlib.contextmanager
def statements_run(engine: Engine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their driver parameters) that ``engine`` runs inside the block."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def query_plan(deps: Dependencies, statement: str, parameters: Any) -> str:
    """How the database would run ``statement``: SQLite's query plan, or PostgreSQL's with
    sequential scans priced out (on a handful of rows it would rightly read the table whole)."""
    with deps.database.engine.connect() as conn:
        if deps.database.is_sqlite:
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters).all()
            lines = [str(row[-1]) for row in rows]
        else:
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            lines = [str(row[0]) for row in conn.exec_driver_sql("EXPLAIN " + statement, parameters)]
        conn.rollback()
    return "\n".join(lines)


def test_the_index_makes_the_tick_read_only_due_clocks(deps: Dependencies) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(deps, *[handoff(f"X{i}", f"2026-11-23T15:{i:02d}:00Z") for i in range(10)])
    with at("2026-11-23T18:03:30Z"), statements_run(deps.database.engine) as statements:
        # only the first four have reached their yellow flag
        assert sla_tick(deps) == 4
        assert sla_tick(deps) == 0  # each moved on to its deadline
    [(select_due, parameters), *_] = [
        (statement, parameters)
        for statement, parameters in statements
        if "FROM sla_clocks" in statement and "next_check_at <=" in statement
    ]
    # The tick finds the due clocks through ix_sla_clocks_next_check instead of reading every clock.
    plan = query_plan(deps, select_due, parameters)
    assert "ix_sla_clocks_next_check" in plan, plan
    assert "SCAN sla_clocks" not in plan and "Seq Scan" not in plan, plan


@pytest.mark.parametrize("business_hours", [True, False])
def test_clocks_follow_the_sla_setting(deps: Dependencies, business_hours: bool) -> None:
    sla = deps.alignment.sla[0].model_copy(update={"business_hours": business_hours})
    alignment: Alignment = deps.alignment.model_copy(update={"sla": (sla,)})
    other = Dependencies(alignment=alignment, database=deps.database)
    with at("2026-11-21T15:00:00Z"):  # a Saturday
        send(other, handoff("W1", "2026-11-21T15:00:00Z"))
    due = clock_of(deps, "W1").due_at
    expected = (
        dt.datetime(2026, 11, 23, 19, 0, tzinfo=dt.UTC)
        if business_hours
        else dt.datetime(2026, 11, 21, 19, 0, tzinfo=dt.UTC)
    )
    assert due == expected


def test_a_manager_hears_of_one_breach_by_dm_and_of_the_rest_in_the_daily_summary(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(
            deps,
            handoff("M1", "2026-11-23T15:00:00Z"),
            handoff("M2", "2026-11-23T15:00:00Z"),
            handoff("M3", "2026-11-23T15:00:00Z", owner=DIEGO),
        )
    tick_and_drain(deps, relay, "2026-11-23T19:00:05Z")  # all three past the SLA
    assert len(fake_slack.posts("U0MIA")) == 1  # one escalation by DM
    from schedules.jobs import build_jobs

    [job] = [j for j in build_jobs(deps) if j.name == "sla-manager-summary"]
    for _ in range(2):  # the scheduled run and a restart's catch-up
        with at("2026-11-23T21:30:00Z"):  # 16:30 in New York
            job.run_due(dt.datetime.now(dt.UTC))
            relay.drain()
    posts = dms(fake_slack, "U0MIA")
    assert len(posts) == 2
    summary = posts[1]
    assert "*Past the SLA* (3)" in summary
    assert summary.count("late*") == 3 and "<@U0DIEGO>" in summary and "<@U0CHLOE>" in summary


def test_a_dm_held_overnight_counts_against_the_next_days_budget(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    alignment = deps.alignment.model_copy(update={"noise": Noise(max_dms_per_day=2)})
    sla = alignment.sla[0].model_copy(update={"business_hours": False})
    other = Dependencies(alignment=alignment.model_copy(update={"sla": (sla,)}), database=deps.database)
    with at("2026-11-24T02:00:00Z"):  # 20:00 in Chicago: quiet hours
        send(other, *[handoff(f"N{i}", "2026-11-24T02:00:00Z") for i in range(4)])
    tick_and_drain(other, relay, "2026-11-24T05:00:05Z")  # 23:00: four yellow flags, all held for the morning
    with at("2026-11-24T14:40:00Z"):  # 08:40 the next morning
        relay.drain()
    posts = dms(fake_slack, "U0CHLOE")
    assert len(posts) == 3  # two within the day's budget, then one DM folding the rest


def test_recycling_edits_the_nudge_so_its_buttons_go(
    deps: Dependencies, app: App, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    slack = SlackDriver(app, fake_slack, SIGNING_SECRET)
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("R1", "2026-11-23T15:00:00Z"))
    tick_and_drain(deps, relay, "2026-11-23T18:00:05Z")
    [yellow] = fake_slack.posts("U0CHLOE")
    with at("2026-11-23T18:20:00Z"):
        slack.click(yellow.body, Action.SLA_RECYCLE, user="U0CHLOE", channel="DCHLOE")
        modal = fake_slack.calls_to("views.open")[0].body["view"]
        slack.submit(modal, {Block.REASON: ("option", "bad_fit")}, user="U0CHLOE")
        relay.drain()
    [edit] = fake_slack.calls_to("chat.update")
    assert edit.body["ts"] == yellow.response["ts"]
    assert "recycled to marketing" in all_text(edit.body["blocks"])
    assert not any(b["type"] == "actions" for b in edit.body["blocks"])


def test_the_red_flag_at_the_deadline_does_not_say_zero_minutes_late(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("Z1", "2026-11-23T15:00:00Z"))
    tick_and_drain(deps, relay, "2026-11-23T19:00:01Z")
    red = dms(fake_slack, "U0CHLOE")[-1]
    assert "has reached its SLA deadline" in red and "0m" not in red
    assert "Your manager hears of it too" in red


def _on_time_runs(scheduler: BackgroundScheduler) -> list[Any]:
    return [job for job in scheduler.get_jobs() if job.name == SlaTicker.ON_TIME]


def test_a_flag_due_between_two_regular_ticks_gets_a_tick_at_its_moment(
    deps: Dependencies, fake_slack: FakeSlack, relay: OutboxRelay
) -> None:
    with at("2026-11-23T15:00:00Z"):
        send(deps, handoff("T1", "2026-11-23T15:00:00Z"))
    with deps.database.read_session() as session:
        moment = sla_service.next_check(session)
    assert moment is not None  # the yellow flag's

    def ticker(now: list[dt.datetime]) -> tuple[SlaTicker, BackgroundScheduler]:
        scheduler = BackgroundScheduler(timezone=dt.UTC)  # never started: only its jobs are read
        return SlaTicker(dataclasses.replace(deps, clock=lambda: now[0]), scheduler), scheduler

    far, far_jobs = ticker([moment - dt.timedelta(seconds=5)])
    far.aim()
    assert _on_time_runs(far_jobs) == []  # the regular run comes first
    late, late_jobs = ticker([moment + dt.timedelta(seconds=1)])
    late.aim()  # passed while a run acted: the next run soon after
    assert [j.trigger.run_date for j in _on_time_runs(late_jobs)] == [moment + dt.timedelta(seconds=1) + ON_TIME_GAP]

    now = [moment - dt.timedelta(seconds=1.5)]
    early, jobs = ticker(now)
    early.aim()
    early.aim()  # after another regular run: still one run armed
    [job] = _on_time_runs(jobs)
    assert job.trigger.run_date == moment
    now[0] = moment  # the armed run fires at the moment: the flag goes, and nothing more is armed
    job.func(*job.args)
    assert _on_time_runs(jobs) == [job]  # (the scheduler, not started, never removed the fired one)
    with at("2026-11-23T18:00:01Z"):
        relay.drain()
    assert len(dms(fake_slack, "U0CHLOE")) == 1


def test_clocks_started_by_one_batch_are_stored_with_the_ids_their_flags_name(deps: Dependencies) -> None:
    """New clocks get their ids before they are inserted (one INSERT each, no UPDATE after): the flag
    queued as a clock is applied must name the row that is stored, batch after batch."""
    with at("2026-11-23T19:30:00Z"):  # B0 and B1 are past their 19:00 deadline on arrival; B2 is not
        send(deps, handoff("B0", "2026-11-23T15:00:00Z"), handoff("B1", "2026-11-23T15:00:00Z"))
        send(deps, handoff("B2", "2026-11-23T19:20:00Z"), handoff("B3", "2026-11-23T15:00:00Z", owner=DIEGO))
    with deps.database.read_session() as session:
        clocks = {c.lead_id: c for c in session.scalars(select(SlaClock))}
        reds = {
            key
            for key in session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "sla.red"))
            if key.count(":") == 2  # the owner's flag, not the manager's copy
        }
    assert len({c.id for c in clocks.values()}) == 4
    assert reds == {f"sla:{clocks[lead].id}:red" for lead in ("B0", "B1", "B3")}
    assert {lead: c.state for lead, c in clocks.items()} == {
        "B0": "breached",
        "B1": "breached",
        "B2": "open",
        "B3": "breached",
    }
    assert clocks["B2"].next_check_at == clocks["B2"].warn_at  # the state _apply gave it, stored at once
    assert clocks["B0"].escalated_at is not None and clocks["B0"].next_check_at is None
