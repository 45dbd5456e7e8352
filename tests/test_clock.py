"""The clock: one leader per database, and catching up on what it missed while down."""

from __future__ import annotations

import datetime as dt
import threading

from freezegun import freeze_time
from sqlalchemy import func, select

from bot.db import Database
from bot.deps import Dependencies
from bot.models import OutboxMessage
from schedules.clock import ClockLock, _fire, start_scheduler
from schedules.jobs import ScheduledJob, build_jobs, cron


def test_a_second_clock_waits_until_the_first_stops(database: Database) -> None:
    first, second = ClockLock(Database(database.engine)), ClockLock(Database(database.engine))
    assert first.try_acquire()
    assert not second.try_acquire()

    stop = threading.Event()
    got: list[bool] = []
    waiter = threading.Thread(target=lambda: got.append(second.acquire(stop, poll=0.05)))
    waiter.start()
    waiter.join(0.3)
    assert waiter.is_alive() and got == []  # still waiting
    first.release()
    waiter.join(5)
    assert got == [True]
    second.release()


def test_a_waiting_clock_can_be_stopped(database: Database) -> None:
    first = ClockLock(database)
    assert first.try_acquire()
    stop = threading.Event()
    stop.set()
    assert ClockLock(database).acquire(stop, poll=0.05) is False
    first.release()


def test_on_start_the_clock_catches_up_on_a_missed_occurrence_once(deps: Dependencies) -> None:
    runs: list[dt.datetime] = []
    job = ScheduledJob(
        name="weekly",
        trigger=cron("0 9 * * mon", "America/New_York"),
        run=lambda occurrence, now: runs.append(occurrence),
        grace=dt.timedelta(hours=12),
    )
    with freeze_time("2026-11-16 16:00:00+00:00"):  # Monday 11:00 in New York: two hours late
        scheduler = start_scheduler(deps, [job])
        scheduler.shutdown(wait=False)
    assert runs == [dt.datetime(2026, 11, 16, 14, 0, tzinfo=dt.UTC)]


def test_the_feedback_digest_is_caught_up_through_the_real_jobs(deps: Dependencies) -> None:
    with freeze_time("2026-11-16 15:00:00+00:00"):
        for _ in range(2):  # a restart right after: still one digest
            start_scheduler(deps).shutdown(wait=False)
    with deps.database.session() as session:
        kinds = sorted(session.scalars(select(OutboxMessage.kind)).all())
        # Monday 10:00 in New York is also 24 hours before the example's weekly pipeline review.
        assert kinds == ["feedback.digest", "meeting.reminder"]
        assert session.scalar(select(func.count(OutboxMessage.id))) == 2


def test_configured_schedules_read_weekday_numbers_as_cron_does_and_accept_rrules() -> None:
    # "1" is Monday in cron (APScheduler's own cron would read it as Tuesday).
    numeric = ScheduledJob("n", cron("0 8 * * 1", "America/New_York"), lambda o, n: None, dt.timedelta(hours=1))
    [monday] = numeric.occurrences(dt.datetime(2026, 11, 15, tzinfo=dt.UTC), dt.datetime(2026, 11, 21, tzinfo=dt.UTC))
    assert monday.astimezone(dt.timezone(dt.timedelta(hours=-5))).strftime("%a %H:%M") == "Mon 08:00"
    # An RRULE for a scorecard every other Monday at 08:00 local, across the end of daylight time.
    rule = cron("DTSTART:20261019T080000\nRRULE:FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", "America/New_York")
    job = ScheduledJob("r", rule, lambda o, n: None, dt.timedelta(hours=1))
    found = job.occurrences(dt.datetime(2026, 10, 18, tzinfo=dt.UTC), dt.datetime(2026, 11, 18, tzinfo=dt.UTC))
    assert [f.isoformat() for f in found] == [
        "2026-10-19T12:00:00+00:00",
        "2026-11-02T13:00:00+00:00",
        "2026-11-16T13:00:00+00:00",
    ]


def test_a_late_live_firing_and_a_restart_post_one_digest_for_the_occurrence(deps: Dependencies) -> None:
    """The path APScheduler takes (``_fire``), not only the catch-up: a firing three minutes late is
    still the 09:00 digest, so the restart's catch-up finds its key taken and posts nothing more."""
    [job] = [j for j in build_jobs(deps) if j.name == "feedback-digest"]
    with freeze_time("2026-11-16 14:03:00+00:00"):  # Monday 09:03 in New York: within the misfire grace
        _fire(job, deps)
    with freeze_time("2026-11-16 14:10:00+00:00"):  # a deploy restarts the clock
        start_scheduler(deps, [job]).shutdown(wait=False)
    with deps.database.read_session() as session:
        keys = session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "feedback.digest")).all()
    assert keys == ["feedback-digest:2026-11-16T14:00Z"]
