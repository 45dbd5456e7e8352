"""Business time for the lead-handoff SLA: due times across nights, weekends, holidays, DST and timezones.

The company of the example config works 09:00-17:00 Mon-Fri in New York, with US holidays.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import tomllib
from zoneinfo import ZoneInfo

import pytest

from bot.config import EXAMPLE_CONFIG, Calendar, Person, load_alignment, parse_alignment, parse_duration
from bot.services.business_time import (
    BusinessCalendar,
    HolidayDates,
    WallClock,
    country_holidays,
)
from bot.services.sla import calendar_for

ALIGNMENT = load_alignment(EXAMPLE_CONFIG)
NY = ZoneInfo("America/New_York")
HOUR = dt.timedelta(hours=1)
FOUR_HOURS = parse_duration("4h")
US_HOLIDAYS = country_holidays("US")


def open_at(calendar: BusinessCalendar | WallClock, moment: dt.datetime) -> bool:
    """Whether ``moment`` counts: the business time in the microsecond starting then is not zero."""
    return calendar.between(moment, moment + dt.timedelta(microseconds=1)) > dt.timedelta(0)


def next_opening(calendar: BusinessCalendar | WallClock, moment: dt.datetime) -> dt.datetime:
    """``moment`` when the calendar counts it, else the start of the next business time (UTC)."""
    return calendar.intervals(moment, moment + dt.timedelta(days=60))[0][0]


def ny(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> dt.datetime:
    """A New York wall-clock moment."""
    return dt.datetime(year, month, day, hour, minute, second, micro, tzinfo=NY)


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def person(**fields: object) -> Person:
    return Person.model_validate({"email": "someone@northwind.example", "team": "sales", **fields})


def company() -> BusinessCalendar:
    return BusinessCalendar.for_person(ALIGNMENT, None)


# --- the worked examples -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("handed_off", "due", "why"),
    [
        (ny(2026, 11, 20, 15, 30), ny(2026, 11, 23, 11, 30), "1.5h on Friday, 2.5h on Monday"),
        (ny(2026, 11, 20, 16, 30), ny(2026, 11, 23, 12, 30), "0.5h on Friday, 3.5h on Monday"),
        (ny(2026, 11, 20, 18, 0), ny(2026, 11, 23, 13, 0), "after hours: all 4h on Monday"),
        (ny(2026, 11, 21, 10, 0), ny(2026, 11, 23, 13, 0), "on a Saturday: all 4h on Monday"),
        (ny(2026, 11, 25, 16, 30), ny(2026, 11, 27, 12, 30), "Thanksgiving (Thu Nov 26) is skipped"),
        (ny(2027, 1, 15, 16, 30), ny(2027, 1, 19, 12, 30), "MLK day (Mon Jan 18) is skipped"),
        (ny(2026, 7, 2, 16, 30), ny(2026, 7, 6, 12, 30), "July 4 is a Saturday, observed on Fri Jul 3"),
        (ny(2026, 11, 17, 10, 0), ny(2026, 11, 17, 14, 0), "within one day"),
    ],
)
def test_a_four_hour_sla_is_due_after_four_business_hours(handed_off: dt.datetime, due: dt.datetime, why: str) -> None:
    calendar = company()
    assert calendar.add(handed_off, FOUR_HOURS) == due.astimezone(dt.UTC), why
    assert calendar.between(handed_off, due) == FOUR_HOURS


def test_the_hours_that_counted_are_listed_for_sla_lead() -> None:
    calendar = company()
    handed_off = ny(2026, 11, 25, 16, 30)
    due = calendar.add(handed_off, FOUR_HOURS)
    assert calendar.intervals(handed_off, due) == [
        (utc("2026-11-25T21:30"), utc("2026-11-25T22:00")),  # Wed 16:30-17:00 EST
        (utc("2026-11-27T14:00"), utc("2026-11-27T17:30")),  # Fri 09:00-12:30 EST; Thursday was Thanksgiving
    ]
    assert "Thanksgiving" in (calendar.holidays.name(dt.date(2026, 11, 26)) or "")
    assert calendar.holidays.name(dt.date(2026, 11, 27)) is None


def test_the_utc_offset_changes_but_local_business_hours_do_not_in_the_fall() -> None:
    calendar = company()
    handed_off = ny(2026, 10, 30, 16, 0)  # EDT (UTC-4); New York falls back on Sun Nov 1
    due = calendar.add(handed_off, FOUR_HOURS)
    assert due == utc("2026-11-02T17:00")  # Mon 12:00 EST (UTC-5)
    assert due.astimezone(NY).hour == 12
    assert calendar.intervals(handed_off, due) == [
        (utc("2026-10-30T20:00"), utc("2026-10-30T21:00")),
        (utc("2026-11-02T14:00"), utc("2026-11-02T17:00")),
    ]


def test_the_spring_forward_week_keeps_nine_to_five() -> None:
    calendar = company()
    handed_off = ny(2027, 3, 12, 16, 0)  # Fri, EST; clocks spring forward on Sun Mar 14
    assert calendar.add(handed_off, FOUR_HOURS) == utc("2027-03-15T16:00")  # Mon 12:00 EDT
    week = calendar.intervals(ny(2027, 3, 14), ny(2027, 3, 21))
    assert [begin.astimezone(NY).time() for begin, _ in week] == [dt.time(9)] * 5
    assert [end.astimezone(NY).time() for _, end in week] == [dt.time(17)] * 5
    assert calendar.between(ny(2027, 3, 7), ny(2027, 3, 14)) == 40 * HOUR
    assert calendar.between(ny(2027, 3, 14), ny(2027, 3, 21)) == 40 * HOUR


def test_business_time_is_real_time_so_a_round_the_clock_day_has_23_or_25_hours() -> None:
    calendar = BusinessCalendar.for_person(
        ALIGNMENT, person(working_hours="00:00-24:00", workdays=["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    )
    assert calendar.between(ny(2027, 3, 14), ny(2027, 3, 15)) == 23 * HOUR
    assert calendar.between(ny(2026, 11, 1), ny(2026, 11, 2)) == 25 * HOUR
    assert calendar.between(ny(2026, 11, 2), ny(2026, 11, 3)) == 24 * HOUR
    assert open_at(calendar, ny(2026, 11, 1, 23, 59, 59)) and open_at(calendar, ny(2026, 11, 2))
    # US holidays still close it: Thanksgiving is skipped whole.
    assert calendar.add(ny(2026, 11, 25, 23), 2 * HOUR) == ny(2026, 11, 27, 1).astimezone(dt.UTC)


def test_the_same_hand_off_is_due_in_each_owners_own_calendar() -> None:
    ava = ALIGNMENT.person("ava.ross@northwind.example")  # Los Angeles
    lena = ALIGNMENT.person("lena.fischer@northwind.example")  # Berlin
    assert ava is not None and lena is not None
    handed_off = utc("2026-11-20T21:00")  # Fri 16:00 New York, 13:00 Los Angeles, 22:00 Berlin
    assert BusinessCalendar.for_person(ALIGNMENT, ava).add(handed_off, FOUR_HOURS) == utc("2026-11-21T01:00")
    assert BusinessCalendar.for_person(ALIGNMENT, lena).add(handed_off, FOUR_HOURS) == utc("2026-11-23T12:00")
    assert company().add(handed_off, FOUR_HOURS) == utc("2026-11-23T17:00")


def test_a_fixed_offset_zone_works() -> None:
    calendar = BusinessCalendar.for_person(ALIGNMENT, person(timezone="Etc/GMT-3"))  # UTC+3, no DST
    handed_off = utc("2026-11-16T12:00")  # Mon 15:00 local
    assert calendar.add(handed_off, FOUR_HOURS) == utc("2026-11-17T08:00")  # Tue 11:00 local
    assert not open_at(calendar, utc("2026-11-16T14:00"))  # 17:00 local: closed


def test_a_persons_own_hours_and_sunday_to_thursday_week_are_respected() -> None:
    yael = person(timezone="Asia/Jerusalem", working_hours="08:30-17:30", workdays=["sun", "mon", "tue", "wed", "thu"])
    calendar = BusinessCalendar.for_person(ALIGNMENT, yael)
    jerusalem = ZoneInfo("Asia/Jerusalem")
    handed_off = dt.datetime(2026, 11, 19, 15, 30, tzinfo=jerusalem)  # Thursday
    due = calendar.add(handed_off, FOUR_HOURS)  # 2h Thursday; Friday and Saturday off; 2h Sunday
    assert due == dt.datetime(2026, 11, 22, 10, 30, tzinfo=jerusalem).astimezone(dt.UTC)
    assert open_at(calendar, dt.datetime(2026, 11, 22, 8, 30, tzinfo=jerusalem))
    assert not open_at(calendar, dt.datetime(2026, 11, 20, 12, 0, tzinfo=jerusalem))  # Friday


def test_holidays_can_be_a_list_of_dates() -> None:
    data = tomllib.loads(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data["calendar"] |= tomllib.loads("holidays = [2026-12-24, 2026-12-25]")
    listed = BusinessCalendar.for_person(parse_alignment(data), None)
    # Christmas Eve and Day are off; the weekend follows.
    assert listed.add(ny(2026, 12, 23, 16, 30), FOUR_HOURS) == ny(2026, 12, 28, 12, 30).astimezone(dt.UTC)
    # Only the listed dates: Thanksgiving is a workday in this calendar.
    assert listed.add(ny(2026, 11, 25, 16, 30), FOUR_HOURS) == ny(2026, 11, 26, 12, 30).astimezone(dt.UTC)
    assert listed.holidays.name(dt.date(2026, 12, 24)) == "holiday"


def test_a_subdivision_has_its_own_holidays() -> None:
    california = ALIGNMENT.model_copy(update={"calendar": Calendar(holidays="US-CA")})
    calendar = BusinessCalendar.for_person(california, None)
    # California also takes the day after Thanksgiving off.
    assert calendar.add(ny(2026, 11, 25, 16, 30), FOUR_HOURS) == ny(2026, 11, 30, 12, 30).astimezone(dt.UTC)
    with pytest.raises(ValueError, match="ZZ"):
        country_holidays("US", "ZZ")


def test_an_overnight_shift_belongs_to_the_day_it_starts() -> None:
    calendar = BusinessCalendar.for_person(ALIGNMENT, person(working_hours="22:00-06:00"))
    assert open_at(calendar, ny(2026, 11, 21, 2, 0))  # Saturday 02:00: Friday's shift
    assert not open_at(calendar, ny(2026, 11, 23, 2, 0))  # Monday 02:00: Sunday is not a workday
    assert calendar.add(ny(2026, 11, 20, 23, 0), FOUR_HOURS) == ny(2026, 11, 21, 3, 0).astimezone(dt.UTC)
    assert calendar.add(ny(2026, 11, 21, 7, 0), HOUR) == ny(2026, 11, 23, 23, 0).astimezone(dt.UTC)


# --- durations of more than a day, and the edges ---------------------------------------------------


def test_two_days_is_48_business_hours_not_two_working_days() -> None:
    calendar = company()
    start = ny(2026, 11, 2, 9, 0)  # Monday morning
    due = calendar.add(start, parse_duration("2d"))
    assert due == ny(2026, 11, 9, 17, 0).astimezone(dt.UTC)  # six 8-hour working days later
    assert len(calendar.intervals(start, due)) == 6
    assert calendar.between(start, due) == 48 * HOUR


def test_zero_length() -> None:
    calendar = company()
    saturday = ny(2026, 11, 21, 10, 0)
    assert calendar.add(saturday, dt.timedelta(0)) == saturday.astimezone(dt.UTC)
    assert calendar.between(saturday, saturday) == dt.timedelta(0)
    assert calendar.between(ny(2026, 11, 23, 12), ny(2026, 11, 23, 10)) == dt.timedelta(0)  # end before start
    assert calendar.intervals(saturday, saturday) == []
    assert calendar.intervals(saturday, ny(2026, 11, 23, 9, 0)) == []  # a weekend holds no business time


def test_opening_counts_and_closing_does_not() -> None:
    calendar = company()
    assert open_at(calendar, ny(2026, 11, 23, 9, 0))
    assert not open_at(calendar, ny(2026, 11, 23, 17, 0))
    assert open_at(calendar, ny(2026, 11, 23, 16, 59, 59, 999999))
    # A full day from opening ends at closing, not at the next opening.
    assert calendar.add(ny(2026, 11, 23, 9, 0), 8 * HOUR) == ny(2026, 11, 23, 17, 0).astimezone(dt.UTC)
    # Handed off at closing: counting starts at the next opening.
    assert calendar.add(ny(2026, 11, 20, 17, 0), dt.timedelta(minutes=1)) == ny(2026, 11, 23, 9, 1).astimezone(dt.UTC)
    assert next_opening(calendar, ny(2026, 11, 20, 17, 0)) == ny(2026, 11, 23, 9, 0).astimezone(dt.UTC)
    assert next_opening(calendar, ny(2026, 11, 23, 10, 15)) == ny(2026, 11, 23, 10, 15).astimezone(dt.UTC)


def test_naive_times_and_negative_durations_are_refused() -> None:
    calendar = company()
    with pytest.raises(ValueError, match="aware"):
        calendar.add(dt.datetime(2026, 11, 23, 10), HOUR)
    with pytest.raises(ValueError, match="negative"):
        calendar.add(ny(2026, 11, 23, 10), -HOUR)
    with pytest.raises(ValueError, match="workday"):
        BusinessCalendar(tz=NY, start=dt.time(9), end=dt.time(17), workdays=frozenset())


def test_a_calendar_that_never_opens_fails_instead_of_looping() -> None:
    every_day = HolidayDates(dt.date(2026, 1, 1) + dt.timedelta(days=n) for n in range(4000))
    calendar = BusinessCalendar(tz=NY, start=dt.time(9), end=dt.time(17), workdays=frozenset({0}), holidays=every_day)
    with pytest.raises(ValueError, match="no working hours"):
        calendar.add(ny(2026, 1, 1), HOUR)


# --- the wall clock, and choosing between them -----------------------------------------------------


def test_an_sla_without_business_hours_counts_every_moment() -> None:
    sla = ALIGNMENT.sla[0]
    ava = ALIGNMENT.person("ava.ross@northwind.example")
    assert isinstance(calendar_for(ALIGNMENT, sla, ava), BusinessCalendar)
    clock = calendar_for(ALIGNMENT, sla.model_copy(update={"business_hours": False}), ava)
    assert isinstance(clock, WallClock)
    friday = ny(2026, 11, 20, 16, 30)
    assert clock.add(friday, FOUR_HOURS) == ny(2026, 11, 20, 20, 30).astimezone(dt.UTC)
    assert clock.between(friday, ny(2026, 11, 23, 16, 30)) == 72 * HOUR
    assert clock.between(ny(2026, 11, 23), friday) == dt.timedelta(0)
    assert clock.intervals(friday, ny(2026, 11, 21)) == [(utc("2026-11-20T21:30"), utc("2026-11-21T05:00"))]
    assert open_at(clock, friday) and next_opening(clock, friday) == utc("2026-11-20T21:30")


def test_calendars_and_holidays_are_shared_not_rebuilt() -> None:
    ben = ALIGNMENT.person("ben.okafor@northwind.example")  # company timezone and hours
    lena = ALIGNMENT.person("lena.fischer@northwind.example")
    assert BusinessCalendar.for_person(ALIGNMENT, ben) is company()
    assert BusinessCalendar.for_person(ALIGNMENT, lena).holidays is company().holidays is US_HOLIDAYS
    assert country_holidays("US", "CA") is country_holidays("us", "ca")


# --- properties, against an oracle that counts minute by minute ------------------------------------

CALENDARS: dict[str, BusinessCalendar] = {
    "company": company(),
    "los angeles": BusinessCalendar.for_person(ALIGNMENT, ALIGNMENT.person("ava.ross@northwind.example")),
    "berlin": BusinessCalendar.for_person(ALIGNMENT, ALIGNMENT.person("lena.fischer@northwind.example")),
    "gmt+3 sun-thu": BusinessCalendar.for_person(
        ALIGNMENT,
        person(timezone="Etc/GMT-3", working_hours="08:00-16:30", workdays=["sun", "mon", "tue", "wed", "thu"]),
    ),
    "round the clock": BusinessCalendar.for_person(
        ALIGNMENT, person(working_hours="00:00-24:00", workdays=["mon", "tue", "wed", "thu", "fri", "sat", "sun"])
    ),
    "overnight": BusinessCalendar.for_person(ALIGNMENT, person(working_hours="22:00-06:00")),
}
# Two years, so every DST change of New York, Los Angeles and Berlin and every US holiday is crossed.
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SPAN_SECONDS = 2 * 365 * 86_400


def open_by_minutes(calendar: BusinessCalendar, moment: dt.datetime) -> bool:
    """Whether ``moment`` is in working hours, judged from its local wall clock alone."""
    local = moment.astimezone(calendar.tz)
    if calendar.end > calendar.start:  # a day shift
        day, in_hours = local.date(), calendar.start <= local.time() <= calendar.end
        in_hours = in_hours and (local.time() < calendar.end or calendar.end == dt.time.max)
    elif local.time() >= calendar.start:  # the evening of an overnight shift
        day, in_hours = local.date(), True
    else:  # the morning after
        day, in_hours = local.date() - dt.timedelta(days=1), local.time() < calendar.end
    return in_hours and day.weekday() in calendar.workdays and day not in calendar.holidays


def random_moment(rng: random.Random) -> dt.datetime:
    """A moment of the two years, on a whole minute two times in three (boundaries are hit often)."""
    seconds = rng.randrange(SPAN_SECONDS)
    if rng.random() < 2 / 3:
        return EPOCH + dt.timedelta(minutes=seconds // 60)
    return EPOCH + dt.timedelta(seconds=seconds, microseconds=rng.randrange(1_000_000))


def random_duration(rng: random.Random) -> dt.timedelta:
    """Zero now and then, mostly up to a few business days, sometimes a few weeks."""
    pick = rng.random()
    if pick < 0.05:
        return dt.timedelta(0)
    if pick < 0.8:
        return dt.timedelta(minutes=rng.randrange(1, 3 * 8 * 60))
    return dt.timedelta(seconds=rng.randrange(1, 30 * 86_400), microseconds=rng.randrange(1_000_000))


@pytest.mark.parametrize("name", CALENDARS)
def test_between_matches_a_minute_by_minute_count(name: str) -> None:
    calendar = CALENDARS[name]
    rng = random.Random(f"oracle {name}")
    # Random windows, and windows around each DST change (US and EU) and Thanksgiving for sure.
    anchors = [EPOCH + dt.timedelta(minutes=rng.randrange(SPAN_SECONDS // 60)) for _ in range(32)]
    for day in ("2026-03-06", "2026-03-26", "2026-10-22", "2026-10-29", "2026-11-24", "2027-03-11", "2027-03-25"):
        anchors.append(utc(day) + dt.timedelta(minutes=rng.randrange(3 * 24 * 60)))
    for start in anchors:
        end = start + dt.timedelta(minutes=rng.randrange(1, 6 * 24 * 60))
        minutes = sum(
            open_by_minutes(calendar, start + dt.timedelta(minutes=m))
            for m in range((end - start) // dt.timedelta(minutes=1))
        )
        assert calendar.between(start, end) == dt.timedelta(minutes=minutes), (start, end)
        assert open_at(calendar, start) == open_by_minutes(calendar, start), start


@pytest.mark.parametrize("name", CALENDARS)
def test_between_is_the_inverse_of_add_and_add_is_monotonic(name: str) -> None:
    calendar = CALENDARS[name]
    rng = random.Random(f"inverse {name}")
    tick = dt.timedelta(microseconds=1)
    for _ in range(300):
        start = random_moment(rng)
        durations = sorted(random_duration(rng) for _ in range(6))
        dues = [calendar.add(start, duration) for duration in durations]
        assert dues == sorted(dues) and dues[0] >= start, start
        for duration, due in zip(durations, dues, strict=True):
            assert calendar.between(start, due) == duration, (start, duration)
            if duration:  # the earliest such moment, and counting never starts before the next opening
                assert calendar.between(start, due - tick) < duration, (start, duration)
                assert due > next_opening(calendar, start)
            spans = calendar.intervals(start, due)
            assert sum((end - begin for begin, end in spans), dt.timedelta(0)) == duration
            assert all(open_at(calendar, begin) for begin, _ in spans)
            assert all(a_end <= b_begin for (_, a_end), (b_begin, _) in itertools.pairwise(spans))
        later = start + dt.timedelta(seconds=rng.randrange(1, 5 * 86_400))
        assert calendar.add(later, durations[-1]) >= dues[-1], (start, later)
