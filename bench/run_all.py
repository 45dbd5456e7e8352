"""Run every benchmark, one after the other, in full or with ``--quick``.

    python bench/run_all.py            # full runs on SQLite (about a quarter of an hour in all)
    python bench/run_all.py --quick    # smoke runs (a few seconds to a minute each)
    python bench/run_all.py --quick --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench

With ``--database-url`` (a PostgreSQL database the benchmarks may empty), the burst runs on it
too, and so does the mixed load, which runs on PostgreSQL alone (without it, it is skipped).
Each benchmark prints its own table; this script prints how each ended and exits non-zero
when one of them found a correctness problem or failed to run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "crm_burst.py",
    "feedback_capture.py",
    "feedback_wrk.py",
    "outbox_relay.py",
    "crm_ingest.py",
    "crm_import.py",
    "business_time.py",
    "attribution.py",
    "sla_clock.py",
)
#: Run again on the ``--database-url`` database when there is one (PostgreSQL).
ON_POSTGRESQL = ("crm_burst.py", "mixed_load.py")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every alignbot benchmark.")
    parser.add_argument("--quick", action="store_true", help="smoke runs of a few seconds each")
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds after which a benchmark is stopped")
    parser.add_argument("--database-url", help="a PostgreSQL database for the burst and the mixed load (emptied)")
    args = parser.parse_args(argv)
    runs: list[tuple[str, list[str]]] = [(name, []) for name in BENCHMARKS]
    if shutil.which("wrk") is None:
        print("feedback_wrk.py skipped: wrk is not installed (apt-get install wrk)", flush=True)
        runs = [run for run in runs if run[0] != "feedback_wrk.py"]
    if args.database_url:
        runs += [(name, ["--database-url", args.database_url]) for name in ON_POSTGRESQL]
    else:
        print("mixed_load.py skipped: it runs on PostgreSQL (--database-url)", flush=True)
    outcomes: list[tuple[str, str, float]] = []
    for name, extra in runs:
        command = [sys.executable, str(HERE / name), *(["--quick"] if args.quick else []), *extra]
        print(f"=== {' '.join([name, *command[2:]])}", flush=True)
        began = time.perf_counter()
        # Its own process group, so a benchmark stopped on time takes its servers down with it.
        process = subprocess.Popen(command, start_new_session=True)
        try:
            status = process.wait(timeout=args.timeout)
            outcome = "ok" if status == 0 else f"exit status {status}"
        except (subprocess.TimeoutExpired, KeyboardInterrupt) as exc:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            if isinstance(exc, KeyboardInterrupt):
                raise
            outcome = f"stopped after {args.timeout:.0f}s"
        outcomes.append((f"{name}{' (PostgreSQL)' if extra else ''}", outcome, time.perf_counter() - began))
        print(flush=True)
    print("=== summary")
    for name, outcome, seconds in outcomes:
        print(f"{name:32} {outcome:24} {seconds:6.1f}s")
    return 0 if all(outcome == "ok" for _, outcome, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
