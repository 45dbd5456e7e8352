"""Benchmark: ``POST /crm/events`` through the production HTTP server, against a bare signed endpoint.

Both sides run as ``bot.server.serve`` (gunicorn, gthread workers, the same options, bound to
127.0.0.1): alignbot with its real WSGI application (``bot.server.build_wsgi``: the router, the
signature check, CloudEvents validation, storage, the folds into leads, touches and deals, the
win announcements in the outbox, the relay thread of each worker), and the baseline with the app
factory swapped for a bare WSGI function that only reads the body, checks its signature with
``bot.crm_signature.verify`` and answers 202.

1. **Single events**: client threads send one signed ``application/cloudevents+json`` event per
   request over keep-alive connections (mostly lead hand-offs, first contacts and touches, one
   closed-won deal in twenty on an account with a few touches), in alternating rounds (bare,
   alignbot, bare, alignbot...). Medians over rounds: events/s, p50, p99, alignbot/bare.
2. **Batches** of 1,000 events (``application/cloudevents-batch+json``): new events, then the
   same batches sent again (every event a duplicate: the idempotent path), and the bare endpoint
   on the same kind of bodies for the transport's ceiling.

After every alignbot round the benchmark waits, untimed, until the projector has applied every
event the round stored (so that catch-up does not fall in the bare side's next round), and
prints how long that took, the projector's CPU per event, and the rate the round's events were
stored *and* applied (its events over the round plus its catch-up).

Correctness is checked while measuring: every alignbot answer must be 202 with the counts
expected (``accepted`` 1 for a single event, 1,000 for a new batch, ``duplicates`` 1,000 for a
re-sent one), and afterwards the database must hold exactly one ``crm_events`` row per event
sent, one deal per closed-won event and a queued win post for every deal above the digest line.

``--baseline store`` sets alignbot against a bare endpoint that also decodes and stores each
event in a SQLite file (``build_store_wsgi``): the floor of any webhook whose 202 means "stored".

    python bench/crm_ingest.py            # full run (about 95 s)
    python bench/crm_ingest.py --quick    # smoke run (a few seconds)
    python bench/crm_ingest.py --profile single   # cProfile of the handler in-process (or: batch)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import os
import re
import sqlite3
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
KINDS = httpbench.KINDS
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


# --- the servers (run in subprocesses: ``--serve bare|alignbot``) -------------------------------


#: The environment variable that tells a ``--serve bare`` server which baseline to be, and where
#: the ``store`` baseline's SQLite file is.
BASELINE_VARIABLE, STORE_VARIABLE = "BENCH_CRM_BASELINE", "BENCH_CRM_STORE"
BASELINES = {
    "verify": "bare (read, verify, 202)",
    "store": "store (read, verify, decode, insert, 202)",
}
_STORE_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS events (source TEXT NOT NULL, id TEXT NOT NULL, type TEXT NOT NULL, "
    "time TEXT NOT NULL, data TEXT NOT NULL, PRIMARY KEY (source, id))"
)


def build_bare_wsgi(env: Any) -> Any:
    """The baseline the run compares with (``--baseline``): ``verify`` by default, else ``store``."""
    if os.environ.get(BASELINE_VARIABLE) == "store":
        return build_store_wsgi(env, os.environ[STORE_VARIABLE])
    return build_verify_wsgi(env)


def build_verify_wsgi(env: Any) -> Any:
    """The issue's baseline: read the body, verify its signature, answer 202. Nothing else."""
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


def build_store_wsgi(env: Any, path: str) -> Any:
    """The floor of any durable webhook: read the body, verify its signature, decode the JSON, insert
    each event's source, id, type, time and data into a SQLite file (WAL, ``synchronous=NORMAL``,
    writers taking turns on an ``flock``, as alignbot's inbox does) unless it is there, and answer
    202 with the counts. No validation beyond what the insert needs, no log line, no projection."""
    import fcntl
    import sqlite3

    from bot.crm_signature import HEADER, verify

    secrets = env.webhook_secrets
    header_key = "HTTP_" + HEADER.upper().replace("-", "_")
    local = threading.local()
    turn = threading.Lock()
    insert = "INSERT INTO events VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, id) DO NOTHING RETURNING id"

    def connection() -> tuple[sqlite3.Connection, int]:
        if getattr(local, "pid", None) != os.getpid():  # each thread of each worker its own
            local.connection = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
            local.connection.execute("PRAGMA journal_mode=WAL")
            local.connection.execute("PRAGMA synchronous=NORMAL")
            local.lock, local.pid = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644), os.getpid()
        return local.connection, local.lock

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        length = environ.get("CONTENT_LENGTH") or ""
        body = environ["wsgi.input"].read(int(length) if length.isdigit() else -1)
        if verify(secrets, environ.get(header_key), body) is not None:
            data, status = b'{"error": "bad signature"}', "401 Unauthorized"
        else:
            decoded = json.loads(body)
            events = decoded if isinstance(decoded, list) else [decoded]
            rows = [(e["source"], e["id"], e["type"], e["time"], json.dumps(e["data"])) for e in events]
            database, lock = connection()
            with turn:
                fcntl.flock(lock, fcntl.LOCK_EX)
                try:
                    if len(rows) == 1:
                        accepted = len(database.execute(insert, rows[0]).fetchall())
                    else:
                        database.execute("BEGIN IMMEDIATE")
                        accepted = sum(len(database.execute(insert, row).fetchall()) for row in rows)
                        database.execute("COMMIT")
                finally:
                    fcntl.flock(lock, fcntl.LOCK_UN)
            data = json.dumps({"accepted": accepted, "duplicates": len(rows) - accepted, "ignored": 0}).encode()
            status = "202 Accepted"
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


# --- the in-process profile ---------------------------------------------------------------------


def profile_main(mode: str, count: int, top: int) -> int:
    """cProfile of ``handlers.crm.handle(deps, secrets)(headers, body)`` on a temporary SQLite file."""
    import cProfile
    import io
    import pstats

    from bot.config import load_alignment
    from bot.crm_signature import HEADER
    from bot.db import Database
    from bot.deps import Dependencies
    from bot.projector import CrmProjector
    from handlers.crm import handle

    size = 1000 if mode == "batch" else 1
    with tempfile.TemporaryDirectory(prefix="alignbot-bench-") as tmp:
        database = Database.from_url(f"sqlite:///{Path(tmp) / 'alignbot.db'}")
        database.upgrade()
        alignment = load_alignment(CONFIG)
        # The request's own work only (store and answer), as in a web worker; the projector's
        # batches are profiled apart, after the requests.
        projector = CrmProjector(database, alignment)
        deps = Dependencies(alignment=alignment, database=database, projector=projector)
        receive = handle(deps, (SECRET,))
        factory = EventFactory("p")

        def requests(n: int) -> list[tuple[dict[str, str], bytes]]:
            out = []
            for _ in range(n):
                if size == 1:
                    body, content_type = json.dumps(factory.next()).encode(), STRUCTURED
                else:
                    body, content_type = json.dumps(factory.batch(size)).encode(), BATCH
                out.append(({k.lower(): v for k, v in signed(body, content_type).items()}, body))
            return out

        def run(batch: list[tuple[dict[str, str], bytes]]) -> float:
            began = time.perf_counter()
            for headers, body in batch:
                answer = receive(headers, body)
                if answer.status != 202 or answer.body.get("accepted") != size:
                    raise SystemExit(f"PROBLEM: unexpected answer {answer}")
            return time.perf_counter() - began

        run(requests(max(2, count // 10)))  # warm-up: imports, caches, first rows
        plain = run(requests(count))  # timed without the profiler
        batch = requests(count)
        profiler = cProfile.Profile()
        profiler.enable()
        run(batch)
        profiler.disable()
        # The same bodies again, signed anew: every event a duplicate.
        again = [({**h, "x-alignbot-signature": signed(b, h["content-type"])[HEADER]}, b) for h, b in batch]
        began = time.perf_counter()
        for headers, body in again:
            answer = receive(headers, body)
            if answer.status != 202 or answer.body.get("duplicates") != size:
                raise SystemExit(f"PROBLEM: unexpected answer to a re-sent request {answer}")
        duplicates = time.perf_counter() - began
        database.dispose()
    events = count * size
    print(
        f"{mode}: {count} request(s) of {size} event(s) in-process, unprofiled: "
        f"{plain * 1000 / count:.2f} ms a request, "
        f"{events / plain:.0f} events/s; the same re-sent (all duplicates): {events / duplicates:.0f} events/s"
    )
    prefixes = sorted({str(REPO) + "/", *(p.rstrip("/") + "/" for p in sys.path if p.endswith("-packages"))}, key=len)
    app_only = re.escape(str(REPO)) + "/(bot|handlers)/"
    for title, order, restriction in (
        ("by own time", "tottime", ()),
        ("by cumulative time", "cumulative", ()),
        ("of the app's own functions (bot/, handlers/) by cumulative time", "cumulative", (app_only,)),
    ):
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(*restriction, top)
        text = out.getvalue().split("\n\n", 1)[-1].rstrip()
        for prefix in reversed(prefixes):
            text = text.replace(prefix, "")
        print(f"\n--- top {top} {title} (profiled run) ---")
        print(text)
    return 0


# --- the run ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = benchlib.parser(__doc__, "a smoke run of a few seconds")
    httpbench.add_round_options(parser, "single-event ")
    parser.add_argument("--warmup", type=float, help="unmeasured seconds per side first (default 1; quick 0.3)")
    parser.add_argument("--clients", type=int, default=8, help="keep-alive clients for single events (default 8)")
    parser.add_argument("--batch-size", type=int, default=1000, help="events per batch (default 1000, the maximum)")
    parser.add_argument("--batch-rounds", type=int, help="rounds of each batch run (default 3; quick 1)")
    parser.add_argument("--batch-seconds", type=float, help="length of a batch round (default 3; quick 1)")
    parser.add_argument("--batch-clients", type=int, default=2, help="keep-alive clients for batches (default 2)")
    parser.add_argument(
        "--baseline",
        choices=tuple(BASELINES),
        default="verify",
        help="what alignbot is set against: verify (default, the issue's: read, verify, 202) or store "
        "(also decode and insert each event into a SQLite file: the floor of a durable webhook)",
    )
    httpbench.add_server_options(parser)
    parser.add_argument(
        "--database-url",
        help="run alignbot on this database instead of a temporary SQLite file, e.g. "
        "postgresql+psycopg://postgres@127.0.0.1:5432/bench (its CRM, domain and outbox tables are emptied first)",
    )
    parser.add_argument(
        "--profile",
        choices=("single", "batch"),
        help="instead of the HTTP run: cProfile the handler in-process on a temporary SQLite file",
    )
    parser.add_argument("--count", type=int, help="requests to profile (default 2000 single / 20 batches)")
    parser.add_argument("--top", type=int, default=30, help="functions shown per profile table (default 30)")
    args = parser.parse_args(argv)
    if args.serve:
        httpbench.serve_main(args.serve, args.workers, args.threads, build_bare_wsgi)
        return 0
    if args.profile:
        count = args.count or (2000 if args.profile == "single" else 20)
        return profile_main(args.profile, count, args.top)
    rounds, seconds, warmup = httpbench.round_settings(args)
    batch_rounds = args.batch_rounds or (1 if args.quick else 3)
    batch_seconds = args.batch_seconds or (1.0 if args.quick else 3.0)
    size = args.batch_size

    from sqlalchemy import func, select

    from bot.demo.fakeslack import FakeSlack
    from bot.models import CrmEvent, Deal, Lead, OutboxMessage, Touch
    from bot.services import crm

    factories = {kind: EventFactory(kind[0]) for kind in KINDS}  # single events, per side
    batch_factories = {"bare": EventFactory("x"), "alignbot": EventFactory("b")}
    sent_batches: list[bytes] = []
    wall = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="alignbot-bench-") as tmp, FakeSlack() as fake:
        workdir = Path(tmp)
        database_url, database = httpbench.prepare_database(
            args.database_url, workdir, ("crm_events", "leads", "touches", "deals", "outbox", "channel_pace")
        )
        fake.enforce_rate_limit(1.0)
        webhook_env = {"ALIGNBOT_WEBHOOK_SECRET": SECRET, BASELINE_VARIABLE: args.baseline}
        if args.baseline == "store":
            store = workdir / "baseline-store.db"
            with contextlib.closing(sqlite3.connect(store)) as created:
                created.execute("PRAGMA journal_mode=WAL")
                created.execute(_STORE_SCHEMA)
            webhook_env[STORE_VARIABLE] = str(store)
        with httpbench.running(__file__, args, workdir, fake.url, database_url, webhook_env) as servers:
            print(
                f"gunicorn gthread, {args.workers} workers x {args.threads} threads per side; "
                f"{'SQLite' if database.is_sqlite else database.engine.dialect.name}; {benchlib.machine()}",
                flush=True,
            )
            print(
                f"single events: {args.clients} keep-alive clients, {rounds} round(s) of {seconds:g}s per side",
                flush=True,
            )

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

            # The store baseline answers with counts too: each of its events must be stored, once.
            bare_single, bare_batch = (
                (expect(1), expect(-1)) if args.baseline == "store" else (expect(None), expect(None))
            )
            single_checks = {"bare": bare_single, "alignbot": expect(1)}
            catch_ups: dict[str, list[float]] = {"single": [], "batch": []}
            # Events of an alignbot round over the round and its catch-up: the rate at which they
            # were stored *and* applied, the one a CRM could keep up without a backlog growing.
            applied_rates: dict[str, list[float]] = {"single": [], "batch": []}

            def wait_until_applied(limit: float = 300.0) -> float:
                """Seconds until no stored event is left unapplied (servers still up), at most ``limit``."""
                began = time.perf_counter()
                while time.perf_counter() - began < limit:
                    with database.read_session() as session:
                        if crm.backlog(session, database.inbox)[0] == 0:
                            break
                    time.sleep(0.01)
                return time.perf_counter() - began

            def settle(result: httpbench.RoundResult, measured: bool) -> None:
                """After an alignbot round, untimed: wait until the projector has applied every event stored.

                The 202 means stored; applying is the projector's, after. Left to run on, that
                work would fall in the next round, the bare side's, and slow it down.
                """
                if result.kind in ("bare", "bare-batch"):
                    return
                cpu_began = httpbench.children_cpu_seconds(servers["alignbot"].process.pid)["projector"]
                took = wait_until_applied()
                cpu = httpbench.children_cpu_seconds(servers["alignbot"].process.pid)["projector"] - cpu_began
                # A re-sent batch (all duplicates) stores nothing: there is nothing of its own to apply.
                if not measured or not result.events or result.kind == "duplicates":
                    return
                into = "single" if result.kind == "alignbot" else "batch"
                catch_ups[into].append(took)
                applied_rates[into].append(result.events / (result.seconds + took))
                total = (result.projector_cpu_ms * result.requests / 1000 + cpu) * 1e6 / result.events
                print(
                    f"  {'':28}  every event applied {took:.2f}s after the round; "
                    f"projector CPU {total:.0f} us/event in all",
                    flush=True,
                )

            def single(kind: str, round_seconds: float) -> httpbench.RoundResult:
                return measure(
                    kind, kind, single_source(factories[kind]), single_checks[kind], round_seconds, args.clients
                )

            warm, singles = httpbench.alternate(
                single,
                lambda number, kind, result: report_round(f"round {number} {kind}", result),
                warmup=warmup,
                rounds=rounds,
                seconds=seconds,
                settle=settle,
            )
            print(
                f"batches of {size}: {args.batch_clients} keep-alive clients, {batch_rounds} round(s) of "
                f"{batch_seconds:g}s per run (bare, new events, the same batches re-sent)",
                flush=True,
            )
            new_batches = batch_source(batch_factories["alignbot"], size, sent_batches)
            warm.append(measure("batch", "alignbot", new_batches, expect(-1), warmup, args.batch_clients))
            settle(warm[-1], False)
            batches: list[httpbench.RoundResult] = []
            backlogs: list[int] = []
            for r in range(batch_rounds):
                runs: tuple[tuple[str, str, Source, httpbench.Check], ...] = (
                    ("bare-batch", "bare", batch_source(batch_factories["bare"], size, None), bare_batch),
                    ("batch", "alignbot", batch_source(batch_factories["alignbot"], size, sent_batches), expect(-1)),
                    ("duplicates", "alignbot", resend_source(sent_batches, size), expect(0, size)),
                )
                for label, side, source, check in runs:
                    result = measure(label, side, source, check, batch_seconds, args.batch_clients)
                    batches.append(result)
                    report_round(f"round {r + 1} {label}", result)
                    if label == "batch":
                        # Stored but not applied yet at the end of the round: what the projector
                        # left for later while the requests went first.
                        with database.read_session() as session:
                            left = crm.backlog(session, database.inbox)[0]
                        backlogs.append(left)
                        print(f"  round {r + 1} batch: {left} events stored, not yet applied", flush=True)
                    settle(result, True)
            # Every alignbot round was followed by its catch-up; this is the last look before the
            # correctness checks, which hold for the applied state.
            left_over = wait_until_applied()
            if left_over > 0.05:
                print(f"projector: every event applied {left_over:.2f}s after the last catch-up", flush=True)

        # --- correctness ---
        every = warm + singles + batches
        problems: list[str] = []
        for res in every:
            if res.ok != res.requests:
                problems.append(
                    f"{res.requests - res.ok} of {res.requests} {res.kind} answers were not as expected: {res.bad[:3]}"
                )
        single_sent = sum(res.requests for res in every if res.kind == "alignbot")
        batch_sent = sum(res.requests for res in every if res.kind == "batch") * size
        expected_events = single_sent + batch_sent
        made = factories["alignbot"].counts + batch_factories["alignbot"].counts
        deals_made = factories["alignbot"].deals + batch_factories["alignbot"].deals
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
            leads = session.scalar(select(func.count()).select_from(Lead)) or 0
            touches = session.scalar(select(func.count()).select_from(Touch)) or 0
            deal_rows = {row.deal_id: row for row in session.scalars(select(Deal))}
            win_posts = set(session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "win.post")))
            journeys = set(session.scalars(select(OutboxMessage.key).where(OutboxMessage.kind == "win.journey")))
            outbox_rows = session.scalar(select(func.count(OutboxMessage.id))) or 0
            delivered = (
                session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.delivered_at.is_not(None))) or 0
            )
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
        if args.baseline == "store":
            bare_sent = sum(
                res.requests * (size if res.kind == "bare-batch" else 1)
                for res in every
                if res.kind in {"bare", "bare-batch"}
            )
            with contextlib.closing(sqlite3.connect(store)) as stored:
                store_rows = stored.execute("SELECT count(*) FROM events").fetchone()[0]
            if store_rows != bare_sent:
                problems.append(f"the store baseline holds {store_rows} rows for {bare_sent} events sent to it")
        logs = httpbench.scan_logs(servers.values())
        problems += logs.problems(exceptions=5)
        wins_delivered = len(fake.posts(CONFIG_WINS))

    elapsed = time.perf_counter() - wall
    summary = benchlib.medians_by_kind(
        singles + batches,
        (*KINDS, "bare-batch", "batch", "duplicates"),
        ("events_per_s", "requests_per_s", "p50_ms", "p99_ms", "client_cpu", "server_cpu_ms", "projector_cpu_ms"),
    )
    # The goal is set against the verify baseline; against the store one the ratio is what
    # alignbot's own work costs over a durable webhook's floor, with no goal of its own.
    goal = (">= 0.60", "", "", "") if args.baseline == "verify" else ("(none: see --baseline)", "", "", "")
    comparison = httpbench.Comparison("events_per_s", "events/s", BASELINES[args.baseline], goal)
    ratios = comparison.ratios(summary)
    comparison.print_table(
        f"single events over HTTP: medians over {rounds} round(s) of {seconds:g}s per side", summary, ratios
    )
    single_catch_up = benchlib.percentile(catch_ups["single"], 50)
    print(
        f"server CPU a request (medians): {args.baseline} {summary['bare']['server_cpu_ms']:.2f} ms; alignbot "
        f"{summary['alignbot']['server_cpu_ms']:.2f} ms, of which its projector process "
        f"{summary['alignbot']['projector_cpu_ms']:.2f} ms within the round; after each alignbot round "
        f"every event was applied {single_catch_up:.2f}s later (median; untimed, before the next round)"
    )
    applied_single = benchlib.percentile(applied_rates["single"], 50)
    print(
        f"stored and applied, catch-up included: alignbot {applied_single:.0f} single events/s (median), "
        f"{benchlib.ratio(applied_single, summary['bare']['events_per_s']):.2f}x {args.baseline}"
    )
    print()
    print("alignbot latency by event type (all measured single-event rounds pooled)")
    by_type: dict[str, list[float]] = {}
    for res in singles:
        if res.kind == "alignbot":
            for label, values in res.by_label.items():
                by_type.setdefault(label, []).extend(values)
    type_rows = [
        [label, len(values), benchlib.percentile(values, 50) * 1000, benchlib.percentile(values, 99) * 1000]
        for label, values in sorted(by_type.items())
    ]
    print(benchlib.table(["type", "requests", "p50 ms", "p99 ms"], type_rows))
    print()
    print(f"batches of {size} events: medians over {batch_rounds} round(s) of {batch_seconds:g}s")
    batch_out = []
    for label, kind in (
        (BASELINES[args.baseline], "bare-batch"),
        ("alignbot, new events", "batch"),
        ("alignbot, re-sent (all duplicates)", "duplicates"),
    ):
        figures = summary[kind]
        batch_out.append(
            [label, figures["events_per_s"], figures["requests_per_s"], figures["p50_ms"], figures["p99_ms"]]
        )
    applied_batch = benchlib.percentile(applied_rates["batch"], 50)
    batch_out.append(["alignbot, new events stored and applied", applied_batch, "", "", ""])
    batch_out.append(["goal (new events, SQLite)", ">= 10000", "", "", ""])
    print(benchlib.table(["", "events/s", "batches/s", "p50 ms", "p99 ms"], batch_out))
    print()
    print(
        f"correctness: {events_rows} crm_events rows for {expected_events} events sent ({single_sent} single, "
        f"{batch_sent} in new batches); {leads} leads, {touches} touches, {len(deal_rows)} deals "
        f"({len(posted)} announced, {len(digested)} for the digest); {outbox_rows} outbox rows, {delivered} delivered "
        f"({wins_delivered} posts reached the fake's wins channel, 429s: {fake.rate_limited}); "
        f"{len(logs.warnings)} warning line(s) in the server logs"
    )
    if logs.warnings:
        print(f"first warning: {logs.warnings[0]}")
    single_met = ratios["throughput"] >= 0.6
    batch_met = summary["batch"]["events_per_s"] >= 10_000
    single_goal = f"{'met' if single_met else 'NOT met'}" if args.baseline == "verify" else "not measured (--baseline)"
    print(
        f"goals: single events >= 0.60x bare: {single_goal}; "
        f"batches >= 10,000 events/s: {'met' if batch_met else 'NOT met'}; {elapsed:.0f}s in all"
    )
    for problem in problems:
        print(f"PROBLEM: {problem}")
    if logs.first_traceback:
        first_traceback = logs.first_traceback
        # The project's own frames (file, line, code), then the exception after the last frame.
        own_frames = [
            f"{line.strip()}: {first_traceback[i + 1].strip() if i + 1 < len(first_traceback) else ''}"
            for i, line in enumerate(first_traceback)
            if line.lstrip().startswith(f'File "{REPO}/')
        ]
        frames = [i for i, line in enumerate(first_traceback) if line.lstrip().startswith('File "')]
        raised = first_traceback[frames[-1] + 2 : frames[-1] + 4] if frames else first_traceback[-2:]
        print("the first traceback in the server logs: the project's frames, then the exception")
        print("\n".join([first_traceback[0], *own_frames, *raised]))
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
            "ratios": ratios,
            "catch_up_s": catch_ups,
            "applied_events_per_s": applied_rates,
            "by_type": {row[0]: {"requests": row[1], "p50_ms": row[2], "p99_ms": row[3]} for row in type_rows},
            "rounds": [
                {
                    "kind": r.kind,
                    "requests": r.requests,
                    "events": r.events,
                    "events_per_s": r.events_per_s,
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                }
                for r in singles + batches
            ],
            "correctness": {
                "events_sent": expected_events,
                "crm_events_rows": events_rows,
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
