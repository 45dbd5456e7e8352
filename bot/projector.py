"""The CRM projector: applies the events that ``POST /crm/events`` stored.

A request stores its events and answers ``202`` (they are safe); applying them (folding leads,
touches and deals, queueing win posts, running SLA clocks) is this projector's work, in batches,
so a burst of requests is applied in a few transactions instead of one each. The same code runs
wherever events are applied:

- a thread in each process that stores events (every ``alignbot web`` worker, ``alignbot run``),
  woken by its own requests, so a win is posted moments after the CRM heard ``202``;
- the catch-up in ``alignbot clock``, which polls and applies what a web worker stored and could
  not apply (it was killed, the database went away).

Two projectors never apply the same event: a batch claims its events with ``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, and on SQLite a write transaction (``BEGIN IMMEDIATE``) is the database's
only writer while it runs. Each batch is one transaction: an event is applied with its messages,
or not at all.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from bot.config import Alignment
from bot.db import Database, utcnow
from bot.services import crm, pipeline
from bot.worker import Worker

log = logging.getLogger("alignbot.projector")
#: Failures of the database itself, whatever the event: they never set an event aside.
DATABASE_AWAY = (OperationalError, InterfaceError, DisconnectionError)


class CrmProjector:
    """Applies stored CRM events: as a thread (:meth:`start`, woken by :meth:`wake`) or pass by pass (:meth:`drain`)."""

    def __init__(
        self,
        database: Database,
        alignment: Alignment,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        batch: int = 1000,
        poll_interval: float = 2.0,
        gather: float = 0.05,
    ) -> None:
        self.database = database
        self.alignment = alignment
        self.clock = clock
        self.batch = batch
        self.poll_interval = poll_interval
        self.gather = gather
        self._pass_lock = threading.Lock()
        self._worker = Worker(
            "crm-projector",
            self._pass,
            idle_seconds=lambda: self.poll_interval,
            min_interval=gather,
            error_pause=5.0,
        )

    def wake(self) -> None:
        """Ask the thread to apply what waits now (a request stored events)."""
        self._worker.wake()

    def drain(self) -> int:
        """Apply every event that waits, a batch per transaction; returns how many were applied."""
        done = 0
        with self._pass_lock:
            while True:
                try:
                    with self.database.session() as session:
                        count = pipeline.project(session, self.alignment, now=self.clock(), limit=self.batch)
                except DATABASE_AWAY:
                    raise
                except Exception:
                    # One event that cannot be applied must not hold up every event behind it.
                    if not self._set_aside_failing():
                        raise
                    continue
                done += count
                if count < self.batch:
                    return done

    def _set_aside_failing(self) -> bool:
        """Apply the waiting events one at a time to find the one that fails, and set it aside.

        Returns False when none fails alone (the failure was the database's, not an event's:
        the caller retries later).
        """
        with self.database.read_session() as session:
            ids = crm.waiting(session, limit=self.batch)
        for event_id in ids:
            try:
                with self.database.session() as session:
                    pipeline.project(session, self.alignment, now=self.clock(), only=[event_id])
            except DATABASE_AWAY:
                # The database went away (restart, dropped connection, lock timeout): not this
                # event's fault. Setting it aside would lose it from the domain; retry later.
                raise
            except Exception as exc:
                log.exception("CRM event %d cannot be applied; set aside (it stays stored for a replay)", event_id)
                with self.database.session() as session:
                    crm.set_aside(session, event_id, f"{type(exc).__name__}: {exc}", now=self.clock())
                return True
        return False

    def has_work(self) -> bool:
        """Whether events wait to be applied: one read, no write lock."""
        with self.database.read_session() as session:
            return crm.has_unapplied(session)

    def _pass(self) -> None:
        # A look first, so an idle projector takes no write lock.
        if self.has_work():
            log.debug("applied %d CRM events", self.drain())

    def start(self) -> CrmProjector:
        """Run in a daemon thread until :meth:`stop`.

        Woken, it applies at once, and passes are at least ``gather`` seconds apart, so under a
        burst of requests one batch applies the events of many (a batch has a fixed cost).
        Unwoken, it looks every ``poll_interval`` seconds with a read.
        """
        self._worker.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after the batch it is applying, if any."""
        self._worker.stop(timeout)
