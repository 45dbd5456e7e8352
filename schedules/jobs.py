"""Which job runs when. Each job opens a session and calls a service; every job is idempotent
per occurrence (its messages are keyed by the occurrence), so running one twice, late, or
from a second process sends nothing twice."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from bot.app import Dependencies
from bot.services import feedback, sla, wins

log = logging.getLogger("alignbot.clock")


@dataclass(frozen=True)
class ScheduledJob:
    """A job of the clock: its trigger, what it does for one occurrence, and how late it may still run."""

    name: str
    trigger: CronTrigger
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


def cron(schedule: str, timezone: str) -> CronTrigger:
    """A cron trigger in a timezone (so 09:00 stays 09:00 local across DST)."""
    return CronTrigger.from_crontab(schedule, timezone=ZoneInfo(timezone))


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
            name="feedback-digest",
            trigger=cron(alignment.feedback.digest_schedule, alignment.timezone),
            run=feedback_digest,
            grace=dt.timedelta(hours=12),
        ),
    ]
