"""The time of the simulation, and the moment the simulated week starts."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo


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


def week_start(today: dt.date, tz: ZoneInfo) -> dt.datetime:
    """Tuesday 00:00, in ``tz``, of the week before the one of ``today``.

    So a default 7-day run ends on the Monday of this week and holds the Monday-morning jobs.
    """
    monday = today - dt.timedelta(days=today.weekday())
    return dt.datetime.combine(monday - dt.timedelta(days=6), dt.time(0), tz)
