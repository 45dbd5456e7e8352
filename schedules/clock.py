"""The clock process: one leader at a time, APScheduler firing the jobs, the relay retrying."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot import logs, metrics
from bot.db import Database
from bot.deps import Dependencies
from bot.services import sla as sla_service
from schedules.jobs import ScheduledJob, announce_vocabulary, build_jobs, meetings_tick, sla_tick

log = logging.getLogger("alignbot.clock")
ADVISORY_LOCK_KEY = 0x616C69676E  # "align": one clock per PostgreSQL database


class ClockLock:
    """At most one clock per database: a PostgreSQL advisory lock, or a lock file beside SQLite.

    The lock is held by a connection (or an open file) for the life of the process, so it is
    released when the process dies, however it dies.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._connection: Any = None
        self._file: IO[str] | None = None

    def try_acquire(self) -> bool:
        """Take the lock if it is free; never blocks."""
        if self.database.is_sqlite:
            path = self._lock_path()
            if path is None:
                return True
            handle = path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                return False
            self._file = handle
            return True
        connection = self.database.engine.connect()
        got = bool(connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY}).scalar())
        connection.commit()
        if got:
            self._connection = connection
        else:
            connection.close()
        return got

    def acquire(self, stop: threading.Event, poll: float = 5.0) -> bool:
        """Wait for the lock (logging once that another clock has it); False if stopped first."""
        told = False
        while not stop.is_set():
            if self.try_acquire():
                return True
            if not told:
                log.info("another clock is running against this database; waiting for it to stop")
                told = True
            stop.wait(poll)
        return False

    def still_held(self) -> bool:
        """Whether this process still holds the lock, taking it again if it was lost but is free.

        A PostgreSQL advisory lock lives as long as its connection: a database restart or a
        dropped connection ends it silently, and a waiting clock may then take it. Asking is
        the only way to know; a lock file cannot be lost that way.
        """
        if self.database.is_sqlite:
            return True
        if self._connection is not None:
            try:
                held = self._connection.execute(
                    text(
                        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                        "AND pid = pg_backend_pid() AND ((classid::bigint << 32) | objid::bigint) = :k"
                    ),
                    {"k": ADVISORY_LOCK_KEY},
                ).scalar()
                self._connection.commit()
                if held:
                    return True
            except Exception as exc:  # the connection that held it is gone
                log.warning("the connection holding the clock lock is gone (%s); taking the lock again", exc)
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None
        try:
            return self.try_acquire()
        except Exception as exc:  # still away: nobody else can take it now either; ask again at the next check
            log.warning("cannot reach the database to take the clock lock again (%s); retrying", exc)
            return True

    def release(self) -> None:
        """Give the lock up."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
                self._connection.commit()
            self._connection.close()
            self._connection = None

    def _lock_path(self) -> Path | None:
        database = make_url(str(self.database.engine.url)).database
        if not database or database == ":memory:":
            return None
        return Path(database).with_name(Path(database).name + ".clock.lock")


def start_scheduler(deps: Dependencies, jobs: list[ScheduledJob] | None = None) -> BackgroundScheduler:
    """Catch up on occurrences missed while no clock ran, then fire every job on its trigger."""
    jobs = build_jobs(deps) if jobs is None else jobs
    announce_vocabulary(deps)  # a config deploy restarts the clock: say what the agreement now means
    now = deps.clock()
    for job in jobs:
        occurrence = job.run_due(now)
        if occurrence is not None:
            log.info("caught up on %s of %s", job.name, occurrence.isoformat())
    scheduler = BackgroundScheduler(timezone=dt.UTC)
    for job in jobs:
        scheduler.add_job(
            _fire,
            trigger=job.trigger,
            args=[job, deps],
            id=job.name,
            name=job.name,
            misfire_grace_time=int(job.grace.total_seconds()),
            coalesce=True,
            max_instances=1,
        )
    # The SLA clocks: the tick reads only the clocks whose next check has come (an index), so
    # running it often costs little; after downtime its first run sends what was missed, once,
    # marked late. Every 2 s it finds what the projectors of other processes started; a flag
    # whose moment is known falls between two runs gets a run at that moment (see SlaTicker).
    ticker = SlaTicker(deps, scheduler)
    scheduler.add_job(
        ticker,
        "interval",
        seconds=SLA_TICK_SECONDS,
        id="sla-tick",
        name="sla-tick",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=30,
    )
    sla_tick(deps)
    ticker.aim()
    # Meeting reminders: minute resolution is plenty. Keyed by occurrence and offset in the
    # outbox, so the catch-up run here and every later one send each reminder once.
    scheduler.add_job(
        run_observed,
        "interval",
        seconds=30,
        args=[deps, "meetings-tick", meetings_tick],
        id="meetings-tick",
        name="meetings-tick",
        coalesce=True,
        max_instances=1,
        misfire_grace_time=60,
    )
    meetings_tick(deps)
    scheduler.start()
    return scheduler


SLA_TICK_SECONDS = 2
#: The least time between two on-time runs of the SLA tick.
ON_TIME_GAP = dt.timedelta(seconds=0.25)


class SlaTicker:
    """The SLA tick as the scheduler runs it: every ``SLA_TICK_SECONDS``, and on time in between.

    After each run it reads the earliest next check of any clock (the index's first entry) and,
    when that falls before the next regular run, arms one run at that very moment: a deadline
    known in advance (every Friday-evening hand-off due at Monday 13:00) is flagged when it
    passes, not up to two seconds later. At most one such run is armed at a time, and runs take
    turns, so two never act on one clock.
    """

    ON_TIME = "sla-tick-on-time"

    def __init__(self, deps: Dependencies, scheduler: BackgroundScheduler) -> None:
        self.deps = deps
        self.scheduler = scheduler
        self._turn = threading.Lock()
        self._armed: dt.datetime | None = None  # the moment of the on-time run waiting, if any

    def __call__(self) -> None:
        """The regular run."""
        with self._turn:
            self._run()

    def _on_time(self, at: dt.datetime) -> None:
        with self._turn:
            if self._armed == at:
                self._armed = None
            self._run()

    def _run(self) -> None:
        run_observed(self.deps, "sla-tick", sla_tick)
        self.aim()

    def aim(self) -> None:
        """Arm the on-time run for the next check, if it falls before the next regular run."""
        try:
            with self.deps.database.read_session() as session:
                upcoming = sla_service.next_check(session)
        except Exception as exc:  # the database is away: the regular runs go on, and say so
            log.warning("could not read the next SLA check: %s", exc)
            return
        now = self.deps.clock()
        if self._armed is not None and self._armed < now - dt.timedelta(seconds=SLA_TICK_SECONDS):
            self._armed = None  # it never ran (the scheduler dropped it): arm afresh
        if upcoming is None or upcoming >= now + dt.timedelta(seconds=SLA_TICK_SECONDS):
            return
        # Deadlines a few milliseconds apart share a run: at most one every ON_TIME_GAP. One
        # that passed while this run acted (a dense hour of deadlines) gets the next one.
        at = max(upcoming, now + ON_TIME_GAP)
        if self._armed is not None:
            if self._armed <= at:
                return  # the armed run comes first, and aims again after it
            with contextlib.suppress(JobLookupError):
                self.scheduler.remove_job(self._job_id(self._armed))
        # An id per moment: a date job cannot be re-armed under its own id while it runs
        # (APScheduler would skip it as a second instance).
        self.scheduler.add_job(
            self._on_time,
            "date",
            run_date=at,
            args=[at],
            id=self._job_id(at),
            name=self.ON_TIME,
            replace_existing=True,
            misfire_grace_time=30,
        )
        self._armed = at

    def _job_id(self, at: dt.datetime) -> str:
        return f"{self.ON_TIME}-{at:%Y%m%dT%H%M%S.%f}"


def _fire(job: ScheduledJob, deps: Dependencies) -> None:
    def run(deps: Dependencies) -> None:
        now = deps.clock()
        occurrence = job.last_occurrence(now + dt.timedelta(seconds=1))
        if occurrence is None:
            return
        log.info("running %s for %s", job.name, occurrence.isoformat())
        job.run(occurrence, now)

    run_observed(deps, job.name, run)


def run_observed(deps: Dependencies, job: str, work: Callable[[Dependencies], object]) -> None:
    """Run one firing of a job in its own log scope, and count it, ok or failed, in the database
    (``GET /metrics`` reads it there: the clock has no HTTP server of its own).

    A failure is logged here with its traceback and not raised: APScheduler would only log it
    again, and the job runs at its next firing (every job is idempotent per occurrence).
    """
    with logs.scope(job=job, run_id=logs.new_request_id()):
        try:
            work(deps)
            ok = True
        except Exception:
            log.exception("job %s failed", job)
            ok = False
        try:
            metrics.record_job_run(deps.database, job, ok=ok)
        except Exception as exc:  # the database is away: the job's own failure, if any, says so
            log.warning("could not count the run of %s: %s", job, exc)


@contextlib.contextmanager
def leadership(database: Database, stop: threading.Event) -> Iterator[bool]:
    """Hold the clock lock for the block; yields False if stopped while waiting.

    While held, a watchdog checks every ``LOCK_CHECK`` seconds that it still is; when it was
    lost (the database restarted) and another clock took it meanwhile, ``stop`` is set, so this
    clock stops and two never schedule at once (the platform starts it again, to wait).
    """
    lock = ClockLock(database)
    got = lock.acquire(stop)
    done = threading.Event()
    watchdog = threading.Thread(target=_watch_lock, args=(lock, stop, done), name="clock-lock-watch", daemon=True)
    if got:
        watchdog.start()
    try:
        yield got
    finally:
        if got:
            done.set()
            watchdog.join(timeout=10)  # it may be using the lock's connection
            lock.release()


LOCK_CHECK = 2.0


def _watch_lock(lock: ClockLock, stop: threading.Event, done: threading.Event) -> None:
    while not done.wait(LOCK_CHECK) and not stop.is_set():
        if not lock.still_held():
            log.error("lost the clock lock (the database connection holding it went away) to another clock; stopping")
            stop.set()


def wait_forever(stop: threading.Event) -> None:
    """Block the main thread until ``stop`` (set by a signal handler)."""
    while not stop.is_set():
        stop.wait(1.0)
    time.sleep(0)
