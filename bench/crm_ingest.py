"""Benchmark: ``POST /crm/events`` through the production HTTP server: what an event costs it.

alignbot runs as ``bot.server.serve`` (gunicorn, gthread workers, bound to 127.0.0.1) with its
real WSGI application (``bot.server.build_wsgi``: the signature check, CloudEvents validation, the
one ``INSERT`` that stores the events, each worker's projector thread that applies them: folds into
leads, touches and deals, SLA clocks, win posts in the outbox; and its relay thread).

1. **Single events**: client threads send one signed ``application/cloudevents+json`` event per
   request over keep-alive connections (lead hand-offs, first contacts and touches, one closed-won
   deal in twenty on an account with a few touches). Per round: events/s, p50, p99, and the
   **server CPU per event**: the CPU of the server's process tree over the round and its catch-up
   (after each round the benchmark waits, untimed, until the projector has applied every event
   the round stored), over the events. That CPU figure is the one to watch: the throughput and
   latencies move with whatever else the machine runs.
2. **Batches** of 1,000 events (``application/cloudevents-batch+json``): new events, then the
   same batches sent again (every event a duplicate: the idempotent path), and, for the
   transport's ceiling, a bare endpoint on the same kind of bodies: the same gunicorn and options
   with the app swapped for a WSGI function that reads the body, checks its signature with
   ``bot.crm_signature.verify`` and answers 202.

Correctness is checked while measuring: every alignbot answer must be 202 with the counts
expected (``accepted`` 1 for a single event, 1,000 for a new batch, ``duplicates`` 1,000 for a
re-sent one), and afterwards the database must hold exactly one ``crm_events`` row per event
sent, none unapplied, one deal per closed-won event and a queued win post for every deal above
the digest line.

    python bench/crm_ingest.py            # full run (about a minute)
    python bench/crm_ingest.py --quick    # smoke run (a few seconds)
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib
import httpbench

REPO = httpbench.REPO
CONFIG = httpbench.CONFIG
SECRET = "bench-webhook-secret"
PATH = "/crm/events"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
SOURCE = "https://northwind.example.my.salesforce.com"

SALES = (
    "ava.ross@northwind.example",
    "ben.okafor@northwind.example",
    "chloe.park@northwind.example",
    "diego.alvarez@northwind.example",
)
MARKETING = ("priya.nair@northwind.example", "sam.weber@northwind.example", "lena.fischer@northwind.example")
STAGES = ("MQL", "MQL", "SQL", "Lead")
TOUCH_KINDS = ("webinar", "content", "email", "ad", "web", "event")
CAMPAIGNS = ("Q4 data summit", "ELT guide", "Nurture: warehouse", "Retargeting EU", "Pricing page", "Partner webinar")
# Amounts cycle so that one closed-won deal in four is under ``wins.digest_below`` (5,000): a digest win.
AMOUNTS = (("48000", "USD"), ("12500.50", "EUR"), ("3200", "USD"), ("250000", "USD"))
DIGEST_BELOW = 5000
CONFIG_WINS = "C0WINS"  # channels.wins of the example config

# One cycle of twenty events, all about one account: 6 hand-offs, 5 first contacts, 8 touches
# (4 on the account, 4 on an account without a deal), then the account's deal closes won.
H, C, T, W = "lead.handed_off", "lead.contacted", "touch.recorded", "deal.closed_won"
CYCLE = (H, T, C, H, T, C, H, T, C, T, H, T, C, H, T, C, T, H, T, W)
ON_ACCOUNT_TOUCHES = {1, 4, 7, 9}
ON_ACCOUNT_LEADS = {0, 6, 13}


# --- the events ---------------------------------------------------------------------------------


class EventFactory:
    """CloudEvents as a CRM sends them, in cycles of twenty (see ``CYCLE``); thread-safe.

    Ids are unique per factory (``prefix``) and per run. CRM times are live, as a CRM sends its
    events as they happen: they advance ``STEP`` an event from ``LEAD`` before the factory was
    made, never past the moment an event is made, so a deal's touches are older than its close,
    as in life. (They once started two days ago, which made the figures depend on the hour of
    the run: after the hand-offs' deadlines every uncontacted lead was flagged red as it was
    applied, a backfill's work and not a live stream's.)
    """

    LEAD = dt.timedelta(minutes=10)
    STEP = dt.timedelta(milliseconds=10)

    def __init__(self, prefix: str) -> None:
        self.prefix = f"{prefix}{uuid.uuid4().hex[:6]}"
        self._numbers = itertools.count()  # next() on a count is atomic under the GIL
        self._base = dt.datetime.now(dt.UTC) - self.LEAD
        self._lock = threading.Lock()
        self.deals: list[tuple[str, float]] = []  # (deal_id, amount) of every closed-won event made
        self.counts: Counter[str] = Counter()  # events made, by type

    def next(self) -> dict[str, Any]:
        return self.make(next(self._numbers))

    def batch(self, size: int) -> list[dict[str, Any]]:
        with self._lock:  # consecutive numbers, so a batch holds whole cycles
            numbers = [next(self._numbers) for _ in range(size)]
        return [self.make(n) for n in numbers]

    def make(self, n: int) -> dict[str, Any]:
        cycle, pos = divmod(n, len(CYCLE))
        kind = CYCLE[pos]
        p = self.prefix
        account = f"{p}-A{cycle}"
        contact = f"cto@a{cycle}.{p}.example"
        when = min(self._base + self.STEP * n, dt.datetime.now(dt.UTC))
        data: dict[str, Any]
        if kind == H:
            data = {
                "lead_id": f"{p}-L{cycle}-{pos}",
                "owner_email": SALES[n % len(SALES)],
                "stage": STAGES[n % len(STAGES)],
                "name": f"Lead {cycle}-{pos}",
                "company": f"Account {cycle}",
                "campaign": CAMPAIGNS[n % len(CAMPAIGNS)],
                "score": 60 + n % 40,
                "grade": "A",
            }
            if pos in ON_ACCOUNT_LEADS:
                data["account_id"] = account
        elif kind == C:
            handed = max(i for i in range(pos) if CYCLE[i] == H)  # the hand-off just before
            data = {"lead_id": f"{p}-L{cycle}-{handed}", "by_email": SALES[n % len(SALES)]}
        elif kind == T:
            on_account = pos in ON_ACCOUNT_TOUCHES
            data = {
                "touch_id": f"{p}-T{cycle}-{pos}",
                "account_id": account if on_account else f"{account}-nodeal",
                "campaign": CAMPAIGNS[n % len(CAMPAIGNS)],
                "kind": TOUCH_KINDS[n % len(TOUCH_KINDS)],
                "marketing_owner_email": MARKETING[n % len(MARKETING)],
            }
            if on_account and pos == 1:
                data["contact_email"] = contact
        else:
            amount, currency = AMOUNTS[cycle % len(AMOUNTS)]
            deal_id = f"{p}-D{cycle}"
            data = {
                "deal_id": deal_id,
                "name": f"Account {cycle} - platform",
                "account_id": account,
                "amount": amount,
                "currency": currency,
                "owner_email": SALES[cycle % len(SALES)],
                "sdr_email": SALES[(cycle + 1) % len(SALES)],
                "contacts": [{"email": contact, "role": "champion"}],
                "lead_ids": [f"{p}-L{cycle}-{i}" for i in sorted(ON_ACCOUNT_LEADS)],
            }
            with self._lock:
                self.deals.append((deal_id, float(amount)))
        with self._lock:
            self.counts[kind] += 1
        return {
            "specversion": "1.0",
            "id": f"{p}-{n}",
            "source": SOURCE,
            "type": kind,
            "time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "datacontenttype": "application/json",
            "data": data,
        }


def signed(body: bytes, content_type: str) -> dict[str, str]:
    from bot.crm_signature import HEADER, sign

    return {"Content-Type": content_type, HEADER: sign(SECRET, body)}


# --- the bare endpoint (run in a subprocess: ``--serve bare``) ----------------------------------


def build_bare_wsgi(env: Any) -> Any:
    """The transport's ceiling: read the body, verify its signature, answer 202. Nothing else."""
    from bot.crm_signature import HEADER, verify

    secrets = env.webhook_secrets
    header_key = "HTTP_" + HEADER.upper().replace("-", "_")
    accepted = b'{"accepted": 0}'
    refused = b'{"error": "bad signature"}'

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        body = environ["wsgi.input"].read(int(length) if length.isdigit() else -1)
        if verify(secrets, environ.get(header_key), body) is None:
            status, data = "202 Accepted", accepted
        else:
            status, data = "401 Unauthorized", refused
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return app


# --- the clients --------------------------------------------------------------------------------


# (body, content type, events in it, label for the breakdown by type) -> a request signed now
def signed_request(body: bytes, content_type: str, size: int, label: str) -> httpbench.Request:
    return httpbench.Request(body, signed(body, content_type), size, label)


def expect(accepted: int | None, duplicates: int = 0) -> httpbench.Check:
    """An answer check: 202 with these counts (``accepted`` None: any 202, the bare endpoint; -1: all)."""

    def check(status: int, data: bytes, size: int) -> tuple[bool, None]:
        if status != 202:
            return False, None
        if accepted is None:
            return True, None
        try:
            payload = json.loads(data)
        except ValueError:
            return False, None
        want = {"accepted": size if accepted < 0 else accepted, "duplicates": duplicates, "ignored": 0}
        return payload == want, None

    return check


Source = Callable[[int], httpbench.Request]


def single_source(factory: EventFactory) -> Source:
    """One event a request, each signed just before it is sent, as a CRM does."""

    def next_request(_n: int) -> httpbench.Request:
        event = factory.next()
        return signed_request(json.dumps(event).encode(), STRUCTURED, 1, str(event["type"]))

    return next_request


def batch_source(factory: EventFactory, size: int, keep: list[bytes] | None) -> Source:
    """New batches; each body is also appended to ``keep`` (to be re-sent as duplicates)."""

    def next_request(_n: int) -> httpbench.Request:
        body = json.dumps(factory.batch(size)).encode()
        if keep is not None:
            keep.append(body)  # list.append is atomic under the GIL
        return signed_request(body, BATCH, size, "batch")

    return next_request


def resend_source(bodies: list[bytes], size: int) -> Source:
    """The batches already sent, again and again in turn (re-signed each time): all duplicates."""
    snapshot = list(bodies)
    turns: Iterator[int] = itertools.cycle(range(len(snapshot)))
    lock = threading.Lock()

    def next_request(_n: int) -> httpbench.Request:
        with lock:
            body = snapshot[next(turns)]
        return signed_request(body, BATCH, size, "duplicates")

    return next_request


def report_round(label: str, result: httpbench.RoundResult, unit: str = "events") -> None:
    print(
        f"  {label:28}: {result.requests} requests, {result.events} {unit} in {result.seconds:.2f}s = "
        f"{result.events_per_s:.0f} {unit}/s, {result.latency_note()}",
        flush=True,
    )


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "a smoke run of a few seconds")
    httpbench.add_round_options(parser, "single-event ")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds first (default 1; quick 0.3)")
    parser.add_argument("--clients", type=int, default=8, help="keep-alive clients for single events (default 8)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (default 1000, the maximum)")
    parser.add_argument("--batch-rounds", type=int, help="rounds of each batch run (default 3; quick 1)")
    parser.add_argument("--batch-seconds", type=float, help="length of a batch round (default 3; quick 1)")
    parser.add_argument("--batch-clients", type=int, default=2, help="keep-alive clients for batches (default 2)")
    httpbench.add_server_options(parser)
    parser.add_argument(
        "--database-url",
        help="run alignbot on this database instead of a temporary SQLite file, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/bench (its CRM, domain and outbox tables are emptied first)",
    )
    args = parser.parse_args(argv)
    if args.serve:
        httpbench.serve_main(args.serve, args.workers, args.threads, build_bare_wsgi)
        return 0
    rounds, seconds, warmup = httpbench.round_settings(args)
    batch_rounds = args.batch_rounds or (1 if args.quick else 3)
    batch_seconds = args.batch_seconds or (1.0 if args.quick else 3.0)
    size = args.batch_size

    from sqlalchemy import func, select

    from bot.demo.fakeslack import FakeSlack
    from bot.models import CrmEvent, Deal, Lead, OutboxMessage, Touch

    factory = EventFactory("s")  # single events
    batch_factories = {"bare": EventFactory("x"), "alignbot": EventFactory("b")}
    sent_batches: list[bytes] = []
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alignbot-bench-") as tmp, FakeSlack() as fake:
        workdir = Path(tmp)
        database_url, database = httpbench.prepare_database(
            args.database_url,
            workdir,
            ("crm_events", "leads", "touches", "deals", "sla_clocks", "outbox", "channel_pace"),
        )
        fake.enforce_rate_limit(1.0)
        webhook_env = {"ALIGNBOT_WEBHOOK_SECRET": SECRET}
        with httpbench.running(__file__, args, workdir, fake.url, database_url, webhook_env) as servers:
            pid = servers["alignbot"].process.pid
            print(
                f"gunicorn gthread, {args.workers} workers x {args.threads} threads; "
                f"{'SQLite' if database.is_sqlite else database.engine.dialect.name}; {benchlib.machine()}",
                flush=True,
            )
            print(f"single events: {args.clients} keep-alive clients, {rounds} round(s) of {seconds:g}s", flush=True)

            def measure(
                label: str, side: str, source: Source, check: httpbench.Check, round_seconds: float, clients: int
            ) -> httpbench.RoundResult:
                return httpbench.run_round(
                    label,
                    servers[side].port,
                    path=PATH,
                    seconds=round_seconds,
                    clients=clients,
                    next_request=source,
                    check=check,
                    timeout=60,
                    sample=300,
                    server_pid=servers[side].process.pid,
                    client=args.client,
                )

            def unapplied() -> int:
                with database.read_session() as session:
                    return session.scalar(select(func.count()).where(CrmEvent.applied_at.is_(None))) or 0

            def settle(result: httpbench.RoundResult) -> tuple[float, float]:
                """Untimed, after an alignbot round: wait until every event it stored is applied.

                Returns the seconds that took and the server's CPU per event over the round and that
                catch-up, in microseconds (NaN for a round that stored nothing).
                """
                cpu_began = benchlib.tree_cpu_seconds(pid)
                began = time.perf_counter()
                while unapplied() and time.perf_counter() - began < 300:
                    time.sleep(0.01)
                took = time.perf_counter() - began
                cpu = result.server_cpu_ms * result.requests / 1000 + benchlib.tree_cpu_seconds(pid) - cpu_began
                return took, benchlib.ratio(cpu * 1e6, result.events)

            def report_catch_up(took: float, cpu_us: float) -> None:
                print(
                    f"  {'':28}  every event applied {took:.2f}s after the round; "
                    f"server CPU {cpu_us:.0f} us/event, applying included",
                    flush=True,
                )

            warm = [measure("single", "alignbot", single_source(factory), expect(1), warmup, args.clients)]
            settle(warm[-1])
            singles: list[httpbench.RoundResult] = []
            cpu_per_event: dict[str, list[float]] = {"single": [], "bare-batch": [], "batch": [], "duplicates": []}
            catch_ups: dict[str, list[float]] = {"single": [], "batch": []}
            for r in range(rounds):
                result = measure("single", "alignbot", single_source(factory), expect(1), seconds, args.clients)
                singles.append(result)
                report_round(f"round {r + 1} single", result)
                took, cpu_us = settle(result)
                catch_ups["single"].append(took)
                cpu_per_event["single"].append(cpu_us)
                report_catch_up(took, cpu_us)

            print(
                f"batches of {size}: {args.batch_clients} keep-alive clients, {batch_rounds} round(s) of "
                f"{batch_seconds:g}s per run (bare, new events, the same batches re-sent)",
                flush=True,
            )
            new_batches = batch_source(batch_factories["alignbot"], size, sent_batches)
            warm.append(measure("batch", "alignbot", new_batches, expect(-1), warmup, args.batch_clients))
            settle(warm[-1])
            batches: list[httpbench.RoundResult] = []
            for r in range(batch_rounds):
                runs: tuple[tuple[str, str, Source, httpbench.Check], ...] = (
                    ("bare-batch", "bare", batch_source(batch_factories["bare"], size, None), expect(None)),
                    ("batch", "alignbot", batch_source(batch_factories["alignbot"], size, sent_batches), expect(-1)),
                    ("duplicates", "alignbot", resend_source(sent_batches, size), expect(0, size)),
                )
                for label, side, source, check in runs:
                    result = measure(label, side, source, check, batch_seconds, args.batch_clients)
                    batches.append(result)
                    report_round(f"round {r + 1} {label}", result)
                    if label == "bare-batch":
                        cpu_us = benchlib.ratio(result.server_cpu_ms * result.requests * 1000, result.events)
                        cpu_per_event[label].append(cpu_us)
                        continue
                    if label == "batch":
                        # Stored, not applied yet, at the end of the round: what the projector left for later.
                        print(f"  {'':28}  {unapplied()} events stored, not yet applied", flush=True)
                    took, cpu_us = settle(result)
                    if label == "batch":
                        catch_ups["batch"].append(took)
                        report_catch_up(took, cpu_us)
                    else:
                        cpu_us = benchlib.ratio(result.server_cpu_ms * result.requests * 1000, result.events)
                    cpu_per_event[label].append(cpu_us)

        # --- correctness ---
        every = warm + singles + batches
        problems: list[str] = []
        for res in every:
            if res.ok != res.requests:
                problems.append(
                    f"{res.requests - res.ok} of {res.requests} {res.kind} answers were not as expected: {res.bad[:3]}"
                )
        single_sent = sum(res.requests for res in every if res.kind == "single")
        batch_sent = sum(res.requests for res in every if res.kind == "batch") * size
        expected_events = single_sent + batch_sent
        made = factory.counts + batch_factories["alignbot"].counts
        deals_made = factory.deals + batch_factories["alignbot"].deals
        big = {deal_id for deal_id, amount in deals_made if amount >= DIGEST_BELOW}
        small = {deal_id for deal_id, amount in deals_made if amount < DIGEST_BELOW}
        with database.read_session() as session:
            events_rows = session.scalar(select(func.count(CrmEvent.id))) or 0
            distinct_rows = (
                session.scalar(
                    select(func.count()).select_from(select(CrmEvent.source, CrmEvent.event_id).distinct().subquery())
                )
                or 0
            )
            left = session.scalar(select(func.count()).where(CrmEvent.applied_at.is_(None))) or 0
            leads = session.scalar(select(func.count()).select_from(Lead)) or 0
            touches = session.scalar(select(func.count()).select_from(Touch)) or 0
            deal_rows = {row.deal_id: row for row in session.scalars(select(Deal))}
            win_posts = set(session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "win.post")))
            journeys = set(session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "win.journey")))
            outbox_rows = session.scalar(select(func.count(OutboxMessage.id))) or 0
            won = sum(1 for d in deal_rows.values() if d.status == "won")
            posted = {d.deal_id for d in deal_rows.values() if d.announced_as == "post"}
            digested = {d.deal_id for d in deal_rows.values() if d.announced_as == "digest"}
        database.dispose()
        if events_rows != expected_events:
            problems.append(
                f"the database holds {events_rows} crm_events rows for {expected_events} events sent "
                f"({single_sent} single, {batch_sent} in new batches)"
            )
        if distinct_rows != events_rows:
            problems.append(f"{events_rows - distinct_rows} crm_events rows repeat a (source, id)")
        if left:
            problems.append(f"{left} events stored were never applied")
        if leads != made[H]:
            problems.append(f"{leads} leads for {made[H]} hand-offs sent")
        if touches != made[T]:
            problems.append(f"{touches} touches for {made[T]} touch events sent")
        if set(deal_rows) != big | small or won != len(deal_rows):
            problems.append(f"{len(deal_rows)} deals ({won} won) for {len(big | small)} closed-won events sent")
        if posted != big or digested != small:
            problems.append(
                f"{len(big - posted)} big wins not announced, {len(small - digested)} small wins not in the digest"
            )
        if win_posts != {f"win:{d}" for d in big} or journeys != {f"win:{d}:journey" for d in big}:
            problems.append(
                f"{len(win_posts)} win posts and {len(journeys)} journeys queued for {len(big)} wins over the line"
            )
        logs = httpbench.scan_logs(servers.values())
        problems += logs.problems(exceptions=5)
        wins_delivered = len(fake.posts(CONFIG_WINS))

    elapsed = time.perf_counter() - wall
    summary = benchlib.medians_by_kind(
        singles + batches,
        ("single", "bare-batch", "batch", "duplicates"),
        ("events_per_s", "p50_ms", "p99_ms", "client_cpu"),
    )
    cpu = {kind: benchlib.median(values) for kind, values in cpu_per_event.items()}
    catch_up = {kind: benchlib.median(values) for kind, values in catch_ups.items()}
    rows = [
        [
            label,
            summary[kind]["events_per_s"],
            summary[kind]["p50_ms"],
            summary[kind]["p99_ms"],
            f"{cpu[kind]:.0f}" if kind in cpu else "",
            f"{catch_up[kind]:.2f}" if kind in catch_up else "",
        ]
        for label, kind in (
            ("single events (one a request)", "single"),
            (f"batches of {size}, bare endpoint (read, verify, 202)", "bare-batch"),
            (f"batches of {size}, new events", "batch"),
            (f"batches of {size}, re-sent (all duplicates)", "duplicates"),
        )
    ]
    print()
    print(
        f"medians over {rounds} single round(s) of {seconds:g}s and {batch_rounds} batch round(s) of {batch_seconds:g}s"
    )
    print(
        benchlib.table(
            ["", "events/s", "p50 ms", "p99 ms", "server CPU us/event", "applied s after"],
            rows,
        )
    )
    print(
        "server CPU: the server's process tree (workers, their projector and relay threads) over the round "
        "and, for new events, until every one was applied; the figure to compare across runs"
    )
    print()
    print(
        f"correctness: {events_rows} crm_events rows for {expected_events} events sent ({single_sent} single, "
        f"{batch_sent} in new batches), {left} unapplied; {leads} leads, {touches} touches, {len(deal_rows)} deals "
        f"({len(posted)} announced, {len(digested)} for the digest); {outbox_rows} outbox rows "
        f"({wins_delivered} posts reached the fake's wins channel, 429s: {fake.rate_limited}); "
        f"{len(logs.warnings)} warning line(s) in the server logs; {elapsed:.0f}s in all"
    )
    if logs.warnings:
        print(f"first warning: {logs.warnings[0]}")
    for problem in problems:
        print(f"PROBLEM: {problem}")
    benchlib.save_results(
        "crm_ingest",
        {
            "settings": vars(args)
            | {
                "rounds": rounds,
                "seconds": seconds,
                "warmup": warmup,
                "batch_rounds": batch_rounds,
                "batch_seconds": batch_seconds,
                "database": "sqlite" if not args.database_url else args.database_url,
            },
            "summary": summary,
            "server_cpu_us_per_event": cpu,
            "catch_up_s": catch_ups,
            "correctness": {
                "events_sent": expected_events,
                "crm_events_rows": events_rows,
                "unapplied": left,
                "leads": leads,
                "touches": touches,
                "deals": len(deal_rows),
                "outbox_rows": outbox_rows,
                "problems": problems,
            },
        },
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
