"""Benchmark: ``alignbot import`` of CRM history, from 100,000 to 1,000,000 events: events/s, and peak memory.

Issue 3 asks for events per second and peak memory of an import of 1,000,000 events, with memory
flat as the file grows. For each size an NDJSON file of history is written (``crm_ingest.py``'s
cycle of twenty events about one account: hand-offs, first contacts, touches, a closed-won deal),
its CRM times spread over the past 120 days, as a backfill is. Then the real command,
``python -m bot.cli import FILE``, imports it into a new SQLite file, migrated first, while its
peak RSS (``VmHWM``) is polled from ``/proc``. The smallest file is then imported again into the
same database: every event a duplicate (the idempotent path).

**Baseline, in the same run:** reading the same file line by line and decoding each line's JSON,
in-process: the floor of any importer of that file. alignbot validates each event, stores it, and
applies it (folds into leads, touches and deals, SLA clocks, win posts) as the endpoint does.

**Goal:** peak memory of the largest file / the smallest at ~1 (flat: the file is streamed).

**Checked** (a failure prints ``PROBLEM:`` and exits 1): each import exits 0 and reports every
event of a new file accepted (of the re-import, every one a duplicate); the database then holds
one ``crm_events`` row per event and none unapplied.

    python bench/crm_import.py            # 100,000 and 1,000,000 events (about 3.5 minutes here)
    python bench/crm_import.py --quick    # 5,000 and 20,000 events (about 10 s)
    python bench/crm_import.py --sizes 50000,200000
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
import crm_ingest

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "alignment.example.toml"
HISTORY = dt.timedelta(days=120)
_REPORTED_RATE = re.compile(r"\(([\d,]+) events/s\)")
_COUNT = re.compile(r"^\s+(accepted|duplicates|ignored|skipped)\s+([\d,]+)\s", re.MULTILINE)


class HistoryFactory(crm_ingest.EventFactory):
    """``crm_ingest``'s events, with CRM times spread evenly over the past :data:`HISTORY`."""

    LEAD = HISTORY

    def __init__(self, prefix: str, size: int) -> None:
        super().__init__(prefix)
        self.STEP = HISTORY / max(size, 1)


def write_history(path: Path, size: int) -> int:
    """Write ``size`` events to ``path`` as NDJSON; returns the file's size in bytes."""
    factory = HistoryFactory(f"i{size}", size)
    with path.open("w", encoding="utf-8") as handle:
        for _ in range(size):
            handle.write(json.dumps(factory.next()) + "\n")
    return path.stat().st_size


def decode_rate(path: Path) -> float:
    """Events/s of the baseline: every line of the file read and its JSON decoded."""
    began = time.perf_counter()
    lines = 0
    with path.open("rb") as handle:
        for line in handle:
            json.loads(line)
            lines += 1
    return lines / (time.perf_counter() - began)


@dataclass
class ImportRun:
    label: str
    events: int
    seconds: float = 0.0  # wall time of the command, start-up included
    peak_kb: int = 0
    exit_status: int | None = None
    counts: dict[str, int] = field(default_factory=dict)
    reported: str = ""  # the command's own "N events in T (R events/s)" line

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")

    @property
    def own_rate(self) -> float:
        """The rate the command reports: its events over its import's time (start-up left out)."""
        found = _REPORTED_RATE.search(self.reported)
        return float(found.group(1).replace(",", "")) if found else float("nan")


def run_import(label: str, path: Path, events: int, database_url: str, log_path: Path) -> ImportRun:
    """``python -m bot.cli import path`` as a user runs it, its peak RSS polled every 50 ms."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ALIGNBOT_"))},
        "DATABASE_URL": database_url,
        "ALIGNBOT_CONFIG": str(CONFIG),
    }
    run = ImportRun(label, events)
    with log_path.open("w", encoding="utf-8") as log:
        began = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, "-m", "bot.cli", "import", str(path)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        assert process.stdout is not None
        output: list[str] = []
        reader = _drain(process.stdout, output)
        while process.poll() is None:
            run.peak_kb = max(run.peak_kb, benchlib.proc_status(process.pid).get("VmHWM", 0))
            time.sleep(0.05)
        run.seconds = time.perf_counter() - began
        reader.join()
        run.exit_status = process.returncode
    text = "".join(output)
    run.counts = {name: int(count.replace(",", "")) for name, count in _COUNT.findall(text)}
    run.reported = next((line for line in text.splitlines() if " events in " in line), "").strip()
    return run


def _drain(stream: Any, into: list[str]) -> Any:
    """Read ``stream`` to its end in a thread (the command's summary), so the pipe never fills."""
    import threading

    thread = threading.Thread(target=lambda: into.append(stream.read()), daemon=True)
    thread.start()
    return thread


def log_problems(run: ImportRun, log_path: Path) -> list[str]:
    """Error lines and tracebacks the command wrote to its standard error (its progress goes there too)."""
    found = [
        line
        for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        if " ERROR " in line or line.startswith("Traceback")
    ]
    return [f"{run.label}: {len(found)} error line(s) in {log_path.name}, first: {found[0][:200]}"] if found else []


def stored(database_url: str) -> tuple[int, int]:
    """(crm_events rows, rows not applied) of the database."""
    from sqlalchemy import func, select

    from bot.db import Database
    from bot.models import CrmEvent

    database = Database.from_url(database_url)
    try:
        with database.read_session() as session:
            rows = session.scalar(select(func.count(CrmEvent.id))) or 0
            waiting = session.scalar(select(func.count(CrmEvent.id)).where(CrmEvent.applied_at.is_(None))) or 0
    finally:
        database.dispose()
    return int(rows), int(waiting)


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "5,000 and 20,000 events")
    parser.add_argument("--sizes", help="comma-separated event counts, smallest first (default 100000,1000000)")
    args = parser.parse_args(argv)
    text = args.sizes or ("5000,20000" if args.quick else "100000,1000000")
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        parser.error(f"--sizes: expected comma-separated numbers, got {text!r}")
    if len(sizes) < 2 or sizes[0] < 20:
        parser.error("--sizes: give two different sizes or more, each of 20 events or more (one cycle)")
    # Stopped (run_all's timeout sends SIGTERM): unwind, so the files of history are deleted.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    from bot.db import Database

    print(f"alignbot import of NDJSON history (the past {HISTORY.days} days), SQLite; {benchlib.machine()}")
    problems: list[str] = []
    runs: list[ImportRun] = []
    baseline: dict[int, float] = {}
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alignbot-bench-") as tmp:
        workdir = Path(tmp)
        urls: dict[int, str] = {}
        files: dict[int, Path] = {}
        for size in sizes:
            files[size] = workdir / f"history-{size}.ndjson"
            began = time.perf_counter()
            size_bytes = write_history(files[size], size)
            print(
                f"  {size:,} events: {size_bytes / 1e6:.0f} MB written in {time.perf_counter() - began:.1f}s",
                flush=True,
            )
            baseline[size] = decode_rate(files[size])
            urls[size] = f"sqlite:///{workdir / f'alignbot-{size}.db'}"
            database = Database.from_url(urls[size])
            database.upgrade()
            database.dispose()
            run = run_import(f"{size:,} new", files[size], size, urls[size], workdir / f"import-{size}.log")
            runs.append(run)
            print(f"  {run.label}: {run.reported or '(no summary)'}; peak RSS {run.peak_kb / 1024:.1f} MB", flush=True)
            if run.exit_status != 0 or run.counts.get("accepted") != size:
                problems.append(f"import of {size:,} new events: exit {run.exit_status}, counts {run.counts}")
            rows, waiting = stored(urls[size])
            if rows != size or waiting:
                problems.append(f"after the import of {size:,}: {rows:,} crm_events rows, {waiting:,} not applied")
            problems += log_problems(run, workdir / f"import-{size}.log")
            if size != sizes[0]:  # only the smallest is imported again: the rest need not fill the disk
                files[size].unlink()
                Path(urls[size].removeprefix("sqlite:///")).unlink()
        smallest = sizes[0]
        again = run_import(
            f"{smallest:,} again", files[smallest], smallest, urls[smallest], workdir / "import-again.log"
        )
        runs.append(again)
        print(f"  {again.label}: {again.reported or '(no summary)'}; peak RSS {again.peak_kb / 1024:.1f} MB")
        if again.exit_status != 0 or again.counts.get("duplicates") != smallest:
            problems.append(f"re-import of {smallest:,} events: exit {again.exit_status}, counts {again.counts}")
        if stored(urls[smallest])[0] != smallest:
            problems.append("the re-import stored events a second time")
        problems += log_problems(again, workdir / "import-again.log")

    rows = []
    for run in runs:
        floor = baseline[run.events]
        ratio = benchlib.ratio(run.own_rate, floor)
        rows.append([run.label, run.own_rate, run.rate, run.seconds, floor, ratio, run.peak_kb / 1024, run.exit_status])
    print()
    print(
        benchlib.table(
            [
                "import",
                "events/s",
                "events/s with start-up",
                "seconds",
                "baseline events/s (read + decode)",
                "ratio",
                "peak RSS MB",
                "exit",
            ],
            rows,
        )
    )
    largest = max(sizes)
    new_runs = {run.events: run for run in runs[: len(sizes)]}
    memory_ratio = benchlib.ratio(new_runs[largest].peak_kb, new_runs[smallest].peak_kb)
    print()
    print(
        f"peak RSS {largest:,} / {smallest:,} events: {memory_ratio:.2f} "
        f"(goal ~1, flat: {'met' if memory_ratio <= 1.10 else 'NOT met'}); {time.perf_counter() - wall:.0f}s in all"
    )
    benchlib.save_results(
        "crm_import",
        {
            "sizes": sizes,
            "runs": [
                vars(run) | {"rate": run.own_rate, "rate_with_start_up": run.rate, "baseline": baseline[run.events]}
                for run in runs
            ],
            "memory_ratio": memory_ratio,
            "problems": problems,
        },
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
