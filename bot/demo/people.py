"""The simulated people: their names, and when they work.

When someone works is the product's answer, never the demo's own: each person's
:class:`~bot.services.business_time.BusinessCalendar` (their hours, workdays and timezone, the
company's holidays), the same calendar their SLA clocks count in.
"""

from __future__ import annotations

import datetime as dt

from bot.config import Alignment, Person
from bot.services.business_time import BusinessCalendar, Span


def name_of(person: Person) -> str:
    """A person's display name: ``name``, else the local part of the email."""
    return person.name or person.email.split("@", 1)[0]


def calendar_of(alignment: Alignment, person: Person | None = None) -> BusinessCalendar:
    """``person``'s working time (``None``: the company's)."""
    return BusinessCalendar.for_person(alignment, person)


def working_hours(alignment: Alignment, day: dt.date, person: Person | None = None) -> list[Span]:
    """The open stretches of ``person``'s (else the company's) local ``day``, in UTC: empty on a
    day off (not a workday, or a holiday)."""
    calendar = calendar_of(alignment, person)
    midnight = dt.datetime.combine(day, dt.time(0), calendar.tz)
    return calendar.intervals(midnight, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0), calendar.tz))


def works_on(alignment: Alignment, day: dt.date, person: Person | None = None) -> bool:
    """Whether local ``day`` is a workday of ``person`` (else of the company) and not a holiday."""
    return bool(working_hours(alignment, day, person))
