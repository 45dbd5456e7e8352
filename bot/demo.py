"""``alignbot demo``: the whole product on this machine, with no Slack workspace and no server.

A temporary SQLite database, the example alignment, the real Bolt app driven by signed
requests, an in-process fake Slack, and a generated week replayed on a simulated clock:

- reps capture customer feedback during their working hours (quick capture and the form;
  one mistypes a category, one tries to ping ``<!channel>``);
- marketers close the loop a few working hours later with "Acted on" and a note (once, a
  second marketer clicks an item that was just closed);
- the CRM calls ``POST /crm/events`` (:func:`handlers.crm.handle`, really signed): first its
  history of the last three months in batches (touches, leads and their stages: nothing to
  post), then the week as it happens, late sometimes, once twice: touches in an evening sync,
  leads handed off, called and recycled, and deals won and lost (see :class:`CrmPlanner`);
  the owner of the big win tells how it was won from the button in its thread;
- each hand-off starts a lead-handoff SLA clock in its owner's hours and timezone: most leads
  are called well within it, some after the yellow flag (logged in the CRM, or with *Mark
  contacted* in the nudge), a few miss it (a red flag, and the manager told by DM or in the
  16:30 summary), one is recycled from the nudge with a reason and a note, one carries over a
  weekend, one is reassigned, and one call reaches alignbot after its red flag (a correction);
  reps type ``/sla`` and ``/sla LEAD_ID`` (see :meth:`CrmPlanner._roles`);
- the weekly meeting's reminders go to its channel at each ``remind_before`` offset that falls
  in the run (the clock process's :func:`schedules.jobs.meetings_tick`, at those moments), with
  the agenda built from the data and the items reps and marketers added with ``/agenda add``;
  after a meeting its chair lists the agenda and ticks one item *Covered*, the other carries
  over (see :func:`plan_team`);
- the Monday scorecard reaches #sales and #marketing alike, and the head of marketing clicks
  *Show the rows* on one metric: the CSV lands in the post's thread; reps and marketers look
  terms up with ``/define`` (one mistyped, then retyped from the suggestion);
- every scheduled job of :func:`schedules.jobs.build_jobs` runs at its simulated time, and the
  clock process's :func:`schedules.jobs.sla_tick` after every step and at each clock's next
  check (its yellow flag, its deadline), so nudges go out at their simulated moment;
- the outbox relay delivers after every step, unpaced, so nothing waits real time; a DM held
  for its reader's quiet hours goes out at their morning.

The same seed gives the same transcript. Nothing here decides a business rule: the demo
only types, clicks and waits, and reports what Slack received.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import json
import logging
import math
import random
import re
import secrets
import string
import sys
import tempfile
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from bot.app import create_app
from bot.config import EXAMPLE_CONFIG, WEEKDAYS, Alignment, ConfigError, Environment, Meeting, Person, load_alignment
from bot.crm_signature import HEADER as SIGNATURE_HEADER
from bot.crm_signature import sign as sign_crm_request
from bot.db import Database
from bot.deps import Dependencies
from bot.fakeslack import FakeSlack, SlackCall
from bot.ids import Action, Block
from bot.models import AgendaItem, Deal, OutboxMessage, SlaClock
from bot.render import duration as render_duration
from bot.services import meetings, wins
from bot.services import sla as sla_service
from bot.services.business_time import BusinessCalendar, SlaCalendar
from bot.services.sla import calendar_for
from bot.slack.relay import OutboxRelay, relay_client
from bot.slack_signing import SlackDriver
from bot.transcript import (
    CRM_WEBHOOK,
    Directory,
    Entry,
    EntryKind,
    Transcript,
    file_card,
    median_and_max,
    slack_unescape,
)
from handlers import crm as crm_webhook
from schedules.jobs import ScheduledJob, build_jobs, meetings_tick, sla_tick

BOT_TOKEN = "xoxb-alignbot-demo"  # noqa: S105 - the fake Slack only checks the "xoxb-" prefix
BOT_NAME = "alignbot"
QUIET_LOGGERS = ("alignbot", "alembic", "slack_bolt", "slack_sdk", "urllib3", "apscheduler", "sqlalchemy")

# --- what the simulated people say ------------------------------------------------------------

#: Fictional customers and prospects. "&" on purpose: it must survive Slack's escaping.
ACCOUNTS = (
    "Brightline Health",
    "Cobalt Freight",
    "Harbor & Finch",
    "Meridian Credit Union",
    "Northstar Retail",
    "Pinecrest Schools",
    "Quarry Labs",
    "Redwood Logistics",
    "Summit Dental Group",
    "Tidewater Energy",
    "Vantage Insurance",
    "Willow Park Hotels",
)

#: What reps hear, by category. ``{competitor}`` becomes one of the configured competitors.
FEEDBACK: dict[str, tuple[str, ...]] = {
    "objection": (
        "CFO won't sign anything over 12 months until they see Q1 numbers. Asked if we can do a "
        "6-month pilot with an opt-out.",
        "Security review is the blocker: they need SOC 2 Type II plus a pen test summary before legal "
        "will even open the MSA.",
        "IT lead is worried about another tool to maintain. Their last BI rollout took 9 months and nobody uses it.",
        "They think we're built for enterprise and too heavy for a 60-person team. Our website pushed them that way.",
        "Procurement wants us on their vendor portal with net-90 terms. Champion says that's standard "
        "for them, not a negotiating tactic.",
        "Data team doesn't want to move off their dbt metrics; they think we'd make them redefine "
        "everything from scratch.",
        "Head of ops asked for 3 customer references in logistics before the next call. I only have one I can share.",
    ),
    "competitor": (
        "Also evaluating {competitor}. Their AE offered 3 months free and a dedicated CSM.",
        "{competitor} demoed a Snowflake-native connector last week and their data lead loved it. We "
        "need a better answer than 'it's on the roadmap'.",
        "They renew {competitor} in March and we're the challenger. Main complaint about {competitor} "
        "is slow dashboards over 10M rows.",
        "{competitor} is telling prospects our price doubles at renewal. Got asked about it point "
        "blank on today's call.",
        "Lost the technical eval to {competitor} on SSO/SCIM. Champion still likes us and may come back next year.",
        "Champion forwarded a {competitor} comparison sheet that says we have no row-level security. "
        "It's two releases out of date.",
        "Running a {competitor} trial in parallel, decision by end of month. They want a side-by-side on alerting.",
    ),
    "pricing": (
        "Says we're 20% over {competitor} for the same seats. Would switch if we matched on year one.",
        "Per-seat pricing kills it: 40 viewers who open a dashboard once a week. Asked whether we have a viewer tier.",
        "Budget for this fiscal year is fixed at $18k. Our quote came in at $26k with the onboarding package.",
        "Finance asked why the annual price is 8% higher than the quote from September. We need a "
        "clear story on the new packaging.",
        "They'd sign today on monthly billing. Annual prepay is a non-starter until their new budget in April.",
        "The onboarding fee is the sticking point, not the licence. Everyone else they talked to includes setup.",
        "Asked for nonprofit pricing; they're a foundation-funded school network. Do we have anything official?",
    ),
    "messaging": (
        "Nobody on the call knew what 'revenue intelligence' means. They called us 'dashboards for "
        "sales ops', and that's how they'll pitch us internally.",
        "The ROI calculator on the site says 10x and their CFO laughed at it. Something conservative "
        "with their own inputs would land better.",
        "Prospect found our case study, but it's from 2023 and the screenshots show the old UI.",
        "They came from the webinar thinking we do forecasting. We don't (yet), so the first 10 "
        "minutes went to resetting expectations.",
        "VP Sales loved the 'one number both teams trust' line from the LinkedIn ad. It opened the "
        "whole conversation; let's use it more.",
        "Our comparison page reads as defensive. The champion said it made her trust us less, not more.",
    ),
    "product_gap": (
        "Need HubSpot custom objects in the sync; their whole partner program runs on them. "
        "Deal-breaker for a Q1 start.",
        "No Salesforce sandbox support, so their admin can't test before production. Came up on both calls this week.",
        "Want scheduled PDF exports by email for the board pack. Their execs won't log in to another tool.",
        "Asked for EU data residency; their DPO won't approve data hosted in the US.",
        "Dashboards are too cramped on phones for their field reps. They want an app or at least a responsive view.",
        "Their security team requires audit log export to the SIEM. We only show the log in the UI.",
        "They need multi-currency rollups: EUR and GBP subsidiaries reporting in USD.",
    ),
    "praise": (
        "Champion said the lead-scoring walkthrough was the clearest demo she's seen this year. Asked "
        "for the recording to show her boss.",
        "They set up the Salesforce sync in 20 minutes during the trial without calling us. The "
        "onboarding docs are working.",
        "CFO loved the attribution view: first time marketing and sales agreed on where pipeline comes from.",
        "Existing customer is expanding to 3 more teams purely on word of mouth from their RevOps lead.",
        "Support answered in under 10 minutes during the trial; they said that's why they trust us "
        "over the bigger vendors.",
        "They said our SLA dashboard replaced a weekly spreadsheet fight between their SDRs and marketing.",
    ),
}

#: What marketing did about it, by category; ``{competitor}`` only for items that name one.
NOTES: dict[str, tuple[str, ...]] = {
    "objection": (
        "Added a 6-month pilot option to the proposal template and walked the team through it in #sales",
        "Put the SOC 2 Type II report and the pen test summary in the trust center; the link is in the security FAQ",
        "Published a 'live in 30 days' onboarding plan one-pager for IT leads",
        "Asked two logistics customers to act as references; both said yes",
    ),
    "competitor": (
        "Updated the {competitor} battlecard with a rebuttal and two customer proof points",
        "Built a side-by-side on alerting vs {competitor} for the deal team",
        "Added renewal price protection to the pricing FAQ to answer the {competitor} claim",
    ),
    "pricing": (
        "Added a TCO one-pager to the pricing page",
        "Took a viewer-tier proposal to the pricing committee; decision next Thursday",
        "Published a packaging explainer so the 'why 8% more' question has a clear answer",
    ),
    "messaging": (
        "Rewrote the homepage hero around 'one number both teams trust'",
        "Replaced the ROI calculator's 10x claim with a conservative model that uses the prospect's inputs",
        "Refreshed the 2023 case study with new screenshots and this year's numbers",
        "The webinar landing page now says what we do and don't do (no forecasting yet)",
    ),
    "product_gap": (
        "Logged it with product with the deal value attached; it's on the list for next quarter's review",
        "Added it to the public roadmap page as planned, with the quarter",
        "Wrote a workaround guide and shared it with the deal team",
    ),
    "praise": (
        "Turned it into a customer quote for next month's newsletter, with their OK",
        "Shared it at the all-hands and asked the champion for a case study",
        "Added the 20-minute setup story to the trial nurture emails",
    ),
}
GENERIC_NOTES = (
    "Shared it with the product marketing team and added it to this month's messaging review",
    "Added it to the sales enablement FAQ",
)
BROADCAST_TEXT = (
    "<!channel> heads up: {competitor} is telling prospects we're sunsetting the on-prem connector "
    "next year. Need a rebuttal before Thursday's call."
)


# --- the simulated clock ----------------------------------------------------------------------


class SimulatedClock:
    """The time of the simulation: given to the app, the relay and the jobs instead of the wall clock.

    It only moves forward; :meth:`set` to an earlier moment is ignored.
    """

    def __init__(self, start: dt.datetime) -> None:
        self._now = start.astimezone(dt.UTC)

    def now(self) -> dt.datetime:
        """The simulated time, aware, in UTC."""
        return self._now

    def set(self, moment: dt.datetime) -> None:
        """Move the clock to ``moment`` (no-op if it is in the simulated past)."""
        self._now = max(self._now, moment.astimezone(dt.UTC))


# --- the plan of the week ---------------------------------------------------------------------


@dataclass
class FeedbackPlan:
    """One piece of feedback a rep will send; ``post`` is filled in once it reached the channel."""

    at: dt.datetime
    rep: Person
    category: str
    text: str
    account: str | None
    mode: str  # "quick", "form", "mistype" (a wrong category first, then retyped)
    competitor: str | None = None  # the configured competitor the text names, if any
    command: str = ""
    strength: int | None = None
    post: SlackCall | None = None


@dataclass
class ActPlan:
    """A marketer closing the loop on a piece of feedback, or a second click on a closed item."""

    at: dt.datetime
    marketer: Person
    feedback: FeedbackPlan
    note: str = ""
    late: bool = False  # a second marketer, after someone else already acted on it


@dataclass(order=True)
class _Step:
    at: dt.datetime
    seq: int
    run: Callable[[], None] = field(compare=False)


def name_of(person: Person) -> str:
    """A person's display name: ``name``, else the local part of the email."""
    return person.name or person.email.split("@", 1)[0]


class WorkCalendar:
    """Workdays and working hours of people, from the alignment (per-person overrides included)."""

    def __init__(self, alignment: Alignment) -> None:
        self.alignment = alignment
        holidays = alignment.calendar.holidays
        self._holiday_dates: set[dt.date] = set(holidays) if not isinstance(holidays, str) else set()
        self._country = holidays if isinstance(holidays, str) and holidays else None
        self._country_holidays: Any = None

    def is_workday(self, day: dt.date, person: Person | None = None) -> bool:
        """A configured workday of ``person`` (else of the company) that is not a holiday."""
        workdays = (person.workdays if person else None) or self.alignment.calendar.workdays
        if WEEKDAYS[day.weekday()] not in workdays:
            return False
        return not self._is_holiday(day)

    def _is_holiday(self, day: dt.date) -> bool:
        return self.holiday_name(day) is not None

    def holiday_name(self, day: dt.date) -> str | None:
        """The name of the holiday on ``day`` ("holiday" for a listed date), or None."""
        if day in self._holiday_dates:
            return "holiday"
        if self._country is None:
            return None
        if self._country_holidays is None:
            import holidays as holidays_lib

            country, _, subdivision = self._country.partition("-")
            self._country_holidays = holidays_lib.country_holidays(country.upper(), subdiv=subdivision or None)
        name = self._country_holidays.get(day)
        return str(name) if name else None

    def hours(self, day: dt.date, person: Person) -> tuple[dt.datetime, dt.datetime]:
        """The working hours of ``person`` on their local ``day``, as aware datetimes in their zone."""
        span = person.working_hours or self.alignment.calendar.working_hours
        tz = self.alignment.tz(person)
        return dt.datetime.combine(day, span.start, tz), dt.datetime.combine(day, span.end, tz)

    def add_working_time(self, start: dt.datetime, amount: dt.timedelta, person: Person) -> dt.datetime:
        """``start`` plus ``amount`` of ``person``'s working time (nights, weekends and holidays skipped)."""
        tz = self.alignment.tz(person)
        cursor = start.astimezone(tz)
        remaining = amount
        day = cursor.date()
        for _ in range(366):
            if self.is_workday(day, person):
                opens, closes = self.hours(day, person)
                begin = max(cursor, opens)
                if begin < closes:
                    if remaining <= closes - begin:
                        return (begin + remaining).astimezone(dt.UTC)
                    remaining -= closes - begin
            day += dt.timedelta(days=1)
            cursor = dt.datetime.combine(day, dt.time(0), tz)
        return dt.datetime.max.replace(tzinfo=dt.UTC)


def week_start(today: dt.date, tz: ZoneInfo) -> dt.datetime:
    """Tuesday 00:00, in ``tz``, of the week before the one of ``today``.

    So a default 7-day run ends on the Monday of this week and holds the Monday-morning jobs.
    """
    monday = today - dt.timedelta(days=today.weekday())
    return dt.datetime.combine(monday - dt.timedelta(days=6), dt.time(0), tz)


def plan_week(
    alignment: Alignment, rng: random.Random, start: dt.datetime, end: dt.datetime
) -> tuple[list[FeedbackPlan], list[ActPlan]]:
    """The feedback the reps send and the marketers' reactions, drawn from ``rng``.

    2-5 pieces of feedback each workday across the sales team, at random times within the
    sender's working hours in their own timezone, cycling through every category; about a
    quarter through the form; one mistyped; one trying ``<!channel>``. About half are acted on
    a few working hours later by a marketer; once, a second marketer clicks right after.
    """
    calendar = WorkCalendar(alignment)
    tz = ZoneInfo(alignment.timezone)
    reps = [p for p in alignment.people if p.team == "sales" and p.slack_id]
    marketers = [p for p in alignment.people if p.team == "marketing" and p.slack_id]
    if not reps:
        return [], []
    managers = {p.manager.lower() for p in alignment.people if p.manager}
    # Managers sell less than their reps: they send feedback a third as often.
    weights = [1 if p.email.lower() in managers else 3 for p in reps]
    competitors = list(alignment.feedback.competitors) or ["Contoso"]
    categories = list(alignment.feedback.categories)
    category_deck: list[str] = []
    text_decks: dict[str, list[str]] = {}

    def next_category() -> str:
        if not category_deck:
            category_deck.extend(rng.sample(categories, len(categories)))
        return category_deck.pop()

    def next_text(category: str) -> tuple[str, str | None]:
        deck = text_decks.setdefault(category, [])
        if not deck:
            pool = FEEDBACK.get(category) or tuple(t for texts in FEEDBACK.values() for t in texts)
            deck.extend(rng.sample(pool, len(pool)))
        text = deck.pop()
        if "{competitor}" not in text:
            return text, None
        competitor = rng.choice(competitors)
        return text.replace("{competitor}", competitor), competitor

    items: list[FeedbackPlan] = []
    day = start.astimezone(tz).date()
    while dt.datetime.combine(day, dt.time(0), tz) < end:
        if calendar.is_workday(day):
            for _ in range(rng.randint(2, 5)):
                rep = rng.choices(reps, weights)[0]
                if not calendar.is_workday(day, rep):
                    continue
                opens, closes = calendar.hours(day, rep)
                window = int((closes - opens).total_seconds()) - 40 * 60
                at = (opens + dt.timedelta(seconds=10 * 60 + rng.randrange(max(window, 60)))).astimezone(dt.UTC)
                if not start <= at < end:
                    continue
                category = next_category()
                account = rng.choice(ACCOUNTS) if rng.random() < 0.8 else None
                mode = "form" if rng.random() < 0.25 else "quick"
                strength = rng.choice((1, 2, 2, 3)) if mode == "form" else None
                text, competitor = next_text(category)
                items.append(FeedbackPlan(at, rep, category, text, account, mode, competitor, strength=strength))
        day += dt.timedelta(days=1)
    items.sort(key=lambda i: i.at)
    _special_items(items, rng, competitors)
    for item in items:
        item.command = quick_capture(item, rng)
    return items, _plan_reactions(items, marketers, calendar, rng, end)


def _special_items(items: list[FeedbackPlan], rng: random.Random, competitors: list[str]) -> None:
    """One item tries to broadcast, one is mistyped first, and at least one goes through the form."""
    quick = [i for i in items if i.mode == "quick"]
    if quick:
        attempt = rng.choice([i for i in quick if i.category == "competitor"] or quick)
        attempt.competitor = rng.choice(competitors)
        attempt.text = BROADCAST_TEXT.replace("{competitor}", attempt.competitor)
        others = [i for i in quick if i is not attempt]
        if others:
            rng.choice(others[: max(len(others) // 2, 1)]).mode = "mistype"
    if items and not any(i.mode == "form" for i in items):
        candidates = [i for i in items if i.mode == "quick" and "<!" not in i.text] or items
        chosen = rng.choice(candidates)
        chosen.mode, chosen.strength = "form", 2


def quick_capture(item: FeedbackPlan, rng: random.Random) -> str:
    """The ``/feedback`` text a rep types for ``item``, in one of the quick-capture spellings."""
    spelled = rng.choice([item.category, item.category.replace("_", " "), item.category.replace("_", " ").title()])
    if item.account is None:
        return f"{spelled}: {item.text}"
    style = rng.randrange(3)
    if style == 0:
        return f"{spelled} [{item.account}]: {item.text}"
    if style == 1:
        return f"[{item.account}] {spelled} - {item.text}"
    return f"{spelled}: {item.text} [{item.account}]"


def typo(word: str, rng: random.Random) -> str:
    """``word`` with one inner letter dropped, as fast typing does (``pricing`` -> ``pricng``)."""
    spelled = word.replace("_", " ")
    if len(spelled) < 4:
        return spelled + spelled[-1]
    cut = rng.randrange(1, len(spelled) - 1)
    if spelled[cut] == " ":
        cut += 1
    return spelled[:cut] + spelled[cut + 1 :]


def _plan_reactions(
    items: list[FeedbackPlan], marketers: list[Person], calendar: WorkCalendar, rng: random.Random, end: dt.datetime
) -> list[ActPlan]:
    if not marketers:
        return []
    acts: list[ActPlan] = []
    for item in items:
        # Deal-breakers and pricing get attention first; praise often just gets read.
        chance = {"pricing": 0.6, "competitor": 0.6, "praise": 0.3}.get(item.category, 0.5)
        if item.strength == 3:
            chance = 0.85
        if rng.random() >= chance:
            continue
        marketer = rng.choice(marketers)
        lag = dt.timedelta(minutes=rng.randrange(90, 6 * 60))
        at = calendar.add_working_time(item.at, lag, marketer)
        if at >= end:
            continue
        acts.append(ActPlan(at, marketer, item, _note(item, rng)))
    acts.sort(key=lambda a: a.at)
    for act in acts:
        others = [m for m in marketers if m is not act.marketer]
        # After the first marketer's note is in (they submit within 4 minutes of their click).
        late = act.at + dt.timedelta(minutes=5, seconds=rng.randrange(0, 180))
        if others and late < end:
            acts.append(ActPlan(late, rng.choice(others), act.feedback, late=True))
            break
    return acts


def _note(item: FeedbackPlan, rng: random.Random) -> str:
    notes = [n for n in NOTES.get(item.category, GENERIC_NOTES) if item.competitor or "{competitor}" not in n]
    return rng.choice(notes or list(GENERIC_NOTES)).replace("{competitor}", item.competitor or "")


# --- what the CRM sends -----------------------------------------------------------------------

CRM_SECRET = "demo-webhook-secret"  # noqa: S105 - signs the demo's own requests, in memory only
CRM_SOURCE = "https://crm.northwind.example"  # when the config names no CRM URL
CRM_NAME = "CRM"
BACKFILL_CHUNK = 40  # events per batch of the CRM's first sync
LISTED_EVENTS = 8  # a request with more events is summarised in the transcript


@dataclass(frozen=True)
class Campaign:
    """A marketing campaign whose touches the CRM records.

    ``tag`` picks it for a journey; ``short`` is how a rep names it in a sentence; ``owner`` is
    the marketer who runs it, as an index into the marketers (individual contributors first).
    """

    name: str
    kind: str
    tag: str
    short: str
    owner: int


#: Campaign names as a CRM holds them; the kind is not repeated in the name (posts show it).
CAMPAIGNS = (
    Campaign("One pipeline number both teams trust", "webinar", "webinar", "the one-number webinar", 0),
    Campaign("Lead scoring your SDRs will believe", "webinar", "webinar", "the lead-scoring webinar", 0),
    Campaign("Attribution without the arguments", "webinar", "webinar", "the attribution webinar", 0),
    Campaign("SaaStr Annual 2026 booth", "event", "event", "the demo at our SaaStr booth", 1),
    Campaign("RevOps Summit Chicago customer dinner", "event", "event", "the Chicago customer dinner", 1),
    Campaign("Boston data leaders roundtable", "event", "event", "the Boston roundtable", 1),
    Campaign("CFO breakfast briefing, New York", "event", "exec", "the CFO breakfast", 3),
    Campaign("2026 RevOps benchmark report", "content", "content", "the benchmark report", 2),
    Campaign("Speed-to-lead playbook", "content", "content", "the speed-to-lead playbook", 2),
    Campaign("ROI calculator", "content", "content", "the ROI calculator", 2),
    Campaign("LinkedIn “One number” campaign", "ad", "ad", "a LinkedIn ad", 0),
    Campaign("Revenue analytics search ads", "ad", "ad", "a search ad", 0),
    Campaign("G2 comparison page retargeting", "ad", "ad", "our G2 retargeting", 0),
    Campaign("Data-team nurture, email 3", "email", "email", "the data-team nurture emails", 2),
    Campaign("Monthly product newsletter", "email", "email", "the newsletter", 2),
    Campaign("Demo request form", "web", "web", "the demo request form", 0),
)

#: An account's marketing touches by its part in the week, as campaign tags: before its lead was
#: handed off, after it (both in the weeks before the demo), and during the demo week.
JOURNEYS: dict[str, tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]] = {
    "big": (("webinar", "content"), ("event", "ad"), ("email",)),
    "split": (("ad", "webinar"), ("exec",), ("content",)),
    "small": (("web",), (), ()),
    "reopened": (("email",), ("webinar",), ()),
    "lost": (("ad",), ("content", "event"), ()),
}
PIPELINE_TAGS = ("webinar", "content", "ad", "email", "event")

FIRST_NAMES = (
    "Maria", "James", "Aisha", "Tom", "Priyanka", "Lucas", "Hannah", "Kenji", "Olivia", "Marcus",
    "Sofia", "Daniel", "Grace", "Noah", "Elena", "Ravi", "Fatima", "Ethan", "Mei", "Jonas",
)  # fmt: skip
LAST_NAMES = (
    "Lopez", "Carter", "Bello", "Reed", "Sharma", "Meyer", "Novak", "Tanaka", "Brooks", "Grant",
    "Rossi", "Kim", "Walsh", "Silva", "Petrov", "Iyer", "Okoro", "Lindqvist", "Duarte", "Nguyen",
)  # fmt: skip
CONTACT_ROLES = ("champion", "economic buyer", "technical evaluator")

#: Why reps send leads back: a reason code when the config has it, else the rep's own words.
RECYCLE_REASONS = (
    ("not_ready", "Interested, but no budget until their new fiscal year in April."),
    ("wrong_contact", "Student researching a class project, not a buyer."),
    ("bad_fit", "12 employees and no data team: below our ICP."),
)
#: The reason code and the note a rep gives when recycling a lead from the button of a nudge.
RECYCLE_FROM_SLACK = (
    "bad_fit",
    "8-person agency, no data team: below our ICP. Their ops lead asked to hear back when they "
    "pass 50 people; the small-team nurture track fits.",
)
LOST_REASONS = (
    "Went with {competitor}: 20% cheaper in year one, and their BI team already knows it.",
    "No decision: budget frozen after a reorg. Revisit in Q2.",
    "Building it in-house on their data warehouse.",
)
STORY = (
    "Their RevOps lead came in through {first} and used {second} to make the case internally; "
    "{third} got their CFO on board, and a two-week pilot on their own Salesforce data closed it."
)


@dataclass
class PlannedEvent:
    """One CloudEvent the CRM will send: ``time`` is when it happened in the CRM (UTC).

    ``line`` says what it is, for the transcript, with names where the event has IDs.
    """

    id: str
    type: str
    time: dt.datetime
    data: dict[str, Any]
    line: str

    def cloudevent(self, source: str) -> dict[str, Any]:
        """The event in the JSON format of CloudEvents 1.0 (structured mode)."""
        return {
            "specversion": "1.0",
            "id": self.id,
            "source": source,
            "type": self.type,
            "time": self.time.astimezone(dt.UTC).isoformat().replace("+00:00", "Z"),
            "datacontenttype": "application/json",
            "data": self.data,
        }


@dataclass
class CrmDelivery:
    """One ``POST /crm/events`` the CRM makes at ``at``: one event, or a batch.

    ``retry_of`` is set on a redelivery: when the CRM first sent the same events (same ids).
    """

    at: dt.datetime
    events: list[PlannedEvent]
    batch: bool = False
    label: str = ""
    retry_of: dt.datetime | None = None


@dataclass
class StoryPlan:
    """The owner of a win telling how it was won, from the button in the win's thread."""

    at: dt.datetime
    owner: Person
    deal_id: str
    deal_name: str
    text: str


@dataclass
class SlaMove:
    """A rep doing something about a lead's SLA clock in Slack.

    ``kind``: ``contacted`` (clicks *Mark contacted* on the lead's nudge), ``recycle`` (clicks
    *Recycle*, picks ``reason`` and writes ``note``), ``list`` (types ``/sla``) or ``explain``
    (types ``/sla LEAD_ID``). ``lead`` names the lead for the transcript.
    """

    at: dt.datetime
    person: Person
    kind: str
    lead_id: str = ""
    lead: str = ""
    reason: str = ""
    note: str = ""


@dataclass(frozen=True)
class _LeadStory:
    """A hand-off of the week: to ``owner`` at ``hour`` (their local time, with fractions), and
    what happens next (``fate``, see :meth:`CrmPlanner._lead_story`)."""

    owner: Person
    hour: float
    fate: str
    exact: bool = False  # handed off at ``hour`` to the second (else a few minutes after)
    to: Person | None = None  # "reassigned": the colleague who takes it
    then_recycled: bool = False  # "yellow": sent back to marketing from the CRM the next day


@dataclass
class CrmPlan:
    """What the CRM sends over the run, what the owners of wins say about them, and what reps do
    about their SLA clocks in Slack."""

    deliveries: list[CrmDelivery] = field(default_factory=list)
    stories: list[StoryPlan] = field(default_factory=list)
    sla_moves: list[SlaMove] = field(default_factory=list)


@dataclass
class _Account:
    id: str
    name: str
    role: str
    domain: str
    sdr: Person
    ae: Person
    contacts: list[tuple[str, str]] = field(default_factory=list)  # (name, email)
    touches: list[tuple[dt.datetime, Campaign, tuple[str, str]]] = field(default_factory=list)
    leads: list[tuple[str, str]] = field(default_factory=list)  # (lead ID, name)


class CrmPlanner:
    """Plans what the CRM sends: a history of touches and leads from the weeks before the run,
    sent as batches at its start, then the run's touches, leads and deals at their moments.

    The accounts come from :data:`ACCOUNTS`; the marketers, sales people and stages from the
    alignment. Deals of the week, on its workdays: a win that is later reopened, a big win
    (redelivered once) whose owner tells how it was won, a win whose credit is split four
    ways and whose amount is corrected the next day, a small win for the daily digest, an
    outbound win with no marketing touch, and two losses. With fewer than five workdays the
    same script is squeezed into the ones there are.
    """

    def __init__(self, alignment: Alignment, rng: random.Random, start: dt.datetime, end: dt.datetime) -> None:
        self.alignment = alignment
        self.rng = rng
        self.start, self.end = start, end
        self.calendar = WorkCalendar(alignment)
        self.tz = ZoneInfo(alignment.timezone)
        managers = {p.manager.lower() for p in alignment.people if p.manager}
        sales = [p for p in alignment.people if p.team == "sales"]
        reps = [p for p in sales if p.email.lower() not in managers] or sales
        self.aes, self.sdrs = reps[0::2], (reps[1::2] or reps)
        self.reps = reps  # the week's new leads go to all of them
        self.sla = alignment.sla[0] if alignment.sla else None
        marketing = [p for p in alignment.people if p.team == "marketing"]
        self.marketers = [p for p in marketing if p.email.lower() not in managers]
        self.marketers += [p for p in marketing if p.email.lower() in managers]
        names = [s.name for s in alignment.stages]
        handoff = self.sla.stage if self.sla else (names[1] if len(names) > 1 else None)
        self.stages = names[names.index(handoff) :] if handoff in names else names[-1:]
        self.competitors = list(alignment.feedback.competitors) or ["a competitor"]
        first = start.astimezone(self.tz).date()
        span = (end.astimezone(self.tz).date() - first).days
        days = [first + dt.timedelta(days=i) for i in range(span)]
        self.workdays = [d for d in days if self.calendar.is_workday(d)]
        self.lead_stage: dict[str, str] = {}
        self._names: set[str] = set()

    # --- small pieces ---

    def _id(self, prefix: str) -> str:
        """A Salesforce-like record ID: a 3-character prefix for the object and 15 characters."""
        return prefix + "".join(self.rng.choice(string.ascii_letters + string.digits) for _ in range(15))

    def _event(self, type_: str, time: dt.datetime, data: dict[str, Any], line: str) -> PlannedEvent:
        event_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        return PlannedEvent(event_id, type_, time.replace(microsecond=0), data, line)

    def _contact(self, account: _Account) -> tuple[str, str]:
        """A new person at the account: a name not used anywhere, a surname not used at the account."""
        families = {name.split()[-1] for name, _ in account.contacts}
        for _ in range(100):
            name = f"{self.rng.choice(FIRST_NAMES)} {self.rng.choice(LAST_NAMES)}"
            if name not in self._names and name.split()[-1] not in families:
                break
        self._names.add(name)
        contact = (name, f"{name.lower().replace(' ', '.')}@{account.domain}")
        account.contacts.append(contact)
        return contact

    def _campaign(self, tag: str) -> Campaign:
        return self.rng.choice([c for c in CAMPAIGNS if c.tag == tag] or list(CAMPAIGNS))

    def _marketer(self, campaign: Campaign) -> Person | None:
        return self.marketers[campaign.owner % len(self.marketers)] if self.marketers else None

    def _local(self, day: dt.date, hour: float, person: Person | None = None) -> dt.datetime:
        """``hour`` (with fractions) of ``day`` in ``person``'s timezone (else the company's), in UTC."""
        midnight = dt.datetime.combine(day, dt.time(0), self.alignment.tz(person))
        return (midnight + dt.timedelta(seconds=round(hour * 3600))).astimezone(dt.UTC)

    def _later(self, moment: dt.datetime, low: int, high: int, person: Person) -> dt.datetime:
        """``moment`` plus ``low`` to ``high`` minutes of ``person``'s working time."""
        minutes = dt.timedelta(seconds=self.rng.randrange(low * 60, high * 60))
        return self.calendar.add_working_time(moment, minutes, person)

    def _workday_from(self, day: dt.date) -> dt.date:
        """``day``, or the next company workday after it."""
        for _ in range(30):
            if self.calendar.is_workday(day):
                return day
            day += dt.timedelta(days=1)
        return day

    def _day(self, slot: int) -> dt.date | None:
        """The workday of the script's ``slot`` (0-4), squeezed into fewer workdays if need be."""
        n = len(self.workdays)
        if n == 0:
            return None
        return self.workdays[slot] if n >= 5 else self.workdays[round(slot * (n - 1) / 4)]

    # --- events ---

    def _touch(
        self, account: _Account, when: dt.datetime, tag: str, contact: tuple[str, str] | None = None
    ) -> PlannedEvent:
        campaign = self._campaign(tag)
        contact = contact or (self.rng.choice(account.contacts) if account.contacts else self._contact(account))
        account.touches.append((when, campaign, contact))
        marketer = self._marketer(campaign)
        data: dict[str, Any] = {
            "touch_id": self._id("00v"),
            "account_id": account.id,
            "campaign": campaign.name,
            "kind": campaign.kind,
            "contact_email": contact[1],
        }
        if marketer:
            data["marketing_owner_email"] = marketer.email
        who = f" · by {name_of(marketer)}" if marketer else ""
        line = f"{contact[0]}, {account.name} · {campaign.kind}: {campaign.name}{who}"
        return self._event("touch.recorded", when, data, line)

    def _handoff(self, account: _Account, when: dt.datetime, owner: Person | None = None) -> PlannedEvent:
        """The lead of the account's latest touch, handed to ``owner`` (else the account's SDR) in
        the first sales stage."""
        owner = owner or account.sdr
        lead_id = self._id("00Q")
        _, campaign, (name, _) = account.touches[-1]
        account.leads.append((lead_id, name))
        self.lead_stage[lead_id] = self.stages[0]
        score, grade = self.rng.randrange(62, 96), self.rng.choice("AAB")
        data: dict[str, Any] = {
            "lead_id": lead_id,
            "owner_email": owner.email,
            "stage": self.stages[0],
            "name": name,
            "company": account.name,
            "account_id": account.id,
            "campaign": campaign.name,
            "score": score,
            "grade": grade,
        }
        line = f"{name}, {account.name} → {name_of(owner)} as {self.stages[0]}"
        line += f" · score {score}, grade {grade} · from {campaign.kind}: {campaign.name}"
        return self._event("lead.handed_off", when, data, line)

    def _contacted(
        self, account: _Account, lead: tuple[str, str], when: dt.datetime, by: Person | None = None
    ) -> PlannedEvent:
        by = by or account.sdr
        data = {"lead_id": lead[0], "by_email": by.email}
        return self._event("lead.contacted", when, data, f"{lead[1]}, {account.name} · by {name_of(by)}")

    def _stage(self, account: _Account, lead: tuple[str, str], stage: str, when: dt.datetime) -> PlannedEvent:
        self.lead_stage[lead[0]] = stage
        data = {"lead_id": lead[0], "stage": stage, "owner_email": account.ae.email}
        return self._event(
            "lead.stage_changed", when, data, f"{lead[1]}, {account.name} → {stage}, owner {name_of(account.ae)}"
        )

    def _recycled(
        self, account: _Account, lead: tuple[str, str], when: dt.datetime, index: int, by: Person | None = None
    ) -> PlannedEvent:
        by = by or account.sdr
        code, words = RECYCLE_REASONS[index % len(RECYCLE_REASONS)]
        # A picklist value when the config has the code; a rep's own words otherwise, and once anyway.
        reason = code if code in self.alignment.leads.recycle_reasons and index == 0 else words
        data = {"lead_id": lead[0], "reason": reason, "by_email": by.email}
        line = f"{lead[1]}, {account.name} · “{reason}” · by {name_of(by)}"
        return self._event("lead.recycled", when, data, line)

    def _won(
        self, account: _Account, deal_id: str, name: str, amount: int, when: dt.datetime, *, sdr: bool = True
    ) -> PlannedEvent:
        data: dict[str, Any] = {
            "deal_id": deal_id,
            "name": name,
            "account_id": account.id,
            "amount": amount,
            "currency": "USD",
            "owner_email": account.ae.email,
            "contacts": [
                {"email": email, "role": CONTACT_ROLES[i % len(CONTACT_ROLES)]}
                for i, (_, email) in enumerate(account.contacts[:3])
            ],
            "lead_ids": [lead_id for lead_id, _ in account.leads],
        }
        seller = f"owner {name_of(account.ae)}"
        if sdr and account.sdr is not account.ae:
            data["sdr_email"] = account.sdr.email
            seller += f", SDR {name_of(account.sdr)}"
        return self._event("deal.closed_won", when, data, f"{name} · {wins.format_amount(amount, 'USD')} · {seller}")

    def _lost(self, account: _Account, name: str, amount: int, when: dt.datetime, reason: str) -> PlannedEvent:
        data = {
            "deal_id": self._id("006"),
            "name": name,
            "account_id": account.id,
            "owner_email": account.ae.email,
            "amount": amount,
            "currency": "USD",
            "reason": reason,
        }
        line = f"{name} · {wins.format_amount(amount, 'USD')} · owner {name_of(account.ae)} · “{reason}”"
        return self._event("deal.closed_lost", when, data, line)

    # --- the plan ---

    def plan(self) -> CrmPlan:
        """Everything the CRM sends, in arrival order, and the win stories."""
        if not self.aes or not self.stages:
            return CrmPlan()
        names = self.rng.sample(ACCOUNTS, len(ACCOUNTS))
        roles = ["big", "split", "small", "reopened", "lost", "lost", "pipeline", "pipeline", "outbound"]
        roles += ["new"] * (len(names) - len(roles))
        # Accounts are shared out in turn, so every AE and SDR has some of the week's deals.
        ae_turn, sdr_turn = self.rng.randrange(len(self.aes)), self.rng.randrange(len(self.sdrs))
        accounts = [
            _Account(
                id=self._id("001"),
                name=name,
                role=role,
                domain=re.sub(r"[^a-z0-9]+", "", name.lower()) + ".example",
                sdr=self.sdrs[(sdr_turn + i) % len(self.sdrs)],
                ae=self.aes[(ae_turn + i) % len(self.aes)],
            )
            for i, (name, role) in enumerate(zip(names, roles, strict=False))
        ]
        history: list[PlannedEvent] = []
        for account in accounts:
            if account.role not in {"outbound", "new"}:
                history += self._history(account)
        history.sort(key=lambda e: e.time)
        plan = CrmPlan()
        chunks = [history[i : i + BACKFILL_CHUNK] for i in range(0, len(history), BACKFILL_CHUNK)]
        for i, chunk in enumerate(chunks):
            label = f"history {i + 1} of {len(chunks)}"
            plan.deliveries.append(CrmDelivery(self.start + dt.timedelta(seconds=20 * i), chunk, True, label))
        self._week(accounts, plan)
        plan.deliveries = [d for d in plan.deliveries if d.at < self.end]
        plan.deliveries.sort(key=lambda d: d.at)
        plan.stories = [s for s in plan.stories if s.at < self.end]
        plan.sla_moves = sorted((m for m in plan.sla_moves if m.at < self.end), key=lambda m: m.at)
        return plan

    def _history(self, account: _Account) -> list[PlannedEvent]:
        """The weeks before the run: touches over about three months, a lead handed off after the
        first ones, contacted, and taken through the later stages for the accounts with deals."""
        if account.role in JOURNEYS:
            before, after, _ = JOURNEYS[account.role]
        else:
            before = (self.rng.choice(PIPELINE_TAGS),)
            after = tuple(self.rng.sample(PIPELINE_TAGS, self.rng.randint(0, 2)))
        count = len(before) + len(after)
        # Days before the run, at least three apart.
        ages = sorted((a + self.rng.randrange(4) for a in self.rng.sample(range(12, 96, 7), count)), reverse=True)
        moments = [
            self._local(self._workday_from((self.start - dt.timedelta(days=age)).astimezone(self.tz).date()), hour)
            for age, hour in zip(ages, (self.rng.uniform(9, 17.5) for _ in ages), strict=True)
        ]
        for _ in range(3):
            self._contact(account)
        events = [self._touch(account, moments[i], tag) for i, tag in enumerate(before)]
        handed = self._later(moments[len(before) - 1], 60, 8 * 60, account.sdr)
        if after and handed >= moments[len(before)]:
            handed = moments[len(before) - 1] + (moments[len(before)] - moments[len(before) - 1]) / 2
        events.append(self._handoff(account, handed))
        lead = account.leads[-1]
        contacted = self._later(handed, 8, 150, account.sdr)
        events.append(self._contacted(account, lead, contacted))
        events += [self._touch(account, moments[len(before) + i], tag) for i, tag in enumerate(after)]
        later = self.stages[1:]
        if account.role == "pipeline":
            later = later[:1] if self.rng.random() < 0.5 else []
        moved = contacted
        for stage in later:
            moved = self._later(moved + dt.timedelta(days=self.rng.randint(6, 16)), 30, 6 * 60, account.ae)
            if moved >= self.start - dt.timedelta(days=1):
                break
            events.append(self._stage(account, lead, stage, moved))
        return events

    def _week(self, accounts: list[_Account], plan: CrmPlan) -> None:
        by_role: dict[str, list[_Account]] = {}
        for account in accounts:
            by_role.setdefault(account.role, []).append(account)
        syncs: dict[dt.date, list[PlannedEvent]] = {}  # the marketing sync's touches, by day
        closes: dict[str, dt.datetime] = {}  # account ID -> when its first deal of the week arrives

        def single(event: PlannedEvent, low: int = 5, high: int = 150) -> CrmDelivery:
            delivery = CrmDelivery(event.time + dt.timedelta(seconds=self.rng.randrange(low, high)), [event])
            plan.deliveries.append(delivery)
            return delivery

        self._deals(by_role, plan, single, closes)
        # Journey touches of the week, for the accounts that have one; none after a deal's close.
        for account in accounts:
            week = JOURNEYS.get(account.role, ((), (), ()))[2]
            if account.role == "pipeline":
                week = (self.rng.choice(PIPELINE_TAGS),)
            for tag in week:
                slot = {"big": 0, "split": 1}.get(account.role, self.rng.randrange(5))
                day = self._day(slot)
                if day is None:
                    continue
                when = self._local(day, self.rng.uniform(9, 16.5))
                if account.id in closes and self._sync_time(day) >= closes[account.id]:
                    continue  # it would reach alignbot after the win was posted
                syncs.setdefault(day, []).append(self._touch(account, when, tag))
        self._leads(by_role.get("pipeline", []) + by_role.get("new", []), plan, single, syncs)
        for day, touches in sorted(syncs.items()):
            touches.sort(key=lambda e: e.time)
            at = max(self._sync_time(day), touches[-1].time + dt.timedelta(minutes=10))
            plan.deliveries.append(CrmDelivery(at, touches, True, "marketing sync"))

    def _sync_time(self, day: dt.date) -> dt.datetime:
        """When the marketing-automation sync sends the day's touches: 18:45, company time."""
        return self._local(day, 18.75)

    def _deals(
        self,
        by_role: dict[str, list[_Account]],
        plan: CrmPlan,
        single: Callable[..., CrmDelivery],
        closes: dict[str, dt.datetime],
    ) -> None:
        def when(slot: int, hour: float, account: _Account, after: dt.datetime | None = None) -> dt.datetime | None:
            day = self._day(slot)
            if day is None:
                return None
            moment = self._local(day, hour + self.rng.uniform(0, 0.4), account.ae)
            if after is not None and moment <= after + dt.timedelta(minutes=30):
                moment = after + dt.timedelta(hours=2)  # squeezed into one day: still after what it follows
            return moment

        def seats(low: int, high: int, step: int = 5) -> int:
            return self.rng.randrange(low, high + 1, step)

        def first(role: str) -> _Account | None:
            found = by_role.get(role)
            return found[0] if found else None

        reopened, big, split = first("reopened"), first("big"), first("split")
        small, outbound = first("small"), first("outbound")
        # A win on the first day, reopened on the last: procurement sends the order form back.
        if reopened and (at := when(0, 15, reopened)):
            deal_id, count = self._id("006"), seats(30, 60)
            name = f"{reopened.name} — Growth annual, {count} seats"
            won = single(self._won(reopened, deal_id, name, count * 450, at))
            closes[reopened.id] = won.at
            if again := when(4, 10.25, reopened, after=won.at):
                single(self._event("deal.reopened", again, {"deal_id": deal_id}, name))
        # The big win, redelivered once by the CRM (same event, same id); its owner tells the story.
        if big and (at := when(1, 11.5, big)):
            # Loud enough for a header with the config's tiers (50,000 in the example), at $700 a seat.
            loud = min((t.min_amount for t in self.alignment.wins.tiers if t.header), default=0)
            deal_id, count = self._id("006"), max(seats(90, 180, 10), math.ceil(loud / 7000) * 10)
            name = f"{big.name} — Enterprise annual, {count} seats"
            won = single(self._won(big, deal_id, name, count * 700, at), 20, 90)
            closes[big.id] = won.at
            plan.deliveries.append(
                CrmDelivery(won.at + dt.timedelta(seconds=self.rng.randrange(90, 240)), won.events, retry_of=won.at)
            )
            story_at = when(2, 9.6, big, after=won.at)
            if story_at is not None:
                shorts = [c.short for _, c, _ in sorted(big.touches, key=lambda t: t[0])] + ["our team"] * 3
                text = STORY.format(first=shorts[0], second=shorts[1], third=shorts[2])
                plan.stories.append(StoryPlan(story_at, big.ae, deal_id, name, text[0].upper() + text[1:]))
        # A win whose credit is split four ways; the next day its amount is corrected (seats added).
        if split and (at := when(2, 10.2, split)):
            deal_id, count = self._id("006"), seats(40, 90)
            name = f"{split.name} — Growth annual"
            won = single(self._won(split, deal_id, name, count * 450, at))
            closes[split.id] = won.at
            if again := when(3, 14.5, split, after=won.at):
                corrected = self._won(split, deal_id, name, (count + self.rng.choice((4, 6, 8, 10))) * 450, again)
                corrected.line += " (amount corrected: seats added before countersigning)"
                single(corrected)
        # A small win: it waits for the 17:00 digest of smaller wins.
        if small and (at := when(2, 13, small)):
            below = self.alignment.wins.digest_below
            count = min(seats(8, 15, 1), max(int(below // 300) - 1, 1)) if below else seats(8, 15, 1)
            won = single(self._won(small, self._id("006"), f"{small.name} — Starter, {count} seats", count * 300, at))
            closes[small.id] = won.at
        # An outbound win: the SDR prospected it, marketing never touched the account.
        if outbound and (at := when(3, 11, outbound)):
            count = seats(25, 50)  # two years: still below the big-win tier
            name = f"{outbound.name} — Growth, 2-year term"
            single(self._won(outbound, self._id("006"), name, count * 450 * 2, at))
        for i, account in enumerate(by_role.get("lost", [])[:2]):
            if at := when(1 + 2 * i, 16 if i == 0 else 15.5, account):
                reason = LOST_REASONS[i % len(LOST_REASONS)].format(competitor=self.rng.choice(self.competitors))
                lost = self._lost(account, f"{account.name} — Team plan", seats(20, 60) * 450, at, reason)
                # The second loss reaches alignbot hours late: logged from a phone, synced that evening.
                single(lost, *((3600, 2 * 3600) if i == 1 else (5, 150)))

    # --- the leads of the week and their SLA clocks ---

    def _sla_calendar(self, person: Person) -> SlaCalendar:
        """How ``person``'s SLA clock counts: their business calendar (or wall-clock time)."""
        if self.sla is None:
            return BusinessCalendar.for_person(self.alignment, person)
        return calendar_for(self.alignment, self.sla, person)

    def _roles(self) -> dict[int, list[_LeadStory]]:
        """The scripted hand-offs of the first week, by workday index.

        The reps play parts: ``a`` is the one furthest west (so a deadline at their closing time
        falls in the manager's evening), ``b``, ``c`` and ``d`` the others in config order. The
        days are the first workday, a middle one, the workday before the weekend (``fri``) and
        the one after it (``mon``); with fewer workdays the parts share days.
        """
        if self.sla is None or not self.reps or not self.workdays:
            return {}
        ref = self.start
        a = min(self.reps, key=lambda p: ref.astimezone(self.alignment.tz(p)).utcoffset() or dt.timedelta(0))
        others = [p for p in self.reps if p is not a] or [a]
        b, c, d = (others[i % len(others)] for i in range(3))
        gaps = [(self.workdays[i + 1] - self.workdays[i]).days for i in range(len(self.workdays) - 1)]
        widest = max(gaps, default=0)
        bridge = gaps.index(widest) if widest >= 3 else None  # the weekend, inside the run
        fri = bridge if bridge is not None else len(self.workdays) - 1
        mon = fri + 1 if bridge is not None else None
        pair = max(fri - 1, 0)
        mid = 1 if pair > 1 else 0
        script: dict[int, list[_LeadStory]] = {}

        def on(day: int | None, *stories: _LeadStory) -> None:
            if day is not None:
                script.setdefault(day, []).extend(stories)

        on(
            0,
            # Handed off at 13:00 sharp in their zone: due at their closing time, which is the evening
            # for a manager further east, so the escalation waits for the manager's morning.
            _LeadStory(a, 13.0, "breach", exact=True),
            _LeadStory(c, 10.4, "yellow", then_recycled=True),
            _LeadStory(b, 9.6, "quick"),
            _LeadStory(d, 11.2, "quick"),
        )
        on(
            mid,
            _LeadStory(c, 9.6, "recycle_button"),
            _LeadStory(a, 9.8, "contacted_button"),
            _LeadStory(b, 11.0, "yellow"),
            _LeadStory(d, 10.5, "recycled"),
            _LeadStory(d, 13.5, "quick"),
        )
        on(
            pair,
            _LeadStory(d, 9.6, "breach_after_summary"),  # the manager's breach DM of the day
            _LeadStory(c, 9.4, "breach_after_summary"),  # the second: in the 16:30 summary
            _LeadStory(b, 14.0, "quick"),
            _LeadStory(a, 14.9, "reassigned", to=b),  # out the next morning: the lead goes to b
        )
        on(
            fri if fri != pair else None,
            _LeadStory(b, 9.25, "slow"),
            _LeadStory(d, 10.2, "contacted_button"),
            _LeadStory(c, 11.0, "logged_late"),
            _LeadStory(d, 16.5, "weekend"),  # late on the last day before the weekend
        )
        on(
            mon,
            _LeadStory(b, 9.4, "correction"),
            _LeadStory(a, 9.6, "quick"),
            _LeadStory(c, 12.5, "quick"),
        )
        return script

    def _leads(
        self,
        accounts: list[_Account],
        plan: CrmPlan,
        single: Callable[..., CrmDelivery],
        syncs: dict[dt.date, list[PlannedEvent]],
    ) -> None:
        """New leads each workday, handed to the reps in their working hours, each starting an SLA
        clock: most are called well within the SLA, some after the yellow flag (in the CRM, or
        with the nudge's button), a few miss it, one is recycled from the nudge, one goes back to
        marketing from the CRM, one is reassigned, one carries over the weekend, and one call
        logged in time reaches alignbot after the red flag. A lead of the weeks before moves on
        every other day."""
        if not accounts:
            return
        script = self._roles()
        out: dict[int, Person] = {}  # who is away on a day (the owner of the reassigned lead)
        for number, stories in script.items():
            for story in stories:
                if story.fate == "reassigned" and number + 1 < len(self.workdays):
                    out[number + 1] = story.owner
        for number, day in enumerate(self.workdays):
            stories = list(script.get(number, []))
            present = [p for p in self.reps if p is not out.get(number)] or self.reps
            # A walk-in or two besides the script (every day of a longer run).
            for _ in range(self.rng.randint(0, 1) if stories else self.rng.randint(1, 2)):
                if present:
                    fate = "yellow" if not stories and self.rng.random() < 0.25 else "quick"
                    stories.append(_LeadStory(self.rng.choice(present), self.rng.uniform(9.5, 14.5), fate))
            for story in stories:
                self._lead_story(story, number, day, self.rng.choice(accounts), plan, single, syncs)
            if number in (1, 3):  # a lead of the weeks before moves to the next stage
                for account in (a for a in accounts if a.role == "pipeline" and a.leads):
                    lead = account.leads[0]
                    following = self.stages[self.stages.index(self.lead_stage[lead[0]]) + 1 :]
                    if following:
                        moved = self._local(day, self.rng.uniform(11, 16), account.ae)
                        single(self._stage(account, lead, following[0], moved))
                        break

    def _lead_story(
        self,
        story: _LeadStory,
        number: int,
        day: dt.date,
        account: _Account,
        plan: CrmPlan,
        single: Callable[..., CrmDelivery],
        syncs: dict[dt.date, list[PlannedEvent]],
    ) -> None:
        """One lead: the touch that brought it in, its hand-off, and what its owner does about it."""
        rng, owner = self.rng, story.owner
        handed = self._local(day, story.hour, owner)
        if not story.exact:
            handed += dt.timedelta(seconds=rng.randrange(0, 600))
        touch_at = handed - dt.timedelta(minutes=rng.randrange(30, 240))
        tag = rng.choice(("webinar", "webinar", "content", "content", "web", "ad", "event"))
        touch = self._touch(account, touch_at, tag, self._contact(account))
        syncs.setdefault(touch_at.astimezone(self.tz).date(), []).append(touch)
        single(self._handoff(account, handed, owner), 3, 60)
        lead = account.leads[-1]
        shown = f"{lead[1]} at {account.name}"
        calendar = self._sla_calendar(owner)
        within = self.sla.within if self.sla else dt.timedelta(hours=4)
        warn_at = calendar.add(handed, within * (self.sla.warn_at if self.sla else 0.75))
        due_at = calendar.add(handed, within)

        def minutes(low: int, high: int) -> dt.timedelta:
            return dt.timedelta(seconds=rng.randrange(low * 60, high * 60))

        def call(at: dt.datetime, by: Person = owner, low: int = 5, high: int = 150) -> CrmDelivery:
            return single(self._contacted(account, lead, at, by), low, high)

        def click(kind: str, at: dt.datetime, **extra: str) -> None:
            plan.sla_moves.append(SlaMove(at, owner, kind, lead[0], shown, **extra))

        summary_at = self._local(day, 16.5)  # the managers' daily summary, company time
        if story.fate == "quick":  # well within the SLA: nobody hears about it
            call(calendar.add(handed, minutes(8, 150)))
        elif story.fate == "slow":  # still within it, after a while
            call(calendar.add(handed, minutes(70, 140)))
        elif story.fate == "logged_late":  # called early, logged in the CRM half an hour later
            call(calendar.add(handed, minutes(8, 80)), low=1200, high=1800)
        elif story.fate == "recycled":  # the form said student: back to marketing from the CRM
            single(self._recycled(account, lead, calendar.add(handed, minutes(20, 70)), 1, owner))
        elif story.fate == "yellow":  # called after the yellow flag, logged in the CRM
            called = call(calendar.add(warn_at, (due_at - warn_at) * rng.uniform(0.2, 0.7)))
            if story.then_recycled and number + 1 < len(self.workdays):  # next day: not ready to buy
                back = self._local(self.workdays[number + 1], rng.uniform(10, 12), owner)
                single(self._recycled(account, lead, max(back, called.at), 0, owner))
        elif story.fate == "contacted_button":  # calls after the yellow flag, clicks Mark contacted
            click("contacted", min(warn_at + minutes(8, 30), warn_at + (due_at - warn_at) / 2))
        elif story.fate == "recycle_button":  # reads the lead after the yellow flag, recycles it
            code, note = RECYCLE_FROM_SLACK
            reasons = self.alignment.leads.recycle_reasons
            reason = code if code in reasons or not reasons else reasons[0]
            click("recycle", min(warn_at + minutes(10, 25), warn_at + (due_at - warn_at) / 2), reason=reason, note=note)
        elif story.fate == "breach":  # missed: called the next morning
            call(calendar.add(due_at, minutes(15, 40)))
        elif story.fate == "breach_after_summary":  # missed: called after the managers' summary
            call(calendar.add(max(due_at, summary_at), minutes(10, 45)))
        elif story.fate == "correction":  # called before the deadline; the phone app synced late
            logged = calendar.add(handed, within - minutes(12, 25))
            event = self._contacted(account, lead, logged, owner)
            event.line += " · logged from the phone, synced late"
            plan.deliveries.append(CrmDelivery(due_at + minutes(20, 40), [event]))
        elif story.fate == "weekend":  # the weekend in between: the owner asks why, then calls
            after = next((d for d in self.workdays[number + 1 :]), None)
            if after is not None:
                click("explain", self._local(after, rng.uniform(9.05, 9.2), owner))
                call(self._local(after, rng.uniform(9.5, 9.8), owner))
        elif story.fate == "reassigned" and story.to is not None:  # away the next morning: a colleague takes it
            if number + 1 >= len(self.workdays):
                return
            new = story.to
            moved = self._local(self.workdays[number + 1], rng.uniform(9.6, 9.75))
            data = {"lead_id": lead[0], "stage": self.stages[0], "owner_email": new.email}
            line = f"{lead[1]}, {account.name} · reassigned in {self.stages[0]}: {name_of(owner)} → {name_of(new)}"
            line += f" ({name_of(owner).split()[0]} is out today)"
            single(self._event("lead.stage_changed", moved, data, line), 3, 60)
            plan.sla_moves.append(SlaMove(moved + minutes(4, 8), new, "list"))
            left = calendar.between(moved, warn_at) if moved < warn_at else dt.timedelta(0)
            call(self._sla_calendar(new).add(moved, max(left / 2, dt.timedelta(minutes=20))), by=new)


# --- the joint meeting, the scorecard and the shared vocabulary --------------------------------

#: What people raise for the joint meeting with ``/agenda add``, by team, in the order they raise
#: them; ``{competitor}`` becomes a configured competitor. Each meeting gets one from each team;
#: the first one added is ticked *Covered* after the meeting, the other carries over.
AGENDA_ITEMS: dict[str, tuple[str, ...]] = {
    "marketing": (
        "Webinar follow-up: 40 attendees of the one-number webinar still have no owner. Split them by territory?",
        "Q1 events: which two conferences do reps actually want us at? The budget is due Friday.",
        "Case studies: which of this week's wins would go on record for the January newsletter?",
    ),
    "sales": (
        "MQL threshold for ROI calculator leads: most that score 60-65 never qualify. Raise that source to 70?",
        "{competitor} offers 3 months free in every deal we meet them in. Do we match, or hold on price?",
        "The pricing page still shows last year's packaging; prospects quote it back to us on calls.",
    ),
}
#: The metric whose rows someone asks for, when the scorecard shows it.
ROWS_METRIC = "sla_attainment"


@dataclass
class CommandPlan:
    """Someone typing ``command text`` in ``where``; ``then`` is what they type next (a typo fixed)."""

    at: dt.datetime
    person: Person
    command: str
    text: str
    where: str
    then: str | None = None


@dataclass
class CoveredPlan:
    """After a meeting, someone lists its agenda with ``/agenda`` and ticks ``item`` *Covered*."""

    at: dt.datetime
    person: Person
    where: str
    item: str


@dataclass
class RowsPlan:
    """Someone clicks *Show the rows* on ``metric`` of the scorecard post in ``where``."""

    at: dt.datetime
    person: Person
    where: str
    metric: str


@dataclass
class TeamPlan:
    """The meeting reminders' moments, and what people type and click about the meeting, the
    scorecard and the shared vocabulary."""

    reminders: list[dt.datetime] = field(default_factory=list)
    commands: list[CommandPlan] = field(default_factory=list)
    covered: list[CoveredPlan] = field(default_factory=list)
    rows: list[RowsPlan] = field(default_factory=list)


def working_moment(
    calendar: WorkCalendar,
    rng: random.Random,
    person: Person,
    low: dt.datetime,
    high: dt.datetime,
    margin: dt.timedelta = dt.timedelta(minutes=5),
) -> dt.datetime | None:
    """A random moment of ``person``'s working hours within ``[low, high)``, ``margin`` inside each
    span, in UTC; None when they do not work in that window."""
    tz = calendar.alignment.tz(person)
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    day = low.astimezone(tz).date()
    while dt.datetime.combine(day, dt.time(0), tz) < high:
        if calendar.is_workday(day, person):
            opens, closes = calendar.hours(day, person)
            begin, finish = max(opens, low) + margin, min(closes, high) - margin
            if begin < finish:
                spans.append((begin, finish))
        day += dt.timedelta(days=1)
    pick = rng.uniform(0, sum((finish - begin).total_seconds() for begin, finish in spans))
    for begin, finish in spans:
        length = (finish - begin).total_seconds()
        if pick <= length:
            return (begin + dt.timedelta(seconds=int(pick))).astimezone(dt.UTC)
        pick -= length
    return None


def plan_team(
    alignment: Alignment, rng: random.Random, start: dt.datetime, end: dt.datetime, scorecards: list[dt.datetime]
) -> TeamPlan:
    """The reminders of the first configured meeting that fall in ``[start, end)`` and the agenda
    items people add before each (one from marketing, one from sales; after a meeting in the run,
    its chair ticks the first one *Covered*, the other carries over); ``/define`` typed three
    times (a stage, the whole vocabulary, a typo then the fix); and *Show the rows* clicked on
    each of the ``scorecards`` posted in the run."""
    calendar = WorkCalendar(alignment)
    plan = TeamPlan()
    managers = {p.manager.lower() for p in alignment.people if p.manager}
    people = [p for p in alignment.people if p.slack_id]

    def members(team: str) -> list[Person]:
        """The team's individual contributors (its managers only if it has nobody else)."""
        found = [p for p in people if p.team == team]
        return [p for p in found if p.email.lower() not in managers] or found

    def head(team: str) -> Person | None:
        found = [p for p in people if p.team == team]
        return next((p for p in found if not p.manager), found[0] if found else None)

    if alignment.meetings:
        _plan_meeting(alignment, alignment.meetings[0], rng, calendar, start, end, plan, members, head("sales"))
    stages = [s.name for s in alignment.stages]
    reps, marketers = members("sales"), members("marketing")
    tz = ZoneInfo(alignment.timezone)
    days = [
        day
        for i in range((end.astimezone(tz).date() - start.astimezone(tz).date()).days)
        if calendar.is_workday(day := start.astimezone(tz).date() + dt.timedelta(days=i))
    ]

    def define(slot: int, person: Person, text: str, where: str, then: str | None = None) -> None:
        if not days:
            return
        midnight = dt.datetime.combine(days[min(slot, len(days) - 1)], dt.time(0), tz)
        at = working_moment(calendar, rng, person, max(midnight, start), min(midnight + dt.timedelta(days=1), end))
        if at is not None:
            plan.commands.append(CommandPlan(at, person, "/define", text, where, then))

    if stages and reps:
        sla_stage = alignment.sla[0].stage if alignment.sla else None
        handoff = sla_stage if sla_stage in stages else stages[min(1, len(stages) - 1)]
        following = stages[min(stages.index(handoff) + 1, len(stages) - 1)]
        # A rep checks what the hand-off stage promises; a marketer reads the whole vocabulary;
        # a rep mistypes the next stage and retypes it from the suggestion.
        define(1, rng.choice(reps), handoff, alignment.channels.sales)
        if marketers:
            define(2, rng.choice(marketers), "", alignment.channels.marketing)
        define(3, rng.choice(reps), typo(following, rng), alignment.channels.sales, then=following)
    metrics = alignment.scorecard.metrics
    reader = head("marketing") or head("sales")
    if metrics and reader is not None:
        metric = ROWS_METRIC if ROWS_METRIC in metrics else metrics[0]
        for posted in scorecards:
            # The head of marketing reads it over the first coffee and asks which leads are behind it.
            at = working_moment(
                calendar, rng, reader, posted + dt.timedelta(minutes=20), posted + dt.timedelta(hours=4)
            )
            if at is not None and at < end:
                plan.rows.append(RowsPlan(at, reader, alignment.channels.marketing, metric))
    return plan


def _plan_meeting(
    alignment: Alignment,
    meeting: Meeting,
    rng: random.Random,
    calendar: WorkCalendar,
    start: dt.datetime,
    end: dt.datetime,
    plan: TeamPlan,
    members: Callable[[str], list[Person]],
    chair: Person | None,
) -> None:
    """Reminder moments, agenda items and the *Covered* tick of ``meeting``'s occurrences whose
    reminders fall in the run (see :func:`plan_team`)."""
    competitors = list(alignment.feedback.competitors) or ["A competitor"]
    decks = {team: list(texts) for team, texts in AGENDA_ITEMS.items()}
    horizon = max(meeting.remind_before, default=dt.timedelta(0))
    since = start
    for occurrence in meetings.occurrences(alignment, meeting, start, end + horizon):
        moments = sorted(
            occurrence.starts_at - offset
            for offset in meeting.remind_before
            if start <= occurrence.starts_at - offset < end
        )
        if not moments:
            continue
        plan.reminders += moments
        added: list[tuple[dt.datetime, str]] = []
        for team in ("marketing", "sales"):
            deck, authors = decks[team], members(team)
            # Whoever of the team is at work before the first reminder raises it.
            for author in rng.sample(authors, len(authors)):
                at = working_moment(calendar, rng, author, since, moments[0])
                if at is not None and deck:
                    text = deck.pop(0).replace("{competitor}", rng.choice(competitors))
                    plan.commands.append(CommandPlan(at, author, "/agenda", f"add {text}", meeting.channel))
                    added.append((at, text))
                    break
        held = occurrence.starts_at
        if added and chair is not None and held < end:
            # The chair ticks off what was discussed once the hour is over; the rest carries over.
            at = working_moment(calendar, rng, chair, held + dt.timedelta(minutes=40), held + dt.timedelta(hours=3))
            if at is not None and at < end:
                plan.covered.append(CoveredPlan(at, chair, meeting.channel, min(added)[1]))
        since = max(since, held + dt.timedelta(hours=1))


# --- recording what Slack received ------------------------------------------------------------


class Recorder:
    """Turns each call the fake Slack receives into a transcript entry, at the simulated time.

    The demo sets :attr:`actor` and :attr:`place` while a person's request is in flight, so a
    modal or a response-URL answer is shown to that person, where they were.
    """

    def __init__(self, transcript: Transcript, clock: SimulatedClock, alignment: Alignment) -> None:
        self.transcript = transcript
        self.clock = clock
        self.alignment = alignment
        self.actor: Person | None = None
        self.place: str = alignment.channels.sales
        self.thread: str | None = None
        self.origin: str | None = None
        self.posts: dict[str, SlackCall] = {}  # outbox key -> the chat.postMessage Slack received
        self.uploads: list[SlackCall] = []  # files shared (files.completeUploadExternal)
        self.failed: list[SlackCall] = []
        self._lock = threading.Lock()

    def on_call(self, call: SlackCall) -> None:
        """The fake's listener: record messages, edits, modals and response-URL answers."""
        with self._lock:
            self._record(call)

    def _record(self, call: SlackCall) -> None:
        if not call.ok:
            self.failed.append(call)
            return
        at = self.clock.now()
        body = call.body
        viewer = name_of(self.actor) if self.actor else None
        if call.method == "chat.postMessage":
            key = ((body.get("metadata") or {}).get("event_payload") or {}).get("key")
            if key:
                self.posts[str(key)] = call
            thread = body.get("thread_ts")
            self.transcript.add(
                Entry(
                    at,
                    str(body.get("channel")),
                    BOT_NAME,
                    "message",
                    payload=body,
                    ts=call.response.get("ts"),
                    thread=str(thread) if thread else None,
                )
            )
        elif call.method == "chat.update":
            self.transcript.add(
                Entry(at, str(body.get("channel")), BOT_NAME, "edit", payload=body, edits=body.get("ts"))
            )
        elif call.method == "chat.postEphemeral":
            user = self.alignment.person_by_slack_id(str(body.get("user")))
            shown = name_of(user) if user else str(body.get("user"))
            self.transcript.add(
                Entry(
                    at,
                    str(body.get("channel")),
                    BOT_NAME,
                    "ephemeral",
                    payload=body,
                    visible_to=shown,
                    thread=body.get("thread_ts") or None,
                )
            )
        elif call.method in {"views.open", "views.push"} and isinstance(body.get("view"), dict):
            self.transcript.add(
                Entry(at, self.place, BOT_NAME, "modal", payload=body["view"], visible_to=viewer, thread=self.thread)
            )
        elif call.method == "views.update" and isinstance(body.get("view"), dict):
            self.transcript.add(
                Entry(
                    at,
                    self.place,
                    BOT_NAME,
                    "modal",
                    "updated",
                    payload=body["view"],
                    visible_to=viewer,
                    thread=self.thread,
                )
            )
        elif call.method == "files.completeUploadExternal":
            # The last step of files_upload_v2: the file is shared in the channel (or a thread) with its comment.
            self.uploads.append(call)
            cards = [
                file_card(str(u.get("filename") or ""), str(u.get("title") or ""), u.get("content") or "")
                for u in body.get("uploads") or []
            ]
            thread = body.get("thread_ts")
            self.transcript.add(
                Entry(
                    at,
                    str(body.get("channel_id") or self.place),
                    BOT_NAME,
                    "message",
                    payload={"text": str(body.get("initial_comment") or ""), "files": cards},
                    thread=str(thread) if thread else None,
                )
            )
        elif call.method == "views.publish" and isinstance(body.get("view"), dict):
            owner = str(body.get("user_id"))  # whose Home tab it is
            self.transcript.add(Entry(at, owner, BOT_NAME, "home", payload=body["view"], visible_to=owner))
        elif call.method == "response_url" and body.get("replace_original") and self.origin:
            # The clicked message, replaced: shown as an edit of it, as Slack shows it.
            self.transcript.add(Entry(at, self.place, BOT_NAME, "edit", payload=body, edits=self.origin))
        elif call.method == "response_url":
            kind: EntryKind = "message" if body.get("response_type") == "in_channel" else "ephemeral"
            self.transcript.add(
                Entry(at, self.place, BOT_NAME, kind, payload=body, visible_to=viewer, thread=self.thread)
            )

    @contextlib.contextmanager
    def acting(
        self, person: Person, place: str, thread: str | None = None, origin: str | None = None
    ) -> Iterator[None]:
        """Attribute the calls made while ``person`` does something in ``place`` (in the
        ``thread`` of a message, if given) to them; ``origin`` is the ``ts`` of the message whose
        button they clicked, which an answer with ``replace_original`` replaces."""
        self.actor, self.place, self.thread, self.origin = person, place, thread, origin
        try:
            yield
        finally:
            self.actor, self.thread, self.origin = None, None, None


# --- the run ----------------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """Keep the demo's output to the transcript: loggers below WARNING are silenced meanwhile."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def run_demo(
    *,
    days: int = 7,
    seed: int = 7,
    html: str | None = None,
    config: str | None = None,
    out: TextIO = sys.stdout,
    today: dt.date | None = None,
) -> int:
    """Run the simulated week and print its transcript and summary to ``out``; returns the exit status.

    ``config`` is an alignment file (None: the packaged example). ``html`` also writes the
    transcript as a Slack-like page to that path. ``today`` fixes the week (default: today in
    the company timezone); the run starts on the Tuesday of the week before it. Exit status 0,
    2 for a bad argument or config, 1 if a message could not be delivered.
    """
    if days < 1:
        print(f"--days must be 1 or more, got {days}", file=out)
        return 2
    try:
        alignment = load_alignment(Path(config) if config else EXAMPLE_CONFIG)
    except ConfigError as exc:
        print(exc.report(), file=out)
        return 2
    with quiet_logs():
        return _Demo(alignment, days=days, seed=seed, today=today, config=config).run(out, html)


@dataclass
class CrmTally:
    """What the CRM sent over the run and what ``POST /crm/events`` answered."""

    requests: int = 0
    batches: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    ignored: int = 0
    rejected: int = 0  # requests answered other than 202

    def count(self, delivery: CrmDelivery, answer: crm_webhook.Answer) -> None:
        self.requests += 1
        self.batches += delivery.batch
        self.events += len(delivery.events)
        if answer.status != 202:
            self.rejected += 1
            return
        self.accepted += int(answer.body.get("accepted", 0))
        self.duplicates += int(answer.body.get("duplicates", 0))
        self.ignored += int(answer.body.get("ignored", 0))


class _Demo:
    """One run: the plan, the simulated clock, and what was recorded."""

    database: Database
    deps: Dependencies
    slack: SlackDriver
    fake: FakeSlack
    relay: OutboxRelay
    crm: Callable[[Mapping[str, str], bytes], crm_webhook.Answer]

    def __init__(
        self, alignment: Alignment, *, days: int, seed: int, today: dt.date | None, config: str | None
    ) -> None:
        self.alignment = alignment
        self.days = days
        self.seed = seed
        self.config = config
        self.tz = ZoneInfo(alignment.timezone)
        self.start = week_start(today or dt.datetime.now(self.tz).date(), self.tz)
        self.end = dt.datetime.combine(self.start.date() + dt.timedelta(days=days), dt.time(0), self.tz)
        self.clock = SimulatedClock(self.start)
        self.rng = random.Random(seed)
        # The meeting, the scorecard and /define draw from their own stream, like the CRM: adding
        # them left the feedback and the CRM of a seed as they were.
        self.team_rng = random.Random(f"team:{seed}")
        self.calendar = WorkCalendar(alignment)
        users = {p.slack_id: name_of(p) for p in alignment.people if p.slack_id}
        channels: dict[str, str] = {}
        for key, channel_id in alignment.channels.model_dump().items():
            channels.setdefault(str(channel_id), key.replace("_", "-"))
        zones = {str(p.slack_id): str(alignment.tz(p)) for p in alignment.people if p.slack_id}
        self.directory = Directory(users=users, channels=channels, zones=zones)
        self.transcript = Transcript(self.directory, self.tz, bot_name=BOT_NAME)
        self.recorder = Recorder(self.transcript, self.clock, alignment)
        self.crm_tally = CrmTally()
        lead_url = alignment.crm.deal_url or alignment.crm.lead_url
        self.crm_source = "/".join(lead_url.split("/")[:3]) if lead_url else CRM_SOURCE

    def run(self, out: TextIO, html: str | None) -> int:
        """Replay the week, then print the transcript and the summary (and write the page)."""
        with tempfile.TemporaryDirectory(prefix="alignbot-demo-") as tmp, FakeSlack() as fake:
            for person in self.alignment.people:
                if person.slack_id:
                    fake.add_user(
                        person.slack_id, person.email, tz=str(self.alignment.tz(person)), real_name=name_of(person)
                    )
            fake.add_listener(self.recorder.on_call)
            database = Database.from_url(f"sqlite:///{Path(tmp) / 'alignbot-demo.db'}")
            try:
                database.upgrade()
                secret = secrets.token_hex(16)
                env = Environment(
                    slack_bot_token=BOT_TOKEN,
                    slack_signing_secret=secret,
                    slack_api_url=fake.url,
                    database_url=str(database.engine.url),
                    config_path=Path(self.config) if self.config else EXAMPLE_CONFIG,
                )
                deps = Dependencies(alignment=self.alignment, database=database, clock=self.clock.now)
                self.slack = SlackDriver(create_app(env, deps), fake, secret)
                self.crm = crm_webhook.handle(deps, (CRM_SECRET,))
                self.fake = fake
                # One send at a time: the transcript is the same for the same seed.
                self.relay = OutboxRelay(
                    database,
                    relay_client(BOT_TOKEN, fake.url, timeout=5),
                    clock=self.clock.now,
                    pace=0,
                    concurrency=1,
                )
                self.database, self.deps = database, deps
                for step in self._steps(build_jobs(deps)):
                    self._advance(step.at)
                    self.clock.set(step.at)
                    step.run()
                    self._tick()
                self._advance(self.end)
                self.clock.set(self.end)
                summary, failed = self._summary(database)
                self._note_held(database)
                # Everyone opens the app at the end of the week: the page shows each App Home as published.
                for person in self.alignment.people:
                    if person.slack_id:
                        self.slack.event({"type": "app_home_opened", "user": person.slack_id, "tab": "home"})
            finally:
                database.dispose()
        print(self._heading(), file=out)
        print(self.transcript.to_text(), file=out)
        print("\n".join(summary), file=out)
        if html:
            page = self.transcript.to_html(title="alignbot demo", subtitle=self._period(), summary=summary)
            Path(html).write_text(page, encoding="utf-8")
            print(f"\nThe transcript as a Slack-like page: {html}", file=out)
        return 1 if failed else 0

    # --- the steps, in time order ---

    def _steps(self, jobs: list[ScheduledJob]) -> list[_Step]:
        """What people do and every job occurrence, in time order (ties: in the order planned)."""
        items, acts = plan_week(self.alignment, self.rng, self.start, self.end)
        # The CRM has its own stream of chance, so the feedback of a seed is the same with or without it.
        crm = CrmPlanner(self.alignment, random.Random(f"crm:{self.seed}"), self.start, self.end).plan()
        steps: list[_Step] = []

        def add(at: dt.datetime, run: Callable[[], None]) -> None:
            steps.append(_Step(at, len(steps), run))

        for item in items:
            add(item.at, functools.partial(self._send_feedback, item))
        for act in acts:
            add(act.at, functools.partial(self._act_on, act))
        for delivery in crm.deliveries:
            add(delivery.at, functools.partial(self._post_crm_events, delivery))
        for story in crm.stories:
            add(story.at, functools.partial(self._tell_story, story))
        for move in crm.sla_moves:
            add(move.at, functools.partial(self._sla_move, move))
        for job in jobs:
            for occurrence in job.occurrences(self.start, self.end):
                if occurrence < self.end:
                    add(occurrence, functools.partial(self._fire, job, occurrence))
        scorecards = [o for job in jobs if job.name == "scorecard" for o in job.occurrences(self.start, self.end)]
        team = plan_team(self.alignment, self.team_rng, self.start, self.end, [o for o in scorecards if o < self.end])
        # The clock process ticks the meetings every 30 seconds; here, at each moment a reminder
        # falls due, so each goes out at its simulated time, once. Not at the start: the bot ran
        # before the week, so a reminder whose moment passed before it was sent then.
        for moment in team.reminders:
            add(moment, self._remind)
        for command in team.commands:
            add(command.at, functools.partial(self._command, command))
        for covered in team.covered:
            add(covered.at, functools.partial(self._cover, covered))
        for rows in team.rows:
            add(rows.at, functools.partial(self._show_rows, rows))
        return sorted(steps)

    def _advance(self, moment: dt.datetime) -> None:
        """Move the simulated clock towards ``moment``, stopping wherever something falls due on
        the way: an SLA clock's next check (its yellow flag, its deadline), or a held message
        (quiet hours, a retry). At each stop the clock process's tick runs and the relay delivers,
        so nudges go out at their simulated time."""
        self._tick()
        for _ in range(10_000):  # bounded: each pass moves the clock forward
            now = self.clock.now()
            with self.database.session() as session:
                held = session.scalar(
                    select(func.min(OutboxMessage.next_attempt_at)).where(
                        OutboxMessage.delivered_at.is_(None),
                        OutboxMessage.failed_at.is_(None),
                        OutboxMessage.next_attempt_at > now,
                    )
                )
                check = sla_service.next_check(session)
            due = min((t for t in (held, check) if t is not None and now < t < moment), default=None)
            if due is None:
                return
            self.clock.set(due)
            self._tick()

    def _tick(self) -> int:
        """What the clock process does every 2 seconds: look at the SLA clocks due, then deliver."""
        return sla_tick(self.deps) + self.relay.drain()

    def _fire(self, job: ScheduledJob, occurrence: dt.datetime) -> None:
        job.run(occurrence, self.clock.now())

    def _send_feedback(self, item: FeedbackPlan) -> None:
        sales = self.alignment.channels.sales
        before = set(self.recorder.posts)
        if item.mode == "form":
            opened_before = len(self.fake.calls_to("views.open"))
            self._type(item.rep, "")
            opened = self.fake.calls_to("views.open")
            if len(opened) == opened_before:
                return  # no form opened: the answer (an error) is already in the transcript
            view = opened[-1].body["view"]
            values: dict[str, Any] = {
                Block.CATEGORY.value: ("option", item.category),
                Block.TEXT.value: item.text,
            }
            if item.account:
                values[Block.ACCOUNT.value] = item.account
            if item.strength:
                values[Block.STRENGTH.value] = ("option", str(item.strength))
            self._pause(45, 150)  # filling in the form takes a minute or two
            self._submit(item.rep, view, values, sales)
        else:
            if item.mode == "mistype":
                wrong = typo(item.category, self.rng)
                wrong += f" [{item.account}]: {item.text}" if item.account else f": {item.text}"
                self._type(item.rep, wrong)
                self._pause(20, 60)  # reads the usage, fixes the word
            self._type(item.rep, item.command)
        self.relay.drain()  # the post is delivered now, as `alignbot web` would; remember it for the marketers
        new = [call for key, call in self.recorder.posts.items() if key not in before and key.startswith("feedback:")]
        item.post = new[0] if new else None

    def _type(self, person: Person, text: str, command: str = "/feedback", where: str | None = None) -> str:
        """``person`` types ``command text`` in ``where`` (#sales by default); the answer is recorded
        as they see it, and returned (the HTTP body)."""
        where = where or self.alignment.channels.sales
        typed = f"{command} {text}".rstrip()
        self.transcript.add(Entry(self.clock.now(), where, name_of(person), "typed", typed, from_bot=False))
        with self.recorder.acting(person, where):
            response = self.slack.command(command, text, user=str(person.slack_id), channel=where)
            self._answer(person, where, response.body)
        return str(response.body or "")

    def _remind(self) -> None:
        """The clock process's meetings tick: queue the reminders due now (the step's tick delivers them)."""
        meetings_tick(self.deps)

    def _command(self, plan: CommandPlan) -> None:
        """``/agenda add …`` or ``/define …`` typed in a channel; a typo is retyped after reading the answer."""
        self._type(plan.person, plan.text, plan.command, plan.where)
        if plan.then is not None:
            self.clock.set(self.clock.now() + dt.timedelta(seconds=self.team_rng.randrange(20, 60)))
            self._type(plan.person, plan.then, plan.command, plan.where)

    def _cover(self, plan: CoveredPlan) -> None:
        """After the meeting, the chair lists its agenda and ticks the item that was discussed *Covered*."""
        body = self._type(plan.person, "", "/agenda", plan.where)
        try:
            listing = json.loads(body) if body else {}
        except ValueError:
            return
        blocks = (listing.get("blocks") or []) if isinstance(listing, dict) else []
        # The item's section names it; the actions block right after it holds its buttons.
        index = next(
            (
                i
                for i, block in enumerate(blocks)
                if plan.item[:40] in slack_unescape(str((block.get("text") or {}).get("text") or ""))
            ),
            None,
        )
        if index is None or index + 1 >= len(blocks) or blocks[index + 1].get("type") != "actions":
            return
        self.clock.set(self.clock.now() + dt.timedelta(seconds=self.team_rng.randrange(10, 40)))
        item = plan.item if len(plan.item) <= 60 else plan.item[:59].rsplit(" ", 1)[0] + "…"
        self.transcript.add(
            Entry(
                self.clock.now(),
                plan.where,
                name_of(plan.person),
                "action",
                f"clicked [Covered] on “{item}”",
                from_bot=False,
            )
        )
        with self.recorder.acting(plan.person, plan.where):
            message = {"blocks": [blocks[index + 1]]}
            self.slack.click(message, Action.AGENDA_COVERED.value, user=str(plan.person.slack_id), channel=plan.where)

    def _show_rows(self, plan: RowsPlan) -> None:
        """Someone clicks *Show the rows* on one metric of the latest scorecard post; the CSV lands in its thread."""
        post = next(
            (
                call
                for key, call in reversed(self.recorder.posts.items())
                if key.startswith("scorecard:") and key.endswith(f":{plan.where}")
            ),
            None,
        )
        if post is None:
            return  # no scorecard this week (no data yet)
        section = next(
            (
                block
                for block in post.body.get("blocks") or []
                if (block.get("accessory") or {}).get("action_id") == Action.SCORECARD_ROWS.value
                and str(block["accessory"].get("value") or "").startswith(f"{plan.metric}|")
            ),
            None,
        )
        if section is None:
            return
        title = re.match(r"\*(.+?)\*", str((section.get("text") or {}).get("text") or ""))
        ts = str(post.response.get("ts") or "")
        self.transcript.add(
            Entry(
                self.clock.now(),
                plan.where,
                name_of(plan.person),
                "action",
                f"clicked [Show the rows] on “{title.group(1) if title else plan.metric}” in the scorecard",
                from_bot=False,
            )
        )

        def answers(calls: list[SlackCall]) -> int:  # the file, or an ephemeral saying why not
            return sum(c.method in {"files.completeUploadExternal", "response_url"} for c in calls)

        with self.recorder.acting(plan.person, plan.where):
            seen = answers(self.fake.calls)
            self.slack.click(
                {"blocks": [section]},
                Action.SCORECARD_ROWS.value,
                user=str(plan.person.slack_id),
                channel=plan.where,
                ts=ts,
            )
            # Bolt uploads from a lazy listener, on its own thread: wait, so the file is recorded now.
            try:
                self.fake.wait_for(lambda calls: answers(calls) > seen, timeout=10)
            except AssertionError:
                logging.getLogger("alignbot.demo").warning("the CSV of %s did not reach Slack in 10 s", plan.metric)

    def _sla_move(self, move: SlaMove) -> None:
        """A rep types ``/sla``, or clicks a button of the latest nudge about one of their leads."""
        if move.kind == "list":
            self._type(move.person, "", "/sla")
            return
        if move.kind == "explain":
            self._type(move.person, move.lead_id, "/sla")
            return
        with self.database.session() as session:
            clocks = sla_service.clocks_of_lead(session, move.lead_id)
            clock_id = clocks[0].id if clocks else None
        nudges = [self.recorder.posts.get(f"sla:{clock_id}:{level}") for level in ("red", "yellow")]
        nudge = next((n for n in nudges if n is not None), None)
        if nudge is None:
            return  # no nudge came (the lead was already closed): nothing to click
        action = Action.SLA_CONTACTED if move.kind == "contacted" else Action.SLA_RECYCLE
        button = next(
            (
                element
                for block in nudge.body.get("blocks") or []
                for element in block.get("elements") or []
                if isinstance(element, dict) and element.get("action_id") == action.value
            ),
            None,
        )
        if button is None:
            return
        place, conversation = str(move.person.slack_id), str(nudge.response.get("channel") or move.person.slack_id)
        label = " ".join(str((button.get("text") or {}).get("text") or "").split())
        flag = "red" if nudge is nudges[0] else "yellow"
        self.transcript.add(
            Entry(
                self.clock.now(),
                place,
                name_of(move.person),
                "action",
                f"clicked [{label}] on the {flag} flag about {move.lead}",
                from_bot=False,
            )
        )
        with self.recorder.acting(move.person, place, origin=str(nudge.response.get("ts") or "")):
            opened_before = len(self.fake.calls_to("views.open"))
            self.slack.click(nudge.body, action.value, user=place, channel=conversation)
            opened = self.fake.calls_to("views.open")
        if move.kind != "recycle" or len(opened) == opened_before:
            return
        self._pause(60, 150)  # picks the reason, writes the note
        values = {Block.REASON.value: ("option", move.reason), Block.NOTE.value: move.note}
        self._submit(move.person, opened[-1].body["view"], values, place)

    def _answer(self, person: Person, where: str, body: str) -> None:
        """Record the HTTP answer of a request: an ephemeral message, or a modal's next state."""
        if not body:
            return
        try:
            data = json.loads(body)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        now = self.clock.now()
        if data.get("response_action") == "update" and isinstance(data.get("view"), dict):
            self.transcript.add(
                Entry(now, where, BOT_NAME, "modal", "updated", data["view"], visible_to=name_of(person))
            )
        elif data.get("response_action") == "errors":
            errors = tuple(f"{k}: {v}" for k, v in (data.get("errors") or {}).items())
            self.transcript.add(Entry(now, where, BOT_NAME, "action", "showed errors in the form", details=errors))
        elif data.get("text") or data.get("blocks"):
            kind: EntryKind = "message" if data.get("response_type") == "in_channel" else "ephemeral"
            self.transcript.add(Entry(now, where, BOT_NAME, kind, payload=data, visible_to=name_of(person)))

    def _submit(
        self, person: Person, view: dict[str, Any], values: dict[str, Any], where: str, thread: str | None = None
    ) -> None:
        title = str((view.get("title") or {}).get("text") or "the form")
        self.transcript.add(
            Entry(
                self.clock.now(),
                where,
                name_of(person),
                "action",
                f"submitted “{title}”",
                details=describe_submission(view, values),
                from_bot=False,
                thread=thread,
            )
        )
        with self.recorder.acting(person, where, thread):
            response = self.slack.submit(view, values, user=str(person.slack_id))
            self._answer(person, where, response.body)

    def _pause(self, low: int, high: int) -> None:
        self.clock.set(self.clock.now() + dt.timedelta(seconds=self.rng.randrange(low, high)))

    def _act_on(self, act: ActPlan) -> None:
        voc = self.alignment.channels.voice_of_customer
        post = act.feedback.post
        if post is None:
            return
        item_number = _item_number(post)
        self.transcript.add(
            Entry(
                self.clock.now(),
                voc,
                name_of(act.marketer),
                "action",
                f"clicked [Acted on] on feedback #{item_number} from {name_of(act.feedback.rep)}",
                from_bot=False,
            )
        )
        with self.recorder.acting(act.marketer, voc):
            opened_before = len(self.fake.calls_to("views.open"))
            self.slack.click(post.body, Action.FEEDBACK_ACTED_ON.value, user=str(act.marketer.slack_id), channel=voc)
            opened = self.fake.calls_to("views.open")
        if act.late or len(opened) == opened_before:
            return
        self._pause(60, 240)  # writes the note
        self._submit(act.marketer, opened[-1].body["view"], {Block.NOTE.value: act.note}, voc)

    def _post_crm_events(self, delivery: CrmDelivery) -> None:
        """The CRM calls ``POST /crm/events`` with a really signed body: one event or a batch."""
        events = [e.cloudevent(self.crm_source) for e in delivery.events]
        if delivery.batch:
            content_type, body = crm_webhook.BATCH, json.dumps(events).encode()
        else:
            content_type, body = crm_webhook.STRUCTURED, json.dumps(events[0]).encode()
        # Signed now, on the wall clock: the endpoint checks the signature's age against it.
        headers = {"Content-Type": content_type, SIGNATURE_HEADER: sign_crm_request(CRM_SECRET, body)}
        answer = self.crm(headers, body)
        self.crm_tally.count(delivery, answer)
        self.transcript.add(
            Entry(
                self.clock.now(),
                CRM_WEBHOOK,
                CRM_NAME,
                "request",
                self._request_text(delivery, answer),
                details=self._request_details(delivery, answer),
                from_bot=False,
            )
        )

    def _request_text(self, delivery: CrmDelivery, answer: crm_webhook.Answer) -> str:
        if delivery.batch:
            sent = f"sent a batch of {len(delivery.events)} events ({delivery.label})"
        else:
            sent = f"sent {delivery.events[0].type}" + (" again" if delivery.retry_of else "")
        if answer.status != 202:
            return f"{sent} → {answer.status}, rejected"
        counts = answer.body
        told = [f"{counts.get('accepted', 0)} accepted"]
        if counts.get("duplicates"):
            told.append(f"{counts['duplicates']} duplicate{'s' if counts['duplicates'] != 1 else ''}")
        if counts.get("ignored"):
            told.append(f"{counts['ignored']} ignored")
        return f"{sent} → 202, " + ", ".join(told)

    def _request_details(self, delivery: CrmDelivery, answer: crm_webhook.Answer) -> tuple[str, ...]:
        lines: list[str] = []
        if delivery.retry_of is not None:
            first = self._moment(delivery.retry_of, delivery.at)
            lines.append(f"a redelivery of the event sent at {first}: same source, same id, so it is stored once")
        if not delivery.batch:
            event = delivery.events[0]
            lateness = delivery.at - event.time
            late = ""
            if lateness >= dt.timedelta(minutes=5):
                happened = self._moment(event.time, delivery.at)
                late = f" · happened at {happened}, {duration_text(lateness)} before it arrived"
            lines.append(event.line + late)
        elif len(delivery.events) > LISTED_EVENTS:
            by_type = Counter(e.type for e in delivery.events)
            lines.append(" · ".join(f"{count} {kind}" for kind, count in by_type.most_common()))
            times = [e.time.astimezone(self.tz) for e in delivery.events]
            accounts = sorted({str(e.data.get("account_id")) for e in delivery.events if e.data.get("account_id")})
            lines.append(
                f"happened from {min(times):%b} {min(times).day} to {max(times):%b} {max(times).day}"
                f", on {len(accounts)} account{'s' if len(accounts) != 1 else ''}"
            )
        else:
            for event in delivery.events:
                lateness = delivery.at - event.time
                late = ""
                if lateness >= dt.timedelta(minutes=5):
                    happened = self._moment(event.time, delivery.at)
                    late = f" · happened at {happened}, {duration_text(lateness)} before it arrived"
                lines.append(f"{event.type} · {event.line}{late}")
        if answer.status != 202:
            lines += [f"{e.get('path')}: {e.get('message')}" for e in answer.body.get("errors", [])][:5]
            lines += [str(answer.body["error"])] if "error" in answer.body else []
        return tuple(lines)

    def _moment(self, moment: dt.datetime, reference: dt.datetime) -> str:
        """``14:05``, or ``Mon Oct 12 14:05`` when not on the local day of ``reference``."""
        local = moment.astimezone(self.tz)
        if local.date() == reference.astimezone(self.tz).date():
            return f"{local:%H:%M}"
        return f"{local:%a %b} {local.day} {local:%H:%M}"

    def _tell_story(self, story: StoryPlan) -> None:
        """The owner clicks "Share how we won" in the win's thread and submits one line."""
        journey = self.recorder.posts.get(wins.journey_key(story.deal_id))
        if journey is None:
            return
        button = next(
            (
                block["accessory"]
                for block in journey.body.get("blocks") or []
                if (block.get("accessory") or {}).get("action_id") == Action.WIN_STORY.value
            ),
            None,
        )
        if button is None:
            return
        channel, thread = self.alignment.channels.wins, str(journey.body.get("thread_ts") or "")
        label = " ".join(str((button.get("text") or {}).get("text") or "").split())
        self.transcript.add(
            Entry(
                self.clock.now(),
                channel,
                name_of(story.owner),
                "action",
                f"clicked [{label}] under the journey",
                from_bot=False,
                thread=thread,
            )
        )
        # SlackDriver.click finds buttons in actions blocks; this one is a section's accessory.
        message = {"blocks": [{"type": "actions", "elements": [button]}]}
        with self.recorder.acting(story.owner, channel, thread):
            opened_before = len(self.fake.calls_to("views.open"))
            self.slack.click(message, Action.WIN_STORY.value, user=str(story.owner.slack_id), channel=channel)
            opened = self.fake.calls_to("views.open")
        if len(opened) == opened_before:
            return
        self._pause(60, 180)  # thinks of the one line
        self._submit(story.owner, opened[-1].body["view"], {Block.STORY.value: story.text}, channel, thread)

    # --- the report ---

    def _period(self) -> str:
        last = self.end - dt.timedelta(days=1)
        first = f"{self.start:%a %b} {self.start.day}"
        span = first if self.days == 1 else f"{first} to {last:%a %b} {last.day}"
        return f"{self.days} simulated day{'s' if self.days != 1 else ''}, {span}, seed {self.seed}"

    def _heading(self) -> str:
        config = self.config or f"the packaged example ({EXAMPLE_CONFIG.name})"
        return "\n".join(
            [
                f"alignbot demo: {self._period()}",
                f"Alignment: {config}; {len(self.alignment.people)} people. Slack: an in-process fake. "
                "Database: a temporary SQLite file.",
                f"CRM: generated events, signed and sent to {CRM_WEBHOOK} as a CRM would, "
                "three months of history first.",
                f"Times are shown in {self.alignment.timezone}, the company timezone.",
                *self._people_lines(),
                *self._holiday_lines(),
                "",
            ]
        )

    def _people_lines(self) -> list[str]:
        """Where the sales team works, and its hours: an SLA clock runs in its owner's."""
        sales = [p for p in self.alignment.people if p.team == "sales"]
        if not sales:
            return []

        managers = {p.manager.lower() for p in self.alignment.people if p.manager}
        hours = self.alignment.calendar.working_hours

        def where(person: Person) -> str:
            parts = [str(self.alignment.tz(person)).rsplit("/", 1)[-1].replace("_", " ")]
            if person.working_hours and person.working_hours != hours:
                parts.append(str(person.working_hours))
            if person.email.lower() in managers:
                parts.append("manager")
            return ", ".join(parts)

        quiet = self.alignment.noise.quiet_hours
        return [
            "Sales: "
            + ", ".join(f"{name_of(p)} ({where(p)})" for p in sales)
            + f"; working hours {hours}"
            + (f", quiet hours {quiet}" if quiet else "")
            + ", each in their own timezone."
        ]

    def _holiday_lines(self) -> list[str]:
        """Say which simulated weekdays are holidays, or a reader wonders why nobody works then."""
        lines = []
        for i in range(self.days):
            day = self.start.date() + dt.timedelta(days=i)
            name = self.calendar.holiday_name(day)
            if name and WEEKDAYS[day.weekday()] in self.alignment.calendar.workdays:
                lines.append(f"{day:%a %b} {day.day} is a holiday in the business calendar ({name}): nobody works.")
        return lines

    def _summary(self, database: Database) -> tuple[list[str], int]:
        with database.session() as session:
            rows = session.execute(
                select(OutboxMessage.kind, func.count(OutboxMessage.id))
                .where(OutboxMessage.delivered_at.is_not(None))
                .group_by(OutboxMessage.kind)
                .order_by(func.min(OutboxMessage.id))
            ).all()
            failed = int(
                session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.failed_at.is_not(None))) or 0
            )
            pending = int(
                session.scalar(
                    select(func.count(OutboxMessage.id)).where(
                        OutboxMessage.delivered_at.is_(None), OutboxMessage.failed_at.is_(None)
                    )
                )
                or 0
            )
        by_kind = {str(kind): int(count) for kind, count in rows}
        entries = self.transcript.entries
        ephemeral = sum(1 for e in entries if e.kind == "ephemeral")
        modals = sum(1 for e in entries if e.kind == "modal" and not e.text)
        uploads = len(self.recorder.uploads)
        width = max([len(k) for k in by_kind] + [len("ephemeral answers")])
        lines = ["━" * 80, f"Summary: {self._period()}", "", "Messages by kind"]
        lines += [f"  {kind.ljust(width)}  {count:>4}" for kind, count in by_kind.items()]
        lines.append(f"  {'ephemeral answers'.ljust(width)}  {ephemeral:>4}   (seen only by the person who asked)")
        if uploads:
            # Not through the outbox: the answer to a click, like a modal.
            lines.append(f"  {'file uploads'.ljust(width)}  {uploads:>4}   (CSVs asked for with “Show the rows”)")
        total = sum(by_kind.values()) + ephemeral + uploads
        lines.append(f"  {'total'.ljust(width)}  {total:>4}   (and {modals} forms opened)")
        if pending:
            lines.append(f"  {pending} message(s) still queued when the simulation ended (due after its end)")
        if failed:
            lines.append(f"  {failed} message(s) could NOT be delivered: see the warnings above")
        lines += ["", *self._crm_lines(), "", *self._deal_lines(database), "", *self._sla_lines(database)]
        lines += ["", *self._meeting_lines(database), "", *self._dm_lines()]
        return lines, failed + len(self.recorder.failed)

    def _crm_lines(self) -> list[str]:
        """What the CRM sent and what the endpoint answered."""
        tally = self.crm_tally
        singles = tally.requests - tally.batches
        kinds = f"{tally.batches} batch{'es' * (tally.batches != 1)}, {singles} single event{'s' * (singles != 1)}"
        return [
            f"CRM events in ({CRM_WEBHOOK}): {tally.events} sent in {tally.requests} signed requests ({kinds})",
            f"  {tally.accepted} accepted, {tally.duplicates} duplicate{'s' if tally.duplicates != 1 else ''} "
            f"(redelivered, stored once), {tally.ignored} ignored, "
            f"{tally.rejected} request{'s' if tally.rejected != 1 else ''} rejected",
        ]

    def _deal_lines(self, database: Database) -> list[str]:
        """The deals the CRM closed, and how each reached #wins (or did not)."""
        with database.session() as session:
            deals = list(session.scalars(select(Deal)))
        won = [d for d in deals if d.status != "lost"]
        posted = sum(1 for d in won if d.announced_as == "post")
        digested = sum(1 for d in won if d.announced_as == "digest" and d.digest_key)
        waiting = sum(1 for d in won if d.announced_as == "digest" and not d.digest_key)
        withdrawn = sum(1 for d in won if d.status == "reopened" and d.announced_as == "post")
        lost = len(deals) - len(won)
        wins_channel = self.directory.where(self.alignment.channels.wins)
        parts = [f"{posted} announced in {wins_channel}", f"{digested} in the daily digest of smaller wins"]
        if waiting:
            parts.append(f"{waiting} waiting for the next digest")
        return [
            f"Deals closed: {len(won)} won ({', '.join(parts)}), {lost} lost (not announced)",
            *([f"  {withdrawn} reopened after its announcement: its post is marked withdrawn"] if withdrawn else []),
        ]

    def _sla_lines(self, database: Database) -> list[str]:
        """The SLA clocks that started in the run, how they ended, and the flags they raised."""
        sla = self.alignment.sla[0] if self.alignment.sla else None
        if sla is None:
            return ["Lead-handoff SLA: none configured"]
        with database.session() as session:
            clocks = list(
                session.scalars(
                    select(SlaClock).where(SlaClock.started_at >= self.start, SlaClock.started_at < self.end)
                )
            )
            escalated = {
                str(key).split(":")[1]
                for key in session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "sla.red.manager"))
            }
        recycled = [c for c in clocks if c.stopped_by == "lead.recycled"]
        met = [c for c in clocks if c.state == "met" and c.stopped_by != "lead.recycled"]
        late = [c for c in clocks if c.state == "met_late" and c.stopped_by != "lead.recycled"]
        past_due = [c for c in clocks if c.stopped_at is None and c.due_at <= self.end]
        running = [c for c in clocks if c.stopped_at is None and c.due_at > self.end]
        red = [c for c in clocks if c.escalated_at is not None]
        corrected = [c for c in red if c.corrected_at is not None]
        breached = [c for c in red if c.corrected_at is None]
        on_time = [c for c in clocks if c.state == "met"]  # contacted, or recycled, before the deadline
        decided = [c for c in clocks if c.state in {"met", "met_late"}] + past_due
        after_yellow = sum(1 for c in met if c.warned_at is not None and c.corrected_at is None)
        moved = sum(1 for c in clocks if c.reassignments)
        by_dm = sum(1 for c in breached if str(c.id) in escalated)

        def plural(count: int, word: str) -> str:
            return f"{count} {word}{'s' if count != 1 else ''}"

        closed = len(clocks) - len(past_due) - len(running)
        outcomes = [f"{len(met)} met", f"{len(late)} met late", f"{len(recycled)} recycled"]
        outcomes += [f"{len(past_due)} past due, still open"] if past_due else []
        outcomes += [f"{len(running)} still running at the end"] if running else []
        lines = [
            f"Lead-handoff SLA {sla.name} {sla.version}: first touch within {render_duration(sla.within)} of"
            f" business time, yellow flag at {round(sla.warn_at * 100)}%",
            f"  {plural(len(clocks), 'clock')} started, {closed} closed: "
            + ", ".join(outcomes)
            + (f" ({moved} reassigned on the way)" if moved else ""),
        ]
        extras = [f"{after_yellow} after a yellow flag"] if after_yellow else []
        extras += [f"{len(corrected)} after a red flag that was then corrected"] if corrected else []
        if extras:
            lines.append(f"  of the {len(met)} met: " + ", ".join(extras))
        if decided:
            share = round(100 * len(on_time) / len(decided))
            lines.append(
                f"  SLA attainment {share}%: {len(on_time)} of {len(decided)} closed clocks"
                + (" or past due" if past_due else "")
                + " met on time (contacted or recycled before the deadline)"
            )
        if breached:
            summary = len(breached) - by_dm
            told = [f"{by_dm} escalated to the manager by DM"] if by_dm else []
            told += [f"{summary} in the manager's daily summary"] if summary else []
            lines.append(f"  {len(breached)} breached (a red flag to the owner): " + ", ".join(told))
        return lines

    def _meeting_lines(self, database: Database) -> list[str]:
        """The reminders each meeting sent in the run, and what became of the agenda items added."""
        if not self.alignment.meetings:
            return ["Joint meetings: none configured"]
        with database.session() as session:
            keys = set(
                session.scalars(
                    select(OutboxMessage.key).where(
                        OutboxMessage.kind == "meeting.reminder", OutboxMessage.delivered_at.is_not(None)
                    )
                )
            )
            items = list(session.scalars(select(AgendaItem).where(AgendaItem.created_at >= self.start)))
        lines: list[str] = []
        for meeting in self.alignment.meetings:
            horizon = max(meeting.remind_before, default=dt.timedelta(0))
            sent = [
                (occurrence.starts_at - offset, occurrence, offset)
                for occurrence in meetings.occurrences(self.alignment, meeting, self.start, self.end + horizon)
                for offset in meeting.remind_before
                if meetings.reminder_key(occurrence, offset) in keys
            ]
            shown = [
                f"{meetings.offset_label(offset)} before {o.local:%a %b} {o.local.day} {o.local:%H:%M}"
                for _, o, offset in sorted(sent, key=lambda s: s[0])
            ]
            mine = [i for i in items if i.meeting == meetings.slug(meeting)]
            covered = sum(1 for i in mine if i.covered_at is not None)
            # Not ticked, and its meeting was held in the run: it is on the next agenda too.
            carried = sum(1 for i in mine if i.covered_at is None and i.occurrence_at < self.end)
            lines.append(
                f"{meeting.name} ({self.directory.where(meeting.channel)}): "
                f"{len(sent)} reminder{'s' if len(sent) != 1 else ''}" + (f" ({'; '.join(shown)})" if shown else "")
            )
            if mine:
                lines.append(
                    f"  {len(mine)} agenda item{'s' if len(mine) != 1 else ''} added with /agenda add, "
                    f"{covered} ticked Covered, {carried} carried over to the next meeting"
                )
        return lines

    def _note_held(self, database: Database) -> None:
        """Say why a DM arrived well after it was queued: quiet hours, or the day's DM budget."""
        with database.session() as session:
            rows = session.execute(
                select(OutboxMessage.key, OutboxMessage.created_at, OutboxMessage.delivered_at).where(
                    OutboxMessage.delivered_at.is_not(None)
                )
            ).all()
        queued = {
            str(key): created
            for key, created, delivered in rows
            if delivered is not None and delivered - created >= dt.timedelta(minutes=10)
        }
        quiet = self.alignment.noise.quiet_hours
        for index, entry in enumerate(self.transcript.entries):
            user = self.directory.dm_user(entry.conversation)
            key = str(((entry.payload.get("metadata") or {}).get("event_payload") or {}).get("key") or "")
            if entry.kind != "message" or user is None or key not in queued:
                continue
            person = self.alignment.person_by_slack_id(user)
            created = queued[key]
            when = self._moment(created, entry.at)
            note = f"queued {when}"
            if person is not None and quiet and quiet.contains(created.astimezone(self.alignment.tz(person)).time()):
                note += f" in {name_of(person)}'s quiet hours, {quiet} their time"
            self.transcript.entries[index] = dataclasses.replace(entry, note=note)

    def _dm_lines(self) -> list[str]:
        """Bot DMs per person per workday (their own workdays and timezone), zero-days included."""
        received: Counter[tuple[str, dt.date]] = Counter()
        quiet = self.alignment.noise.quiet_hours
        in_quiet_hours = 0
        for entry in self.transcript.entries:
            user = self.directory.dm_user(entry.conversation)
            if entry.kind == "message" and user is not None:
                local = entry.at.astimezone(self.alignment.tz(self.alignment.person_by_slack_id(user)))
                received[(user, local.date())] += 1
                in_quiet_hours += bool(quiet and quiet.contains(local.time()))
        counts: list[tuple[int, Person, dt.date]] = []
        days = [self.start.date() + dt.timedelta(days=i) for i in range(self.days)]
        people = [p for p in self.alignment.people if p.slack_id]
        for person in people:
            for day in days:
                if self.calendar.is_workday(day, person):
                    counts.append((received[(str(person.slack_id), day)], person, day))
        if not counts:
            return ["Bot DMs per person per workday: no workdays in the simulated period"]
        median, most = median_and_max([c for c, _, _ in counts])
        busiest: dict[str, list[str]] = {}
        for count, person, day in counts:
            if count == most and most > 0:
                busiest.setdefault(name_of(person), []).append(f"{day:%a %b} {day.day}")
        shown = "; ".join(f"{who} on {', '.join(when)}" for who, when in list(busiest.items())[:2])
        if len(busiest) > 2:
            shown += f"; and {len(busiest) - 2} more"
        workdays = len({d for _, _, d in counts})
        total = sum(received.values())
        return [
            f"Bot DMs per person per workday: median {median:g}, max {most}" + (f" ({shown})" if shown else ""),
            f"  over {len(people)} people and {workdays} workday{'s' if workdays != 1 else ''} each; "
            f"{total} DM{'s' if total != 1 else ''} in all",
            *(
                [f"  {in_quiet_hours} delivered in the recipient's quiet hours ({quiet}, their time)"]
                if quiet and in_quiet_hours
                else []
            ),
        ]


def duration_text(span: dt.timedelta) -> str:
    """``25 min``, ``4 h 10 min``, ``3 days``: how long, the way people say it."""
    minutes = int(span.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 24 * 60:
        hours, rest = divmod(minutes, 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    days = minutes // (24 * 60)
    return f"{days} day{'s' if days != 1 else ''}"


def describe_submission(view: Mapping[str, Any], values: Mapping[str, Any]) -> tuple[str, ...]:
    """``Label: value`` for each submitted field of a modal, options shown by their text."""
    lines: list[str] = []
    for block in view.get("blocks") or []:
        block_id = block.get("block_id")
        if block.get("type") != "input" or block_id not in values:
            continue
        label = str((block.get("label") or {}).get("text") or block_id)
        value = values[block_id]
        if isinstance(value, tuple):
            options = (block.get("element") or {}).get("options") or []
            value = next(
                (str(o["text"]["text"]) for o in options if str(o.get("value")) == str(value[1])), str(value[1])
            )
        lines.append(f"{label}: {value}")
    return tuple(lines)


def _item_number(post: SlackCall) -> str:
    key = str(((post.body.get("metadata") or {}).get("event_payload") or {}).get("key") or "")
    return key.rsplit(":", 1)[-1] if key else "?"
