"""Benchmark: ``/feedback`` quick capture through the production HTTP server, against a bare Bolt app.

Both sides run as ``bot.server.serve`` (gunicorn, gthread workers, the same options, bound to
127.0.0.1): alignbot with its real WSGI application (``bot.server.build_wsgi``: Bolt, the
middleware, the listener, SQLite, the outbox relay thread of each worker), and the baseline
with the app factory swapped for a bare ``slack_bolt.App`` (same signing secret, same client,
``process_before_response=True``) whose ``/feedback`` listener only calls ``ack()``, behind the
same ``SlackRequestHandler``. Client threads send really signed slash commands over keep-alive
connections; rounds alternate (bare, alignbot, bare, alignbot...) and the table reports medians
over rounds and the alignbot/bare ratios.

Correctness is checked while measuring: every alignbot answer must be HTTP 200 with the
ephemeral confirmation, the database must hold one feedback row (and one outbox row) per
request answered, and the posts the fake Slack received must be distinct, known items.

    python bench/feedback_capture.py            # full run (about a minute)
    python bench/feedback_capture.py --quick    # smoke run (a few seconds)
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib

REPO = Path(__file__).resolve().parent.parent
CONFIG = REPO / "alignment.example.toml"
SECRET = "bench-signing-secret"
TOKEN = "xoxb-bench-token"
KINDS = ("bare", "alignbot")
# Quick-capture texts as reps type them (categories, accounts and competitors of the example config).
TEXTS = (
    "pricing [Acme Corp]: they say we are 20% over",
    "competitor [Initech]: evaluating Globex too, demo next week",
    "objection [Hooli]: security review takes them 3 months",
    "product gap: no SSO on the starter plan",
    "messaging [Umbrella]: the new deck confuses their CFO",
    "praise [Acme Corp]: the onboarding call was great",
)
_ITEM_ID = re.compile(r"^#(\d+)")


# --- the servers (run in subprocesses: ``--serve bare|alignbot``) -------------------------------


def build_bare_wsgi(env: Any) -> Any:
    """The baseline: a bare Bolt app whose ``/feedback`` listener only acks, behind the same adapter."""
    from slack_bolt import Ack, App
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    from bot.app import web_client

    app = App(signing_secret=env.slack_signing_secret, client=web_client(env), process_before_response=True)

    @app.command("/feedback")
    def feedback(ack: Ack) -> None:
        ack()

    return SlackRequestHandler(app)


def serve_main(kind: str, workers: int, threads: int) -> None:
    """Run ``bot.server.serve`` on 127.0.0.1:$PORT, with the real or the bare app factory."""
    import bot.server
    from bot.cli import _setup_logging
    from bot.config import Environment

    _setup_logging()  # the logging ``alignbot web`` sets up: one INFO line per request
    _exit_with_parent()
    env = Environment.from_environ()
    if kind == "bare":
        # Same gunicorn and the same options (serve() builds them); only the WSGI app differs.
        bot.server.build_wsgi = build_bare_wsgi
    bot.server.serve(env, workers=workers, threads=threads, bind=f"127.0.0.1:{env.port}")


def _exit_with_parent() -> None:
    """Stop this gunicorn (gracefully, by SIGTERM to itself) if the benchmark dies without stopping it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    # A thread of the arbiter only: the workers are forked from its main thread and don't inherit it.
    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


@dataclass
class Server:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_server(kind: str, *, workdir: Path, api_url: str, database_url: str, workers: int, threads: int) -> Server:
    port = benchlib.free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ALIGNBOT_"))},
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": api_url,
        "DATABASE_URL": database_url,
        "ALIGNBOT_CONFIG": str(CONFIG),
        "PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        "PYTHONUNBUFFERED": "1",
    }
    log_path = workdir / f"{kind}.log"
    with log_path.open("wb") as log:
        command = [sys.executable, str(Path(__file__).resolve()), "--serve", kind]
        command += ["--workers", str(workers), "--threads", str(threads)]
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    server = Server(kind, port, process, log_path)
    if not benchlib.wait_for_port(port, 30) or process.poll() is not None:
        server.stop()
        raise SystemExit(f"the {kind} server did not start; see its log:\n{log_path.read_text()[-3000:]}")
    return server


# --- the clients --------------------------------------------------------------------------------


@dataclass
class RoundResult:
    kind: str
    sent: int
    seconds: float
    latencies: list[float]
    ok: int
    bad: list[str] = field(default_factory=list)
    item_ids: list[int] = field(default_factory=list)
    client_cpu: float = float("nan")  # CPU seconds of this process (the clients) per wall second

    @property
    def rps(self) -> float:
        return self.sent / self.seconds if self.seconds else float("nan")

    @property
    def p50_ms(self) -> float:
        return benchlib.percentile(self.latencies, 50) * 1000

    @property
    def p99_ms(self) -> float:
        return benchlib.percentile(self.latencies, 99) * 1000


def check_alignbot(status: int, data: bytes) -> tuple[bool, int | None]:
    """Whether the answer is the ephemeral confirmation of a captured item, and the item's id."""
    if status != 200:
        return False, None
    try:
        payload = json.loads(data)
    except ValueError:
        return False, None
    if payload.get("response_type") != "ephemeral" or "Thanks!" not in str(payload.get("text")):
        return False, None
    item_id = None
    for block in payload.get("blocks") or []:
        for element in block.get("elements") or []:
            match = _ITEM_ID.match(str(element.get("text", "")))
            if match:
                item_id = int(match.group(1))
    return item_id is not None, item_id


def check_bare(status: int, data: bytes) -> tuple[bool, int | None]:
    return status == 200, None


def run_round(
    kind: str, port: int, *, seconds: float, clients: int, response_url: str, users: list[str]
) -> RoundResult:
    """Send signed ``/feedback`` commands from ``clients`` keep-alive connections for ``seconds``.

    Every client sends its next request as soon as it has the answer to the last one (a closed
    loop), so the rate measured is what the server sustains with that many requests in flight.
    """
    from bot.slack_signing import command_body, sign

    check: Callable[[int, bytes], tuple[bool, int | None]] = check_alignbot if kind == "alignbot" else check_bare
    tickets = itertools.count()  # next() on a count is atomic under the GIL
    per_client: list[list[float]] = [[] for _ in range(clients)]
    oks = [0] * clients
    bads: list[list[str]] = [[] for _ in range(clients)]
    ids: list[list[int]] = [[] for _ in range(clients)]
    sent = [0] * clients
    start = threading.Barrier(clients + 1)
    deadline = [float("inf")]

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
        connection.connect()
        start.wait()
        while True:
            n = next(tickets)
            if time.perf_counter() > deadline[0]:
                break
            body = command_body(
                "/feedback",
                f"{TEXTS[n % len(TEXTS)]} ({kind} {n})",
                user_id=users[n % len(users)],
                channel_id="C0DEALS",
                response_url=response_url,
            )
            headers = {**sign(SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
            sent[index] += 1
            began = time.perf_counter()
            try:
                connection.request("POST", "/slack/events", body.encode(), headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException) as exc:
                bads[index].append(f"{type(exc).__name__}: {exc}")
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=15)
                continue
            per_client[index].append(time.perf_counter() - began)
            good, item_id = check(response.status, data)
            if good:
                oks[index] += 1
                if item_id is not None:
                    ids[index].append(item_id)
            elif len(bads[index]) < 5:
                bads[index].append(f"HTTP {response.status}: {data[:200]!r}")
            else:
                bads[index].append(f"HTTP {response.status}")
        connection.close()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    cpu_began = time.process_time()
    deadline[0] = began + seconds
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - began
    cpu = time.process_time() - cpu_began
    return RoundResult(
        kind=kind,
        sent=sum(sent),
        seconds=seconds,
        latencies=[lat for lats in per_client for lat in lats],
        ok=sum(oks),
        bad=[b for bs in bads for b in bs],
        item_ids=[i for chunk in ids for i in chunk],
        client_cpu=cpu / seconds if seconds else float("nan"),
    )


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds")
    parser.add_argument("--rounds", type=int, help="rounds per side (default 5; quick 1)")
    parser.add_argument("--seconds", type=float, help="length of a round (default 4; quick 1)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive client threads (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers, both sides (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker, both sides (default 4)")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per side first (default 1; quick 0.3)")
    parser.add_argument(
        "--database-url",
        help="run alignbot on this database instead of a temporary SQLite file, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/test (its feedback and outbox tables are emptied first)",
    )
    parser.add_argument("--serve", choices=KINDS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_main(args.serve, args.workers, args.threads)
        return 0
    rounds = args.rounds or (1 if args.quick else 5)
    seconds = args.seconds or (1.0 if args.quick else 4.0)
    warmup = args.warmup if args.warmup is not None else (0.3 if args.quick else 1.0)

    from sqlalchemy import func, select

    from bot.config import load_alignment
    from bot.db import Database
    from bot.fakeslack import FakeSlack
    from bot.models import FeedbackItem, OutboxMessage

    alignment = load_alignment(CONFIG)
    users = [p.slack_id for p in alignment.people if p.slack_id and p.team == "sales"]
    voc = alignment.channels.voice_of_customer
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alignbot-bench-") as tmp, FakeSlack() as fake:
        workdir = Path(tmp)
        database_url = args.database_url or f"sqlite:///{workdir / 'alignbot.db'}"
        database = Database.from_url(database_url)
        database.upgrade()
        if args.database_url:
            from sqlalchemy import text

            with database.engine.begin() as connection:
                connection.execute(text("DELETE FROM outbox"))
                connection.execute(text("DELETE FROM feedback"))
                connection.execute(text("DELETE FROM channel_pace"))
        fake.enforce_rate_limit(1.0)
        servers: dict[str, Server] = {}
        results: list[RoundResult] = []
        try:
            for kind in KINDS:
                servers[kind] = start_server(
                    kind,
                    workdir=workdir,
                    api_url=fake.url,
                    database_url=database_url,
                    workers=args.workers,
                    threads=args.threads,
                )
            print(
                f"gunicorn gthread, {args.workers} workers x {args.threads} threads per side; "
                f"{args.clients} keep-alive clients; {rounds} round(s) of {seconds:g}s per side; "
                f"{benchlib.machine()}",
                flush=True,
            )
            warm: list[RoundResult] = []
            for kind in KINDS:
                warm.append(
                    run_round(
                        kind,
                        servers[kind].port,
                        seconds=warmup,
                        clients=args.clients,
                        response_url=fake.response_url(),
                        users=users,
                    )
                )
            for r in range(rounds):
                for kind in KINDS:
                    result = run_round(
                        kind,
                        servers[kind].port,
                        seconds=seconds,
                        clients=args.clients,
                        response_url=fake.response_url(),
                        users=users,
                    )
                    results.append(result)
                    print(
                        f"  round {r + 1} {kind:8}: {result.sent} requests in {result.seconds:.2f}s = "
                        f"{result.rps:.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                        f"client CPU {result.client_cpu:.0%}, {len(result.bad)} bad",
                        flush=True,
                    )
        finally:
            for server in servers.values():
                server.stop()

        # --- correctness ---
        every = warm + results
        alignbot_rounds = [res for res in every if res.kind == "alignbot"]
        alignbot_sent = sum(res.sent for res in alignbot_rounds)
        alignbot_ok = sum(res.ok for res in alignbot_rounds)
        bare_bad = sum(len(res.bad) for res in every if res.kind == "bare")
        item_ids = [i for res in alignbot_rounds for i in res.item_ids]
        with database.session() as session:
            rows = session.scalar(select(func.count(FeedbackItem.id))) or 0
            outbox_rows = session.scalar(select(func.count(OutboxMessage.id))) or 0
            delivered_rows = (
                session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.delivered_at.is_not(None))) or 0
            )
        database.dispose()
        posts = fake.posts(voc)
        post_keys = [((p.body.get("metadata") or {}).get("event_payload") or {}).get("key") for p in posts]
        known_keys = {f"feedback:{i}" for i in item_ids}
        problems: list[str] = []
        if alignbot_ok != alignbot_sent:
            samples = [b for res in alignbot_rounds for b in res.bad][:5]
            problems.append(f"{alignbot_sent - alignbot_ok} alignbot answers were not the confirmation: {samples}")
        if bare_bad:
            problems.append(f"{bare_bad} bare answers were not HTTP 200")
        if rows != alignbot_sent:
            problems.append(f"the database holds {rows} feedback rows for {alignbot_sent} requests sent")
        if outbox_rows != rows:
            problems.append(f"{outbox_rows} outbox rows for {rows} feedback rows")
        if len(set(item_ids)) != len(item_ids):
            problems.append("two confirmations named the same item id")
        if len(set(post_keys)) != len(post_keys):
            problems.append(f"{len(post_keys) - len(set(post_keys))} VOC posts were sent twice")
        if not set(post_keys) <= known_keys:
            problems.append("the fake received posts for items nobody captured")
        log_errors: list[str] = []
        log_warnings: list[str] = []
        for server in servers.values():
            lines = server.log_path.read_text(errors="replace").splitlines()
            log_errors += [line for line in lines if " ERROR " in line or line.startswith("Traceback")]
            log_warnings += [line for line in lines if " WARNING " in line]
        if log_errors:
            problems.append(f"{len(log_errors)} error line(s) in the server logs, first: {log_errors[0]}")

    elapsed = time.perf_counter() - wall
    summary: dict[str, dict[str, float]] = {}
    for kind in KINDS:
        mine = [res for res in results if res.kind == kind]
        summary[kind] = {
            "rps": benchlib.median(res.rps for res in mine),
            "p50_ms": benchlib.median(res.p50_ms for res in mine),
            "p99_ms": benchlib.median(res.p99_ms for res in mine),
            "client_cpu": benchlib.median(res.client_cpu for res in mine),
        }
    throughput_ratio = benchlib.ratio(summary["alignbot"]["rps"], summary["bare"]["rps"])
    p99_ratio = benchlib.ratio(summary["alignbot"]["p99_ms"], summary["bare"]["p99_ms"])
    p50_ratio = benchlib.ratio(summary["alignbot"]["p50_ms"], summary["bare"]["p50_ms"])
    print()
    print(f"/feedback quick capture over HTTP: medians over {rounds} round(s) of {seconds:g}s per side")
    rows_out = []
    for label, kind in (("bare Bolt (ack only)", "bare"), ("alignbot", "alignbot")):
        figures = summary[kind]
        rows_out.append([label, figures["rps"], figures["p50_ms"], figures["p99_ms"], f"{figures['client_cpu']:.0%}"])
    rows_out.append(["alignbot / bare", throughput_ratio, p50_ratio, p99_ratio, ""])
    rows_out.append(["goal", ">= 0.70", "", "< 1.50", ""])
    print(benchlib.table(["", "req/s", "p50 ms", "p99 ms", "client CPU"], rows_out))
    print()
    print(
        f"correctness: {alignbot_ok}/{alignbot_sent} confirmations, {rows} feedback rows, {outbox_rows} outbox rows; "
        f"VOC posts delivered during the run: {len(posts)} ({delivered_rows} marked delivered, "
        f"{outbox_rows - delivered_rows} still queued), 429s from the fake: {fake.rate_limited}; "
        f"{len(log_warnings)} warning line(s) in the server logs"
    )
    if log_warnings:
        print(f"first warning: {log_warnings[0]}")
    verdict = "met" if throughput_ratio >= 0.7 and p99_ratio < 1.5 else "NOT met"
    print(f"goal (>= 0.70x throughput, p99 < 1.5x): {verdict}; {elapsed:.0f}s in all")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        "feedback_capture",
        {
            "settings": vars(args) | {"rounds": rounds, "seconds": seconds, "warmup": warmup},
            "summary": summary,
            "ratios": {"throughput": throughput_ratio, "p50": p50_ratio, "p99": p99_ratio},
            "rounds": [
                {"kind": r.kind, "sent": r.sent, "rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms} for r in results
            ],
            "correctness": {
                "sent": alignbot_sent,
                "confirmed": alignbot_ok,
                "feedback_rows": rows,
                "outbox_rows": outbox_rows,
                "posts_delivered": len(posts),
                "rate_limited": fake.rate_limited,
                "problems": problems,
            },
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
