"""Which job runs when. Each job opens a session and calls a service; every job is idempotent
per occurrence (its messages are keyed by the occurrence), so running one twice, late, or
from a second process sends nothing twice."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from apscheduler.triggers.base import BaseTrigger

from bot.deps import Dependencies
from bot.services import feedback, meetings, scorecard, sla, vocabulary, wins

log = logging.getLogger("alignbot.clock")


@dataclass(frozen=True)
class ScheduledJob:
    """A job of the clock: its trigger, what it does for one occurrence, and how late it may still run."""

    name: str
    trigger: ScheduleTrigger
    run: Callable[[dt.datetime, dt.datetime], None]  # (occurrence, now)
    grace: dt.timedelta
    lookback: dt.timedelta = dt.timedelta(days=8)

    def occurrences(self, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
        """Fire times in ``(start, end]``, in UTC."""
        times: list[dt.datetime] = []
        previous: dt.datetime | None = None
        cursor = start + dt.timedelta(microseconds=1)
        while True:
            fire = self.trigger.get_next_fire_time(previous, cursor)
            if fire is None or fire > end:
                return times
            times.append(fire.astimezone(dt.UTC))
            previous, cursor = fire, fire + dt.timedelta(microseconds=1)

    def last_occurrence(self, now: dt.datetime) -> dt.datetime | None:
        """The latest fire time at or before ``now`` (within ``lookback``)."""
        found = self.occurrences(now - self.lookback, now)
        return found[-1] if found else None

    def run_due(self, now: dt.datetime) -> dt.datetime | None:
        """Run the latest occurrence if it is within ``grace`` of ``now``; returns it if run."""
        occurrence = self.last_occurrence(now)
        if occurrence is None or now - occurrence > self.grace:
            return None
        self.run(occurrence, now)
        return occurrence


class ScheduleTrigger(BaseTrigger):
    """A trigger for a schedule of the config: a cron line or an RFC 5545 RRULE, in a timezone.

    Both read the way a RevOps admin writes them (``meetings.fire_times``): cron's weekday
    numbers as cron means them (0 and 7 are Sunday; APScheduler's own cron counts 0 as Monday),
    and 09:00 stays 09:00 local across a daylight-saving change.
    """

    def __init__(self, schedule: str, timezone: str) -> None:
        self.schedule, self.timezone = schedule, timezone

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None, now: dt.datetime) -> dt.datetime | None:
        start = now if previous_fire_time is None else max(now, previous_fire_time + dt.timedelta(microseconds=1))
        return next(meetings.fire_times(self.schedule, self.timezone, start, start + dt.timedelta(days=400)), None)

    def __str__(self) -> str:
        return f"schedule[{self.schedule!r} in {self.timezone}]"


def cron(schedule: str, timezone: str) -> ScheduleTrigger:
    """The trigger of a configured schedule (cron or RRULE) in a timezone."""
    return ScheduleTrigger(schedule, timezone)


def sla_tick(deps: Dependencies, *, batch: int = 200) -> int:
    """One tick of the SLA clocks: queue the flags that have come due (cheap when none has).

    A burst (every Friday-evening hand-off due at Monday 13:00) goes in transactions of
    ``batch`` clocks, so the relay starts sending the first flags while the rest are queued.
    """
    done = 0
    while True:
        with deps.database.session() as session:
            count = sla.tick(session, deps.alignment, now=deps.clock(), limit=batch)
        done += count
        if count < batch:
            return done


def meetings_tick(deps: Dependencies) -> int:
    """One tick of the meeting reminders: queue each one whose moment has come, once.

    What is due follows from the config, the time and the outbox keys alone, so the first tick
    after a restart sends the reminders missed while the clock was down (the latest one of each
    meeting not yet started), and later ticks send nothing twice.
    """
    if not deps.alignment.meetings:
        return 0
    now = deps.clock()
    with deps.database.read_session() as session:  # most ticks: nothing new, and no write lock taken
        if not meetings.pending_reminders(session, deps.alignment, now=now):
            return 0
    with deps.database.session() as session:
        queued = meetings.send_due_reminders(session, deps.alignment, now=now)
    if queued:
        log.info("queued %d meeting reminder(s)", queued)
    return queued


def announce_vocabulary(deps: Dependencies) -> int:
    """On start: announce a change of the agreed vocabulary (stages, SLAs) since the last start, once.

    Returns how many terms changed; the first start ever only records the vocabulary.
    """
    with deps.database.session() as session:
        changes = vocabulary.announce_changes(session, deps.alignment, now=deps.clock())
    if changes:
        log.info("the shared vocabulary changed: %s", ", ".join(c["name"] for c in changes))
    return len(changes)


def build_jobs(deps: Dependencies) -> list[ScheduledJob]:
    """Every scheduled job of the alignment."""
    alignment = deps.alignment

    def feedback_digest(occurrence: dt.datetime, now: dt.datetime) -> None:
        with deps.database.session() as session:
            if feedback.enqueue_digest(session, alignment, occurrence=occurrence, now=now):
                log.info("queued the feedback digest of %s", occurrence.isoformat())

    def wins_digest(occurrence: dt.datetime, now: dt.datetime) -> None:
        with deps.database.session() as session:
            if wins.enqueue_digest(session, alignment, occurrence=occurrence, now=now):
                log.info("queued the wins digest of %s", occurrence.isoformat())

    def scorecard_post(occurrence: dt.datetime, now: dt.datetime) -> None:
        with deps.database.session() as session:
            if scorecard.enqueue_post(session, alignment, occurrence=occurrence, now=now):
                log.info("queued the scorecard of %s", occurrence.isoformat())

    def manager_summary(occurrence: dt.datetime, now: dt.datetime) -> None:
        with deps.database.session() as session:
            sent = sla.manager_summaries(session, alignment, occurrence=occurrence, now=now)
            if sent:
                log.info("queued %d SLA summaries to managers", sent)

    return [
        ScheduledJob(
            name="sla-manager-summary",
            trigger=cron("30 16 * * mon-fri", alignment.timezone),
            run=manager_summary,
            grace=dt.timedelta(hours=3),
        ),
        ScheduledJob(
            name="wins-digest",
            trigger=cron(alignment.wins.digest_schedule, alignment.timezone),
            run=wins_digest,
            grace=dt.timedelta(hours=6),
        ),
        ScheduledJob(
            name="scorecard",
            trigger=cron(alignment.scorecard.schedule, alignment.timezone),
            run=scorecard_post,
            grace=dt.timedelta(hours=12),  # a Monday-morning scorecard is still news by the evening
        ),
        ScheduledJob(
            name="feedback-digest",
            trigger=cron(alignment.feedback.digest_schedule, alignment.timezone),
            run=feedback_digest,
            grace=dt.timedelta(hours=12),
        ),
    ]
