"""Business time: which moments count towards an SLA, and when a budget of them runs out.

An SLA with ``business_hours = true`` (PRODUCT.md section 5, ``[[sla]]``) counts only its owner's
working time: their working hours, on their workdays, in their timezone, minus the company's
holidays (``[calendar] holidays``). :class:`BusinessCalendar` is that calendar; :class:`WallClock`
is the one of an SLA with ``business_hours = false``, where every moment counts. Both answer the
same questions (:class:`SlaCalendar`), so the SLA code need not know which it holds.

The rules, which the configuration docs follow:

- **Working hours are local wall-clock time.** 09:00-17:00 in New York is 09:00-17:00 on either
  side of a daylight-saving change; only its UTC offset moves.
- **Business time is real elapsed time inside working hours.** A day of 09:00-17:00 is 8 hours;
  a 24-hour calendar's day is 23 or 25 hours long on the days the clocks change.
- **A duration is an amount of business time, whatever its unit.** ``within = "2d"`` is 48
  business hours (six working days of 09:00-17:00), not two working days; ``"4h"`` is 4 business
  hours. ``parse_duration`` turns both into a plain ``timedelta`` and no unit survives it.
- **A span is half-open.** A calendar is open from its opening moment up to, not including, its
  closing one, so a hand-off at 17:00 sharp starts counting at the next opening; and a budget that
  runs out exactly at closing time is due at closing time, not at the next opening.
- Working hours that end at or before they start (``"22:00-06:00"``) are an overnight shift: the
  shift that opens on a workday closes the next morning. ``"24:00"`` means the next midnight.
- A holiday closes the shift that opens on it; a workday is judged by the local date the shift
  opens on. A working-hours boundary in a daylight-saving gap or overlap is read the way Python
  reads it by default (``fold=0``: with the offset in force before the change).

Every method takes aware datetimes in any timezone and returns aware UTC ones; a naive datetime
is refused, since which instant it means is exactly what is in question here.

The cost of ``add``, ``between`` and ``intervals`` grows with the number of days spanned, never
with the number of minutes: ~1.5 us for a day a calendar has not seen yet, a dict look-up for one
it has (each calendar remembers its shifts, and ``for_person`` hands out one calendar per setting).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol
from zoneinfo import ZoneInfo

import holidays as holidays_lib

from bot.config import WEEKDAYS, Alignment, Person

UTC = dt.UTC
_ZERO = dt.timedelta(0)
_ONE_DAY = dt.timedelta(days=1)
# Past ten years in a row without one open hour, a calendar can never open (every workday a
# listed holiday, say); fail loudly rather than loop until the year 9999.
_MAX_CLOSED_DAYS = 3660
# Shifts remembered per calendar: a clock tick asks about the same few days for every lead, and a
# remembered day costs a dict look-up instead of ~1.5 us of zone arithmetic. ~0.3 MB at most each.
_MEMO_DAYS = 1024

Span = tuple[dt.datetime, dt.datetime]
# What a closed day's shift is remembered as; empty, so ``closes <= floor`` skips it too.
_CLOSED: Span = (dt.datetime.min.replace(tzinfo=UTC), dt.datetime.min.replace(tzinfo=UTC))


def _utc(moment: dt.datetime) -> dt.datetime:
    """``moment`` in UTC; a naive datetime is a caller's bug, so it raises ``ValueError``."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"expected an aware datetime (UTC), got the naive {moment.isoformat()}")
    return moment.astimezone(UTC)


def _check_duration(duration: dt.timedelta) -> None:
    if duration < _ZERO:
        raise ValueError(f"a duration of business time cannot be negative, got {duration}")


class HolidayDates:
    """Days off, with a fast ``day in holidays`` test and each day's name.

    Either a fixed list of dates (``holidays = ["2026-12-24", ...]``), or a country's public
    holidays from the holidays package (observed days included, as when a Saturday holiday is
    observed on the Friday), loaded one year at a time on first use and then kept. Safe to share
    between threads.
    """

    __slots__ = ("_lock", "_names", "_source", "_years", "label")

    def __init__(
        self, dates: Iterable[dt.date] = (), *, source: holidays_lib.HolidayBase | None = None, label: str = ""
    ) -> None:
        self._names: dict[dt.date, str] = dict.fromkeys(dates, "holiday")
        self._source = source
        self._years: set[int] = set()
        self._lock = threading.Lock()
        self.label = label or f"{len(self._names)} listed date(s)"

    def __contains__(self, day: object) -> bool:
        if not isinstance(day, dt.date):
            return False
        if self._source is not None and day.year not in self._years:
            self._load(day.year)
        return day in self._names

    def name(self, day: dt.date) -> str | None:
        """The holiday's name ("holiday" for a listed date), or None on a day that is not one."""
        return self._names.get(day) if day in self else None

    def _load(self, year: int) -> None:
        # HolidayBase fills a year in on first look-up and is not meant for concurrent writers.
        with self._lock:
            if year in self._years or self._source is None:
                return
            _ = dt.date(year, 1, 1) in self._source  # expands the whole year (expand=True)
            names = {day: str(name) for day, name in self._source.items() if day.year == year}
            self._names.update(names)
            self._years.add(year)  # only now: a reader that sees the year loaded sees all of it

    def __repr__(self) -> str:
        return f"HolidayDates({self.label})"


def country_holidays(country: str, subdivision: str | None = None) -> HolidayDates:
    """A country's (or subdivision's) public holidays, one shared object per (country, subdivision).

    ``country_holidays("US", "CA")`` is California's; codes are case-insensitive. An unknown code
    raises ``ValueError``.
    """
    return _country_holidays(country.strip().upper(), (subdivision or "").strip().upper() or None)


@lru_cache(maxsize=64)
def _country_holidays(country: str, subdivision: str | None) -> HolidayDates:
    try:
        source = holidays_lib.country_holidays(country, subdiv=subdivision)
    except NotImplementedError as exc:  # the holidays package's answer to an unknown code
        raise ValueError(f"no holidays for {country!r}{f' / {subdivision!r}' if subdivision else ''}: {exc}") from None
    return HolidayDates(source=source, label=country + (f"-{subdivision}" if subdivision else ""))


def holidays_for(spec: str | tuple[dt.date, ...]) -> HolidayDates:
    """``[calendar] holidays`` as :class:`HolidayDates`: ``"US"``, ``"US-CA"`` or a tuple of dates."""
    if isinstance(spec, str):
        country, _, subdivision = spec.partition("-")
        return country_holidays(country, subdivision)
    return _listed_holidays(tuple(spec))


@lru_cache(maxsize=64)
def _listed_holidays(dates: tuple[dt.date, ...]) -> HolidayDates:
    return HolidayDates(dates)


@dataclass(frozen=True)
class BusinessCalendar:
    """One person's working time: hours (local wall clock), workdays and holidays, in their timezone.

    ``workdays`` holds ``date.weekday()`` numbers (0 is Monday). See the module docstring for how
    durations, boundaries, overnight shifts and daylight-saving changes are counted.
    """

    tz: ZoneInfo
    start: dt.time
    end: dt.time
    workdays: frozenset[int]
    holidays: HolidayDates = field(default_factory=HolidayDates)
    # Derived in __post_init__: the shift opening on day D closes on D + _close_days at _close_at.
    _close_days: dt.timedelta = field(init=False, repr=False, compare=False)
    _close_at: dt.time = field(init=False, repr=False, compare=False)
    _memo: dict[dt.date, Span] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if not self.workdays or not self.workdays <= set(range(7)):
            raise ValueError(f"workdays must be weekday numbers 0-6, at least one, got {sorted(self.workdays)}")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("working hours are local wall-clock times, without a tzinfo")
        if self.end == dt.time.max:  # "24:00" (config.py parses it as time.max): the next midnight
            close_days, close_at = _ONE_DAY, dt.time(0)
        elif self.end <= self.start:  # overnight shift
            close_days, close_at = _ONE_DAY, self.end
        else:
            close_days, close_at = _ZERO, self.end
        object.__setattr__(self, "_close_days", close_days)
        object.__setattr__(self, "_close_at", close_at)

    @classmethod
    def for_person(cls, alignment: Alignment, person: Person | None) -> BusinessCalendar:
        """The calendar of an SLA owner: their own timezone, hours and workdays where set, else the company's.

        Holidays always come from ``[calendar]``. Calendars are cached by their settings, and the
        holidays by (country, subdivision), so calling this for every lead of a clock tick is cheap.
        """
        company = alignment.calendar
        hours = (person.working_hours if person else None) or company.working_hours
        # An empty list of a person's workdays is read as "not set" rather than "never works".
        workdays = (person.workdays if person else None) or company.workdays
        timezone = (person.timezone if person else None) or alignment.timezone
        return _calendar(timezone, hours.start, hours.end, tuple(workdays), company.holidays)

    # --- the questions ---

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """The earliest moment (UTC) by which ``duration`` of business time has passed since ``start``.

        Counting starts at ``start``, or at the next opening when closed then; a budget that runs
        out at closing time is due at closing time. A zero duration gives ``start`` back, in UTC.
        ``between(start, add(start, d)) == d`` for any ``d``. "2d" is 48 business hours.
        """
        _check_duration(duration)
        start = _utc(start)
        if not duration:
            return start
        remaining = duration
        for begin, closes in self._spans(start):
            room = closes - begin
            if remaining <= room:
                return begin + remaining
            remaining -= room
        raise AssertionError("_spans never ends")  # pragma: no cover

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """The business time inside ``[start, end)``; zero when ``end`` is not after ``start``."""
        start, end = _utc(start), _utc(end)
        total = _ZERO
        if end <= start:
            return total
        for begin, closes in self._spans(start):
            if begin >= end:
                break
            if closes >= end:
                return total + (end - begin)
            total += closes - begin
        return total

    def intervals(self, start: dt.datetime, end: dt.datetime) -> list[Span]:
        """The open stretches of ``[start, end)``, oldest first, in UTC: the hours that counted.

        What ``/sla LEAD_ID`` shows; their lengths add up to ``between(start, end)``.
        """
        start, end = _utc(start), _utc(end)
        found: list[Span] = []
        if end <= start:
            return found
        for begin, closes in self._spans(start):
            if begin >= end:
                break
            found.append((begin, min(closes, end)))
            if closes >= end:
                break
        return found

    # --- the machinery ---

    def _shift(self, day: dt.date) -> Span:
        """The shift opening on local ``day``, in UTC, or ``_CLOSED`` when that day is not worked."""
        span = self._memo.get(day)
        if span is not None:
            return span
        if day.weekday() not in self.workdays or day in self.holidays:
            span = _CLOSED
        else:
            tz = self.tz
            # Combining in the zone and converting keeps the wall clock fixed across DST changes.
            opens = dt.datetime.combine(day, self.start, tz).astimezone(UTC)
            closes = dt.datetime.combine(day + self._close_days, self._close_at, tz).astimezone(UTC)
            span = (opens, closes) if opens < closes else _CLOSED
        if len(self._memo) >= _MEMO_DAYS:
            self._memo.clear()  # crude, but a tick's working set is refilled in microseconds
        self._memo[day] = span
        return span

    def _spans(self, moment: dt.datetime) -> Iterator[Span]:
        """The open spans from UTC ``moment`` on, clipped to start no earlier than it; never ends.

        The first span begins at ``moment`` exactly when the calendar is open then. Spans never
        overlap, even where DST folds or a gap would make two shifts' UTC ranges touch out of order.
        """
        day = moment.astimezone(self.tz).date()
        if self._close_days:
            day -= _ONE_DAY  # yesterday's overnight shift may still be open
        floor = moment
        closed_days = 0
        shift = self._shift
        while True:
            opens, closes = span = shift(day)
            day += _ONE_DAY
            if span is _CLOSED:
                closed_days += 1
                if closed_days > _MAX_CLOSED_DAYS:
                    raise ValueError(f"this calendar has no working hours for {_MAX_CLOSED_DAYS} days in a row")
                continue
            closed_days = 0
            if closes <= floor:
                continue
            yield (floor if opens < floor else opens), closes
            floor = closes


@lru_cache(maxsize=256)
def _calendar(
    timezone: str, start: dt.time, end: dt.time, workdays: tuple[str, ...], holidays: str | tuple[dt.date, ...]
) -> BusinessCalendar:
    return BusinessCalendar(
        tz=ZoneInfo(timezone),
        start=start,
        end=end,
        workdays=frozenset(WEEKDAYS.index(day) for day in workdays),
        holidays=holidays_for(holidays),
    )


@dataclass(frozen=True)
class WallClock:
    """The calendar of an SLA with ``business_hours = false``: every moment counts.

    Same questions as :class:`BusinessCalendar`, answered with plain datetime arithmetic in UTC.
    """

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime:
        """``start + duration``, in UTC."""
        _check_duration(duration)
        return _utc(start) + duration

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta:
        """``end - start``, or zero when ``end`` is not after ``start``."""
        return max(_utc(end) - _utc(start), _ZERO)

    def intervals(self, start: dt.datetime, end: dt.datetime) -> list[Span]:
        """``[(start, end)]`` in UTC, or nothing when ``end`` is not after ``start``."""
        start, end = _utc(start), _utc(end)
        return [(start, end)] if end > start else []


class SlaCalendar(Protocol):
    """What the SLA code asks of a calendar; :class:`BusinessCalendar` and :class:`WallClock` both answer."""

    def add(self, start: dt.datetime, duration: dt.timedelta) -> dt.datetime: ...

    def between(self, start: dt.datetime, end: dt.datetime) -> dt.timedelta: ...

    def intervals(self, start: dt.datetime, end: dt.datetime) -> list[Span]: ...
