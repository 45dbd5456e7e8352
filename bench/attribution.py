"""Benchmark: how long crediting one won deal takes, under each attribution model.

A deal with N touches (50, 500 and 5,000 by default) spread over 180 days, owned by a handful of
marketers, with a lead handed off half-way, is credited with ``credit_touches`` under each of the
six models. Each call is timed on its own with ``time.perf_counter``; the figure is the median (and
the p90) over the repetitions.

Baseline, in the same run and alternating with the models rep by rep: sorting the same N touches
(shuffled) by time with ``sorted(key=attrgetter("time"))``, the floor any crediting pays, since the
touches have to be put oldest first. ``select_touches`` (the lookback window and the sort by time and
id, which the caller runs before crediting) is timed alongside.

Goal: well under 10 ms for 500 touches under every model (aim: under 2 ms).

    python bench/attribution.py            # full run (about 15 s)
    python bench/attribution.py --quick    # smoke run (about 2 s)
"""

from __future__ import annotations

import datetime as dt
import random
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from operator import attrgetter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

from bot.services.attribution import MODELS, Credit, Touch, credit_touches, select_touches

CLOSE = dt.datetime(2026, 11, 20, 15, 0, tzinfo=dt.UTC)
LOOKBACK_DAYS = 180
HALF_LIFE_DAYS = 7.0
OWNERS = ("mia@northwind.example", "noah@northwind.example", "zoe@northwind.example", None)
KINDS = ("webinar", "event", "content", "email", "ad", "web", "other")
SORT = "sort by time (baseline)"
SELECT = "select_touches"


def make_touches(count: int, seed: int) -> list[Touch]:
    """``count`` touches at random moments of the lookback window, in no particular order."""
    rng = random.Random(seed)
    window = LOOKBACK_DAYS * 86_400
    return [
        Touch(
            touch_id=f"touch-{seed}-{i}",
            time=CLOSE - dt.timedelta(seconds=rng.randrange(window)),
            campaign=f"campaign {i % 37}",
            kind=KINDS[i % len(KINDS)],
            marketing_owner_email=OWNERS[rng.randrange(len(OWNERS))],
        )
        for i in range(count)
    ]


def check(model: str, count: int, credits: object) -> list[str]:
    """What is wrong with one crediting's answer (nothing, normally)."""
    problems: list[str] = []
    if not isinstance(credits, list) or not all(isinstance(c, Credit) for c in credits):
        return [f"{model}, {count} touches: not a list of Credit"]
    if len(credits) != count:
        problems.append(f"{model}, {count} touches: {len(credits)} credits")
    total_percent = sum(c.percent for c in credits)
    if total_percent != 100:
        problems.append(f"{model}, {count} touches: percents sum to {total_percent}")
    total_share = sum(c.share for c in credits)
    exact = all(isinstance(c.share, Fraction) for c in credits)
    if (exact and total_share != 1) or abs(total_share - 1) > 1e-9:
        problems.append(f"{model}, {count} touches: shares sum to {total_share}")
    return problems


def measure(count: int, reps: int, seed: int) -> tuple[dict[str, list[float]], list[str]]:
    """Seconds per call of the baseline, ``select_touches`` and each model, ``reps`` each, interleaved."""
    shuffled = make_touches(count, seed)
    ordered = select_touches(shuffled, closed_at=CLOSE, lookback_days=LOOKBACK_DAYS)
    lead_created_at = ordered[len(ordered) // 2].time
    by_time = attrgetter("time")
    calls: dict[str, Callable[[], object]] = {
        SORT: lambda: sorted(shuffled, key=by_time),
        SELECT: lambda: select_touches(shuffled, closed_at=CLOSE, lookback_days=LOOKBACK_DAYS),
    }
    problems: list[str] = []
    for model in MODELS:
        calls[model] = partial(
            credit_touches,
            ordered,
            model=model,
            closed_at=CLOSE,
            lead_created_at=lead_created_at,
            half_life_days=HALF_LIFE_DAYS,
        )
        problems += check(model, count, calls[model]())
    return benchlib.time_interleaved(calls, reps), problems


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "a smoke run of about 2 seconds")
    parser.add_argument("--sizes", help="touch counts, comma-separated (default 50,500,5000)")
    parser.add_argument("--reps", type=int, help="timed calls per size and model (default 300; quick 40)")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",")] if args.sizes else [50, 500, 5000]
    reps = args.reps or (40 if args.quick else 300)

    print(f"crediting one deal, {reps} timed calls per size and model, interleaved; {benchlib.machine()}", flush=True)
    wall = time.perf_counter()
    rows: list[list[Any]] = []
    summary: dict[str, dict[str, dict[str, float]]] = {}
    problems: list[str] = []
    for count in sizes:
        times, found = measure(count, reps, args.seed)
        problems += found
        floor = benchlib.median(times[SORT])
        summary[str(count)] = {}
        for name, seconds in times.items():
            median = benchlib.median(seconds)
            p90 = benchlib.percentile(seconds, 90)
            summary[str(count)][name] = {"median_s": median, "p90_s": p90, "x_sort": benchlib.ratio(median, floor)}
            rows.append(
                [
                    count,
                    name,
                    f"{median * 1e6:.1f}",
                    f"{p90 * 1e6:.1f}",
                    f"{median * 1e6 / count:.2f}",
                    f"{benchlib.ratio(median, floor):.1f}",
                ]
            )
        print(f"  {count} touches: done", flush=True)
    elapsed = time.perf_counter() - wall

    print()
    print(benchlib.table(["touches", "what", "median us", "p90 us", "us per touch", "x sort"], rows))
    print()
    if "500" in summary:
        worst = max(summary["500"][model]["median_s"] for model in MODELS)
        verdict = "met" if worst < 0.010 else "NOT met"
        aim = "under" if worst < 0.002 else "over"
        print(
            f"goal (every model well under 10 ms at 500 touches): {verdict}; "
            f"slowest model {worst * 1e3:.2f} ms ({aim} the 2 ms aim)"
        )
    print(f"{elapsed:.1f}s in all")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        "attribution",
        {
            "settings": {"sizes": sizes, "reps": reps, "seed": args.seed, "half_life_days": HALF_LIFE_DAYS},
            "summary": summary,
            "problems": problems,
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
