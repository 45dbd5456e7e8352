"""A background loop that wakes when told there is work, sleeps until its next work otherwise, and stops cleanly.

Used by the outbox relay; any loop of the same shape (poll, or be woken early) can run on it.
It knows nothing of the project: what to do, when to look again, and whether a wake calls for
a pass are given to it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("alignbot.worker")


class Worker:
    """A daemon thread calling ``step`` after each wake, or when ``idle_seconds()`` have passed without one.

    ``idle_seconds`` is asked after every pass (and after every wake that did not call for a
    pass): how long to sleep before looking again unwoken. ``wanted`` is asked on each wake:
    False lets the wake go by (nothing it signals can be done yet). Passes are at least
    ``min_interval`` seconds apart, so a burst of wakes is served by one pass. A pass that raises
    is logged, and the next one comes after ``error_pause`` seconds.
    """

    def __init__(
        self,
        name: str,
        step: Callable[[], object],
        *,
        idle_seconds: Callable[[], float],
        wanted: Callable[[], bool] = lambda: True,
        min_interval: float = 0.0,
        error_pause: float = 1.0,
    ) -> None:
        self.name = name
        self._step = step
        self._idle_seconds = idle_seconds
        self._wanted = wanted
        self.min_interval = min_interval
        self.error_pause = error_pause
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None

    def wake(self) -> None:
        """Ask for a pass now (or as soon as ``min_interval`` allows)."""
        self._wake.set()

    def start(self) -> None:
        """Start the thread, once; a second call does nothing."""
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the pass under way, if any; waits up to ``timeout`` seconds for it."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        last_pass = 0.0
        while not self._stop.is_set():
            pause = self.min_interval - (time.monotonic() - last_pass)
            if pause > 0:
                self._stop.wait(pause)
            last_pass = time.monotonic()
            try:
                self._step()
            except Exception:
                log.exception("%s: a pass failed; retrying shortly", self.name)
                self._stop.wait(self.error_pause)
            # Sleep until the next known work, or a wake that calls for a pass, or the stop.
            while self._wake.wait(self._idle_seconds()) and not self._stop.is_set():
                self._wake.clear()
                if self._wanted():
                    break
            self._wake.clear()
