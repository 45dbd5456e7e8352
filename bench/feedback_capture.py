"""Benchmark: ``/feedback`` quick capture through the production HTTP server, against a bare Bolt app.

Both sides run as ``bot.server.serve`` (gunicorn, gthread workers, the same options, bound to
127.0.0.1): alignbot with its real WSGI application (``bot.server.build_wsgi``: Flask, Bolt's
Flask adapter, the middleware, the listener, SQLite, the outbox relay thread of each worker),
and the baseline with the app factory swapped for a bare ``slack_bolt.App`` (same signing
secret, same client, ``process_before_response=True``) whose ``/feedback`` listener only calls
``ack()``, on the same framework: a Flask app whose one route hands the request to Bolt's
Flask adapter. Client threads send really signed slash commands over keep-alive
connections; rounds alternate (bare, alignbot, bare, alignbot...) and the table reports medians
over rounds and the alignbot/bare ratios.

Correctness is checked while measuring: every alignbot answer must be HTTP 200 with the
ephemeral confirmation, the database must hold one feedback row (and one outbox row) per
request answered, and the posts the fake Slack received must be distinct, known items.

    python bench/feedback_capture.py            # full run (about a minute)
    python bench/feedback_capture.py --quick    # smoke run (a few seconds)
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
import httpbench

CONFIG = httpbench.CONFIG
SECRET = httpbench.SIGNING_SECRET
KINDS = httpbench.KINDS
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
COMPARISON = httpbench.Comparison("rps", "req/s", "bare Bolt (ack only)", (">= 0.58", "", "alignbot < 100 ms", ""))


# --- the servers (run in subprocesses: ``--serve bare|alignbot``) -------------------------------


def build_bare_wsgi(env: Any) -> Any:
    """The baseline: a bare Bolt app whose ``/feedback`` listener only acks, served as bolt-python's
    Flask example serves one (a Flask route handing the request to the same adapter alignbot uses)."""
    from flask import Flask, Response, request
    from slack_bolt import Ack, App
    from slack_bolt.adapter.flask import SlackRequestHandler

    from bot.app import web_client

    app = App(signing_secret=env.slack_signing_secret, client=web_client(env), process_before_response=True)

    @app.command("/feedback")
    def feedback(ack: Ack) -> None:
        ack()

    handler = SlackRequestHandler(app)
    web = Flask("bare")

    @web.post("/slack/events")
    def slack_events() -> Response:
        return handler.handle(request)

    return web


# --- the clients --------------------------------------------------------------------------------


def check_alignbot(status: int, data: bytes, size: int) -> tuple[bool, int | None]:
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


def check_bare(status: int, data: bytes, size: int) -> tuple[bool, int | None]:
    return status == 200, None


CHECKS: dict[str, httpbench.Check] = {"bare": check_bare, "alignbot": check_alignbot}


def commands(kind: str, users: list[str], response_url: str) -> Callable[[int], httpbench.Request]:
    """The n-th request of a round: a ``/feedback`` command from a sales rep, signed now."""
    from bot.demo import slack_signing as signing

    def next_request(n: int) -> httpbench.Request:
        body = signing.command_body(
            "/feedback",
            f"{TEXTS[n % len(TEXTS)]} ({kind} {n})",
            user_id=users[n % len(users)],
            channel_id="C0DEALS",
            response_url=response_url,
        )
        headers = {**signing.sign(SECRET, body), "Content-Type": "application/x-www-form-urlencoded"}
        return httpbench.Request(body.encode(), headers)

    return next_request


def report_round(number: int, kind: str, result: httpbench.RoundResult) -> None:
    print(
        f"  round {number} {kind:8}: {result.requests} requests in {result.seconds:.2f}s = "
        f"{result.rps:.0f} req/s, {result.latency_note()}",
        flush=True,
    )


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "a smoke run of a few seconds")
    httpbench.add_round_options(parser)
    parser.add_argument("--clients", type=int, default=8, help="concurrent keep-alive client threads (default 8)")
    httpbench.add_server_options(parser)
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per side first (default 1; quick 0.3)")
    parser.add_argument(
        "--database-url",
        help="run alignbot on this database instead of a temporary SQLite file, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/test (its feedback and outbox tables are emptied first)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        httpbench.serve_main(args.serve, args.workers, args.threads, build_bare_wsgi)
        return 0
    rounds, seconds, warmup = httpbench.round_settings(args)

    from sqlalchemy import func, select

    from bot.config import load_alignment
    from bot.demo.fakeslack import FakeSlack
    from bot.models import FeedbackItem, OutboxMessage

    alignment = load_alignment(CONFIG)
    users = [p.slack_id for p in alignment.people if p.slack_id and p.team == "sales"]
    voc = alignment.channels.voice_of_customer
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alignbot-bench-") as tmp, FakeSlack() as fake:
        workdir = Path(tmp)
        database_url, database = httpbench.prepare_database(
            args.database_url, workdir, ("outbox", "feedback", "channel_pace")
        )
        fake.enforce_rate_limit(1.0)
        with httpbench.running(__file__, args, workdir, fake.url, database_url) as servers:
            print(
                f"gunicorn gthread, {args.workers} workers x {args.threads} threads per side; "
                f"{args.clients} keep-alive clients; {rounds} round(s) of {seconds:g}s per side; "
                f"{benchlib.machine()}",
                flush=True,
            )

            def measure(kind: str, round_seconds: float) -> httpbench.RoundResult:
                return httpbench.run_round(
                    kind,
                    servers[kind].port,
                    path="/slack/events",
                    seconds=round_seconds,
                    clients=args.clients,
                    next_request=commands(kind, users, fake.response_url()),
                    check=CHECKS[kind],
                    server_pid=servers[kind].process.pid,
                    client=args.client,
                )

            warm, results = httpbench.alternate(measure, report_round, warmup=warmup, rounds=rounds, seconds=seconds)

        # --- correctness ---
        every = warm + results
        alignbot_rounds = [res for res in every if res.kind == "alignbot"]
        alignbot_sent = sum(res.requests for res in alignbot_rounds)
        alignbot_ok = sum(res.ok for res in alignbot_rounds)
        bare_bad = sum(len(res.bad) for res in every if res.kind == "bare")
        item_ids = [i for res in alignbot_rounds for i in res.notes]
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
        logs = httpbench.scan_logs(servers.values())
        problems += logs.problems()

    elapsed = time.perf_counter() - wall
    summary = benchlib.medians_by_kind(results, KINDS, ("rps", "p50_ms", "p99_ms", "client_cpu"))
    ratios = COMPARISON.ratios(summary)
    title = f"/feedback quick capture over HTTP: medians over {rounds} round(s) of {seconds:g}s per side"
    COMPARISON.print_table(title, summary, ratios)
    print(
        f"correctness: {alignbot_ok}/{alignbot_sent} confirmations, {rows} feedback rows, {outbox_rows} outbox rows; "
        f"VOC posts delivered during the run: {len(posts)} ({delivered_rows} marked delivered, "
        f"{outbox_rows - delivered_rows} still queued), 429s from the fake: {fake.rate_limited}; "
        f"{len(logs.warnings)} warning line(s) in the server logs"
    )
    if logs.warnings:
        print(f"first warning: {logs.warnings[0]}")
    verdict = "met" if ratios["throughput"] >= 0.58 and summary["alignbot"]["p99_ms"] < 100 else "NOT met"
    print(f"goal (>= 0.58x the bare app's throughput, alignbot's p99 under 100 ms): {verdict}; {elapsed:.0f}s in all")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        "feedback_capture",
        {
            "settings": vars(args) | {"rounds": rounds, "seconds": seconds, "warmup": warmup},
            "summary": summary,
            "ratios": ratios,
            "rounds": [
                {"kind": r.kind, "sent": r.requests, "rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms}
                for r in results
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
