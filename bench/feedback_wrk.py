"""Benchmark: ``/feedback`` through the real server against a bare Bolt app, loaded by ``wrk -t1 -c8``.

The issue's own measure of the ``/feedback`` guard: the servers of ``feedback_capture.py`` (its
``--serve bare|alignbot``: alignbot's real WSGI application, and a bare ``slack_bolt.App`` whose
listener only acks, on the same framework and gunicorn), each **one worker of 8 threads**, loaded
in alternating rounds by ``wrk -t1 -c8 --latency`` (a C load generator: it takes far less of the
two shared cores than the Python clients of ``feedback_capture.py``). Every request is the same
really signed slash command, signed at the start of each round (Slack's signature stays valid
for five minutes). Medians over rounds: requests/s, p50, p99, and alignbot / bare.

Goal: alignbot / bare throughput no lower than 0.58x; alignbot's p99 under 100 ms.
Checked: no answer other than 2xx and no connection error on either side (an answer slower than
wrk's 2 s timeout is counted and shown, not a failure); on alignbot's, one feedback row per request
answered (up to 8 more: those in flight when wrk stopped).

Needs ``wrk`` (Debian and Ubuntu: ``apt-get install wrk``).

    python bench/feedback_wrk.py            # 5 rounds of 10 s per side
    python bench/feedback_wrk.py --quick    # 1 round of 2 s
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
import feedback_capture
import httpbench

SERVERS = Path(feedback_capture.__file__).resolve()
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}
_LATENCY = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s|m)\s*$")


def lua_script(body: str, headers: dict[str, str]) -> str:
    """wrk's script: POST ``body`` with ``headers``, every request alike."""

    def quoted(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines = ['wrk.method = "POST"', f"wrk.body = {quoted(body)}"]
    lines += [f"wrk.headers[{quoted(name)}] = {quoted(value)}" for name, value in headers.items()]
    return "\n".join(lines) + "\n"


def run_wrk(port: int, seconds: float, script: Path) -> dict[str, Any]:
    """One round of ``wrk -t1 -c8 --latency``: requests, requests/s, p50 and p99 (ms), non-2xx answers."""
    command = ["wrk", "-t1", "-c8", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script)]
    out = subprocess.run([*command, f"http://127.0.0.1:{port}/slack/events"], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"wrk failed:\n{out.stdout}{out.stderr}")
    figures: dict[str, Any] = {"non_2xx": 0, "errors": "", "timeouts": 0}
    for line in out.stdout.splitlines():
        if m := _LATENCY.match(line):
            figures[f"p{m.group(1)}_ms"] = float(m.group(2)) * _UNITS[m.group(3)]
        elif m := re.match(r"^\s*(\d+) requests in", line):
            figures["requests"] = int(m.group(1))
        elif line.startswith("Requests/sec:"):
            figures["rps"] = float(line.split()[1])
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            figures["non_2xx"] = int(line.split(":")[1])
        elif m := re.match(r"^\s*Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", line):
            connect, read, write, timeout = (int(g) for g in m.groups())
            figures["timeouts"] = timeout  # an answer slower than wrk's 2 s: a latency, not a failure
            if connect or read or write:
                figures["errors"] = line.strip()
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "one round of 2 s per side")
    parser.add_argument("--rounds", type=int, help="rounds per side (default 5; quick 1)")
    parser.add_argument("--seconds", type=float, help="length of a round (default 10; quick 2)")
    parser.add_argument("--database-url", help="run alignbot on this database (its feedback and outbox emptied)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk)", file=sys.stderr)
        return 2
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (2.0 if args.quick else 10.0)
    args.workers, args.threads = 1, 8  # the shape: one worker of 8 threads

    from sqlalchemy import func, select

    from bot.config import load_alignment
    from bot.demo import slack_signing as signing
    from bot.demo.fakeslack import FakeSlack
    from bot.models import FeedbackItem

    user = next(p.slack_id for p in load_alignment(httpbench.CONFIG).people if p.team == "sales")
    results: dict[str, list[dict[str, Any]]] = {kind: [] for kind in httpbench.KINDS}
    problems: list[str] = []
    with tempfile.TemporaryDirectory(prefix="alignbot-wrk-") as tmp, FakeSlack() as fake:
        workdir = Path(tmp)
        database_url, database = httpbench.prepare_database(
            args.database_url, workdir, ("outbox", "feedback", "channel_pace")
        )
        fake.enforce_rate_limit(1.0)
        body = signing.command_body(
            "/feedback",
            "pricing [Acme Corp]: they say we are 20% over",
            user_id=user,
            channel_id="C0DEALS",
            response_url=fake.response_url(),
        )
        with httpbench.running(SERVERS, args, workdir, fake.url, database_url) as servers:
            print(
                f"gunicorn gthread, 1 worker x 8 threads per side; wrk -t1 -c8, {rounds} round(s) of "
                f"{seconds:g}s per side; {benchlib.machine()}",
                flush=True,
            )
            for number in range(rounds + 1):  # round 0: the warm-up, unmeasured
                for kind in httpbench.KINDS:
                    script = workdir / "feedback.lua"
                    headers = {**signing.sign(httpbench.SIGNING_SECRET, body)}
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                    script.write_text(lua_script(body, headers), encoding="utf-8")
                    figures = run_wrk(servers[kind].port, seconds if number else 1, script)
                    if figures["non_2xx"] or figures["errors"]:
                        problems.append(f"{kind}: {figures['non_2xx']} answers not 2xx; {figures['errors']}")
                    if kind == "alignbot":
                        figures["expected_rows"] = figures["requests"]
                    if number:
                        results[kind].append(figures)
                        print(
                            f"  round {number} {kind:8}: {figures['requests']} requests, {figures['rps']:.0f} req/s, "
                            f"p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms, "
                            f"{figures['timeouts']} over wrk's 2 s timeout",
                            flush=True,
                        )
                    else:
                        results.setdefault(f"warm-{kind}", []).append(figures)
            time.sleep(0.5)
        with database.read_session() as session:
            rows = session.scalar(select(func.count(FeedbackItem.id))) or 0
        database.dispose()
        answered = sum(r["requests"] for key, rs in results.items() if key.endswith("alignbot") for r in rs)
        if not answered <= rows <= answered + 8 * (rounds + 1):
            problems.append(f"{rows} feedback rows for {answered} requests answered")
        problems += httpbench.scan_logs(servers.values()).problems()

    summary = {
        kind: {name: benchlib.median(r[name] for r in results[kind]) for name in ("rps", "p50_ms", "p99_ms")}
        for kind in httpbench.KINDS
    }
    ratio = benchlib.ratio(summary["alignbot"]["rps"], summary["bare"]["rps"])
    rows_out = [
        [label, summary[kind]["rps"], summary[kind]["p50_ms"], summary[kind]["p99_ms"]]
        for label, kind in (("bare Bolt (ack only)", "bare"), ("alignbot", "alignbot"))
    ]
    rows_out.append(["alignbot / bare", ratio, "", ""])
    rows_out.append(["goal", ">= 0.58", "", "alignbot < 100"])
    print()
    print(f"/feedback under wrk -t1 -c8, 1 worker x 8 threads: medians over {rounds} round(s) of {seconds:g}s")
    print(benchlib.table(["", "req/s", "p50 ms", "p99 ms"], rows_out))
    met = ratio >= 0.58 and summary["alignbot"]["p99_ms"] < 100
    print(f"goal (>= 0.58x, alignbot's p99 under 100 ms): {'met' if met else 'NOT met'}; {rows} feedback rows stored")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        "feedback_wrk", {"rounds": rounds, "seconds": seconds, "summary": summary, "ratio": ratio, "problems": problems}
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
