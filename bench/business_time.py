"""Benchmark: how long business-time arithmetic takes, next to plain datetime arithmetic.

The SLA clock asks, for every open lead on every tick, when its window ends (``add``) and how much
of it has passed (``between``), so a tick over thousands of leads makes thousands of calls. Timed,
in the example company's calendar (New York, 09:00-17:00 Mon-Fri, US holidays), over the same
random hand-off moments of 2026-2027 (in hours and out, weekends, holidays and DST changes
included):

- ``add`` of 4h (the example SLA) and of 2d (48 business hours: six working days);
- ``between`` over a week (five open spans to sum);
- ``for_person`` + ``add`` 4h, as the SLA code calls it per lead (the calendar comes from a cache);
- ``add`` 4h on a fresh calendar every call: the cold cost, with no day's shift remembered yet
  (a calendar remembers the shifts of the days it was asked about; a tick asks about the same few
  days for every lead, so the warm figures are the ones a tick sees).

Baseline, in the same run and interleaved round by round: ``start + timedelta(hours=4)`` over the
same moments. Each figure is a whole batch timed at once and divided by its size (timing single
calls would mostly measure the timer), and the median over the rounds is reported.

Goal: under 20 us for a 4h ``add``, cold included. Checked: ``between(s, add(s, d)) == d`` for
every moment, and ``between`` is the sum of the ``intervals``.

    python bench/business_time.py            # full run (about 2 s)
    python bench/business_time.py --quick    # smoke run (well under a second)
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

from bot.config import EXAMPLE_CONFIG, load_alignment, parse_duration
from bot.services.business_time import BusinessCalendar

FOUR_HOURS = parse_duration("4h")
TWO_DAYS = parse_duration("2d")
WEEK = dt.timedelta(days=7)
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
BASELINE = "start + 4h (baseline)"
GOAL_SECONDS = 20e-6


def make_starts(count: int, seed: int) -> list[dt.datetime]:
    """``count`` hand-off moments spread over 2026-2027, to the second."""
    rng = random.Random(seed)
    return [EPOCH + dt.timedelta(seconds=rng.randrange(2 * 365 * 86_400)) for _ in range(count)]


def batches(starts: list[dt.datetime]) -> dict[str, Callable[[], None]]:
    """One callable per figure, each running its operation once for every start."""
    alignment = load_alignment(EXAMPLE_CONFIG)
    calendar = BusinessCalendar.for_person(alignment, None)
    owner = alignment.person("ben.okafor@northwind.example")
    add, between, for_person = calendar.add, calendar.between, BusinessCalendar.for_person

    def baseline() -> None:
        for start in starts:
            start + FOUR_HOURS  # the expression is what is timed

    def add_4h() -> None:
        for start in starts:
            add(start, FOUR_HOURS)

    def add_2d() -> None:
        for start in starts:
            add(start, TWO_DAYS)

    def between_week() -> None:
        for start in starts:
            between(start, start + WEEK)

    def per_lead() -> None:
        for start in starts:
            for_person(alignment, owner).add(start, FOUR_HOURS)

    def cold_add_4h() -> None:
        tz, opens, closes, workdays, holidays = (
            calendar.tz,
            calendar.start,
            calendar.end,
            calendar.workdays,
            calendar.holidays,
        )
        for start in starts:
            BusinessCalendar(tz, opens, closes, workdays, holidays).add(start, FOUR_HOURS)

    return {
        BASELINE: baseline,
        "add 4h": add_4h,
        "add 2d": add_2d,
        "between, a week": between_week,
        "for_person + add 4h": per_lead,
        "add 4h, cold (fresh calendar)": cold_add_4h,
    }


def check(starts: list[dt.datetime]) -> list[str]:
    """What is wrong with the answers (nothing, normally): ``between`` must undo ``add``."""
    calendar = BusinessCalendar.for_person(load_alignment(EXAMPLE_CONFIG), None)
    problems: list[str] = []
    for start in starts:
        for duration in (FOUR_HOURS, TWO_DAYS):
            due = calendar.add(start, duration)
            if calendar.between(start, due) != duration:
                problems.append(f"between({start}, add(start, {duration})) != {duration}")
        spans = calendar.intervals(start, start + WEEK)
        if sum((end - begin for begin, end in spans), dt.timedelta(0)) != calendar.between(start, start + WEEK):
            problems.append(f"between and intervals disagree over the week from {start}")
    return problems


def measure(starts: list[dt.datetime], rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each figure, one value per round; the figures take turns within a round."""
    # The unmeasured warm-up call of each figure loads the holiday years too.
    return benchlib.time_interleaved(batches(starts), rounds, per=len(starts))


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "a smoke run of well under a second")
    parser.add_argument("--starts", type=int, help="hand-off moments per batch (default 2000; quick 300)")
    parser.add_argument("--rounds", type=int, help="timed rounds (default 25; quick 5)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    count = args.starts or (300 if args.quick else 2000)
    rounds = args.rounds or (5 if args.quick else 25)

    print(f"business time, {rounds} rounds of {count} calls per figure, interleaved; {benchlib.machine()}", flush=True)
    wall = time.perf_counter()
    starts = make_starts(count, args.seed)
    problems = check(starts)
    times = measure(starts, rounds)
    elapsed = time.perf_counter() - wall

    floor = benchlib.median(times[BASELINE])
    summary: dict[str, dict[str, float]] = {}
    rows: list[list[Any]] = []
    for name, seconds in times.items():
        median = benchlib.median(seconds)
        summary[name] = {
            "median_s": median,
            "p90_s": benchlib.percentile(seconds, 90),
            "x_baseline": benchlib.ratio(median, floor),
        }
        rows.append(
            [
                name,
                f"{median * 1e6:.2f}",
                f"{benchlib.percentile(seconds, 90) * 1e6:.2f}",
                f"{benchlib.ratio(median, floor):.0f}",
                f"{median * 10_000 * 1e3:.1f}",
            ]
        )
    print()
    print(benchlib.table(["what", "median us/call", "p90 us/call (rounds)", "x baseline", "ms per 10k leads"], rows))
    print()
    add_4h = summary["add 4h"]["median_s"]
    cold = summary["add 4h, cold (fresh calendar)"]["median_s"]
    verdict = "met" if max(add_4h, cold) < GOAL_SECONDS else "NOT met"
    print(
        f"goal (a 4h add under 20 us, cold included): {verdict}; {add_4h * 1e6:.2f} us warm, {cold * 1e6:.2f} us cold"
    )
    print(f"{elapsed:.1f}s in all")
    for problem in problems[:20]:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        "business_time",
        {"settings": {"starts": count, "rounds": rounds, "seed": args.seed}, "summary": summary, "problems": problems},
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
