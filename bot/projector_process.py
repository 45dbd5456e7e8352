"""The web server's CRM projector, in a process of its own beside gunicorn's workers.

A projector thread inside a web worker shares that worker's GIL with its request threads: while
a batch folds leads and renders win posts, every request of the worker waits for its turn at
each return from I/O. In a process of its own it takes nothing from them (``bench/crm_ingest.py``,
single events: 0.55-0.61x the bare endpoint against 0.45-0.48x with a thread in each worker, in
three paired runs; see bench/README.md).

``alignbot web`` starts it when gunicorn is ready (:class:`ProjectorProcess`, from the
``when_ready`` hook), starts another if it dies, and stops it on the way out (``on_exit``). It
polls for stored events every :data:`POLL_SECONDS`: an idle look is one read, with no write
lock. It runs an outbox relay of its own, so a win post leaves as soon as its batch commits.
A worker's requests only store their events, and answer.

Run by hand for a test or a look: ``python -m bot.projector_process`` (the ``ALIGNBOT_*``
environment of ``alignbot web``); it stops on SIGTERM or SIGINT, or when its parent goes.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence

log = logging.getLogger("alignbot.projector")

#: How often the process looks for stored events: the longest a CRM event waits to be applied
#: (plus its batch) when the server is idle. Under load a batch runs as soon as the last ends.
POLL_SECONDS = 0.25
#: A process that lived this long before dying is restarted at once; one that dies sooner
#: waits twice as long each time (up to :data:`MAX_BACKOFF`), so a broken deployment does not spin.
HEALTHY_AFTER = 60.0
MAX_BACKOFF = 30.0


class ProjectorProcess:
    """Keeps one projector process running (a thread of gunicorn's arbiter) until :meth:`stop`.

    The process is started with ``posix_spawn``, not ``subprocess``: ``Popen`` waits on a pipe
    for the child's ``exec``, and a worker that the arbiter forks meanwhile inherits that pipe and
    holds it open for its whole life. The arbiter reaps every child (``waitpid(-1)``), so the exit
    status may be gone by the time this thread looks: that it stopped is what counts.
    """

    def __init__(self, command: Sequence[str] | None = None, *, stop_timeout: float = 20.0) -> None:
        self.command = list(command or [sys.executable, "-m", "bot.projector_process"])
        self.stop_timeout = stop_timeout
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.pid: int | None = None  # the running process, if any

    def start(self) -> ProjectorProcess:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._supervise, name="projector-process", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """SIGTERM: the process ends the batch it is applying, if any; SIGKILL after ``stop_timeout``."""
        self._stop.set()
        with self._lock:
            pid = self.pid
            if pid is not None and _running(pid):
                _signal(pid, signal.SIGTERM)
                deadline = time.monotonic() + self.stop_timeout
                while _running(pid) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if _running(pid):
                    log.error("the CRM projector process (pid %d) did not stop in time; killed", pid)
                    _signal(pid, signal.SIGKILL)
            self.pid = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    def _supervise(self) -> None:
        backoff = 1.0
        while not self._stop.is_set():
            began = time.monotonic()
            with self._lock:
                if self._stop.is_set():
                    return
                try:
                    self.pid = pid = os.posix_spawn(self.command[0], self.command, os.environ)
                except OSError:
                    log.exception("cannot start the CRM projector process; retrying in %.0f s", backoff)
                    pid = None
            if pid is not None:
                log.info("CRM projector process started (pid %d)", pid)
                while _running(pid) and not self._stop.wait(0.5):
                    pass
                if self._stop.is_set():
                    return
                _forget_metrics(pid)
                if time.monotonic() - began >= HEALTHY_AFTER:
                    backoff = 1.0
                log.error(
                    "the CRM projector process (pid %d) stopped; starting another in %.0f s "
                    "(the events it was applying are still stored)",
                    pid,
                    backoff,
                )
            self._stop.wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)


def _running(pid: int) -> bool:
    """Whether our child ``pid`` still runs (reaping it if it just ended, unless the arbiter did)."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False  # reaped already (by gunicorn's arbiter)
    return done == 0


def _signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _forget_metrics(pid: int) -> None:
    """A dead process's counters stay counted in ``/metrics``; its live gauges go (as for a worker)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


def main() -> int:
    """The process: a projector polling every :data:`POLL_SECONDS` and an outbox relay, until told to stop."""
    from bot.cli import _setup_logging, _stop_on_signals
    from bot.config import Environment, load_alignment
    from bot.db import Database
    from bot.projector import CrmProjector
    from bot.slack.relay import OutboxRelay, relay_client

    env = Environment.from_environ()
    _setup_logging(env=env, command="web")
    stop = _stop_on_signals()  # SIGTERM or SIGINT: the batch being applied ends first
    parent = os.getppid()
    database = Database.from_url(env.database_url)
    alignment = load_alignment(env.config_path)
    relay = OutboxRelay(database, relay_client(env.slack_bot_token or "", env.slack_api_url)).start()
    projector = CrmProjector(database, alignment, poll_interval=POLL_SECONDS).start()
    try:
        while not stop.wait(1.0):
            if os.getppid() != parent:  # the web server is gone (even by SIGKILL): so is its projector
                log.warning("CRM projector process: the web server (pid %d) is gone; stopping", parent)
                break
    finally:
        projector.stop(timeout=30.0)
        relay.stop()
        database.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
