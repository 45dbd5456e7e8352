"""The joint meeting, the scorecard and the shared vocabulary: what people type and click about them.

Before each weekly meeting one person of each team adds an agenda item; after it, its chair
ticks one *Covered* and the other carries over. ``/define`` is typed three times (a stage, the
whole vocabulary, a typo then the fix), and the head of marketing asks for the rows behind a
metric of each scorecard.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from bot.config import Alignment, Meeting, Person
from bot.demo.feedback_plan import typo
from bot.demo.people import calendar_of, works_on
from bot.demo.script import script
from bot.services import meetings


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
    alignment: Alignment,
    rng: random.Random,
    person: Person,
    low: dt.datetime,
    high: dt.datetime,
    margin: dt.timedelta = dt.timedelta(minutes=5),
) -> dt.datetime | None:
    """A random moment of ``person``'s working hours within ``[low, high)``, ``margin`` inside each
    span, in UTC; None when they do not work in that window."""
    spans = [
        (begin + margin, finish - margin)
        for begin, finish in calendar_of(alignment, person).intervals(low, high)
        if begin + margin < finish - margin
    ]
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
        _plan_meeting(alignment, alignment.meetings[0], rng, start, end, plan, members, head("sales"))
    stages = [s.name for s in alignment.stages]
    reps, marketers = members("sales"), members("marketing")
    tz = ZoneInfo(alignment.timezone)
    days = [
        day
        for i in range((end.astimezone(tz).date() - start.astimezone(tz).date()).days)
        if works_on(alignment, day := start.astimezone(tz).date() + dt.timedelta(days=i))
    ]

    def define(slot: int, person: Person, text: str, where: str, then: str | None = None) -> None:
        if not days:
            return
        midnight = dt.datetime.combine(days[min(slot, len(days) - 1)], dt.time(0), tz)
        at = working_moment(alignment, rng, person, max(midnight, start), min(midnight + dt.timedelta(days=1), end))
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
        wanted = script().rows_metric
        metric = wanted if wanted in metrics else metrics[0]
        for posted in scorecards:
            # The head of marketing reads it over the first coffee and asks which leads are behind it.
            at = working_moment(
                alignment, rng, reader, posted + dt.timedelta(minutes=20), posted + dt.timedelta(hours=4)
            )
            if at is not None and at < end:
                plan.rows.append(RowsPlan(at, reader, alignment.channels.marketing, metric))
    return plan


def _plan_meeting(
    alignment: Alignment,
    meeting: Meeting,
    rng: random.Random,
    start: dt.datetime,
    end: dt.datetime,
    plan: TeamPlan,
    members: Callable[[str], list[Person]],
    chair: Person | None,
) -> None:
    """Reminder moments, agenda items and the *Covered* tick of ``meeting``'s occurrences whose
    reminders fall in the run (see :func:`plan_team`)."""
    competitors = list(alignment.feedback.competitors) or ["A competitor"]
    decks = {team: list(texts) for team, texts in script().agenda.items()}
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
                at = working_moment(alignment, rng, author, since, moments[0])
                if at is not None and deck:
                    text = deck.pop(0).replace("{competitor}", rng.choice(competitors))
                    plan.commands.append(CommandPlan(at, author, "/agenda", f"add {text}", meeting.channel))
                    added.append((at, text))
                    break
        held = occurrence.starts_at
        if added and chair is not None and held < end:
            # The chair ticks off what was discussed once the hour is over; the rest carries over.
            at = working_moment(alignment, rng, chair, held + dt.timedelta(minutes=40), held + dt.timedelta(hours=3))
            if at is not None and at < end:
                plan.covered.append(CoveredPlan(at, chair, meeting.channel, min(added)[1]))
        since = max(since, held + dt.timedelta(hours=1))
