"""Benchmark: the SLA clock. Its tick against many open clocks, breach-to-DM delay, its memory.

1. **The due-clock tick** (``schedules.jobs.sla_tick``, what APScheduler runs every 2 s) in a
   database of 10,000 and one of 1,000,000 open clocks, 100 of them due (a yellow flag each),
   in alternating rounds: the median time per tick, the ratio large/small (goal: under 2), and
   the idle tick (nothing due, the cost paid every 2 s). Between rounds the 100 due clocks are
   made due again and the outbox is emptied, so every tick does the same work. The query plan
   of the tick's own select (captured as it runs) shows whether ``ix_sla_clocks_next_check`` is
   used.
2. **Breach to DM**: 1,000 clocks whose deadlines fall uniformly over the next 120 s, one per
   owner (1,000 generated people with their own Slack IDs, reporting to 10 managers), with the
   real machinery running: ``schedules.clock.start_scheduler`` (APScheduler, the 2-s tick and
   its on-time runs) and an
   ``OutboxRelay`` thread (default pace) against a fake Slack enforcing ~1 post/s per channel.
   The delay from each deadline to the fake receiving the red flag: p50, p99, max (goal: p99
   under 5 s). Checked: each clock's red DM arrived exactly once, to its owner; each manager got
   exactly one escalation DM (one a day; the rest go in the daily summary). Then the same with
   every deadline at one instant (``--no-burst`` skips it): business-hours deadlines cluster.
3. **Peak memory** of ``python -m bot.cli clock`` running ~20 s against the 1,000,000-clock
   database (100 due), against the same process on an empty database: the ratio should be ~1.

Databases are SQLite files, built with bulk Core inserts; the large ones are kept under
``bench/results/`` (keyed by size) and reused while their non-due clocks are still in the
future (``--fresh`` rebuilds them). ``--database-url postgresql+psycopg://...`` runs on
PostgreSQL instead (its ``sla_clocks``, ``leads``, ``outbox`` and ``channel_pace`` are emptied
first; the two sizes are then measured one after the other, not alternately).

    python bench/sla_clock.py            # full run (about 3 minutes; 4 the first time, building the 1M database)
    python bench/sla_clock.py --quick    # smoke run (about 50 s): 10,000 vs 100,000 clocks, 100 deadlines
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import logging
import math
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "alignment.example.toml"
TOKEN = "xoxb-bench"
SLA_NAME = "mql-first-touch"
SLA_VERSION = "2026-09"
STAGE = "MQL"
DUE = 100
CACHE_FORMAT = 1  # bump when the rows built change, so cached databases are rebuilt
CHUNK = 20_000  # rows per executemany
# Non-due clocks check next between 1 and 15 days after the database was built: a cached
# database is reused while the earliest of them is still comfortably in the future.
NOT_DUE_FROM = dt.timedelta(days=1)
NOT_DUE_SPAN = dt.timedelta(days=14)
CACHE_MARGIN = dt.timedelta(minutes=30)
COMPANIES = ("Acme Corp", "Globex", "Initech", "Umbrella", "Hooli", "Stark Industries", "Wayne Enterprises")
FIRST_NAMES = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Casey", "Riley", "Jamie")


def log_line(message: str) -> None:
    print(message, flush=True)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --- problems and log records ----------------------------------------------------------------


class LogRecorder(logging.Handler):
    """Keeps the warnings and errors logged in this process (relay retries, a failing job...)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self._lock2 = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        with self._lock2:
            self.records.append(record)

    def take(self) -> list[logging.LogRecord]:
        with self._lock2:
            records, self.records = self.records, []
        return records


# --- building the databases ------------------------------------------------------------------


def example_data() -> dict[str, Any]:
    with CONFIG.open("rb") as handle:
        return tomllib.load(handle)


def lead_id(clock_id: int) -> str:
    return f"00Q{clock_id:012d}"


def due_ids(size: int, due: int = DUE) -> list[int]:
    """The clocks that are due: spread evenly over the ids (and so over the table's pages)."""
    step = size // due
    return [1 + i * step + step // 2 for i in range(due)]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def table_of(model: Any) -> Any:
    """The Core table of a model (for bulk executemany inserts, which skip the ORM)."""
    from sqlalchemy import Table

    table = model.__table__
    assert isinstance(table, Table)
    return table


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def empty_tables(database: Any) -> None:
    """Empty the tables the benchmark writes (on PostgreSQL, before using a given database)."""
    from sqlalchemy import text

    with database.engine.begin() as conn:
        if database.is_sqlite:
            for table in ("sla_clocks", "leads", "outbox", "channel_pace", "sla_folded_nudges"):
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 - fixed table names
        else:
            conn.execute(text("TRUNCATE sla_clocks, leads, outbox, channel_pace, sla_folded_nudges"))


def clock_row(
    clock_id: int, owner: str, *, started: dt.datetime, warn: dt.datetime, due: dt.datetime, now: dt.datetime
) -> dict[str, Any]:
    return {
        "id": clock_id,
        "lead_id": lead_id(clock_id),
        "sla_name": SLA_NAME,
        "sla_version": SLA_VERSION,
        "stage": STAGE,
        "owner_email": owner,
        "started_at": started,
        "warn_at": warn,
        "due_at": due,
        "state": "open",
        "stopped_at": None,
        "stopped_by": None,
        "reassignments": [],
        "next_check_at": warn,
        "warned_at": None,
        "escalated_at": None,
        "corrected_at": None,
        "updated_at": now,
    }


def lead_row(clock_id: int, owner: str, now: dt.datetime) -> dict[str, Any]:
    return {
        "lead_id": lead_id(clock_id),
        "owner_email": owner,
        "stage": STAGE,
        "name": f"{FIRST_NAMES[clock_id % len(FIRST_NAMES)]} Lead{clock_id}",
        "company": COMPANIES[clock_id % len(COMPANIES)],
        "account_id": f"001{clock_id:012d}",
        "campaign": "Q4 data summit",
        "score": 72.0,
        "grade": "A",
        "handed_off_at": now - dt.timedelta(hours=3),
        "contacted_at": None,
        "recycled_at": None,
        "recycle_reason": None,
        "updated_at": now,
    }


def insert_open_clocks(database: Any, size: int, owners: list[str], built: dt.datetime) -> None:
    """``size`` open clocks (ids 1..size), ``DUE`` of them due now, with the due ones' leads; bulk Core inserts."""
    from sqlalchemy import insert

    from bot.models import Lead, SlaClock

    clocks = table_of(SlaClock)
    rng = random.Random(size)
    due = set(due_ids(size))
    began = time.perf_counter()
    last_note = began
    for start in range(1, size + 1, CHUNK):
        rows = []
        for clock_id in range(start, min(start + CHUNK, size + 1)):
            owner = owners[clock_id % len(owners)]
            if clock_id in due:
                warn = built - dt.timedelta(minutes=30)
                due_at = built + dt.timedelta(hours=1)
            else:
                warn = built + NOT_DUE_FROM + NOT_DUE_SPAN * rng.random()
                due_at = warn + dt.timedelta(hours=1)
            started = warn - dt.timedelta(hours=3)
            rows.append(clock_row(clock_id, owner, started=started, warn=warn, due=due_at, now=built))
        with database.engine.begin() as conn:
            conn.execute(insert(clocks), rows)
        done = min(start + CHUNK - 1, size)
        if time.perf_counter() - last_note > 10 or done == size:
            last_note = time.perf_counter()
            elapsed = last_note - began
            log_line(f"    {done:>9,} / {size:,} clocks inserted ({elapsed:.0f} s, {done / elapsed:,.0f} rows/s)")
    with database.engine.begin() as conn:
        conn.execute(insert(table_of(Lead)), [lead_row(i, owners[i % len(owners)], built) for i in sorted(due)])
    if not database.is_sqlite:
        with database.engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE sla_clocks")
            conn.exec_driver_sql("ANALYZE leads")


@dataclass
class ClockStore:
    """A database holding ``size`` open clocks, ``DUE`` of them due."""

    url: str
    size: int
    database: Any
    due: list[int]
    built: dt.datetime
    cached: bool = False


def cache_paths(size: int) -> tuple[Path, Path]:
    base = benchlib.RESULTS_DIR / f"sla_clock-{size}"
    return base.with_suffix(".db"), base.with_suffix(".json")


def remove_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".clock.lock"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def open_sqlite_store(size: int, owners: list[str], *, workdir: Path, cache: bool, fresh: bool) -> ClockStore:
    """The SQLite database of ``size`` clocks: the cached file when still valid, else built (and cached)."""
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.models import SlaClock

    if not cache:
        path = workdir / f"clocks-{size}.db"
        remove_sqlite(path)
        return build_store(sqlite_url(path), size, owners)
    path, meta_path = cache_paths(size)
    now = utcnow()
    if not fresh and path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        built = dt.datetime.fromisoformat(meta["built"])
        still_future = built + NOT_DUE_FROM > now + CACHE_MARGIN
        if meta.get("format") == CACHE_FORMAT and meta.get("size") == size and still_future:
            database = Database.from_url(sqlite_url(path))
            database.upgrade()
            with database.read_session() as session:
                count = session.scalar(select(func.count(SlaClock.id)))
            if count == size:
                log_line(f"  {size:,} clocks: reusing {path.relative_to(REPO)} (built {meta['built'][:16]})")
                return ClockStore(sqlite_url(path), size, database, due_ids(size), built, cached=True)
            database.dispose()
        log_line(f"  {size:,} clocks: the cached database is stale or incomplete; rebuilding it")
    benchlib.RESULTS_DIR.mkdir(exist_ok=True)
    meta_path.unlink(missing_ok=True)
    remove_sqlite(path)
    store = build_store(sqlite_url(path), size, owners)
    meta_path.write_text(
        json.dumps({"format": CACHE_FORMAT, "size": size, "built": store.built.isoformat()}) + "\n", encoding="utf-8"
    )
    return store


def build_store(url: str, size: int, owners: list[str]) -> ClockStore:
    from bot.db import Database

    database = Database.from_url(url)
    database.upgrade()
    empty_tables(database)
    built = utcnow().replace(microsecond=0)
    log_line(f"  {size:,} clocks: inserting into {url.split('@')[-1]} ...")
    began = time.perf_counter()
    insert_open_clocks(database, size, owners, built)
    log_line(f"  {size:,} clocks: built in {time.perf_counter() - began:.1f} s")
    return ClockStore(url, size, database, due_ids(size), built)


def make_due_again(store: ClockStore, now: dt.datetime) -> None:
    """The due clocks back to 'yellow flag due now' (same times in every database), the outbox empty."""
    from sqlalchemy import delete, update

    from bot.models import ChannelPace, OutboxMessage, SlaClock, SlaFoldedNudge

    warn, due_at = now - dt.timedelta(minutes=30), now + dt.timedelta(hours=1)
    with store.database.session() as session:
        session.execute(
            update(SlaClock)
            .where(SlaClock.id.in_(store.due))
            .values(
                warn_at=warn,
                due_at=due_at,
                started_at=warn - dt.timedelta(hours=3),
                next_check_at=warn,
                warned_at=None,
                escalated_at=None,
                state="open",
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        session.execute(delete(OutboxMessage).execution_options(synchronize_session=False))
        session.execute(delete(ChannelPace).execution_options(synchronize_session=False))
        session.execute(delete(SlaFoldedNudge).execution_options(synchronize_session=False))


# --- 1. the due-clock tick -------------------------------------------------------------------


class StatementLog:
    """The SQL statements an engine runs while armed (to count them and to explain the tick's select)."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.armed = False
        self.statements: list[tuple[str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if self.armed:
            self.statements.append((statement, parameters))

    @contextlib.contextmanager
    def capture(self) -> Iterator[list[tuple[str, Any]]]:
        self.statements = []
        self.armed = True
        try:
            yield self.statements
        finally:
            self.armed = False


def tick_select(statements: list[tuple[str, Any]]) -> tuple[str, Any] | None:
    for statement, parameters in statements:
        flat = " ".join(statement.split())
        if "FROM sla_clocks" in flat and "next_check_at <=" in flat:
            return statement, parameters
    return None


def query_plan(database: Any, statement: str, parameters: Any) -> list[str]:
    """``EXPLAIN QUERY PLAN`` (SQLite) or ``EXPLAIN`` (PostgreSQL) of a captured statement."""
    prefix = "EXPLAIN QUERY PLAN " if database.is_sqlite else "EXPLAIN "
    with database.engine.connect() as conn:
        driver = conn.connection.driver_connection
        cursor = driver.cursor()
        cursor.execute(prefix + statement, parameters)
        rows = cursor.fetchall()
        cursor.close()
        conn.rollback()
    if database.is_sqlite:
        return [str(row[-1]) for row in rows]
    return [str(row[0]) for row in rows]


@dataclass
class TickFigures:
    size: int
    busy: list[float] = field(default_factory=list)
    idle: list[float] = field(default_factory=list)
    statements_busy: int = 0
    statements_idle: int = 0
    queued: dict[str, int] = field(default_factory=dict)
    plan: list[str] = field(default_factory=list)
    uses_index: bool = False


def outbox_summary(database: Any) -> dict[str, int]:
    """How the flags of a tick were queued: DMs by kind, and nudges folded into a digest."""
    from sqlalchemy import func, select

    from bot.models import OutboxMessage, SlaFoldedNudge

    kinds: Counter[str] = Counter()
    with database.read_session() as session:
        for (kind,) in session.execute(select(OutboxMessage.kind)):
            kinds[kind] += 1
        kinds["folded nudges"] += session.scalar(select(func.count(SlaFoldedNudge.id))) or 0
    return dict(kinds)


def check_tick(store: ClockStore, now: dt.datetime, problems: list[str]) -> None:
    """After a busy tick: every due clock flagged at ``now`` and checking next at its deadline."""
    from sqlalchemy import select

    from bot.models import SlaClock

    with store.database.read_session() as session:
        rows = session.execute(
            select(SlaClock.id, SlaClock.warned_at, SlaClock.next_check_at, SlaClock.due_at).where(
                SlaClock.id.in_(store.due)
            )
        ).all()
    wrong = [r.id for r in rows if r.warned_at != now or r.next_check_at != r.due_at]
    if len(rows) != len(store.due) or wrong:
        problems.append(f"{store.size:,} clocks: {len(wrong)} of the due clocks were not flagged by the tick")
    kinds = outbox_summary(store.database)
    flagged = kinds.get("sla.yellow", 0) + kinds.get("folded nudges", 0)
    if flagged != len(store.due):
        problems.append(f"{store.size:,} clocks: {flagged} yellow flags queued for {len(store.due)} due clocks")


def fixed_clock(now: dt.datetime) -> Callable[[], dt.datetime]:
    return lambda: now


def run_ticks(stores: list[ClockStore], alignment: Any, reps: int, problems: list[str]) -> dict[int, TickFigures]:
    """Alternate over ``stores``: make the due clocks due again, time a busy tick, then an idle one."""
    from bot.deps import Dependencies
    from schedules.jobs import sla_tick

    figures = {s.size: TickFigures(s.size) for s in stores}
    logs = {s.size: StatementLog(s.database.engine) for s in stores}
    for rep in range(reps + 1):  # round 0 warms up (and is checked), not timed
        for store in stores:
            now = utcnow()
            deps = Dependencies(alignment=alignment, database=store.database, clock=fixed_clock(now))
            make_due_again(store, now)
            with logs[store.size].capture() as statements:
                began = time.perf_counter()
                busy = sla_tick(deps)
                busy_s = time.perf_counter() - began
            n_busy = len(statements)
            with logs[store.size].capture() as idle_statements:
                began = time.perf_counter()
                idle = sla_tick(deps)
                idle_s = time.perf_counter() - began
            if busy != len(store.due) or idle != 0:
                problems.append(f"{store.size:,} clocks: a tick looked at {busy} clocks (expected {len(store.due)}),")
                problems.append(f"  the idle tick after it at {idle} (expected 0)")
            fig = figures[store.size]
            if rep == 0:
                check_tick(store, now, problems)
                fig.queued = outbox_summary(store.database)
                fig.statements_busy, fig.statements_idle = n_busy, len(idle_statements)
                found = tick_select(idle_statements)
                if found is None:
                    problems.append("the tick's select on sla_clocks was not seen")
                else:
                    fig.plan = query_plan(store.database, *found)
                    fig.uses_index = any("ix_sla_clocks_next_check" in line for line in fig.plan)
            else:
                fig.busy.append(busy_s)
                fig.idle.append(idle_s)
    return figures


def bench_tick(
    args: argparse.Namespace, alignment: Any, owners: list[str], workdir: Path, problems: list[str]
) -> tuple[dict[str, Any], ClockStore | None]:
    """Part 1. Returns the summary and the large store (kept for the memory part)."""
    sizes = (args.small, args.large)
    log_line(f"\n## 1. the due-clock tick: {sizes[0]:,} vs {sizes[1]:,} open clocks, {DUE} due, {args.reps} rounds")
    figures: dict[int, TickFigures] = {}
    large: ClockStore | None = None
    if args.database_url:
        for size in sizes:  # one database: the sizes one after the other
            if large is not None:
                large.database.dispose()
            large = build_store(args.database_url, size, owners)
            figures |= run_ticks([large], alignment, args.reps, problems)
    else:
        stores = [
            open_sqlite_store(size, owners, workdir=workdir, cache=not args.no_cache, fresh=args.fresh)
            for size in sizes
        ]
        figures = run_ticks(stores, alignment, args.reps, problems)
        stores[0].database.dispose()
        large = stores[1]

    small_f, large_f = figures[sizes[0]], figures[sizes[1]]
    rows = []
    for fig in (small_f, large_f):
        rows.append(
            [
                f"{fig.size:,}",
                f"{benchlib.median(fig.busy) * 1e3:.1f}",
                f"{benchlib.percentile(fig.busy, 90) * 1e3:.1f}",
                f"{benchlib.median(fig.idle) * 1e3:.2f}",
                f"{benchlib.percentile(fig.idle, 90) * 1e3:.2f}",
                f"{fig.statements_busy} / {fig.statements_idle}",
            ]
        )
    busy_ratio = benchlib.ratio(benchlib.median(large_f.busy), benchlib.median(small_f.busy))
    idle_ratio = benchlib.ratio(benchlib.median(large_f.idle), benchlib.median(small_f.idle))
    log_line("")
    log_line(
        benchlib.table(
            [
                "open clocks",
                f"tick, {DUE} due: median ms",
                "p90 ms",
                "idle tick: median ms",
                "p90 ms",
                "SQL statements busy / idle",
            ],
            rows,
        )
    )
    log_line("")
    log_line(f"what a busy tick queued: {small_f.queued}")
    verdict = "met" if busy_ratio < 2 else "NOT met"
    log_line(
        f"ratio {sizes[1]:,} / {sizes[0]:,}: busy tick {busy_ratio:.2f} (goal < 2: {verdict}), "
        f"idle tick {idle_ratio:.2f}"
    )
    for fig in (small_f, large_f):
        log_line(f"query plan of the tick's select, {fig.size:,} clocks:")
        for line in fig.plan:
            log_line(f"    {line}")
        if not fig.uses_index:
            log_line(f"NOTE: the tick's select does not use ix_sla_clocks_next_check with {fig.size:,} clocks")
    summary = {
        "sizes": list(sizes),
        "busy_median_s": {f.size: benchlib.median(f.busy) for f in (small_f, large_f)},
        "busy_p90_s": {f.size: benchlib.percentile(f.busy, 90) for f in (small_f, large_f)},
        "idle_median_s": {f.size: benchlib.median(f.idle) for f in (small_f, large_f)},
        "idle_p90_s": {f.size: benchlib.percentile(f.idle, 90) for f in (small_f, large_f)},
        "busy_ratio": busy_ratio,
        "idle_ratio": idle_ratio,
        "statements": {f.size: [f.statements_busy, f.statements_idle] for f in (small_f, large_f)},
        "queued_per_tick": small_f.queued,
        "plans": {f.size: f.plan for f in (small_f, large_f)},
        "uses_index": {f.size: f.uses_index for f in (small_f, large_f)},
    }
    return summary, large


# --- 2. breach to DM -------------------------------------------------------------------------


def crowd_alignment(people: int, managers: int) -> tuple[Any, list[str], list[str]]:
    """The example alignment with ``people`` generated reps under ``managers`` managers, no quiet hours.

    Returns (alignment, rep emails, manager emails). Every person has a Slack ID (U0B00001...).
    """
    from bot.config import parse_alignment

    data = example_data()
    manager_emails = [f"manager{i:02d}@northwind.example" for i in range(1, managers + 1)]
    rep_emails = [f"rep{i:05d}@northwind.example" for i in range(1, people + 1)]
    generated: list[dict[str, Any]] = []
    for i, email in enumerate(manager_emails, start=1):
        generated.append({"email": email, "name": f"Manager {i}", "slack_id": f"U0B{people + i:05d}", "team": "sales"})
    for i, email in enumerate(rep_emails, start=1):
        generated.append(
            {
                "email": email,
                "name": f"Rep {i}",
                "slack_id": f"U0B{i:05d}",
                "team": "sales",
                "manager": manager_emails[(i - 1) % managers],
            }
        )
    data["people"] = generated
    data["noise"] = {"quiet_hours": None, "max_dms_per_day": 10_000}
    return parse_alignment(data, source="bench: generated people"), rep_emails, manager_emails


def percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": benchlib.percentile(values, 50),
        "p90": benchlib.percentile(values, 90),
        "p99": benchlib.percentile(values, 99),
        "max": max(values) if values else math.nan,
        "min": min(values) if values else math.nan,
    }


def bench_breach(
    args: argparse.Namespace, workdir: Path, recorder: LogRecorder, problems: list[str], *, spread: float
) -> dict[str, Any]:
    from sqlalchemy import insert, select

    import schedules.clock as clock_module
    from bot.db import Database
    from bot.demo.fakeslack import FakeSlack
    from bot.deps import Dependencies
    from bot.models import Lead, OutboxMessage, SlaClock
    from schedules.clock import start_scheduler
    from schedules.jobs import sla_tick

    count = args.deadlines
    when = f"over {spread:.0f} s" if spread else "all at one instant (a burst)"
    log_line(
        f"\n## 2. breach to DM: {count:,} deadlines {when}, {count:,} owners under {args.managers} "
        "managers, the real scheduler (2-s tick, on-time runs) and relay"
    )
    alignment, reps, managers = crowd_alignment(count, args.managers)
    url = args.database_url or sqlite_url(workdir / f"breach-{spread:g}.db")
    database = Database.from_url(url)
    database.upgrade()
    empty_tables(database)

    # Deadlines uniform over [t0, t0 + spread]; the yellow flags are long past and were sent.
    t0 = utcnow() + dt.timedelta(seconds=args.lead_in)
    rng = random.Random(2026)
    deadlines = {i: t0 + dt.timedelta(seconds=rng.uniform(0, spread)) for i in range(1, count + 1)}
    owner_of = {i: reps[i - 1] for i in deadlines}
    now = utcnow()
    clock_rows = []
    for clock_id, due_at in deadlines.items():
        warn = due_at - dt.timedelta(hours=1)
        row = clock_row(
            clock_id, owner_of[clock_id], started=due_at - dt.timedelta(hours=4), warn=warn, due=due_at, now=now
        )
        row.update(warned_at=warn, next_check_at=due_at)
        clock_rows.append(row)
    with database.engine.begin() as conn:
        conn.execute(insert(table_of(SlaClock)), clock_rows)
        conn.execute(insert(table_of(Lead)), [lead_row(i, owner_of[i], now) for i in deadlines])

    slack_of = {p.email: p.slack_id for p in alignment.people}
    manager_of = {p.email: p.manager for p in alignment.people}
    red_keys = {f"sla:{i}:red": i for i in deadlines}
    tick_log: list[tuple[float, float, int]] = []  # (wall start, seconds, clocks looked at)

    def timed_tick(deps: Dependencies, *, batch: int = 200) -> int:
        began, wall = time.perf_counter(), time.time()
        looked = sla_tick(deps, batch=batch)
        tick_log.append((wall, time.perf_counter() - began, looked))
        return looked

    from bot.slack import relay as relaying

    fake = FakeSlack().start()
    fake.enforce_rate_limit(1.0)
    deps = Dependencies(alignment=alignment, database=database)
    relay = relaying.OutboxRelay(database, relaying.relay_client(TOKEN, fake.url))
    original_tick = clock_module.sla_tick
    clock_module.sla_tick = timed_tick  # the same job, timed: start_scheduler schedules this name
    scheduler = None
    recorder.take()
    try:
        relay.start()
        scheduler = start_scheduler(deps)
        end_by = time.time() + args.lead_in + spread + 60

        def red_posts() -> tuple[list[Any], list[Any]]:
            owners_red, managers_red = [], []
            for post in fake.posts():
                key = str(((post.body.get("metadata") or {}).get("event_payload") or {}).get("key", ""))
                if key in red_keys:
                    owners_red.append(post)
                elif key.startswith("sla:") and ":red:" in key:
                    managers_red.append(post)
            return owners_red, managers_red

        next_note = time.time() + 15
        while time.time() < end_by:
            owners_red, managers_red = red_posts()
            if len(owners_red) >= count and len(managers_red) >= args.managers:
                break
            if time.time() >= next_note:
                log_line(f"    {len(owners_red):,} / {count:,} red flags delivered")
                next_note += 15
            time.sleep(0.25)
        time.sleep(3)  # a duplicate would show up within a tick or two
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
        relay.stop()
        clock_module.sla_tick = original_tick
        fake.stop()

    owners_red, managers_red = red_posts()
    delays: list[float] = []
    queued_lag: list[float] = []
    relay_lag: list[float] = []
    with database.read_session() as session:
        created = {
            row.key: row
            for row in session.execute(
                select(OutboxMessage.key, OutboxMessage.created_at, OutboxMessage.delivered_at, OutboxMessage.failed_at)
            )
        }
        clocks = {row.id: row for row in session.execute(select(SlaClock.id, SlaClock.state, SlaClock.escalated_at))}
    seen: Counter[str] = Counter()
    for post in owners_red:
        key = post.body["metadata"]["event_payload"]["key"]
        seen[key] += 1
        clock_id = red_keys[key]
        if post.body.get("channel") != slack_of[owner_of[clock_id]]:
            problems.append(f"{key} went to {post.body.get('channel')}, not its owner's DM")
        if post.body["metadata"].get("event_type") != relaying.METADATA_EVENT:
            problems.append(f"{key} was posted without the outbox metadata")
        deadline = deadlines[clock_id].timestamp()
        delays.append(post.at - deadline)
        if key in created:
            queued_lag.append(created[key].created_at.timestamp() - deadline)
            relay_lag.append(post.at - created[key].created_at.timestamp())
    missing = [k for k in red_keys if seen[k] == 0]
    duplicated = [k for k, n in seen.items() if n > 1]
    if missing:
        problems.append(f"{len(missing)} of {count} red flags never arrived (first: {missing[0]})")
    if duplicated:
        problems.append(f"{len(duplicated)} red flags arrived more than once (first: {duplicated[0]})")
    early = [d for d in delays if d < 0]
    if early:
        problems.append(f"{len(early)} red flags arrived before their deadline (by up to {-min(early):.2f} s)")
    manager_seen: Counter[str] = Counter()
    for post in managers_red:
        key = post.body["metadata"]["event_payload"]["key"]
        clock_id, manager = int(key.split(":")[1]), key.split(":red:", 1)[1]
        manager_seen[manager] += 1
        if manager_of[owner_of[clock_id]] != manager:
            problems.append(f"{key}: escalated to {manager}, who is not the owner's manager")
        if post.body.get("channel") != slack_of[manager]:
            problems.append(f"{key} went to {post.body.get('channel')}, not the manager's DM")
    for manager in managers:
        if manager_seen[manager] != 1:
            problems.append(f"{manager} got {manager_seen[manager]} escalation DMs (expected one a day)")
    not_breached = [i for i in deadlines if clocks[i].state != "breached" or clocks[i].escalated_at is None]
    if not_breached:
        problems.append(f"{len(not_breached)} clocks are not marked breached and escalated")
    undelivered = [k for k, row in created.items() if row.delivered_at is None]
    if undelivered:
        problems.append(f"{len(undelivered)} outbox rows were left undelivered (first: {undelivered[0]})")
    other_failures = [c for c in fake.calls_to("chat.postMessage") if not c.ok and c.status != 429]
    if other_failures:
        problems.append(f"{len(other_failures)} posts failed other than by 429: {other_failures[0].response}")
    records = recorder.take()
    errors = [r for r in records if r.levelno >= logging.ERROR]
    for record in errors[:5]:
        problems.append(f"logged {record.levelname} {record.name}: {record.getMessage()[:200]}")
    missed = [r for r in records if "missed by" in r.getMessage() or "maximum number of running" in r.getMessage()]
    database.dispose()

    ticks = [t for t in tick_log if t[0] >= t0.timestamp() - 2]
    busy_ticks = [t for t in ticks if t[2]]
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(tick_log)]
    delay = percentiles(delays)
    log_line("")
    log_line(
        benchlib.table(
            ["delay s", "p50", "p90", "p99", "max", "min"],
            [
                ["deadline -> DM at the fake", *(f"{delay[k]:.2f}" for k in ("p50", "p90", "p99", "max", "min"))],
                [
                    "deadline -> start of the tick",
                    *(f"{percentiles(queued_lag)[k]:.2f}" for k in ("p50", "p90", "p99", "max", "min")),
                ],
                [
                    "tick start -> DM (tick, relay)",
                    *(f"{percentiles(relay_lag)[k]:.2f}" for k in ("p50", "p90", "p99", "max", "min")),
                ],
            ],
        )
    )
    log_line("")
    verdict = "met" if delay["p99"] < 5 else "NOT met"
    log_line(
        f"goal (p99 under 5 s): {verdict}; p50 {delay['p50']:.2f} s, p99 {delay['p99']:.2f} s, max {delay['max']:.2f} s"
    )
    log_line(
        f"red flags: {len(owners_red):,} posts for {count:,} clocks ({len(missing)} missing, {len(duplicated)} "
        f"duplicated); manager escalations: {len(managers_red)} for {len(managers)} managers; "
        f"429s from the fake: {fake.rate_limited}"
    )
    tick_seconds = [t[1] for t in busy_ticks]
    log_line(
        f"ticks: {len(tick_log)} in all, every {benchlib.median(gaps):.2f} s "
        f"(max gap {max(gaps, default=math.nan):.2f} s); "
        f"{len(busy_ticks)} found clocks due: {benchlib.median([t[2] for t in busy_ticks]):.0f} clocks, "
        f"{benchlib.median(tick_seconds) * 1e3:.0f} ms median, {max(tick_seconds, default=math.nan) * 1e3:.0f} ms max; "
        f"APScheduler 'missed' warnings: {len(missed)}"
    )
    return {
        "deadlines": count,
        "spread_s": spread,
        "managers": len(managers),
        "delay_s": delay,
        "deadline_to_tick_start_s": percentiles(queued_lag),
        "tick_start_to_dm_s": percentiles(relay_lag),
        "red_posts": len(owners_red),
        "missing": len(missing),
        "duplicated": len(duplicated),
        "manager_escalations": len(managers_red),
        "rate_limited": fake.rate_limited,
        "ticks": len(tick_log),
        "tick_gap_median_s": benchlib.median(gaps),
        "busy_tick_median_s": benchlib.median(tick_seconds),
        "busy_tick_max_s": max(tick_seconds, default=math.nan),
        "busy_tick_clocks_median": benchlib.median([t[2] for t in busy_ticks]),
        "missed_warnings": len(missed),
    }


# --- 3. peak memory of the clock process -----------------------------------------------------


@dataclass
class ClockRun:
    label: str
    peak_kb: int = 0  # VmHWM just before SIGTERM (the peak of this program since its exec)
    rss_kb: int = 0  # VmRSS then
    exit_status: int | None = None
    samples: list[tuple[float, int]] = field(default_factory=list)
    log_problems: list[str] = field(default_factory=list)
    jobs: list[str] = field(default_factory=list)  # the scheduled jobs it ran (a catch-up may load much)


def run_clock_process(label: str, url: str, slack_url: str, seconds: float, workdir: Path) -> ClockRun:
    """``python -m bot.cli clock`` for ``seconds``, then SIGTERM; its peak RSS polled from /proc
    (``benchlib.proc_status``: not ``ru_maxrss``, which would show this benchmark's size)."""
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_API_URL": slack_url,
        "DATABASE_URL": url,
        "ALIGNBOT_CONFIG": str(CONFIG),
        "PYTHONUNBUFFERED": "1",
    }
    run = ClockRun(label)
    log_path = workdir / f"clock-{label.replace(' ', '-').replace(',', '')}.log"
    with log_path.open("w", encoding="utf-8") as log_file:
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "clock"], cwd=REPO, env=env, stdout=log_file, stderr=subprocess.STDOUT
        )
        began = time.monotonic()
        while time.monotonic() - began < seconds and process.poll() is None:
            status = benchlib.proc_status(process.pid)
            if status:
                run.samples.append((time.monotonic() - began, status.get("VmRSS", 0)))
                run.peak_kb = max(run.peak_kb, status.get("VmHWM", 0))
                run.rss_kb = status.get("VmRSS", 0)
            time.sleep(0.25)
        status = benchlib.proc_status(process.pid)
        run.peak_kb = max(run.peak_kb, status.get("VmHWM", 0))
        run.rss_kb = status.get("VmRSS", run.rss_kb)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            run.exit_status = process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            run.exit_status = process.wait()
    text = log_path.read_text(encoding="utf-8", errors="replace")
    for line in text.splitlines():  # JSON lines (the clock is a service), text before logging is set up
        record = benchlib.json_record(line)
        if record is None:
            if " ERROR " in line or line.startswith("Traceback"):
                run.log_problems.append(f"{label}: {line[:200]}")
            continue
        message = str(record.get("message", ""))
        if str(record.get("level", "")).lower() in {"error", "critical"} or record.get("exception"):
            run.log_problems.append(f"{label}: {record.get('logger')}: {message[:200]}")
        elif record.get("logger") == "alignbot.clock" and message.startswith(("caught up on", "running ")):
            run.jobs.append(message)
    if run.exit_status not in (0, None):
        run.log_problems.append(f"{label}: the clock exited with status {run.exit_status} (log: {log_path})")
    return run


def bench_memory(
    args: argparse.Namespace,
    owners: list[str],
    large: ClockStore | None,
    workdir: Path,
    problems: list[str],
) -> dict[str, Any]:
    from bot.db import Database
    from bot.demo.fakeslack import FakeSlack

    size = args.large
    log_line(
        f"\n## 3. peak memory of `python -m bot.cli clock`, {args.memory_seconds:.0f} s each: empty vs {size:,} clocks"
    )
    if large is None:
        if args.database_url:
            large = build_store(args.database_url, size, owners)
        else:
            large = open_sqlite_store(size, owners, workdir=workdir, cache=not args.no_cache, fresh=False)
    make_due_again(large, utcnow())
    runs: list[ClockRun] = []
    with FakeSlack() as fake:
        if args.database_url:  # one database: the large run first, then emptied for the baseline
            runs.append(run_clock_process(f"{size:,} clocks", large.url, fake.url, args.memory_seconds, workdir))
            flagged = count_flagged(large)
            empty_tables(large.database)
            runs.insert(0, run_clock_process("empty", large.url, fake.url, args.memory_seconds, workdir))
        else:
            empty_path = workdir / "empty.db"
            empty = Database.from_url(sqlite_url(empty_path))
            empty.upgrade()
            empty.dispose()
            runs.append(run_clock_process("empty", sqlite_url(empty_path), fake.url, args.memory_seconds, workdir))
            runs.append(run_clock_process(f"{size:,} clocks", large.url, fake.url, args.memory_seconds, workdir))
            flagged = count_flagged(large)
    large.database.dispose()
    for run in runs:
        problems.extend(run.log_problems)
    if flagged != DUE:
        problems.append(f"the clock process flagged {flagged} of the {DUE} due clocks")
    base, subject = runs
    mb = 1 / 1024
    log_line("")
    log_line(
        benchlib.table(
            ["database", "peak RSS MB (VmHWM)", "RSS at the end MB", "exit status"],
            [[r.label, f"{r.peak_kb * mb:.1f}", f"{r.rss_kb * mb:.1f}", r.exit_status] for r in runs],
        )
    )
    for run in runs:
        if run.jobs:
            log_line(f"jobs the clock ran besides the tick ({run.label}): {'; '.join(run.jobs)}")
    peak_ratio = benchlib.ratio(float(subject.peak_kb), float(base.peak_kb))
    log_line("")
    log_line(
        f"peak RSS ratio {size:,} clocks / empty: {peak_ratio:.2f} (goal ~1: the clocks are not held); "
        f"{flagged} of {DUE} due clocks flagged by the process"
    )
    return {
        "seconds": args.memory_seconds,
        "size": size,
        "peak_kb": {r.label: r.peak_kb for r in runs},
        "end_rss_kb": {r.label: r.rss_kb for r in runs},
        "peak_ratio": peak_ratio,
        "flagged": flagged,
    }


def count_flagged(store: ClockStore) -> int:
    from sqlalchemy import func, select

    from bot.models import SlaClock

    with store.database.read_session() as session:
        return int(
            session.scalar(
                select(func.count(SlaClock.id)).where(SlaClock.id.in_(store.due), SlaClock.warned_at.is_not(None))
            )
            or 0
        )


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "a smoke run: 10k vs 100k clocks, 100 deadlines over 20 s")
    parser.add_argument("--small", type=int, help="open clocks of the small database (default 10,000)")
    parser.add_argument("--large", type=int, help="open clocks of the large one (default 1,000,000; quick 100,000)")
    parser.add_argument("--reps", type=int, help="timed ticks per size (default 30; quick 8)")
    parser.add_argument("--deadlines", type=int, help="deadlines (and owners) of part 2 (default 1,000; quick 100)")
    parser.add_argument("--spread", type=float, help="seconds the deadlines are spread over (default 120; quick 20)")
    parser.add_argument("--no-burst", action="store_true", help="skip part 2 with every deadline at one instant")
    parser.add_argument("--managers", type=int, default=10, help="managers of the generated owners (default 10)")
    parser.add_argument("--lead-in", type=float, default=3.0, help="seconds from the start to the first deadline")
    parser.add_argument("--memory-seconds", type=float, help="seconds each clock process runs (default 20; quick 6)")
    parser.add_argument("--only", default="tick,breach,memory", help="parts to run, comma-separated")
    parser.add_argument("--database-url", help="a PostgreSQL URL to use instead of SQLite files (tables emptied)")
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached databases under bench/results/")
    parser.add_argument("--no-cache", action="store_true", help="build every database in a temporary directory")
    args = parser.parse_args(argv)
    args.small = args.small or 10_000
    args.large = args.large or (100_000 if args.quick else 1_000_000)
    args.reps = args.reps or (8 if args.quick else 30)
    args.deadlines = args.deadlines or (100 if args.quick else 1_000)
    args.spread = (20.0 if args.quick else 120.0) if args.spread is None else args.spread
    args.memory_seconds = args.memory_seconds or (6.0 if args.quick else 20.0)
    args.managers = min(args.managers, args.deadlines)
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    if args.database_url and is_sqlite(args.database_url):
        parser.error("--database-url is for PostgreSQL; SQLite databases are built by the benchmark")
    if args.small < DUE or args.large < DUE:
        parser.error(f"each size needs at least {DUE} clocks")

    recorder = LogRecorder()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger().addHandler(recorder)

    from bot.config import parse_alignment

    alignment = parse_alignment(example_data(), source=str(CONFIG))
    owners = [p.email for p in alignment.people]
    log_line(f"SLA clock benchmark ({'quick' if args.quick else 'full'}); {benchlib.machine()}")
    log_line(f"database: {args.database_url.split('@')[-1] if args.database_url else 'SQLite files'}")
    wall = time.perf_counter()
    problems: list[str] = []
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sla-clock-") as tmp:
        workdir = Path(tmp)
        large: ClockStore | None = None
        if "breach" in parts:
            results["breach"] = bench_breach(args, workdir, recorder, problems, spread=args.spread)
            if not args.no_burst:
                results["burst"] = bench_breach(args, workdir, recorder, problems, spread=0.0)
        if "tick" in parts:
            results["tick"], large = bench_tick(args, alignment, owners, workdir, problems)
        if "memory" in parts:
            results["memory"] = bench_memory(args, owners, large, workdir, problems)
        elif large is not None:
            large.database.dispose()
    elapsed = time.perf_counter() - wall
    log_line(f"\n{elapsed:.1f}s in all")
    for problem in problems[:30]:
        log_line(f"PROBLEM: {problem}")
    benchlib.save_results(
        "sla_clock",
        {
            "settings": {k: v for k, v in vars(args).items() if k != "database_url"}
            | {"database": "postgresql" if args.database_url else "sqlite"},
            **results,
            "elapsed_s": elapsed,
            "problems": problems,
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
