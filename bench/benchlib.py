"""Small helpers shared by the benchmarks: options, statistics, timing, free ports, tables, result files,
and where this checkout keeps the fake Slack, the signing helper and the outbox relay.

The standard library at import: the benchmarks import it as a sibling module (``python bench/x.py``
puts ``bench/`` on ``sys.path``).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import socket
import statistics
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).with_name("results")


def parser(doc: str | None, quick_help: str) -> argparse.ArgumentParser:
    """The command line of a benchmark: described by its docstring's first paragraph, with ``--quick``."""
    result = argparse.ArgumentParser(description=doc.split("\n\n")[0] if doc else None)
    result.add_argument("--quick", action="store_true", help=quick_help)
    return result


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct`` percentile (0-100) by the nearest-rank method; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Iterable[float]) -> float:
    """The median, ignoring NaNs; NaN when nothing is left."""
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``, NaN when the denominator is zero or NaN."""
    if not denominator or math.isnan(denominator) or math.isnan(numerator):
        return math.nan
    return numerator / denominator


def medians_by_kind(
    results: Iterable[Any], kinds: Iterable[str], figures: Sequence[str]
) -> dict[str, dict[str, float]]:
    """For each kind, the median of each figure (an attribute of the results) over its results (``.kind``)."""
    results = list(results)
    return {
        kind: {name: median(getattr(r, name) for r in results if r.kind == kind) for name in figures} for kind in kinds
    }


def time_interleaved(calls: Mapping[str, Callable[[], object]], rounds: int, per: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each of ``calls`` (a call's time divided by ``per``), one value per round.

    Every call runs once unmeasured first (a warm-up); then the calls take turns within each round,
    so a noisy moment of the machine touches them all alike.
    """
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    clock = time.perf_counter
    for _ in range(rounds):
        for name, call in calls.items():
            began = clock()
            call()
            times[name].append((clock() - began) / per)
    return times


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the caller binds it soon after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port`` within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def fmt(value: Any, digits: int = 2) -> str:
    """A table cell: floats rounded, NaN shown as ``-``."""
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (it reads fine in a terminal and pastes into the README)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = [
        "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |",
        "| " + " | ".join("-" * w for w in widths) + " |",
    ]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in cells]
    return "\n".join(lines)


def machine() -> str:
    """One line describing where the figures come from."""
    return (
        f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} CPU(s), {platform.system()}"
    )


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (kB) of a live process, from ``/proc`` (empty once it has gone; Linux only).

    For a child's peak memory, poll this while it runs: ``ru_maxrss`` of a forked and exec'd child
    keeps the forking parent's high-water mark, so it would show the benchmark's own size.
    """
    found: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as handle:
            for line in handle:
                name, _, value = line.partition(":")
                if name in {"VmRSS", "VmHWM"}:
                    found[name] = int(value.split()[0])
    except OSError:
        pass
    return found


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live descendant of it (children of every thread, recursively); Linux only."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):  # a thread that ended meanwhile has no children file
                todo += [int(child) for child in (task / "children").read_text().split()]
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live descendants, from ``/proc``.

    Read before and after a measurement, it says what the work cost a server (gunicorn's arbiter,
    its workers and their threads) whatever else shares the machine's cores. NaN when ``/proc``
    cannot tell. A descendant that exits within the measurement takes its CPU with it.
    """
    ticks = 0
    seen = False
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        seen = True
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK") if seen else math.nan


def json_record(line: str) -> dict[str, Any] | None:
    """A JSON log line of alignbot's services as a dict (``level``, ``logger``, ``message``,
    ``exception``...), or None for a line that is not one (text written before logging was set up)."""
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def save_results(name: str, data: dict[str, Any]) -> Path:
    """Write ``bench/results/<name>.json`` (ignored by git) and return its path."""
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {"benchmark": name, "machine": machine(), "at": time.strftime("%Y-%m-%d %H:%M:%S"), **data}
    path.write_text(json.dumps(payload, indent=2, default=str) + "\n", encoding="utf-8")
    return path


# --- where this checkout keeps what the benchmarks borrow ------------------------------------------
# The fake Slack and the signing helper live in the demo's package (``bot/demo/``) and the relay
# beside the Slack client (``bot/slack/``); an older checkout has them in ``bot/``. Each is looked
# up here, once, so that a benchmark runs against either.
