"""Run every benchmark, one after the other, in full or with ``--quick``.

    python bench/run_all.py            # full runs (about ten minutes in all; the import of a million events ~3.5)
    python bench/run_all.py --quick    # smoke runs (a few seconds each)

Each benchmark prints its own table; this script prints how each ended and exits non-zero
when one of them found a correctness problem or failed to run.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = (
    "feedback_capture.py",
    "outbox_relay.py",
    "crm_ingest.py",
    "crm_import.py",
    "business_time.py",
    "sla_clock.py",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every alignbot benchmark.")
    parser.add_argument("--quick", action="store_true", help="smoke runs of a few seconds each")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds after which a benchmark is stopped")
    args = parser.parse_args(argv)
    outcomes: list[tuple[str, str, float]] = []
    for name in BENCHMARKS:
        command = [sys.executable, str(HERE / name), *(["--quick"] if args.quick else [])]
        print(f"=== {name}{' --quick' if args.quick else ''}", flush=True)
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
        outcomes.append((name, outcome, time.perf_counter() - began))
        print(flush=True)
    print("=== summary")
    for name, outcome, seconds in outcomes:
        print(f"{name:22} {outcome:24} {seconds:6.1f}s")
    return 0 if all(outcome == "ok" for _, outcome, _ in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
