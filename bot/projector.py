"""The CRM projector: applies the events ``POST /crm/events`` stored, right after the request.

The request stores the events and answers ``202`` (they are safe); applying them (folding
leads, touches and deals, queueing win posts, running SLA clocks) is this projector's work, in
batches, so a burst of requests is applied in a few transactions instead of one each.
``alignbot web`` runs one in a process of its own beside its workers (``bot.projector_process``),
polling; ``alignbot clock`` runs one too, which applies whatever the web server stored and could
not apply (it was killed, the database went away). Each batch is one transaction: an event is
applied with its messages, or not at all. On a SQLite file the requests store into the inbox
(``bot.inbox``), and each batch first moves what waits there into ``crm_events``, in the same
transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from bot.config import Alignment
from bot.db import Database, utcnow
from bot.services import crm, pipeline

log = logging.getLogger("alignbot.projector")
#: Failures of the database itself, whatever the event: they never set an event aside.
DATABASE_AWAY = (OperationalError, InterfaceError, DisconnectionError)


class CrmProjector:
    """Applies stored CRM events: as a thread (:meth:`start`, :meth:`wake`) or pass by pass (:meth:`drain`).

    ``inline`` projectors have no thread: :meth:`wake` applies at once, in the caller's thread.
    The demo and the tests use that to see the state as soon as a request is answered.
    """

    def __init__(
        self,
        database: Database,
        alignment: Alignment,
        *,
        clock: Callable[[], dt.datetime] = utcnow,
        batch: int = 1000,
        poll_interval: float = 2.0,
        gather: float = 0.25,
        yield_limit: float = 0.5,
        inline: bool = False,
    ) -> None:
        self.database = database
        self.alignment = alignment
        self.clock = clock
        self.batch = batch
        self.poll_interval = poll_interval
        self.gather = gather
        self.yield_limit = yield_limit
        self.inline = inline
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pass_lock = threading.Lock()

    def wake(self) -> None:
        """Apply what waits: now (inline) or soon (the thread)."""
        if self.inline:
            try:
                self.drain()
            except Exception:  # they are stored: the clock's projector applies them when it can
                log.exception("applying CRM events failed; they wait for the next projector")
        else:
            self._wake.set()

    def drain(self) -> int:
        """Apply every event that waits, a batch per transaction; returns how many were applied."""
        done = 0
        inbox = self.database.inbox
        with self._pass_lock:
            while True:
                self._let_requests_go_first()
                moved: tuple[int, int] | None = None
                try:
                    with self.database.session() as session:
                        if inbox is not None:
                            moved = crm.move_inbox(session, inbox, limit=self.batch)
                        count = pipeline.project(session, self.alignment, now=self.clock(), limit=self.batch)
                except Exception:
                    # One event that cannot be applied must not hold up every event behind it.
                    if moved is not None:
                        self._move_inbox_only()  # the one that fails is then found among the stored
                    if not self._set_aside_failing():
                        raise
                    continue
                if inbox is not None and moved is not None:
                    inbox.delete_through(moved[1])  # only now: they are committed in crm_events
                done += count
                if count < self.batch and (moved is None or moved[0] < self.batch):
                    return done

    def _move_inbox_only(self) -> None:
        """Move the inbox's waiting events into ``crm_events`` without applying them."""
        inbox = self.database.inbox
        if inbox is None:
            return
        while True:
            with self.database.session() as session:
                moved = crm.move_inbox(session, inbox, limit=self.batch)
            if moved is None:
                return
            inbox.delete_through(moved[1])
            if moved[0] < self.batch:
                return

    def _let_requests_go_first(self) -> None:
        """On SQLite, wait (up to ``yield_limit``) while other threads of this process wait to write.

        Those are requests someone waits for (a Slack command or button storing its answer); a
        batch of the projector holds SQLite's one write turn for a while and nobody waits for it.
        The limit keeps the projector from starving, so the backlog stays bounded. CRM requests
        do not wait for the projector at all: on SQLite they store into the inbox (``bot.inbox``),
        a file with a write turn of its own.
        """
        if self.inline or not self.yield_limit:
            return
        deadline = time.monotonic() + self.yield_limit
        while self.database.writers_waiting() and time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(0.002)

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

    def start(self) -> CrmProjector:
        """Run in a daemon thread until :meth:`stop`; it also looks every ``poll_interval`` seconds.

        Woken, it waits ``gather`` seconds before applying: the price of an event is then a share
        of one batch, at the cost of that much delay before a win is posted (a batch has a fixed
        cost: ~2 ms in-process for the claim, the folds' reads and the reactions' statements).
        Unwoken, it looks every ``poll_interval`` seconds with a read (:meth:`has_work`), and
        applies only when something waits: an idle projector takes no write lock.
        """
        if self._thread is None and not self.inline:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="crm-projector", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread after the batch it is applying, if any."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def has_work(self) -> bool:
        """Whether events wait to be applied: one read (two with an inbox), no write lock."""
        inbox = self.database.inbox
        if inbox is not None and inbox.has_waiting():
            return True
        with self.database.read_session() as session:
            return crm.has_unapplied(session)

    def _run(self) -> None:
        backoff = 1.0
        look = True  # at start: events may wait from before
        while not self._stop.is_set():
            self._wake.clear()
            try:
                # Woken, there is work; a poll first looks, so an idle projector takes no write lock.
                if look or self.has_work():
                    applied = self.drain()
                    if applied:
                        log.debug("applied %d CRM events", applied)
                backoff = 1.0
            except Exception:
                log.exception("applying CRM events failed; retrying in %.0f s", backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
                continue
            look = self._wake.wait(self.poll_interval)
            if look:
                # Woken by a request: let the requests arriving with it be stored too, so that
                # under load one batch applies many of them (folding has a cost per batch).
                self._stop.wait(self.gather)
